"""Integration tests of kms-stubhost, the test double KMS host.

Every test starts a stub host on 127.0.0.1 port 0 and talks raw DCE/RPC to
it with PDUs from the shared vectors (real client messages). Responses are
decoded here independently of the C codecs: V4 in plaintext, V5 with a
plain AES-128-CBC and V6 with the modified key schedule, both implemented
below and first checked against the hosts' recorded responses.
"""
import functools
import json
import os
import re
import signal
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import krtest  # noqa: E402
from krtest import check  # noqa: E402

NDR32_UUID = bytes.fromhex("045d888aeb1cc9119fe808002b104860")
NDR64_UUID = bytes.fromhex("33057171babe37498319b5dbef9ccc36")
KEY_V5 = bytes.fromhex("CD7E796F2AB25DCB55FFC8EF8364C470")
KEY_V6 = bytes.fromhex("A94A4195E201432D9BCB460405D84A21")
APP_WINDOWS = "55c92734-d682-4d71-983e-d6ec3f16059f"
APP_OFFICE2010 = "59a52881-a989-479d-af46-f275c6370663"
KMSID_WIN10 = "58e2134f-8e11-4d17-9cb2-91069c151148"

VECS = {v["name"]: v for v in krtest.load_vectors()}


def u16(b, o):
    return struct.unpack_from("<H", b, o)[0]


def u32(b, o):
    return struct.unpack_from("<I", b, o)[0]


def u64(b, o):
    return struct.unpack_from("<Q", b, o)[0]


def guid_text(b):
    d1, d2, d3 = struct.unpack_from("<IHH", b, 0)
    return "%08x-%04x-%04x-%s-%s" % (d1, d2, d3, b[8:10].hex(), b[10:16].hex())


def guid_wire(t):
    h = bytes.fromhex(t.replace("-", ""))
    return struct.pack("<IHH", *struct.unpack(">IHH", h[:8])) + h[8:]


# --- AES-128 decryption, with the KMS V6 key-schedule tweak ------------------
def _aes_tables():
    sbox, p, q = [0] * 256, 1, 1
    while True:  # walk the multiplicative group with generator 3
        p = (p ^ (p << 1) ^ (0x1B if p & 0x80 else 0)) & 0xFF
        q ^= q << 1
        q ^= q << 2
        q ^= q << 4
        q &= 0xFF
        if q & 0x80:
            q ^= 0x09
        rot = lambda x, s: ((x << s) | (x >> (8 - s))) & 0xFF  # noqa: E731
        sbox[p] = q ^ rot(q, 1) ^ rot(q, 2) ^ rot(q, 3) ^ rot(q, 4) ^ 0x63
        if p == 1:
            break
    sbox[0] = 0x63
    inv = [0] * 256
    for i, s in enumerate(sbox):
        inv[s] = i
    return sbox, inv


SBOX, INV_SBOX = _aes_tables()


def _gmul(a, b):
    r = 0
    while b:
        if b & 1:
            r ^= a
        a = ((a << 1) ^ (0x1B if a & 0x80 else 0)) & 0xFF
        b >>= 1
    return r


MUL = {k: [_gmul(i, k) for i in range(256)] for k in (9, 11, 13, 14)}


def aes_round_keys(key, v6):
    w, rcon = list(key), 1
    for i in range(16, 176, 4):
        t = w[i - 4:i]
        if i % 16 == 0:
            t = [SBOX[t[1]] ^ rcon, SBOX[t[2]], SBOX[t[3]], SBOX[t[0]]]
            rcon = _gmul(rcon, 2)
        w += [w[i - 16 + j] ^ t[j] for j in range(4)]
    if v6:  # kms-protocol.md 4.3: applied after the standard expansion
        w[64] ^= 0x73
        w[96] ^= 0x09
        w[128] ^= 0xE4
    return w


def aes_decrypt_block(rk, blk):
    s = [b ^ k for b, k in zip(blk, rk[160:176])]
    for rnd in range(9, -1, -1):
        s = [s[r + 4 * ((c - r) % 4)] for c in range(4) for r in range(4)]
        s = [INV_SBOX[x] ^ k for x, k in zip(s, rk[16 * rnd:16 * rnd + 16])]
        if rnd:
            out = []
            for c in range(4):
                a = s[4 * c:4 * c + 4]
                for r in range(4):
                    out.append(MUL[14][a[r]] ^ MUL[11][a[(r + 1) % 4]]
                               ^ MUL[13][a[(r + 2) % 4]] ^ MUL[9][a[(r + 3) % 4]])
            s = out
    return bytes(s)


