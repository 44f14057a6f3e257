#!/usr/bin/env python3
"""Integration tests of kms-loadgen against real kms-stubhost processes.

Every check here is tied to a behaviour of the load generator: the acceptance
run (10,000 mixed V4/V5/V6 activations over NDR32 and NDR64 against two hosts,
counts cross-checked with the hosts' own logs), Windows-style connection reuse,
HRESULT accounting, connect and timeout errors, and usage errors.
"""
import collections
import json
import os
import re
import socket
import socketserver
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from krtest import binpath, check, recv_pdu, run_tests, SRC, VECTORS  # noqa: E402

OFFICE2016_KMS_ID = "85b5f61b-320b-4be3-814a-b76b2bfafc82"


def loadgen():
    return binpath("kms-loadgen")


def start_stub(h, name, extra=()):
    """Starts a stub host on a kernel-chosen port; returns (proc, port, log)."""
    pf = h.path(name + ".port")
    log = h.path(name + ".jsonl")
    args = [binpath("kms-stubhost"), "-l", "127.0.0.1:0", "--port-file", pf,
            "-N", name, "--log", log] + list(extra)
    p, port = h.start(args, name, port_file=pf)
    return p, port, log


def read_log(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def requests_of(log):
    return [e for e in log if e.get("event") == "request"]


def run_loadgen(h, args, name="lg", timeout=300):
    """Runs kms-loadgen with --json; returns (rc, stdout, stderr, doc)."""
    jpath = h.path(name + ".json")
    rc, out, err = h.run([loadgen()] + args + ["--json", jpath], timeout=timeout)
    doc = None
    if os.path.exists(jpath) and os.path.getsize(jpath) > 0:
        with open(jpath) as f:
            doc = json.load(f)
    return rc, out, err, doc


def last_line(out):
    lines = [l for l in out.strip().splitlines() if l.strip()]
    return lines[-1] if lines else ""


def test_acceptance_two_hosts(h):
    """10,000 mixed activations, NDR32 and NDR64, renewals, two hosts: 0 errors,
    and each host's count equals the distinct CMIDs it saw per application."""
    pa, porta, loga = start_stub(h, "hostA")
    pb, portb, logb = start_stub(h, "hostB")
    rc, out, err, doc = run_loadgen(h, [
        "-t", "127.0.0.1:%d" % porta, "-t", "127.0.0.1:%d" % portb,
        "-n", "10000", "-c", "16", "-k", "6999", "--ndr", "mixed", "--seed", "7"])
    check(rc == 0, "loadgen exited %d\n%s\n%s" % (rc, out[-2000:], err[-2000:]))
    check(last_line(out) == "ok=10000 errors=0", "last line: %r" % last_line(out))
    s = doc["summary"]
    check(s["ok"] == 10000 and s["errors"] == 0 and s["activated"] == 10000,
          "summary: %s" % s)
    check(s["activations_per_s"] > 0 and s["latency_ms"]["answered"] == 10000,
          "latency/throughput missing: %s" % s)
    clients = doc["clients"]
    # An odd K: a client's renewal has the other parity than its first
    # activation, so per-activation target choices could not pass unnoticed.
    check(len(clients) == 6999, "expected 6999 clients, got %d" % len(clients))
    check(sum(c["activations"] for c in clients) == 10000, "activation sum")
    check(sum(1 for c in clients if c["activations"] == 2) == 3001,
          "expected 3001 renewing clients")
    versions = collections.Counter(c["version"] for c in clients)
    check(set(versions) == {"4.0", "5.0", "6.0"}, "versions: %s" % versions)
    # Stable target: every client was answered by exactly one host.
    for c in clients:
        check(len(c["epids"]) == 1 and c["last_epid"] == c["epids"][0],
              "client %s answered by %s" % (c["cmid"], c["epids"]))
    epids = {c["last_epid"] for c in clients}
    check(len(epids) == 2, "both hosts must get traffic: %s" % epids)

    # From the load generator's view: per (ePID, app) the largest count
    # reported equals the number of distinct CMIDs that host answered.
    seen = collections.defaultdict(set)
    top = collections.defaultdict(int)
    for c in clients:
        key = (c["last_epid"], c["app_id"])
        seen[key].add(c["cmid"])
        top[key] = max(top[key], c["last_count"])
    for key in seen:
        check(top[key] == len(seen[key]),
              "%s: largest count %d != %d distinct CMIDs" % (key, top[key], len(seen[key])))

    # From the hosts' view (logs are complete once the hosts exited).
    h.stop(pa)
    h.stop(pb)
    ndrs = collections.Counter()
    total = 0
    for log, port in ((loga, porta), (logb, portb)):
        entries = read_log(log)
        host_epid = [e["epid"] for e in entries if e.get("event") == "listening"][0]
        target = "127.0.0.1:%d" % port
        mine = [c for c in clients if c["target"] == target]
        check(mine and all(c["epids"] == [host_epid] for c in mine),
              "clients of %s were not all answered by it" % target)
        reqs = requests_of(entries)
        check(reqs, "%s got no requests" % log)
        total += len(reqs)
        per_app = collections.defaultdict(set)
        final = {}
        for r in reqs:
            check(r["hresult"] == "0x00000000", "host refused: %s" % r)
            per_app[r["app_id"]].add(r["cmid"])
            final[r["app_id"]] = max(final.get(r["app_id"], 0), r["count"])
            ndrs[r["ndr"]] += 1
        epid = reqs[0]["epid"]
        for app, cmids in per_app.items():
            check(final[app] == len(cmids),
                  "%s %s: count %d != %d distinct CMIDs" % (log, app, final[app], len(cmids)))
            check(cmids == seen[(epid, app)],
                  "%s %s: host and loadgen disagree on the CMID set" % (log, app))
    check(total == 10000, "hosts logged %d requests" % total)
    check(ndrs["ndr32"] > 0 and ndrs["ndr64"] > 0, "NDR mix: %s" % ndrs)


def test_per_conn_win8(h):
    """--per-conn 5 --ndr win8: 5 requests per connection, the first NDR32
    (after an alter_context) and the rest NDR64, like Windows."""
    p, port, log = start_stub(h, "host")
    rc, out, err, doc = run_loadgen(h, ["-t", "127.0.0.1:%d" % port, "-n", "2000", "-c", "8",
                                        "--per-conn", "5", "--ndr", "win8"])
    check(rc == 0, "loadgen exited %d\n%s\n%s" % (rc, out[-2000:], err[-2000:]))
    s = doc["summary"]
    check(s["ok"] == 2000 and s["connections"] == 400,
          "expected 2000 ok over 400 connections: %s" % s)
    h.stop(p)
    reqs = requests_of(read_log(log))
    ndrs = collections.Counter(r["ndr"] for r in reqs)
    check(ndrs == {"ndr32": 400, "ndr64": 1600}, "per-request NDR: %s" % ndrs)
    peers = collections.Counter(r["peer"] for r in reqs)
    check(max(peers.values()) >= 5, "no connection carried 5 requests: %s" % peers.most_common(3))


def test_ndr_modes(h):
    """ndr32 sends NDR32 only, ndr64 every request NDR64; against a
    pre-Windows-8 host (NDR64 rejected) win8 and ndr64 fall back to NDR32."""
    p, port, log = start_stub(h, "w8")
    q, port32, log32 = start_stub(h, "old", ["--ndr32-only"])
    runs = [(port, log, "ndr32", {"ndr32"}), (port, log, "ndr64", {"ndr64"}),
            (port32, log32, "win8", {"ndr32"}), (port32, log32, "ndr64", {"ndr32"})]
    seen = []
    for prt, lg, mode, want in runs:
        rc, out, err, doc = run_loadgen(h, ["-t", "127.0.0.1:%d" % prt, "-n", "60", "-c", "4",
                                            "--per-conn", "3", "--ndr", mode], "ndr-" + mode)
        check(rc == 0, "--ndr %s against %s: exit %d\n%s" % (mode, lg, rc, err[-1500:]))
        seen.append((lg, mode, want))
    h.stop(p)
    h.stop(q)
    offset = collections.Counter()
    for lg, mode, want in seen:
        reqs = requests_of(read_log(lg))[offset[lg]:offset[lg] + 60]
        offset[lg] += 60
        got = {r["ndr"] for r in reqs}
        check(len(reqs) == 60 and got == want, "--ndr %s: host saw %s" % (mode, got))


def test_refused_hresult(h):
    """A host refusing office2016's KMS id: errors counted under 0xC004F042
    and exit 1; with --allow-hresult the same run exits 0."""
    p, port, log = start_stub(h, "host", ["--refuse-kmsid", OFFICE2016_KMS_ID])
    target = ["-t", "127.0.0.1:%d" % port, "-n", "600", "-c", "8"]
    rc, out, err, doc = run_loadgen(h, target, "refused")
    check(rc == 1, "expected exit 1, got %d\n%s" % (rc, out[-2000:]))
    office = sum(c["activations"] for c in doc["clients"] if c["product"] == "office2016")
    check(office > 0, "seed 1 must produce office2016 clients")
    s = doc["summary"]
    check(s["errors_by_hresult"] == {"0xc004f042": office} and s["errors"] == office,
          "summary %s, expected %d refusals" % (s, office))
    check(s["errors_by_kind"]["hresult"] == office, "kind count: %s" % s["errors_by_kind"])
    check(re.search(r"hresult 0xc004f042 .*: %d" % office, out), "text summary: %s" % out)
    check(last_line(out) == "ok=%d errors=%d" % (600 - office, office), last_line(out))
    for c in doc["clients"]:
        want = {"0xc004f042": 1} if c["product"] == "office2016" else {"0x00000000": 1}
        check(c["hresults"] == want, "client %s hresults %s" % (c["product"], c["hresults"]))

    rc, out, err, doc = run_loadgen(h, target + ["--allow-hresult", "0xC004F042"], "allowed")
    check(rc == 0, "expected exit 0 with --allow-hresult, got %d\n%s" % (rc, out[-2000:]))
    s = doc["summary"]
    check(s["errors"] == 0 and s["refused"] == office and s["ok"] == 600,
          "summary with allow: %s" % s)
    check(s["refused_by_hresult"] == {"0xc004f042": office}, "refused: %s" % s)


def test_connect_errors(h):
    """Nothing listening: every activation is a connect error, exit 1, fast."""
    holder = socket.socket()  # bound, never listening: connects are refused
    holder.bind(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    try:
        t0 = time.time()
        rc, out, err, doc = run_loadgen(h, ["-t", "127.0.0.1:%d" % port, "-n", "200", "-c", "8",
                                            "--timeout-ms", "2000"])
        elapsed = time.time() - t0
    finally:
        holder.close()
    check(rc == 1, "expected exit 1, got %d" % rc)
    check(elapsed < 2.0 + 3.0, "took %.1f s, timeout bound is 2 s" % elapsed)
    s = doc["summary"]
    check(s["errors"] == 200 and s["errors_by_kind"]["connect"] == 200,
          "summary: %s" % s)
    check(last_line(out) == "ok=0 errors=200", last_line(out))


def test_timeouts(h):
    """A host that never answers: timeouts at the deadline, exit 1."""
    p, port, log = start_stub(h, "hang", ["--hang"])
    t0 = time.time()
    rc, out, err, doc = run_loadgen(h, ["-t", "127.0.0.1:%d" % port, "-n", "16", "-c", "8",
                                        "--timeout-ms", "300"])
    elapsed = time.time() - t0
    check(rc == 1, "expected exit 1, got %d" % rc)
    check(doc["summary"]["errors_by_kind"]["timeout"] == 16, "summary: %s" % doc["summary"])
    check(0.55 < elapsed < 0.6 + 3.0, "two waves of 300 ms took %.2f s" % elapsed)


def test_population_options(h):
    """Seeded population: same seed = same CMIDs; --cmid, --clone-clients,
    --skew-clients, --products and --ws-prefix reach the wire."""
    p, port, log = start_stub(h, "host")
    fixed = "11111111-2222-4333-8444-555555555554"
    args = ["-t", "127.0.0.1:%d" % port, "-n", "40", "-c", "4", "--seed", "42",
            "--cmid", fixed, "--clone-clients", "3", "--skew-clients", "2",
            "--skew-seconds", "-600", "--products", "win10,office2010",
            "--ws-prefix", "lab-", "--vm-ratio", "1"]
    rc, out, err, doc1 = run_loadgen(h, args, "a")
    check(rc == 0, "run 1 exited %d: %s" % (rc, err[-2000:]))
    rc, out, err, doc2 = run_loadgen(h, args, "b")
    check(rc == 0, "run 2 exited %d" % rc)
    c1, c2 = doc1["clients"], doc2["clients"]
    check([c["cmid"] for c in c1] == [c["cmid"] for c in c2], "same seed, different CMIDs")
    check(c1[0]["cmid"] == fixed, "--cmid not used first: %s" % c1[0]["cmid"])
    for j in range(3):
        check(c1[37 + j]["cmid"] == c1[j]["cmid"] and c1[37 + j]["product"] == c1[j]["product"],
              "clone %d does not share client %d's CMID" % (37 + j, j))
        check(c1[37 + j]["workstation"] == "lab-%d.example.test" % (37 + j), "clone name")
    check({c["product"] for c in c1} == {"win10", "office2010"}, "products not restricted")
    check(all(c["vm"] for c in c1), "--vm-ratio 1 must flag every client")
    rc, out, err, doc3 = run_loadgen(h, args[:-2] + ["--seed", "43"], "c")
    check(c1[5]["cmid"] != doc3["clients"][5]["cmid"], "another seed, same CMIDs")
    h.stop(p)
    reqs = requests_of(read_log(log))
    names = collections.defaultdict(set)
    for r in reqs:
        names[r["cmid"]].add(r["workstation"])
    check(names[c1[0]["cmid"]] == {"lab-0.example.test", "lab-37.example.test"},
          "cloned CMID names on the wire: %s" % names[c1[0]["cmid"]])


class FakeHost:
    """A scripted KMS host in this process, for answers no real host gives:
    behave(sock) handles one connection."""

    def __init__(self, behave):
        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                try:
                    behave(self.request)
                except OSError:
                    pass

        self.srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def vector(name):
    with open(os.path.join(VECTORS, name + ".json")) as f:
        return json.load(f)


def test_answer_checks(h):
    """Wrong answers are caught: CMID and request-time echo mismatches,
    faults, bind_nak, a wrong call_id and a close mid-call, each under its
    own error kind. The host replays a real capture (bind_ndr32_only)."""
    vec = vector("bind_ndr32_only")
    ack = bytes.fromhex(vec["server_to_client"][0]["hex"])
    resp = bytes.fromhex(vec["server_to_client"][1]["hex"])
    vec_cmid = vec["expect"]["requests"][0]["cmid"]

    def replay(s, reply):
        if not recv_pdu(s):
            return
        s.sendall(ack)
        req = recv_pdu(s)
        if req and reply:
            s.sendall(reply(req))

    def fault(req):
        # nca_s_unk_if, with the request's call_id (kms-protocol.md 1.6).
        hdr = bytes([5, 0, 3, 0x23, 0x10, 0, 0, 0, 32, 0, 0, 0]) + req[12:16]
        body = (32).to_bytes(4, "little") + bytes(4) + (0x1C010003).to_bytes(4, "little")
        return hdr + body + bytes(4)

    def bind_nak(s):
        if recv_pdu(s):
            s.sendall(bytes([5, 0, 13, 3, 0x10, 0, 0, 0, 21, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 5, 0]))

    cases = [
        ("mismatch", lambda s: replay(s, lambda req: resp), [], "CMID echo differs"),
        ("mismatch", lambda s: replay(s, lambda req: resp), ["--cmid", vec_cmid],
         "request time echo differs"),
        ("fault", lambda s: replay(s, fault), [], "0x1c010003"),
        ("bind_rejected", bind_nak, [], "bind_nak"),
        ("protocol", lambda s: replay(s, lambda req: resp[:12] + bytes([9, 0, 0, 0]) + resp[16:]),
         [], "call_id differs"),
        ("closed", lambda s: replay(s, None), [], "closed"),
    ]
    for kind, behave, extra, why in cases:
        fake = FakeHost(behave)
        try:
            rc, out, err, doc = run_loadgen(h, ["-t", "127.0.0.1:%d" % fake.port, "-n", "3",
                                                "-c", "1", "--ndr", "ndr32", "--products",
                                                "server2019", "--timeout-ms", "3000"] + extra,
                                            "fake-" + kind)
        finally:
            fake.close()
        s = doc["summary"]
        check(rc == 1, "%s: exit %d, expected 1" % (kind, rc))
        check(s["errors_by_kind"][kind] == 3 and s["errors"] == 3,
              "%s (%s): summary %s" % (kind, why, s))
        check(why in err, "%s: stderr does not explain '%s': %s" % (kind, why, err[-1000:]))


def test_usage_errors(h):
    """Bad options exit 2 and name the option; --help lists every option."""
    lg = loadgen()
    cases = [
        ([], "--target"),
        (["-t", "127.0.0.1:1688", "-n", "abc"], "--activations"),
        (["-t", "127.0.0.1:1688", "--ndr", "ndr128"], "--ndr"),
        (["-t", "127.0.0.1:1688", "--mix", "v9:10"], "--mix"),
        (["-t", "127.0.0.1:1688", "--products", "win95"], "--products"),
        (["-t", "127.0.0.1:1688", "--allow-hresult", "xyz"], "--allow-hresult"),
        (["-t", "not-an-address"], "--target"),
        (["-t", "127.0.0.1:1688", "--bogus"], "--bogus"),
        (["-t", "127.0.0.1:1688", "-k", "2", "--clone-clients", "2"], "--clone-clients"),
        (["-t", "127.0.0.1:1688", "--json", "/nonexistent-dir/x.json"], "--json"),
    ]
    for args, name in cases:
        rc, out, err = h.run([lg] + args, timeout=30)
        check(rc == 2, "%s: exit %d, expected 2" % (args, rc))
        check(name in err, "%s: message does not name %s: %r" % (args, name, err))
    rc, out, err = h.run([lg, "--help"], timeout=30)
    check(rc == 0, "--help exited %d" % rc)
    with open(os.path.join(SRC, "src", "loadgen", "options.c")) as f:
        src = f.read()
    longs = re.findall(r'\{"([a-z-]+)", (?:required|no)_argument', src)
    check(len(longs) >= 20, "could not read the option table: %s" % longs)
    for name in longs:
        check("--" + name in out, "--help does not list --%s" % name)
    rc, out, err = h.run([lg, "--list-products"], timeout=30)
    check(rc == 0 and "office2016" in out and "win7" in out, "--list-products")


if __name__ == "__main__":
    run_tests("loadgen", [test_usage_errors, test_connect_errors, test_timeouts,
                          test_answer_checks, test_refused_hresult, test_per_conn_win8,
                          test_ndr_modes, test_population_options, test_acceptance_two_hosts])
