"""kmsrelayd's shell: configuration checks (-n), start-up with -H hosts,
activations through it, SIGHUP with a bad and a good config, start-up
failures, the public-listener warning, and a quick, clean SIGTERM.

The routing, failover and persistence acceptance cases live in their own
suite; this one covers the daemon's behaviour as a program.
"""
import os
import re
import signal
import time

import krtest
from krtest import check


def relayd():
    return krtest.binpath("kmsrelayd")


def stub(h, name):
    pf = h.path(name + ".port")
    p, port = h.start([krtest.binpath("kms-stubhost"), "-l", "127.0.0.1:0", "--port-file", pf,
                       "-N", name, "--log", h.path(name + ".jsonl")], name, port_file=pf)
    return p, port


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def base_conf(h, extra=""):
    # Loopback clients only, no rate limit (every loadgen client is 127.0.0.1).
    return ('listen = [ "127.0.0.1:0" ];\n'
            'state_dir = "%s";\n'
            'clients: { allow = [ "127.0.0.0/8" ]; rate = 0; };\n'
            'health: { interval = "1s"; fast_interval = "200ms"; timeout = "500ms"; };\n'
            'shutdown_grace = "3s";\n%s' % (h.path("state"), extra))


def wait_log(p, h, pattern, timeout=10):
    """Waits (bounded) until the process log matches the regex."""
    deadline = time.time() + timeout
    rx = re.compile(pattern)
    while time.time() < deadline:
        if rx.search(h.tail(p, 1 << 20)):
            return
        if p.poll() is not None:
            break
        time.sleep(0.05)
    raise krtest.Failure("log never matched %r: %s" % (pattern, h.tail(p)))


def start_relay(h, args, name="relayd"):
    pf = h.path(name + ".port")
    p, port = h.start([relayd()] + args + ["--port-file", pf], name, port_file=pf)
    wait_log(p, h, r"event=ready")
    return p, port


def loadgen(h, port, n=60, k=30, seed=7):
    return h.run([krtest.binpath("kms-loadgen"), "-t", "127.0.0.1:%d" % port, "-n", str(n),
                  "-c", "4", "-k", str(k), "--seed", str(seed), "-q"], timeout=120)


def t_check_configs(h):
    good = h.path("good.conf")
    write(good, base_conf(h, 'hosts = ( { name = "a"; address = "127.0.0.1:1700"; } );\n'))
    rc, out, err = h.run([relayd(), "-n", "-c", good])
    check(rc == 0 and "configuration OK" in out, "good config: %d %r %r" % (rc, out, err))

    bad = h.path("bad.conf")
    write(bad, 'listen = [ "127.0.0.1:0" ];\n'
               'clients: { max_conections = 5; };\n'
               'backend: { budget = "8 seconds"; };\n'
               'hosts = ( { name = "a"; address = "127.0.0.1:1700"; },\n'
               '          { name = "a"; address = "127.0.0.1:1701"; } );\n')
    rc, out, err = h.run([relayd(), "-n", "-c", bad])
    check(rc == 1, "bad config must exit 1, got %d" % rc)
    for want in ("bad.conf:2: unknown setting \"max_conections\" in clients",
                 "bad.conf:3: backend.budget", "bad.conf:5: host name \"a\" is used twice"):
        check(want in err, "missing %r in: %s" % (want, err))
    check("configuration OK" not in out, "bad config said OK")

    syntax = h.path("syntax.conf")
    write(syntax, "a = 1;\nhosts = ( { name = \"a\" } ;\n")
    rc, out, err = h.run([relayd(), "-n", "-c", syntax])
    check(rc == 1 and "syntax.conf:2:" in err, "syntax error: %d %r" % (rc, err))

    rc, out, err = h.run([relayd(), "-n", "-c", h.path("missing.conf")])
    check(rc == 1 and "missing.conf" in err, "missing file: %d %r" % (rc, err))
    rc, out, err = h.run([relayd(), "-n"])
    check(rc == 1 and "no backend hosts" in err, "no hosts: %d %r" % (rc, err))
    rc, out, err = h.run([relayd(), "-n", "-H", "a=127.0.0.1:1700", "-H", "b=[::1]:1700,weight=2"])
    check(rc == 0 and "configuration OK" in out, "-H hosts: %d %r" % (rc, err))
    # (a DNS name is an address since issue 14, see it.host_names; a
    # malformed one is still refused while parsing)
    rc, out, err = h.run([relayd(), "-n", "-H", "a=kms..example.com:1688"])
    check(rc == 1 and "-H a=kms..example.com:1688" in err, "bad -H: %d %r" % (rc, err))
    rc, out, err = h.run([relayd(), "--frobnicate"])
    check(rc == 2 and "unknown option" in err, "usage error: %d %r" % (rc, err))
    rc, out, err = h.run([relayd(), "--version"])
    check(rc == 0 and out.startswith("kmsrelayd "), "--version: %d %r" % (rc, out))
    rc, out, err = h.run([relayd(), "-h"])
    check(rc == 0 and "SIGHUP" in out and "--port-file" in out, "-h: %d" % rc)


