#!/usr/bin/env python3
"""Signals (issue 11, item 14): SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM and SIGPROF
must not kill kmsrelayd (whose default action would end it without flushing
the pins): they are ignored and the relay keeps serving. SIGXCPU (the soft
CPU limit) stops it gracefully, pins flushed, exit 0.
"""
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import krtest  # noqa: E402
import relaylib as rl  # noqa: E402
from krtest import check  # noqa: E402

IGNORED = [signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM, signal.SIGVTALRM, signal.SIGPROF]


def t_ignored_signals(h):
    st = rl.start_stubs(h, ["kms-a"])
    conf = h.path("relay.conf")
    rl.write(conf, rl.conf_text(h, list(st.values()), commit="30s"))
    r = rl.start_relay(h, conf, wait_up=["kms-a"])
    for i, sig in enumerate(IGNORED):
        os.kill(r.proc.pid, sig)
        time.sleep(0.2)
        check(r.proc.poll() is None, "%s killed kmsrelayd (exit %s)" % (sig.name, r.proc.returncode))
        rc, doc, out = rl.loadgen(h, r.target(), 10, c=2, seed=40 + i, name="lg%d" % i)
        rl.check_all_ok(rc, doc, out, 10, "after %s" % sig.name)
    print("  %s: ignored, still serving" % ", ".join(s.name for s in IGNORED))
    check(h.stop(r.proc) == 0, "exit status")
    check("runtime error" not in r.log() and "Sanitizer" not in r.log(), "sanitizer output")


def t_xcpu_stops_gracefully(h):
    st = rl.start_stubs(h, ["kms-a"])
    conf = h.path("relay.conf")
    # A long commit interval: the pins are still queued when SIGXCPU comes.
    rl.write(conf, rl.conf_text(h, list(st.values()), commit="30s"))
    r = rl.start_relay(h, conf, wait_up=["kms-a"])
    rc, doc, out = rl.loadgen(h, r.target(), 20, c=4, seed=50, name="lg")
    rl.check_all_ok(rc, doc, out, 20, "before SIGXCPU")
    os.kill(r.proc.pid, signal.SIGXCPU)
    rc = rl.wait_for(lambda: r.proc.poll() is not None, 15, "kmsrelayd to stop on SIGXCPU")
    check(r.proc.returncode == 0, "exit status %s after SIGXCPU" % r.proc.returncode)
    check(re.search(r"event=stopping signal=XCPU", r.log()), "no graceful stop logged")
    m = re.search(r"event=store_closed flushed=(\d+)", r.log())
    check(m, "the pins were not flushed")
    print("  SIGXCPU: graceful stop, store closed (flushed=%s)" % m.group(1))
    # The pins are on disk: the offline report (no daemon running) sees all 20.
    rc, out, err = h.run([krtest.binpath("kmsrelayd"), "-c", conf, "--report=json"], timeout=60)
    check(rc == 0, "--report: rc %d %s" % (rc, err[-500:]))
    found = [int(x) for x in re.findall(r'"clients":\s*(\d+)', out)]
    check(20 in found, "pins after SIGXCPU: %s" % out[:600])


if __name__ == "__main__":
    krtest.run_tests("signals", [t_ignored_signals, t_xcpu_stops_gracefully])
