#!/usr/bin/env python3
"""Monitoring (issue 14): the Grafana dashboard and the alert rules against a
live daemon, and `kmsrelayctl check` with its four exit codes.

Dashboard (acceptance 3): every expression of deploy/grafana/kmsrelay.json,
with the dashboard's variables filled in, goes into a generated rules file
that `promtool check rules` must accept; every metric name it uses, and
every label it groups or matches by, must be one a running kmsrelayd exports
on /metrics (two stub hosts, a few clients). The alert rules of
deploy/prometheus/kmsrelay-rules.yml get the same metric-name check (promtool
tests their logic: ctest lint.alert_rules). Two self-checks show that the
checker catches a misspelt metric and promtool a broken expression.

check (acceptance 5): a real daemon with two stub hosts: both up -> 0 OK;
kms-b stopped -> 1 WARNING; kms-a drained as well -> 2 CRITICAL; the daemon
stopped -> 3 UNKNOWN. With DNS (BIND): published -> OK, a count below the
threshold and a cloned image -> WARNING, withdrawn -> CRITICAL. `hosts` and `status` keep their output and, with
--check-exit, exit the same way.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bindlib  # noqa: E402
import krtest  # noqa: E402
import relaylib  # noqa: E402
import test_dns_publish as dnspub  # noqa: E402
from krtest import Failure, check  # noqa: E402

DASHBOARD = os.path.join(krtest.SRC, "deploy", "grafana", "kmsrelay.json")
RULES = os.path.join(krtest.SRC, "deploy", "prometheus", "kmsrelay-rules.yml")
# What Grafana puts in for the dashboard's variables.
VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h",
             "$instance": ".*", "${instance}": ".*"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
            "or", "unless", "offset", "inf", "nan"}
# Labels Prometheus adds to every scraped series, and the histogram's own.
SCRAPE_LABELS = {"job", "instance", "le"}


def control(h):
    return ('control: { socket = "%s"; };\nmetrics: { listen = "127.0.0.1:0"; };\n'
            % h.path("control.sock"))


def start(h, names=("kms-a", "kms-b"), dns=False):
    """Stub hosts and kmsrelayd with metrics and control; with dns, a BIND
    named for example.test where the relay publishes its SRV record, next
    to a live peer's record (so fail-static lets the relay withdraw)."""
    stubs = relaylib.start_stubs(h, list(names))
    extra = control(h)
    if dns:
        peer = relaylib.start_stub(h, "kms-peer")
        srv = bindlib.start(h, records=[
            "_vlmcs._tcp 3600 IN SRV 0 0 %d kms-peer.example.test." % peer.port,
            "kms-peer 3600 IN A 127.0.0.1"])
        extra += dnspub.dns_block(srv.port, srv.key)
    conf = h.path("relay.conf")
    relaylib.write(conf, relaylib.conf_text(h, list(stubs.values()), assist=False, extra=extra))
    r = relaylib.start_relay(h, conf, wait_up=list(names))
    maddr = relaylib.wait_log(r.proc, r"event=metrics_listen addr=(\S+)").group(1)
    if dns:
        relaylib.wait_log(r.proc, r"event=dns_published zone=example.test.")
    return stubs, r, maddr


# ---- the exported names --------------------------------------------------------

def exported(text):
    """(metric names, label names) of an exposition: every family's TYPE
    (histograms with _bucket/_sum/_count) and every label of a sample."""
    names, labels = set(), set(SCRAPE_LABELS)
    for ln in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)$", ln)
        if m:
            names.add(m.group(1))
            if m.group(2) == "histogram":
                names.update(m.group(1) + s for s in ("_bucket", "_sum", "_count"))
            continue
        m = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*\{(.*)\} ", ln)
        if m:
            labels.update(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(1)))
    return names, labels


def substitute(expr):
    for k in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(k, VARIABLES[k])
    check("$" not in expr, "unknown dashboard variable in %r" % expr)
    return expr


