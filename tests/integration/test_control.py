#!/usr/bin/env python3
"""Control API and kmsrelayctl (issue 5, acceptance 1 and 6).

Acceptance 1: every kmsrelayctl command works against a running kmsrelayd
with stub hosts; every --json output parses; the changes they make (host
admin state, weight, pin move, pin forget, rebalance) survive a restart.

Acceptance 6: the control socket refuses bad requests (unknown paths, wrong
methods, bad JSON, unknown fields, a huge body, a chunked body, bad query
parameters) with a 4xx and a JSON {"error": ...}, over a raw AF_UNIX HTTP
client (and curl --unix-socket when curl is installed), while activations
keep being served.

Also: the socket's mode comes from the configuration, a stale socket file
left by a killed daemon is replaced, a live one is never taken over, and
the file is removed on a clean stop.
"""
import csv
import io
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import krtest  # noqa: E402
import relaylib as rl  # noqa: E402
from krtest import check  # noqa: E402

NAMES = ["kms-a", "kms-b"]
N_CLIENTS = 60


def conf_for(h, stubs, extra=""):
    sock = h.path("control.sock")
    # Threshold assist off: the activation log's host is then the pinned one.
    return rl.conf_text(h, [stubs[n] for n in NAMES], assist=False,
                        extra='control: { socket = "%s"; mode = "0600"; };\n%s' % (sock, extra))


def ctl(h, *args, expect=(0,), sock=None):
    """Runs kmsrelayctl --socket SOCK ARGS; returns (rc, stdout, stderr)."""
    argv = [krtest.binpath("kmsrelayctl"), "--socket", sock or h.path("control.sock")]
    rc, out, err = h.run(argv + list(args), timeout=120)
    check(rc in expect, "kmsrelayctl %s: rc %d (want %s)\nstdout: %s\nstderr: %s"
          % (" ".join(args), rc, expect, out[-2000:], err[-2000:]))
    return rc, out, err


def ctl_json(h, *args, expect=(0,)):
    rc, out, err = ctl(h, *(list(args) + ["--json"]), expect=expect)
    try:
        return json.loads(out)
    except ValueError as e:
        raise krtest.Failure("kmsrelayctl %s --json: not JSON (%s): %r"
                             % (" ".join(args), e, out[:500]))


