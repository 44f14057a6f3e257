#!/usr/bin/env python3
"""Activation report and Prometheus metrics through the real daemon
(issue 5, acceptance 2 and 3).

Scenario: kms-a is an established host (100 clients sent to it directly
beforehand, so its counts are far above the thresholds); kms-b is a fresh
stub host. 30 clients go through kmsrelayd: 28 with --clone-clients 1 (two
of them share one CMID under different names) and 2 more, one of which has
a clock 5 h ahead (--skew-clients 1 --skew-seconds 18000). Threshold assist
is off, so the clients pinned to kms-b are answered by kms-b and its count
stays below 25: "a host below threshold".

The report must flag exactly those problems: one cloned CMID with both
names, one skewed client, kms-b (and only kms-b) below threshold, nothing
stale, no CMID change. It is read through `kmsrelayctl report --json` when
the control API is there, and through `kmsrelayd --report=json` (the offline
mode, reading the pin store) always; the CSV must load with Python's csv
module into rectangular rows with the documented header.

Metrics: /metrics passes `promtool check metrics` when promtool is
installed (Debian package prometheus), and always a strict parser here; the
activation counters equal the load generator's own counts, per host too.
"""
import csv
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import krtest  # noqa: E402
import relaylib  # noqa: E402
from krtest import Failure, check  # noqa: E402

PRODUCTS = "win10,win8,win7,office2016,office2013"
CSV_HEADER = ["kind", "application", "host", "cmid", "workstations", "value", "threshold",
              "detail"]


# ---- a strict parser of the Prometheus text format --------------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(r"^(%s)(\{(?:%s)(?:,%s)*\})? (\S+)$" % (NAME, LABEL, LABEL))


def parse_metrics(text):
    """Returns {(name, labels-text): value}; raises Failure on any format
    error: HELP/TYPE before samples, one TYPE per family, _total counters,
    valid names/labels/values, no duplicate series, cumulative buckets."""
    check(text.endswith("\n"), "exposition does not end with a newline")
    types, helps, series = {}, set(), {}
    for ln in text.split("\n")[:-1]:
        if ln.startswith("# HELP ") or ln.startswith("# TYPE "):
            parts = ln.split(" ", 3)
            check(len(parts) == 4 and parts[3], "bad comment line: %r" % ln)
            name = parts[2]
            check(re.fullmatch(NAME, name) and name.startswith("kmsrelay_"),
                  "bad family name %r" % name)
            if parts[1] == "HELP":
                check(name not in helps, "second HELP for %s" % name)
                helps.add(name)
            else:
                check(name not in types, "second TYPE for %s" % name)
                check(parts[3] in ("counter", "gauge", "histogram"), "bad type in %r" % ln)
                check((parts[3] == "counter") == name.endswith("_total"),
                      "_total suffix and counter type disagree: %r" % ln)
                types[name] = parts[3]
            continue
        m = SAMPLE.match(ln)
        check(m, "bad sample line %r" % ln)
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        fam = name
        if fam not in types:
            for sfx in ("_bucket", "_sum", "_count"):
                if name.endswith(sfx) and types.get(name[:-len(sfx)]) == "histogram":
                    fam = name[:-len(sfx)]
        check(fam in types and fam in helps, "sample before HELP/TYPE: %r" % ln)
        v = math.inf if value == "+Inf" else float(value)
        check((name, labels) not in series, "duplicate series %r" % ln)
        series[(name, labels)] = v
    buckets = [v for (n, _), v in series.items() if n.endswith("_bucket")]
    check(buckets == sorted(buckets), "histogram buckets are not cumulative")
    return series


def labels_of(text):
    return dict(re.findall(r'([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"', text))


def scrape(addr):
    with urllib.request.urlopen("http://%s/metrics" % addr, timeout=10) as r:
        check(r.status == 200, "GET /metrics: %s" % r.status)
        ctype = r.headers.get("Content-Type", "")
        check(ctype.startswith("text/plain; version=0.0.4"), "Content-Type %r" % ctype)
        return r.read().decode()


