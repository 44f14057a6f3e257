#!/usr/bin/env python3
"""kmsrelayd acceptance 7: bad input and the allow-list.

- 1,000 connections of garbage (random bytes, truncated vector PDUs, an
  oversized frag_length, bad RPC versions, bad KMS messages in valid RPC,
  requests on unknown contexts, PDUs that stop mid-way and stall) while
  10,000 valid activations run: every activation succeeds, nothing of the
  garbage reaches a host, stalled PDUs are closed by the header timeout, and
  the daemon is still alive and answering afterwards.
- allow = [ "127.0.0.1/32" ]: a client from 127.0.0.2 is closed without an
  answer to its bind (and logged), 127.0.0.1 is served.
"""
import os
import random
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import krtest  # noqa: E402
import relaylib as rl  # noqa: E402
from krtest import check, recv_pdu  # noqa: E402

N_GARBAGE = 1000
N_VALID = 10000


def garbage_cases(rng):
    """Yields (kind, bytes to send, wait_for_answer) forever."""
    vs = [rl.vector(n) for n in ("v4_win7pro_ndr32", "v6_win10pro_ndr32", "bind_ndr32_only",
                                 "v5_win8pro_ndr32")]
    kinds = ["random", "random_hdr", "trunc_bind", "trunc_request", "oversized", "bad_version",
             "bad_kms", "unknown_ctx", "tiny_frag", "bad_ptype"]
    i = 0
    while True:
        kind = kinds[i % len(kinds)]
        i += 1
        v = vs[rng.randrange(len(vs))]
        bind = rl.pdus(v, "bind")[0]
        req = rl.pdus(v, "request")[0]
        if bind[24] != 1:
            # A 3-item bind gets NDR32 rejected (Windows 8+ host); the NDR32
            # requests below need the NDR32-only bind to reach the parser.
            bind = rl.pdus(rl.vector("bind_ndr32_only"), "bind")[0]
        if kind == "random":
            yield kind, rng.randbytes(rng.randrange(1, 600)), False
        elif kind == "random_hdr":
            body = bytearray(rng.randbytes(rng.randrange(16, 400)))
            body[0:2] = b"\x05\x00"
            body[4:8] = b"\x10\x00\x00\x00"
            yield kind, bytes(body), False
        elif kind == "trunc_bind":
            yield kind, bind[:rng.randrange(1, len(bind))], False
        elif kind == "trunc_request":
            yield kind, bind + req[:rng.randrange(1, len(req))], False
        elif kind == "oversized":
            big = bytearray(req)
            big[8:10] = rng.choice([0xFFFF, 0x8000, 5841, 2049]).to_bytes(2, "little")
            yield kind, bind + bytes(big) + rng.randbytes(200), True
        elif kind == "bad_version":
            b = bytearray(rng.choice([bind, req]))
            if rng.random() < 0.5:
                b[0] = rng.choice([4, 6, 0, 255])
            else:
                b[1] = rng.choice([1, 2, 255])
            yield kind, bytes(b), True
        elif kind == "bad_kms":
            # A random KMS message in valid NDR32 framing; its version is one
            # no host speaks, so it can never decode as a real request.
            b = bytearray(req)
            b[32:] = rng.randbytes(len(b) - 32)
            b[32:34] = b"\0\0"  # minor version 0
            b[34:36] = rng.choice([0, 3, 7, 0xFFFF]).to_bytes(2, "little")  # major
            yield kind, bind + bytes(b), True
        elif kind == "unknown_ctx":
            b = bytearray(req)
            b[20:22] = rng.choice([1, 2, 7, 0xFFFF]).to_bytes(2, "little")
            yield kind, bind + bytes(b), True
        elif kind == "tiny_frag":
            b = bytearray(bind)
            b[8:10] = rng.randrange(0, 16).to_bytes(2, "little")
            yield kind, bytes(b), True
        else:  # a PTYPE no client sends (response, fault, bind_ack, shutdown...)
            b = bytearray(req)
            b[2] = rng.choice([2, 3, 12, 13, 15, 16, 17, 99])
            yield kind, bind + bytes(b), True


