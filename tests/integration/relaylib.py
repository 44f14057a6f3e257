"""relaylib - helpers shared by the kmsrelayd acceptance suites (test_relay_*.py).

Builds on krtest: stub hosts with fixed, distinct ePIDs (so an answer's ePID
names the host that produced it), kmsrelayd configs written in libconfig
syntax (loopback listener on port 0, state dir inside the harness dir, fast
health and commit settings), kms-loadgen runs with their --json results, and
bounded waits on log files. Every process goes through Harness.start, so the
harness stops it by PID.
"""
import json
import os
import re
import signal
import socket
import subprocess
import time
import zlib

import krtest
from krtest import Failure, check

WIN_APP = "55c92734-d682-4d71-983e-d6ec3f16059f"
OFFICE2016_KMS_ID = "85b5f61b-320b-4be3-814a-b76b2bfafc82"

# Fast settings so state changes settle in well under a second.
HEALTH = {"interval": "200ms", "fast_interval": "100ms", "timeout": "200ms", "rise": 1, "fall": 2}
COMMIT_INTERVAL_S = 0.2


def epid_for(name):
    """A vlmcsd-form ePID unique to the host name (its group id is a CRC of it)."""
    g = zlib.crc32(name.encode()) % 100000
    return "55041-%05d-570-512209-03-1033-17763.0000-0012025" % g


class Stub:
    def __init__(self, name, proc, port, log):
        self.name, self.proc, self.port, self.log = name, proc, port, log
        self.epid = epid_for(name)

    def addr(self):
        return "127.0.0.1:%d" % self.port


def start_stub(h, name, extra=(), port=0, tag=None):
    """Starts kms-stubhost NAME on 127.0.0.1:port (0 = kernel's choice).
    tag names the process/log files (use a new tag when restarting a host)."""
    tag = tag or name
    pf = h.path(tag + ".port")
    log = h.path(tag + ".jsonl")
    if os.path.exists(pf):
        os.unlink(pf)
    args = [krtest.binpath("kms-stubhost"), "-l", "127.0.0.1:%d" % port, "--port-file", pf,
            "-N", name, "--epid", epid_for(name), "--log", log] + list(extra)
    p, got = h.start(args, tag, port_file=pf)
    return Stub(name, p, got, log)


def start_stubs(h, names, extra=None):
    extra = extra or {}
    out = {}
    for n in names:
        out[n] = start_stub(h, n, extra.get(n, ()))
    check(len({s.epid for s in out.values()}) == len(out), "ePIDs of the stubs collide")
    return out


def epid_map(stubs):
    """ePID -> host name."""
    return {s.epid: s.name for s in stubs.values()} if isinstance(stubs, dict) else \
        {s.epid: s.name for s in stubs}


def host_entry(name, port, weight=None, state=None, priority=None):
    return {"name": name, "port": port, "weight": weight, "state": state, "priority": priority}


