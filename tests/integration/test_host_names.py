#!/usr/bin/env python3
"""Backend hosts named by DNS name in `address` (issue 14, acceptance 1),
against a real BIND 9 (tests/integration/bindlib.py) that dns.resolvers
points at.

- `kmsrelayd -n` looks every name up: OK when they resolve; a name that does
  not is reported with the file:line of its `address`.
- kms1 = "kms1.example.test:P" (A 127.0.0.1, TTL 2 s), kms2 =
  "kms2.example.test:Q" (TTL 0) and kms3 (AAAA ::1 only) come UP and take
  activations.
- Changing kms1's A record to 127.0.0.2 (RFC 2136 UPDATE) moves kms1 to the
  stub listening on 127.0.0.2:P within the TTL (resolve_max is 60 s, so only
  the TTL explains a quick move), without moving a single pin: the pin dump
  (kmsrelayctl clients) is identical before and after, and the same clients
  are served by kms1, now the stub at the new address.
- The TTL 0 name is looked up no more often than resolve_min (2 s).
- Deleting kms1's record makes kms1 DOWN with "address does not resolve:
  NXDOMAIN ..."; adding it back brings it UP again.
- A resolver outage (BIND stopped) keeps every address in use: nothing goes
  DOWN, clients are served, the failure is logged once.
- A reload looks every name up again and moves nothing.
"""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bindlib  # noqa: E402
import krtest  # noqa: E402
import relaylib as rl  # noqa: E402
from krtest import check  # noqa: E402

N_CLIENTS = 120


def stub_at(h, name, ip, port, tag):
    pf = h.path(tag + ".port")
    log = h.path(tag + ".jsonl")
    args = [krtest.binpath("kms-stubhost"), "-l", "%s:%d" % (ip, port), "--port-file", pf,
            "-N", name, "--epid", rl.epid_for(name), "--log", log]
    p, got = h.start(args, tag, port_file=pf)
    return rl.Stub(name, p, got, log)


def conf(h, bind_port, hosts, resolve_min="2s"):
    """hosts: (name, address) pairs."""
    text = rl.conf_text(h, [], assist=False, extra=(
        'dns: { resolvers = [ "127.0.0.1:%d" ]; timeout = "1s"; };\n'
        'control: { socket = "%s"; mode = "0600"; };\n' % (bind_port, h.path("control.sock"))))
    hl = ",\n          ".join('{ name = "%s"; address = "%s"; }' % hn for hn in hosts)
    text = re.sub(r"hosts = \( [^;]*\);", lambda m: "hosts = ( %s );" % hl, text, count=1)
    text = text.replace("backend: { ", 'backend: { resolve_min = "%s"; resolve_max = "60s"; '
                        % resolve_min, 1)
    return text.replace("log: { activations = true; };", 'log: { activations = true; '
                        'level = "debug"; };')


def ctl_json(h, *args):
    rc, out, err = h.run([krtest.binpath("kmsrelayctl"), "--socket", h.path("control.sock")]
                         + list(args) + ["--json"], timeout=120)
    check(rc == 0, "kmsrelayctl %s: rc %d: %s" % (" ".join(args), rc, err[-500:]))
    return json.loads(out)


def pin_map(h):
    return {c["cmid"]: c["host"] for c in ctl_json(h, "clients")["clients"]}


def wait_pins(h, n):
    rl.wait_for(lambda: ctl_json(h, "status")["pins"] >= n and
                ctl_json(h, "status")["store"]["pending"] == 0, 10, "%d committed pins" % n)


def host_doc(h, name):
    for x in ctl_json(h, "hosts")["hosts"]:
        if x["name"] == name:
            return x
    raise krtest.Failure("no host %s in kmsrelayctl hosts" % name)


def check_n(h, path, want_rc):
    r = subprocess.run([krtest.binpath("kmsrelayd"), "-n", "-c", path], capture_output=True,
                       timeout=60)
    out = r.stdout.decode() + r.stderr.decode()
    check(r.returncode == want_rc, "kmsrelayd -n: rc %d, want %d: %s"
          % (r.returncode, want_rc, out))
    return out


