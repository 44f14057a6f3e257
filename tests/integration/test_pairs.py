#!/usr/bin/env python3
"""Issue 10: the client is the pair (CMID, application id).

1. t_population_counts: a seeded population in which 40% of the machines
   activate Windows and Office with one CMID (kms-loadgen --dual-office),
   plus a cloned image, a machine seen under two spellings of one DNS name
   (NOT a clone), a CMID chain (--prev-cmid), a skewed clock, and a host
   (kms-c, weight 1 against 4) below the Windows threshold. For every host
   and application the count the stub host reports equals the pairs pinned
   to it, and the report flags exactly the injected problems.
2. t_office_refused: kms-c lacks the Office key (--refuse-kmsid). 1,000
   Windows+Office machines activate both applications three times: the
   Windows pins never move, every Office pair lands on and stays on a host
   that serves Office, on its machine's Windows host when that one can.
3. t_fixture_store: the store written by the previous release
   (tests/fixtures/store-v1, 300 clients on kms-a/b/c, operator weight
   kms-a=2) opens with every pin kept and routes every client as before.
4. t_offline_report_agrees: `kmsrelayd --report` and `kmsrelayctl report`
   agree field for field after host drain, host maint and host weight.
"""
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import krtest  # noqa: E402
import relaylib as rl  # noqa: E402
from krtest import check  # noqa: E402

NAMES = ["kms-a", "kms-b", "kms-c"]
FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "store-v1")
THRESHOLD = {"Windows": 25, "Office 2013+": 5, "Office 2010": 5}


def control(h):
    return 'control: { socket = "%s"; };\n' % h.path("control.sock")


def conf(h, hosts, assist=False, pin_idle=None):
    text = rl.conf_text(h, hosts, assist=assist, extra=control(h))
    if pin_idle:
        old = "routing: { threshold_assist = %s; };" % ("true" if assist else "false")
        check(old in text, "conf_text changed its routing line")
        text = text.replace(old, old[:-3] + ' pin_idle = "%s"; };' % pin_idle)
    return text


def ctl(h, *args, expect=(0,)):
    argv = [krtest.binpath("kmsrelayctl"), "--socket", h.path("control.sock")] + list(args)
    rc, out, err = h.run(argv, timeout=120)
    check(rc in expect, "kmsrelayctl %s: rc %d\n%s\n%s" % (" ".join(args), rc, out[-2000:],
                                                          err[-2000:]))
    return out


def ctl_json(h, *args, expect=(0,)):
    return json.loads(ctl(h, *(list(args) + ["--json"]), expect=expect))


def clients(h):
    return ctl_json(h, "clients", "--limit", "10000000")["clients"]


def wait_committed(h, n):
    rl.wait_for(lambda: ctl_json(h, "status")["pins"] >= n and
                ctl_json(h, "status")["store"]["pending"] == 0, 20, "%d committed pins" % n)


def start(h, hosts, pin_idle=None, stubs=None, assist=False):
    path = h.path("relay.conf")
    rl.write(path, conf(h, hosts, assist=assist, pin_idle=pin_idle))
    r = rl.start_relay(h, path, wait_up=NAMES)
    rl.wait_log(r.proc, r"event=control_listen socket=")
    return r, path


def offline_report(conf_path):
    p = subprocess.run([krtest.binpath("kmsrelayd"), "-c", conf_path, "--report=json"],
                       capture_output=True, text=True, timeout=60)
    check(p.returncode in (0, 1), "kmsrelayd --report: rc %d: %s" % (p.returncode, p.stderr))
    return json.loads(p.stdout)


def stub_counts(stub):
    """app name -> the count the stub host last reported (its counts only
    grow, so the highest answered)."""
    out = {}
    for e in rl.stub_requests(stub):
        if e.get("count") is not None and e.get("app"):
            out[e["app"]] = max(out.get(e["app"], 0), e["count"])
    return out


def pinned(cl):
    """(host, application) -> pairs pinned there."""
    out = {}
    for c in cl:
        k = (c["host"], c["application"])
        out[k] = out.get(k, 0) + 1
    return out


def lg(h, r, n, k, seed, extra, name):
    rc, doc, out = rl.loadgen(h, r.target(), n, k=k, seed=seed, c=8, extra=extra, name=name)
    rl.check_all_ok(rc, doc, out, n, name)
    return doc