def send_garbage(port, data, wait):
    """One connection: send; with wait, read answers until one that is not a
    bind_ack (a fault, an error response) or the close. Returns it, b"" on
    close, None on a reset or timeout."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(data)
        while wait:
            pdu = recv_pdu(s, timeout=3)
            if not pdu or pdu[2] != 12:
                return pdu
        return b""
    except (ConnectionResetError, BrokenPipeError, socket.timeout):
        return None
    finally:
        s.close()


def t_garbage_with_valid_load(h):
    st = rl.start_stubs(h, ["kms-a", "kms-b"])
    conf = h.path("relay.conf")
    rl.write(conf, rl.conf_text(h, list(st.values())))
    r = rl.start_relay(h, conf, wait_up=list(st))
    rng = random.Random(7)

    # Open loop at 1,200/s: the valid load lasts ~8 s whatever the machine,
    # and the garbage below is spread over that time.
    lg = rl.loadgen_bg(h, r.target(), N_VALID, c=16, seed=71, extra=["--rate", "1200"])
    gen = garbage_cases(rng)
    stalled = []
    during = 0
    outcomes = {}
    t0 = time.time()
    for i in range(N_GARBAGE):
        kind, data, wait = next(gen)
        if i % 100 == 50 and len(stalled) < 10:
            # A PDU that stops mid-way and stays open: the header timeout (2 s) closes it.
            s = socket.create_connection(("127.0.0.1", r.port), timeout=5)
            s.sendall(rl.pdus(rl.vector("bind_ndr32_only"), "bind")[0][:20])
            stalled.append((s, time.time()))
        got = send_garbage(r.port, data, wait)
        if not wait:
            outcome = "sent"
        elif not got:
            outcome = "closed" if got == b"" else "reset"
        else:
            outcome = {2: "response", 3: "fault"}.get(got[2], "type%d" % got[2])
        outcomes.setdefault(kind, {}).setdefault(outcome, 0)
        outcomes[kind][outcome] += 1
        if got and got[2] == 2:
            # An answer to garbage may only be an error stub (NULL pointer).
            check(got[28:32] == b"\0\0\0\0",
                  "garbage (%s) got a successful KMS answer: %s" % (kind, got.hex()))
            if kind == "bad_kms":
                hr = int.from_bytes(got[32:36], "little")
                check(hr == 0x8007000D, "bad KMS message answered HRESULT %#x" % hr)
        if lg.poll() is None:
            during += 1
        # pace: ~1,000 connections over ~4 s (or slower when the machine is)
        delay = t0 + (i + 1) * 0.004 - time.time()
        if delay > 0:
            time.sleep(delay)
    print("  garbage: %d of %d connections sent while the valid load ran; answers: %s"
          % (during, N_GARBAGE, outcomes))
    check(during >= 0.9 * N_GARBAGE, "the valid load ended before the garbage (%d of %d "
          "interleaved): the test did not interleave" % (during, N_GARBAGE))
    rc, doc, out = rl.loadgen_wait(h, lg)
    rl.check_all_ok(rc, doc, out, N_VALID, "valid activations among garbage")
    s = doc["summary"]
    print("  valid load: %.0f activations/s, latency ms %s" % (s["activations_per_s"],
                                                             s["latency_ms"]))

    for s, t in stalled:
        s.settimeout(max(0.1, t + 2.0 + 2.0 - time.time()))
        try:
            data = s.recv(100)
        except socket.timeout:
            data = None
        except ConnectionResetError:
            data = b""
        s.close()
        check(data == b"", "a stalled PDU was not closed within header_timeout + 2 s (got %r)"
              % data)

    check(r.proc.poll() is None, "kmsrelayd died: " + r.log()[-3000:])
    log = r.log()
    check("event=bad_pdu" in log, "no bad_pdu line: the garbage never reached the parser?")
    for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
        check(bad not in log, "sanitizer report in the log: " + log[-3000:])
    # Nothing of the garbage reached a host: every CMID a host saw is a
    # loadgen client's, and no host met a protocol error or a bad message.
    cmids = {c["cmid"] for c in doc["clients"]}
    for stub in st.values():
        text = rl.read(stub.log)
        check('"protocol_error"' not in text and '"fault"' not in text,
              "%s got bad bytes from the relay" % stub.name)
        for e in rl.stub_requests(stub, settle=1.2):
            check(e["cmid"] in cmids and e["hresult"] == "0x00000000",
                  "%s got a request that no valid client sent: %s" % (stub.name, e))

    # Still answering: a raw vector session and a short loadgen run.
    v = rl.vector("v6_win10pro_ndr32")
    sess = rl.raw_session(r.port)
    sess.sendall(rl.pdus(rl.vector("bind_ndr32_only"), "bind")[0])
    check(recv_pdu(sess)[2:3] == b"\x0c", "no bind_ack after the garbage")
    sess.sendall(rl.pdus(v, "request")[0])
    resp = recv_pdu(sess)
    sess.close()
    check(resp and resp[2] == 2, "no response after the garbage")
    rc, doc, out = rl.loadgen(h, r.target(), 200, c=8, seed=72, name="after")
    rl.check_all_ok(rc, doc, out, 200, "activations after the garbage")
    check(h.stop(r.proc) == 0, "SIGTERM exit status: " + r.log()[-3000:])


def t_allow_list(h):
    st = rl.start_stubs(h, ["kms-a"])
    conf = h.path("relay.conf")
    rl.write(conf, rl.conf_text(h, list(st.values()), allow=("127.0.0.1/32",)))
    r = rl.start_relay(h, conf, wait_up=["kms-a"])
    v = rl.vector("bind_ndr32_only")
    bind, req = rl.pdus(v)

    s = rl.raw_session(r.port, src="127.0.0.2")
    src_port = s.getsockname()[1]
    try:
        s.sendall(bind)
        got = recv_pdu(s)
    except (ConnectionResetError, BrokenPipeError):
        got = b""
    s.close()
    check(got == b"", "127.0.0.2 got an answer to its bind: %r" % got[:32])
    rl.wait_log(r.proc, r"event=client_denied client=127\.0\.0\.2:%d " % src_port)

    s = rl.raw_session(r.port, src="127.0.0.1")
    s.sendall(bind)
    ack = recv_pdu(s)
    check(ack and ack[2] == 12, "127.0.0.1 got no bind_ack: %r" % ack[:32])
    s.sendall(req)
    resp = recv_pdu(s)
    s.close()
    check(resp and resp[2] == 2, "127.0.0.1 got no response: %r" % resp[:32])
    d = rl.decode(h, [bind, req], [ack, resp])
    check(d["responses"] and d["responses"][0]["cmid_echo"] == v["expect"]["requests"][0]["cmid"],
          "127.0.0.1: bad answer %s" % d)
    check("client=127.0.0.1:" not in "\n".join(l for l in r.log().splitlines()
                                               if "client_denied" in l),
          "127.0.0.1 was denied")
    check(h.stop(r.proc) == 0, "SIGTERM exit status")


if __name__ == "__main__":
    krtest.run_tests("relay_badinput", [t_garbage_with_valid_load, t_allow_list])