# ---- the scenario -------------------------------------------------------------

def control(h):
    """The control socket inside the test's directory."""
    return 'control: { socket = "%s"; };\n' % h.path("control.sock")


def setup(h):
    stubs = relaylib.start_stubs(h, ["kms-a", "kms-b"])
    # kms-a is established: 100 clients of the same products, straight to it.
    rc, doc, out = relaylib.loadgen(h, stubs["kms-a"].addr(), 100, k=100, seed=4242,
                                    extra=["--products", PRODUCTS], name="preseed")
    relaylib.check_all_ok(rc, doc, out, 100, "preseed")
    conf = h.path("relay.conf")
    relaylib.write(conf, relaylib.conf_text(
        h, [stubs["kms-a"], stubs["kms-b"]], assist=False,
        extra='metrics: { listen = "127.0.0.1:0"; };\n' + control(h)))
    r = relaylib.start_relay(h, conf, wait_up=["kms-a", "kms-b"])
    m = relaylib.wait_log(r.proc, r"event=metrics_listen addr=(\S+)")
    return stubs, r, conf, m.group(1)


def send_clients(h, r):
    """30 clients: 28 with one cloned pair, then 2 with one skewed clock."""
    rc1, d1, o1 = relaylib.loadgen(h, r.target(), 28, k=28, seed=7, c=4,
                                   extra=["--products", PRODUCTS, "--clone-clients", "1"],
                                   name="lg-clone")
    relaylib.check_all_ok(rc1, d1, o1, 28, "cloned run")
    rc2, d2, o2 = relaylib.loadgen(h, r.target(), 2, k=2, seed=8, c=2,
                                   extra=["--products", PRODUCTS, "--skew-clients", "1",
                                          "--skew-seconds", "18000", "--ws-prefix", "sk-"],
                                   name="lg-skew")
    relaylib.check_all_ok(rc2, d2, o2, 2, "skewed run")
    return [d1, d2]


def ctl_has_report():
    try:
        p = subprocess.run([krtest.binpath("kmsrelayctl"), "help"], capture_output=True,
                           text=True, timeout=10)
    except OSError:
        return False
    return re.search(r"^\s+report\b", p.stdout, re.M) is not None


def offline_report(h, conf, fmt):
    p = subprocess.run([krtest.binpath("kmsrelayd"), "-c", conf, "--report=" + fmt],
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, "kmsrelayd --report=%s: rc %d: %s" % (fmt, p.returncode, p.stderr))
    return p.stdout


def ctl_report(h, fmt):
    sock = h.path("control.sock")
    args = [krtest.binpath("kmsrelayctl"), "--socket", sock, "report"]
    args += ["--json"] if fmt == "json" else ["--format", fmt]
    p = subprocess.run(args, capture_output=True, text=True, timeout=60)
    check(p.returncode in (0, 1), "kmsrelayctl report %s: rc %d: %s"
          % (fmt, p.returncode, p.stderr))
    return p.stdout


def expected(docs):
    """What the load generator says it sent: the cloned pair and the skewed client."""
    clients = docs[0]["clients"] + docs[1]["clients"]
    by_cmid = {}
    for c in clients:
        by_cmid.setdefault(c["cmid"], []).append(c["workstation"])
    clones = {cm: sorted(ws) for cm, ws in by_cmid.items() if len(ws) > 1}
    check(len(clones) == 1, "loadgen: expected one shared CMID, got %r" % clones)
    skewed = docs[1]["clients"][0]
    return len(by_cmid), clones, skewed


def b_windows(docs, stubs):
    """Distinct Windows CMIDs the load generator saw answered by kms-b."""
    emap = relaylib.epid_map(stubs)
    return len({c["cmid"] for d in docs for c in d["clients"]
                if emap[c["last_epid"]] == "kms-b" and c["app"] == "Windows"})


