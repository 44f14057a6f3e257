#!/usr/bin/python3
"""bench.py - kmsrelay's benchmark driver. Run it through tests/bench/run,
which installs the packages, builds a Release tree and the two C helpers
(bench_store, bench_route) and raises the fd limit first.

    bench.py --bin BUILD/src --tools BUILD/bench --out tests/bench [--quick]

Phases (README.md in this directory says what each figure means):
  1. three kms-stubhost backends on 127.0.0.1 (port 0 + --port-file);
  2. a concurrency sweep, one run per point, to show where each setup saturates;
  3. REPS rounds of: (a) direct to one host, (b) HAProxy 2.6 (TCP, balance source,
     hash-type consistent), (c) kmsrelayd - each started fresh, warmed up, then a
     closed-loop throughput run and an open-loop latency run at a fixed rate,
     with CPU and peak RSS of the proxy process read from /proc;
  4. idle client connections held on kmsrelayd (memory per connection);
  5. a store with 1M pins: bench_store, kmsrelayd start-up, in-daemon route lookup;
  6. an activation storm: 100,000 distinct clients through kmsrelayd;
  7. RESULTS.md and latency.png (report.py).

Everything listens on loopback only, every process is started and stopped by
PID, and every wait is bounded.
"""
import argparse
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
import report  # noqa: E402

MIX = "v6:60,v5:25,v4:15"
LG_SOURCES = ["127.0.0.%d" % i for i in range(2, 6)]  # one kms-loadgen process each
IDLE_SOURCES = ["127.0.0.%d" % i for i in range(2, 10)]
SCEN = ["a", "b", "c", "d"]  # (d): kmsrelayd with activation logging on, as users run it
# The sweep adds two tuning variants: HAProxy on one thread, kmsrelayd with 16
# backend connections per host instead of the default 4.
SWEEP = ["a", "b", "b1", "c", "c16"]

FULL = dict(sys_n=2000, sys_c=4, reps=7, thr_n=24000, thr_c=64, lat_rate=1000, lat_secs=8, warm_n=800,
            sweep_c=[8, 32, 64, 128, 256], sweep_n=8000, idle_ns=[10000, 50000], idle_reps=3,
            pins=1000000, start_reps=5, route_reps=3, storm_n=100000, storm_c=64, storm_reps=3)
QUICK = dict(sys_n=1000, sys_c=4, reps=2, thr_n=6000, thr_c=64, lat_rate=1000, lat_secs=3, warm_n=300,
             sweep_c=[16, 64], sweep_n=3000, idle_ns=[2000, 5000], idle_reps=1, pins=100000,
             start_reps=2, route_reps=1, storm_n=20000, storm_c=64, storm_reps=1)


def log(msg):
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


