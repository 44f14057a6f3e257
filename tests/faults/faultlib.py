"""faultlib - helpers of kmsrelay's fault-injection suite (tests/faults/).

Builds on the integration harness (tests/integration/krtest.py and
relaylib.py, imported, not copied): every process still goes through
Harness.start and is stopped by PID.

What this file adds:
- conf(): a relaylib config with settings of any group overridden;
- RelayLog: incremental, parsed reading of kmsrelayd's logfmt log;
- fake backend hosts written in Python (run this file as
  `python3 faultlib.py fakehost --mode MODE ...`): they answer the RPC bind
  correctly (so health checks see them UP) and then reset connections,
  close them, or answer garbage; or answer garbage from the very first byte.
  They log what they received as JSON lines, flushed at once, so a test can
  prove the fault really happened;
- the daemon's own counts: /metrics (metrics()) and the control API
  (ctl(): `kmsrelayctl --json ...` on the test's control socket);
- raw RPC PDUs for hand-made clients (slowloris, flood, malformed PDUs);
- start_piped(): a process whose log goes through a pipe (so RLIMIT_FSIZE
  on it limits its own files, not its log);
- a small filesystem for the state directory (tmpfs, else RLIMIT_FSIZE).
"""
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import krtest  # noqa: E402
import relaylib as rl  # noqa: E402
from krtest import Failure, check  # noqa: E402

# ---- configuration --------------------------------------------------------------


def listen_with_port_file(port_file):
    """A loopback listener on a kernel-chosen port, announced atomically in
    port_file (what krtest.Harness.start waits for)."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(128)
    with open(port_file + ".tmp", "w") as f:
        f.write("%d\n" % ls.getsockname()[1])
    os.replace(port_file + ".tmp", port_file)
    return ls


def conf_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[ %s ]" % ", ".join(conf_value(x) for x in v)
    return '"%s"' % v


def set_opts(text, group, **kv):
    """Sets settings inside `group: { ... };` of a relaylib config (one line
    per group there); adds the group when it is missing."""
    m = re.search(r"(?m)^%s: \{(.*)\};$" % re.escape(group), text)
    if not m:
        body = " ".join("%s = %s;" % (k, conf_value(v)) for k, v in kv.items())
        return text + "%s: { %s };\n" % (group, body)
    body = m.group(1)
    for k, v in kv.items():
        item = "%s = %s;" % (k, conf_value(v))
        body, n = re.subn(r"\b%s = [^;]*;" % re.escape(k), lambda _m: item, body)
        if n == 0:
            body = body.rstrip() + " " + item + " "
    return text[:m.start(1)] + body + text[m.end(1):]


def conf(h, hosts, groups=None, debug=False, metrics=True, **kw):
    """relaylib.conf_text(h, hosts, **kw) with `groups` = {group: {key: value}}
    applied on top. debug=True logs at debug level (attempt failures are
    debug lines); metrics=True serves /metrics on 127.0.0.1 (port 0). The
    control socket is <harness dir>/ctl.sock (the relays of one test never
    run at the same time)."""
    text = rl.conf_text(h, hosts, **kw)
    text = set_opts(text, "control", socket=h.path("ctl.sock"))
    for g, kv in (groups or {}).items():
        text = set_opts(text, g, **kv)
    if debug:
        text = set_opts(text, "log", level="debug")
    if metrics:
        text = set_opts(text, "metrics", listen="127.0.0.1:0")
    return text


def ctl(h, *args):
    """`kmsrelayctl --json ARGS` against the test's relay; the parsed JSON."""
    rc, out, err = h.run([krtest.binpath("kmsrelayctl"), "--json", "--socket",
                          h.path("ctl.sock")] + list(args), timeout=30)
    check(rc in (0, 1) and out.strip(), "kmsrelayctl %s: exit %d %s" % (" ".join(args), rc, err))
    return json.loads(out)


def host_status(h, name):
    """The `kmsrelayctl hosts` entry of one host."""
    for e in ctl(h, "hosts")["hosts"]:
        if e["name"] == name:
            return e
    raise Failure("kmsrelayctl hosts does not list %s" % name)