def cbc_decrypt(key, v6, iv, data):
    rk, out, prev = aes_round_keys(key, v6), b"", iv
    for i in range(0, len(data), 16):
        blk = data[i:i + 16]
        out += bytes(a ^ b for a, b in zip(aes_decrypt_block(rk, blk), prev))
        prev = blk
    return out


# --- PDUs ---------------------------------------------------------------------
def pdus(vec, kind):
    return [bytes.fromhex(p["hex"]) for p in VECS[vec]["client_to_server"] if p["type"] == kind]


def request_msg(pdu):
    """The KMS message inside a request PDU (NDR32 when ctx 0, else NDR64)."""
    if u16(pdu, 20) == 0:
        return pdu[32:32 + u32(pdu, 24)]
    return pdu[40:40 + u64(pdu, 24)]


def make_request(msg, ctx, call_id, ndr64=False, opnum=0):
    n = len(msg)
    stub = (struct.pack("<QQ", n, n) if ndr64 else struct.pack("<II", n, n)) + msg
    body = struct.pack("<IHH", len(stub), ctx, opnum) + stub
    return struct.pack("<BBBB4sHHI", 5, 0, 0, 3, b"\x10\0\0\0", 16 + len(body), 0, call_id) + body


def parse_bind_ack(pdu):
    check(pdu[2] in (12, 15), "not a bind_ack/alter_context_resp: ptype %d" % pdu[2])
    slen = u16(pdu, 24)
    sec = pdu[26:26 + slen].rstrip(b"\0").decode() if slen else ""
    a = (26 + slen + 3) & ~3
    res = []
    for i in range(pdu[a]):
        o = a + 4 + 24 * i
        res.append((u16(pdu, o), u16(pdu, o + 2), pdu[o + 4:o + 20], u32(pdu, o + 20)))
    return sec, res


def parse_response(pdu, ndr64):
    """(message or None, hresult) from a response PDU."""
    check(pdu[2] == 2, "expected a response PDU, got ptype %d" % pdu[2])
    stub = pdu[24:]
    check(u32(pdu, 16) == len(stub), "alloc_hint %d != stub length %d" % (u32(pdu, 16), len(stub)))
    w = 8 if ndr64 else 4
    get = u64 if ndr64 else u32
    if get(stub, w) == 0:  # NULL pointer: KMS error
        check(len(stub) == 2 * w + 4, "error stub of %d bytes" % len(stub))
        return None, u32(stub, 2 * w)
    m = get(stub, 0)
    check(get(stub, w) == 0x20000 and get(stub, 2 * w) == m, "bad NDR response header")
    end = (3 * w + m + 3) & ~3
    check(len(stub) == end + 4, "response stub of %d bytes, expected %d" % (len(stub), end + 4))
    return stub[3 * w:3 * w + m], u32(stub, end)


def decode_kms_response(msg):
    """Fields of a KMS response message; checks the integrity fields are zero."""
    major = u16(msg, 2)
    r = {"version": "%d.%d" % (major, u16(msg, 0))}
    if major == 4:
        plain = msg
    else:
        r["iv"] = msg[4:20]
        plain = cbc_decrypt(KEY_V6 if major >= 6 else KEY_V5, major >= 6, msg[4:20], msg[20:])
        pad = plain[-1]
        check(1 <= pad <= 16 and plain[-pad:] == bytes([pad]) * pad, "bad PKCS#7 padding")
        plain = plain[:-pad]
        check(plain[:4] == msg[:4], "inner version differs from the outer one")
    p = u32(plain, 4)
    r["epid"] = plain[8:8 + p].decode("utf-16-le").rstrip("\0")
    r["cmid"] = guid_text(plain[8 + p:24 + p])
    r["time"] = u64(plain, 24 + p)
    r["count"], r["act"], r["renew"] = struct.unpack_from("<III", plain, 32 + p)
    want = {4: 60, 5: 92}.get(major, 132) + p
    check(len(plain) == want, "plaintext of %d bytes, expected %d" % (len(plain), want))
    if major == 4:
        r["zeroed"] = plain[44 + p:60 + p] == bytes(16)
    else:
        r["zeroed"] = plain[60 + p:92 + p] == bytes(32)
    if major >= 6:
        r["hwid"] = plain[92 + p:100 + p].hex().upper()
        r["zeroed"] = r["zeroed"] and plain[116 + p:132 + p] == bytes(16)
    return r


