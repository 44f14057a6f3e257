#!/usr/bin/env python3
"""kmsrelayd DNS publishing (issue 4, acceptance 1 and 2), against a real BIND 9
(tests/integration/bindlib.py) and, when knotd is installed, Knot DNS.

1. Publish within 2 s of becoming healthy, next to a pre-existing foreign record
   whose TTL stays untouched (ours joins at the RRset's TTL); a record deleted
   by hand comes back at the next reconcile; withdraw after the hold-down when
   every backend is dead and republish after the rise time once one recovers;
   withdraw within 2 s of SIGTERM. Verified with dig.
   Fail-static: when the only other record's host is dead, the withdrawal is
   held back and an alert logged.
2. A wrong key: a clear "TSIG BADSIG" error in the log, no crash, no storm of
   attempts. BIND stopped and restarted: backoff, then full recovery. An
   update policy that refuses: a clear REFUSED error.

Timers are short (rise 500 ms, hold-down 2 s, reconcile 2 s) so the whole
file runs in about a minute. The foreign record points at a live kms-stubhost
("kms-peer", not a backend of the relay), so the fail-static guard sees a
healthy alternative and lets the health-driven withdrawal go ahead.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bindlib  # noqa: E402
import krtest  # noqa: E402
import relaylib as rl  # noqa: E402
from krtest import Failure, check  # noqa: E402

ZONE = "example.test"
OWNER = "_vlmcs._tcp.example.test."
TARGET = "relay1.example.test."
TIMERS = {"rise": "500ms", "hold_down": "2s", "min_state": "0s", "reconcile": "2s",
          "backoff_min": "500ms", "backoff_max": "4s", "withdraw_wait": "2s", "timeout": "1s",
          "rate": 60, "flap_limit": 100}
HOLD_DOWN_S = 2.0


def dns_block(port, key, timers=None, weight=100):
    t = dict(TIMERS)
    t.update(timers or {})
    ts = " ".join("%s = %s;" % (k, ('"%s"' % v) if isinstance(v, str) else v)
                  for k, v in t.items())
    return ('dns: { %s zones = ( { name = "%s"; servers = [ "127.0.0.1:%d" ]; key = "%s"; '
            'target = "%s"; priority = 0; weight = %d; ttl = 300; } ); };\n'
            % (ts, ZONE, port, key, TARGET, weight))


def finish(h, r):
    """SIGTERM, exit 0, and no sanitizer report in the log."""
    check(h.stop(r.proc) == 0, "kmsrelayd exit status")
    log = r.log()
    check("runtime error" not in log and "Sanitizer" not in log, "sanitizer output in the log")


def log_ts(line):
    m = re.search(r"ts=(\S+)Z", line)
    return datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=timezone.utc).timestamp()


def ours(rrs, port):
    return [r for r in rrs if r["type"] == "SRV" and r["target"] == TARGET and r["port"] == port]


def markers(srv):
    return [r for r in srv.txt() if r["text"].startswith("kmsrelay=1 ")]


def foreign_ok(srv, peer):
    rrs = [r for r in srv.srv() if r["target"] == "kms-peer.example.test."]
    check(len(rrs) == 1, "the foreign record is gone: %s" % srv.srv())
    check(rrs[0]["ttl"] == 3600 and rrs[0]["port"] == peer.port,
          "the foreign record changed: %s" % rrs[0])


def start_all(h, srv_factory, peer_alive=True, key_attr="key", timers=None, debug=False):
    """peer stub + DNS server (foreign record) + backend stub + relay
    (logging at debug level with debug=True)."""
    peer = rl.start_stub(h, "kms-peer")
    peer_port = peer.port if peer_alive else 1
    if not peer_alive:
        h.stop(peer.proc)
    srv = srv_factory(h, ["_vlmcs._tcp 3600 IN SRV 0 0 %d kms-peer.example.test." % peer_port,
                          "kms-peer 3600 IN A 127.0.0.1"])
    a = rl.start_stub(h, "kms-a")
    conf = h.path("relay.conf")
    text = rl.conf_text(h, [a], extra=dns_block(srv.port, getattr(srv, key_attr), timers))
    if debug:
        text = text.replace("log: { activations = true; };",
                            'log: { activations = true; level = "debug"; };')
    rl.write(conf, text)
    r = rl.start_relay(h, conf)
    return peer, srv, a, r


def wait_published(srv, r, timeout):
    return rl.wait_for(lambda: ours(srv.srv(), r.port), timeout, "our SRV record in DNS",
                       poll=0.05)


def wait_gone(srv, r, timeout):
    return rl.wait_for(lambda: not ours(srv.srv(), r.port), timeout,
                       "our SRV record to leave DNS", poll=0.05)


def publish_suite(h, srv_factory, full=True):
    peer, srv, a, r = start_all(h, srv_factory)

    # --- publish within 2 s of healthy, foreign record and TTL untouched ----
    m = rl.wait_log(r.proc, r"[^\n]*event=host_state host=kms-a from=\S+ to=UP[^\n]*")
    t_up = log_ts(m.group(0))
    wait_published(srv, r, 5)
    dt = time.time() - t_up
    print("  published %.2f s after the backend became UP" % dt)
    check(dt <= 2.0, "published %.2f s after becoming healthy (> 2 s)" % dt)
    mine = ours(srv.srv(), r.port)
    check(len(mine) == 1 and mine[0]["prio"] == 0 and mine[0]["weight"] == 100,
          "our record: %s" % mine)
    check(mine[0]["ttl"] == 3600, "ours must join at the RRset's TTL 3600: %s" % mine)
    foreign_ok(srv, peer)
    mk = rl.wait_for(lambda: markers(srv), 3, "our TXT marker")
    want = "kmsrelay=1 owner=it target=%s port=%d prio=0 weight=100" % (TARGET, r.port)
    check(mk[0]["text"] == want, "marker %r, expected %r" % (mk[0]["text"], want))
    check(mk[0]["ttl"] == 3600, "marker TTL: %s" % mk[0])

    if full:
        # --- a record deleted by hand comes back at the next reconcile ------
        off = rl.log_size(r.proc)
        srv.delete("%s IN SRV 0 100 %d %s" % (OWNER, r.port, TARGET))
        check(not ours(srv.srv(), r.port), "manual delete did not take")
        t0 = time.time()
        wait_published(srv, r, 6)
        print("  restored %.2f s after a manual delete (reconcile 2 s)" % (time.time() - t0))
        rl.wait_log(r.proc, r"event=dns_drift zone=example.test. srv_present=0", 2, start=off)
        foreign_ok(srv, peer)

        # --- hold-down: every backend dead -> withdraw; rise -> republish ---
        h.stop(a.proc, sig=signal.SIGKILL)
        t_dead = time.time()
        wait_gone(srv, r, HOLD_DOWN_S + 6)
        dt = time.time() - t_dead
        print("  withdrawn %.2f s after the last backend died (hold-down %.1f s)"
              % (dt, HOLD_DOWN_S))
        check(dt >= HOLD_DOWN_S, "withdrawn before the hold-down (%.2f s)" % dt)
        rl.wait_log(r.proc, r"event=dns_withdrawn zone=example.test. reason=no_eligible_backend")
        check(not markers(srv), "our marker must go with the SRV: %s" % srv.txt())
        foreign_ok(srv, peer)
        a = rl.start_stub(h, "kms-a", port=a.port, tag="kms-a-2")
        t_back = time.time()
        wait_published(srv, r, 6)
        print("  republished %.2f s after the backend restarted (rise 0.5 s)"
              % (time.time() - t_back))
        check(markers(srv), "marker back with the record")
        foreign_ok(srv, peer)

    # --- SIGTERM: withdraw within 2 s -----------------------------------------
    t0 = time.time()
    r.proc.send_signal(signal.SIGTERM)
    wait_gone(srv, r, 2.0)
    dt = time.time() - t0
    print("  withdrawn %.2f s after SIGTERM" % dt)
    check(r.proc.wait(timeout=10) == 0, "kmsrelayd exit status")
    check(not markers(srv), "marker left after SIGTERM: %s" % srv.txt())
    foreign_ok(srv, peer)
    check("event=dns_withdrawn zone=example.test. reason=shutdown" in r.log(), "shutdown log")
    check("ERROR" not in r.log() and "runtime error" not in r.log(), "sanitizer output")


def t_publish_bind(h):
    publish_suite(h, lambda h, recs: bindlib.start(h, records=recs))


def t_fail_static(h):
    """The only other record's host is dead: no withdrawal, an alert instead."""
    peer, srv, a, r = start_all(h, lambda h, recs: bindlib.start(h, records=recs),
                                peer_alive=False, debug=True)
    wait_published(srv, r, 6)
    h.stop(a.proc, sig=signal.SIGKILL)
    m = rl.wait_log(r.proc, r"event=dns_alert zone=example.test. alert=fail_static[^\n]*",
                    HOLD_DOWN_S + 8)
    print("  %s" % m.group(0)[:200])
    off = rl.log_size(r.proc)
    time.sleep(5.0)  # two reconcile periods (2 s) while the record is held
    check(ours(srv.srv(), r.port), "fail-static: our record must stay")
    check("event=dns_withdrawn" not in r.log(), "withdrawn despite fail-static")
    # Holding the record is the state the alert announced once: no warning
    # (dns_drift "withdrawing them") at every reconcile, and the zone is read
    # once per reconcile period, not at every 250 ms tick.
    later = r.log()[off:]
    drift = re.findall(r"event=dns_drift[^\n]*", later)
    check(not drift, "log spam while fail-static holds the record: %d x %s"
          % (len(drift), drift[:1]))
    reads = len(re.findall(r"event=dns_guard_check zone=example.test.", later))
    print("  %d guard checks in 5 s while held" % reads)
    check(reads <= 4, "the zone is read %d times in 5 s (reconcile is 2 s)" % reads)
    finish(h, r)