def t_serve_reload_stop(h):
    _, pa = stub(h, "kms-a")
    _, pb = stub(h, "kms-b")
    conf = h.path("relay.conf")
    write(conf, base_conf(h))
    p, port = start_relay(h, ["-c", conf, "-H", "kms-a=127.0.0.1:%d" % pa,
                              "-H", "kms-b=127.0.0.1:%d" % pb])
    log = h.tail(p)
    check("event=start version=" in log and "hosts=2" in log, "start line: " + log)
    check("event=ready listen=127.0.0.1:%d" % port in log, "ready line: " + log)

    rc, out, err = loadgen(h, port)
    check(rc == 0, "activations through kmsrelayd failed: %s %s" % (out, err))
    wait_log(p, h, r"event=host_state host=kms-a from=UNKNOWN to=UP")

    # A broken config on SIGHUP: every error logged, the old config keeps serving.
    write(conf, base_conf(h, 'bogus = 1;\nbackend: { pool_size = 0; };\n'))
    os.kill(p.pid, signal.SIGHUP)
    wait_log(p, h, r"event=reload result=failed")
    log = h.tail(p, 1 << 20)
    check(re.search(r"event=config_error msg=\".*relay.conf:6: unknown setting", log),
          "bad reload does not log the file:line error: " + log[-2000:])
    check(re.search(r"event=config_error msg=\".*relay.conf:7: backend.pool_size", log),
          "bad reload does not log every error: " + log[-2000:])
    rc, out, err = loadgen(h, port, seed=8)
    check(rc == 0 and p.poll() is None, "serving after a bad reload: %s %s" % (out, err))

    # A good config with a third host: it joins, the others keep serving.
    _, pc = stub(h, "kms-c")
    write(conf, base_conf(h, 'hosts = ( { name = "kms-c"; address = "127.0.0.1:%d"; } );\n' % pc))
    os.kill(p.pid, signal.SIGHUP)
    wait_log(p, h, r"event=reload result=ok hosts=3")
    wait_log(p, h, r"event=host_added host=kms-c")
    wait_log(p, h, r"event=host_state host=kms-c from=UNKNOWN to=UP")
    rc, out, err = loadgen(h, port, n=90, k=90, seed=9)
    check(rc == 0, "after a good reload: %s %s" % (out, err))

    # And removing it again.
    write(conf, base_conf(h))
    os.kill(p.pid, signal.SIGHUP)
    wait_log(p, h, r"event=host_removed host=kms-c")
    rc, out, err = loadgen(h, port, n=90, k=90, seed=9)
    check(rc == 0, "after removing a host: %s %s" % (out, err))

    t0 = time.time()
    rc = h.stop(p, signal.SIGTERM, timeout=10)
    took = time.time() - t0
    check(rc == 0, "SIGTERM exit status %r: %s" % (rc, h.tail(p)))
    check(took < 3, "SIGTERM took %.1f s" % took)
    log = h.tail(p)
    check("event=stopping signal=TERM" in log and "event=stop\n" in log + "\n",
          "stop lines: " + log[-1500:])
    check("ERROR: AddressSanitizer" not in log and "LeakSanitizer" not in log,
          "sanitizer report: " + log[-3000:])


def t_start_failures(h):
    # The state directory cannot be created: refuse to start, say why.
    blocker = h.path("not-a-dir")
    write(blocker, "x")
    p, _ = h.start([relayd(), "-H", "a=127.0.0.1:1700", "-l", "127.0.0.1:0",
                    "-s", os.path.join(blocker, "state")], "nostore")
    rc = p.wait(timeout=20)
    check(rc == 1, "bad state_dir: exit %r" % rc)
    check("event=fatal" in h.tail(p) and "state" in h.tail(p), "bad state_dir: " + h.tail(p))

    # The listen address is taken: refuse to start.
    _, pa = stub(h, "kms-a")
    p, _ = h.start([relayd(), "-H", "a=127.0.0.1:1700", "-l", "127.0.0.1:%d" % pa,
                    "-s", h.path("state")], "inuse")
    rc = p.wait(timeout=20)
    check(rc == 1 and "cannot listen on 127.0.0.1:%d" % pa in h.tail(p),
          "listen in use: %r %s" % (rc, h.tail(p)))


