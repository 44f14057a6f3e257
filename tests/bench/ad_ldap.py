#!/usr/bin/env python3
"""ad_ldap.py - timings of kmsrelay's AD side against a real Samba AD DC
(issue 12). Not a test and not part of tests/bench/run: run it by hand
(as root: it uses a private network namespace, tests/integration/adlib.py):

    KR_BIN_DIR=build-test/src python3 tests/bench/ad_ldap.py [--names 1000] [--rounds 5]

It measures, each over --rounds runs (median and range, milliseconds):
  - context set-up (ticket + GSS-TSIG TKEY) and one signed update
    (`kmsrelayctl dns update`, the times it prints);
  - one LDAP enumeration of the zone (`kmsrelayctl dns directory`: ticket,
    SASL GSSAPI bind, search), first with the provisioned zone, then with
    --names extra names (A records; the search filter must skip them), then
    with --names/10 extra _vlmcs child names that the search returns and
    decodes.
Names are added with `nsupdate -g`, 100 per UPDATE.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import adlib  # noqa: E402
import krtest  # noqa: E402

CTL = krtest.binpath("kmsrelayctl")


def add(x, lines):
    for i in range(0, len(lines), 100):
        x.nsupdate_g("server 127.0.0.1\nzone corp.test\n" + "\n".join(lines[i:i + 100]) +
                     "\nsend\n")


def gss(x, verb, *extra):
    r = subprocess.run([CTL, "dns", verb, "--zone", "corp.test", "--server", "127.0.0.1",
                        "--keytab", x.keytab, "--principal", x.principal] + list(extra),
                       capture_output=True, env=x.env, timeout=60)
    out = (r.stdout + r.stderr).decode("utf-8", "replace")
    if r.returncode != 0:
        raise SystemExit("kmsrelayctl dns %s failed: %s" % (verb, out))
    return out


def rounds(n, fn):
    vals = {}
    for _ in range(n):
        for k, v in fn().items():
            vals.setdefault(k, []).append(v)
    return {k: (statistics.median(v), min(v), max(v)) for k, v in vals.items()}


def enumeration(x):
    out = gss(x, "directory")
    m = re.search(r"(\d+) _vlmcs node.*ticket ([0-9.]+) ms, SASL GSSAPI bind ([0-9.]+) ms, "
                  r"search ([0-9.]+) ms", out)
    return {"nodes": int(m.group(1)), "ticket": float(m.group(2)), "bind": float(m.group(3)),
            "search": float(m.group(4))}


def update(x, i=[0]):
    i[0] += 1
    rr = "_vlmcs._tcp.corp.test. 600 IN SRV 0 0 1688 bench%d.corp.test." % i[0]
    out = gss(x, "update", "--add", rr) + gss(x, "update", "--del", rr)
    ctx = [float(v) for v in re.findall(r"security context with \S+ in ([0-9.]+) ms", out)]
    upd = [float(v) for v in re.findall(r"signed update: ok \(NOERROR, ([0-9.]+) ms", out)]
    return {"context set-up": statistics.mean(ctx), "signed update": statistics.mean(upd)}


def show(title, res):
    print(title)
    for k, (med, lo, hi) in res.items():
        print("  %-16s %9.1f  (%.1f .. %.1f)" % (k, med, lo, hi))
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--names", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    h = krtest.Harness("bench-ad")
    try:
        x = adlib.samba(h)
        x.kinit()
        show("GSS-TSIG (kmsrelayctl dns update; ms)", rounds(a.rounds, lambda: update(x)))
        show("LDAP enumeration, provisioned zone (ms)", rounds(a.rounds, lambda: enumeration(x)))
        t0 = time.time()
        add(x, ["update add n%d.corp.test. 600 IN A 127.0.0.1" % i for i in range(a.names)])
        print("added %d names in %.1f s" % (a.names, time.time() - t0))
        show("LDAP enumeration, +%d names (ms)" % a.names,
             rounds(a.rounds, lambda: enumeration(x)))
        k = max(1, a.names // 10)
        add(x, ["update add _vlmcs._tcp.c%d.corp.test. 600 IN SRV 0 0 1688 k.corp.test." % i
                for i in range(k)])
        show("LDAP enumeration, +%d _vlmcs names returned (ms)" % k,
             rounds(a.rounds, lambda: enumeration(x)))
    finally:
        h.cleanup()


if __name__ == "__main__":
    main()