# ---- 1 ------------------------------------------------------------------------

def t_population_counts(h):
    st = rl.start_stubs(h, NAMES)
    hosts = [rl.host_entry("kms-a", st["kms-a"].port, weight=4),
             rl.host_entry("kms-b", st["kms-b"].port, weight=4),
             rl.host_entry("kms-c", st["kms-c"].port, weight=1)]
    r, _ = start(h, hosts)
    # 150 machines, 60 of them (40%) Windows + Office with one CMID, and one
    # clone of machine 0 under its own name: 150 + 60 + 1 clients.
    main = lg(h, r, 2 * 211, 211, 1010, ["--products", "win10,office2016", "--dual-office", "60",
                                        "--clone-clients", "1"], "population")
    cm = {}
    for c in main["clients"]:
        cm.setdefault(c["cmid"], set()).add((c["app"], c["workstation"]))
    check(sum(1 for v in cm.values() if len({a for a, _ in v}) == 2) == 60,
          "loadgen: expected 60 machines with two applications")
    clone = [k for k, v in cm.items() if len({w for _, w in v}) > 1]
    check(len(clone) == 1, "loadgen: one cloned CMID expected, got %r" % clone)
    # one machine, two spellings of its DNS name: not a clone
    same = "5a3e0000-0000-4000-8000-00000000ca5e"
    lg(h, r, 1, 1, 1, ["--products", "win10", "--cmid", same, "--ws-prefix", "Case-"], "case1")
    lg(h, r, 1, 1, 1, ["--products", "win10", "--cmid", same, "--ws-prefix", "cASE-"], "case2")
    # a CMID chain: old, then the new one naming it
    old, new = "c0de0000-0000-4000-8000-000000000001", "c0de0000-0000-4000-8000-000000000002"
    lg(h, r, 1, 1, 1, ["--products", "win10", "--cmid", old, "--ws-prefix", "reimg-"], "old")
    lg(h, r, 1, 1, 1, ["--products", "win10", "--cmid", new, "--prev-cmid", old,
                       "--ws-prefix", "reimg-"], "new")
    # a skewed clock, +5 h
    sk = lg(h, r, 1, 1, 77, ["--products", "win10", "--skew-clients", "1", "--skew-seconds",
                             "18000", "--ws-prefix", "skew-"], "skew")
    n_pairs = 150 + 60 + 1 + 2 + 1
    wait_committed(h, n_pairs)

    cl = clients(h)
    check(len(cl) == n_pairs, "%d pairs pinned, expected %d" % (len(cl), n_pairs))
    pins = pinned(cl)
    counts = {n: stub_counts(st[n]) for n in NAMES}
    for n in NAMES:
        for app in ("Windows", "Office 2013+"):
            check(counts[n].get(app, 0) == pins.get((n, app), 0),
                  "%s %s: the host counts %d, %d pairs pinned there"
                  % (n, app, counts[n].get(app, 0), pins.get((n, app), 0)))
    print("  host counts = pinned pairs: %s" % sorted(pins.items()))

    rep = ctl_json(h, "report", expect=(0, 1))
    check(rep["schema"] == "kmsrelay.report/2" and rep["clients"] == n_pairs and
          rep["machines"] == n_pairs - 60, "report totals %r %r %r"
          % (rep["schema"], rep["clients"], rep.get("machines")))
    for a in rep["applications"]:
        for cell in a["hosts"]:
            k = (cell["host"], a["application"])
            check(cell["clients"] == pins.get(k, 0) and
                  cell["reported_count"] == counts[cell["host"]].get(a["application"]),
                  "report cell %r vs pinned %d" % (cell, pins.get(k, 0)))
    f, t = rep["findings"], rep["totals"]
    want_below = {k for k, v in pins.items() if v < THRESHOLD[k[1]]}
    got_below = {(b["host"], b["application"]) for b in f["below_threshold"]}
    check(("kms-c", "Windows") in want_below, "kms-c should be below the Windows threshold: %r"
          % pins)
    check(got_below == want_below, "below threshold %r, expected %r" % (got_below, want_below))
    for b in f["below_threshold"]:
        names = {c["workstation"] for c in b["clients"]}
        check(b["clients_total"] == pins[(b["host"], b["application"])] and names,
              "below-threshold clients %r" % b)
        w = [x for x in rep["warnings"] if x.startswith("host %s " % b["host"]) and
             b["application"] in x]
        check(w and all(n in w[0] for n in sorted(names)[:3]), "warning names %r" % w)
    check([c["cmid"] for c in f["cloned_images"]] == clone, "cloned %r" % f["cloned_images"])
    check(t["clock_skew"] == 1 and f["clock_skew"][0]["cmid"] == sk["clients"][0]["cmid"] and
          abs(f["clock_skew"][0]["skew_seconds"] - 18000) <= 30 and
          f["clock_skew"][0]["workstation"] == sk["clients"][0]["workstation"],
          "skew %r" % f["clock_skew"])
    check(t["cmid_changed"] == 1 and f["cmid_changed"][0]["chain"] == [old, new],
          "chain %r" % f["cmid_changed"])
    check(t["stale"] == 0, "stale %r" % f["stale"])
    check(len(rep["warnings"]) == len(want_below) + 3, "warnings %r" % rep["warnings"])
    table = ctl(h, "report", expect=(0, 1))
    check(all(len(ln) <= 80 for ln in table.splitlines()), "table wider than 80:\n" + table)
    check("Licence states:" in table and "oob_grace=" in table, "licence states:\n" + table)


