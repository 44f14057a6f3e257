#!/usr/bin/env python3
"""Relays as peers (issue 15), acceptance 7: catch-up after a peer was away
while N changes were made (default 100,000 new pins), in two ways:

  link   the link between ra and rb is cut (a proxy between them), ra takes
         N new clients, the link heals: rb catches up from ra's change log
         (peers.log_size is raised above N for this)
  restart  rb is stopped, ra takes N new clients, rb starts again: a full
         resynchronisation both ways (the log does not survive a restart)

Prints the catch-up time (heal or start until both sides acknowledged
everything and the two tables are equal) and bytes per change. Not a test:
run by hand with a Release build, e.g.

  KR_BIN_DIR=build-release/src python3 tests/bench/peers_catchup.py [N]
"""
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import krtest  # noqa: E402
import relaylib as rl  # noqa: E402
import test_peers as tp  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100000


def load(h, pair, seed, name):
    t0 = time.time()
    rc, doc, out = rl.loadgen(h, pair.relays["ra"].target(), N, c=64, seed=seed, name=name,
                              timeout=1800)
    rl.check_all_ok(rc, doc, out, N, name)
    return N / (time.time() - t0)


def bench_link(h):
    stubs = tp.stubs3(h)
    pair = tp.Pair(h, stubs, proxy=True, peers_extra="log_size = %d; " % (3 * N))
    pair.proxy.cut()
    rate = load(h, pair, 31, "away")
    lag = pair.peer("ra")["lag_changes"]
    sent0 = pair.peer("ra")["bytes_out"]
    start = rl.log_size(pair.relays["ra"].proc)
    t0 = time.time()
    pair.proxy.heal()
    pair.wait_up(start=start)
    pair.converge(timeout=1800)
    took = time.time() - t0
    p = pair.peer("ra")
    print("link cut, %d new pins at %.0f/s on ra, %d changes behind: caught up from the log in "
          "%.1f s, %.0f bytes per change, resyncs %d"
          % (N, rate, lag, took, (p["bytes_out"] - sent0) / max(1, lag), p["resyncs_sent"]),
          flush=True)


def bench_restart(h):
    stubs = tp.stubs3(h)
    pair = tp.Pair(h, stubs)
    h.stop(pair.relays["rb"].proc)
    rate = load(h, pair, 32, "away")
    t0 = time.time()
    pair.start("rb", tag="rb2")
    pair.converge(timeout=1800)
    took = time.time() - t0
    print("rb stopped, %d new pins at %.0f/s on ra: rb started and equal after %.1f s "
          "(full resync both ways)" % (N, rate, took), flush=True)


if __name__ == "__main__":
    krtest.run_tests("peers-bench", [bench_link, bench_restart])
