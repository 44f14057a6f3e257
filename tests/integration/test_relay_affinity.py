#!/usr/bin/env python3
"""kmsrelayd acceptance 2 (affinity and spread) and 3 (pins persist).

2. 10,000 random CMIDs, each activated four times on new connections, are
   answered by one host every time, and spread evenly (or 1:2:3 by weight)
   over three hosts.
3. Pins survive SIGTERM and, when older than the commit interval, SIGKILL.
   Each restart adds a host, so pure rendezvous hashing would move about a
   quarter (then a fifth) of the clients; a fresh relay without pins (the
   "oracle") shows how many would have moved, which proves the check bites.

Threshold assist is off here: these tests name the routed host by the ePID
of the answer, and an assisted answer deliberately carries another host's
ePID (test_relay_smart.py covers the assist).
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import krtest  # noqa: E402
import relaylib as rl  # noqa: E402
from krtest import check  # noqa: E402


def within(got, want, rel):
    return abs(got - want) <= rel * want


def t_affinity_four_contacts_even_spread(h):
    st = rl.start_stubs(h, ["kms-a", "kms-b", "kms-c"])
    conf = h.path("relay.conf")
    rl.write(conf, rl.conf_text(h, list(st.values()), assist=False))
    r = rl.start_relay(h, conf, wait_up=list(st))
    rc, doc, out = rl.loadgen(h, r.target(), 40000, k=10000, c=16, seed=21, timeout=200)
    rl.check_all_ok(rc, doc, out, 40000, "40,000 activations of 10,000 clients")
    emap = rl.epid_map(st)
    hosts = rl.client_hosts(doc, emap)
    check(len(hosts) == 10000, "%d clients in the loadgen report, want 10000" % len(hosts))
    acts = [c["activations"] for c in doc["clients"]]
    check(min(acts) == 4 and max(acts) == 4, "each client must be activated 4 times: %d..%d"
          % (min(acts), max(acts)))
    split = [(c, hs) for c, hs in hosts.items() if len(hs) != 1]
    check(not split, "%d of 10000 clients were answered by more than one host, e.g. %s"
          % (len(split), split[:3]))
    sp = rl.spread({c: hs[0] for c, hs in hosts.items()})
    print("  spread over equal weights: %s" % sp)
    for hn in st:
        check(within(sp.get(hn, 0), 10000 / 3, 0.05),
              "host %s has %d clients, want 3333 +-5%%: %s" % (hn, sp.get(hn, 0), sp))


def t_weighted_spread(h):
    st = rl.start_stubs(h, ["kms-a", "kms-b", "kms-c"])
    weights = {"kms-a": 1, "kms-b": 2, "kms-c": 3}
    conf = h.path("relay.conf")
    rl.write(conf, rl.conf_text(h, [rl.host_entry(s.name, s.port, weight=weights[s.name])
                                    for s in st.values()], assist=False))
    r = rl.start_relay(h, conf, wait_up=list(st))
    rc, doc, out = rl.loadgen(h, r.target(), 10000, k=10000, c=16, seed=22)
    rl.check_all_ok(rc, doc, out, 10000, "10,000 clients, weights 1:2:3")
    sp = rl.spread(rl.last_host(doc, rl.epid_map(st)))
    print("  spread over weights 1:2:3: %s" % sp)
    for hn, w in weights.items():
        check(within(sp.get(hn, 0), 10000 * w / 6, 0.05),
              "host %s (weight %d) has %d clients, want %d +-5%%: %s"
              % (hn, w, sp.get(hn, 0), 10000 * w / 6, sp))


def oracle(h, stubs, seeds, name):
    """Where a relay WITHOUT pins sends these populations: a fresh relay with
    an empty state dir. Returns cmid -> host."""
    conf = h.path(name + ".conf")
    rl.write(conf, rl.conf_text(h, stubs, state_dir=h.path(name + "-state"), assist=False))
    r = rl.start_relay(h, conf, name=name, wait_up=[s.name for s in stubs])
    out = {}
    for seed, n in seeds:
        rc, doc, txt = rl.loadgen(h, r.target(), n, k=n, c=16, seed=seed, name=name + "-lg")
        rl.check_all_ok(rc, doc, txt, n, "oracle run")
        out.update(rl.last_host(doc, rl.epid_map(stubs)))
    check(h.stop(r.proc) == 0, "oracle relay did not stop cleanly")
    return out


def same_hosts(h, r, emap, seed, n, before, what):
    """Reruns population `seed` (n clients, one activation each); every client
    must be answered by the host in `before`."""
    rc, doc, out = rl.loadgen(h, r.target(), n, k=n, c=16, seed=seed, name="rerun")
    rl.check_all_ok(rc, doc, out, n, what)
    now = rl.last_host(doc, emap)
    moved = [(c, before[c], now[c]) for c in before if now.get(c) != before[c]]
    check(not moved, "%s: %d of %d pins lost, e.g. (cmid, was, now) %s"
          % (what, len(moved), n, moved[:3]))


def t_pins_survive_restarts(h):
    names = ["kms-a", "kms-b", "kms-c", "kms-d", "kms-e"]
    st = rl.start_stubs(h, names)
    emap = rl.epid_map(st)
    conf = h.path("relay.conf")

    def conf_for(k):
        return rl.conf_text(h, [st[n] for n in names[:k]], assist=False)

    # Run 1: three hosts, population A pinned.
    rl.write(conf, conf_for(3))
    r = rl.start_relay(h, conf, wait_up=names[:3])
    rc, doc, out = rl.loadgen(h, r.target(), 3000, k=3000, c=16, seed=31, name="A1")
    rl.check_all_ok(rc, doc, out, 3000, "population A, first contact")
    pin_a = rl.last_host(doc, emap)

    # SIGTERM, restart with a fourth host: every pin of A is kept.
    check(h.stop(r.proc, signal.SIGTERM) == 0, "SIGTERM exit status: " + r.log()[-2000:])
    rl.write(conf, conf_for(4))
    r = rl.start_relay(h, conf, name="relayd2", wait_up=names[:4])
    same_hosts(h, r, emap, 31, 3000, pin_a, "after SIGTERM + restart with a 4th host")
    # New clients do reach the new host (so it really is in the ranking).
    rc, doc, out = rl.loadgen(h, r.target(), 2000, k=2000, c=16, seed=32, name="N1")
    rl.check_all_ok(rc, doc, out, 2000, "new clients after the restart")
    sp = rl.spread(rl.last_host(doc, emap))
    check(sp.get("kms-d", 0) >= 0.15 * 2000, "the added kms-d got %s of 2000 new clients"
          % sp.get("kms-d", 0))

    # Population B pinned with four hosts; wait 5x the commit interval, SIGKILL.
    rc, doc, out = rl.loadgen(h, r.target(), 2000, k=2000, c=16, seed=33, name="B1")
    rl.check_all_ok(rc, doc, out, 2000, "population B, first contact")
    pin_b = rl.last_host(doc, emap)
    time.sleep(5 * rl.COMMIT_INTERVAL_S)
    h.stop(r.proc, signal.SIGKILL)
    rl.write(conf, conf_for(5))
    r = rl.start_relay(h, conf, name="relayd3", wait_up=names)
    same_hosts(h, r, emap, 33, 2000, pin_b, "B after SIGKILL + restart with a 5th host")
    same_hosts(h, r, emap, 31, 3000, pin_a, "A after SIGKILL + restart with a 5th host")
    rc, doc, out = rl.loadgen(h, r.target(), 2000, k=2000, c=16, seed=34, name="N2")
    rl.check_all_ok(rc, doc, out, 2000, "new clients after the SIGKILL restart")
    sp = rl.spread(rl.last_host(doc, emap))
    check(sp.get("kms-e", 0) >= 0.12 * 2000, "the added kms-e got %s of 2000 new clients"
          % sp.get("kms-e", 0))
    check(h.stop(r.proc, signal.SIGTERM) == 0, "SIGTERM exit status: " + r.log()[-2000:])

    # Sensitivity: without pins, a real share of A and B would have moved.
    o4 = oracle(h, [st[n] for n in names[:4]], [(31, 3000)], "oracle4")
    moved4 = sum(1 for c, hn in pin_a.items() if o4[c] != hn)
    o5 = oracle(h, [st[n] for n in names], [(31, 3000), (33, 2000)], "oracle5")
    moved5 = sum(1 for c, hn in list(pin_a.items()) + list(pin_b.items()) if o5[c] != hn)
    print("  without pins %d of 3000 (4 hosts) and %d of 5000 (5 hosts) would have moved"
          % (moved4, moved5))
    check(moved4 >= 0.15 * 3000 and moved5 >= 0.12 * 5000,
          "the restarts must change the pure-HRW answer for many clients: %d, %d"
          % (moved4, moved5))


if __name__ == "__main__":
    krtest.run_tests("relay_affinity", [t_affinity_four_contacts_even_spread, t_weighted_spread,
                                        t_pins_survive_restarts])