def t_public_listener_warning(h):
    conf = h.path("open.conf")
    write(conf, 'listen = [ "0.0.0.0:0" ];\nstate_dir = "%s";\nclients: { allow = [ ]; };\n'
          % h.path("state"))
    p, port = start_relay(h, ["-c", conf, "-H", "a=127.0.0.1:1700"])
    check("listener is public and the allow-list allows every client" in h.tail(p),
          "no public-listener warning: " + h.tail(p))
    check(h.stop(p) == 0, "stop: " + h.tail(p))

    # Loopback listener with the default allow-list: no warning.
    p, port = start_relay(h, ["-l", "127.0.0.1:0", "-s", h.path("state"), "-H",
                              "a=127.0.0.1:1700"], name="quiet")
    check("listener is public" not in h.tail(p), "unexpected warning: " + h.tail(p))
    check(h.stop(p) == 0, "stop: " + h.tail(p))


def t_both_families(h):
    """[::1]:P and 127.0.0.1:P on the same port: IPV6_V6ONLY lets both bind."""
    _, pa = stub(h, "kms-a")
    p, port = start_relay(h, ["-l", "127.0.0.1:0", "-s", h.path("state"), "-H",
                              "kms-a=127.0.0.1:%d" % pa], name="probe")
    h.stop(p)
    p, port2 = start_relay(h, ["-l", "127.0.0.1:%d" % port, "-l", "[::1]:%d" % port,
                               "-s", h.path("state"), "-H", "kms-a=127.0.0.1:%d" % pa],
                              name="dual")
    check(port2 == port, "port file: %d != %d" % (port2, port))
    s = krtest.connect(port, host="::1")
    s.close()
    rc, out, err = loadgen(h, port, n=10, k=10)
    check(rc == 0, "dual-stack: %s %s" % (out, err))
    check(h.stop(p) == 0, "stop: " + h.tail(p))


def t_limits(h):
    """Allow-list, per-source connection cap and request rate (limits.c)."""
    import socket
    _, pa = stub(h, "kms-a")
    conf = h.path("lim.conf")
    write(conf, 'listen = [ "127.0.0.1:0" ];\nstate_dir = "%s";\n'
          'clients: { allow = [ "127.0.0.1/32" ]; max_per_source = 3; rate = 2; burst = 4; };\n'
          'hosts = ( { name = "kms-a"; address = "127.0.0.1:%d"; } );\n' % (h.path("state"), pa))
    p, port = start_relay(h, ["-c", conf])

    # 127.0.0.2 is loopback too, but not in the allow-list: closed at once.
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.2", 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    try:
        data = s.recv(16)
    except ConnectionResetError:
        data = b""
    s.close()
    check(data == b"", "denied client got data")
    wait_log(p, h, r"event=client_denied client=127\.0\.0\.2:\d+ reason=\"not in allow-list\"")

    # Three connections from 127.0.0.1 are fine, the fourth is refused.
    held = [krtest.connect(port) for _ in range(3)]
    time.sleep(0.2)
    extra = krtest.connect(port)
    try:
        data = extra.recv(16)
    except ConnectionResetError:
        data = b""
    extra.close()
    check(data == b"", "fourth connection from one source was not closed")
    wait_log(p, h, r"event=client_denied client=127\.0\.0\.1:\d+ reason=\"per-source")
    for s in held:
        s.close()
    time.sleep(0.2)

    # Rate 2/s, burst 4: of 12 quick activations some are refused with
    # rpc_s_server_too_busy (a fault, never a made-up answer), some pass.
    rc, out, err = h.run([krtest.binpath("kms-loadgen"), "-t", "127.0.0.1:%d" % port, "-n",
                          "12", "-c", "1", "--seed", "3"], timeout=60)
    check(rc == 1 and "0x000006bb" in out + err, "rate limit not applied: %s %s" % (out, err))
    m = re.search(r"^ok=(\d+) errors=(\d+)", out, re.M)
    check(m and 4 <= int(m.group(1)) <= 8, "burst 4 + 2/s: %s" % out)
    check(h.stop(p) == 0, "stop: " + h.tail(p))