def t_host_names(h):
    s1 = rl.start_stub(h, "kms1-old")
    s1new = stub_at(h, "kms1-new", "127.0.0.2", s1.port, "kms1-new")
    s2 = rl.start_stub(h, "kms2")
    s3 = stub_at(h, "kms3", "[::1]", 0, "kms3")  # AAAA only
    emap = rl.epid_map([s1, s1new, s2, s3])
    b = bindlib.start(h, records=["kms1 2 IN A 127.0.0.1", "kms2 0 IN A 127.0.0.1",
                                  "kms3 60 IN AAAA ::1"])
    hosts = [("kms1", "kms1.example.test:%d" % s1.port), ("kms2", "kms2.example.test:%d" % s2.port),
             ("kms3", "kms3.example.test:%d" % s3.port)]
    path = h.path("relay.conf")
    rl.write(path, conf(h, b.port, hosts))

    # --- -n: names that resolve are fine; one that does not, with file:line --
    out = check_n(h, path, 0)
    check("configuration OK" in out, "-n: " + out)
    bad = h.path("bad.conf")
    text = conf(h, b.port, hosts + [("kms9", "kms9.example.test")])
    rl.write(bad, text)
    line = [i + 1 for i, x in enumerate(text.splitlines()) if "kms9.example.test" in x][0]
    out = check_n(h, bad, 1)
    want = ('%s:%d: host kms9: address "kms9.example.test:1688" does not resolve: NXDOMAIN'
            % (bad, line))
    check(want in out, "-n: want %r in %r" % (want, out))
    print("  -n: %s" % out.strip().splitlines()[0])
    # a host name on the command line (-H) is looked up the same way
    r = subprocess.run([krtest.binpath("kmsrelayd"), "-n", "-c", path, "-H",
                        "kms4=nothere.example.test:1700"], capture_output=True, timeout=60)
    out = r.stdout.decode() + r.stderr.decode()
    check(r.returncode == 1 and '-H: host kms4: address "nothere.example.test:1700" does not '
          'resolve: NXDOMAIN' in out, "-n -H: rc %d: %s" % (r.returncode, out))

    # --- both names resolve, hosts come UP, clients are pinned ----------------
    r = rl.start_relay(h, path, wait_up=("kms1", "kms2", "kms3"))
    check(re.search(r"event=host_changed host=kms1 addr=127\.0\.0\.1:%d name=kms1\.example\.test"
                    % s1.port, r.log()), "kms1 not resolved")
    check(re.search(r"event=host_changed host=kms3 addr=\[::1\]:%d name=kms3\.example\.test"
                    % s3.port, r.log()), "kms3 (AAAA) not resolved")
    rc, doc, out = rl.loadgen(h, r.target(), N_CLIENTS, k=N_CLIENTS, c=8, seed=21, name="lg0")
    rl.check_all_ok(rc, doc, out, N_CLIENTS, "before the move")
    before_served = rl.last_host(doc, emap)
    sp = rl.spread(before_served)
    print("  served before the move: %s" % sp)
    check(all(sp.get(x, 0) > 0 for x in ("kms1-old", "kms2", "kms3")), "spread %s" % sp)
    wait_pins(h, N_CLIENTS)
    pins_before = pin_map(h)
    check(len(pins_before) == N_CLIENTS, "%d pins" % len(pins_before))
    hd = host_doc(h, "kms1")
    check(hd["address"] == "127.0.0.1:%d" % s1.port and
          hd["address_name"] == "kms1.example.test:%d" % s1.port, "hosts: %r" % hd)

    # --- TTL 0 is looked up no more often than resolve_min (2 s) --------------
    off = rl.log_size(r.proc)
    time.sleep(8)
    n_kms2 = len(re.findall(r"event=host_resolve host=kms2 name=kms2\.example\.test result=ok",
                            r.log()[off:]))
    print("  kms2 (TTL 0) looked up %d times in 8 s (resolve_min 2 s)" % n_kms2)
    check(2 <= n_kms2 <= 5, "kms2 looked up %d times in 8 s" % n_kms2)

    # --- the A record changes: kms1 moves, no pin does ------------------------
    off = rl.log_size(r.proc)
    t0 = time.time()
    b.update(["update delete kms1.example.test. A",
              "update add kms1.example.test. 2 IN A 127.0.0.2"])
    check(b.dig("kms1.example.test", "A")[0]["data"] == "127.0.0.2", "the UPDATE did not apply")
    rl.wait_log(r.proc, r"event=host_changed host=kms1 addr=127\.0\.0\.2:%d name=kms1\.example\.test"
                % s1.port, 15, start=off)
    moved_after = time.time() - t0
    print("  kms1 moved to 127.0.0.2 %.1f s after the UPDATE (TTL 2 s, resolve_max 60 s)"
          % moved_after)
    check(moved_after < 8, "not re-resolved by the TTL: %.1f s" % moved_after)
    check(not re.search(r"event=host_state host=kms1 ", r.log()[off:]),
          "kms1 changed health on a move:\n" + r.log()[off:])
    rc, doc, out = rl.loadgen(h, r.target(), N_CLIENTS, k=N_CLIENTS, c=8, seed=21, name="lg1")
    rl.check_all_ok(rc, doc, out, N_CLIENTS, "after the move")
    after_served = rl.last_host(doc, emap)
    wait_pins(h, N_CLIENTS)
    pins_after = pin_map(h)
    moved = [c for c in pins_before if pins_after.get(c) != pins_before[c]]
    check(not moved, "%d pins moved: %r" % (len(moved), moved[:5]))
    wrong = [c for c, hn in before_served.items()
             if {"kms1-old": "kms1-new"}.get(hn, hn) != after_served.get(c)]
    check(not wrong, "%d clients not served by their host at its new address" % len(wrong))
    acts = rl.activation_lines(r, off)
    check(acts and all(a.get("host") in ("kms1", "kms2", "kms3") for a in acts),
          "activation hosts")
    print("  %d pins identical before and after; kms1's %d clients now served at 127.0.0.2"
          % (len(pins_after), sp.get("kms1-old", 0)))

    # --- the name stops resolving: DOWN with the reason, back when it does ----
    off = rl.log_size(r.proc)
    b.delete("kms1.example.test. A")
    m = rl.wait_log(r.proc, r"event=host_state host=kms1 from=UP to=DOWN [^\n]*", 15, start=off)
    check("address does not resolve: NXDOMAIN" in m.group(0), m.group(0))
    hd = host_doc(h, "kms1")
    check(hd["health"].lower() == "down" and
          hd["health_reason"].startswith("address does not resolve: NXDOMAIN"), "hosts: %r" % hd)
    print("  name deleted: %s" % hd["health_reason"])
    rc, out, err = h.run([krtest.binpath("kmsrelayctl"), "--socket", h.path("control.sock"),
                          "hosts"], timeout=60)
    check("kms1.example.test:%d" % s1.port in out, "kmsrelayctl hosts:\n" + out)
    rc, doc, out = rl.loadgen(h, r.target(), 20, k=20, c=4, seed=22, name="lg2")
    rl.check_all_ok(rc, doc, out, 20, "while kms1 does not resolve")
    b.add("kms1.example.test. 2 IN A 127.0.0.2")
    rl.wait_host_state(r, "kms1", "UP", timeout=15, start=off)
    check(host_doc(h, "kms1")["address"] == "127.0.0.2:%d" % s1.port, "address after")
    print("  record back: kms1 UP again")

    # --- a resolver outage keeps the address in use ----------------------------
    off = rl.log_size(r.proc)
    b.stop()
    rl.wait_log(r.proc, r"event=host_resolve host=kms1 name=kms1\.example\.test result=failed "
                r"action=keep_address", 15, start=off)
    rc, doc, out = rl.loadgen(h, r.target(), N_CLIENTS, k=N_CLIENTS, c=8, seed=21, name="lg3")
    rl.check_all_ok(rc, doc, out, N_CLIENTS, "while the resolver is down")
    check(not re.search(r"event=host_(changed|state) host=kms", r.log()[off:]),
          "a resolver outage changed a host:\n" + r.log()[off:])
    # once above debug level: the streak's later lookups (every resolve_min,
    # so their number depends on how long the load took) log at debug only
    check(len(re.findall(r"level=(?!debug)\w+ event=host_resolve host=kms1 [^\n]*result=failed",
                         r.log()[off:])) == 1, "a failure streak logged more than once")
    b.restart()
    rl.wait_log(r.proc, r"event=host_resolve host=kms1 name=kms1\.example\.test result=ok "
                r"addr=127\.0\.0\.2:%d again=1" % s1.port, 15, start=off)
    print("  resolver down: addresses kept, %d activations served; back: looked up again"
          % N_CLIENTS)

    # --- a reload looks every name up again and moves nothing -----------------
    off = rl.log_size(r.proc)
    rl.reload(r, conf(h, b.port, hosts))
    rl.wait_log(r.proc, r"event=host_resolve host=kms1 name=kms1\.example\.test result=ok", 10,
                start=off)
    check("event=host_resolve names=3" in r.log()[off:], "reload did not look names up")
    check(not re.search(r"event=host_(changed|state) host=kms", r.log()[off:]),
          "a reload with the same names changed a host:\n" + r.log()[off:])
    # --- a reload from a name to a numeric address and back --------------------
    off = rl.log_size(r.proc)
    numeric = [hosts[0], ("kms2", "127.0.0.1:%d" % s2.port), hosts[2]]
    rl.reload(r, conf(h, b.port, numeric))
    rl.wait_log(r.proc, r"event=host_changed host=kms2 addr=127\.0\.0\.1:%d\n" % s2.port, 5,
                start=off)
    rl.wait_host_state(r, "kms2", "UP", start=off)
    check("event=host_resolve names=2" in r.log()[off:], "numeric kms2 still looked up")
    off = rl.log_size(r.proc)
    rl.reload(r, conf(h, b.port, hosts))
    rl.wait_log(r.proc, r"event=host_changed host=kms2 addr=127\.0\.0\.1:%d name=kms2" % s2.port,
                5, start=off)
    rl.wait_host_state(r, "kms2", "UP", start=off)
    pm = pin_map(h)
    moved = [c for c in pins_after if pm.get(c) != pins_after[c]]
    check(not moved, "%d pins moved over the reloads" % len(moved))
    print("  reloads name -> numeric -> name: kms2 UP again, no pin moved")
    check(h.stop(r.proc) == 0, "exit status")
    check("runtime error" not in r.log() and "Sanitizer" not in r.log(), "sanitizer output")