def t_wrong_key(h):
    """NOTAUTH/BADSIG: clear error in the log, no crash, no storm."""
    peer, srv, a, r = start_all(h, lambda h, recs: bindlib.start(h, records=recs),
                                key_attr="wrong_key")
    m = rl.wait_log(r.proc, r"event=dns_error zone=example.test. [^\n]*TSIG BADSIG[^\n]*", 8)
    print("  %s" % m.group(0)[:260])
    check("key problem" in m.group(0), "the error must name the key problem")
    time.sleep(6)
    errors = len(re.findall(r"event=dns_error ", r.log()))
    print("  %d failed attempts in ~7 s" % errors)
    check(errors <= 2, "update storm: %d attempts in ~7 s" % errors)
    check(r.proc.poll() is None, "kmsrelayd died")
    check(not ours(srv.srv(), r.port), "published with a wrong key?")
    finish(h, r)


def t_bind_restart(h):
    """BIND down: reconcile fails with backoff; BIND back: full recovery."""
    peer, srv, a, r = start_all(h, lambda h, recs: bindlib.start(h, records=recs))
    wait_published(srv, r, 6)
    off = rl.log_size(r.proc)
    srv.stop()
    rl.wait_log(r.proc, r"event=dns_error zone=example.test. op=read status=network[^\n]*"
                r"failures=3", 20, start=off)
    waits = [int(x) for x in re.findall(r"event=dns_error [^\n]*retry_in_ms=(\d+)",
                                        r.log()[off:])]
    print("  backoff while BIND is down (ms): %s" % waits)
    check(len(waits) >= 3 and max(waits[1:]) > min(waits[:1]) // 2, "no backoff: %s" % waits)
    check(r.proc.poll() is None, "kmsrelayd died")
    srv.restart()
    off = rl.log_size(r.proc)
    rl.wait_log(r.proc, r"event=dns_recovered zone=example.test.", 12, start=off)
    srv.delete("%s IN SRV 0 100 %d %s" % (OWNER, r.port, TARGET))
    wait_published(srv, r, 8)
    print("  recovered and repaired after BIND came back")
    finish(h, r)


def t_refused(h):
    """An update-policy that refuses: a clear REFUSED error."""
    peer, srv, a, r = start_all(h, lambda h, recs: bindlib.start(h, records=recs,
                                                                    policy="refuse"))
    m = rl.wait_log(r.proc, r"event=dns_error zone=example.test. op=publish status=refused"
                    r"[^\n]*", 8)
    print("  %s" % m.group(0)[:240])
    check("REFUSED by" in m.group(0) and "policy" in m.group(0), "message")
    check(r.proc.poll() is None, "kmsrelayd died")
    finish(h, r)


def t_reload_and_restart(h):
    """Replace = delete ours + add, in one UPDATE: on reload (weight 100 -> 50),
    and after a SIGKILL and a restart with another weight and port (the store
    says what was ours)."""
    peer, srv, a, r = start_all(h, lambda h, recs: bindlib.start(h, records=recs))
    wait_published(srv, r, 6)
    serial = srv.soa_serial()
    conf = h.path("relay.conf")
    rl.reload(r, rl.conf_text(h, [a], extra=dns_block(srv.port, srv.key, weight=50)))
    rl.wait_for(lambda: [x["weight"] for x in ours(srv.srv(), r.port)] == [50], 6,
                "our record replaced with weight 50")
    check(srv.soa_serial() == serial + 1, "replace must be one UPDATE (serial %s -> %s)"
          % (serial, srv.soa_serial()))
    mk = markers(srv)
    check(len(mk) == 1 and mk[0]["text"].endswith("weight=50"), "marker: %s" % mk)
    foreign_ok(srv, peer)
    print("  reload: replaced in one UPDATE (serial +1), marker follows")

    old_port = r.port
    h.stop(r.proc, sig=signal.SIGKILL)
    check(ours(srv.srv(), old_port), "a SIGKILL must leave the record (no chance to withdraw)")
    rl.write(conf, rl.conf_text(h, [a], extra=dns_block(srv.port, srv.key, weight=70)))
    r = rl.start_relay(h, conf, name="relayd2")
    rl.wait_log(r.proc, r"event=dns_store zone=example.test. published=1", 3)
    rl.wait_for(lambda: [(x["port"], x["weight"]) for x in srv.srv() if x["target"] == TARGET]
                == [(r.port, 70)], 6, "only the new record of ours left")
    mk = markers(srv)
    check(len(mk) == 1 and "port=%d" % r.port in mk[0]["text"], "marker: %s" % mk)
    foreign_ok(srv, peer)
    print("  restart after SIGKILL: the stored record (port %d) replaced by port %d"
          % (old_port, r.port))
    finish(h, r)


def t_flap_damping(h):
    """After flap_limit transitions a withdrawal is held back, with an alert."""
    timers = {"rise": "200ms", "hold_down": "500ms", "flap_limit": 2, "flap_window": "1h"}
    peer, srv, a, r = start_all(h, lambda h, recs: bindlib.start(h, records=recs),
                                timers=timers)
    wait_published(srv, r, 6)                       # transition 1 (up)
    h.stop(a.proc, sig=signal.SIGKILL)
    wait_gone(srv, r, 6)                            # transition 2 (down)
    a = rl.start_stub(h, "kms-a", port=a.port, tag="kms-a-2")
    wait_published(srv, r, 6)                       # transition 3 (up)
    h.stop(a.proc, sig=signal.SIGKILL)
    rl.wait_log(r.proc, r"event=dns_alert zone=example.test. alert=flapping", 6)
    time.sleep(1.5)
    check(ours(srv.srv(), r.port), "damped: the record must stay published")
    print("  third transition within the window: withdrawal held back, alert logged")
    finish(h, r)

# ---- Knot DNS -----------------------------------------------------------------

KNOTD = shutil.which("knotd") or ("/usr/sbin/knotd" if os.path.exists("/usr/sbin/knotd")
                                  else None)


class Knot:
    """A knotd for the publish test (TEST ONLY): zone example.test from
    zones/example.test.zone, kmsrelay's key may change SRV/TXT at _vlmcs._tcp
    only (update-owner), the admin key anything. Stopped by PID."""

    def __init__(self, h, records):
        self.h, self.zone = h, ZONE
        self.dir = h.path("knot")
        os.makedirs(os.path.join(self.dir, "db"), exist_ok=True)
        secrets = {}
        for attr, (fname, kname) in bindlib.KEYS.items():
            dst = h.path("knot-" + fname)
            shutil.copyfile(os.path.join(bindlib.ZONES, "keys", fname), dst)
            os.chmod(dst, 0o600)
            setattr(self, attr, dst)
            secrets[attr] = bindlib.read_key(dst)
        with open(os.path.join(bindlib.ZONES, "example.test.zone")) as f:
            body = f.read() + "\n".join(records) + "\n"
        with open(os.path.join(self.dir, ZONE + ".zone"), "w") as f:
            f.write(body)
        self.port = bindlib._free_port()
        root = os.geteuid() == 0
        kname, _, ksec = secrets["key"]
        aname, _, asec = secrets["admin_key"]
        conf = ("server:\n    rundir: \"%s\"\n    listen: 127.0.0.1@%d\n%s"
                "log:\n  - target: stderr\n    any: info\n"
                "database:\n    storage: \"%s/db\"\n"
                "key:\n  - id: %s\n    algorithm: hmac-sha256\n    secret: %s\n"
                "  - id: %s\n    algorithm: hmac-sha256\n    secret: %s\n"
                "acl:\n  - id: kms_update\n    key: %s\n    action: update\n"
                "    update-type: [SRV, TXT]\n    update-owner: name\n"
                "    update-owner-match: equal\n    update-owner-name: [_vlmcs._tcp]\n"
                "  - id: admin\n    key: %s\n    action: [update, transfer]\n"
                "template:\n  - id: default\n    storage: \"%s\"\n    file: \"%%s.zone\"\n"
                "    zonefile-sync: -1\n    journal-content: changes\n"
                "zone:\n  - domain: %s\n    acl: [kms_update, admin]\n"
                % (self.dir, self.port, "    user: knot:knot\n" if root else "", self.dir,
                   kname, ksec, aname, asec, kname, aname, self.dir, ZONE))
        self.conf = os.path.join(self.dir, "knot.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        if root:
            os.chmod(h.dir, os.stat(h.dir).st_mode | 0o711)
            subprocess.run(["chown", "-R", "knot:knot", self.dir], check=True)
        self.proc = None

    def start(self):
        log = open(self.h.path("knotd.log"), "ab")
        p = subprocess.Popen([KNOTD, "-c", self.conf], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        p.kr_name, p.kr_log = "knotd", self.h.path("knotd.log")
        self.h.procs.append(p)
        self.proc = p
        rl.wait_for(lambda: self.dig(ZONE + ".", "SOA"), 15, "knotd to answer")
        return self

    def dig(self, name, rtype="SRV"):
        r = subprocess.run(["dig", "@127.0.0.1", "-p", str(self.port), bindlib.fqdn(name, ZONE),
                            rtype, "+norec", "+noall", "+answer", "+time=2", "+tries=2"],
                           capture_output=True, timeout=30)
        return bindlib.parse_rrs(r.stdout.decode()) if r.returncode == 0 else []

    def srv(self):
        return self.dig(OWNER, "SRV")

    def txt(self):
        return self.dig(OWNER, "TXT")

    def delete(self, *rrs):
        script = "server 127.0.0.1 %d\nzone %s.\n%s\nsend\n" % (
            self.port, ZONE, "\n".join("update delete " + x for x in rrs))
        r = subprocess.run(["nsupdate", "-v", "-t", "10", "-k", self.admin_key],
                           input=script.encode(), capture_output=True, timeout=60)
        if r.returncode != 0:
            raise Failure("nsupdate on knot failed: %s" % r.stderr.decode())


def t_publish_knot(h):
    # tests/run installs knot: a missing knotd is a broken set-up, not a skip
    check(KNOTD, "knotd is not installed (apt-get install knot)")
    publish_suite(h, lambda h, recs: Knot(h, recs).start())


def t_publish_delegated_zone(h):
    """The Windows GSS-TSIG workaround (deploy/dns/README.md): the zone is
    _vlmcs._tcp.<domain> itself, so the record and its marker go to the
    zone's apex, and are withdrawn from there on SIGTERM."""
    apex = "_vlmcs._tcp.corp.test"
    srv = bindlib.start(h, zones=[apex])
    a = rl.start_stub(h, "kms-a")
    block = dns_block(srv.port, srv.key).replace('name = "%s";' % ZONE, 'name = "%s";' % apex)
    conf = h.path("relay.conf")
    rl.write(conf, rl.conf_text(h, [a], extra=block + 'metrics: { listen = "127.0.0.1:0"; };\n'))
    r = rl.start_relay(h, conf)
    maddr = rl.wait_log(r.proc, r"event=metrics_listen addr=(\S+)").group(1)

    def at_apex():
        return [x for x in srv.dig(apex + ".", "SRV")
                if x["target"] == TARGET and x["port"] == r.port]
    rl.wait_for(at_apex, 5, "our SRV record at the apex of %s" % apex, poll=0.05)
    marks = [x for x in srv.dig(apex + ".", "TXT") if x["text"].startswith("kmsrelay=1 ")]
    check(len(marks) == 1, "one owner marker at the apex: %s" % marks)
    check(not srv.dig("_vlmcs._tcp.%s." % apex, "SRV"), "nothing at _vlmcs._tcp.<apex>")
    # the publish state and the UPDATE results reach /metrics
    with urllib.request.urlopen("http://%s/metrics" % maddr, timeout=10) as resp:
        text = resp.read().decode()
    check(re.search(r'kmsrelay_dns_published\{zone="%s\.?",state="published"\} 1' % re.escape(apex),
                    text), "kmsrelay_dns_published for the zone: %s"
          % [ln for ln in text.splitlines() if "dns_published" in ln])
    m = re.search(r'kmsrelay_dns_updates_total\{result="ok"\} (\d+)', text)
    check(m and int(m.group(1)) >= 1, "kmsrelay_dns_updates_total ok >= 1")
    finish(h, r)
    check(not at_apex(), "withdrawn from the apex on SIGTERM")


if __name__ == "__main__":
    krtest.run_tests("dns_publish", [t_publish_bind, t_fail_static, t_wrong_key, t_bind_restart,
                                     t_refused, t_reload_and_restart, t_flap_damping,
                                     t_publish_knot, t_publish_delegated_zone])
