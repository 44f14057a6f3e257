#!/usr/bin/env python3
"""Host runtime state (issue 9): an operator's admin state and weight belong to
the relay's hosts, are persisted in one place and applied at start by the
relay itself, and nothing but the operator or the configuration changes them.

- An operator weight (`kmsrelayctl host weight`) on a host discovered through
  DNS (a real BIND, tests/integration/bindlib.py) survives 5 discovery rounds
  (no reset to the SRV record's weight, no host_changed line per round) and a
  restart of the relay.
- Persisted admin states and weights are applied when the control socket
  cannot be created (the daemon logs the control error and goes on serving):
  shown by /metrics and by where new clients go.
"""
import json
import os
import re
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bindlib  # noqa: E402
import krtest  # noqa: E402
import relaylib as rl  # noqa: E402
from krtest import check  # noqa: E402

POOL = "_vlmcs._tcp.pool.example.test."


def ctl_json(h, sock, *args):
    argv = [krtest.binpath("kmsrelayctl"), "--socket", sock] + list(args) + ["--json"]
    rc, out, err = h.run(argv, timeout=60)
    check(rc == 0, "kmsrelayctl %s: rc %d\n%s%s" % (" ".join(args), rc, out[-1000:], err[-1000:]))
    return json.loads(out)


def host_doc(h, sock, name):
    doc = ctl_json(h, sock, "hosts")
    rows = doc["hosts"] if isinstance(doc, dict) else doc
    for x in rows:
        if x["name"] == name:
            return x
    raise krtest.Failure("host %s not in kmsrelayctl hosts: %r" % (name, doc))


def discovery_when(h, sock):
    d = ctl_json(h, sock, "dns")
    return d["discovery"][0].get("when")


def t_weight_on_discovered_host(h):
    st = rl.start_stubs(h, ["kms-a"])
    a = st["kms-a"]
    srv = bindlib.start(h, records=["%s 1 IN SRV 0 10 %d kms-a.pool.example.test." % (POOL, a.port),
                                    "kms-a.pool 1 IN A 127.0.0.1"])
    sock = h.path("control.sock")
    text = rl.conf_text(h, [], assist=False, extra=(
        'dns: { resolvers = [ "127.0.0.1:%d" ]; timeout = "1s"; };\n'
        'control: { socket = "%s"; mode = "0600"; };\n' % (srv.port, sock)))
    text = text.replace("backend: { ", 'backend: { discover = [ "%s" ]; discover_interval = "30s"; '
                                       'discover_linger = "30s"; ' % POOL, 1)
    conf = h.path("relay.conf")
    rl.write(conf, text)
    r = rl.start_relay(h, conf)
    name = "kms-a.pool.example.test:%d" % a.port
    rl.wait_host_state(r, name, "UP")
    check(host_doc(h, sock, name)["weight"] == 10, "the SRV record's weight first")

    off = rl.log_size(r.proc)
    w = ctl_json(h, sock, "host", "weight", name, "7")
    check(w["weight"] == 7, "weight not in force: %r" % w)
    # Five discovery rounds (the SRV TTL is 1 s): count distinct round times.
    seen = set()
    rl.wait_for(lambda: seen.add(discovery_when(h, sock)) or len(seen) >= 6, 30,
                "5 discovery rounds", poll=0.3)
    hd = host_doc(h, sock, name)
    print("  after %d discovery rounds: weight %d (SRV says 10)" % (len(seen) - 1, hd["weight"]))
    check(hd["weight"] == 7, "discovery undid the operator's weight: %d" % hd["weight"])
    changed = re.findall(r"event=host_changed host=%s [^\n]*" % re.escape(name), r.log()[off:])
    check(not changed, "host_changed logged by discovery rounds: %s" % changed[:3])

    check(h.stop(r.proc) == 0, "exit status")
    r = rl.start_relay(h, conf)
    rl.wait_host_state(r, name, "UP")
    hd = host_doc(h, sock, name)
    print("  after a restart: weight %d" % hd["weight"])
    check(hd["weight"] == 7, "the operator's weight did not survive a restart: %d" % hd["weight"])
    check(h.stop(r.proc) == 0, "exit status")
    check("runtime error" not in r.log() and "Sanitizer" not in r.log(), "sanitizer output")


def metric(text, name, labels):
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else None


def t_state_without_control_socket(h):
    st = rl.start_stubs(h, ["kms-a", "kms-b"])
    emap = rl.epid_map(st)
    sock = h.path("control.sock")
    conf = h.path("relay.conf")
    rl.write(conf, rl.conf_text(h, list(st.values()), assist=False,
                                extra='control: { socket = "%s"; mode = "0600"; };\n' % sock))
    r = rl.start_relay(h, conf, wait_up=["kms-a", "kms-b"])
    ctl_json(h, sock, "host", "drain", "kms-a")
    ctl_json(h, sock, "host", "weight", "kms-b", "3")
    check(h.stop(r.proc) == 0, "exit status")

    # The same state directory; the control socket's directory does not exist.
    rl.write(conf, rl.conf_text(h, list(st.values()), assist=False, extra=(
        'control: { socket = "%s"; };\nmetrics: { listen = "127.0.0.1:0"; };\n'
        % h.path("no-such-dir", "control.sock"))))
    r = rl.start_relay(h, conf, wait_up=["kms-a", "kms-b"])
    rl.wait_log(r.proc, r"event=control_error [^\n]*running without the control API")
    addr = rl.wait_log(r.proc, r"event=metrics_listen addr=(\S+)").group(1)
    text = urllib.request.urlopen("http://%s/metrics" % addr, timeout=10).read().decode()
    wb = metric(text, "kmsrelay_host_weight", '{host="kms-b"}')
    da = metric(text, "kmsrelay_host_admin", '{host="kms-a",state="drain"}')
    print("  without the control socket: kms-a drain=%s, kms-b weight=%s" % (da, wb))
    check(da == 1, "kms-a's persisted drain not applied: %s" % da)
    check(wb == 3, "kms-b's persisted weight not applied: %s" % wb)
    rc, doc, out = rl.loadgen(h, r.target(), 40, c=4, seed=31, name="lg")
    rl.check_all_ok(rc, doc, out, 40, "new clients")
    sp = rl.spread(rl.last_host(doc, emap))
    check(set(sp) == {"kms-b"}, "new clients reached the drained host: %s" % sp)
    check(h.stop(r.proc) == 0, "exit status")
    check("runtime error" not in r.log() and "Sanitizer" not in r.log(), "sanitizer output")


if __name__ == "__main__":
    krtest.run_tests("host_state", [t_weight_on_discovered_host, t_state_without_control_socket])