# --- Host and connection helpers ------------------------------------------------
def start(h, *args, log=True, name="stubhost"):
    """Starts a stub host on 127.0.0.1:0 logging to <name>.jsonl; returns
    (process, port)."""
    pf = h.path(name + ".port")
    argv = [krtest.binpath("kms-stubhost"), "-l", "127.0.0.1:0", "--port-file", pf]
    if log:
        argv += ["--log", h.path(name + ".jsonl")]
    return h.start(argv + list(args), name, port_file=pf)


def log_lines(h, pred, n, timeout=5.0, name="stubhost"):
    """Waits (bounded) until the log holds n lines matching pred."""
    deadline = time.time() + timeout
    while True:
        got = []
        try:
            with open(h.path(name + ".jsonl")) as f:
                text = f.read()
            # The host flushes whole buffers: a trailing partial line is not ours yet.
            lines = text.split("\n")[:-1]
            got = [j for j in (json.loads(x) for x in lines if x.strip()) if pred(j)]
        except OSError:
            pass
        if len(got) >= n or time.time() > deadline:
            return got
        time.sleep(0.1)


def clean_exit(test):
    """After the test, every stub host must exit 0 on SIGTERM with no
    sanitizer report: the build uses ASan+UBSan, so this catches leaks and
    memory errors that the protocol checks cannot see."""
    @functools.wraps(test)
    def run(h):
        test(h)
        for p in h.procs:
            rc = h.stop(p)
            log = h.tail(p, 20000)
            check(rc == 0 and "Sanitizer" not in log and "runtime error" not in log,
                  "%s exited %s on SIGTERM:\n%s" % (p.kr_name, rc, log[-3000:]))
    return run


def xchg(s, pdu, timeout=5):
    s.sendall(pdu)
    r = krtest.recv_pdu(s, timeout)
    check(r, "connection closed instead of answering ptype %d" % pdu[2])
    return r


def bind_win8(s):
    """The Windows 8+ handshake: 3-item bind, then alter_context for NDR32.
    Afterwards ctx 0 is NDR32 and ctx 1 is NDR64."""
    xchg(s, pdus("v6_ndr64_two_requests", "bind")[0])
    xchg(s, pdus("v6_ndr64_two_requests", "alter_context")[0])


def ask(s, msg, call_id, ndr64=False):
    """Sends one KMS message; returns (decoded response or None, hresult)."""
    r = xchg(s, make_request(msg, 1 if ndr64 else 0, call_id, ndr64))
    check(u32(r, 12) == call_id, "call_id %d, expected %d" % (u32(r, 12), call_id))
    check(u16(r, 20) == (1 if ndr64 else 0), "ctx_id not echoed")
    m, hr = parse_response(r, ndr64)
    return (decode_kms_response(m) if m else None), hr


def v4_msg(cmid=None, vec="v4_win7pro_ndr32"):
    m = bytearray(request_msg(pdus(vec, "request")[0]))
    if cmid:
        m[64:80] = guid_wire(cmid)
    return bytes(m)


def is_closed(s, timeout):
    """True when the peer closes within timeout, False when it stays open."""
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


# --- Tests ------------------------------------------------------------------------
def test_decoder_selfcheck(h):
    """The Python decoders read the recorded hosts' responses right, so the
    checks below are not fooled by a broken test helper."""
    for name in ("v4_win7pro_ndr32", "v5_win8pro_ndr32", "v6_win10pro_ndr32",
                 "v6_ndr64_two_requests"):
        v = VECS[name]
        resps = [bytes.fromhex(p["hex"]) for p in v["server_to_client"] if p["type"] == "response"]
        for pdu, exp in zip(resps, v["expect"]["responses"]):
            m, hr = parse_response(pdu, u16(pdu, 20) == 1)
            r = decode_kms_response(m)
            check(hr == 0 and r["count"] == exp["count"] and r["cmid"] == exp["cmid_echo"]
                  and r["epid"] == exp["epid"] and r["version"] == exp["kms_version"],
                  "decoder self-check failed on %s: %r" % (name, r))
            check(r.get("hwid") == exp.get("hwid"), "hwid self-check failed on " + name)
    rebuilt = make_request(request_msg(pdus("v6_ndr64_two_requests", "request")[1]), 1, 3, True)
    check(rebuilt == pdus("v6_ndr64_two_requests", "request")[1], "make_request differs")


