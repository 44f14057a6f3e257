"""benchlib - processes, /proc readings and statistics for tests/bench/bench.py.

Every process the benchmark starts goes through Procs.start() and is
stopped by PID (SIGTERM, then SIGKILL after a grace period) in
Procs.stop_all(), which bench.py calls on every exit path. Every command
line is recorded (Procs.commands) for RESULTS.md, with the work and binary
directories written as $W and $B so that the list reads the same on every
machine.
"""
import os
import signal
import socket
import statistics
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    pass


class Procs:
    def __init__(self, workdir, bindir):
        self.workdir = workdir
        self.bindir = bindir
        self.live = []  # Popen objects we started and have not reaped
        self.commands = []  # (phase, command text)
        self.phase = "setup"

    def _text(self, args):
        t = " ".join(str(a) for a in args)
        return t.replace(self.bindir, "$B").replace(self.workdir, "$W")

    def note(self, args):
        self.commands.append((self.phase, self._text(args)))

    def start(self, args, stdout=None, stderr=None, stdin=subprocess.DEVNULL):
        self.note(args)
        p = subprocess.Popen([str(a) for a in args], stdin=stdin, stdout=stdout, stderr=stderr,
                             text=True)
        self.live.append(p)
        return p

    def run(self, args, timeout, stdout=subprocess.PIPE):
        """Runs to completion (bounded); returns (rc, stdout, stderr)."""
        p = self.start(args, stdout=stdout, stderr=subprocess.PIPE)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(p)
            raise BenchError("timed out after %d s: %s" % (timeout, self._text(args)))
        self.live.remove(p)
        return p.returncode, out or "", err or ""

    def stop(self, p, sig=signal.SIGTERM, grace=10):
        if p.poll() is None:
            try:
                os.kill(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout=grace)
        if p in self.live:
            self.live.remove(p)
        return p.returncode

    def stop_all(self):
        for p in list(reversed(self.live)):
            try:
                self.stop(p, grace=5)
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass


def wait_file(path, proc, timeout=15.0):
    """Waits for a port file; returns its integer content."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if os.path.exists(path):
            with open(path) as f:
                t = f.read().strip()
            if t:
                return int(t)
        if proc.poll() is not None:
            raise BenchError("process %d exited with %s before writing %s"
                             % (proc.pid, proc.returncode, path))
        time.sleep(0.01)
    raise BenchError("no %s after %.0f s" % (path, timeout))


def wait_listening(port, proc, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """utime + stime of a process (all threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def status_kib(pid, key):
    """VmRSS / VmHWM ... of /proc/PID/status in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise BenchError("%s not in /proc/%d/status" % (key, pid))


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def percentile(sorted_xs, p):
    """Nearest-rank percentile of an ascending list (as kms-loadgen computes it)."""
    if not sorted_xs:
        return None
    rank = max(1, min(len(sorted_xs), int(p / 100.0 * len(sorted_xs) + 0.999999)))
    return sorted_xs[rank - 1]


def read_latencies(path):
    with open(path) as f:
        return [int(x) for x in f if x.strip()]
