#!/usr/bin/python3
"""idle_clients.py - N idle KMS client connections, for kmsrelayd's memory
per idle connection (tests/bench/run).

Opens N TCP connections to ADDR:PORT, spread round-robin over the given
local source addresses (loopback has ~28k ephemeral ports per source and
destination pair, so 50,000 connections need several sources), sends an
RPC bind for the KMS interface (NDR32) on each and waits for the bind_ack.
At most --window connects are in flight at once, so the listener's accept
queue is never overrun. When every connection is bound (or failed) it
prints one line "ready ok=N failed=M secs=S" on stdout and then holds the
connections, sending nothing, until stdin reaches EOF or SIGTERM arrives;
then it closes everything and exits 0 (1 if any connection failed).

Usage: idle_clients.py ADDR:PORT N SRC[,SRC...] [--window W]
"""
import errno
import resource
import selectors
import signal
import socket
import struct
import sys
import time

KMS_IFACE = bytes.fromhex("7521c8514e845047b0d8ec255555bc06")  # 51c82175-844e-4750-...
NDR32 = bytes.fromhex("045d888aeb1cc9119fe808002b104860")  # 8a885d04-1ceb-11c9-...


def bind_pdu(call_id):
    """bind, 1 context item: ctx 0, KMS v1.0, NDR32 v2 (what kmsrelayd answers)."""
    item = struct.pack("<HBB", 0, 1, 0) + KMS_IFACE + struct.pack("<HH", 1, 0) + NDR32 + \
        struct.pack("<I", 2)
    body = struct.pack("<HHI", 5840, 5840, 0) + struct.pack("<BBH", 1, 0, 0) + item
    return struct.pack("<BBBB4sHHI", 5, 0, 11, 3, b"\x10\0\0\0", 16 + len(body), 0,
                       call_id) + body


def main():
    args = sys.argv[1:]
    window = 512
    if "--window" in args:
        i = args.index("--window")
        window = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 3:
        sys.stderr.write(__doc__)
        return 2
    host, port = args[0].rsplit(":", 1)
    dst = (host, int(port))
    n = int(args[1])
    sources = args[2].split(",")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if n + 50 > hard:
        sys.stderr.write("idle_clients: %d connections need more than the fd limit %d\n" % (n, hard))
        return 2

    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    sel = selectors.DefaultSelector()
    pdu = bind_pdu(1)
    want = {}  # fd -> bytes received so far (bind_ack pending)
    held = []
    failed = 0
    started = 0
    t0 = time.monotonic()
    deadline = t0 + 120

    def start_one(i):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # the port is chosen at connect time, per destination
        s.setsockopt(socket.IPPROTO_IP, 24, 1)  # IP_BIND_ADDRESS_NO_PORT
        s.bind((sources[i % len(sources)], 0))
        s.setblocking(False)
        rc = s.connect_ex(dst)
        if rc not in (0, errno.EINPROGRESS):
            s.close()
            return False
        sel.register(s, selectors.EVENT_WRITE, [s, "connect", b""])
        return True

    while (started < n or sel.get_map()) and time.monotonic() < deadline and not stop:
        while started < n and len(sel.get_map()) < window:
            if not start_one(started):
                failed += 1
            started += 1
        for key, ev in sel.select(timeout=1.0):
            st = key.data
            s = st[0]
            if st[1] == "connect":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    sel.unregister(s)
                    s.close()
                    failed += 1
                    continue
                try:
                    s.send(pdu)
                except OSError:
                    sel.unregister(s)
                    s.close()
                    failed += 1
                    continue
                st[1] = "ack"
                sel.modify(s, selectors.EVENT_READ, st)
                continue
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:
                sel.unregister(s)
                s.close()
                failed += 1
                continue
            st[2] += data
            if len(st[2]) >= 10 and len(st[2]) >= struct.unpack_from("<H", st[2], 8)[0]:
                sel.unregister(s)
                if st[2][2] == 12:  # bind_ack
                    held.append(s)
                else:
                    s.close()
                    failed += 1
    for key in list(sel.get_map().values()):
        key.fileobj.close()
        failed += 1
    sel.close()
    print("ready ok=%d failed=%d secs=%.2f" % (len(held), failed + (n - started),
                                                time.monotonic() - t0), flush=True)
    # Hold until the driver is done measuring (stdin EOF) or SIGTERM.
    while not stop:
        try:
            if not sys.stdin.readline():
                break
        except (OSError, ValueError):
            break
    for s in held:
        s.close()
    return 0 if failed == 0 and started == n else 1


if __name__ == "__main__":
    sys.exit(main())
