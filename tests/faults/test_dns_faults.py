#!/usr/bin/env python3
"""Fault injection on kmsrelayd's DNS publishing (issue 6), against a real
BIND 9 (tests/integration/bindlib.py).

  dns_trouble  while kmsrelayd publishes its _vlmcs SRV record, the DNS
               server goes down, then answers with a TSIG error (the relay's
               key is wrong), then refuses (a key the zone does not allow),
               then everything is right again. In every phase: activations
               through kmsrelayd all succeed (DNS trouble never touches a
               client), the daemon logs one clear, specific error and backs
               off (no update storm), and it stays up. When DNS is back, the
               record is published again (checked with dig).
  dns_lookup_failure  (issue 11 item 10) kmsrelayd takes its hosts from DNS
               discovery through a real resolver (a recursive named that
               forwards the zone to BIND), audits the zone every second
               (dead_after 2 s), and a sanctioned record's target lies under
               a delegation whose servers are dead: SERVFAIL. Then BIND goes
               down (the resolver answers SERVFAIL for everything), then the
               resolver too (timeouts). In every phase a renewing client
               population (kms-loadgen -k 40, the same seed each time) keeps
               activating with 0 failures, the discovered hosts stay, the
               daemon's audit calls the record UNKNOWN (never STALE_DEAD, for
               many times dead_after), and `kmsrelayctl audit --history --fix`
               deletes nothing. At the end the record is still in DNS.
"""
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl  # noqa: E402
from faultlib import check, krtest, rl  # noqa: E402
import bindlib  # noqa: E402  (tests/integration, on the path through faultlib)

ZONE = "example.test"
TARGET = "relay1.example.test."
TIMERS = {"rise": "300ms", "hold_down": "2s", "min_state": "0s", "reconcile": "1s",
          "backoff_min": "500ms", "backoff_max": "2s", "withdraw_wait": "2s", "timeout": "1s",
          "rate": 60, "flap_limit": 100}


def dns_text(h, hosts, srv, key):
    text = fl.conf(h, hosts, assist=False)
    t = " ".join("%s = %s;" % (k, fl.conf_value(v)) for k, v in TIMERS.items())
    return text + ('dns: { %s zones = ( { name = "%s"; servers = [ "127.0.0.1:%d" ]; '
                   'key = "%s"; target = "%s"; priority = 0; weight = 100; ttl = 300; } ); };\n'
                   % (t, ZONE, srv.port, key, TARGET))


def ours(srv, r):
    return [x for x in srv.srv() if x["type"] == "SRV" and x["target"] == TARGET and
            x["port"] == r.port]


def phase_load(h, r, log, seed, what):
    """A loadgen run during the DNS trouble: every activation succeeds."""
    m = log.mark()
    rc, doc, out = rl.loadgen(h, r.target(), 300, c=8, seed=seed, name="lg%d" % seed)
    fl.check_lost_none(rc, doc, out, 300, log, m, "300 activations, " + what)
    check(r.proc.poll() is None, "kmsrelayd died: " + what)


def no_storm(log, since, seconds, what, limit):
    n = len(log.events("dns_error", since))
    check(n <= limit, "%s: %d DNS errors logged in %.1f s, want at most %d (backoff)"
          % (what, n, seconds, limit))
    return n