def test_help(h):
    rc, out, _ = h.run([krtest.binpath("kms-stubhost"), "--help"], check_rc=0)
    for opt in ("--listen", "--port-file", "--name", "--epid", "--hwid", "--ndr32-only",
                "--no-btfn", "--refuse-kmsid", "--delay-ms", "--close-after", "--reject-bind",
                "--hang", "--idle-timeout", "--activation-interval", "--renewal-interval",
                "--count-window-days", "--log", "SIGUSR1", "127.0.0.1:1688", "10080"):
        check(opt in out, "--help does not mention " + opt)
    for bad in (["--bogus"], ["--delay-ms", "x"], ["--refuse-kmsid", "nope"], ["--hwid", "12"],
                ["--epid", "x" * 64], ["--count-window-days", "0"], ["extra"]):
        rc, _, err = h.run([krtest.binpath("kms-stubhost")] + bad)
        check(rc == 2 and err, "%s: exit %d, expected 2 with a message" % (bad, rc))


def test_win8_bind_and_two_requests(h):
    _, port = start(h, "-N", "alpha")
    s = krtest.connect(port)
    ack = xchg(s, pdus("v6_ndr64_two_requests", "bind")[0])
    sec, res = parse_bind_ack(ack)
    check(ack[2] == 12 and ack[3] == 0x13 and u32(ack, 12) == 2, "bind_ack header %s" % ack[:16].hex())
    check(u16(ack, 16) == 5840 and u16(ack, 18) == 5840, "max_xmit/max_recv not echoed")
    check(sec == str(port), "sec_addr %r, expected the port %d" % (sec, port))
    check([(a, b) for a, b, _, _ in res] == [(2, 2), (0, 0), (3, 3)], "bind results %r" % res)
    check(res[1][2:] == (NDR64_UUID, 1), "NDR64 not accepted with its syntax")
    alt = xchg(s, pdus("v6_ndr64_two_requests", "alter_context")[0])
    sec, res = parse_bind_ack(alt)
    check(alt[2] == 15 and sec == "" and u16(alt, 24) == 0, "alter_context_resp header/sec_addr")
    check(res == [(0, 0, NDR32_UUID, 2)], "alter_context results %r" % res)

    exp = VECS["v6_ndr64_two_requests"]["expect"]["requests"]
    for i, (req, ndr64) in enumerate(zip(pdus("v6_ndr64_two_requests", "request"), (False, True))):
        r = xchg(s, req)
        check(r[2] == 2 and u32(r, 12) == u32(req, 12) and u16(r, 20) == u16(req, 20),
              "response %d header %s" % (i, r[:24].hex()))
        m, hr = parse_response(r, ndr64)
        check(m is not None and hr == 0, "request %d got hresult 0x%08x" % (i, hr))
        check(u16(m, 2) == 6 and u16(m, 0) == 0, "KMS version differs from the request's")
        d = decode_kms_response(m)
        check(d["cmid"] == exp[i]["cmid"] and d["count"] == 1, "CMID echo/count %r" % d)
        check(d["hwid"] == "3A1C049600B60076" and d["zeroed"], "hwid or integrity fields %r" % d)
        check(d["iv"] != request_msg(req)[4:20], "V6 response reuses the request IV")
        check(d["time"] == u64(cbc_decrypt(KEY_V6, True, request_msg(req)[4:20],
                                           request_msg(req)[20:]), 84), "time not echoed")
        check(re.fullmatch(r"03612-00206-\d{3}-\d{6}-03-1033-(14393|17763|20348)\.0000-"
                           r"(\d{3})20(19|2[0-4])", d["epid"]), "ePID %r" % d["epid"])
    lines = log_lines(h, lambda j: j.get("event") == "request", 2)
    check([j["ndr"] for j in lines] == ["ndr32", "ndr64"], "log ndr fields %r" % lines)
    check(all(j["host"] == "alpha" and j["count"] == 1 for j in lines), "log %r" % lines)


