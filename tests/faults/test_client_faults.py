#!/usr/bin/env python3
"""Fault injection on the client side of kmsrelayd (issue 6).

  slowloris_flood  while a normal client population (kms-loadgen --source
                   127.0.0.2) runs: slowloris sockets sending one byte per
                   second are closed by the header timeout, idle sockets by the
                   idle timeout, and a flood from one address beyond
                   max_per_source is refused, logged and counted exactly; the
                   normal clients see 0 errors. Then a flood from several
                   addresses reaches max_connections: the excess is refused and
                   logged, and once it goes away normal clients are served again
  malformed_pdus   oversized, truncated, fragmented and otherwise malformed PDUs,
                   each answered the documented way (a close, an RPC fault with
                   the documented status, or the KMS error reply 0x8007000D),
                   sessions that may stay open still serve a valid request
                   afterwards, nothing malformed reaches a host, and a loadgen
                   run alongside sees 0 errors
  allow_list       clients outside clients.allow are closed without an answer,
                   logged and counted; allowed ones are served; allowing the
                   address by reload then serves it (so the denial was real)
"""
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl  # noqa: E402
from faultlib import check, krtest, rl  # noqa: E402

NAMES = ["kms-a", "kms-b"]


def denied_total(log, since, reason, client_prefix=None):
    """Denials kmsrelayd counted, from its rate-limited client_denied lines:
    each line is one denial plus the log lines suppressed before it."""
    n = 0
    for d in log.events("client_denied", since):
        if client_prefix and not d.get("client", "").startswith(client_prefix):
            continue
        n += 1 + int(d.get("suppressed", "0"))
    lines = [d for d in log.events("client_denied", since)
             if not client_prefix or d.get("client", "").startswith(client_prefix)]
    check(all(d.get("reason") == reason for d in lines),
          "client_denied lines with another reason: %s"
          % [fl.print_line(d) for d in lines if d.get("reason") != reason][:3])
    return n, lines


def open_from(src, port, n):
    out = []
    for _ in range(n):
        out.append(rl.raw_session(port, src=src, timeout=5))
    return out