# ---- 2 ------------------------------------------------------------------------

def t_office_refused(h):
    st = rl.start_stubs(h, NAMES, extra={"kms-c": ["--refuse-kmsid", rl.OFFICE2016_KMS_ID]})
    emap = rl.epid_map(st)
    r, _ = start(h, list(st.values()))
    k = 2000
    doc = lg(h, r, 3 * k, k, 2020, ["--products", "win10,office2016", "--dual-office", "1000"],
             "dual")
    win, off = {}, {}
    for c in doc["clients"]:
        # "epids": the distinct ePIDs that answered the client, first first
        hs = [emap[e] for e in c["epids"]]
        check(c["ok"] == 3, "client %s: %d of 3 activations ok" % (c["cmid"], c["ok"]))
        (win if c["app"] == "Windows" else off)[c["cmid"]] = hs
    check(len(win) == 1000 and len(off) == 1000, "%d Windows, %d Office" % (len(win), len(off)))
    moved = [c for c, hs in win.items() if len(set(hs)) != 1]
    check(not moved, "%d Windows clients changed host, e.g. %r" % (len(moved), moved[:3]))
    bad = [c for c, hs in off.items() if len(set(hs)) != 1 or hs[0] == "kms-c"]
    check(not bad, "%d Office pairs not staying on an Office host: %r"
          % (len(bad), [(c, off[c]) for c in bad[:3]]))
    together = sum(1 for c in off if win[c][0] != "kms-c" and off[c][0] == win[c][0])
    apart = sum(1 for c in off if win[c][0] != "kms-c" and off[c][0] != win[c][0])
    check(apart == 0, "%d machines have Office away from a Windows host that serves it" % apart)
    on_c = sum(1 for c in win if win[c][0] == "kms-c")
    check(on_c > 0, "no Windows client on kms-c: the refusal path was not exercised")
    # the relay's own record: no Windows pin ever moved, every pair stored
    lines = rl.activation_lines(r)
    wmoves = [a for a in lines if a.get("app") == "Windows" and a.get("pin") == "moved"]
    check(not wmoves, "Windows pins moved: %r" % wmoves[:3])
    wait_committed(h, 2000)
    cl = clients(h)
    office = [c for c in cl if c["application"] == "Office 2013+"]
    check(len(cl) == 2000 and len(office) == 1000 and
          all(c["host"] != "kms-c" and c["host"] == off[c["cmid"]][0] for c in office),
          "stored Office pins: %d of %d" % (len(office), len(cl)))
    show = ctl_json(h, "pin", "show", office[0]["cmid"])
    check(len(show["pins"]) == 2, "pin show lists both applications: %r" % show)
    print("  %d machines together, %d with Windows on kms-c and Office elsewhere"
          % (together, on_c))


# ---- 3 ------------------------------------------------------------------------