def test_all_versions_both_syntaxes(h):
    _, port = start(h, "--activation-interval", "77", "--renewal-interval", "999",
                    "--hwid", "0102030405060708")
    s = krtest.connect(port)
    bind_win8(s)
    call, counts = 10, {}
    for name in ("v4_win7pro_ndr32", "v4_office2010_vm", "v5_win8pro_ndr32",
                 "v6_win10pro_ndr32", "v6_office2016", "bind_ndr32_only"):
        msg = request_msg(pdus(name, "request")[0])
        exp = VECS[name]["expect"]["requests"][0]
        for ndr64 in (False, True):
            call += 1
            d, hr = ask(s, msg, call, ndr64)
            check(hr == 0 and d, "%s: hresult 0x%08x" % (name, hr))
            counts.setdefault(exp["app_id"], set()).add(exp["cmid"])
            check(d["version"] == exp["kms_version"] and d["cmid"] == exp["cmid"],
                  "%s: version/CMID %r" % (name, d))
            check(d["count"] == len(counts[exp["app_id"]]), "%s: count %d, expected %d"
                  % (name, d["count"], len(counts[exp["app_id"]])))
            check(d["act"] == 77 and d["renew"] == 999 and d["zeroed"], "%s: %r" % (name, d))
            if d["version"] == "5.0":
                check(d["iv"] == msg[4:20], "V5 response IV must equal the request's")
            check(d.get("hwid") == ("0102030405060708" if d["version"] == "6.0" else None),
                  "%s: hwid %r" % (name, d.get("hwid")))


def test_ndr32_only_and_single_item_bind(h):
    _, port = start(h, "--ndr32-only")
    s = krtest.connect(port)
    _, res = parse_bind_ack(xchg(s, pdus("v4_win7pro_ndr32", "bind")[0]))
    check([(a, b) for a, b, _, _ in res] == [(0, 0), (2, 2), (3, 3)], "results %r" % res)
    check(res[0][2:] == (NDR32_UUID, 2), "NDR32 not accepted with its syntax")
    d, hr = ask(s, v4_msg(), 2)
    check(hr == 0 and d["version"] == "4.0", "request after --ndr32-only bind failed")
    # Default host: a bind offering only NDR32 gets NDR32 accepted at once.
    _, port = start(h, name="default")
    s = krtest.connect(port)
    _, res = parse_bind_ack(xchg(s, pdus("bind_ndr32_only", "bind")[0]))
    check(res == [(0, 0, NDR32_UUID, 2)], "single NDR32 item: %r" % res)
    m, hr = parse_response(xchg(s, pdus("bind_ndr32_only", "request")[0]), False)
    check(hr == 0 and m, "request after single-item bind failed")


def test_no_btfn(h):
    _, port = start(h, "--no-btfn")
    s = krtest.connect(port)
    _, res = parse_bind_ack(xchg(s, pdus("v4_win7pro_ndr32", "bind")[0]))
    check([(a, b) for a, b, _, _ in res] == [(2, 2), (0, 0), (2, 2)], "results %r" % res)


def test_unbound_ctx_and_opnum_faults(h):
    _, port = start(h)
    s = krtest.connect(port)
    for ctx, opnum, status in ((0, 0, 0x1C010003), (7, 0, 0x1C010003)):
        req = make_request(v4_msg(), ctx, 9, opnum=opnum)
        f = xchg(s, req)
        check(f[2] == 3 and u32(f, 12) == 9 and u32(f, 24) == status,
              "expected fault 0x%08x, got %s" % (status, f.hex()))
        if ctx == 0:
            bind_win8(s)  # the same connection stays usable
    f = xchg(s, make_request(v4_msg(), 0, 11, opnum=5))
    check(f[2] == 3 and u32(f, 24) == 0x1C010002, "opnum 5: %s" % f.hex())
    d, hr = ask(s, v4_msg(), 12)
    check(hr == 0 and d, "request after faults failed")
    check(len(log_lines(h, lambda j: j.get("event") == "fault", 3)) == 3, "fault lines missing")


def test_refuse_kmsid(h):
    _, port = start(h, "--refuse-kmsid", KMSID_WIN10.upper())
    s = krtest.connect(port)
    bind_win8(s)
    r = xchg(s, make_request(request_msg(pdus("v6_win10pro_ndr32", "request")[0]), 0, 2))
    check(len(r) == 36 and r[-4:] == bytes.fromhex("42f004c0"), "refusal %s" % r.hex())
    d, hr = ask(s, request_msg(pdus("v6_office2016", "request")[0]), 3)
    check(hr == 0 and d["count"] == 1, "other KMS ids must still activate")
    lines = log_lines(h, lambda j: j.get("event") == "request", 2)
    check(lines[0]["hresult"] == "0xc004f042" and lines[0]["kms_id"] == KMSID_WIN10
          and lines[0]["count"] is None, "log %r" % lines[0])