def http(sock_path, method, path, body=None, headers=None, raw=None, timeout=10):
    """One HTTP/1.1 request over AF_UNIX; returns (status, headers, body).
    A body the server refuses early may not be sent completely: send
    errors are ignored and the answer is read anyway."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path)
    if raw is None:
        body = body if isinstance(body, (bytes, type(None))) else body.encode()
        hs = {"Host": "kmsrelay", "Connection": "close"}
        if body is not None:
            hs["Content-Length"] = str(len(body))
        hs.update(headers or {})
        raw = ("%s %s HTTP/1.1\r\n" % (method, path) +
               "".join("%s: %s\r\n" % kv for kv in hs.items()) + "\r\n").encode()
        if body:
            raw += body

    # Send from a thread so a server that answers before reading everything
    # does not deadlock us on a full socket buffer.
    def sender():
        try:
            s.sendall(raw)
        except OSError:
            pass
    t = threading.Thread(target=sender)
    t.start()
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()
    t.join(timeout=timeout)
    head, _, payload = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    check(lines and lines[0].startswith("HTTP/1.1 "), "not an HTTP answer: %r" % data[:200])
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, payload


def json_error(sock, method, path, want, what, **kw):
    st, hd, body = http(sock, method, path, **kw)
    check(st == want, "%s: status %d, want %d: %r" % (what, st, want, body[:300]))
    check(hd.get("content-type", "").startswith("application/json"),
          "%s: content type %r" % (what, hd.get("content-type")))
    doc = json.loads(body)
    check(isinstance(doc.get("error"), str) and doc["error"], "%s: no error text: %r"
          % (what, doc))
    return doc, hd


def setup(h, extra=""):
    stubs = rl.start_stubs(h, NAMES)
    conf = h.path("relay.conf")
    rl.write(conf, conf_for(h, stubs, extra))
    r = rl.start_relay(h, conf, wait_up=NAMES)
    rl.wait_log(r.proc, r"event=control_listen socket=")
    return stubs, r, conf


def restart(h, r, conf, name):
    rc = h.stop(r.proc)
    check(rc == 0, "kmsrelayd exited %s on SIGTERM" % rc)
    check(not os.path.exists(h.path("control.sock")), "the control socket outlived the daemon")
    r2 = rl.start_relay(h, conf, name=name, wait_up=NAMES)
    rl.wait_log(r2.proc, r"event=control_listen socket=")
    return r2


def pin_map(h):
    doc = ctl_json(h, "clients")
    return {c["cmid"]: c["host"] for c in doc["clients"]}


def wait_pins(h, n):
    rl.wait_for(lambda: ctl_json(h, "status")["pins"] >= n and
                ctl_json(h, "status")["store"]["pending"] == 0, 10, "%d committed pins" % n)


def t_commands_and_persistence(h):
    stubs, r, conf = setup(h)
    sock = h.path("control.sock")
    st = os.stat(sock)
    check(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600,
          "socket mode %o, want 0600 (control.mode)" % stat.S_IMODE(st.st_mode))

    rc, doc, out = rl.loadgen(h, r.target(), N_CLIENTS, k=N_CLIENTS, c=4, seed=11)
    rl.check_all_ok(rc, doc, out, N_CLIENTS, "first contact")
    wait_pins(h, N_CLIENTS)

    # help is generated from the one command table
    _, out, _ = ctl(h, "help")
    for cmd in ["status", "hosts", "host drain", "host weight", "pin show", "pin move",
                "rebalance", "clients", "report", "dns", "reload", "audit", "decode"]:
        check(("  " + cmd) in out, "help lacks %r:\n%s" % (cmd, out))

    # status
    _, out, _ = ctl(h, "status")
    check("kmsrelayd " in out and "listeners:" in out and "pins:" in out, "status:\n" + out)
    s = ctl_json(h, "status")
    check(s["hosts"]["total"] == 2 and s["hosts"]["health"]["up"] == 2, "status hosts %r"
          % s["hosts"])
    check(s["pins"] == N_CLIENTS and s["activations"]["ok"] >= N_CLIENTS, "status %r" % s)
    check(s["listeners"] == [r.target()], "listeners %r" % s["listeners"])
    check(s["store"]["state"] == "ok", "store %r" % s["store"])

    # hosts
    _, out, _ = ctl(h, "hosts")
    check("kms-a" in out and "kms-b" in out and "APPLICATION" in out, "hosts:\n" + out)
    hd = ctl_json(h, "hosts")
    by = {x["name"]: x for x in hd["hosts"]}
    check(sum(x["pins"]["total"] for x in hd["hosts"]) == N_CLIENTS, "pins per host %r"
          % [(x["name"], x["pins"]) for x in hd["hosts"]])
    for n in NAMES:
        check(by[n]["health"] == "up" and by[n]["admin"] == "ready", "host %s %r" % (n, by[n]))
        check(by[n]["requests"] > 0 and by[n]["check"]["result"], "host %s %r" % (n, by[n]))
        for c in by[n]["counts"]:
            check(c["below_threshold"] == (c["count"] < c["threshold"]) and
                  c["threshold"] in (5, 25), "count entry %r" % c)
    one = ctl_json(h, "--json", "hosts")  # --json before or after the command
    check(len(one["hosts"]) == 2, "hosts --json twice")

    # clients: table, JSON, CSV (RFC 4180 with a header row), filters
    _, out, _ = ctl(h, "clients")
    check("%d client(s)" % N_CLIENTS in out, "clients table:\n" + out[-500:])
    cj = ctl_json(h, "clients")
    check(cj["count"] == N_CLIENTS and len(cj["clients"]) == N_CLIENTS, "clients --json")
    _, raw_csv, _ = ctl(h, "clients", "--format", "csv")
    check(raw_csv.count("\r\n") == N_CLIENTS + 1, "CSV rows end in CRLF")
    rows = list(csv.DictReader(io.StringIO(raw_csv, newline="")))
    check(len(rows) == N_CLIENTS and rows[0]["cmid"] and rows[0]["host"] in NAMES,
          "CSV: %d rows, first %r" % (len(rows), rows[:1]))
    sent = {c["cmid"] for c in doc["clients"]}
    check({x["cmid"] for x in rows} == sent, "CSV CMIDs differ from what loadgen sent")
    win = ctl_json(h, "clients", "--app", "windows")
    check(all(c["application"] == "Windows" for c in win["clients"]), "--app windows")
    on_a = ctl_json(h, "clients", "--host", "kms-a")
    check(all(c["host"] == "kms-a" for c in on_a["clients"]) and
          on_a["count"] == by["kms-a"]["pins"]["total"], "--host kms-a")
    recent = ctl_json(h, "clients", "--since", "1h", "--limit", "7")
    check(recent["count"] == 7 and recent["matched"] == N_CLIENTS and recent["truncated"],
          "--since 1h --limit 7: count %r matched %r" % (recent["count"], recent["matched"]))
    ctl(h, "clients", "--since", "soon", expect=(2,))
    ctl(h, "clients", "--app", "linux", expect=(2,))

    # pin show / move / forget
    pins = pin_map(h)
    cm_move, cm_forget = sorted(pins)[0], sorted(pins)[1]
    _, out, _ = ctl(h, "pin", "show", cm_move)
    check(cm_move in out and "ranking" in out, "pin show:\n" + out)
    p = ctl_json(h, "pin", "show", cm_move)
    # one machine, one application here: "pins" has its one pair
    check(p["cmid"] == cm_move and len(p["pins"]) == 1 and
          p["pins"][0]["host"] == pins[cm_move] and p["pins"][0]["workstations"],
          "pin show --json %r" % p)
    app = p["pins"][0]["app_id"]
    one = ctl_json(h, "pin", "show", cm_move, "--app", app)
    check(len(one["pins"]) == 1 and one["pins"][0]["app_id"] == app, "pin show --app %r" % one)
    other = "windows" if p["pins"][0]["application"] != "Windows" else "office2013"
    ctl(h, "pin", "show", cm_move, "--app", other, expect=(2,))
    target = "kms-b" if pins[cm_move] == "kms-a" else "kms-a"
    mv = ctl_json(h, "pin", "move", cm_move, target)
    check(mv["moved"] and mv["to"] == target, "pin move %r" % mv)
    fg = ctl_json(h, "pin", "forget", cm_forget)
    check(fg["forgotten"], "pin forget %r" % fg)
    ctl(h, "pin", "show", cm_forget, expect=(2,))
    ctl(h, "pin", "move", cm_move, "no-such-host", expect=(2,))
    ctl(h, "pin", "show", "not-a-guid", expect=(2,))

    # host admin state and weight
    d = ctl_json(h, "host", "drain", "kms-a")
    check(d["admin"] == "drain" and d["previous"] == "ready", "host drain %r" % d)
    w = ctl_json(h, "host", "weight", "kms-b", "3")
    check(w["weight"] == 3 and w["config_weight"] == 1, "host weight %r" % w)
    _, out, _ = ctl(h, "host", "maint", "kms-a")
    check("drain -> maint" in out, "host maint: " + out)
    ctl(h, "host", "drain", "kms-a")
    ctl(h, "host", "drain", "no-such-host", expect=(2,))
    ctl(h, "host", "weight", "kms-b", "0", expect=(2,))
    ctl(h, "host", "frobnicate", "kms-b", expect=(2,))

    # rebalance: a draining host is left alone (fixed), so make kms-a ready
    # and heavier for the plan, then drain it again afterwards.
    ctl(h, "host", "ready", "kms-a")
    ctl(h, "host", "weight", "kms-a", "5")
    dry = ctl_json(h, "rebalance", "--dry-run", "--max", "4")
    check(dry["dry_run"] and dry["moved"] == 0 and dry["planned"] <= 4, "dry run %r" % dry)
    expect_pins = {k: v for k, v in pins.items() if k != cm_forget}
    expect_pins[cm_move] = target
    check(pin_map(h) == expect_pins, "a dry run changed pins")
    _, out, _ = ctl(h, "rebalance", "--max", "3")
    check("moved" in out, "rebalance:\n" + out)
    rb = ctl_json(h, "rebalance", "--max", "2")
    check(rb["moved"] <= 2 and len(rb["moves"]) == rb["planned"], "rebalance %r" % rb)
    for m in rb["moves"]:
        check(m["to"] == "kms-a", "moves go to the heavier host: %r" % m)
    ctl(h, "host", "weight", "kms-a", "1")  # back to the configured weight
    ctl(h, "host", "drain", "kms-a")
    before = pin_map(h)
    check(cm_forget not in before and len(before) == N_CLIENTS - 1, "pins after the changes")

    # report (findings make rc 1), dns, reload
    rep = ctl_json(h, "report", expect=(0, 1))
    check(rep["schema"] == "kmsrelay.report/2" and rep["pins"] == N_CLIENTS - 1,
          "report schema %r pins %r" % (rep.get("schema"), rep.get("pins")))
    _, out, _ = ctl(h, "report", "--format", "csv", expect=(0, 1))
    rows = list(csv.reader(io.StringIO(out, newline="")))
    check(rows and rows[0][0] == "kind" and len(rows) > 1, "report csv %r" % rows[:2])
    _, out, _ = ctl(h, "report", expect=(0, 1))
    check("kmsrelay activation report" in out, "report table:\n" + out[:500])
    _, out, _ = ctl(h, "dns")
    check("DNS" in out or "zone" in out, "dns: " + out)
    dj = ctl_json(h, "dns")
    check(isinstance(dj.get("zones"), list), "dns --json %r" % dj)
    _, out, _ = ctl(h, "reload")
    check("reloaded" in out, "reload: " + out)
    good = rl.read(conf)
    rl.write(conf, good + "bogus_setting = 1;\n")
    rc, out, err = ctl(h, "reload", expect=(1,))
    check("bogus_setting" in err and "relay.conf:" in err, "reload errors: " + err)
    rj = ctl_json(h, "reload", expect=(1,))
    check(rj["result"] == "failed" and any("bogus_setting" in e for e in rj["errors"]),
          "reload --json %r" % rj)
    rl.write(conf, good)
    ctl(h, "reload")

    # unreachable daemon: exit 3, the message names the socket
    rc, out, err = ctl(h, "status", expect=(3,), sock=h.path("nothing-here.sock"))
    check("nothing-here.sock" in err, "unreachable message: " + err)
    ctl(h, "no-such-command", expect=(2,))

    # Everything above survives a restart.
    r = restart(h, r, conf, "relayd2")
    after = pin_map(h)
    check(after == before, "pins changed across the restart: %d differ"
          % sum(1 for k in set(after) | set(before) if after.get(k) != before.get(k)))
    hd = {x["name"]: x for x in ctl_json(h, "hosts")["hosts"]}
    check(hd["kms-a"]["admin"] == "drain", "kms-a admin after restart: %s"
          % hd["kms-a"]["admin"])
    check(hd["kms-b"]["weight"] == 3 and hd["kms-a"]["weight"] == 1,
          "weights after restart: a %d b %d" % (hd["kms-a"]["weight"], hd["kms-b"]["weight"]))
    ctl(h, "pin", "show", cm_forget, expect=(2,))
    check(ctl_json(h, "pin", "show", cm_move)["pins"][0]["host"] == after[cm_move], "moved pin")
    # ... and a reload that leaves the hosts alone keeps them too.
    ctl(h, "reload")
    hd = {x["name"]: x for x in ctl_json(h, "hosts")["hosts"]}
    check(hd["kms-a"]["admin"] == "drain" and hd["kms-b"]["weight"] == 3,
          "after reload: a %s b %d" % (hd["kms-a"]["admin"], hd["kms-b"]["weight"]))

    # the moved pin is honoured by the data path: the client goes to its new host
    rc, doc2, out = rl.loadgen(h, r.target(), N_CLIENTS, k=N_CLIENTS, c=4, seed=11,
                               name="renew")
    rl.check_all_ok(rc, doc2, out, N_CLIENTS, "renewals after the restart")
    lines = {a["cmid"]: a["host"] for a in rl.activation_lines(r)}
    check(lines.get(cm_move) == after[cm_move], "moved client went to %s, pinned to %s"
          % (lines.get(cm_move), after[cm_move]))
    check(h.stop(r.proc) == 0, "kmsrelayd did not stop cleanly (sanitizer report?)")


def t_bad_requests(h):
    stubs, r, conf = setup(h)
    sock = h.path("control.sock")
    # activations keep flowing while the socket is hammered
    lg = rl.loadgen_bg(h, r.target(), 600, k=200, c=4, seed=5, extra=["--rate", "100"])

    json_error(sock, "GET", "/nope", 404, "unknown path")
    json_error(sock, "GET", "/v1/nope", 404, "unknown /v1 path")
    json_error(sock, "GET", "/v2/status", 404, "unknown version")
    _, hd = json_error(sock, "DELETE", "/v1/status", 405, "wrong method")
    check(hd.get("allow") == "GET", "Allow header %r" % hd.get("allow"))
    json_error(sock, "PATCH", "/v1/hosts", 405, "PATCH")
    json_error(sock, "GET", "/v1/reload", 405, "GET on a POST endpoint")
    json_error(sock, "POST", "/v1/hosts/kms-a/state", 400, "bad JSON", body="{bad")
    json_error(sock, "POST", "/v1/hosts/kms-a/state", 400, "not an object", body="[1]")
    doc, _ = json_error(sock, "POST", "/v1/hosts/kms-a/weight", 400, "unknown field",
                        body='{"weigth": 2}')
    check("weigth" in doc["error"], "the unknown field is named: %r" % doc)
    json_error(sock, "POST", "/v1/hosts/kms-a/state", 400, "bad state",
               body='{"state": "sleeping"}')
    json_error(sock, "POST", "/v1/hosts/kms-a/state", 400, "duplicate keys",
               body='{"state": "drain", "state": "ready"}')
    json_error(sock, "POST", "/v1/hosts/nope/state", 404, "unknown host",
               body='{"state": "drain"}')
    json_error(sock, "GET", "/v1/pins/zzz", 400, "bad CMID")
    json_error(sock, "GET", "/v1/pins/%zz", 400, "bad escape")
    json_error(sock, "GET", "/v1/clients?colour=red", 400, "unknown parameter")
    json_error(sock, "GET", "/v1/clients?since=forever", 400, "bad duration")
    json_error(sock, "POST", "/v1/rebalance", 400, "bad rebalance", body='{"max": -1}')
    big = b'{"max": 1, "pad": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    doc, _ = json_error(sock, "POST", "/v1/rebalance", 413, "huge body", body=big)
    check("too large" in doc["error"], "413 text %r" % doc)
    json_error(sock, "POST", "/v1/rebalance", 413, "huge body announced with Expect",
               headers={"Content-Length": str(len(big)), "Expect": "100-continue"}, body=None)
    json_error(sock, "POST", "/v1/rebalance", 413, "just over 64 KiB",
               body=b" " * (64 * 1024 + 1))
    json_error(sock, "POST", "/v1/hosts/kms-a/weight", 411, "chunked body",
               raw=b"POST /v1/hosts/kms-a/weight HTTP/1.1\r\nHost: x\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n0\r\n\r\n")
    # exactly 64 KiB passes the gate (and is then refused for its content)
    body64 = b'{"max": "' + b"x" * (64 * 1024 - 11) + b'"}'
    check(len(body64) == 64 * 1024, "test body size")
    doc, _ = json_error(sock, "POST", "/v1/rebalance", 400, "64 KiB of JSON", body=body64)
    check("whole number" in doc["error"], "64 KiB body was read: %r" % doc["error"][:100])
    # garbage that is not HTTP: whatever evhttp answers, the daemon lives on
    try:
        http(sock, None, None, raw=b"\x16\x03\x01\x02\x00garbage\r\n\r\n", timeout=5)
    except (krtest.Failure, OSError, ValueError, IndexError):
        pass
    # half a request, then the client goes away
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    s.sendall(b"POST /v1/rebalance HTTP/1.1\r\nContent-Length: 50\r\n\r\n{\"max\"")
    s.close()

    # nothing of that disturbed the daemon
    st, _, body = http(sock, "GET", "/v1/status")
    check(st == 200 and json.loads(body)["version"], "status after the bad requests")
    rc, doc, out = rl.loadgen_wait(h, lg)
    rl.check_all_ok(rc, doc, out, 600, "activations during the bad requests")
    check(r.proc.poll() is None, "kmsrelayd died")
    ctl(h, "status")
    try:
        curl_checks(h, sock, big)
    finally:
        check(h.stop(r.proc) == 0, "kmsrelayd did not stop cleanly (sanitizer report?)")


def curl_checks(h, sock, big):
    """The same through curl, as the README documents it."""
    curl = shutil.which("curl")
    if not curl:
        print("  (curl not installed: curl --unix-socket checks skipped)")
        return

    def curl_run(*args):
        p = subprocess.run([curl, "-sS", "--unix-socket", sock, "-w", "\n%{http_code}"] +
                           list(args), capture_output=True, timeout=60)
        out = p.stdout.decode()
        body, _, code = out.rpartition("\n")
        return int(code or 0), body
    code, body = curl_run("http://localhost/v1/status")
    check(code == 200 and json.loads(body)["hosts"]["total"] == 2, "curl status %d" % code)
    code, body = curl_run("-X", "POST", "-d", '{"state": "drain"}',
                          "http://localhost/v1/hosts/kms-b/state")
    check(code == 200 and json.loads(body)["admin"] == "drain", "curl drain %d %s"
          % (code, body))
    bigf = h.path("big.json")
    with open(bigf, "wb") as f:
        f.write(big)
    code, body = curl_run("-X", "POST", "--data-binary", "@" + bigf,
                          "http://localhost/v1/rebalance")
    check(code == 413 and "error" in json.loads(body), "curl huge body: %d %s"
          % (code, body[:200]))
    code, body = curl_run("http://localhost/v1/nope")
    check(code == 404 and "error" in json.loads(body), "curl 404")
    code, body = curl_run("-X", "DELETE", "http://localhost/v1/status")
    check(code == 405 and "error" in json.loads(body), "curl 405")


def t_socket_lifecycle(h):
    stubs, r, conf = setup(h)
    sock = h.path("control.sock")
    # A second daemon on the same control socket does not take it over.
    state2 = h.path("state2")
    conf2 = h.path("relay2.conf")
    rl.write(conf2, conf_for(h, stubs).replace(h.path("state"), state2))
    r2 = rl.start_relay(h, conf2, name="second")
    rl.wait_log(r2.proc, r"event=control_error .*answers on it")
    check(r2.proc.poll() is None, "the second daemon must keep running without its API")
    st, _, body = http(sock, "GET", "/v1/status")
    check(st == 200 and json.loads(body)["pid"] == r.proc.pid, "the first daemon answers")
    h.stop(r2.proc)
    check(os.path.exists(sock), "the second daemon removed the first one's socket")

    # SIGKILL leaves the file behind; the next start replaces the stale one.
    h.stop(r.proc, signal.SIGKILL)
    check(os.path.exists(sock), "the socket file should outlive a SIGKILL")
    ctl(h, "status", expect=(3,))
    r3 = rl.start_relay(h, conf, name="relayd3", wait_up=NAMES)
    rl.wait_log(r3.proc, r"event=control_listen socket=")
    s = ctl_json(h, "status")
    check(s["pid"] == r3.proc.pid, "the new daemon serves the socket")

    # Reload applies a new mode; a clean stop removes the file.
    rl.write(conf, rl.read(conf).replace('mode = "0600"', 'mode = "0660"'))
    ctl(h, "reload")
    check(stat.S_IMODE(os.stat(sock).st_mode) == 0o660, "mode after reload %o"
          % stat.S_IMODE(os.stat(sock).st_mode))
    check(h.stop(r3.proc) == 0, "clean stop")
    check(not os.path.exists(sock), "socket left behind after a clean stop")


if __name__ == "__main__":
    krtest.run_tests("control", [t_commands_and_persistence, t_bad_requests,
                                 t_socket_lifecycle])
