#!/usr/bin/env python3
"""Hardening scenarios of issue 11 (data path, health, resources), each with
real processes and a renewing client population (kms-loadgen, -k < -n) that
must keep activating with 0 failures while the fault goes on.

  poisoning     one address sends V6 requests padded to 600 bytes, four a
                second (under the per-source rate): the relay answers them
                0x8007000D itself, no host ever sees one, no host goes DOWN,
                no pin moves (#4)
  hung_host     a host answers binds but never requests: DOWN by the
                timeouts of distinct clients although its bind checks pass,
                and it stays DOWN while they keep passing; `hosts` shows why
                (#5)
  desync        a host sends an unsolicited extra reply (an error carrying
                the next call id) after every answer: no client ever gets
                it (#6)
  fd_exhaustion kmsrelayd with a small RLIMIT_NOFILE (soft 256, hard 384):
                the soft limit is raised to the hard one, the client cap
                that cannot fit is warned about, metrics and control
                floods are capped, idle client floods stop at the budget,
                backends stay UP, kmsrelayctl still answers; a control
                client trickling its headers a byte a second is cut at the
                header deadline (#7, #8)

Run as `test_hardening_faults.py desyncproxy --upstream PORT --port-file F
--log L` it is the desynchronising host: a TCP proxy in front of a
kms-stubhost that appends the extra reply.
"""
import json
import os
import re
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl  # noqa: E402
from faultlib import check, krtest, rl  # noqa: E402

NAMES = ["kms-a", "kms-b", "kms-c"]
HR_INVALID_DATA = 0x8007000D


def padded_request(extra, call_id=2):
    """request32() with `extra` zero bytes after its KMS message, the NDR
    sizes and frag_length adjusted: what vlmcsd closes the connection on."""
    p = bytearray(fl.request32())
    n = struct.unpack_from("<I", p, 24)[0]
    msg = bytes(p[32:32 + n]) + b"\x00" * extra
    stub = struct.pack("<II", len(msg), len(msg)) + msg
    body = struct.pack("<IHH", len(stub), 0, 0) + stub
    out = bytearray(p[:16]) + body
    struct.pack_into("<H", out, 8, len(out))
    struct.pack_into("<I", out, 12, call_id)
    return bytes(out)


def hresult_of(pdu):
    """HRESULT of an NDR32 response PDU (faults as 0xFFFF0000 | status)."""
    if pdu[2] == fl.PT_FAULT:
        return 0xFFFF0000 | struct.unpack_from("<I", pdu, 24)[0]
    return struct.unpack_from("<I", pdu, len(pdu) - 4)[0]


def no_pin_moved(log, since):
    moved = [a for a in log.events("activation", since) if a.get("pin") == "moved"]
    check(not moved, "%d pins moved, e.g. %s" % (len(moved), fl.print_line(moved[0])
                                                  if moved else ""))


# ---- poisoning ----------------------------------------------------------------


def t_poisoning(h):
    st = rl.start_stubs(h, NAMES)
    r = fl.start_relay(h, list(st.values()), debug=True, assist=False, wait_up=NAMES)
    log = fl.RelayLog(r.proc)
    m0 = log.mark()
    n = 600
    lg = rl.loadgen_bg(h, r.target(), n, k=200, c=6, seed=61, extra=["--rate", "80"])
    sent = answered = 0
    t_end = time.time() + 6
    while time.time() < t_end:  # bounded: 6 s, four a second
        s = rl.raw_session(r.port)
        s.sendall(fl.bind32())
        fl.recv_pdu(s)
        s.sendall(padded_request(340))
        sent += 1
        pdu = fl.recv_pdu(s)
        if pdu and hresult_of(pdu) == HR_INVALID_DATA:
            answered += 1
        s.close()
        time.sleep(0.25)
    rc, doc, out = rl.loadgen_wait(h, lg)
    fl.check_lost_none(rc, doc, out, n, log, m0, "%d renewing activations under poisoning" % n)
    check(answered == sent, "%d of %d padded requests were answered 0x8007000D" % (answered, sent))
    downs = log.events("host_state", m0, to="DOWN")
    check(not downs, "a host went DOWN: %s" % (fl.print_line(downs[0]) if downs else ""))
    bad = log.events("bad_pdu", m0, what="kms_request")
    check(bad, "no event=bad_pdu what=kms_request logged for the padded requests")
    got = sum(len(rl.stub_requests(s, settle=1.0)) for s in st.values())
    check(got == n, "the hosts got %d requests for %d activations: padded ones were forwarded"
          % (got, n))
    no_pin_moved(log, m0)
    for hn in NAMES:
        check(fl.host_status(h, hn)["health"] == "up", "%s is not up" % hn)
    print("  %d padded requests answered 0x8007000D by the relay, none forwarded; %d/%d "
          "renewing activations ok; all hosts UP, no pin moved" % (sent, n, n))
    fl.stop_relay_clean(h, r)