def test_bad_version(h):
    _, port = start(h)
    s = krtest.connect(port)
    bind_win8(s)
    r = xchg(s, pdus("err_bad_version", "request")[0])
    recorded = [bytes.fromhex(p["hex"]) for p in VECS["err_bad_version"]["server_to_client"]][-1]
    check(r == recorded, "7.0 answer %s, a real host sent %s" % (r.hex(), recorded.hex()))
    j = log_lines(h, lambda j: j.get("event") == "request", 1)
    check(j and j[0]["version"] == "7.0" and j[0]["hresult"] == "0x8007000d", "log %r" % j)


def test_close_after(h):
    _, port = start(h, "--close-after", "2")
    s = krtest.connect(port)
    bind_win8(s)
    check(ask(s, v4_msg(), 2)[1] == 0, "first answer")
    check(not is_closed(s, 0.3), "closed after 1 answer with --close-after 2")
    check(ask(s, v4_msg(), 3)[1] == 0, "second answer")
    check(is_closed(s, 3), "connection still open after 2 answers")


def test_delay(h):
    _, port = start(h, "--delay-ms", "300")
    s = krtest.connect(port)
    t0 = time.time()
    bind_win8(s)
    check(time.time() - t0 < 0.25, "binds must not be delayed")
    t0 = time.time()
    s.sendall(make_request(v4_msg(), 0, 2) + make_request(v4_msg(), 0, 3))
    first = krtest.recv_pdu(s)
    t1 = time.time() - t0
    second = krtest.recv_pdu(s)
    t2 = time.time() - t0
    check(first and second and u32(first, 12) == 2 and u32(second, 12) == 3, "order")
    check(0.29 <= t1 < 2 and t2 >= 0.59, "answers after %.3f s and %.3f s" % (t1, t2))


def test_reject_bind(h):
    _, port = start(h, "--reject-bind")
    s = krtest.connect(port)
    _, res = parse_bind_ack(xchg(s, pdus("v4_win7pro_ndr32", "bind")[0]))
    check(len(res) == 3 and all(r[0] == 2 and r[2] == bytes(16) for r in res), "results %r" % res)
    _, res = parse_bind_ack(xchg(s, pdus("v6_ndr64_two_requests", "alter_context")[0]))
    check(res[0][0] == 2, "alter_context accepted with --reject-bind")
    f = xchg(s, make_request(v4_msg(), 0, 2))
    check(f[2] == 3 and u32(f, 24) == 0x1C010003, "request after rejected bind: %s" % f.hex())


def test_hang_and_sigusr1(h):
    proc, port = start(h, "--hang")
    s = krtest.connect(port)
    s.sendall(pdus("v4_win7pro_ndr32", "bind")[0])
    check(not is_closed(s, 1.0), "hanging host closed the connection or answered")
    s.sendall(b"\xff" * 64)  # even garbage is swallowed while hanging
    check(not is_closed(s, 0.3), "hanging host reacted to input")
    os.kill(proc.pid, signal.SIGUSR1)
    check(log_lines(h, lambda j: j.get("event") == "hang" and j["on"] is False, 1), "no hang line")
    s2 = krtest.connect(port)
    bind_win8(s2)
    check(ask(s2, v4_msg(), 2)[1] == 0, "no answer after SIGUSR1 ended hang mode")


def test_idle_timeout(h):
    _, port = start(h, "--idle-timeout", "1")
    s = krtest.connect(port)
    bind_win8(s)
    t0 = time.time()
    check(is_closed(s, 4), "idle connection not closed")
    t = time.time() - t0
    check(0.8 <= t <= 2.5, "closed after %.2f s, expected about 1 s" % t)