def t_dns_trouble(h):
    st = rl.start_stubs(h, ["kms-a", "kms-b"])
    hosts = list(st.values())
    srv = bindlib.start(h)
    conf = h.path("relay.conf")
    rl.write(conf, dns_text(h, hosts, srv, srv.key))
    r = rl.start_relay(h, conf, wait_up=["kms-a", "kms-b"])
    log = fl.RelayLog(r.proc)
    rl.wait_for(lambda: ours(srv, r), 10, "our SRV record published")

    # 1. The DNS server is down.
    m = log.mark()
    t0 = time.time()
    srv.stop()
    e = log.wait("dns_error", 15, "a DNS error while BIND is down", since=m, proc=r.proc,
                 status="network")[0]
    phase_load(h, r, log, 1, "BIND down")
    time.sleep(max(0.0, t0 + 5 - time.time()))
    n = no_storm(log, m, time.time() - t0, "BIND down", 10)
    print("  down: %d errors in %.1f s, e.g. %s" % (n, time.time() - t0, fl.print_line(e)[:220]))
    m = log.mark()
    srv.restart()
    log.wait("dns_recovered", 15, "recovery after BIND restarted", since=m, proc=r.proc)
    rl.wait_for(lambda: ours(srv, r), 10, "our SRV record after BIND came back")

    # 2. Wrong key (TSIG BADSIG), and our record deleted by someone meanwhile.
    m = log.mark()
    rl.reload(r, dns_text(h, hosts, srv, srv.wrong_key))
    srv.delete("_vlmcs._tcp.%s. IN SRV 0 100 %d %s" % (ZONE, r.port, TARGET))
    t0 = time.time()
    e = log.wait("dns_error", 15, "a TSIG error with the wrong key", since=m, proc=r.proc,
                 error=re.compile(r"signature|BADSIG|BADKEY|TSIG"))[0]
    check("key problem" in e.get("error", ""),
          "the TSIG error does not point at the key: " + fl.print_line(e))
    phase_load(h, r, log, 2, "wrong TSIG key")
    time.sleep(max(0.0, t0 + 4 - time.time()))
    n = no_storm(log, m, time.time() - t0, "wrong key", 6)
    check(not ours(srv, r), "published with a wrong key?")
    print("  wrong key: %d errors, e.g. %s" % (n, fl.print_line(e)[:240]))

    # 3. A key the zone does not allow: REFUSED.
    m = log.mark()
    rl.reload(r, dns_text(h, hosts, srv, srv.other_key))
    t0 = time.time()
    e = log.wait("dns_error", 15, "REFUSED with a key the zone does not allow", since=m,
                 proc=r.proc, status="refused")[0]
    check(re.search(r"REFUSED", e.get("error", "")), "unclear refusal: " + fl.print_line(e))
    phase_load(h, r, log, 3, "updates refused")
    time.sleep(max(0.0, t0 + 4 - time.time()))
    n = no_storm(log, m, time.time() - t0, "refused", 6)
    check(not ours(srv, r), "published although refused?")
    print("  refused: %d errors, e.g. %s" % (n, fl.print_line(e)[:240]))

    # 4. Everything right again: published again.
    m = log.mark()
    rl.reload(r, dns_text(h, hosts, srv, srv.key))
    rl.wait_for(lambda: ours(srv, r), 15, "our SRV record published again")
    check(log.events("dns_published", m) or log.events("dns_recovered", m),
          "published again without a log line saying so")
    phase_load(h, r, log, 4, "DNS fine again")
    print("  back: %s" % ours(srv, r)[0])
    fl.stop_relay_clean(h, r)


POOL = "_vlmcs._tcp.pool.%s." % ZONE
DELEGATED = "kms-s.deleg.%s." % ZONE  # sanctioned; its zone's servers are dead


def renew(h, r, log, seed_round, what):
    """The same 40 clients renew (200 activations): every one succeeds."""
    m = log.mark()
    rc, doc, out = rl.loadgen(h, r.target(), 200, k=40, c=8, seed=7, name="lg%d" % seed_round)
    fl.check_lost_none(rc, doc, out, 200, log, m, "200 renewals, " + what)
    check(r.proc.poll() is None, "kmsrelayd died: " + what)


def audit_class(h, target):
    """The daemon's last audit verdict on `target` (None before the first)."""
    rep = fl.ctl(h, "dns").get("audit") or {}
    for f in rep.get("findings", []):
        if f["record"] and f["record"]["target"] == target:
            return f
    return None