def split_open_closed(socks, wait_s, want_closed=None):
    """(still open, closed by the peer) after wait_s; with want_closed, polls
    (up to 3 x wait_s) until that many are closed, for slow machines."""
    deadline = time.time() + (3 * wait_s if want_closed is not None else wait_s)
    closed = []
    while True:
        time.sleep(0.05)
        closed += [s for s in socks if s not in closed and fl.closed_by_peer(s, 0.01)]
        if time.time() >= deadline or (want_closed is not None and len(closed) >= want_closed):
            break
    return [s for s in socks if s not in closed], closed


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def t_slowloris_flood(h):
    st = rl.start_stubs(h, NAMES)
    per_src, max_conn, hdr_s, idle_s = 20, 70, 1.5, 2.0
    r = fl.start_relay(h, list(st.values()), debug=True, wait_up=NAMES, assist=False,
                       groups={"clients": {"max_per_source": per_src,
                                           "max_connections": max_conn,
                                           "header_timeout": "%dms" % (hdr_s * 1000),
                                           "idle_timeout": "%dms" % (idle_s * 1000)}})
    log = fl.RelayLog(r.proc)
    m0 = log.mark()
    n = 2500
    lg = rl.loadgen_bg(h, r.target(), n, c=8, seed=71,
                       extra=["--source", "127.0.0.2", "--rate", "500"])

    # slowloris: one byte of a bind per second; idle: nothing at all
    slow = open_from("127.0.0.3", r.port, 15)
    idle = open_from("127.0.0.4", r.port, 10)
    bind = fl.bind32()
    sent, slow_closed_at = {}, {}

    def trickle():
        for s in slow:
            if s in slow_closed_at:
                continue
            if sent.get(s) and fl.closed_by_peer(s, 0.01):
                slow_closed_at[s] = time.time()
                continue
            try:
                s.send(bind[sent.get(s, 0):sent.get(s, 0) + 1])
                sent[s] = sent.get(s, 0) + 1
            except OSError:
                slow_closed_at[s] = time.time()
    t_first = time.time()
    trickle()

    # flood: 100 connections from one address, 20 allowed; then one more,
    # whose log line carries the count of the lines suppressed before it, so
    # the daemon's count can be compared exactly with what the clients saw
    flood = open_from("127.0.0.5", r.port, 100)
    held, refused = split_open_closed(flood, 0.5, 100 - per_src)
    check(len(held) == per_src and len(refused) == 100 - per_src,
          "flood of 100 from 127.0.0.5: %d stayed open, %d were refused; want %d / %d"
          % (len(held), len(refused), per_src, 100 - per_src))
    extra = open_from("127.0.0.5", r.port, 1)
    _, extra_closed = split_open_closed(extra, 0.3, 1)
    check(len(extra_closed) == 1, "the 101st connection from 127.0.0.5 was not refused")
    counted, lines = denied_total(log, m0, "per-source connection limit reached", "127.0.0.5:")
    check(counted == 100 - per_src + 1, "kmsrelayd counted %d per-source refusals, the clients "
          "saw %d" % (counted, 100 - per_src + 1))

    for tick in range(int(10 * (hdr_s + 4))):  # bounded; a byte a second, a look every 0.1 s
        time.sleep(max(0.0, t_first + (tick + 1) / 10.0 - time.time()))
        for s in slow:
            if s not in slow_closed_at and fl.closed_by_peer(s, 0.005):
                slow_closed_at[s] = time.time()
        if len(slow_closed_at) == len(slow):
            break
        if (tick + 1) % 10 == 0:
            trickle()
    check(len(slow_closed_at) == len(slow), "%d of %d slowloris sockets still open after %.1f s"
          % (len(slow) - len(slow_closed_at), len(slow), time.time() - t_first))
    late = max(slow_closed_at.values()) - t_first
    check(late <= hdr_s + 1.0 and max(sent.values()) < len(bind),
          "slowloris sockets closed after %.1f s (header timeout %.1f s), %d bytes sent"
          % (late, hdr_s, max(sent.values())))
    idle_open, _ = split_open_closed(idle, max(0.0, t_first + idle_s + 1.0 - time.time()))
    check(not idle_open, "%d idle sockets still open after the idle timeout" % len(idle_open))
    closes = log.events("client_close", m0)
    hdr = [d for d in closes if d["client"].startswith("127.0.0.3:") and
           d["reason"] == "header timeout"]
    idl = [d for d in closes if d["client"].startswith("127.0.0.4:") and
           d["reason"] == "idle timeout"]
    check(len(hdr) == len(slow) and len(idl) == len(idle),
          "logged %d header-timeout closes (want %d) and %d idle-timeout closes (want %d)"
          % (len(hdr), len(slow), len(idl), len(idle)))
    check(lg.poll() is None, "the normal clients finished before the attack did")
    rc, doc, out = rl.loadgen_wait(h, lg)
    acts = fl.check_lost_none(rc, doc, out, n, log, m0, "%d normal activations from 127.0.0.2 "
                              "during the attack" % n)
    check(all(a["client"].startswith("127.0.0.2:") for a in acts),
          "the normal clients did not come from 127.0.0.2 (kms-loadgen --source)")
    print("  slowloris: %d sockets closed after %.1f s at most (%d bytes sent); %d idle closed; "
          "flood: %d held, %d refused, kmsrelayd counted %d (%d log lines)"
          % (len(slow), late, max(sent.values()), len(idl), len(held), len(refused) + 1,
             counted, len(lines)))
    mx = fl.metrics(r)
    check(fl.metric(mx, "kmsrelay_connections_denied_total", reason="limit") == counted and
          fl.metric(mx, "kmsrelay_limits_hit_total", limit="connections") == counted,
          "/metrics: connections denied for a limit %s, limits hit %s; the clients saw %d"
          % (fl.metric(mx, "kmsrelay_connections_denied_total", reason="limit"),
             fl.metric(mx, "kmsrelay_limits_hit_total", limit="connections"), counted))
    close_all(held + slow + idle + extra)
    time.sleep(0.5)

    # Global limit: 4 addresses x 20 = 80 attempts against max_connections 70.
    m1 = log.mark()
    socks = []
    for i in range(4):
        socks += open_from("127.0.0.%d" % (10 + i), r.port, per_src)
    held, refused = split_open_closed(socks, 0.5, 4 * per_src - max_conn)
    check(len(held) == max_conn and len(refused) == 4 * per_src - max_conn,
          "80 connections against max_connections %d: %d held, %d refused"
          % (max_conn, len(held), len(refused)))
    time.sleep(0.3)
    probe = open_from("127.0.0.20", r.port, 1)
    _, pc = split_open_closed(probe, 0.5, 1)
    check(len(pc) == 1, "a new address was accepted beyond max_connections")
    counted, lines = denied_total(log, m1, "global connection limit reached")
    check(counted == len(refused) + 1, "kmsrelayd counted %d global-limit refusals, clients saw "
          "%d" % (counted, len(refused) + 1))
    mx = fl.metric(fl.metrics(r), "kmsrelay_connections_denied_total", reason="limit")
    check(mx == 100 - per_src + 1 + counted, "/metrics counts %d refusals for limits, want %d"
          % (mx, 100 - per_src + 1 + counted))
    conns = fl.ctl(h, "status")["connections"]
    check(conns["limited"] == mx and conns["denied"] == 0,
          "kmsrelayctl status: connections %s; want limited %d" % (conns, mx))
    close_all(held + probe)
    time.sleep(0.3)
    m2 = log.mark()
    rc, doc, out = rl.loadgen(h, r.target(), 300, c=8, seed=72, name="after",
                              extra=["--source", "127.0.0.2"])
    fl.check_lost_none(rc, doc, out, 300, log, m2, "normal clients after the flood went away")
    print("  global limit: %d held, %d refused (kmsrelayd counted %d); served again afterwards"
          % (len(held), len(refused) + 1, counted))
    fl.stop_relay_clean(h, r)