def names_in(expr):
    """(metric names, grouping/matching label names, selector label names)
    used by a PromQL expression: strings, durations and the contents of
    selectors and label lists are taken out first; what is left that is an
    identifier, not a function call and not a keyword, is a metric name."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    sel = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*""', e))
    grp = set()
    for m in re.finditer(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", e):
        grp.update(x.strip() for x in m.group(1).split(",") if x.strip())
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    metrics = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        word, rest = m.group(0), e[m.end():].lstrip()
        if rest.startswith("(") or word.lower() in KEYWORDS:
            continue
        if re.fullmatch(r"[0-9.e+-]+", word) or (m.start() > 0 and e[m.start() - 1].isdigit()):
            continue  # part of a number (1e3) or a unit
        metrics.add(word)
    return metrics, grp, sel


def problems_of(expr, names, labels):
    metrics, grp, sel = names_in(expr)
    out = ["no kmsrelay metric"] if not any(m.startswith("kmsrelay_") for m in metrics) else []
    out += ["metric %s is not exported" % m for m in sorted(metrics - names)]
    out += ["label %s is not exported" % x for x in sorted((grp | sel) - labels)]
    return out


# ---- the dashboard and the rules -------------------------------------------------

def dashboard_exprs():
    with open(DASHBOARD) as f:
        d = json.load(f)
    out, ids = [], set()

    def walk(panels):
        for p in panels:
            check(p.get("id") not in ids, "panel id %s used twice" % p.get("id"))
            ids.add(p.get("id"))
            if p.get("type") == "row":
                walk(p.get("panels", []))
                continue
            ts = p.get("targets", [])
            check(ts, "panel %r has no query" % p.get("title"))
            for t in ts:
                check(t.get("expr"), "panel %r: a query without expr" % p.get("title"))
                out.append(("panel %r %s" % (p["title"], t.get("refId")), t["expr"]))
    walk(d["panels"])
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", q)
        check(m, "variable %s: query %r is not label_values(metric, label)" % (v["name"], q))
        out.append(("variable %s" % v["name"], "%s{%s!=\"\"}" % (m.group(1), m.group(2))))
    return out


def rule_exprs():
    """The expr of every rule in the rules file (block scalars after expr: |)."""
    out, lines = [], open(RULES).read().split("\n")
    alert = None
    for i, ln in enumerate(lines):
        m = re.match(r"\s*- alert: (\S+)", ln)
        if m:
            alert = m.group(1)
        m = re.match(r"(\s*)expr: \|\s*$", ln)
        if m:
            ind, body = len(m.group(1)), []
            for nxt in lines[i + 1:]:
                if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= ind:
                    break
                body.append(nxt)
            out.append(("alert %s" % alert, "\n".join(body).strip()))
    return out


def promtool_check(h, exprs, name):
    """Writes the expressions as recording rules and runs promtool check
    rules on them; returns (rc, output)."""
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": "kmsrelay_dashboard:query_%d" % i, "expr": e} for i, (_, e) in enumerate(exprs)]}]}
    path = h.path(name)
    with open(path, "w") as f:
        json.dump(rules, f, indent=1)  # JSON is YAML
    p = subprocess.run([shutil.which("promtool"), "check", "rules", path], capture_output=True,
                       text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def test_dashboard_and_rules(h):
    check(shutil.which("promtool"), "promtool not found (Debian package prometheus)")
    stubs, r, maddr = start(h, dns=True)  # DNS: the zone label exists only with a zone
    rc, doc, out = relaylib.loadgen(h, r.target(), 20, k=10, seed=3, c=2)
    relaylib.check_all_ok(rc, doc, out, 20, "clients")
    with urllib.request.urlopen("http://%s/metrics" % maddr, timeout=10) as resp:
        names, labels = exported(resp.read().decode())
    check(len(names) > 40, "only %d metric names exported" % len(names))

    exprs = [(w, substitute(e)) for w, e in dashboard_exprs()]
    check(len(exprs) >= 20, "the dashboard has only %d queries" % len(exprs))
    rc, out = promtool_check(h, exprs, "dashboard-rules.yml")
    check(rc == 0, "promtool check rules on the dashboard's queries:\n%s" % out)
    bad = ["%s: %s" % (w, p) for w, e in exprs for p in problems_of(e, names, labels)]
    alerts = rule_exprs()
    check(len(alerts) >= 14, "only %d alert expressions read from %s" % (len(alerts), RULES))
    bad += ["%s: %s" % (w, p) for w, e in alerts for p in problems_of(e, names, labels)]
    check(not bad, "queries using names the daemon does not export:\n  " + "\n  ".join(bad))
    used = set().union(*(names_in(e)[0] for _, e in exprs + alerts))
    print("  %d dashboard queries and %d alert rules parse and use %d exported metrics"
          % (len(exprs), len(alerts), len(used)))

    # The checks can fail: a misspelt metric or label, a broken expression.
    check(problems_of('sum by (hots) (rate(kmsrelay_activation_total[5m]))', names, labels)
          == ["metric kmsrelay_activation_total is not exported", "label hots is not exported"],
          "the name check missed a misspelt metric or label")
    rc, out = promtool_check(h, [("broken", "sum(rate(kmsrelay_requests_total[5m])")],
                             "broken-rules.yml")
    check(rc != 0, "promtool accepted a broken expression")


# ---- kmsrelayctl check -----------------------------------------------------------

def ctl(h, *args):
    p = subprocess.run([krtest.binpath("kmsrelayctl"), "--socket", h.path("control.sock")]
                       + list(args), capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def expect(h, want, state, *args):
    rc, out, err = ctl(h, "check", *args)
    lines = out.splitlines()
    check(rc == want and len(lines) == 1 and lines[0].startswith("KMSRELAY %s - " % state),
          "check %s: exit %d, expected %d (%s):\n%s%s" % (" ".join(args), rc, want, state, out, err))
    if want != 3:
        check(re.search(r" \| hosts=\d+;;;0 .*store_used=\d+%;80;95;0;100$", lines[0]),
              "performance data: %r" % lines[0])
    return lines[0]


def expect_cmd(h, cmd, want):
    """hosts/status: the output is the same with --check-exit; only the exit
    status follows the check."""
    rc0, out0, _ = ctl(h, cmd)
    rc, out, err = ctl(h, cmd, "--check-exit")
    check(rc0 == 0, "%s without --check-exit: exit %d" % (cmd, rc0))
    check(rc == want, "%s --check-exit: exit %d, expected %d\n%s" % (cmd, rc, want, err))
    # latencies, ages and counters change between two calls, and widths with them
    strip = (lambda s: re.sub(r"[ \t]+", " ", re.sub(r"[0-9.]+(ms|s)\b|\d+", "N", s)))
    check(strip(out) == strip(out0), "%s --check-exit changed the output:\n%s\n---\n%s"
          % (cmd, out0, out))


def test_check_exit_codes(h):
    stubs, r, _ = start(h)
    line = expect(h, 0, "OK")
    check("2 hosts, 2 up, 2 taking new clients" in line, line)
    expect_cmd(h, "hosts", 0)
    expect_cmd(h, "status", 0)

    start_at = relaylib.log_size(r.proc)
    h.stop(stubs["kms-b"].proc)
    relaylib.wait_host_state(r, "kms-b", "DOWN", start=start_at)
    line = expect(h, 1, "WARNING")
    check("host kms-b down" in line and "hosts_down=1;0;;0" in line, line)
    expect(h, 0, "OK", "--down-warn", "2")  # thresholds are options
    expect(h, 2, "CRITICAL", "--down-crit", "1")
    expect_cmd(h, "hosts", 1)
    expect_cmd(h, "status", 1)

    rc, out, err = ctl(h, "host", "drain", "kms-a")
    check(rc == 0, "host drain kms-a: %d %s" % (rc, err))
    line = expect(h, 2, "CRITICAL")
    check(line.index("no host takes new clients (1 of 2 hosts up)") < line.index("host kms-b down"),
          "critical problems come first: %r" % line)
    expect(h, 1, "WARNING", "--eligible-crit", "0")
    expect_cmd(h, "hosts", 2)

    rc, out, err = ctl(h, "check", "--down-warn", "many")
    check(rc == 3 and out.startswith("KMSRELAY UNKNOWN"), "usage error: %d %r" % (rc, out))
    h.stop(r.proc)
    expect(h, 3, "UNKNOWN")
    rc, out, err = ctl(h, "hosts", "--check-exit")
    check(rc == 3, "hosts --check-exit, daemon stopped: exit %d" % rc)
    print("  check: exits 0, 1, 2, 3; hosts and status --check-exit follow")


def test_check_dns_withdrawn(h):
    """Published in DNS: OK; clients below the threshold and a cloned image:
    WARNING (or OK with those thresholds off); the only host dies, the relay
    withdraws its record after the hold-down: CRITICAL, naming the zone."""
    stubs, r, _ = start(h, names=("kms-a",), dns=True)
    line = expect(h, 0, "OK")
    check("published in 1 of 1 DNS zones" in line and "zones_published=1;;1:;0" in line, line)
    # 8 clients, two of them one cloned image: counts below 25 and a finding
    rc, doc, out = relaylib.loadgen(h, r.target(), 8, k=8, seed=5, c=2,
                                    extra=["--products", "win10", "--clone-clients", "1"])
    relaylib.check_all_ok(rc, doc, out, 8, "clients")
    time.sleep(relaylib.COMMIT_INTERVAL_S * 3)  # the pins are committed
    line = expect(h, 1, "WARNING")
    check("kms-a Windows count 7 below threshold 25" in line
          and "cloned images (one CMID, several names): 1" in line
          and "below_threshold=1;0;;0" in line and "cloned_images=1;;;0" in line, line)
    expect(h, 1, "WARNING", "--below-warn", "0")
    expect(h, 0, "OK", "--below-warn", "0", "--findings-warn", "0")
    start_at = relaylib.log_size(r.proc)
    h.stop(stubs["kms-a"].proc)
    relaylib.wait_log(r.proc, r"event=dns_withdrawn zone=example.test. reason=no_eligible_backend",
                      timeout=dnspub.HOLD_DOWN_S + 8, start=start_at)
    line = expect(h, 2, "CRITICAL", "--eligible-crit", "0", "--down-warn", "0")
    check("not published in DNS zone example.test. (withdrawn: no eligible host)" in line, line)
    print("  check: CRITICAL once the relay is withdrawn from DNS")


if __name__ == "__main__":
    krtest.run_tests("monitoring", [test_dashboard_and_rules, test_check_exit_codes,
                                    test_check_dns_withdrawn])
