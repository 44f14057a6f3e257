#!/usr/bin/env python3
"""Control API and kmsrelayctl hardening (issue 11, items 13 and 15).

  hostile_names   workstation names with ESC, BEL, CR (a title change and a
                  screen clear) sent by kms-loadgen: `kmsrelayctl clients`
                  and `pin show` print them escaped (\\x1b ...), never raw;
                  --json keeps the exact name
  http_strict     a 405 names the request's real method (PATCH, OPTIONS,
                  TRACE, not "OTHER"); a repeated Content-Length, equal or
                  not, is refused with 400 and a JSON error
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import krtest  # noqa: E402
import relaylib as rl  # noqa: E402
import test_control as tc  # noqa: E402
from krtest import check  # noqa: E402

EVIL = "evil\x1b]0;pwned\x07\x1b[2J\r\x9b6n-"
RAW = (b"\x1b", b"\x07", b"\r", b"\xc2\x9b")


def ctl_bytes(h, *args):
    argv = [krtest.binpath("kmsrelayctl"), "--socket", h.path("control.sock")] + list(args)
    import subprocess
    r = subprocess.run(argv, capture_output=True, timeout=60)
    check(r.returncode == 0, "kmsrelayctl %s: exit %d %r" % (" ".join(args), r.returncode,
                                                              r.stderr[-500:]))
    return r.stdout


def t_hostile_names(h):
    stubs, r, conf = tc.setup(h)
    rc, doc, out = rl.loadgen(h, r.target(), 5, c=1, seed=91, extra=["--ws-prefix", EVIL])
    rl.check_all_ok(rc, doc, out, 5, "clients with hostile names")
    tc.wait_pins(h, 5)
    cmid = doc["clients"][0]["cmid"]
    for args in (["clients"], ["pin", "show", cmid]):
        text = ctl_bytes(h, *args)
        bad = [c for c in RAW if c in text]
        check(not bad, "kmsrelayctl %s prints raw %r:\n%r" % (" ".join(args), bad, text[:600]))
        check(b"evil\\x1b]0;pwned\\x07\\x1b[2J\\x0d\\xc2\\x9b6n-" in text,
              "kmsrelayctl %s does not show the escaped name:\n%r" % (" ".join(args), text[:600]))
        print("  %s: %s" % (" ".join(args), [ln for ln in text.decode().splitlines()
                                             if "evil" in ln][0][:100]))
    # machine output keeps the exact name
    # (pin show's JSON lists the machine's applications in "pins": issue 10)
    pin = json.loads(ctl_bytes(h, "--json", "pin", "show", cmid))["pins"][0]
    check(pin["workstation"].startswith(EVIL), "--json changed the name: %r" % pin["workstation"])


def t_http_strict(h):
    stubs, r, conf = tc.setup(h)
    sock = h.path("control.sock")
    for m in ("PATCH", "OPTIONS", "TRACE", "DELETE"):
        doc, hd = tc.json_error(sock, m, "/v1/status", 405, m)
        check(("method %s not allowed" % m) in doc["error"] and "OTHER" not in doc["error"],
              "405 text for %s: %r" % (m, doc["error"]))
    print("  405: " + doc["error"])
    for lengths in (("2", "2"), ("2", "40")):
        raw = (b"POST /v1/hosts/kms-a/weight HTTP/1.1\r\nHost: x\r\n" +
               b"".join(b"Content-Length: %s\r\n" % v.encode() for v in lengths) +
               b"Connection: close\r\n\r\n" + b'{"weight": 7}'.ljust(40))
        doc, _ = tc.json_error(sock, "POST", "/v1/hosts/kms-a/weight", 400,
                               "Content-Length %s" % (lengths,), raw=raw)
        check("repeated Content-Length" in doc["error"], "400 text: %r" % doc["error"])
    print("  duplicate Content-Length: " + doc["error"])
    # nothing was applied, and one Content-Length still works
    st, _, body = tc.http(sock, "GET", "/v1/hosts")
    check(st == 200 and all(e.get("weight") != 7 for e in json.loads(body)["hosts"]),
          "a refused request changed a weight: %r" % body[:300])
    st, _, body = tc.http(sock, "POST", "/v1/hosts/kms-a/weight", body='{"weight": 3}')
    check(st == 200, "a normal POST after the refusals: %d %r" % (st, body[:200]))


if __name__ == "__main__":
    krtest.run_tests("control_hardening", [t_hostile_names, t_http_strict])