def start_relay(h, hosts, groups=None, debug=False, wait_up=(), name="relayd", conf_name=None,
                **kw):
    path = h.path((conf_name or name) + ".conf")
    rl.write(path, conf(h, hosts, groups=groups, debug=debug, **kw))
    return rl.start_relay(h, path, name=name, wait_up=wait_up)


# ---- kmsrelayd's counters (/metrics) ---------------------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')


def metrics(r):
    """kmsrelayd's counters: [(name, {label: value}, float)] from /metrics
    (the address is the last event=metrics_listen line of its log)."""
    import urllib.request
    addrs = re.findall(r"event=metrics_listen addr=(\S+)", r.log())
    check(addrs, "kmsrelayd logged no event=metrics_listen (metrics not served?)")
    with urllib.request.urlopen("http://%s/metrics" % addrs[-1], timeout=10) as resp:
        text = resp.read().decode()
    out = []
    for ln in text.splitlines():
        m = _SAMPLE.match(ln)
        if m and not ln.startswith("#"):
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            out.append((m.group(1), labels, float(m.group(3).replace("+Inf", "inf"))))
    return out


def metric(samples, name, **labels):
    """Sum of the samples of `name` whose labels include `labels`."""
    return sum(v for n, lb, v in samples
               if n == name and all(lb.get(k) == w for k, w in labels.items()))


# ---- kmsrelayd's log ----------------------------------------------------------------