def check_report(rep, docs, source, b_win):
    n_cmids, clones, skewed = expected(docs)
    check(rep["schema"] == "kmsrelay.report/2", "%s: schema %r" % (source, rep.get("schema")))
    check(rep["clients"] == n_cmids == 29, "%s: %s clients, expected 29" % (source, rep["clients"]))
    f, t = rep["findings"], rep["totals"]
    # cloned: exactly the injected pair, both names
    check(t["cloned_images"] == 1, "%s: cloned %r" % (source, f["cloned_images"]))
    cl = f["cloned_images"][0]
    check({cl["cmid"]: sorted(w["name"] for w in cl["workstations"])} == clones,
          "%s: cloned finding %r, injected %r" % (source, cl, clones))
    # skew: exactly the skewed client, about +5 h
    check(t["clock_skew"] == 1, "%s: skew %r" % (source, f["clock_skew"]))
    sk = f["clock_skew"][0]
    check(sk["cmid"] == skewed["cmid"] and sk["workstation"] == skewed["workstation"],
          "%s: skew finding %r, injected %r" % (source, sk, skewed["workstation"]))
    check(abs(sk["skew_seconds"] - 18000) <= 30, "%s: skew %s s" % (source, sk["skew_seconds"]))
    # threshold: kms-b only, with its Windows clients named
    below = f["below_threshold"]
    check({b["host"] for b in below} == {"kms-b"}, "%s: below threshold %r" % (source, below))
    win = [b for b in below if b["application"] == "Windows"]
    check(win and win[0]["threshold"] == 25 and win[0]["count"] < 25 and win[0]["clients"],
          "%s: kms-b Windows finding %r" % (source, win))
    check(win[0]["count"] == b_win and win[0]["clients_total"] == b_win,
          "%s: kms-b Windows count %d, %d clients listed; the load generator saw %d"
          % (source, win[0]["count"], win[0]["clients_total"], b_win))
    clients_b = {c["workstation"] for c in win[0]["clients"]}
    check(all(w.endswith(".example.test") for w in clients_b), "%s: names %r" % (source, clients_b))
    # nothing else was injected
    check(t["stale"] == 0 and t["cmid_changed"] == 0,
          "%s: unexpected findings %r" % (source, t))
    check(len(rep["warnings"]) == len(below) + 2, "%s: warnings %r" % (source, rep["warnings"]))
    apps = {a["application"]: a for a in rep["applications"]}
    check(sum(a["clients"] for a in apps.values()) == 29, "%s: per-application sum" % source)
    return win[0]


def check_csv(text, rep, source):
    rows = list(csv.reader(io.StringIO(text, newline="")))
    check(rows and rows[0] == CSV_HEADER, "%s: CSV header %r" % (source, rows[:1]))
    check(all(len(r) == len(CSV_HEADER) for r in rows), "%s: ragged CSV rows" % source)
    kinds = [r[0] for r in rows[1:]]
    check(kinds.count("clock_skew") == 1 and kinds.count("cloned_image") == 1,
          "%s: CSV findings %r" % (source, kinds))
    check(kinds.count("below_threshold") == sum(
        max(1, len(b["clients"])) for b in rep["findings"]["below_threshold"]),
        "%s: CSV below_threshold rows" % source)
    total = [r for r in rows if r[0] == "clients" and r[1] == "all"]
    check(total and total[0][5] == "29", "%s: CSV total row %r" % (source, total))
    cl = [r for r in rows if r[0] == "cloned_image"][0]
    check(len(cl[4].split("; ")) == 2, "%s: CSV clone names %r" % (source, cl))