def t_admin_state(h):
    """A config state applies, survives a restart, and a config edit wins."""
    _, pa = stub(h, "kms-a")
    _, pb = stub(h, "kms-b")
    conf = h.path("adm.conf")
    hosts = ('hosts = ( { name = "kms-a"; address = "127.0.0.1:%d";%s },\n'
             '          { name = "kms-b"; address = "127.0.0.1:%d"; } );\n')
    write(conf, base_conf(h, hosts % (pa, ' state = "drain";', pb)))
    p, port = start_relay(h, ["-c", conf])
    check(re.search(r"event=host_admin host=kms-a from=ready to=drain .*reason=config", h.tail(p)),
          "drain from config not applied: " + h.tail(p))
    rc, out, err = loadgen(h, port, n=40, k=40, seed=11)
    check(rc == 0, "with kms-a draining: %s %s" % (out, err))
    log = h.tail(p, 1 << 20)
    check(re.search(r"event=activation .*host=kms-b", log) and
          not re.search(r"event=activation .*host=kms-a", log),
          "new clients must avoid a draining host")
    check(h.stop(p) == 0, "stop")

    # Restart with the same file: still draining (persisted, not re-derived).
    p, port = start_relay(h, ["-c", conf], name="relayd2")
    check(re.search(r"event=host_admin host=kms-a from=drain to=drain .*reason=persisted",
                    h.tail(p)), "persisted drain: " + h.tail(p))
    # The operator edits the file: back to ready on SIGHUP.
    write(conf, base_conf(h, hosts % (pa, "", pb)))
    os.kill(p.pid, signal.SIGHUP)
    wait_log(p, h, r"event=host_admin host=kms-a from=drain to=ready .*reason=\"config changed\"")
    check(h.stop(p) == 0, "stop")


