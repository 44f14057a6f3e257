#!/usr/bin/env python3
"""kmsrelayd backend discovery from DNS (issue 4, acceptance 3), against a real
BIND 9 (tests/integration/bindlib.py).

3. backend.discover names an SRV RRset (_vlmcs._tcp.pool.example.test, TTL 2 s,
   discover_interval 30 s, so only the TTL can explain a quick reaction):
   - the relay starts with no configured host and takes kms-a from DNS;
   - adding an SRV record for kms-b brings kms-b in: it appears UNKNOWN, is
     health-checked, and takes traffic only after it is UP;
   - a record pointing at the relay's own listener (and one naming the
     relay's own name, dns.self) is never taken as a backend;
   - removing kms-b's record drains it (pinned clients only: new clients stay
     away, kms-b's own clients still reach it), and after discover_linger it
     is removed.
   Also: a DNS outage (BIND stopped) changes nothing in the pool.
"""
import os
import re
import signal
import sys
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bindlib  # noqa: E402
import krtest  # noqa: E402
import relaylib as rl  # noqa: E402
from krtest import check  # noqa: E402

POOL = "_vlmcs._tcp.pool.example.test."


def log_ts(line):
    m = re.search(r"ts=(\S+)Z", line)
    return datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=timezone.utc).timestamp()


def relay_conf(h, bind_port, linger="3s"):
    text = rl.conf_text(h, [], assist=False, extra=(
        'dns: { resolvers = [ "127.0.0.1:%d" ]; timeout = "1s"; self = [ "relay1.example.test" ]; };\n'
        % bind_port))
    return text.replace("backend: { ", 'backend: { discover = [ "%s" ]; discover_interval = "30s"; '
                                       'discover_linger = "%s"; ' % (POOL, linger), 1)


def srv_line(port, target, ttl=2):
    return "%s %d IN SRV 0 10 %d %s" % (POOL, ttl, port, target)


def served_by(doc, emap):
    return rl.spread(rl.last_host(doc, emap))