def conf_text(h, hosts, allow=("127.0.0.0/8",), extra="", health=None, commit="200ms",
              state_dir=None, assist=True):
    """A kmsrelayd config. hosts: list of host_entry dicts (or Stub objects).

    assist=False switches threshold assist off. Tests that identify the
    routed host by the answer's ePID need that: with assist on, a client
    pinned to a host whose count is still below the client's N policy is
    deliberately answered by another host (the pin stays), so its ePID would
    not name the host it is routed to."""
    hl = []
    for e in hosts:
        if isinstance(e, Stub):
            e = host_entry(e.name, e.port)
        s = '{ name = "%s"; address = "127.0.0.1:%d";' % (e["name"], e["port"])
        if e.get("weight") is not None:
            s += " weight = %d;" % e["weight"]
        if e.get("priority") is not None:
            s += " priority = %d;" % e["priority"]
        if e.get("state") is not None:
            s += ' state = "%s";' % e["state"]
        hl.append(s + " }")
    hc = dict(HEALTH)
    hc.update(health or {})
    health_s = "; ".join('%s = %s' % (k, ('"%s"' % v) if isinstance(v, str) else v)
                         for k, v in hc.items())
    return ('instance_id = "it";\n'
            'listen = [ "127.0.0.1:0" ];\n'
            'state_dir = "%s";\n'
            'clients: { allow = [ %s ]; rate = 0; max_per_source = 10000; '
            'max_connections = 10000; header_timeout = "2s"; idle_timeout = "60s"; };\n'
            'hosts = ( %s );\n'
            'backend: { pool_size = 4; connect_timeout = "500ms"; attempt_timeout = "2s"; '
            'budget = "6s"; };\n'
            'health: { %s; };\n'
            'store: { commit_interval = "%s"; commit_batch = 1000; };\n'
            'log: { activations = true; };\n'
            'routing: { threshold_assist = %s; };\n'
            'shutdown_grace = "3s";\n%s'
            % (state_dir or h.path("state"), ", ".join('"%s"' % a for a in allow),
               ",\n          ".join(hl), health_s, commit, "true" if assist else "false", extra))


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def wait_for(cond, timeout, what, poll=0.05):
    """Polls cond() (bounded); returns its truthy value or raises."""
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.time() >= deadline:
            raise Failure("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(poll)


def wait_log(p, pattern, timeout=10, start=0):
    """Waits until the process log (from byte offset start) matches the regex;
    returns the match."""
    rx = re.compile(pattern)

    def probe():
        m = rx.search(read(p.kr_log)[start:])
        if m:
            return m
        if p.poll() is not None:
            raise Failure("%s exited (%s) while waiting for %r:\n%s"
                          % (p.kr_name, p.returncode, pattern, read(p.kr_log)[-3000:]))
        return None
    try:
        return wait_for(probe, timeout, "%s log to match %r" % (p.kr_name, pattern))
    except Failure as e:
        raise Failure("%s\n--- %s log tail ---\n%s" % (e, p.kr_name, read(p.kr_log)[-3000:]))


def log_size(p):
    try:
        return os.path.getsize(p.kr_log)
    except OSError:
        return 0


class Relay:
    def __init__(self, proc, port, conf):
        self.proc, self.port, self.conf = proc, port, conf

    def target(self):
        return "127.0.0.1:%d" % self.port

    def log(self):
        return read(self.proc.kr_log)


def start_relay(h, conf_path, name="relayd", wait_up=()):
    """Starts kmsrelayd -c conf_path; waits for event=ready and for every host
    named in wait_up to be health-UP (so new clients spread over all of them)."""
    pf = h.path(name + ".port")
    if os.path.exists(pf):
        os.unlink(pf)
    p, port = h.start([krtest.binpath("kmsrelayd"), "-c", conf_path, "--port-file", pf],
                      name, port_file=pf)
    wait_log(p, r"event=ready ")
    r = Relay(p, port, conf_path)
    for hn in wait_up:
        wait_host_state(r, hn, "UP")
    return r


def wait_host_state(r, host, state, timeout=10, start=0):
    return wait_log(r.proc, r"event=host_state host=%s from=\S+ to=%s" % (re.escape(host), state),
                    timeout=timeout, start=start)


def reload(r, text, pattern=r"event=reload result=ok", timeout=10):
    """Writes a new config and SIGHUPs the relay; waits for the result line."""
    start = log_size(r.proc)
    write(r.conf, text)
    os.kill(r.proc.pid, signal.SIGHUP)
    return wait_log(r.proc, pattern, timeout=timeout, start=start)


def loadgen_args(targets, n, k=None, c=8, seed=1, extra=()):
    args = [krtest.binpath("kms-loadgen")]
    for t in targets if isinstance(targets, (list, tuple)) else [targets]:
        args += ["-t", t]
    args += ["-n", str(n), "-c", str(c), "--seed", str(seed), "-q"]
    if k is not None:
        args += ["-k", str(k)]
    return args + list(extra)


# kmsrelayd writes its activation lines in batches of 32 lines or 10 ms
# (issue 13): a test that compares its log with what kms-loadgen saw gives
# the last batch this long to be written once the load is over.
LOG_BATCH_S = 0.1


def loadgen(h, targets, n, k=None, c=8, seed=1, extra=(), name="lg", timeout=240):
    """Runs kms-loadgen to completion; returns (rc, doc, out+err)."""
    jpath = h.path(name + ".json")
    if os.path.exists(jpath):
        os.unlink(jpath)
    rc, out, err = h.run(loadgen_args(targets, n, k, c, seed, extra) + ["--json", jpath],
                         timeout=timeout)
    time.sleep(LOG_BATCH_S)
    return rc, load_json(jpath), out + err


def loadgen_bg(h, targets, n, k=None, c=8, seed=1, extra=(), name="lgbg"):
    """Starts kms-loadgen in the background (a harness process); finish with
    loadgen_wait."""
    jpath = h.path(name + ".json")
    if os.path.exists(jpath):
        os.unlink(jpath)
    p, _ = h.start(loadgen_args(targets, n, k, c, seed, extra) + ["--json", jpath], name)
    p.kr_json = jpath
    return p


def loadgen_wait(h, p, timeout=240):
    try:
        rc = p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        h.stop(p, signal.SIGKILL)
        raise Failure("%s did not finish within %d s" % (p.kr_name, timeout))
    time.sleep(LOG_BATCH_S)
    return rc, load_json(p.kr_json), read(p.kr_log)


def load_json(path):
    if os.path.exists(path) and os.path.getsize(path) > 0:
        with open(path) as f:
            return json.load(f)
    return None


def check_all_ok(rc, doc, out, n, what):
    """Loadgen exit 0 and every one of n activations ok, none failed."""
    check(doc is not None, "%s: no loadgen JSON (rc %d): %s" % (what, rc, out[-2000:]))
    s = doc["summary"]
    check(rc == 0 and s["errors"] == 0 and s["ok"] == n,
          "%s: loadgen rc %d, ok %d of %d, errors %d %s %s\n%s"
          % (what, rc, s["ok"], n, s["errors"], s["errors_by_kind"], s["faults"], out[-2000:]))


def client_hosts(doc, emap):
    """cmid -> list of host names the client's answers came from (in order)."""
    out = {}
    for c in doc["clients"]:
        hs = []
        for e in c["epids"]:
            check(e in emap, "client %s got an ePID from no stub: %r" % (c["cmid"], e))
            hs.append(emap[e])
        out[c["cmid"]] = hs
    return out


def last_host(doc, emap):
    """cmid -> host name of the client's last answer."""
    return {c["cmid"]: emap.get(c["last_epid"], c["last_epid"]) for c in doc["clients"]}


def spread(assign):
    """host -> number of clients, from cmid -> host."""
    out = {}
    for hn in assign.values():
        out[hn] = out.get(hn, 0) + 1
    return out


def stub_requests(stub, settle=1.5):
    """The stub's JSON-lines request records. The stub flushes its log at
    least once a second, so wait until the file stops growing (bounded)."""
    deadline = time.time() + settle + 3
    last = -1
    stable_since = time.time()
    while time.time() < deadline:
        sz = os.path.getsize(stub.log) if os.path.exists(stub.log) else 0
        if sz != last:
            last, stable_since = sz, time.time()
        elif time.time() - stable_since >= settle:
            break
        time.sleep(0.1)
    out = []
    for line in read(stub.log).splitlines():
        if line.strip():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("event") == "request":
                out.append(e)
    return out


def activation_lines(r, start=0):
    """Parsed event=activation lines of the relay log (dicts of key=value)."""
    out = []
    for line in r.log()[start:].splitlines():
        if "event=activation " in line:
            out.append(dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line)))
    return out