# ---- malformed PDUs ------------------------------------------------------------------

FAULT_UNK_IF, FAULT_OP_RNG, FAULT_BAD_STUB = 0x1C010003, 0x1C010002, 0x000006F7
HR_INVALID_DATA = 0x8007000D


def with_frag_len(pdu, n, pad=True):
    p = pdu[:8] + struct.pack("<H", n) + pdu[10:]
    return p + (b"\x00" * (n - len(p)) if pad and n > len(p) else b"")


def request_with_msg(req, msg, ndr_len=None, conf=None, ctx=0, opnum=0):
    """An NDR32 request PDU (from a captured one) carrying `msg`."""
    ndr_len = len(msg) if ndr_len is None else ndr_len
    conf = ndr_len if conf is None else conf
    stub = struct.pack("<II", ndr_len, conf) + msg
    body = struct.pack("<IHH", len(stub), ctx, opnum) + stub
    hdr = bytearray(req[:16])
    hdr[8:10] = struct.pack("<H", 16 + len(body))
    return bytes(hdr) + body


def malformed_cases():
    """(name, needs_bind, PDU bytes, expected, log `what`); expected is
    'close', ('fault', status) or ('hresult', value)."""
    bind, req = fl.bind32(), fl.request32()
    msg = req[32:]  # the KMS message after the NDR32 length fields
    v7 = msg[:2] + struct.pack("<H", 7) + msg[4:]
    bad_bind = bind[:24] + bytes([5]) + bind[25:]  # 5 context items, 1 present
    frag = bytearray(req)
    frag[3] = 0x01  # FIRST without LAST
    resp = bytearray(req)
    resp[2] = 2  # a response PDU, from a client
    vers = bytearray(req)
    vers[0] = 4
    return [
        ("frag_over_cap", True, with_frag_len(req, 2049), "close", "frame"),
        ("frag_ffff", True, with_frag_len(req, 0xFFFF, pad=False) + b"\x00" * 300, "close",
         "frame"),
        ("frag_tiny", True, with_frag_len(req, 10, pad=False), "close", "frame"),
        ("rpc_version_4", True, bytes(vers), "close", "frame"),
        ("fragmented", True, bytes(frag), "close", "frame"),
        ("response_from_client", True, bytes(resp), "close", "response"),
        ("bind_items_missing", False, bad_bind, "close", "bind"),
        ("request_before_bind", False, req, ("fault", FAULT_UNK_IF), "request"),
        ("unknown_ctx", True, request_with_msg(req, msg, ctx=7), ("fault", FAULT_UNK_IF),
         "request"),
        ("opnum_3", True, request_with_msg(req, msg, opnum=3), ("fault", FAULT_OP_RNG),
         "request"),
        ("ndr_conformance", True, request_with_msg(req, msg, conf=len(msg) + 1),
         ("fault", FAULT_BAD_STUB), "request"),
        ("kms_over_1024", True, request_with_msg(req, msg + b"\x00" * 800),
         ("fault", FAULT_BAD_STUB), "request"),
        ("kms_garbage", True, request_with_msg(req, os.urandom(len(msg))),
         ("hresult", HR_INVALID_DATA), "kms_request"),
        ("kms_version_7", True, request_with_msg(req, v7), ("hresult", HR_INVALID_DATA),
         "kms_request"),
    ]


