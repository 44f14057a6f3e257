#!/usr/bin/env python3
"""Fault injection on the state store's file, data.mdb (issue 11, items 1-3).

  cut_8k          data.mdb cut to 8 KiB while kmsrelayd is stopped: the next
                  start is refused with a clear error (truncated, what to do),
                  not a SIGBUS; `kmsrelayctl store check` says damaged; `store
                  set-aside` moves the files into a subdirectory (nothing
                  deleted) and kmsrelayd then starts empty and serves
  zero_length     data.mdb cut to 0 bytes: refused ("empty"), never taken for
                  a new store
  corrupt_meta    the newest meta page's last page number overwritten: refused
                  naming the meta page, not "Cannot allocate memory"
  cut_half_live   data.mdb cut to half its size while kmsrelayd serves a
                  renewing kms-loadgen population: no crash, 0 client
                  failures, one store alarm naming the truncation, pins queued
                  in memory and counted as lost at the clean stop; the next
                  start is refused (no crash loop), set-aside recovers
"""
import os
import re
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl  # noqa: E402
from faultlib import check, krtest, rl  # noqa: E402

NAMES = ["kms-a", "kms-b", "kms-c"]


def ctl_offline(h, *args):
    return h.run([krtest.binpath("kmsrelayctl")] + list(args), timeout=60)


def populated(h, n=600):
    """A relay that served n clients and stopped cleanly: its store holds
    their pins. Returns (stubs, conf path, data.mdb path, size)."""
    st = rl.start_stubs(h, NAMES)
    r = fl.start_relay(h, list(st.values()), assist=False, wait_up=NAMES)
    rc, doc, out = rl.loadgen(h, r.target(), n, c=16, seed=71, name="fill")
    rl.check_all_ok(rc, doc, out, n, "filling the store")
    fl.stop_relay_clean(h, r)
    data = h.path("state", "data.mdb")
    size = os.path.getsize(data)
    check(size >= 64 * 1024, "the store is only %d bytes: nothing to cut" % size)
    return st, r.conf, data, size


def start_refused(h, conf, name):
    """Starts kmsrelayd on a damaged store: it must exit by itself (not by a
    signal) with event=fatal; returns that line."""
    pf = h.path(name + ".port")
    p, _ = h.start([krtest.binpath("kmsrelayd"), "-c", conf, "--port-file", pf], name)
    try:
        rc = p.wait(timeout=20)
    except Exception:
        h.stop(p)
        raise krtest.Failure("kmsrelayd started on a damaged store")
    log = rl.read(p.kr_log)
    check(rc > 0, "kmsrelayd on a damaged store: exit status %d (a signal is < 0)\n%s"
          % (rc, log[-2000:]))
    m = re.search(r"event=fatal msg=.*", log)
    check(m, "no event=fatal line:\n" + log[-2000:])
    check(not os.path.exists(pf), "kmsrelayd wrote its port file on a damaged store")
    return m.group(0)


def set_aside_and_restart(h, conf, st, data, size_now, name):
    """store check says damaged; set-aside moves the file (kept byte for
    byte); kmsrelayd then starts empty and serves."""
    d = os.path.dirname(data)
    rc, out, err = ctl_offline(h, "store", "check", "--state-dir", d)
    check(rc == 1 and "damaged" in out and "set-aside" in out,
          "store check: exit %d\n%s%s" % (rc, out, err))
    rc, out, err = ctl_offline(h, "store", "set-aside", "--state-dir", d)
    check(rc == 0, "store set-aside: exit %d\n%s%s" % (rc, out, err))
    aside = [e for e in os.listdir(d) if e.startswith("set-aside-")]
    check(len(aside) == 1, "set-aside made %s" % aside)
    kept = os.path.join(d, aside[0], "data.mdb")
    check(size_now is None or os.path.getsize(kept) == size_now,
          "the set-aside copy is %d bytes, not %d" % (os.path.getsize(kept), size_now or 0))
    check(not os.path.exists(data), "data.mdb is still in place after set-aside")
    r = rl.start_relay(h, conf, name=name, wait_up=NAMES)
    fl.check_alive(h, r, what="after set-aside")
    fl.stop_relay_clean(h, r)
    rc, out, err = ctl_offline(h, "store", "check", "--state-dir", d)
    check(rc == 0 and ": ok:" in out, "store check of the new store: exit %d\n%s%s"
          % (rc, out, err))
    print("  set aside to %s; the new store serves" % aside[0])


def t_cut_8k(h):
    st, conf, data, size = populated(h)
    os.truncate(data, 8192)
    fatal = start_refused(h, conf, "relayd-cut")
    check("truncated" in fatal and "set-aside" in fatal and "8192" in fatal,
          "the refusal does not say what is wrong and what to do: " + fatal)
    print("  %d -> 8192 bytes: %s" % (size, fatal[:300]))
    set_aside_and_restart(h, conf, st, data, 8192, "relayd-new")


