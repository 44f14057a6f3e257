#!/usr/bin/env python3
"""kmsrelayd acceptance 6: product-aware routing and threshold assist.

- A host that refuses one KMS counted id (0xC004F042): every activation of
  that product still succeeds, on another host; the host was really asked
  (its log has the refusals) and the refusal is remembered (it is not asked
  again for every client); it keeps serving other products.
- A fresh host below the clients' N policy: the clients pinned to it are
  answered through the established host (its ePID, a count >= N) while the
  fresh host sees them and its count grows with real CMIDs only; once it
  reached the threshold by itself its own answers are returned, and the pins
  never left it.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import krtest  # noqa: E402
import relaylib as rl  # noqa: E402
from krtest import check  # noqa: E402

REFUSED = "0xc004f042"


def t_refused_kms_id_goes_elsewhere(h):
    names = ["kms-a", "kms-b", "kms-c"]
    st = rl.start_stubs(h, names, extra={"kms-a": ["--refuse-kmsid", rl.OFFICE2016_KMS_ID]})
    emap = rl.epid_map(st)
    conf = h.path("relay.conf")
    rl.write(conf, rl.conf_text(h, list(st.values())))
    r = rl.start_relay(h, conf, wait_up=names)

    c = 8
    rc, doc, out = rl.loadgen(h, r.target(), 600, k=600, c=c, seed=61,
                              extra=["--products", "office2016"], name="office")
    rl.check_all_ok(rc, doc, out, 600, "Office 2016 clients with kms-a refusing its KMS id")
    sp = rl.spread(rl.last_host(doc, emap))
    check(sp.get("kms-a", 0) == 0, "kms-a answered %d Office 2016 clients" % sp.get("kms-a", 0))
    reqs = rl.stub_requests(st["kms-a"])
    refusals = [e for e in reqs if e.get("hresult", "").lower() == REFUSED]
    check(refusals, "kms-a never refused anything: the relay never asked it (test is void)")
    check(len(refusals) <= 2 * c, "kms-a was asked %d times for the refused KMS id: the "
          "refusal is not remembered" % len(refusals))
    rl.wait_log(r.proc, r"event=refusal host=kms-a kms_id=%s" % rl.OFFICE2016_KMS_ID)

    # Same clients again: still served, by one host each; kms-a still fine for Windows.
    rc, doc, out = rl.loadgen(h, r.target(), 600, k=600, c=c, seed=61,
                              extra=["--products", "office2016"], name="office2")
    rl.check_all_ok(rc, doc, out, 600, "Office 2016 clients again")
    check(rl.spread(rl.last_host(doc, emap)).get("kms-a", 0) == 0, "kms-a answered Office")
    rc, doc, out = rl.loadgen(h, r.target(), 300, k=300, c=c, seed=62,
                              extra=["--products", "win10"], name="win10")
    rl.check_all_ok(rc, doc, out, 300, "Windows 10 clients")
    check(rl.spread(rl.last_host(doc, emap)).get("kms-a", 0) >= 50,
          "kms-a must still serve Windows 10 clients: %s" % rl.spread(rl.last_host(doc, emap)))


def t_threshold_assist(h):
    est = rl.start_stub(h, "kms-est")
    fresh = rl.start_stub(h, "kms-fresh")
    st = {"kms-est": est, "kms-fresh": fresh}
    emap = rl.epid_map(st)
    conf = h.path("relay.conf")
    rl.write(conf, rl.conf_text(h, [est]))
    r = rl.start_relay(h, conf, wait_up=["kms-est"])
    win10 = ["--products", "win10"]  # N policy 25

    rc, doc, out = rl.loadgen(h, r.target(), 40, k=40, c=1, seed=63, extra=win10, name="est")
    rl.check_all_ok(rc, doc, out, 40, "40 clients on the established host")
    pop = {c["cmid"] for c in doc["clients"]}
    check(doc["clients"][-1]["last_count"] >= 25, "established host count %s < 25"
          % doc["clients"][-1]["last_count"])

    # The fresh host joins by reload; new clients follow, one at a time.
    rl.reload(r, rl.conf_text(h, [est, fresh]), r"event=reload result=ok hosts=2")
    rl.wait_host_state(r, "kms-fresh", "UP")
    rc, doc, out = rl.loadgen(h, r.target(), 100, k=100, c=1, seed=64, extra=win10, name="new")
    rl.check_all_ok(rc, doc, out, 100, "new clients with a fresh host")
    new_pop = {c["cmid"]: c for c in doc["clients"]}
    pop |= set(new_pop)

    freqs = rl.stub_requests(fresh)
    check(freqs, "the fresh host saw no request at all")
    seen = {}
    for e in freqs:
        check(e["cmid"] in new_pop, "the fresh host got a CMID no client sent: %s" % e["cmid"])
        seen.setdefault(e["cmid"], e)
    below = [c for c, e in seen.items() if e["count"] < 25]
    above = [c for c, e in seen.items() if e["count"] >= 25]
    print("  fresh host: %d clients pinned, %d answered below the policy"
          % (len(seen), len(below)))
    check(len(below) >= 20, "only %d clients met the fresh host below its threshold" % len(below))
    for c in below:
        got = new_pop[c]
        check(got["last_epid"] == est.epid and got["last_count"] >= 25,
              "client %s pinned to the fresh host (count %d there) got ePID %s count %s, want "
              "the established host's answer" % (c, seen[c]["count"], emap.get(
                  got["last_epid"], got["last_epid"]), got["last_count"]))
    for c in above:
        check(new_pop[c]["last_epid"] == fresh.epid,
              "client %s: the fresh host answered count %d >= 25 itself, but the client got "
              "%s" % (c, seen[c]["count"], emap.get(new_pop[c]["last_epid"])))
    counts = [e["count"] for e in freqs if e["app_id"] == rl.WIN_APP]
    check(max(counts) == len(seen), "fresh host count %d != its %d distinct real CMIDs"
          % (max(counts), len(seen)))
    for e in rl.stub_requests(est):
        check(e["cmid"] in pop, "the established host got an invented CMID %s" % e["cmid"])

    # The pins stayed on the fresh host: the same clients go there again, and
    # now that it counts >= 25 its own answers come back.
    rc, doc, out = rl.loadgen(h, r.target(), 100, k=100, c=1, seed=64, extra=win10,
                              name="again")
    rl.check_all_ok(rc, doc, out, 100, "the same clients again")
    again = {c["cmid"]: c for c in doc["clients"]}
    freqs2 = rl.stub_requests(fresh)
    per = {}
    for e in freqs2:
        per[e["cmid"]] = per.get(e["cmid"], 0) + 1
    for c in seen:
        check(per.get(c, 0) >= 2, "client %s left the fresh host (pin moved)" % c)
        check(again[c]["last_epid"] == fresh.epid and again[c]["last_count"] >= 25,
              "client %s on the fresh host (now above the threshold) got %s count %s"
              % (c, emap.get(again[c]["last_epid"]), again[c]["last_count"]))
    check(set(per) == set(seen), "the fresh host saw other CMIDs on the second run")
    counts = [e["count"] for e in freqs2 if e["app_id"] == rl.WIN_APP]
    check(max(counts) == len(seen), "fresh host count %d != %d real CMIDs"
          % (max(counts), len(seen)))
    check("assist=kms-est" in r.log(), "no activation line logs the assist")


if __name__ == "__main__":
    krtest.run_tests("relay_smart", [t_refused_kms_id_goes_elsewhere, t_threshold_assist])