def answer_of(pdu):
    """('fault', status) | ('hresult', value) | ('ok', None) | ('?', ptype)."""
    if not pdu:
        return ("close", None)
    if pdu[2] == 3:
        return ("fault", struct.unpack_from("<I", pdu, 24)[0])
    if pdu[2] == 2:
        hr = struct.unpack_from("<I", pdu, len(pdu) - 4)[0]
        return ("ok", None) if hr == 0 and len(pdu) > 60 else ("hresult", hr)
    return ("?", pdu[2])


def t_malformed_pdus(h):
    st = rl.start_stubs(h, NAMES)
    r = fl.start_relay(h, list(st.values()), wait_up=NAMES, assist=False)
    log = fl.RelayLog(r.proc)
    m0 = log.mark()
    n = 1500
    lg = rl.loadgen_bg(h, r.target(), n, c=8, seed=81, extra=["--rate", "600"])
    bind, req = fl.bind32(), fl.request32()
    cases = malformed_cases()
    valid_after = 0
    for name, needs_bind, pdu, want, _what in cases:
        s = rl.raw_session(r.port)
        if needs_bind:
            s.sendall(rl.set_call_id(bind, 1))
            ack = fl.recv_pdu(s)
            check(ack and ack[2] == 12, "%s: no bind_ack for the valid bind" % name)
        s.sendall(pdu)
        if want == "close":
            got = fl.recv_pdu(s, timeout=5)
            check(not got, "%s: answered %s instead of closing" % (name, answer_of(got)))
        else:
            got = answer_of(fl.recv_pdu(s, timeout=5))
            check(got == want, "%s: got %s, want %s" % (name, got, want))
            # the session stays usable: bind if needed, then a valid request
            if name == "request_before_bind":
                s.sendall(rl.set_call_id(bind, 8))
                check(fl.recv_pdu(s)[2] == 12, "%s: no bind_ack afterwards" % name)
            s.sendall(rl.set_call_id(req, 9))
            got = answer_of(fl.recv_pdu(s, timeout=10))
            check(got == ("ok", None), "%s: a valid request on the same connection got %s"
                  % (name, got))
            valid_after += 1
        s.close()
    check(lg.poll() is None, "the loadgen finished before the malformed PDUs were sent")
    rc, doc, out = rl.loadgen_wait(h, lg)
    rl.check_all_ok(rc, doc, out, n, "%d activations next to malformed PDUs" % n)
    acts = log.events("activation", m0)
    res = fl.activations_by_result(acts)
    check(len(acts) == res.get("ok", 0) == n + valid_after,
          "kmsrelayd logged activations %s, want %d ok (loadgen) + %d (valid requests after a "
          "bad PDU), and no other" % (res, n, valid_after))
    bad = log.events("bad_pdu", m0)
    want_what = sorted(c[4] for c in cases)
    check(sorted(d["what"] for d in bad) == want_what and
          all(d.get("suppressed") == "0" for d in bad),
          "bad_pdu lines %s, want one per case %s" % (sorted(d["what"] for d in bad), want_what))
    mx = fl.metrics(r)
    check(fl.metric(mx, "kmsrelay_bad_pdus_total") == len(cases) and
          fl.metric(mx, "kmsrelay_requests_total") == n + valid_after,
          "/metrics: bad PDUs %s (want %d), requests routed %s (want %d)"
          % (fl.metric(mx, "kmsrelay_bad_pdus_total"), len(cases),
             fl.metric(mx, "kmsrelay_requests_total"), n + valid_after))
    conns = fl.ctl(h, "status")["connections"]
    check(conns["bad_pdus"] == len(cases), "kmsrelayctl status: %d bad PDUs, want %d"
          % (conns["bad_pdus"], len(cases)))
    got = sum(len(rl.stub_requests(s_, settle=1.2)) for s_ in st.values())
    check(got == n + valid_after, "the hosts received %d requests, want exactly %d (loadgen) + "
          "%d (valid ones after a bad PDU): something malformed was forwarded"
          % (got, n, valid_after))
    print("  %d malformed PDUs: %d closed, %d answered with a fault or 0x8007000D and the "
          "session kept; %d bad_pdu lines, e.g. %s; hosts got only the %d valid requests"
          % (len(cases), sum(1 for c in cases if c[3] == "close"),
             sum(1 for c in cases if c[3] != "close"), len(bad), fl.print_line(bad[0]),
             n + valid_after))
    fl.check_alive(h, r)
    fl.stop_relay_clean(h, r)


