"""Integration tests of `kmsrelayctl audit` against a real BIND 9 (issue 4,
Acceptance 4).

Each test starts named (bindlib, 127.0.0.1, random port, throw-away zone)
and kms-stubhost KMS hosts on their own loopback addresses (127.0.0.2, .3,
.6: each target name has its own address, so a port found open on one
address says nothing about another). The zone then holds:

    kms-relay  -> 127.0.0.6, a live stub, with OUR marker    OURS_OK
    kms-ok     -> 127.0.0.2, a live stub, sanctioned          AUTHORIZED_OK
    kms-dead   -> 127.0.0.9, nothing listens there            STALE_DEAD
    kms-pc17   -> 127.0.0.3, a live stub, not sanctioned      ROGUE
    kms-alias  CNAME kms-ok                                   MISCONFIGURED (CNAME)
    kms-moved  -> 127.0.0.2 at a closed port                  MISCONFIGURED (wrong port)

"Wrong port" as the audit defines it: the record's port does not answer,
but the target's address answers KMS on another port we know for it
(1688, or the port of another record whose target shares the address:
here kms-ok's). Every port is random: the stubs listen on port 0, closed
ports are ports just found free.
"""
import json
import os
import select
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bindlib  # noqa: E402
import krtest  # noqa: E402
import relaylib as rl  # noqa: E402
from krtest import check  # noqa: E402

INSTANCE = "relay-a"