def raw_session(port, src=None, timeout=5):
    """A TCP connection to the relay, optionally from a given source address."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if src:
        s.bind((src, 0))
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def vector(name):
    with open(os.path.join(krtest.VECTORS, name + ".json")) as f:
        return json.load(f)


def pdus(v, kind=None):
    """Client PDUs of a vector as bytes (optionally of one type)."""
    return [bytes.fromhex(p["hex"]) for p in v["client_to_server"]
            if kind is None or p["type"] == kind]


def set_call_id(pdu, call_id):
    return pdu[:12] + call_id.to_bytes(4, "little") + pdu[16:]


def hdr(pdu):
    """(ptype, flags, frag_length, call_id) of a PDU."""
    return pdu[2], pdu[3], int.from_bytes(pdu[8:10], "little"), int.from_bytes(pdu[12:16], "little")


def decode(h, c2s, s2c, name="conv"):
    """Decodes captured PDUs with kmsrelayctl decode --json (vector layout)."""
    path = h.path(name + ".json")
    with open(path, "w") as f:
        json.dump({"name": name,
                   "client_to_server": [{"hex": p.hex()} for p in c2s],
                   "server_to_client": [{"hex": p.hex()} for p in s2c]}, f)
    rc, out, err = h.run([krtest.binpath("kmsrelayctl"), "decode", "--json", path])
    check(rc in (0, 1) and out.strip(), "decode failed (%d): %s %s" % (rc, out[-1000:], err))
    return json.loads(out)
