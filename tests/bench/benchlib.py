"""benchlib - processes, /proc readings and statistics for tests/bench/bench.py.

Processes are krtest's (tests/integration/krtest.py): Procs is a
krtest.Harness over the benchmark's work directory, so starting, stopping by
PID (SIGTERM, then SIGKILL after a grace period) and waiting for port files
are the integration tests' own code. bench.py calls Procs.stop_all() on every
exit path. What Procs adds: every command line is recorded (Procs.commands)
for RESULTS.md, with the work and binary directories written as $W and $B so
that the list reads the same on every machine, and the caller chooses where
a process's output goes.
"""
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import krtest  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(krtest.Failure):
    pass


class Procs(krtest.Harness):
    def __init__(self, workdir, bindir):
        # Not Harness.__init__: the work directory is bench.py's, which
        # removes it (or keeps it with --keep).
        self.name = "bench"
        self.dir = workdir
        self.procs = []  # Popen objects we started (Harness.cleanup stops them)
        self.workdir = workdir
        self.bindir = bindir
        self.commands = []  # (phase, command text)
        self.phase = "setup"

    @property
    def live(self):
        """The processes we started and have not handed back (bench.py
        removes the ones it reaped itself)."""
        return self.procs

    def _text(self, args):
        t = " ".join(str(a) for a in args)
        return t.replace(self.bindir, "$B").replace(self.workdir, "$W")

    def note(self, args):
        self.commands.append((self.phase, self._text(args)))

    def start(self, args, stdout=None, stderr=None, stdin=subprocess.DEVNULL):
        self.note(args)
        p = subprocess.Popen([str(a) for a in args], stdin=stdin, stdout=stdout, stderr=stderr,
                             text=True)
        # What krtest.Harness reads in its messages (wait_port, tail).
        p.kr_name = os.path.basename(str(args[0]))
        p.kr_log = getattr(stderr, "name", os.devnull)
        p.kr_harness = self
        self.procs.append(p)
        return p

    def run(self, args, timeout, stdout=subprocess.PIPE):
        """Runs to completion (bounded); returns (rc, stdout, stderr)."""
        p = self.start(args, stdout=stdout, stderr=subprocess.PIPE)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(p)
            raise BenchError("timed out after %d s: %s" % (timeout, self._text(args)))
        self.procs.remove(p)
        return p.returncode, out or "", err or ""

    def stop(self, p, sig=signal.SIGTERM, timeout=10):
        """krtest.Harness.stop: by PID, SIGKILL after timeout; the exit status."""
        return krtest.Harness.stop(self, p, sig, timeout)

    def stop_all(self):
        # Newest first: load generators before the relay, the relay before
        # the hosts behind it. The work directory stays (bench.py's).
        self.procs.reverse()
        krtest.Harness.cleanup(self, keep=True)


def wait_file(path, proc, timeout=15.0):
    """Waits (bounded) for a port file of a process started by Procs.start;
    returns its integer content (krtest.Harness.wait_port)."""
    return proc.kr_harness.wait_port(proc, proc.kr_name, path, seconds=timeout)


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