def t_discovery_skips_named_host(h):
    """A discovered SRV target at the address a configured host's *name*
    resolved to is that host, not a second one. The configuration holds no
    address for a named host, so discovery must ask the relay (failed before:
    the target was added as a second host, source=dns)."""
    s1 = rl.start_stub(h, "kms1")
    pool = "_vlmcs._tcp.pool.example.test"
    b = bindlib.start(h, records=["kms1 60 IN A 127.0.0.1", "alias 60 IN A 127.0.0.1",
                                  "%s. 2 IN SRV 0 10 %d alias.example.test." % (pool, s1.port)])
    path = h.path("relay.conf")
    text = conf(h, b.port, [("kms1", "kms1.example.test:%d" % s1.port)])
    text = text.replace("backend: { ", 'backend: { discover = [ "%s" ]; discover_interval = '
                        '"30s"; ' % pool, 1)
    rl.write(path, text)
    r = rl.start_relay(h, path, wait_up=("kms1",))
    rl.wait_log(r.proc, r'event=discover_skip name=%s\.? target=alias\.example\.test\.? '
                r'reason="already a configured host"' % re.escape(pool), 10)
    check("source=dns" not in r.log(), "the named host was added again from DNS:\n" + r.log())
    names = [x["name"] for x in ctl_json(h, "hosts")["hosts"]]
    check(names == ["kms1"], "hosts: %r" % names)
    print("  a discovered target at kms1's resolved address is skipped as kms1")
    check(h.stop(r.proc) == 0, "exit status")


if __name__ == "__main__":
    krtest.run_tests("host_names", [t_host_names, t_discovery_skips_named_host])