def free_port(addr):
    s = socket.socket()
    s.bind((addr, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def stub(h, name, addr):
    """A stub KMS host on addr (port 0: any) or addr:port; returns its port."""
    pf = h.path(name + ".port")
    listen = addr if ":" in addr else addr + ":0"
    _, port = h.start([krtest.binpath("kms-stubhost"), "-l", listen, "--port-file", pf,
                       "-N", name], name, port_file=pf)
    return port


class Zone:
    """The Acceptance 4 zone on a fresh named, with its stub hosts."""

    def __init__(self, h, **bind_args):
        self.h = h
        self.b = bindlib.start(h, **bind_args)
        z = self.z = self.b.zone
        self.owner = "_vlmcs._tcp.%s." % z
        self.p_ok = stub(h, "kms-ok", "127.0.0.2")
        self.p_rogue = stub(h, "kms-pc17", "127.0.0.3")
        self.p_ours = stub(h, "kms-relay", "127.0.0.6")
        self.p_dead = free_port("127.0.0.9")
        self.p_moved = free_port("127.0.0.2")
        self.b.add(*["%s.%s. 3600 IN A %s" % (n, z, a) for n, a in (
            ("kms-ok", "127.0.0.2"), ("kms-moved", "127.0.0.2"), ("kms-pc17", "127.0.0.3"),
            ("kms-dead", "127.0.0.9"), ("kms-relay", "127.0.0.6"))],
            "kms-alias.%s. 3600 IN CNAME kms-ok.%s." % (z, z))
        self.b.add(self.srv(0, 100, self.p_ours, "kms-relay"),
                   self.txt(self.marker(INSTANCE, "kms-relay", self.p_ours, 0, 100)),
                   self.srv(0, 0, self.p_ok, "kms-ok"),
                   self.srv(0, 0, self.p_dead, "kms-dead"),
                   self.srv(0, 0, self.p_rogue, "kms-pc17"),
                   self.srv(0, 0, self.p_ok, "kms-alias"),
                   self.srv(0, 0, self.p_moved, "kms-moved"))

    def srv(self, prio, weight, port, target, ttl=3600):
        return "%s %d IN SRV %d %d %d %s.%s." % (self.owner, ttl, prio, weight, port, target, self.z)

    def marker(self, owner, target, port, prio=0, weight=0):
        return "kmsrelay=1 owner=%s target=%s.%s. port=%d prio=%d weight=%d" % (
            owner, target, self.z, port, prio, weight)

    def txt(self, text, ttl=3600):
        return '%s %d IN TXT "%s"' % (self.owner, ttl, text)

    def args(self, *extra):
        return [krtest.binpath("kmsrelayctl"), "audit", "--server", "127.0.0.1:%d" % self.b.port,
                "--instance", INSTANCE, "--sanctioned", "kms-ok.%s" % self.z, "--timeout", "2s"] + \
            list(extra) + [self.z]

    def audit(self, *extra, rc=None):
        code, out, err = self.h.run(self.args("--json", *extra), timeout=120)
        if rc is not None:
            check(code == rc, "audit exited %d, expected %d\nstdout: %s\nstderr: %s"
                  % (code, rc, out[-4000:], err[-2000:]))
        try:
            return code, json.loads(out), err
        except ValueError:
            raise krtest.Failure("audit --json printed no JSON: %r %r" % (out[-2000:], err[-2000:]))

    def targets(self):
        return sorted((r["target"], r["port"], r["ttl"]) for r in self.b.srv())


def by_target(doc):
    """{target short name: finding} for record findings."""
    out = {}
    for f in doc["findings"]:
        if f["record"]:
            out[f["record"]["target"].split(".")[0]] = f
    return out


def test_every_record_in_its_class(h):
    zn = Zone(h)
    code, doc, _ = zn.audit(rc=1)
    f = by_target(doc)
    want = {"kms-relay": "OURS_OK", "kms-ok": "AUTHORIZED_OK", "kms-dead": "STALE_DEAD",
            "kms-pc17": "ROGUE", "kms-alias": "MISCONFIGURED", "kms-moved": "MISCONFIGURED"}
    got = {
k: v["class"] for k, v in f.items()}
    check(got == want, "classes: got %s, want %s" % (got, want))
    check(doc["summary"]["problems"] == 4, "problems: %s" % doc["summary"])
    check(doc["errors"] == [], "errors: %s" % doc["errors"])
    check(doc["point_in_time"] is True, "the CLI run is a point-in-time view")

    # Evidence: server and TTL of every record, addresses, each probe.
    for name, fi in f.items():
        ev = fi["evidence"]
        check(ev["servers"] == [{"server": "127.0.0.1:%d" % zn.b.port, "ttl": 3600}],
              "%s: servers evidence %s" % (name, ev["servers"]))
        check(fi["reason"], "%s: no reason" % name)
    ours = f["kms-relay"]
    check(ours["marker"]["owner"] == INSTANCE and ours["marker"]["port"] == zn.p_ours,
          "our marker: %s" % ours["marker"])
    check(ours["evidence"]["probes"][0]["result"] == "ok", "ours answers: %s" % ours["evidence"])
    dead = f["kms-dead"]["evidence"]
    check(dead["target"]["addresses"] == ["127.0.0.9"], "dead target: %s" % dead["target"])
    check(dead["probes"][0]["result"] == "connect_failed" and
          "refused" in dead["probes"][0]["detail"].lower(), "dead probe: %s" % dead["probes"])
    check(dead["probes"][0]["port"] == zn.p_dead, "dead probe port: %s" % dead["probes"])
    check("connect_ms" in dead["probes"][0], "latency missing: %s" % dead["probes"])
    rogue = f["kms-pc17"]
    check("not on the sanctioned list" in rogue["reason"], "rogue reason: %s" % rogue["reason"])
    p = rogue["evidence"]["probes"][0]
    check(p["result"] == "ok" and "bind_ack" in p["detail"] and "bind_ms" in p,
          "rogue probe: %s" % p)
    alias = f["kms-alias"]
    check("CNAME" in alias["reason"] and
          alias["evidence"]["target"]["cname"] == "kms-ok.%s." % zn.z, "alias: %s" % alias)
    moved = f["kms-moved"]
    check("wrong port" in moved["reason"] and str(zn.p_ok) in moved["reason"],
          "moved reason: %s" % moved["reason"])
    alt = [t for t in moved["evidence"]["other_ports"] if t["result"] == "ok"]
    check(alt and alt[0]["port"] == zn.p_ok and alt[0]["addr"] == "127.0.0.2",
          "moved: KMS found on kms-ok's port: %s" % moved["evidence"]["other_ports"])

    # The table says the same, and the audit changed nothing.
    code, out, err = h.run(zn.args(), timeout=120)
    check(code == 1, "table run exited %d: %s %s" % (code, out, err))
    for cls in set(want.values()):
        check(cls in out, "%s missing from the table:\n%s" % (cls, out))
    check("point-in-time" in out, "the table says it is a point-in-time view")
    check(len(zn.b.srv()) == 6, "the audit changed the RRset: %s" % zn.b.srv())


def test_fix_removes_only_the_dead_record(h):
    zn = Zone(h)
    before = zn.targets()
    serial = zn.b.soa_serial()
    code, doc, _ = zn.audit("--fix", "--dead-for", "1s", "--key", zn.b.key, rc=1)  # ROGUE etc. remain
    f = by_target(doc)
    fix = f["kms-dead"].get("fix")
    check(fix and fix["action"] == "deleted", "dead record fix: %s" % fix)
    check(len(fix["before"]) == 6 and len(fix["after"]) == 5, "before/after: %s" % fix)
    check(all("kms-dead" not in r for r in fix["after"]), "after still has it: %s" % fix["after"])
    for name, fi in f.items():
        check(name == "kms-dead" or "fix" not in fi, "%s was touched: %s" % (name, fi.get("fix")))
    after = zn.targets()
    want = [t for t in before if not t[0].startswith("kms-dead")]
    check(after == want, "RRset after --fix: %s, want %s" % (after, want))
    check(zn.b.soa_serial() == serial + 1, "one UPDATE, one serial step")
    check(len(zn.b.txt()) == 1, "our marker must stay: %s" % zn.b.txt())

    # Clean (but for the unfixable classes) and idempotent: nothing left to fix.
    code, doc, _ = zn.audit("--fix", "--dead-for", "1s", "--key", zn.b.key, rc=1)
    check(all("fix" not in fi for fi in doc["findings"]), "second --fix touched something")
    check(zn.b.soa_serial() == serial + 1, "second --fix changed the zone")

    # The table run prints the RRset before and after.
    zn.b.add(zn.srv(0, 0, zn.p_dead, "kms-dead"))
    code, out, err = h.run(zn.args("--fix", "--dead-for", "1s", "--key", zn.b.key), timeout=120)
    check(code == 1, "table --fix exited %d: %s %s" % (code, out, err))
    check("RRset before:" in out and "RRset after:" in out and "result: deleted" in out,
          "table --fix output:\n%s" % out)


def test_fix_refuses_a_concurrent_change(h):
    zn = Zone(h)
    env = dict(os.environ, KMSRELAY_AUDIT_TEST_PAUSE_MS="4000")
    p = subprocess.Popen(zn.args("--json", "--fix", "--dead-for", "1s", "--key", zn.b.key),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        # Wait (bounded) until the audit has read the RRset and is about to update.
        err, deadline = b"", time.time() + 60
        while b"test pause" not in err and time.time() < deadline and p.poll() is None:
            r, _, _ = select.select([p.stderr], [], [], 0.5)
            if r:
                err += os.read(p.stderr.fileno(), 4096)
        check(b"test pause" in err, "the audit never reached its UPDATE: %r" % err)
        zn.b.add(zn.srv(5, 0, zn.p_ok, "kms-new"))  # someone else changes the RRset
        out, err2 = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    check(p.returncode == 2, "a refused --fix must exit 2, got %d: %s" % (p.returncode, err2))
    doc = json.loads(out)
    fix = by_target(doc)["kms-dead"]["fix"]
    check(fix["action"] == "refused" and fix["rcode"] == "NXRRSET", "fix: %s" % fix)
    check("changed since the audit read it" in fix["error"], "message: %s" % fix["error"])
    names = [t[0] for t in zn.targets()]
    check("kms-dead.%s." % zn.z in names and "kms-new.%s." % zn.z in names,
          "nothing may be deleted: %s" % names)


def test_peer_stale_goes_with_its_marker(h):
    zn = Zone(h)
    z = zn.z
    peer_port = free_port("127.0.0.9")
    zn.b.add("kms-peer.%s. 3600 IN A 127.0.0.9" % z, zn.srv(0, 10, peer_port, "kms-peer"),
             zn.txt(zn.marker("relay-b", "kms-peer", peer_port, 0, 10)))
    code, doc, _ = zn.audit(rc=1)
    peer = by_target(doc)["kms-peer"]
    check(peer["class"] == "PEER_STALE" and peer["marker"]["owner"] == "relay-b",
          "peer: %s" % peer)
    code, doc, _ = zn.audit("--fix", "--dead-for", "1s", "--key", zn.b.key, rc=1)
    f = by_target(doc)
    check(f["kms-peer"]["fix"]["action"] == "deleted", "peer fix: %s" % f["kms-peer"].get("fix"))
    check(len(f["kms-peer"]["fix"]["delete_marker"]) == 1, "marker delete: %s" % f["kms-peer"]["fix"])
    check(f["kms-dead"]["fix"]["action"] == "deleted", "dead fix: %s" % f["kms-dead"].get("fix"))
    names = [t[0] for t in zn.targets()]
    check("kms-peer.%s." % z not in names and "kms-dead.%s." % z not in names, "left: %s" % names)
    txts = [t["text"] for t in zn.b.txt()]
    check(txts == [zn.marker(INSTANCE, "kms-relay", zn.p_ours, 0, 100)],
          "only our marker may remain: %s" % txts)


def test_axfr_finds_other_names(h):
    zn = Zone(h)
    z = zn.z
    zn.b.add("_vlmcs._tcp.branch.%s. 3600 IN SRV 0 0 %d kms-pc17.%s." % (z, zn.p_rogue, z),
             "_vlmcs._udp.%s. 3600 IN SRV 0 0 %d kms-ok.%s." % (z, zn.p_ok, z))
    code, doc, _ = zn.audit(rc=1)
    check(len(doc["zones"]) == 1, "without --axfr only the zone's name: %s" % doc["zones"])
    code, doc, _ = zn.audit("--axfr", "--key", zn.b.key, rc=1)
    names = {x["owner"]: x["found_by"] for x in doc["zones"]}
    check(names.get("_vlmcs._tcp.branch.%s." % z) == "axfr" and
          names.get("_vlmcs._udp.%s." % z) == "axfr", "AXFR names: %s" % names)
    cls = {(f["owner"], f["class"]) for f in doc["findings"] if f["evidence"]["found_by"] == "axfr"}
    check(("_vlmcs._tcp.branch.%s." % z, "ROGUE") in cls, "branch rogue: %s" % cls)
    udp = [f for f in doc["findings"] if f["owner"] == "_vlmcs._udp.%s." % z][0]
    check(udp["class"] == "MISCONFIGURED" and "never query" in udp["reason"], "udp: %s" % udp)


def test_errors_are_clear(h):
    zn = Zone(h)
    # A wrong secret: the transfer fails with a key message, exit 2.
    code, doc, err = zn.audit("--axfr", "--key", zn.b.wrong_key, rc=2)
    check(any("BADSIG" in e or "key" in e.lower() for e in doc["errors"]),
          "wrong key error: %s" % doc["errors"])
    # A key the policy does not allow to delete: REFUSED, nothing deleted.
    code, doc, _ = zn.audit("--fix", "--dead-for", "1s", "--key", zn.b.other_key, rc=2)
    fix = by_target(doc)["kms-dead"]["fix"]
    check(fix["action"] == "failed" and fix["status"] == "refused", "refused fix: %s" % fix)
    check(len(zn.b.srv()) == 6, "a refused fix deleted something")
    # Usage errors.
    code, out, err = h.run([krtest.binpath("kmsrelayctl"), "audit", "--fix", zn.z])
    check(code == 2 and "--key" in err, "--fix without key: %d %s" % (code, err))
    code, out, err = h.run([krtest.binpath("kmsrelayctl"), "audit"])
    check(code == 2 and "no zone" in err, "no zone: %d %s" % (code, err))
    # The server is gone: exit 2, the error names it.
    zn.b.stop()
    code, doc, _ = zn.audit(rc=2)
    check(doc["errors"] and "127.0.0.1:%d" % zn.b.port in doc["errors"][0],
          "server down: %s" % doc["errors"])


def test_config_file(h):
    """kmsrelayctl audit --config: zones, servers, key, instance id and the
    sanctioned list come from kmsrelayd's configuration."""
    zn = Zone(h)
    sanc = h.path("sanctioned.txt")
    with open(sanc, "w") as f:
        f.write("# sanctioned KMS hosts\nkms-ok.%s\n" % zn.z)
    conf = h.path("kmsrelay.conf")
    with open(conf, "w") as f:
        f.write('instance_id = "%s";\n'
                'dns: {\n  zones = ( { name = "%s"; servers = [ "127.0.0.1:%d" ]; key = "%s";\n'
                '              target = "kms-relay.%s"; port = %d; weight = 100; } );\n'
                '  audit_interval = "1h"; dead_after = "2d"; sanctioned_file = "%s";\n};\n'
                % (INSTANCE, zn.z, zn.b.port, zn.b.key, zn.z, zn.p_ours, sanc))
    code, out, err = h.run([krtest.binpath("kmsrelayctl"), "--json", "audit", "--config", conf,
                            "--axfr"], timeout=120)
    check(code == 1, "audit --config exited %d: %s %s" % (code, out[-2000:], err))
    doc = json.loads(out)
    got = {
k: v["class"] for k, v in by_target(doc).items()}
    check(got == {"kms-relay": "OURS_OK", "kms-ok": "AUTHORIZED_OK", "kms-dead": "STALE_DEAD",
                  "kms-pc17": "ROGUE", "kms-alias": "MISCONFIGURED",
                  "kms-moved": "MISCONFIGURED"}, "classes from --config: %s" % got)
    check(doc["instance_id"] == INSTANCE and doc["sanctioned"] == ["kms-ok.%s" % zn.z],
          "config values: %s %s" % (doc["instance_id"], doc["sanctioned"]))


def test_delegated_zone(h):
    """_vlmcs._tcp.<domain> delegated to its own zone (the Windows DNS
    workaround of deploy/dns/README.md): the RRset is at the zone apex."""
    apex, parent = "_vlmcs._tcp.corp.test", "corp.test"
    b = bindlib.start(h, zones=[apex, parent])
    p_ok = stub(h, "kms-ok", "127.0.0.2")
    dead = free_port("127.0.0.9")
    b.add("kms-ok.%s. 3600 IN A 127.0.0.2" % parent, "kms-dead.%s. 3600 IN A 127.0.0.9" % parent,
          zone=parent)
    b.add("%s. 3600 IN SRV 0 0 %d kms-ok.%s." % (apex, p_ok, parent),
          "%s. 3600 IN SRV 0 0 %d kms-dead.%s." % (apex, dead, parent), zone=apex)
    args = [krtest.binpath("kmsrelayctl"), "audit", "--json", "--server", "127.0.0.1:%d" % b.port,
            "--sanctioned", "kms-ok.%s" % parent, apex]
    code, out, err = h.run(args + ["--fix", "--dead-for", "1s", "--key", b.admin_key], timeout=120)
    check(code == 0, "delegated audit --fix exited %d: %s %s" % (code, out[-2000:], err))
    doc = json.loads(out)
    f = by_target(doc)
    check(doc["zones"][0]["owner"] == apex + ".", "owner: %s" % doc["zones"])
    check(f["kms-ok"]["class"] == "AUTHORIZED_OK" and f["kms-dead"]["class"] == "STALE_DEAD",
          "classes: %s" % {
k: v["class"] for k, v in f.items()})
    check(f["kms-dead"]["fix"]["action"] == "deleted", "fix: %s" % f["kms-dead"].get("fix"))
    check([r["target"] for r in b.dig(apex + ".", "SRV")] == ["kms-ok.%s." % parent],
          "left: %s" % b.dig(apex + ".", "SRV"))


def test_lookup_failure_is_unknown(h):
    """Issue 11 item 10: only proof of absence (NXDOMAIN / NODATA) counts
    against a target. A sanctioned target in a zone that answers SERVFAIL
    (a zone that never loads; a delegation whose servers are dead, through a
    real resolver) and a target whose resolver is down are UNKNOWN, and
    --fix, even with evidence over time, leaves them; an NXDOMAIN target in
    the same RRset is still deleted."""
    zn = Zone(h, secondaries=["child.example.test"])
    z, b = zn.z, zn.b
    b.add("deleg.%s. 3600 IN NS ns.deleg.%s." % (z, z), "ns.deleg.%s. 3600 IN A 127.0.0.254" % z)
    b.add(zn.srv(0, 0, zn.p_ok, "kms.child"),  # SERVFAIL from the zone's own server
          zn.srv(0, 0, zn.p_ok, "kms.deleg"),  # referral, then SERVFAIL from the resolver
          zn.srv(0, 0, zn.p_ok, "kms-gone"))   # NXDOMAIN: proof of absence
    res = bindlib.start_resolver(h, b)
    sanc = ["--sanctioned", "kms.child.%s,kms.deleg.%s" % (z, z)]
    before = sorted(r["target"] for r in b.srv())
    code, doc, err = zn.audit("--resolver", "127.0.0.1:%d" % res.port, "--fix", "--dead-for",
                              "1s", "--key", b.key, *sanc, rc=1)
    f = {fi["record"]["target"]: fi for fi in doc["findings"] if fi["record"]}
    for t in ("kms.child.%s." % z, "kms.deleg.%s." % z):
        check(f[t]["class"] == "UNKNOWN", "%s: %s" % (t, f[t]))
        check("SERVFAIL" in f[t]["reason"] and "never deleted" in f[t]["reason"] and
              "sanctioned" in f[t]["reason"], "%s reason: %s" % (t, f[t]["reason"]))
        check(f[t]["evidence"]["target"]["lookup_failed"] is True, "%s evidence" % t)
        check("fix" not in f[t], "%s was touched: %s" % (t, f[t].get("fix")))
    gone = f["kms-gone.%s." % z]
    check(gone["class"] == "STALE_DEAD" and "NXDOMAIN" in gone["reason"], "gone: %s" % gone)
    check(gone["fix"]["action"] == "deleted", "gone fix: %s" % gone.get("fix"))
    names = sorted(r["target"] for r in b.srv())
    want = [t for t in before if t not in ("kms-gone.%s." % z, "kms-dead.%s." % z)]
    check(names == want, "left: %s, want %s" % (names, want))

    # The auditing machine's resolver is down: the delegated target is
    # UNKNOWN too, and stays.
    dead = free_port("127.0.0.1")
    code, doc, err = zn.audit("--resolver", "127.0.0.1:%d" % dead, "--fix", "--dead-for", "1s",
                              "--key", b.key, *sanc, rc=1)
    f = {fi["record"]["target"]: fi for fi in doc["findings"] if fi["record"]}
    t = f["kms.deleg.%s." % z]
    check(t["class"] == "UNKNOWN" and "127.0.0.1:%d" % dead in t["reason"], "resolver down: %s" % t)
    check("fix" not in t, "touched with the resolver down: %s" % t.get("fix"))
    check("kms.deleg.%s." % z in [r["target"] for r in b.srv()], "deleted with the resolver down")


def test_fix_needs_evidence_over_time(h):
    """Issue 11 item 11: --fix acts only on evidence over time. Dead at one
    moment: nothing deleted and a message says which evidence is missing;
    a host that comes back during --dead-for (a reboot) stays; dead in every
    probe across --dead-for: deleted."""
    zn = Zone(h)
    code, doc, err = zn.audit("--fix", "--key", zn.b.key, rc=1)
    fix = by_target(doc)["kms-dead"]["fix"]
    check(fix["action"] == "skipped", "one moment must not delete: %s" % fix)
    check("--dead-for" in fix["error"] and "--history" in fix["error"], "message: %s" % fix)
    check("--dead-for" in err and "evidence over time" in err, "stderr: %s" % err)
    check(len(zn.b.srv()) == 6, "deleted on one moment's probe: %s" % zn.b.srv())

    # The dead host comes back half-way through --dead-for: it stays.
    p = subprocess.Popen(zn.args("--json", "--fix", "--dead-for", "6s", "--probe-every", "1s",
                                 "--key", zn.b.key), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        err, deadline = b"", time.time() + 60
        while b"probing again" not in err and time.time() < deadline and p.poll() is None:
            r, _, _ = select.select([p.stderr], [], [], 0.5)
            if r:
                err += os.read(p.stderr.fileno(), 4096)
        check(b"probing again" in err, "no second probe announced: %r" % err)
        stub(h, "kms-dead", "127.0.0.9:%d" % zn.p_dead)
        out, _ = p.communicate(timeout=90)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    f = by_target(json.loads(out))["kms-dead"]
    check(f["class"] != "STALE_DEAD" and "fix" not in f, "rebooted host: %s" % f)
    check(len(zn.b.srv()) == 6, "a host back within --dead-for lost its record")


def test_fix_from_daemon_history(h):
    """Issue 11 item 11: --fix --history takes the evidence from kmsrelayd's
    periodic audit (GET /v1/dns): deleted only once the daemon has seen the
    target failing for its dns.dead_after."""
    zn = Zone(h)
    sock = h.path("control.sock")
    conf = h.path("relay.conf")
    a = rl.start_stub(h, "kms-a")
    rl.write(conf, rl.conf_text(h, [a], extra=(
        'control: { socket = "%s"; mode = "0600"; };\n'
        'dns: { zones = ( { name = "%s"; servers = [ "127.0.0.1:%d" ]; key = "%s";\n'
        '                   target = "relay-h.%s"; } );\n'
        '       audit_interval = "1s"; dead_after = "4s"; timeout = "1s"; };\n'
        % (sock, zn.z, zn.b.port, zn.b.key, zn.z))))
    rl.start_relay(h, conf)
    ctl = [krtest.binpath("kmsrelayctl"), "--socket", sock]

    def daemon_dead():
        code, out, _ = h.run(ctl + ["--json", "dns"], timeout=30)
        rep = json.loads(out).get("audit") if code == 0 else None
        return [f for f in (rep or {}).get("findings", [])
                if f["record"] and f["record"]["target"].startswith("kms-dead.")]

    first = rl.wait_for(daemon_dead, 30, "the daemon's audit to see kms-dead", poll=0.5)[0]
    check(first["class"] == "STALE_DEAD", "daemon: %s" % first)
    args = ctl + ["audit", "--json", "--server", "127.0.0.1:%d" % zn.b.port, "--instance",
                  INSTANCE, "--sanctioned", "kms-ok.%s" % zn.z, "--timeout", "2s", "--history",
                  "--fix", "--key", zn.b.key, zn.z]
    if not first["confirmed"]:  # too early: the daemon has not seen it dead for 4 s yet
        code, out, err = h.run(args, timeout=120)
        fix = by_target(json.loads(out))["kms-dead"].get("fix")
        check(fix and fix["action"] == "skipped", "deleted before dead_after: %s" % fix)
        check(len(zn.b.srv()) >= 6, "deleted before dead_after")
    rl.wait_for(lambda: daemon_dead()[0]["confirmed"], 30, "the daemon to confirm kms-dead",
                poll=0.5)
    code, out, err = h.run(args, timeout=120)
    fix = by_target(json.loads(out))["kms-dead"].get("fix")
    check(fix and fix["action"] == "deleted", "with the daemon's evidence: %s %s" % (fix, err))
    check("kms-dead.%s." % zn.z not in [r["target"] for r in zn.b.srv()], "still there")
    # Without a daemon: exit 3, nothing deleted, and it says so.
    zn.b.add(zn.srv(0, 0, zn.p_dead, "kms-dead"))
    code, out, err = h.run([krtest.binpath("kmsrelayctl"), "--socket", h.path("nothing.sock")] +
                           args[3:], timeout=120)
    check(code == 3 and "--history" in err, "no daemon: %d %s" % (code, err))
    check("kms-dead.%s." % zn.z in [r["target"] for r in zn.b.srv()], "deleted without history")


if __name__ == "__main__":
    krtest.run_tests("dns_audit", [test_every_record_in_its_class,
                                   test_fix_removes_only_the_dead_record,
                                   test_fix_refuses_a_concurrent_change,
                                   test_peer_stale_goes_with_its_marker,
                                   test_axfr_finds_other_names,
                                   test_errors_are_clear,
                                   test_config_file,
                                   test_delegated_zone,
                                   test_lookup_failure_is_unknown,
                                   test_fix_needs_evidence_over_time,
                                   test_fix_from_daemon_history])