_KV = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def parse_line(line):
    d = {}
    for k, v in _KV.findall(line):
        if v.startswith('"'):
            v = v[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        d[k] = v
    d["_line"] = line
    return d


def ts_of(d):
    """Wall-clock seconds of a parsed log line (ts=...Z, UTC, ms)."""
    return datetime.strptime(d["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc).timestamp()


class RelayLog:
    """Parsed lines of a process log, read incrementally (only whole lines)."""

    def __init__(self, proc, start=0):
        self.path, self.off, self.rest, self.lines = proc.kr_log, start, b"", []

    def mark(self):
        """Index into self.lines after a refresh: 'from here on'."""
        self.refresh()
        return len(self.lines)

    def refresh(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.off)
                data = f.read()
        except OSError:
            return self.lines
        self.off += len(data)
        data = self.rest + data
        cut = data.rfind(b"\n") + 1
        self.rest = data[cut:]
        for raw in data[:cut].decode("utf-8", "replace").splitlines():
            if "event=" in raw:
                self.lines.append(parse_line(raw))
        return self.lines

    def events(self, event, since=0, **match):
        """Lines of one event (after index `since`) whose fields equal `match`
        (a value may be a compiled regex)."""
        self.refresh()
        out = []
        for d in self.lines[since:]:
            if d.get("event") != event:
                continue
            ok = True
            for k, v in match.items():
                got = d.get(k)
                if hasattr(v, "search"):
                    ok = got is not None and v.search(got) is not None
                else:
                    ok = got == v
                if not ok:
                    break
            if ok:
                out.append(d)
        return out

    def wait(self, event, timeout, what=None, since=0, count=1, proc=None, **match):
        """Waits (bounded) until at least `count` matching lines exist."""
        def probe():
            got = self.events(event, since, **match)
            if len(got) >= count:
                return got
            if proc is not None and proc.poll() is not None:
                raise Failure("%s exited (%s) while waiting for %s"
                              % (proc.kr_name, proc.returncode, what or event))
            return None
        return rl.wait_for(probe, timeout, what or "%d x event=%s %s" % (count, event, match))


def activations_by_result(acts):
    """{'ok': n, 'fault=0x...': n, 'hresult=0x...': n} of activation lines."""
    out = {}
    for a in acts:
        if a.get("fault"):
            k = "fault=" + a["fault"]
        elif a.get("hresult") == "0x00000000":
            k = "ok"
        else:
            k = "hresult=" + a.get("hresult", "?")
        out[k] = out.get(k, 0) + 1
    return out


def check_lost_none(rc, doc, out, n, log, since, what):
    """No valid activation lost: kms-loadgen saw n ok and 0 errors, and
    kmsrelayd logged exactly n successful activation lines since `since`
    (no failed ones)."""
    rl.check_all_ok(rc, doc, out, n, what)
    acts = log.events("activation", since)
    res = activations_by_result(acts)
    check(res.get("ok", 0) == n and len(acts) == n,
          "%s: kmsrelayd logged %d activations %s, the loadgen saw %d ok"
          % (what, len(acts), res, n))
    return acts


def check_alive(h, r, n=20, seed=999, what="after the fault"):
    """The daemon still runs and serves a few fresh clients."""
    check(r.proc.poll() is None, "kmsrelayd exited (%s) %s" % (r.proc.returncode, what))
    rc, doc, out = rl.loadgen(h, r.target(), n, c=4, seed=seed, name="alive%d" % seed)
    rl.check_all_ok(rc, doc, out, n, "kmsrelayd still serving " + what)


def stop_relay_clean(h, r):
    check(h.stop(r.proc) == 0, "kmsrelayd's SIGTERM exit status was not 0:\n" + r.log()[-3000:])


def print_line(d):
    line = d["_line"]
    i = line.find("event=")
    return line[i:] if i >= 0 else line


def epids_of(doc):
    out = set()
    for c in doc["clients"]:
        out.update(c["epids"])
    return out


# ---- fake hosts --------------------------------------------------------------------

NDR32 = bytes.fromhex("045d888aeb1cc9119fe808002b104860") + struct.pack("<I", 2)
PT_REQUEST, PT_RESPONSE, PT_FAULT, PT_BIND, PT_BIND_ACK, PT_ALTER, PT_ALTER_RESP = \
    0, 2, 3, 11, 12, 14, 15


def rpc_hdr(ptype, frag_len, call_id, flags=3):
    return struct.pack("<BBBB4sHHI", 5, 0, ptype, flags, b"\x10\x00\x00\x00", frag_len, 0, call_id)


def bind_ack_for(pdu, port=1688):
    """A bind_ack (or alter_context_resp) accepting every NDR32 item of a
    bind and rejecting the others, like a pre-Windows-8 host."""
    call_id = struct.unpack_from("<I", pdu, 12)[0]
    n_ctx = pdu[24]
    off = 28
    results = b""
    for _ in range(n_ctx):
        n_ts = pdu[off + 2]
        tss = [pdu[off + 24 + 20 * i: off + 44 + 20 * i] for i in range(n_ts)]
        off += 24 + 20 * n_ts
        if NDR32 in tss:
            results += struct.pack("<HH", 0, 0) + NDR32
        else:
            results += struct.pack("<HH", 2, 2) + b"\x00" * 20
    sec = b"%d\x00" % port if pdu[2] == PT_BIND else b""
    body = struct.pack("<HHI", 5840, 5840, 0x1234) + struct.pack("<H", len(sec)) + sec
    body += b"\x00" * ((4 - (16 + len(body)) % 4) % 4)
    body += struct.pack("<B3x", n_ctx) + results
    pt = PT_BIND_ACK if pdu[2] == PT_BIND else PT_ALTER_RESP
    return rpc_hdr(pt, 16 + len(body), call_id) + body


GARBAGE_KINDS = ["random", "fault", "wrong_call_id", "bad_ndr", "bad_kms", "huge_frag",
                 "bind_ack", "replay"]
_REPLAY = []


def _replay_pdu():
    """A genuine captured NDR32 response PDU (for the capture's CMID, not the
    one asked about)."""
    if not _REPLAY:
        v = rl.vector("v4_win7pro_ndr32")
        _REPLAY.extend(bytes.fromhex(p["hex"]) for p in v["server_to_client"]
                       if p["type"] == "response")
    return _REPLAY[0]


def garbage_for(kind, call_id, rng):
    """An answer to a request that no genuine KMS host would send."""
    if kind == "random":
        return bytes([rng.randrange(6, 256)]) + rng.randbytes(rng.randrange(20, 300))
    if kind == "fault":
        body = struct.pack("<IHBBII", 32, 0, 0, 0, 0x1C010002, 0)
        return rpc_hdr(PT_FAULT, 16 + len(body), call_id) + body
    if kind == "wrong_call_id":
        stub = struct.pack("<II", 0, 0) + struct.pack("<I", 0)
        body = struct.pack("<IHBB", len(stub), 0, 0, 0) + stub
        return rpc_hdr(PT_RESPONSE, 16 + len(body), call_id + 77) + body
    if kind == "bad_ndr":
        stub = rng.randbytes(6)
        body = struct.pack("<IHBB", len(stub), 0, 0, 0) + stub
        return rpc_hdr(PT_RESPONSE, 16 + len(body), call_id) + body
    if kind == "bad_kms":
        # well framed RPC and NDR, hresult 0, but the KMS message is noise
        msg = rng.randbytes(rng.choice([40, 120, 260]))
        stub = struct.pack("<III", len(msg), 0x20000, len(msg)) + msg
        stub += b"\x00" * ((4 - len(stub) % 4) % 4) + struct.pack("<I", 0)
        body = struct.pack("<IHBB", len(stub), 0, 0, 0) + stub
        return rpc_hdr(PT_RESPONSE, 16 + len(body), call_id) + body
    if kind == "huge_frag":
        return rpc_hdr(PT_RESPONSE, 0xFFFF, call_id) + rng.randbytes(100)
    if kind == "replay":
        p = _replay_pdu()
        return p[:12] + struct.pack("<I", call_id) + p[16:]
    if kind == "bind_ack":
        return bind_ack_for(rpc_hdr(PT_BIND, 28, call_id) + struct.pack("<HHIB3x", 1, 1, 0, 0))
    raise ValueError(kind)


class _FakeHost:
    def __init__(self, mode, log_path, kinds, seed):
        self.mode, self.kinds = mode, kinds
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.log = open(log_path, "a", buffering=1)
        self.n = 0

    def note(self, **e):
        e["t"] = time.time()
        with self.lock:
            self.log.write(json.dumps(e) + "\n")

    def next_kind(self):
        with self.lock:
            k = self.kinds[self.n % len(self.kinds)]
            self.n += 1
            return k

    def rst(self, s):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()

    def serve(self, s, peer):
        self.note(event="accept", peer=peer)
        if self.mode == "rst-accept":
            self.note(event="rst", peer=peer, on="accept")
            self.rst(s)
            return
        s.settimeout(30)
        buf = b""
        try:
            while True:
                while len(buf) < 16 or len(buf) < struct.unpack_from("<H", buf, 8)[0]:
                    d = s.recv(65536)
                    if not d:
                        self.note(event="eof", peer=peer)
                        s.close()
                        return
                    buf += d
                    if self.mode == "garbage":  # garbage from the first byte on
                        kind = self.next_kind()
                        self.note(event="garbage", peer=peer, kind=kind, on="first bytes")
                        s.sendall(garbage_for(kind, 1, self.rng))
                        time.sleep(0.05)
                        s.close()
                        return
                flen = struct.unpack_from("<H", buf, 8)[0]
                pdu, buf = buf[:flen], buf[flen:]
                ptype, call_id = pdu[2], struct.unpack_from("<I", pdu, 12)[0]
                if ptype in (PT_BIND, PT_ALTER):
                    self.note(event="bind", peer=peer)
                    s.sendall(bind_ack_for(pdu))
                    continue
                if ptype != PT_REQUEST:
                    self.note(event="unexpected", peer=peer, ptype=ptype)
                    s.close()
                    return
                if self.mode == "rst-request":
                    self.note(event="request", peer=peer, action="rst")
                    self.rst(s)
                    return
                if self.mode == "close-request":
                    self.note(event="request", peer=peer, action="close")
                    s.close()
                    return
                kind = self.next_kind()
                self.note(event="request", peer=peer, action="garbage", kind=kind)
                s.sendall(garbage_for(kind, call_id, self.rng))
                if kind in ("random", "huge_frag"):
                    time.sleep(0.2)  # let the peer read it before our close
                    s.close()
                    return
        except OSError as e:
            self.note(event="error", peer=peer, error=str(e))
            try:
                s.close()
            except OSError:
                pass


def fakehost_main(argv):
    import argparse
    ap = argparse.ArgumentParser(prog="faultlib.py fakehost")
    ap.add_argument("--mode", required=True,
                    choices=["rst-accept", "rst-request", "close-request", "garbage",
                             "garbage-request"])
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--kinds", default=",".join(GARBAGE_KINDS))
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    fh = _FakeHost(a.mode, a.log, a.kinds.split(","), a.seed)
    ls = listen_with_port_file(a.port_file)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        s, addr = ls.accept()
        threading.Thread(target=fh.serve, args=(s, "%s:%d" % addr), daemon=True).start()


class Fake(rl.Stub):
    """A fake host; a relaylib.Stub so that conf_text() takes it as a host."""

    def events(self, event=None):
        out = []
        for line in rl.read(self.log).splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if event is None or e.get("event") == event:
                out.append(e)
        return out


def start_fake(h, name, mode, kinds=None, seed=1):
    pf, log = h.path(name + ".port"), h.path(name + ".jsonl")
    args = [sys.executable, os.path.abspath(__file__), "fakehost", "--mode", mode,
            "--port-file", pf, "--log", log, "--seed", str(seed)]
    if kinds:
        args += ["--kinds", ",".join(kinds)]
    p, port = h.start(args, name, port_file=pf)
    return Fake(name, p, port, log)


# ---- hand-made clients ------------------------------------------------------------


def bind32():
    """The NDR32-only bind of the captures (call id 1)."""
    return rl.pdus(rl.vector("bind_ndr32_only"), "bind")[0]


def request32():
    """A captured NDR32 V6 request PDU (needs bind32() first)."""
    return rl.pdus(rl.vector("v6_win10pro_ndr32"), "request")[0]


def recv_pdu(s, timeout=5):
    """krtest.recv_pdu, but a reset counts as a close (b''): a peer that
    closes with our unread bytes in its buffer sends RST instead of FIN."""
    try:
        return krtest.recv_pdu(s, timeout=timeout)
    except ConnectionResetError:
        return b""


def closed_by_peer(s, timeout):
    """True when the peer closes (EOF or reset) within timeout; False when the
    socket is still open then. Data received meanwhile is discarded."""
    s.settimeout(timeout)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            s.settimeout(max(0.01, deadline - time.time()))
            if not s.recv(4096):
                return True
    except socket.timeout:
        return False
    except OSError:
        return True
    return False


# ---- processes whose log must not be a file they write themselves ----------------


def start_piped(h, args, name, port_file):
    """Harness.start, but the process writes its output into a pipe that a
    thread of ours copies to <dir>/<name>.log: a file-size limit (RLIMIT_FSIZE)
    on the process then limits its own files, not its log. The process is
    registered with the harness, so it is still stopped by PID."""
    logf = open(h.path(name + ".log"), "wb")
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    p.kr_name, p.kr_log = name, h.path(name + ".log")
    h.procs.append(p)

    def pump():
        for chunk in iter(lambda: p.stdout.read1(65536), b""):
            logf.write(chunk)
            logf.flush()
        logf.close()
    threading.Thread(target=pump, daemon=True).start()
    return p, h.wait_port(p, name, port_file)


# ---- a small disk for the state directory ----------------------------------------


class SmallDisk:
    """A size-limited filesystem at `path`: tmpfs when mount works (root with
    CAP_SYS_ADMIN), else None (the caller falls back to RLIMIT_FSIZE)."""

    def __init__(self, path, size):
        self.path, self.size, self.mounted = path, size, False

    def mount(self):
        os.makedirs(self.path, exist_ok=True)
        if os.environ.get("KR_FAULTS_DISK") == "prlimit":
            return False
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0700" % self.size,
                            "tmpfs", self.path], capture_output=True, timeout=20)
        self.mounted = r.returncode == 0
        return self.mounted

    def fill(self, name="filler"):
        """Writes a file until the filesystem is full; returns its size."""
        path = os.path.join(self.path, name)
        n = 0
        with open(path, "wb", buffering=0) as f:
            chunk = b"\xa5" * 4096
            for _ in range(1 << 16):  # bounded: 256 MiB at most
                try:
                    n += f.write(chunk)
                except OSError:
                    break
        return n

    def free(self, name="filler"):
        try:
            os.unlink(os.path.join(self.path, name))
        except OSError:
            pass

    def umount(self):
        if self.mounted:
            for _ in range(50):
                if subprocess.run(["umount", self.path], capture_output=True,
                                  timeout=20).returncode == 0:
                    self.mounted = False
                    return
                time.sleep(0.1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "fakehost":
        fakehost_main(sys.argv[2:])
    else:
        sys.exit("usage: faultlib.py fakehost --mode MODE --port-file F --log F")
