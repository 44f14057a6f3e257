"""report - RESULTS.md and latency.png from bench.py's results (pure formatting:
every number here was measured by bench.py; medians are taken here)."""
import os

import benchlib as bl

NAMES = {"a": "(a) direct", "b": "(b) HAProxy", "c": "(c) kmsrelayd",
         "d": "(d) kmsrelayd, activation log on",
         "b1": "(b) HAProxy, nbthread 1", "c16": "(c) kmsrelayd, pool_size 16"}
COLORS = {"a": "tab:gray", "b": "tab:blue", "c": "tab:red", "d": "tab:orange"}


def plot(lats, rate, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.6))
    for sc in [x for x in ("a", "b", "c", "d") if lats.get(x)]:
        xs = np.sort(np.asarray(lats.get(sc) or [1], dtype=float)) / 1000.0  # ms
        ys = np.arange(1, len(xs) + 1) / len(xs)
        label = "%s  pooled p50 %.2f  p99 %.2f ms" % (NAMES[sc], np.percentile(xs, 50),
                                               np.percentile(xs, 99))
        ax1.plot(xs, ys, color=COLORS[sc], label=label)
        ax2.plot(xs, np.maximum(1.0 - ys, 1.0 / len(xs)), color=COLORS[sc], label=NAMES[sc])
    ax1.set_xscale("log")
    ax1.set_xlabel("latency per activation (ms, log scale)")
    ax1.set_ylabel("fraction of activations")
    ax1.set_title("CDF at %d activations/s (all runs pooled)" % rate)
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend(loc="lower right", fontsize=8)
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("latency per activation (ms, log scale)")
    ax2.set_ylabel("fraction slower than x")
    ax2.set_title("Tail (1 - CDF)")
    ax2.grid(True, which="both", alpha=0.3)
    ax2.legend(loc="lower left", fontsize=8)
    fig.suptitle("kms-loadgen latency: connect + bind + activation, new connection each, "
                 "V6/V5/V4 mix", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def med(rows, key):
    return bl.median([r[key] for r in rows])


def f(x, fmt="%.1f"):
    return "n/a" if x is None else fmt % x


def ratio(x, y):
    return "n/a" if not x or not y else "%.2f" % (x / y)


def write(res, path):
    L = []
    m = res["machine"]
    k = res["params"]
    runs = res.get("runs")
    L.append("# kmsrelay benchmark results\n")
    L.append("Written by `tests/bench/run` on %s (tree `%s`), in %.0f s. Every figure is the "
             "median of the repeated runs listed below it; raw per-run values are in the "
             "tables and in the log of the run. Regenerate with `tests/bench/run`.\n"
             % (res["date"], m["git"], res["elapsed_s"]))
    L.append("## Machine\n")
    L.append("| | |\n|---|---|")
    for a, b in [("CPU", m["cpu"]), ("nproc", m["nproc"]), ("memory", "%.1f GiB" % m["mem_gib"]),
                 ("kernel", m["kernel"]), ("OS", m["os"]), ("HAProxy", m["haproxy"]),
                 ("compiler", m["cc"]), ("fd hard limit", res.get("fd_hard_limit", "n/a")),
                 ("load average at start", res["load_start"]),
                 ("load average before (a)/(b)/(c)/(d)", res["load_compare"]),
                 ("load average before the scale tests", res["load_scale"]),
                 ("load average at end", res["load_end"])]:
        L.append("| %s | %s |" % (a, b))
    load1 = max(float(res[x].split()[0]) for x in ("load_start", "load_compare", "load_scale",
                                                   "load_end"))
    if load1 > 0.5 * m["nproc"]:
        L.append("\n**Note:** the machine was shared while this ran (1-minute load average up to "
                 "%.1f on %d CPUs, from other builds and fuzzers). Absolute rates and tail "
                 "latencies are therefore pessimistic and noisy; the ratios between (a), (b) and "
                 "(c) are more robust because the setups were interleaved round by round, and "
                 "CPU per activation (time the process itself spent) is the least affected "
                 "figure." % (load1, m["nproc"]))
    if res.get("only"):
        L.append("\n**Partial run** (`bench.py --only %s`, %d rounds): the other phases were "
                 "not run; their figures are in earlier results." % (",".join(res["only"]),
                                                                     k["reps"]))
    L.append("")

    L.append("## Setup\n")
    L.append("- Backends: three `kms-stubhost` processes on 127.0.0.1 (port 0 + `--port-file`, "
             "`--log /dev/null`), the same three for every setup.")
    L.append("- (a) direct: the load generator talks to the first stub host.")
    L.append("- (b) HAProxy %s in TCP mode, `balance source`, `hash-type consistent`, over the "
             "three hosts, run in the foreground (`haproxy -db`), default thread count (one "
             "per CPU: %d here), no logging, `maxconn 8000` (kmsrelayd: "
             "`max_connections = 8000`). Configuration:\n\n```\n%s```"
             % (m["haproxy"].split()[2] if len(m["haproxy"].split()) > 2 else "", m["nproc"],
                res.get("haproxy_cfg", "")))
    L.append("- (c) kmsrelayd over the three hosts: `clients.rate = 0`, allow `127.0.0.0/8`, "
             "`backend.pool_size = 4` (default), **activation logging off** "
             "(`log.activations = false`; start-up and host-state lines still go to stderr, "
             "redirected to a file), state directory in a temporary directory, a fresh one per "
             "start.")
    L.append("- (d) kmsrelayd as (c) but with the default `log.activations = true`: one logfmt "
             "line per activation to stderr (redirected to a file), as users run it.")
    L.append("- Clients: `kms-loadgen`, a new TCP connection per activation (connect, RPC bind "
             "with the `mixed` NDR32/NDR64/BTFN binds, one request, close: what Windows does), "
             "protocol mix `%s`, every client activating twice (`-k` = n/2). %d processes, one "
             "per source address %s, so that HAProxy's `balance source` sees several client "
             "addresses; their counts are summed and their latencies pooled."
             % (res["mix"], len(res["lg_sources"]), ", ".join(res["lg_sources"])))
    L.append("- Each round starts every setup fresh (HAProxy and kmsrelayd processes; the stubs "
             "stay), warms it up with %d activations, then runs: a closed-loop throughput run "
             "(%d activations, %d in flight), and an open-loop latency run at %d activations/s "
             "for %d s. The order of (a), (b), (c), (d) rotates from round to round. %d rounds."
             % (k["warm_n"], k["thr_n"], k["thr_c"], k["lat_rate"], k["lat_secs"], k["reps"]))
    L.append("- CPU per activation: utime+stime of the proxy process from `/proc/PID/stat` "
             "before and after the run, divided by the activations (for (a): the stub host's "
             "CPU). Peak RSS: `VmHWM` of the proxy process after its round (for (a): the first "
             "stub, which also served (b) and (c) traffic before, so it is an upper bound).\n")

    meds = {}
    if res.get("syscalls"):
        L += syscall_section(res)
    if runs:
        meds = compare_section(res, L)
    if res.get("sweep"):
        L += sweep_section(res)
    L.append("![latency distributions](latency.png)\n")
    L.append("`latency.png`: distribution of every activation's latency in the fixed-rate runs "
             "(all rounds pooled), measured by kms-loadgen from connect start to the response "
             "(`--latency-file`).\n")

    L += scale_sections(res)
    if meds:
        L += targets(res, meds)
    L.append("## Commands\n")
    L.append("`$B` is the Release build directory, `$W` the temporary work directory. In order:\n")
    L.append("<details><summary>%d commands</summary>\n\n```" % len(res["commands"]))
    phase = None
    for ph, cmd in res["commands"]:
        if ph != phase:
            L.append("# --- %s" % ph)
            phase = ph
        L.append(cmd)
    L.append("```\n</details>\n")
    with open(path, "w") as fh:
        fh.write("\n".join(L) + "\n")


def scale_sections(res):
    L = []
    k = res["params"]
    if not any(res.get(x) for x in ("idle", "store", "storm")):
        return L
    L.append("## Scale\n")
    if res.get("idle"):
        L += idle_section(res)
    if res.get("store"):
        L += store_section(res)
    if res.get("storm"):
        L += storm_section(res)
    return L


def idle_section(res):
    L = []
    L.append("### Idle client connections on kmsrelayd\n")
    L.append("Each client connection is opened from 127.0.0.2-127.0.0.9 (bound source "
             "addresses, since loopback has ~28k ephemeral ports per source/destination pair), "
             "does the RPC bind and then idles (`tests/bench/idle_clients.py`). kmsrelayd is "
             "fresh for each repetition and warmed up with 1,000 activations; memory per "
             "connection = (VmRSS with N connections - VmRSS before) / N. This is user-space "
             "memory of the daemon; the kernel's socket buffers are not included.\n")
    L.append("| connections | repetitions | VmRSS before (KiB) | VmRSS with N (KiB) | bytes per "
             "connection (median) |")
    L.append("|---:|---:|---:|---:|---:|")
    for r in res["idle"]:
        if r.get("skipped"):
            L.append("| %d | not run: %s | | | |" % (r["n"], r["skipped"]))
            continue
        L.append("| %d | %d | %s | %s | %s |" % (r["n"], len(r["per_conn"]),
                                                 f(bl.median(r["rss0"]), "%.0f"),
                                                 f(bl.median(r["rss1"]), "%.0f"),
                                                 f(bl.median(r["per_conn"]), "%.0f")))
    return L


def store_section(res):
    L = []
    k = res["params"]
    st = res["store"]
    L.append("\n### A store with %s pins\n" % format(k["pins"], ","))
    L.append("Pins written by `bench_store` (tests/bench/bench_store.c: the store module's own "
             "code, realistic pins, group commits of 1,000 like the daemon's default); its "
             "output:\n")
    L.append("```\n%s\n```\n" % "\n".join(st["bench_store"]))
    route = st["route"]
    L.append("| figure | value |\n|---|---:|")
    L.append("| on-disk size (data.mdb, allocated) | %.1f MiB (%.0f bytes per pin) |"
             % (st["data_allocated"] / 1048576.0, st["data_allocated"] / k["pins"]))
    L.append("| state directory, allocated | %.1f MiB |" % (st["dir_allocated"] / 1048576.0))
    L.append("| kmsrelayd start-up with the pins: exec to `event=ready` (median of %d) | %.1f ms |"
             % (len(st["startup_ms"]), bl.median(st["startup_ms"])))
    L.append("| kmsrelayd start-up with an empty store (median of %d) | %.1f ms |"
             % (len(st["startup_empty_ms"]), bl.median(st["startup_empty_ms"])))
    L.append("| store lookup p50 / p99 (`bench_store`: `kr_store_pin_get`) | %.2f / %.2f µs |"
             % (st["store_p50_us"], st["store_p99_us"]))
    L.append("| in-daemon routing lookup p50 / p99 / p99.9 (`bench_route`: `kr_route_plan`, "
             "median of %d × %s lookups) | %.2f / %.2f / %.2f µs |"
             % (len(route), route[0]["lookups"],
                bl.median([float(x["p50_us"]) for x in route]),
                bl.median([float(x["p99_us"]) for x in route]),
                bl.median([float(x["p999_us"]) for x in route])))
    L.append("\nStart-up runs (ms): with pins %s; empty %s. The page cache was warm (the pins had "
             "just been written); LMDB maps the file and reads no pin at start-up, so a cold "
             "start costs a few page faults more, not a scan."
             % (", ".join("%.1f" % x for x in st["startup_ms"]),
                ", ".join("%.1f" % x for x in st["startup_empty_ms"])))
    L.append("`bench_route` creates the relay from the same configuration file as the daemon "
             "(kr_relay_create) and times kr_route_plan(): the pin lookup in LMDB plus the "
             "rendezvous ranking of the hosts, for random CMIDs of which 90% are pinned; it is "
             "the routing step of every activation, without the network.\n")
    return L


def storm_section(res):
    L = []
    k = res["params"]
    s = res["storm"]
    L.append("### Activation storm\n")
    L.append("%s distinct clients (`kms-loadgen -n %d -k %d -c %d`, one process, new connection "
             "each) through a fresh kmsrelayd with an empty store, as fast as the generator "
             "can send; %d repetitions, median:\n"
             % (format(k["storm_n"], ","), k["storm_n"], k["storm_n"], k["storm_c"], len(s)))
    L.append("| activations/s | errors (all runs) | p50 ms | p90 ms | p99 ms | max ms | CPU "
             "µs/act | peak RSS MiB | RSS at end: anon / file MiB |")
    L.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    L.append("| %.0f | %d | %.2f | %.2f | %.2f | %.2f | %.1f | %.1f | %.1f / %.1f |"
             % (med(s, "thr"), sum(x["errors"] for x in s), med(s, "p50_ms"), med(s, "p90_ms"),
                med(s, "p99_ms"), med(s, "max_ms"), med(s, "cpu_us"),
                med(s, "rss_peak_kib") / 1024.0, med(s, "rss_anon_kib") / 1024.0,
                med(s, "rss_file_kib") / 1024.0))
    L.append("\nA closed loop: 64 activations are always in flight, so the latencies include "
             "queueing behind each other. Every activation is a new client, so every one "
             "writes a new pin (group commits by the store's background thread).")
    L.append("\nPer run: " + "; ".join("%.0f/s, %d errors, p99 %.2f ms, exit %s (%s)"
                                       % (x["thr"], x["errors"], x["p99_ms"], x["exit"],
                                          x["store_closed"].split("event=")[-1])
                                       for x in s) + "\n")
    return L


def syscall_section(res):
    sy = res["syscalls"]
    k = res["params"]
    L = ["## System calls per activation\n",
         "`strace -c -f -p PID` attached to each setup's process (for (a): the stub host) for "
         "%d activations of `kms-loadgen -c %d --ndr win8` (a new connection each: RPC bind, "
         "alter_context for NDR32, one request, close, as Windows 8+ does), after a warm-up "
         "with the same clients (their pins written: steady state). Counted per activation; "
         "strace slows the process down, which changes how many events one `epoll_wait` "
         "returns but not the other calls. By hand: `strace -c -f -p $(pidof kmsrelayd)` "
         "while `kms-loadgen -t ADDR -n 2000 -c 4 -k 2000 --ndr win8` runs (twice: the first "
         "run writes the pins).\n" % (k["sys_n"], k["sys_c"]),
         "| setup | system calls per activation | of which |", "|---|---:|---|"]
    for sc in [x for x in ("a", "b", "c", "d") if x in sy]:
        by = sy[sc]["by_call"]
        L.append("| %s | %.1f | %s |" % (NAMES[sc], sy[sc]["total"], ", ".join(
            "%s %.2f" % (c, v) for c, v in by.items() if v >= 0.02)))
    L.append("")
    return L


def compare_section(res, L):
    k = res["params"]
    runs = res["runs"]
    scs = [x for x in ("a", "b", "c", "d") if runs.get(x)]
    L.append("## (a) direct vs (b) HAProxy vs (c) kmsrelayd vs (d) kmsrelayd with activation "
             "log\n")
    L.append("| figure (median of %d) | %s | (c)/(b) | (d)/(b) |"
             % (k["reps"], " | ".join(NAMES[sc] for sc in scs)))
    L.append("|---|" + "---:|" * (len(scs) + 2))
    rows = [("activations/s at saturation (closed loop, %d in flight)" % k["thr_c"], "thr", "%.0f"),
            ("latency p50 at %d/s (ms)" % k["lat_rate"], "p50_ms", "%.3f"),
            ("latency p99 at %d/s (ms)" % k["lat_rate"], "p99_ms", "%.3f"),
            ("latency p99.9 at %d/s (ms)" % k["lat_rate"], "p999_ms", "%.3f"),
            ("CPU per activation at saturation (µs, proxy process)", "cpu_us", "%.1f"),
            ("CPU per activation at %d/s (µs, proxy process)" % k["lat_rate"], "cpu_us_rate",
             "%.1f"),
            ("CPU per activation of the three backends together (µs)", "backend_cpu_us", "%.1f"),
            ("peak RSS (MiB)", "rss_peak_mib", "%.1f"),
            ("RSS at the end of the round: anonymous (MiB)", "rss_anon_mib", "%.1f"),
            ("RSS at the end of the round: file-backed (MiB)", "rss_file_mib", "%.1f")]
    for r in runs.values():
        for x in r:
            x["rss_peak_mib"] = x["rss_peak_kib"] / 1024.0
            x["rss_anon_mib"] = x["rss_anon_kib"] / 1024.0
            x["rss_file_mib"] = x["rss_file_kib"] / 1024.0
            x.setdefault("p999_ms", None)
    meds = {sc: {key: med(runs[sc], key) for _, key, _ in rows} for sc in scs}
    for label, key, fmt in rows:
        v = {sc: meds[sc][key] for sc in scs}
        L.append("| %s | %s | %s | %s |" % (label, " | ".join(f(v[sc], fmt) for sc in scs),
                                            ratio(v.get("c"), v.get("b")),
                                            ratio(v.get("d"), v.get("b"))))
    errs = {sc: sum(x["thr_errors"] + x["lat_errors"] for x in runs[sc]) for sc in scs}
    L.append("| activations with an error (all runs) | %s | | |"
             % " | ".join("%d" % errs[sc] for sc in scs))
    if "a" in meds:
        L.append("\nAdded median latency over direct: %s." % ", ".join(
            "%s %+.3f ms" % (NAMES[sc], meds[sc]["p50_ms"] - meds["a"]["p50_ms"])
            for sc in scs if sc != "a"))
    L.append("Capacity implied by CPU per activation at saturation (10^6 / µs: activations per "
             "second of one fully used core, independent of what else ran on the machine): "
             "%s." % "; ".join("%s %.0f/s" % (NAMES[sc], 1e6 / meds[sc]["cpu_us"])
                               for sc in scs if meds[sc]["cpu_us"]))
    L.append("File-backed RSS is mostly mapped code and, for kmsrelayd, the pages of its LMDB "
             "pin store that the round touched (the map grows with the pins written).")
    share = {sc: [bl.median([x["stub_share"][i] for x in runs[sc]]) for i in range(3)]
             for sc in scs}
    L.append("Backend CPU share during the throughput runs (kms-00/01/02): " + "; ".join(
        "%s %s" % (NAMES[sc], "/".join("%.0f%%" % (100 * s) for s in share[sc])) for sc in scs)
        + ". (HAProxy's `balance source` maps each client address to one host.)\n")
    L.append("Per run:\n")
    L.append("| setup | round | act/s | p50 ms | p99 ms | p99.9 ms | CPU µs/act (sat.) | "
             "CPU µs/act (%d/s) | peak RSS KiB | errors |" % k["lat_rate"])
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for sc in scs:
        for i, x in enumerate(runs[sc]):
            L.append("| %s | %d | %.0f | %.3f | %.3f | %s | %.1f | %.1f | %d | %d |"
                     % (NAMES[sc], i + 1, x["thr"], x["p50_ms"], x["p99_ms"],
                        f(x["p999_ms"], "%.3f"), x["cpu_us"], x["cpu_us_rate"],
                        x["rss_peak_kib"], x["thr_errors"] + x["lat_errors"]))
    return meds


def sweep_section(res):
    L = []
    k = res["params"]
    sw = res["sweep"]
    cs = sorted({int(c) for sc in sw for c in sw[sc]})
    L.append("\nSaturation check (one closed-loop run of %d activations per point, activations/s):"
             "\n" % k["sweep_n"])
    L.append("| in flight | " + " | ".join(NAMES[sc] for sc in sw) + " |")
    L.append("|---:|" + "---:|" * len(sw))
    for c in cs:
        L.append("| %d | %s |" % (c, " | ".join("%.0f" % sw[sc][c][0] for sc in sw)))
    best = {sc: max(v[0] for v in sw[sc].values()) for sc in sw}
    L.append("\nThe two extra columns are tuning variants run only here: HAProxy with "
             "`nbthread 1` (kmsrelayd is single-threaded) and kmsrelayd with "
             "`backend.pool_size = 16` instead of the default 4 (more requests in flight to each "
             "host). Best point of each: %s. The comparison above uses %d in flight and the "
             "defaults (HAProxy: one thread per CPU; kmsrelayd: pool_size 4).\n"
             % ("; ".join("%s %.0f/s" % (NAMES[sc], best[sc]) for sc in sw), k["thr_c"]))

    return L


def targets(res, meds):
    """Issue 13's acceptance figures, then the older targets."""
    L = ["## Targets\n", "| target | measured | result |", "|---|---|---|"]
    notes = []
    a, b, c = meds.get("a"), meds.get("b"), meds.get("c")
    d = meds.get("d") or c
    dn = "(d)" if meds.get("d") else "(c)"

    def row(text, measured, ok):
        L.append("| %s | %s | %s |" % (text, measured, "met" if ok else "**missed**"))

    sy = res.get("syscalls") or {}
    for sc in ("d", "c"):
        if sc in sy:
            row("at most 14 system calls per activation (%s)" % NAMES[sc],
                "%.1f (HAProxy %s)" % (sy[sc]["total"], f(sy.get("b", {}).get("total"))),
                sy[sc]["total"] <= 14)
    if b and d:
        row("CPU per activation at most 0.5× HAProxy's, activation log on (%s, saturation)" % dn,
            "%.1f vs %.1f µs (%s×)" % (d["cpu_us"], b["cpu_us"], ratio(d["cpu_us"], b["cpu_us"])),
            d["cpu_us"] <= 0.5 * b["cpu_us"])
        row("throughput at 64 in flight at least 1.5× HAProxy's (%s)" % dn,
            "%.0f vs %.0f activations/s (%s×)" % (d["thr"], b["thr"], ratio(d["thr"], b["thr"])),
            d["thr"] >= 1.5 * b["thr"])
        row("p99 at the fixed rate not above HAProxy's (%s)" % dn,
            "%.3f vs %.3f ms" % (d["p99_ms"], b["p99_ms"]), d["p99_ms"] <= b["p99_ms"])
    if a and b and d:
        add_b, add_d = b["p50_ms"] - a["p50_ms"], d["p50_ms"] - a["p50_ms"]
        row("added median latency at most 0.5× HAProxy's (%s)" % dn,
            "%+.3f ms vs %+.3f ms over direct" % (add_d, add_b), add_d <= 0.5 * add_b)
    idle = [r for r in res.get("idle") or [] if not r.get("skipped") and r["per_conn"]]
    worst = max(idle, key=lambda r: bl.median(r["per_conn"])) if idle else None
    if worst:
        v = bl.median(worst["per_conn"])
        row("< 2 KiB per idle client connection",
            ", ".join("%.0f B at %s" % (bl.median(r["per_conn"]), format(r["n"], ","))
                      for r in idle), v < 2048)
    for r in [r for r in res.get("idle") or [] if r.get("skipped")]:
        notes.append("Idle connections: %s connections were not measured on this machine (%s); "
                     "the largest count it allows was measured instead."
                     % (format(r["n"], ","), r["skipped"]))
    st = res.get("store")
    if st:
        su = bl.median(st["startup_ms"])
        row("start-up < 1 s with %s pins" % format(res["params"]["pins"], ","), "%.1f ms" % su,
            su < 1000)
        p99s = st["store_p99_us"]
        p99r = bl.median([float(x["p99_us"]) for x in st["route"]])
        row("lookup p99 < 20 µs", "store %.2f µs, in-daemon route plan %.2f µs" % (p99s, p99r),
            max(p99s, p99r) < 20)
    if res.get("storm"):
        storm_err = sum(x["errors"] for x in res["storm"])
        row("activation storm without errors", "%d errors in %d activations"
            % (storm_err, sum(x["act"] for x in res["storm"])), storm_err == 0)
    L.append("")
    if notes:
        L.append("Notes on the targets:\n")
        L += ["- " + n for n in notes]
        L.append("")
    return L