# ---- hung host -----------------------------------------------------------------


def t_hung_host(h):
    # kms-b binds at once and answers requests after a minute: hung
    st = rl.start_stubs(h, NAMES, extra={"kms-b": ["--delay-ms", "60000"]})
    emap = rl.epid_map(st)
    r = fl.start_relay(h, list(st.values()), debug=True, assist=False, wait_up=NAMES,
                       groups={"backend": {"attempt_timeout": "600ms"}})
    log = fl.RelayLog(r.proc)
    m0 = log.mark()
    n = 240
    # low traffic: 12 activations a second, a third of them ranked to kms-b first
    lg = rl.loadgen_bg(h, r.target(), n, k=80, c=4, seed=62, extra=["--rate", "12"])
    d = log.wait("host_state", 30, "kms-b DOWN", since=m0, host="kms-b", to="DOWN",
                 proc=r.proc)[0]
    check(re.search(r"request failed: timeout \(\d+ distinct clients\)", d.get("reason", "")),
          "kms-b DOWN with an unexpected reason: " + fl.print_line(d))
    hs = fl.host_status(h, "kms-b")
    check(hs["health"] == "down" and "distinct clients" in hs.get("health_reason", ""),
          "kmsrelayctl hosts: kms-b %s, health_reason %r" % (hs["health"],
                                                            hs.get("health_reason")))
    ok0 = hs["check"]["ok"]
    time.sleep(3)  # the bind checks keep passing: it must stay DOWN
    hs = fl.host_status(h, "kms-b")
    check(hs["check"]["ok"] > ok0, "kms-b's bind checks did not run (%d -> %d)"
          % (ok0, hs["check"]["ok"]))
    ups = log.events("host_state", m0, host="kms-b", to="UP")
    check(not ups and hs["health"] == "down",
          "kms-b came back UP on bind checks alone: %s" % (fl.print_line(ups[0]) if ups else ""))
    rc, doc, out = rl.loadgen_wait(h, lg)
    acts = fl.check_lost_none(rc, doc, out, n, log, m0, "%d activations, kms-b hung" % n)
    sb = {}
    for c in doc["clients"]:
        for e in c["epids"]:
            sb[emap.get(e, "?")] = sb.get(emap.get(e, "?"), 0) + 1
    check("kms-b" not in sb, "kms-b answered %s clients" % sb.get("kms-b"))
    retried = sum(1 for a in acts if int(a["retries"]) > 0)
    print("  kms-b hung: %s; %d bind checks passed after it; %d/%d ok (%d retried); "
          "health_reason=%r" % (fl.print_line(d), hs["check"]["ok"] - ok0, n, n, retried,
                                hs["health_reason"]))
    fl.stop_relay_clean(h, r)


# ---- desync --------------------------------------------------------------------