def t_out_of_descriptors(h):
    """EMFILE: accepting pauses instead of spinning, and service resumes."""
    import resource
    import socket
    _, pa = stub(h, "kms-a")

    def low_fds():
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))

    pf = h.path("fd.port")
    log = open(h.path("fd.log"), "wb")
    p = __import__("subprocess").Popen(
        [relayd(), "-l", "127.0.0.1:0", "-s", h.path("state"), "-H", "kms-a=127.0.0.1:%d" % pa,
         "--port-file", pf, "-c", write_conf_rate0(h)],
        stdout=log, stderr=log, preexec_fn=low_fds)
    p.kr_name, p.kr_log = "fd", h.path("fd.log")
    h.procs.append(p)
    deadline = time.time() + 15
    while not (os.path.exists(pf) and open(pf).read().strip()) and time.time() < deadline:
        time.sleep(0.05)
    port = int(open(pf).read())
    socks = []
    for _ in range(60):
        try:
            socks.append(krtest.connect(port))
        except OSError:
            break
    wait_log(p, h, r"event=accept_paused", timeout=10)

    def cpu_s():
        with open("/proc/%d/stat" % p.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    # While clients keep the descriptors, the daemon must idle, not spin.
    c0 = cpu_s()
    time.sleep(1.0)
    cpu = cpu_s() - c0
    for s in socks:
        s.close()
    time.sleep(0.6)
    rc, out, err = loadgen(h, port, n=10, k=10)
    check(rc == 0, "service after EMFILE: %s %s" % (out, err))
    check(p.poll() is None, "kmsrelayd died: " + h.tail(p))
    check(h.stop(p) == 0, "stop: " + h.tail(p))
    check(cpu < 0.5, "%.2f s of CPU in 1 s while out of descriptors: spinning?" % cpu)


def write_conf_rate0(h):
    path = h.path("rate0.conf")
    write(path, 'clients: { rate = 0; };\n')
    return path


def t_graceful_stop(h):
    """SIGTERM lets requests in flight finish; a hung host is bounded by
    shutdown_grace."""
    import subprocess
    _, pa = stub_args(h, "slow", ["--delay-ms", "1200"])
    conf = h.path("slow.conf")
    write(conf, base_conf(h, 'hosts = ( { name = "slow"; address = "127.0.0.1:%d"; } );\n'
                             'backend: { attempt_timeout = "5s"; budget = "8s"; };\n' % pa))
    p, port = start_relay(h, ["-c", conf])
    lg = subprocess.Popen([krtest.binpath("kms-loadgen"), "-t", "127.0.0.1:%d" % port, "-n", "4",
                           "-c", "4", "--seed", "5", "-q"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
    time.sleep(0.5)
    t0 = time.time()
    os.kill(p.pid, signal.SIGTERM)
    out = lg.communicate(timeout=30)[0].decode()
    rc = p.wait(timeout=10)
    took = time.time() - t0
    check(lg.returncode == 0, "requests in flight at SIGTERM failed: " + out)
    check(rc == 0 and took < 4, "exit %r after %.1f s" % (rc, took))
    check(re.search(r"event=stopping signal=TERM inflight=4", h.tail(p)), h.tail(p))

    _, ph = stub_args(h, "hung", ["--hang"])
    write(conf, base_conf(h, 'hosts = ( { name = "hung"; address = "127.0.0.1:%d"; } );\n'
                             'backend: { connect_timeout = "5s"; attempt_timeout = "5s"; '
                             'budget = "8s"; };\nshutdown_grace = "1s";\n' % ph).replace('shutdown_grace = "3s";\n', ''))
    p, port = start_relay(h, ["-c", conf], name="relayd2")
    lg = subprocess.Popen([krtest.binpath("kms-loadgen"), "-t", "127.0.0.1:%d" % port, "-n", "2",
                           "-c", "2", "--seed", "5", "-q", "--timeout-ms", "20000"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(0.5)
    t0 = time.time()
    os.kill(p.pid, signal.SIGTERM)
    rc = p.wait(timeout=10)
    took = time.time() - t0
    lg.communicate(timeout=30)
    check(rc == 0 and 0.8 < took < 3, "hung host: exit %r after %.1f s" % (rc, took))
    check("event=stop_grace_expired inflight=2" in h.tail(p), h.tail(p))


def stub_args(h, name, extra):
    pf = h.path(name + ".port")
    return h.start([krtest.binpath("kms-stubhost"), "-l", "127.0.0.1:0", "--port-file", pf,
                    "-N", name, "--log", h.path(name + ".jsonl")] + extra, name, port_file=pf)


def t_reload_listeners(h):
    """Listeners change on SIGHUP without dropping connections; a listener
    that cannot open fails the reload and keeps everything as it was."""
    _, pa = stub(h, "kms-a")
    conf = h.path("l.conf")
    hosts = 'hosts = ( { name = "kms-a"; address = "127.0.0.1:%d"; } );\n' % pa
    write(conf, base_conf(h, hosts))
    p, port = start_relay(h, ["-c", conf])
    bind = bytes.fromhex(krtest.load_vectors()[0]["client_to_server"][0]["hex"])
    held = krtest.connect(port)

    write(conf, base_conf(h, hosts).replace('[ "127.0.0.1:0" ]', '[ "127.0.0.1:0", "[::1]:0" ]'))
    os.kill(p.pid, signal.SIGHUP)
    wait_log(p, h, r"event=reload result=ok")
    m = re.search(r"event=listen addr=\[::1\]:(\d+)", h.tail(p))
    check(m, "no new IPv6 listener: " + h.tail(p))
    krtest.connect(int(m.group(1)), host="::1").close()

    # A listener on a port that is taken: the reload fails, nothing changes.
    write(conf, base_conf(h, hosts).replace('[ "127.0.0.1:0" ]',
                                            '[ "127.0.0.1:0", "127.0.0.1:%d" ]' % pa))
    os.kill(p.pid, signal.SIGHUP)
    wait_log(p, h, r"event=reload result=failed reason=\"cannot listen on 127\.0\.0\.1:%d" % pa)
    krtest.connect(int(m.group(1)), host="::1").close()

    # Dropping 127.0.0.1:0 closes that listener but not the connection made through it.
    write(conf, base_conf(h, hosts).replace('[ "127.0.0.1:0" ]', '[ "[::1]:0" ]'))
    os.kill(p.pid, signal.SIGHUP)
    wait_log(p, h, r"event=unlisten addr=127\.0\.0\.1:%d" % port)
    held.sendall(bind)
    ack = krtest.recv_pdu(held)
    check(len(ack) > 16 and ack[2] == 12, "held connection no longer answered: %r" % ack[:16])
    held.close()
    try:
        krtest.connect(port, timeout=2).close()
        check(False, "the dropped listener still accepts")
    except OSError:
        pass
    check(h.stop(p) == 0, "stop: " + h.tail(p))


if __name__ == "__main__":
    krtest.run_tests("daemon_basic", [t_check_configs, t_serve_reload_stop, t_start_failures,
                                      t_public_listener_warning, t_both_families, t_limits,
                                      t_admin_state, t_out_of_descriptors, t_graceful_stop,
                                      t_reload_listeners])