def test_count_and_log(h):
    _, port = start(h, "-N", "counter")
    s = krtest.connect(port)
    bind_win8(s)
    a, b = "11111111-2222-4333-8444-555555555554", "11111111-2222-4333-8444-555555555555"
    seq = [(a, 1), (a, 1), (b, 2), (a, 2)]
    for i, (cmid, want) in enumerate(seq):
        d, hr = ask(s, v4_msg(cmid), 20 + i)
        check(hr == 0 and d["cmid"] == cmid and d["count"] == want,
              "request %d: count %s, expected %d" % (i, d and d["count"], want))
    d, _ = ask(s, v4_msg(a, "v4_office2010_vm"), 30)
    check(d["count"] == 1, "Office 2010 must have its own count, got %d" % d["count"])
    lines = log_lines(h, lambda j: j.get("event") == "request", 5)
    check(len(lines) == 5, "%d request lines" % len(lines))
    check([(j["cmid"], j["count"]) for j in lines[:4]] == seq, "log cmid/count %r" % lines)
    j = lines[4]
    check(j["app"] == "Office 2010" and j["app_id"] == APP_OFFICE2010 and j["version"] == "4.0"
          and j["hresult"] == "0x00000000" and j["ndr"] == "ndr32" and j["host"] == "counter"
          and j["peer"].startswith("127.0.0.1:") and j["ts"].endswith("Z")
          and j["workstation"] == VECS["v4_office2010_vm"]["expect"]["requests"][0]["workstation"],
          "log line %r" % j)
    check(lines[0]["app"] == "Windows" and lines[0]["app_id"] == APP_WINDOWS, "app %r" % lines[0])


def test_count_window(h):
    _, port = start(h, "--count-window-days", "%.10f" % (1.5 / 86400))
    s = krtest.connect(port)
    bind_win8(s)
    c = ["aaaaaaaa-0000-4000-8000-%012d" % i for i in range(3)]
    check([ask(s, v4_msg(x), 2 + i)[0]["count"] for i, x in enumerate(c[:2])] == [1, 2], "count")
    time.sleep(2.0)
    check(ask(s, v4_msg(c[2]), 9)[0]["count"] == 1, "CMIDs older than the window still count")


def test_many_pipelined(h):
    _, port = start(h)
    s = krtest.connect(port, timeout=20)
    bind_win8(s)
    n = 3000
    s.sendall(b"".join(make_request(v4_msg("bbbbbbbb-0000-4000-8000-%012d" % i), 0, 100 + i)
                       for i in range(n)))
    t0 = time.time()
    for i in range(n):
        r = krtest.recv_pdu(s, 20)
        check(r, "closed after %d of %d responses" % (i, n))
        m, hr = parse_response(r, False)
        check(u32(r, 12) == 100 + i and u32(m, 32 + u32(m, 4)) == i + 1, "response %d out of order" % i)
    check(time.time() - t0 < 15, "3000 answers took %.1f s" % (time.time() - t0))


def test_garbage_and_bad_ptype(h):
    _, port = start(h)
    cases = [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
             bytes.fromhex("05000b03100000000010000002000000"),       # frag_len 4096
             bytes.fromhex("0500020310000000180000000200000000000000000000000000"),  # response
             pdus("v4_win7pro_ndr32", "bind")[0][:40] + b"\x00" * 4]  # truncated, then closed
    for i, junk in enumerate(cases):
        s = krtest.connect(port)
        s.sendall(junk)
        if i == 3:
            s.shutdown(socket.SHUT_WR)
        check(is_closed(s, 3), "case %d: connection left open" % i)
        s.close()
    s = krtest.connect(port)
    bind_win8(s)
    check(ask(s, v4_msg(), 2)[1] == 0, "host stopped serving after garbage")
    errs = log_lines(h, lambda j: j.get("event") == "protocol_error", 3)
    check(len(errs) >= 3 and all(j["why"] for j in errs), "protocol_error lines %r" % errs)


def test_epid_and_clean_exit(h):
    proc, port = start(h, "-N", "one", log=False)
    s = krtest.connect(port)
    bind_win8(s)
    e1 = ask(s, v4_msg(), 2)[0]["epid"]
    s2 = krtest.connect(port)  # left open: exit must free it
    s2.sendall(pdus("v4_win7pro_ndr32", "bind")[0][:20])
    time.sleep(0.2)
    check(h.stop(proc) == 0, "SIGTERM exit status %s (ASan leak report?)\n%s"
          % (proc.returncode, h.tail(proc)))
    log = h.tail(proc)
    check('"event":"listening"' in log and '"event":"exit"' in log and e1 in log,
          "default log on stderr lacks listening/exit lines: %s" % log)
    for i, (args, same) in enumerate(((["-N", "one"], True), (["-N", "two"], False), (
            ["--epid", "12345-00000-000-000000-03-1033-9600.0000-0012024"], False))):
        _, port = start(h, *args, name="host%d" % i)
        s = krtest.connect(port)
        bind_win8(s)
        e = ask(s, v4_msg(), 2)[0]["epid"]
        check((e == e1) == same, "ePID %r for %s (first was %r)" % (e, args, e1))
        if args[0] == "--epid":
            check(e == args[1], "--epid not used verbatim: %r" % e)