def t_fixture_store(h):
    fx = json.load(open(os.path.join(FIXTURE, "clients.json")))["clients"]
    meta = json.load(open(os.path.join(FIXTURE, "README.json")))
    check(len(fx) == 300, "fixture: %d clients" % len(fx))
    os.makedirs(h.path("state"), mode=0o700)
    shutil.copy(os.path.join(FIXTURE, "data.mdb"), h.path("state", "data.mdb"))
    os.chmod(h.path("state", "data.mdb"), 0o600)
    st = rl.start_stubs(h, NAMES)  # new ports: the pins name hosts, not addresses
    emap = rl.epid_map(st)
    # pin_idle: the fixture's pins were last seen when it was made
    r, _ = start(h, list(st.values()), pin_idle="3650d")
    cl = clients(h)
    before = {(c["cmid"], c["app_id"]): c["host"] for c in fx}
    after = {(c["cmid"], c["app_id"]): c["host"] for c in cl}
    check(after == before, "pins after migration differ: %d of %d kept"
          % (len(set(after.items()) & set(before.items())), len(before)))
    hs = {x["name"]: x for x in ctl_json(h, "hosts")["hosts"]}
    check(hs["kms-a"]["weight"] == meta["weights"]["kms-a"], "operator weight %r" % hs["kms-a"])
    # the same population (seed and size of the generator) activates again
    doc = lg(h, r, meta["clients"], meta["clients"], meta["seed"], [], "again")
    got = rl.last_host(doc, emap)
    host_of = {c["cmid"]: c["host"] for c in fx}
    diff = [c for c in got if got[c] != host_of.get(c)]
    check(len(got) == 300 and not diff, "%d clients routed elsewhere than before, e.g. %r"
          % (len(diff), diff[:3]))
    words = [a.get("pin") for a in rl.activation_lines(r)]
    check(words.count("kept") == 300, "pin words %r" % {w: words.count(w) for w in set(words)})
    print("  300 pins kept and used, operator weight kms-a=%d kept" % hs["kms-a"]["weight"])


# ---- 4 ------------------------------------------------------------------------

def same_report(live, off):
    """The fields both reports must agree on (health and the age of a count
    exist only live; count_source says where a count came from)."""
    def hosts(rep):
        return [(x["host"], x["admin"], x["weight"], x["clients"]) for x in rep["hosts"]]

    def apps(rep):
        out = []
        for a in rep["applications"]:
            out.append((a["application"], a["clients"], a["vm"], a["physical"],
                        sorted(a["licence"].items()),
                        [(c["host"], c["clients"], c["threshold"], c["reported_count"],
                          c["below_threshold"]) for c in a["hosts"]]))
        return out

    for key in ("schema", "pins", "clients", "machines", "vm", "physical", "totals"):
        check(live[key] == off[key], "%s: live %r, offline %r" % (key, live[key], off[key]))
    check(hosts(live) == hosts(off), "hosts: live %r\noffline %r" % (hosts(live), hosts(off)))
    check(apps(live) == apps(off), "applications: live %r\noffline %r" % (apps(live), apps(off)))
    check(live["findings"] == off["findings"], "findings differ")
    check(live["warnings"] == off["warnings"], "warnings: %r vs %r"
          % (live["warnings"], off["warnings"]))


def t_offline_report_agrees(h):
    st = rl.start_stubs(h, NAMES)
    r, path = start(h, list(st.values()))
    lg(h, r, 120, 60, 4040, ["--products", "win10,office2016", "--dual-office", "20"], "base")
    wait_committed(h, 60)
    ctl(h, "host", "drain", "kms-a")
    ctl(h, "host", "maint", "kms-b")
    ctl(h, "host", "weight", "kms-c", "3")
    time.sleep(rl.COMMIT_INTERVAL_S * 3)
    live, off = ctl_json(h, "report", expect=(0, 1)), offline_report(path)
    got = {x["host"]: (x["admin"], x["weight"]) for x in off["hosts"]}
    check(got == {"kms-a": ("drain", 1), "kms-b": ("maint", 1), "kms-c": ("ready", 3)},
          "offline admin/weight %r" % got)
    same_report(live, off)
    print("  after drain, maint, weight: live and offline reports agree")


if __name__ == "__main__":
    krtest.run_tests("pairs", [t_population_counts, t_office_refused, t_fixture_store,
                               t_offline_report_agrees])