class Bench:
    def __init__(self, a):
        self.a = a
        self.k = dict(QUICK if a.quick else FULL)
        if a.reps:
            self.k["reps"] = a.reps
        self.bin = os.path.abspath(a.bin)
        self.tools = os.path.abspath(a.tools)
        self.w = tempfile.mkdtemp(prefix="kr-bench-")
        self.p = bl.Procs(self.w, os.path.dirname(self.bin))
        self.stubs = []  # (name, Popen, port)
        self.res = {"params": dict(self.k), "mix": MIX, "lg_sources": LG_SOURCES}
        self.seq = 0

    def path(self, *parts):
        return os.path.join(self.w, *parts)

    def b(self, name):
        return os.path.join(self.bin, name)

    # ---- processes --------------------------------------------------------------

    def start_stubs(self):
        for i in range(3):
            name = "kms-%02d.corp.example.com" % i  # the names bench_store's pins carry
            pf = self.path("stub%d.port" % i)
            p = self.p.start([self.b("kms-stubhost"), "-l", "127.0.0.1:0", "--port-file", pf,
                              "-N", name, "--log", "/dev/null"],
                             stderr=open(self.path("stub%d.err" % i), "w"))
            self.stubs.append((name, p, bl.wait_file(pf, p)))

    def relay_conf(self, tag, state_dir, max_conn=8000, per_source=8000, extra="", pool_size=4,
                   activations=False):
        hosts = ",\n".join('  { name = "%s"; address = "127.0.0.1:%d"; }' % (n, port)
                           for n, _, port in self.stubs)
        text = ('instance_id = "bench";\nstate_dir = "%s";\nlisten = [ "127.0.0.1:0" ];\n'
                'clients: { allow = [ "127.0.0.0/8" ]; max_connections = %d; '
                'max_per_source = %d; rate = 0; idle_timeout = "1h"; header_timeout = "1h"; };\n'
                'hosts = (\n%s );\n'
                'backend: { pool_size = %d; };\n'
                'log: { target = "stderr"; level = "info"; activations = %s; };\n%s'
                % (state_dir, max_conn, per_source, hosts, pool_size,
                   "true" if activations else "false", extra))
        path = self.path("%s.conf" % tag)
        with open(path, "w") as f:
            f.write(text)
        return path

    def start_relay(self, tag, conf=None, **kw):
        state = self.path("state-" + tag)
        conf = conf or self.relay_conf(tag, state, **kw)
        pf = self.path(tag + ".port")
        p = self.p.start([self.b("kmsrelayd"), "-c", conf, "--port-file", pf],
                         stderr=open(self.path(tag + ".err"), "w"))
        return p, bl.wait_file(pf, p)

    def haproxy_conf(self, port, nbthread=None):
        servers = "\n".join("    server %s 127.0.0.1:%d" % (n.split(".")[0], pt)
                            for n, _, pt in self.stubs)
        threads = "    nbthread %d\n" % nbthread if nbthread else ""
        return ("global\n    maxconn 8000\n%s\ndefaults\n    mode tcp\n    timeout connect 5s\n"
                "    timeout client 30s\n    timeout server 30s\n\n"
                "frontend kms\n    bind 127.0.0.1:%d\n    default_backend kmshosts\n\n"
                "backend kmshosts\n    balance source\n    hash-type consistent\n%s\n"
                % (threads, port, servers))

    def start_haproxy(self, tag, nbthread=None):
        for _ in range(5):
            port = bl.free_port()  # HAProxy cannot bind port 0 for us
            cfg = self.path(tag + ".cfg")
            with open(cfg, "w") as f:
                f.write(self.haproxy_conf(port, nbthread))
            if not nbthread:
                self.res["haproxy_cfg"] = self.haproxy_conf(port).replace(str(port), "PORT")
            p = self.p.start(["haproxy", "-db", "-f", cfg],
                             stdout=open(self.path(tag + ".log"), "w"), stderr=subprocess.STDOUT)
            if bl.wait_listening(port, p):
                return p, port
            self.p.stop(p)
        raise bl.BenchError("HAProxy did not start; see %s" % self.path(tag + ".log"))

    # ---- load ---------------------------------------------------------------------

    def loadgen(self, port, n, c, seed, rate=None, sources=LG_SOURCES, k=None, lat=False,
                timeout=600):
        """kms-loadgen, one process per source address (so HAProxy's `balance
        source` sees several clients); returns the merged result."""
        self.seq += 1
        procs = []
        np_ = max(1, len(sources))
        for j in range(np_):
            nj = n // np_ + (1 if j < n % np_ else 0)
            kj = max(1, int(nj * k)) if k else nj
            base = self.path("lg%d-%d" % (self.seq, j))
            args = [self.b("kms-loadgen"), "-t", "127.0.0.1:%d" % port, "-n", nj,
                    "-c", max(1, c // np_), "-k", kj, "--seed", seed * 100 + j, "--mix", MIX,
                    "-q", "--json", base + ".json"]
            if sources:
                args += ["--source", sources[j]]
            if rate:
                args += ["--rate", "%g" % (rate / np_)]
            if lat:
                args += ["--latency-file", base + ".lat"]
            procs.append((self.p.start(args, stdout=subprocess.DEVNULL,
                                       stderr=open(base + ".err", "w")), base))
        out = {"act": 0, "ok": 0, "errors": 0, "wall": 0.0, "lat": [], "kinds": {}}
        end = time.monotonic() + timeout
        for p, base in procs:
            try:
                p.wait(timeout=max(1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise bl.BenchError("kms-loadgen timed out (%s)" % base)
            self.p.live.remove(p)
            with open(base + ".json") as f:
                s = json.load(f)["summary"]
            out["act"] += s["activations"]
            out["ok"] += s["ok"]
            out["errors"] += s["errors"]
            out["wall"] = max(out["wall"], s["wall_s"])
            for kind, v in s["errors_by_kind"].items():
                out["kinds"][kind] = out["kinds"].get(kind, 0) + v
            if lat:
                out["lat"] += bl.read_latencies(base + ".lat")
            if s["errors"]:
                with open(base + ".err") as f:
                    log("loadgen errors (%s): %s" % (base, f.read()[-500:]))
        out["thr"] = out["act"] / out["wall"] if out["wall"] else 0.0
        out["lat"].sort()
        return out

    def measured(self, pid, fn):
        """Runs fn() and returns (its result, CPU seconds of pid, of each stub)."""
        c0 = bl.cpu_seconds(pid)
        s0 = [bl.cpu_seconds(p.pid) for _, p, _ in self.stubs]
        r = fn()
        c1 = bl.cpu_seconds(pid)
        s1 = [bl.cpu_seconds(p.pid) for _, p, _ in self.stubs]
        return r, c1 - c0, [b - a for a, b in zip(s0, s1)]

    # ---- phases -------------------------------------------------------------------

    def start_scenario(self, sc, tag):
        if sc == "a":
            _, p, port = self.stubs[0]
            return None, p.pid, port
        if sc.startswith("b"):
            p, port = self.start_haproxy(tag, nbthread=1 if sc == "b1" else None)
        else:
            p, port = self.start_relay(tag, pool_size=16 if sc == "c16" else 4,
                                       activations=sc == "d")
        return p, p.pid, port

    def stop_scenario(self, proc):
        if proc is not None:
            rc = self.p.stop(proc)
            if rc not in (0, -signal.SIGTERM, 143):
                log("warning: %d exited with %s" % (proc.pid, rc))

    def sweep(self):
        self.p.phase = "sweep"
        k = self.k
        rows = {sc: {} for sc in SWEEP}
        for sc in SWEEP:
            proc, pid, port = self.start_scenario(sc, "sweep-" + sc)
            self.loadgen(port, k["warm_n"], 16, 9999, k=0.5)
            for c in k["sweep_c"]:
                r = self.loadgen(port, k["sweep_n"], c, 9000 + c, k=0.5)
                rows[sc][c] = (r["thr"], r["errors"])
                log("sweep %s c=%d: %.0f/s errors=%d" % (sc, c, r["thr"], r["errors"]))
            self.stop_scenario(proc)
        self.res["sweep"] = rows

    def compare(self):
        k = self.k
        runs = {sc: [] for sc in SCEN}
        lats = {sc: [] for sc in SCEN}
        for rep in range(k["reps"]):
            order = SCEN[rep % len(SCEN):] + SCEN[:rep % len(SCEN)]  # no setup always first
            for sc in order:
                self.p.phase = "compare (%s)" % sc
                proc, pid, port = self.start_scenario(sc, "cmp%d-%s" % (rep, sc))
                self.loadgen(port, k["warm_n"], 16, 8000 + rep, k=0.5)
                thr, cpu_t, stub_t = self.measured(
                    pid, lambda: self.loadgen(port, k["thr_n"], k["thr_c"], 1000 * (rep + 1),
                                              k=0.5))
                n_lat = k["lat_rate"] * k["lat_secs"]
                lat, cpu_l, stub_l = self.measured(
                    pid, lambda: self.loadgen(port, n_lat, 64, 1000 * (rep + 1) + 500,
                                              rate=k["lat_rate"], k=0.5, lat=True))
                hwm = bl.status_kib(pid, "VmHWM")
                anon, fil = bl.status_kib(pid, "RssAnon"), bl.status_kib(pid, "RssFile")
                self.stop_scenario(proc)
                row = {
                    "thr": thr["thr"], "thr_errors": thr["errors"], "thr_act": thr["act"],
                    "cpu_us": cpu_t * 1e6 / max(1, thr["act"]),
                    "cpu_us_rate": cpu_l * 1e6 / max(1, lat["act"]),
                    "backend_cpu_us": sum(stub_t) * 1e6 / max(1, thr["act"]),
                    "stub_share": [x / sum(stub_t) if sum(stub_t) else 0 for x in stub_t],
                    "p50_ms": bl.percentile(lat["lat"], 50) / 1000.0,
                    "p90_ms": bl.percentile(lat["lat"], 90) / 1000.0,
                    "p99_ms": bl.percentile(lat["lat"], 99) / 1000.0,
                    "p999_ms": bl.percentile(lat["lat"], 99.9) / 1000.0,
                    "lat_errors": lat["errors"], "lat_act": lat["act"], "rss_peak_kib": hwm,
                    "lat_thr": lat["thr"], "rss_anon_kib": anon, "rss_file_kib": fil,
                }
                runs[sc].append(row)
                lats[sc] += lat["lat"]
                log("rep %d %s: %.0f/s, p50 %.3f p99 %.3f ms, cpu %.1f us/act, hwm %d KiB, "
                    "errors %d+%d" % (rep, sc, row["thr"], row["p50_ms"], row["p99_ms"],
                                      row["cpu_us"], hwm, row["thr_errors"], row["lat_errors"]))
        self.res["runs"] = runs
        return lats

    def syscalls(self):
        """System calls per activation of each setup's process (for (a): the
        stub host), counted by `strace -c -f -p PID` attached after a warm-up
        that wrote the pins of the very clients measured (steady state: every
        client known), over sys_n activations of `kms-loadgen -c sys_c --ndr
        win8` (a new connection each: bind, alter_context, request, close)."""
        self.p.phase = "system calls"
        k = self.k
        out = {}
        if not shutil.which("strace"):
            log("strace not installed: system calls per activation not measured")
            self.res["syscalls"] = out
            return
        for sc in SCEN:
            proc, pid, port = self.start_scenario(sc, "sys-" + sc)
            args = [self.b("kms-loadgen"), "-t", "127.0.0.1:%d" % port, "-n", k["sys_n"],
                    "-c", k["sys_c"], "-k", k["sys_n"], "--seed", 77, "--ndr", "win8", "-q"]
            self.p.run(args, timeout=300)  # warm-up: the same clients, pins written
            time.sleep(0.5)
            sfile = self.path("strace-%s.txt" % sc)
            tr = self.p.start(["strace", "-c", "-f", "-p", pid, "-o", sfile],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # attached to every thread
            rc, _, err = self.p.run(args, timeout=300)
            time.sleep(0.3)
            self.p.stop(tr, sig=signal.SIGINT)
            self.stop_scenario(proc)
            calls = {}
            with open(sfile) as f:
                for line in f:
                    w = line.split()
                    # % time, seconds, usecs/call, calls, [errors], syscall
                    if len(w) >= 5 and w[-1] != "total" and w[0][0].isdigit() and w[3].isdigit():
                        calls[w[-1]] = int(w[3])
            n = k["sys_n"]
            out[sc] = {"total": sum(calls.values()) / n,
                       "by_call": {c: v / n for c, v in sorted(calls.items(), key=lambda x: -x[1])},
                       "loadgen_rc": rc}
            log("syscalls %s: %.2f per activation (%s)" % (sc, out[sc]["total"], ", ".join(
                "%s %.2f" % (c, v) for c, v in list(out[sc]["by_call"].items())[:8])))
        self.res["syscalls"] = out

    def idle(self):
        self.p.phase = "scale: idle connections"
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        self.res["fd_hard_limit"] = hard
        out = []
        ns = list(self.k["idle_ns"])
        feasible = (hard - 1500) // 1000 * 1000
        if any(n > feasible for n in ns) and feasible > 0 and feasible not in ns:
            ns.append(feasible)  # the most this machine allows, measured instead
        for n in sorted(ns):
            row = {"n": n, "per_conn": [], "rss0": [], "rss1": [], "bound": []}
            if n > feasible:
                row["skipped"] = "needs %d fds per process, the hard limit is %d" % (n + 1500, hard)
                out.append(row)
                log("idle %d: skipped (%s)" % (n, row["skipped"]))
                continue
            for rep in range(self.k["idle_reps"]):
                proc, port = self.start_relay("idle%d-%d" % (n, rep), max_conn=n + 1000,
                                              per_source=n)
                self.loadgen(port, 1000, 8, 7000 + rep, sources=[], k=0.5)
                time.sleep(0.5)
                rss0 = bl.status_kib(proc.pid, "VmRSS")
                chunk = max(1000, hard - 500)
                clients, left, i = [], n, 0
                while left > 0:
                    m = min(chunk, left)
                    srcs = ",".join(IDLE_SOURCES[i % 2::2] if n > chunk else IDLE_SOURCES)
                    clients.append(self.p.start(
                        [sys.executable, os.path.join(os.path.dirname(__file__), "idle_clients.py"),
                         "127.0.0.1:%d" % port, m, srcs],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                        stderr=open(self.path("idle.err"), "a")))
                    left -= m
                    i += 1
                bound = 0
                for c in clients:
                    line = c.stdout.readline()  # idle_clients bounds itself to 120 s
                    bound += int(line.split("ok=")[1].split()[0]) if "ok=" in line else 0
                time.sleep(1.0)
                rss1 = bl.status_kib(proc.pid, "VmRSS")
                for c in clients:
                    c.stdin.close()
                    self.p.stop(c)
                self.stop_scenario(proc)
                row["rss0"].append(rss0)
                row["rss1"].append(rss1)
                row["bound"].append(bound)
                row["per_conn"].append((rss1 - rss0) * 1024.0 / n)
                log("idle %d rep %d: bound %d, RSS %d -> %d KiB, %.0f B/conn"
                    % (n, rep, bound, rss0, rss1, row["per_conn"][-1]))
            out.append(row)
        self.res["idle"] = out

    def store(self):
        self.p.phase = "scale: 1M pins"
        k = self.k
        d = self.path("store1m")
        rc, out, err = self.p.run([os.path.join(self.tools, "bench_store"), "-n", k["pins"],
                                   "-d", d, "-k"], timeout=1200)
        if rc != 0:
            raise bl.BenchError("bench_store failed: %s" % err)
        st = {"bench_store": out.strip().splitlines()}
        data = os.path.join(d, "data.mdb")
        sb = os.stat(data)
        st["data_apparent"] = sb.st_size
        st["data_allocated"] = sb.st_blocks * 512
        st["dir_allocated"] = sum(os.stat(os.path.join(d, f)).st_blocks * 512 for f in os.listdir(d))
        for line in st["bench_store"]:
            if line.startswith("lookups:"):
                st["store_p99_us"] = float(line.split("p99 ")[1].split()[0])
                st["store_p50_us"] = float(line.split("p50 ")[1].split()[0])
            if line.startswith("reopen"):
                st["store_open_ms"] = float(line.split(": ")[1].split()[0])
        extra = 'routing: { pin_idle = "3650d"; };\nstore: { map_size = "4G"; };\n'
        conf = self.relay_conf("store1m", d, extra=extra)
        empty_conf = self.relay_conf("store0", self.path("state-empty"), extra=extra)
        st["startup_ms"] = [self.startup(conf, "start1m-%d" % i) for i in range(k["start_reps"])]
        st["startup_empty_ms"] = [self.startup(empty_conf, "start0-%d" % i)
                                  for i in range(k["start_reps"])]
        st["route"] = []
        for i in range(k["route_reps"]):
            rc, out, err = self.p.run([os.path.join(self.tools, "bench_route"), "-c", conf,
                                       "-n", k["pins"]], timeout=300)
            if rc != 0:
                raise bl.BenchError("bench_route failed: %s" % err)
            st["route"].append(dict(kv.split("=") for kv in out.split()))
        # The daemon serving pinned clients: the same 1M store, activations at the fixed rate.
        self.res["store"] = st
        log("store: startup %s ms, route %s" % (st["startup_ms"], st["route"]))

    def startup(self, conf, tag):
        """Time from exec to kmsrelayd's `event=ready` log line, in ms."""
        pf = self.path(tag + ".port")
        t0 = time.monotonic()
        p = self.p.start([self.b("kmsrelayd"), "-c", conf, "--port-file", pf],
                         stderr=subprocess.PIPE)
        got = {}

        def reader():
            for line in p.stderr:
                if "event=ready" in line and "t" not in got:
                    got["t"] = time.monotonic()
        th = threading.Thread(target=reader, daemon=True)
        th.start()
        end = time.monotonic() + 30
        while "t" not in got and time.monotonic() < end and p.poll() is None:
            time.sleep(0.001)
        self.p.stop(p)
        th.join(timeout=5)
        if "t" not in got:
            raise bl.BenchError("kmsrelayd (%s) never logged event=ready" % tag)
        return (got["t"] - t0) * 1e3

    def storm(self):
        self.p.phase = "scale: activation storm"
        k = self.k
        rows = []
        for rep in range(k["storm_reps"]):
            proc, port = self.start_relay("storm%d" % rep)
            r, cpu, _ = self.measured(proc.pid, lambda: self.loadgen(
                port, k["storm_n"], k["storm_c"], 500 + rep, sources=[], lat=True))
            hwm = bl.status_kib(proc.pid, "VmHWM")
            anon, fil = bl.status_kib(proc.pid, "RssAnon"), bl.status_kib(proc.pid, "RssFile")
            rc = self.p.stop(proc)
            with open(self.path("storm%d.err" % rep)) as f:
                flushed = [ln for ln in f if "store_closed" in ln]
            rows.append({"thr": r["thr"], "errors": r["errors"], "act": r["act"],
                         "kinds": r["kinds"], "wall": r["wall"],
                         "p50_ms": bl.percentile(r["lat"], 50) / 1e3,
                         "p90_ms": bl.percentile(r["lat"], 90) / 1e3,
                         "p99_ms": bl.percentile(r["lat"], 99) / 1e3,
                         "max_ms": r["lat"][-1] / 1e3 if r["lat"] else None,
                         "cpu_us": cpu * 1e6 / max(1, r["act"]), "rss_peak_kib": hwm,
                         "rss_anon_kib": anon, "rss_file_kib": fil,
                         "exit": rc, "store_closed": flushed[-1].strip() if flushed else ""})
            log("storm %d: %.0f/s errors %d p99 %.2f ms" % (rep, r["thr"], r["errors"],
                                                           rows[-1]["p99_ms"]))
        self.res["storm"] = rows

    # ---- machine ------------------------------------------------------------------

    def machine(self):
        m = {"nproc": os.cpu_count(), "kernel": platform.release()}
        with open("/proc/cpuinfo") as f:
            m["cpu"] = next((ln.split(":", 1)[1].strip() for ln in f
                             if ln.startswith("model name")), "?")
        with open("/proc/meminfo") as f:
            m["mem_gib"] = int(f.readline().split()[1]) / 1048576.0
        try:
            with open("/etc/os-release") as f:
                m["os"] = next((ln.split("=", 1)[1].strip().strip('"') for ln in f
                                if ln.startswith("PRETTY_NAME=")), "?")
        except OSError:
            m["os"] = "?"

        def first_line(args):
            try:
                r = subprocess.run(args, capture_output=True, text=True, timeout=10)
                return (r.stdout or r.stderr).strip().splitlines()[0]
            except (OSError, IndexError, subprocess.SubprocessError):
                return "?"
        m["haproxy"] = first_line(["haproxy", "-v"])
        m["cc"] = first_line(["cc", "--version"])
        src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        m["git"] = first_line(["git", "-C", src, "describe", "--always", "--dirty"])
        return m

    def run(self):
        t0 = time.monotonic()
        self.res["machine"] = self.machine()
        self.res["load_start"] = bl.loadavg()
        self.res["date"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        log("work dir %s, load %s" % (self.w, self.res["load_start"]))
        self.start_stubs()
        only = self.a.only.split(",") if self.a.only else None
        self.res["only"] = only
        lats = {}
        if not only or "sweep" in only:
            self.sweep()
        if not only or "syscalls" in only:
            self.syscalls()
        self.res["load_compare"] = bl.loadavg()
        if not only or "compare" in only:
            lats = self.compare()
        self.res["load_scale"] = bl.loadavg()
        if not only or "idle" in only:
            self.idle()
        if not only or "store" in only:
            self.store()
        if not only or "storm" in only:
            self.storm()
        self.res["load_end"] = bl.loadavg()
        self.res["elapsed_s"] = time.monotonic() - t0
        self.res["commands"] = self.p.commands
        with open(os.path.join(self.a.out, "results.json"), "w") as f:
            json.dump(self.res, f, indent=1)
        if lats:
            report.plot(lats, self.k["lat_rate"], os.path.join(self.a.out, "latency.png"))
        report.write(self.res, os.path.join(self.a.out, "RESULTS.md"))
        log("done in %.0f s: %s" % (self.res["elapsed_s"], os.path.join(self.a.out, "RESULTS.md")))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True, help="directory with kmsrelayd, kms-stubhost, kms-loadgen")
    ap.add_argument("--tools", required=True, help="directory with bench_store and bench_route")
    ap.add_argument("--out", required=True, help="where RESULTS.md and latency.png go")
    ap.add_argument("--quick", action="store_true", help="short run for development")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--only", help="comma list of phases (sweep,syscalls,compare,idle,store,"
                    "storm) for a partial run during development; RESULTS.md then shows those")
    ap.add_argument("--reps", type=int, help="rounds of the comparison (default 7, quick 2)")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    bench = Bench(a)
    # SIGTERM (tests/bench/run's trap) unwinds through the finally below.
    signal.signal(signal.SIGTERM, lambda *x: sys.exit(143))
    try:
        bench.run()
    finally:
        bench.p.stop_all()
        if not a.keep:
            shutil.rmtree(bench.w, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