def t_dns_lookup_failure(h):
    st = rl.start_stubs(h, ["kms-a", "kms-b"])
    a, b = st["kms-a"], st["kms-b"]
    srv = bindlib.start(h, records=[
        "%s 2 IN SRV 0 10 %d kms-a.pool.%s." % (POOL, a.port, ZONE),
        "%s 2 IN SRV 0 10 %d kms-b.pool.%s." % (POOL, b.port, ZONE),
        "kms-a.pool 2 IN A 127.0.0.1", "kms-b.pool 2 IN A 127.0.0.1",
        "deleg 3600 IN NS ns.deleg", "ns.deleg 3600 IN A 127.0.0.254",
        "_vlmcs._tcp 3600 IN SRV 0 0 %d %s" % (a.port, DELEGATED)])
    res = bindlib.start_resolver(h, srv)
    sanc = h.path("sanctioned.txt")
    rl.write(sanc, DELEGATED + "\n")
    text = fl.conf(h, [], assist=False)
    text = text.replace("backend: { ", 'backend: { discover = [ "%s" ]; discover_interval = "1s"; '
                        'discover_linger = "1h"; ' % POOL, 1)
    text += ('dns: { resolvers = [ "127.0.0.1:%d" ]; timeout = "1s"; zones = ( { name = "%s"; '
             'servers = [ "127.0.0.1:%d" ]; key = "%s"; target = "%s"; } ); '
             'audit_interval = "1s"; dead_after = "2s"; sanctioned_file = "%s"; };\n'
             % (res.port, ZONE, srv.port, srv.key, TARGET, sanc))
    conf = h.path("relay.conf")
    rl.write(conf, text)
    found = {"kms-%s.pool.%s:%d" % (n, ZONE, x.port) for n, x in (("a", a), ("b", b))}
    r = rl.start_relay(h, conf, wait_up=sorted(found))
    log = fl.RelayLog(r.proc)
    args = [krtest.binpath("kmsrelayctl"), "--socket", h.path("ctl.sock"), "audit", "--json",
            "--server", "127.0.0.1:%d" % srv.port, "--resolver", "127.0.0.1:%d" % res.port,
            "--sanctioned", DELEGATED, "--timeout", "1s", "--history", "--fix", "--key", srv.key,
            ZONE]

    # 1. The sanctioned target's zone answers SERVFAIL (its servers are dead).
    renew(h, r, log, 1, "the target's zone answers SERVFAIL")
    f = rl.wait_for(lambda: audit_class(h, DELEGATED), 20, "the daemon's audit of the record",
                    poll=0.5)
    t0 = time.time()
    time.sleep(3)  # more than dead_after: several audit runs see the failure
    f = audit_class(h, DELEGATED)
    check(f["class"] == "UNKNOWN" and "SERVFAIL" in f["reason"], "daemon: %s" % f)
    rc, out, err = h.run(args, timeout=120)
    check(rc in (1, 2), "audit --history --fix exited %d: %s" % (rc, err))
    mine = [x for x in json.loads(out)["findings"] if x["record"] and
            x["record"]["target"] == DELEGATED][0]
    check(mine["class"] == "UNKNOWN" and "fix" not in mine, "kmsrelayctl: %s" % mine)
    print("  SERVFAIL: daemon and kmsrelayctl say UNKNOWN after %.1f s: %s"
          % (time.time() - t0, f["reason"][:160]))

    # 2. BIND down: the resolver answers SERVFAIL for everything (discovery too).
    srv.stop()
    time.sleep(3)  # the pool's TTL (2 s) runs out: discovery now fails
    renew(h, r, log, 2, "BIND down, the resolver answers SERVFAIL")
    hosts = {x["name"] for x in fl.ctl(h, "hosts")["hosts"]}
    check(hosts == found, "discovered hosts with DNS failing: %s, want %s" % (hosts, found))

    # 3. The resolver down too: every lookup times out or is refused.
    res.stop()
    time.sleep(2)
    renew(h, r, log, 3, "resolver down")
    hosts = {x["name"] for x in fl.ctl(h, "hosts")["hosts"]}
    check(hosts == found, "discovered hosts with the resolver down: %s" % hosts)

    # 4. Back: the record was never deleted.
    srv.restart()
    res.restart()
    check(DELEGATED in [x["target"] for x in srv.srv()], "the sanctioned record was deleted")
    renew(h, r, log, 4, "DNS back")
    fl.stop_relay_clean(h, r)


if __name__ == "__main__":
    krtest.run_tests("faults_dns", [t_dns_trouble, t_dns_lookup_failure])
