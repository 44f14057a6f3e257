#!/usr/bin/env python3
"""Reload off the event loop (issue 11, item 9): a SIGHUP reload reads and
parses the configuration on a worker thread and applies it on the loop, so a
big configuration file does not stall clients; and a configuration file is
bounded (1 MiB) with a clear error, at start, with -n and on reload.
"""
import os
import re
import sys
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import krtest  # noqa: E402
import relaylib as rl  # noqa: E402
from krtest import check  # noqa: E402

LIMIT = 1024 * 1024


def log_ts(line):
    m = re.search(r"ts=(\S+)Z", line)
    return datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=timezone.utc).timestamp()


def padded(text, size):
    """The config with a long line of padding (a comment) up to about size bytes."""
    pad = size - len(text) - 8
    return text + "# " + "x" * pad + "\n"


def t_reload_off_loop(h):
    st = rl.start_stubs(h, ["kms-a"])
    conf = h.path("relay.conf")
    base = rl.conf_text(h, list(st.values()))
    rl.write(conf, base)
    r = rl.start_relay(h, conf, wait_up=["kms-a"])
    # A big file just under the limit takes a while to parse.
    lg = rl.loadgen_bg(h, r.target(), 3000, c=2, seed=61, name="lgbg")
    rl.wait_log(r.proc, r"event=activation ", 20)
    off = rl.log_size(r.proc)
    m = rl.reload(r, padded(base, LIMIT - 4096), timeout=60)
    log = r.log()[off:]
    start = log_ts(re.search(r"[^\n]*event=reload config=[^\n]*", log).group(0))
    end = log_ts(m.group(0)) if "ts=" in m.group(0) else \
        log_ts(re.search(r"[^\n]*event=reload result=ok[^\n]*", log).group(0))
    during = [x for x in re.findall(r"[^\n]*event=activation [^\n]*", log)
              if start < log_ts(x) < end]
    print("  reload of a %d-byte file took %.2f s; %d activations answered meanwhile"
          % (LIMIT - 4096, end - start, len(during)))
    # On the loop, the parse blocks every client: at most the one whose answer
    # was being logged at that millisecond shows up in between.
    check(len(during) >= 5, "%d clients answered while the reload parsed the file (%.2f s)"
          % (len(during), end - start))
    rc, doc, out = rl.loadgen_wait(h, lg)
    rl.check_all_ok(rc, doc, out, 3000, "clients during the reload")
    check(h.stop(r.proc) == 0, "exit status")
    check("runtime error" not in r.log() and "Sanitizer" not in r.log(), "sanitizer output")


def t_size_bound(h):
    st = rl.start_stubs(h, ["kms-a"])
    conf = h.path("relay.conf")
    base = rl.conf_text(h, list(st.values()))
    big = h.path("big.conf")
    rl.write(big, padded(base, LIMIT + 4096))
    rc, out, err = h.run([krtest.binpath("kmsrelayd"), "-n", "-c", big], timeout=60)
    print("  -n: %s" % (out + err).strip()[:200])
    check(rc == 1 and "at most 1048576 bytes" in out + err, "-n on a 1 MiB+ file: rc %d %s"
          % (rc, (out + err)[:300]))
    rl.write(conf, base)
    r = rl.start_relay(h, conf, wait_up=["kms-a"])
    off = rl.log_size(r.proc)
    rl.reload(r, padded(base, LIMIT + 4096), pattern=r"event=reload result=failed", timeout=30)
    check("at most 1048576 bytes" in r.log()[off:], "no clear error for the big file")
    rc, doc, out = rl.loadgen(h, r.target(), 20, c=4, seed=62, name="lg")
    rl.check_all_ok(rc, doc, out, 20, "after the refused reload")
    check(h.stop(r.proc) == 0, "exit status")


if __name__ == "__main__":
    krtest.run_tests("reload_offloop", [t_reload_off_loop, t_size_bound])