def t_allow_list(h):
    st = rl.start_stubs(h, NAMES)
    hosts = list(st.values())
    r = fl.start_relay(h, hosts, allow=("127.0.0.1/32",), wait_up=NAMES, assist=False)
    log = fl.RelayLog(r.proc)
    m0 = log.mark()
    n_denied, n_ok = 12, 400
    lg = rl.loadgen_bg(h, r.target(), n_ok, c=8, seed=91, extra=["--rate", "200"])
    rc, doc, out = rl.loadgen(h, r.target(), n_denied, c=1, seed=92, name="denied",
                              extra=["--source", "127.0.0.2", "--timeout-ms", "3000"])
    check(doc is not None and rc == 1, "denied run: rc %d %s" % (rc, out[-500:]))
    s = doc["summary"]
    kinds = {k: v for k, v in s["errors_by_kind"].items() if v}
    check(s["ok"] == 0 and s["errors"] == n_denied and set(kinds) <= {"closed", "connect"},
          "127.0.0.2 (not allowed): ok %d errors %d %s; want every activation refused by a close"
          % (s["ok"], s["errors"], kinds))
    sock = rl.raw_session(r.port, src="127.0.0.2")
    sock.sendall(fl.bind32())
    check(not fl.recv_pdu(sock, timeout=3), "a denied client got an answer to its bind")
    sock.close()
    check(lg.poll() is None, "the allowed clients finished before the denied ones ran")
    rc, doc, out = rl.loadgen_wait(h, lg)
    acts = fl.check_lost_none(rc, doc, out, n_ok, log, m0, "allowed clients")
    check(all(a["client"].startswith("127.0.0.1:") for a in acts), "an activation from a denied "
          "address was logged")
    counted, lines = denied_total(log, m0, "not in allow-list", "127.0.0.2:")
    check(counted == n_denied + 1 and all(d.get("suppressed") == "0" for d in lines),
          "kmsrelayd counted %d denials from 127.0.0.2 in %d lines, clients saw %d"
          % (counted, len(lines), n_denied + 1))
    mx = fl.metric(fl.metrics(r), "kmsrelay_connections_denied_total", reason="allow_list")
    check(mx == n_denied + 1, "/metrics counts %d allow-list denials, want %d"
          % (mx, n_denied + 1))
    conns = fl.ctl(h, "status")["connections"]
    check(conns["denied"] == n_denied + 1, "kmsrelayctl status: %d denied, want %d"
          % (conns["denied"], n_denied + 1))
    got = sum(len(rl.stub_requests(s_, settle=1.2)) for s_ in st.values())
    check(got == n_ok, "hosts received %d requests, want %d" % (got, n_ok))
    print("  127.0.0.2 denied %d times, each logged: %s" % (counted, fl.print_line(lines[0])))

    # Allowing it by reload serves it: the denial was the allow-list's doing.
    rl.reload(r, fl.conf(h, hosts, allow=("127.0.0.1/32", "127.0.0.2/32"), assist=False))
    rc, doc, out = rl.loadgen(h, r.target(), 20, c=4, seed=93, name="allowed",
                              extra=["--source", "127.0.0.2"])
    rl.check_all_ok(rc, doc, out, 20, "127.0.0.2 once allowed")
    fl.stop_relay_clean(h, r)


if __name__ == "__main__":
    krtest.run_tests("faults_client", [t_slowloris_flood, t_malformed_pdus, t_allow_list])