def t_zero_length(h):
    st, conf, data, size = populated(h, n=300)
    os.truncate(data, 0)
    fatal = start_refused(h, conf, "relayd-zero")
    check("empty (0 bytes)" in fatal and "set-aside" in fatal,
          "the refusal of an empty data.mdb is unclear: " + fatal)
    check(os.path.getsize(data) == 0, "kmsrelayd wrote into the empty data.mdb")
    print("  0 bytes: %s" % fatal[:200])
    set_aside_and_restart(h, conf, st, data, 0, "relayd-new")


def t_corrupt_meta(h):
    st, conf, data, size = populated(h, n=300)
    with open(data, "r+b") as f:
        psize = struct.unpack_from("<I", f.read(44), 40)[0]
        txn = []
        for i in range(2):
            f.seek(i * psize + 144)
            txn.append(struct.unpack("<Q", f.read(8))[0])
        newest = psize if txn[1] > txn[0] else 0
        f.seek(newest + 136)  # mm_last_pg: the value that made LMDB ask for a huge map
        f.write(struct.pack("<Q", 0xFFFFFFFFFFFF))
    fatal = start_refused(h, conf, "relayd-meta")
    check("meta page" in fatal and "Cannot allocate memory" not in fatal,
          "the refusal of a corrupted meta page is unclear: " + fatal)
    print("  meta page: %s" % fatal[:200])
    set_aside_and_restart(h, conf, st, data, size, "relayd-new")


def t_cut_half_live(h):
    st = rl.start_stubs(h, NAMES)
    r = fl.start_relay(h, list(st.values()), assist=False, wait_up=NAMES)
    log = fl.RelayLog(r.proc)
    k = 800
    rc, doc, out = rl.loadgen(h, r.target(), k, c=16, seed=81, name="fill")
    rl.check_all_ok(rc, doc, out, k, "filling the store")
    time.sleep(0.6)  # committed (commit interval 200 ms)
    data = h.path("state", "data.mdb")
    size = os.path.getsize(data)
    # The same population renews (k clients, 6 activations each) while the file is cut.
    n = 6 * k
    m0 = log.mark()
    lg = rl.loadgen_bg(h, r.target(), n, k=k, c=8, seed=81, extra=["--rate", "800"])
    log.wait("activation", 30, "renewals before the cut", since=m0, count=800, proc=r.proc)
    os.truncate(data, size // 2)
    t_cut = time.time()
    alarm = log.wait("store_alarm", 15, "the store alarm", since=m0, proc=r.proc)
    rc, doc, out = rl.loadgen_wait(h, lg)
    check(r.proc.poll() is None, "kmsrelayd died (%s) after data.mdb was cut:\n%s"
          % (r.proc.returncode, r.log()[-3000:]))
    fl.check_lost_none(rc, doc, out, n, log, m0, "%d renewals across the cut" % n)
    alarms = log.events("store_alarm", m0)
    commit = log.events("store_alarm", m0, state="commit_failing")
    check(commit and "truncated" in commit[0].get("error", ""),
          "no commit_failing alarm naming the truncation: %s"
          % [fl.print_line(a) for a in alarms])
    store = fl.ctl(h, "status")["store"]
    check(store["state"] == "degraded" and store["pending"] > 0,
          "kmsrelayctl status after the cut: store %s" % store)
    print("  cut %d -> %d bytes at %.1f s; alarm: %s; %d renewals ok; status pending=%d"
          % (size, size // 2, fl.ts_of(alarm[0]) - t_cut, fl.print_line(commit[0]),
             n, store["pending"]))
    m1 = log.mark()
    fl.stop_relay_clean(h, r)
    fin = log.events("store_error", m1, what="final flush")
    check(fin and int(fin[0].get("lost", "0")) > 0,
          "the clean stop does not count the pins it could not write: %s"
          % [fl.print_line(d) for d in log.events("store_error", m1)])
    print("  stop: " + fl.print_line(fin[0]))
    # The next start refuses (no crash loop), set-aside recovers.
    fatal = start_refused(h, r.conf, "relayd-after")
    check("truncated" in fatal, "the restart refusal does not say truncated: " + fatal)
    # (a commit running at the very moment of the cut may have written past it again)
    set_aside_and_restart(h, r.conf, st, data, None, "relayd-new")


TESTS = [t_cut_8k, t_zero_length, t_corrupt_meta, t_cut_half_live]

if __name__ == "__main__":
    only = sys.argv[1:]
    krtest.run_tests("faults_store", [t for t in TESTS if not only or t.__name__ in only])