def t_discovery(h):
    st = rl.start_stubs(h, ["kms-a", "kms-b"])
    a, b = st["kms-a"], st["kms-b"]
    emap = rl.epid_map(st)
    srv = bindlib.start(h, records=[
        srv_line(a.port, "kms-a.pool.example.test."), "kms-a.pool 2 IN A 127.0.0.1",
        "kms-b.pool 2 IN A 127.0.0.1", "relay2.pool 2 IN A 127.0.0.1",
        "relay1 2 IN A 127.0.0.1"])
    conf = h.path("relay.conf")
    rl.write(conf, relay_conf(h, srv.port))
    r = rl.start_relay(h, conf)
    name_a = "kms-a.pool.example.test:%d" % a.port
    name_b = "kms-b.pool.example.test:%d" % b.port

    # --- the first host comes from DNS ---------------------------------------
    rl.wait_log(r.proc, r"event=host_added host=%s addr=127.0.0.1:%d weight=10 priority=0 "
                r"admin=ready source=dns" % (re.escape(name_a), a.port), 5)
    rl.wait_host_state(r, name_a, "UP")
    rc, doc, out = rl.loadgen(h, r.target(), 20, c=4, seed=11, name="lg0")
    rl.check_all_ok(rc, doc, out, 20, "kms-a only")
    check(set(served_by(doc, emap)) == {"kms-a"}, "served by %s" % served_by(doc, emap))

    # --- adding an SRV record brings kms-b in, after its checks ---------------
    off = rl.log_size(r.proc)
    t_add = time.time()
    srv.add(srv_line(b.port, "kms-b.pool.example.test."),
            srv_line(r.port, "relay2.pool.example.test."),   # our own listener
            srv_line(4242, "relay1.example.test."))          # our own name (dns.self)
    m_add = rl.wait_log(r.proc, r"[^\n]*event=host_added host=%s [^\n]*source=dns"
                        % re.escape(name_b), 8, start=off)
    m_up = rl.wait_log(r.proc, r"[^\n]*event=host_state host=%s from=UNKNOWN to=UP[^\n]*"
                       % re.escape(name_b), 8, start=off)
    t_added, t_up = log_ts(m_add.group(0)), log_ts(m_up.group(0))
    print("  kms-b added %.2f s after its record (TTL 2 s, interval 30 s), UP %.2f s later"
          % (t_added - t_add, t_up - t_added))
    check(t_added - t_add < 4.5, "not re-resolved within the TTL (%.2f s)" % (t_added - t_add))
    check(t_up >= t_added, "UP before added?")
    check(not re.search(r"event=host_added host=relay[12]", r.log()),
          "our own listener or name was added as a backend")
    rc, doc1, out = rl.loadgen(h, r.target(), 200, c=8, seed=12, name="lg1")
    rl.check_all_ok(rc, doc1, out, 200, "a and b")
    sp = served_by(doc1, emap)
    print("  200 new clients after kms-b came in: %s" % sp)
    check(sp.get("kms-b", 0) > 0 and sp.get("kms-a", 0) > 0, "kms-b takes no traffic: %s" % sp)
    on_b = [x for x in rl.activation_lines(r, off) if x.get("host") == name_b]
    check(on_b, "no activation line for kms-b")
    early = [x for x in on_b if log_ts("ts=%s" % x["ts"]) < t_up]
    check(not early, "kms-b served %d activations before it was UP" % len(early))

    # --- a reload keeps discovered hosts ----------------------------------------
    off = rl.log_size(r.proc)
    rl.reload(r, relay_conf(h, srv.port))
    time.sleep(0.5)
    check("event=host_removed" not in r.log()[off:], "a reload dropped discovered hosts")
    print("  SIGHUP: discovered hosts kept")

    # --- removing it drains, then removes -------------------------------------
    off = rl.log_size(r.proc)
    t_del = time.time()
    srv.delete("%s IN SRV 0 10 %d kms-b.pool.example.test." % (POOL, b.port))
    m = rl.wait_log(r.proc, r"[^\n]*event=discover_gone name=%s host=%s action=drain"
                    % (re.escape(POOL), re.escape(name_b)), 8, start=off)
    rl.wait_log(r.proc, r"event=host_admin host=%s from=ready to=drain" % re.escape(name_b), 2,
                start=off)
    print("  kms-b drained %.2f s after its record was deleted" % (log_ts(m.group(0)) - t_del))
    rc, doc2, out = rl.loadgen(h, r.target(), 100, c=8, seed=13, name="lg2")
    rl.check_all_ok(rc, doc2, out, 100, "new clients while kms-b drains")
    check(set(served_by(doc2, emap)) == {"kms-a"}, "new clients on a draining host: %s"
          % served_by(doc2, emap))
    rc, doc3, out = rl.loadgen(h, r.target(), 200, c=8, seed=12, name="lg3")
    rl.check_all_ok(rc, doc3, out, 200, "kms-b's own clients while it drains")
    before, after = rl.last_host(doc1, emap), rl.last_host(doc3, emap)
    moved = [c for c, hn in before.items() if hn == "kms-b" and after.get(c) != "kms-b"]
    check(not moved, "%d pinned clients left the draining host" % len(moved))
    rl.wait_log(r.proc, r"event=host_removed host=%s conns=\d+ source=dns" % re.escape(name_b),
                8, start=off)
    print("  kms-b removed after discover_linger (3 s)")
    check(h.stop(r.proc) == 0, "exit status")
    check("runtime error" not in r.log() and "Sanitizer" not in r.log(), "sanitizer output")


def t_dns_outage_keeps_pool(h):
    st = rl.start_stubs(h, ["kms-a"])
    a = st["kms-a"]
    srv = bindlib.start(h, records=[srv_line(a.port, "kms-a.pool.example.test."),
                                    "kms-a.pool 2 IN A 127.0.0.1"])
    conf = h.path("relay.conf")
    rl.write(conf, relay_conf(h, srv.port, linger="1s"))
    r = rl.start_relay(h, conf)
    name_a = "kms-a.pool.example.test:%d" % a.port
    rl.wait_host_state(r, name_a, "UP", timeout=6)
    off = rl.log_size(r.proc)
    srv.stop()
    rl.wait_log(r.proc, r"event=discover_error name=%s" % re.escape(POOL), 8, start=off)
    time.sleep(3)
    check("discover_gone" not in r.log()[off:] and "host_removed" not in r.log()[off:],
          "a DNS outage drained the pool")
    rc, doc, out = rl.loadgen(h, r.target(), 20, c=4, seed=21, name="lg")
    rl.check_all_ok(rc, doc, out, 20, "serving during the DNS outage")
    print("  DNS down: pool unchanged, 20/20 activations served")
    check(h.stop(r.proc) == 0, "exit status")
    check("runtime error" not in r.log() and "Sanitizer" not in r.log(), "sanitizer output")


if __name__ == "__main__":
    krtest.run_tests("dns_discovery", [t_discovery, t_dns_outage_keeps_pool])