def test_ipv6_and_two_listeners(h):
    pf = h.path("port")
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        print("SKIP ipv6 part: no ::1")
        return
    _, port = h.start([krtest.binpath("kms-stubhost"), "-l", "[::1]:0", "-l", "127.0.0.1:0",
                       "--port-file", pf, "--log", h.path("stubhost.jsonl")], "stubhost", port_file=pf)
    s = socket.create_connection(("::1", port), timeout=5)
    sec, _ = parse_bind_ack(xchg(s, pdus("v4_win7pro_ndr32", "bind")[0]))
    check(sec == str(port), "sec_addr %r on [::1]:%d" % (sec, port))
    ls = log_lines(h, lambda j: j.get("event") == "listening", 2)
    check(len(ls) == 2 and ls[0]["addr"] == "[::1]:%d" % port, "listening lines %r" % ls)


def test_half_close_gets_every_answer(h):
    _, port = start(h, "--delay-ms", "200")
    s = krtest.connect(port)
    bind_win8(s)
    s.sendall(make_request(v4_msg(), 0, 2) + make_request(v4_msg(), 0, 3))
    s.shutdown(socket.SHUT_WR)
    got = [krtest.recv_pdu(s, 3) for _ in range(2)]
    check(all(got) and [u32(r, 12) for r in got] == [2, 3], "answers lost after half-close")
    check(is_closed(s, 2), "not closed after answering a half-closed peer")


def test_random_input(h):
    t0 = time.time()
    """Mutated and random PDUs with valid headers: every one is answered,
    faulted or closed, the host keeps serving, and ASan stays quiet."""
    import random
    rnd = random.Random(1688)
    _, port = start(h)
    base = [pdus("v6_ndr64_two_requests", k)[0] for k in ("bind", "alter_context", "request")]
    base += [pdus(v, "request")[0] for v in ("v4_win7pro_ndr32", "v5_win8pro_ndr32")]
    for i in range(300):
        p = bytearray(rnd.choice(base))
        for _ in range(rnd.randint(1, 8)):
            p[rnd.randrange(16, len(p))] = rnd.randrange(256)
        if i % 3 == 0:  # also change the length, keeping frag_length consistent
            p = p[:rnd.randrange(16, len(p))] + bytes(rnd.randrange(64))
            p[8:10] = struct.pack("<H", len(p))
        s = krtest.connect(port)
        bind_win8(s)
        s.sendall(bytes(p))
        r = krtest.recv_pdu(s, 5)
        check(r == b"" or r[2] in (2, 3, 12, 15), "reply of ptype %d" % r[2] if r else "")
        s.close()
    s = krtest.connect(port)
    bind_win8(s)
    check(ask(s, v4_msg(), 2)[1] == 0, "host stopped serving after random input")
    kinds = {}
    for j in log_lines(h, lambda j: j.get("event") != "listening", 10**9, timeout=1.5):
        k = j["event"] + ("/" + j["hresult"] if "hresult" in j else "")
        kinds[k] = kinds.get(k, 0) + 1
    print("  random input: %r in %.1f s" % (kinds, time.time() - t0))


if __name__ == "__main__":
    krtest.run_tests("stubhost", [clean_exit(t) for t in (
        test_decoder_selfcheck, test_help, test_win8_bind_and_two_requests,
        test_all_versions_both_syntaxes, test_ndr32_only_and_single_item_bind, test_no_btfn,
        test_unbound_ctx_and_opnum_faults, test_refuse_kmsid, test_bad_version, test_close_after,
        test_delay, test_reject_bind, test_hang_and_sigusr1, test_idle_timeout,
        test_count_and_log, test_count_window, test_many_pipelined, test_garbage_and_bad_ptype,
        test_epid_and_clean_exit, test_ipv6_and_two_listeners, test_half_close_gets_every_answer,
        test_random_input,
    )])