def check_metrics(addr, docs, stubs):
    text = scrape(addr)
    series = parse_metrics(text)
    promtool = shutil.which("promtool")
    if promtool:
        p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=60)
        check(p.returncode == 0, "promtool check metrics: %s%s" % (p.stdout, p.stderr))
    else:
        print("  (promtool not installed: strict parser only)")
    # the load generator's own counts: ok answers per answering host (ePID)
    epid_host = relaylib.epid_map(stubs)
    want_total = sum(d["summary"]["ok"] for d in docs)
    want_host = {}
    for d in docs:
        for c in d["clients"]:  # one activation per client in these runs
            check(c["activations"] == 1 and c["ok"] == 1, "loadgen client %r" % c)
            hn = epid_host[c["last_epid"]]
            want_host[hn] = want_host.get(hn, 0) + 1
    got_host, got_total = {}, 0
    for (name, lab), v in series.items():
        if name == "kmsrelay_activations_total":
            lb = labels_of(lab)
            check(lb["result"] == "ok", "non-ok activation %r %s" % (lab, v))
            got_total += v
            got_host[lb["host"]] = got_host.get(lb["host"], 0) + v
    check(got_total == want_total == 30, "activations: metrics %s, loadgen %s"
          % (got_total, want_total))
    check(got_host == want_host, "per host: metrics %r, loadgen %r" % (got_host, want_host))
    check(series[("kmsrelay_activation_duration_seconds_count", "")] == 30, "histogram count")
    check(series[("kmsrelay_requests_total", "")] == 30, "requests_total")
    check(series[("kmsrelay_host_up", '{host="kms-b"}')] == 1, "kms-b up")
    vers = {labels_of(lab)["version"] for (n, lab) in series if n == "kmsrelay_activations_total"}
    check(vers <= {"4", "5", "6"} and len(vers) >= 2, "versions %r" % vers)
    return series


def test_report_and_metrics(h):
    stubs, r, conf, maddr = setup(h)
    # before any client: a valid exposition with zeros
    s0 = parse_metrics(scrape(maddr))
    check(s0[("kmsrelay_activation_duration_seconds_count", "")] == 0, "fresh histogram")
    docs = send_clients(h, r)
    time.sleep(relaylib.COMMIT_INTERVAL_S * 3)  # the pins are committed

    # the offline report reads the store (counts from the pins)
    rep = json.loads(offline_report(h, conf, "json"))
    b_win = b_windows(docs, stubs)
    check(b_win > 0, "no Windows client was pinned to kms-b: change the seed")
    below_b = check_report(rep, docs, "kmsrelayd --report", b_win)
    check_csv(offline_report(h, conf, "csv"), rep, "kmsrelayd --report=csv")
    table = offline_report(h, conf, "table")
    check("BELOW THRESHOLD" in table and "Cloned images" in table, "table:\n" + table)
    check(all(len(ln) <= 100 for ln in table.splitlines()), "table too wide:\n" + table)
    print("  offline report: kms-b Windows count %d < 25, %d clients named"
          % (below_b["count"], len(below_b["clients"])))

    if ctl_has_report():
        rep2 = json.loads(ctl_report(h, "json"))
        check_report(rep2, docs, "kmsrelayctl report", b_win)
        check_csv(ctl_report(h, "csv"), rep2, "kmsrelayctl report --format csv")
        print("  kmsrelayctl report: same findings")
    else:
        print("  (kmsrelayctl has no report command yet: offline report only)")
    check_metrics(maddr, docs, stubs)


def test_metrics_reload(h):
    """Reload moves the metrics listener; removing the setting stops it."""
    stubs = relaylib.start_stubs(h, ["kms-a"])
    conf = h.path("relay.conf")
    relaylib.write(conf, relaylib.conf_text(
        h, [stubs["kms-a"]], extra='metrics: { listen = "127.0.0.1:0"; };\n' + control(h)))
    r = relaylib.start_relay(h, conf, wait_up=["kms-a"])
    m1 = relaylib.wait_log(r.proc, r"event=metrics_listen addr=(\S+)").group(1)
    parse_metrics(scrape(m1))
    relaylib.write(conf, relaylib.conf_text(h, [stubs["kms-a"]], extra=control(h)))
    start = relaylib.log_size(r.proc)
    r.proc.send_signal(1)
    relaylib.wait_log(r.proc, r"event=reload result=ok", start=start)
    relaylib.wait_log(r.proc, r"event=metrics_stop", start=start)
    try:
        scrape(m1)
        raise Failure("metrics still served after the setting was removed")
    except OSError:
        pass


if __name__ == "__main__":
    krtest.run_tests("report_metrics", [test_report_and_metrics, test_metrics_reload])
