"""krtest - shared harness for kmsrelay's integration tests.

Real processes on loopback only: every server is started on port 0 (the
kernel picks a free port) and reports the port it got through a file, so tests
never collide on fixed ports. Every process a test starts is recorded and
stopped by PID at the end, even when the test fails. Loops are bounded.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("KR_BIN_DIR") or os.path.join(os.path.dirname(__file__), "../../build/src")
VECTORS = os.environ.get("KR_VECTORS_DIR") or os.path.join(os.path.dirname(__file__), "../vectors")
SRC = os.environ.get("KR_SRC_DIR") or os.path.join(os.path.dirname(__file__), "../..")


def binpath(name):
    return os.path.join(BIN, name)


class Failure(Exception):
    pass


def check(cond, msg):
    """Assert that fails the test with a readable message."""
    if not cond:
        raise Failure(msg)


class Harness:
    """Owns a scratch directory and every process started through it."""

    def __init__(self, name):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="kr-%s-" % name)
        self.procs = []

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def start(self, args, name, port_file=None, wait_port=True, env=None):
        """Starts a process, logging to <dir>/<name>.log. With port_file,
        waits (bounded) until the process wrote its port there and returns
        (proc, port); otherwise returns (proc, None)."""
        log = open(self.path(name + ".log"), "wb")
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        p.kr_name = name
        p.kr_log = self.path(name + ".log")
        self.procs.append(p)
        if not port_file or not wait_port:
            return p, None
        return p, self.wait_port(p, name, port_file)

    def wait_port(self, p, name, port_file, seconds=15):
        """Waits (bounded) until process p wrote its port to port_file."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            if p.poll() is not None:
                raise Failure("%s exited early (%s): %s" % (name, p.returncode, self.tail(p)))
            try:
                with open(port_file) as f:
                    txt = f.read().strip()
                if txt:
                    return int(txt.split()[0])
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise Failure("%s did not report a port within %d s: %s" % (name, seconds, self.tail(p)))

    def tail(self, p, n=4000):
        try:
            with open(p.kr_log, "rb") as f:
                data = f.read()
            return data[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def run(self, args, timeout=300, check_rc=None):
        """Runs a command to completion; returns (rc, stdout, stderr)."""
        r = subprocess.run(args, capture_output=True, timeout=timeout)
        out = r.stdout.decode("utf-8", "replace")
        err = r.stderr.decode("utf-8", "replace")
        if check_rc is not None and r.returncode != check_rc:
            raise Failure("%s exited %d, expected %d\nstdout: %s\nstderr: %s"
                          % (" ".join(args), r.returncode, check_rc, out[-3000:], err[-3000:]))
        return r.returncode, out, err

    def stop(self, p, sig=signal.SIGTERM, timeout=10):
        """Stops one process we started, by PID; escalates to SIGKILL."""
        if p.poll() is not None:
            return p.returncode
        try:
            os.kill(p.pid, sig)
        except ProcessLookupError:
            return p.poll()
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            return p.wait(timeout=10)

    def cleanup(self, keep=False):
        """Stops every process; removes the scratch directory unless the test
        failed (keep=True), so its logs can be read."""
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
                self.stop(p, timeout=5)
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def run_tests(name, tests):
    """Runs test functions, each given a fresh Harness. Prints one line per
    test and a closing 'N passed, N failed' line; exits 1 on any failure."""
    passed = failed = 0
    for t in tests:
        h = Harness("%s-%s" % (name, t.__name__))
        ok = False
        t0 = time.time()
        try:
            t(h)
            ok = True
            passed += 1
            print("PASS %s (%.1fs)" % (t.__name__, time.time() - t0), flush=True)
        except Exception as e:  # report every kind of failure the same way
            failed += 1
            print("FAIL %s: %s" % (t.__name__, e), flush=True)
            for p in h.procs:
                print("--- %s log tail ---\n%s" % (p.kr_name, h.tail(p, 2000)), flush=True)
            print("(logs kept in %s)" % h.dir, flush=True)
        finally:
            h.cleanup(keep=not ok)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)


def connect(port, host="127.0.0.1", timeout=5):
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_pdu(s, timeout=5):
    """Reads one DCE/RPC PDU (by frag_length) or returns b'' on close."""
    s.settimeout(timeout)
    hdr = b""
    while len(hdr) < 16:
        chunk = s.recv(16 - len(hdr))
        if not chunk:
            return b""
        hdr += chunk
    flen = int.from_bytes(hdr[8:10], "little")
    body = b""
    while len(hdr) + len(body) < flen:
        chunk = s.recv(flen - 16 - len(body))
        if not chunk:
            return b""
        body += chunk
    return hdr + body


def load_vectors():
    out = []
    for f in sorted(os.listdir(VECTORS)):
        if f.endswith(".json"):
            with open(os.path.join(VECTORS, f)) as fh:
                out.append(json.load(fh))
    return out