def desync_main(argv):
    import argparse
    ap = argparse.ArgumentParser(prog="desyncproxy")
    ap.add_argument("--upstream", type=int, required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    a = ap.parse_args(argv)
    logf = open(a.log, "a", buffering=1)
    lock = threading.Lock()

    def note(**e):
        with lock:
            logf.write(json.dumps(e) + "\n")

    def extra_for(call_id):
        stub = struct.pack("<III", 0, 0, 0xC004F074)
        body = struct.pack("<IHBB", len(stub), 0, 0, 0) + stub
        return fl.rpc_hdr(fl.PT_RESPONSE, 16 + len(body), call_id) + body

    def pump_up(c, u):
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                u.sendall(d)
        except OSError:
            pass
        for s in (c, u):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def serve(c):
        u = socket.create_connection(("127.0.0.1", a.upstream))
        threading.Thread(target=pump_up, args=(c, u), daemon=True).start()
        buf = b""
        try:
            while True:
                d = u.recv(65536)
                if not d:
                    break
                buf += d
                while len(buf) >= 16 and len(buf) >= struct.unpack_from("<H", buf, 8)[0]:
                    flen = struct.unpack_from("<H", buf, 8)[0]
                    pdu, buf = buf[:flen], buf[flen:]
                    out = pdu
                    if pdu[2] == fl.PT_RESPONSE:
                        call_id = struct.unpack_from("<I", pdu, 12)[0]
                        out += extra_for(call_id + 1)  # one write: same segment
                        note(event="extra", call_id=call_id + 1)
                    c.sendall(out)
        except OSError:
            pass
        for s in (c, u):
            try:
                s.close()
            except OSError:
                pass

    ls = fl.listen_with_port_file(a.port_file)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def t_desync(h):
    st = rl.start_stubs(h, ["kms-a"])
    emap = rl.epid_map(st)
    pf, plog = h.path("kms-x.port"), h.path("kms-x.jsonl")
    p, port = h.start([sys.executable, os.path.abspath(__file__), "desyncproxy", "--upstream",
                       str(st["kms-a"].port), "--port-file", pf, "--log", plog], "kms-x",
                      port_file=pf)
    x = fl.Fake("kms-x", p, port, plog)
    r = fl.start_relay(h, [x], debug=True, assist=False, wait_up=["kms-x"],
                       groups={"backend": {"pool_size": 2}})
    log = fl.RelayLog(r.proc)
    m0 = log.mark()
    n = 300
    rc, doc, out = rl.loadgen(h, r.target(), n, k=100, c=4, seed=63)
    fl.check_lost_none(rc, doc, out, n, log, m0, "%d activations through a desynchronising "
                       "host" % n)
    extras = x.events("extra")
    check(len(extras) >= n, "the proxy sent %d extra replies for %d activations"
          % (len(extras), n))
    bad = [c for c in doc["clients"] for e in c["epids"] if e not in emap]
    check(not bad, "%d answers with a foreign ePID" % len(bad))
    de = log.events("backend_desync", m0)
    check(de, "no event=backend_desync logged")
    print("  %d extra replies after %d answers; %d/%d activations ok; %s"
          % (len(extras), n, n, n, fl.print_line(de[0])))
    fl.stop_relay_clean(h, r)


# ---- descriptor exhaustion and slow headers -------------------------------------


def nfds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def open_many(addr, n, family=socket.AF_INET, timeout=0.5):
    """Up to n connections (non-blocking connects, failures ignored)."""
    out = []
    for _ in range(n):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(addr)
            out.append(s)
        except OSError:
            s.close()
    return out


def slow_headers(path, seconds):
    """A control client trickling a request a byte a second; seconds until
    the daemon closed it, or None when it was still open after `seconds`."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    req = b"GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 100
    t0 = time.time()
    for i in range(seconds):
        try:
            s.send(req[i:i + 1])
        except OSError:
            s.close()
            return time.time() - t0
        if fl.closed_by_peer(s, 1.0):
            s.close()
            return time.time() - t0
    s.close()
    return None


def idle_clients(port, sources, per_source):
    out = []
    for src in sources:
        for _ in range(per_source):
            try:
                out.append(rl.raw_session(port, src=src, timeout=0.5))
            except OSError:
                pass
    return out


def t_fd_exhaustion(h):
    st = rl.start_stubs(h, NAMES)
    path = h.path("relayd.conf")
    rl.write(path, fl.conf(h, list(st.values()), assist=False,
                           groups={"clients": {"max_per_source": 40}}))
    pf = h.path("relayd.port")
    p, port = h.start(["prlimit", "--nofile=256:384", krtest.binpath("kmsrelayd"), "-c", path,
                       "--port-file", pf], "relayd", port_file=pf)
    rl.wait_log(p, r"event=ready ")
    r = rl.Relay(p, port, path)
    for hn in NAMES:
        rl.wait_host_state(r, hn, "UP")
    log = fl.RelayLog(r.proc)
    lim = log.events("fd_limit", 0)
    check(lim and lim[0]["soft"] == "384" and lim[0]["was"] == "256",
          "the soft limit was not raised to the hard one: %s" % lim)
    bud = log.events("fd_budget", 0)
    check(bud and bud[0]["setting"] == "clients.max_connections",
          "no warning that clients.max_connections cannot fit: %s" % bud)
    cap = int(bud[0]["in_force"])
    m0 = log.mark()
    maddr = re.findall(r"event=metrics_listen addr=(\S+)", r.log())[-1]
    mhost, mport = maddr.rsplit(":", 1)

    # A: metrics and control floods and idle clients within the per-source
    # limits: the renewing population is served throughout
    n = 400
    lg = rl.loadgen_bg(h, r.target(), n, k=150, c=6, seed=64,
                       extra=["--source", "127.0.0.2", "--rate", "60"])
    held = []
    try:
        held += open_many((mhost, int(mport)), 60)
        held += open_many(h.path("ctl.sock"), 40, family=socket.AF_UNIX)
        held += idle_clients(port, ["127.0.0.%d" % i for i in range(3, 8)], 40)
        time.sleep(1.0)
        fds = nfds(r.proc.pid)
        check(fds < 384, "kmsrelayd holds %d descriptors (limit 384)" % fds)
        t0 = time.time()
        stt = fl.ctl(h, "status")  # waits behind the capped control flood at most
        took = time.time() - t0
        rc, doc, out = rl.loadgen_wait(h, lg)
        fl.check_lost_none(rc, doc, out, n, log, m0, "%d activations while descriptors are "
                           "flooded" % n)
        capped = log.events("accept_capped", m0)
        check({c["listener"] for c in capped} >= {"metrics", "control"},
              "metrics/control caps not reached: %s" % [c["listener"] for c in capped])

        # B: idle clients from more sources than the budget holds: the
        # ones beyond the cap are closed at once (the documented refusal),
        # backends and checks keep working
        ok0 = sum(fl.host_status(h, hn)["check"]["ok"] for hn in NAMES)
        held += idle_clients(port, ["127.0.0.%d" % i for i in range(10, 14)], 40)
        conns = fl.ctl(h, "status")["connections"]
        check(conns["limited"] > 0 and conns["open"] <= cap,
              "%d connections held: status %s, client cap in force %d" % (len(held), conns, cap))
        fds2 = nfds(r.proc.pid)
        check(fds2 < 384, "kmsrelayd holds %d descriptors (limit 384)" % fds2)
        time.sleep(2.0)
        ok1 = sum(fl.host_status(h, hn)["check"]["ok"] for hn in NAMES)
        check(ok1 > ok0, "health checks stopped while clients exhausted the budget")
        check(not log.events("host_state", m0, to="DOWN"), "a backend went DOWN in the flood")
        check("Too many open files" not in r.log(), "kmsrelayd ran out of descriptors")
    finally:
        for s in held:
            s.close()
    denied = log.events("client_denied", m0)
    lines = len(r.log().splitlines())
    check(lines < 20000, "kmsrelayd wrote %d log lines" % lines)
    print("  soft limit 256 -> 384; client cap in force %d; %d / %d descriptors under the "
          "floods; kmsrelayctl status in %.1f s; %d/%d activations ok; %d clients refused at "
          "the cap (%d lines logged, rate-limited); %d checks passed meanwhile"
          % (cap, fds, fds2, took, n, n, conns["limited"], len(denied), ok1 - ok0))
    check(stt.get("activations") is not None, "kmsrelayctl status: %s" % stt)

    # C: the slots are free again; a client trickling its control request
    # headers a byte a second is cut at the header deadline
    time.sleep(0.5)
    fl.check_alive(h, r)
    took = slow_headers(h.path("ctl.sock"), 25)
    check(took is not None and took < 16, "a control client trickling its headers was %s"
          % ("never cut" if took is None else "cut after %.1f s" % took))
    print("  control client sending a header byte a second: closed after %.1f s" % took)
    fl.stop_relay_clean(h, r)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "desyncproxy":
        desync_main(sys.argv[2:])
    else:
        krtest.run_tests("faults_hardening", [t_poisoning, t_hung_host, t_desync,
                                              t_fd_exhaustion])
