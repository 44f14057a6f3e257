#!/usr/bin/env python3
"""Reload off the event loop (issue 11, item 9): a reload, by SIGHUP or by
the control API (POST /v1/reload), reads and parses the configuration on a
worker thread and applies it on the loop, so a big configuration file does
not stall clients; and a configuration file is bounded (1 MiB) with a clear
error, at start, with -n and on reload.
"""
import errno
import json
import os
import re
import signal
import sys
import time
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


def answered_during(r, off):
    """Activations logged between the reload's first line and its result
    line (both after log offset off): (count, seconds)."""
    log = r.log()[off:]
    start = log_ts(re.search(r"[^\n]*event=reload config=[^\n]*", log).group(0))
    end = log_ts(re.search(r"[^\n]*event=reload result=ok[^\n]*", log).group(0))
    during = [x for x in re.findall(r"[^\n]*event=activation [^\n]*", log)
              if start < log_ts(x) < end]
    return len(during), end - start


def relay_with_control(h):
    """A relay with one stub host and a control socket: (relay, config path,
    socket path, config text)."""
    st = rl.start_stubs(h, ["kms-a"])
    conf = h.path("relay.conf")
    sock = h.path("control.sock")
    base = rl.conf_text(h, list(st.values()),
                        extra='control: { socket = "%s"; mode = "0600"; };\n' % sock)
    rl.write(conf, base)
    return rl.start_relay(h, conf, wait_up=["kms-a"]), conf, sock, base


def reload_under_load(h, trigger, seed):
    """Reloads a 1 MB configuration with trigger(h, r, conf, text) while
    kms-loadgen keeps asking; every client must be answered, and some while
    the file was being parsed."""
    r, conf, _, base = relay_with_control(h)
    # A big file just under the limit takes a while to parse.
    lg = rl.loadgen_bg(h, r.target(), 3000, c=2, seed=seed, name="lgbg")
    rl.wait_log(r.proc, r"event=activation ", 20)
    off = rl.log_size(r.proc)
    trigger(h, r, conf, padded(base, LIMIT - 4096))
    n, took = answered_during(r, off)
    print("  reload of a %d-byte file took %.2f s; %d activations answered meanwhile"
          % (LIMIT - 4096, took, n))
    # On the loop, the parse blocks every client: at most the one whose answer
    # was being logged at that millisecond shows up in between.
    check(n >= 5, "%d clients answered while the reload parsed the file (%.2f s)" % (n, took))
    rc, doc, out = rl.loadgen_wait(h, lg)
    rl.check_all_ok(rc, doc, out, 3000, "clients during the reload")
    check(h.stop(r.proc) == 0, "exit status")
    check("runtime error" not in r.log() and "Sanitizer" not in r.log(), "sanitizer output")


def t_reload_off_loop(h):
    """SIGHUP."""
    reload_under_load(h, lambda h, r, conf, text: rl.reload(r, text, timeout=60), 61)


def ctl_reload(h, r, conf, text):
    rl.write(conf, text)
    rc, out, err = h.run([krtest.binpath("kmsrelayctl"), "--socket", h.path("control.sock"),
                          "--json", "reload"], timeout=120)
    check(rc == 0, "kmsrelayctl reload: rc %d %s %s" % (rc, out[-500:], err[-500:]))
    doc = json.loads(out)
    check(doc.get("result") == "ok" and doc.get("hosts") == 1, "reload reply %r" % doc)


def t_control_reload_off_loop(h):
    """POST /v1/reload (kmsrelayctl reload) takes the same off-loop path."""
    reload_under_load(h, ctl_reload, 63)


def feed_fifo(path, text, timeout=30):
    """Writes text into the FIFO once its reader (the daemon's parse) has
    opened it; bounded."""
    deadline = time.time() + timeout
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as e:
            if e.errno != errno.ENXIO or time.time() > deadline:
                raise
            time.sleep(0.05)
    try:
        os.set_blocking(fd, True)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def t_control_reload_busy_and_stop(h):
    """The configuration includes a FIFO, so a reload's parse waits until the
    test writes it: while a control-API reload waits, activations are
    answered, a second reload is refused (in progress) and the first is
    answered once the parse ends; a stop in the middle of one ends cleanly
    (exit 0, no sanitizer report) and the waiting client is not left hanging."""
    r, conf, sock, base = relay_with_control(h)
    argv = [krtest.binpath("kmsrelayctl"), "--socket", sock, "--json", "reload"]
    fifo = h.path("slow.conf")
    os.mkfifo(fifo)
    rl.write(conf, base + '@include "slow.conf"\n')

    off = rl.log_size(r.proc)
    first, _ = h.start(argv, "ctl1")
    rl.wait_log(r.proc, r"event=reload config=", 30, start=off)
    rc, doc, out = rl.loadgen(h, r.target(), 50, c=4, seed=64, name="lgwait", timeout=60)
    rl.check_all_ok(rc, doc, out, 50, "clients while the reload waits for its parse")
    rc, out, err = h.run(argv, timeout=60)
    check(rc != 0 and "in progress" in out + err, "second reload: rc %d %s %s"
          % (rc, out[-300:], err[-300:]))
    check(first.poll() is None, "the first reload answered before its parse ended")
    feed_fifo(fifo, "# end\n")
    check(first.wait(timeout=60) == 0, "first reload: %s" % rl.read(first.kr_log)[-500:])
    check('"ok"' in rl.read(first.kr_log), "first reload: %s" % rl.read(first.kr_log)[-500:])

    off = rl.log_size(r.proc)
    last, _ = h.start(argv, "ctl2")
    rl.wait_log(r.proc, r"event=reload config=", 30, start=off)
    os.kill(r.proc.pid, signal.SIGTERM)
    rl.wait_log(r.proc, r"event=stopping ", 30, start=off)
    feed_fifo(fifo, "# end\n")
    check(r.proc.wait(timeout=30) == 0, "exit status")
    # Answered (shutting down) or dropped with the connection: it returns.
    print("  stop during a control-API reload: kmsrelayctl rc %d, %s"
          % (last.wait(timeout=30), rl.read(last.kr_log).strip()[-120:]))
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
    krtest.run_tests("reload_offloop", [t_reload_off_loop, t_control_reload_off_loop,
                                        t_control_reload_busy_and_stop, t_size_bound])
