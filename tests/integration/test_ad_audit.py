#!/usr/bin/env python3
"""The DNS audit in an AD-integrated zone (issue 12), against a real Samba AD
DC (tests/integration/adlib.py; provisioned once per build tree).

AD refuses zone transfers to ordinary accounts, so `kmsrelayctl audit
--keytab --principal` reads the zone's _vlmcs names from the directory
(LDAP, SASL GSSAPI bind with the relay account's keytab) and finds records
at the domain and in a child name; each points at a dead target (nothing
listening at the domain, NXDOMAIN in the child), a rogue host (a live stub
not on the sanctioned list) and the sanctioned relay. They are classified
STALE_DEAD, ROGUE and AUTHORIZED_OK; `--fix` without evidence over time
deletes nothing, and with `--dead-for` deletes only the two dead records,
with Kerberos (Samba accepts nothing but GSS-TSIG). Without --keytab the
child name is not found at all (no AXFR in AD): the directory is what finds
it. A dead record on another account's node is not deleted: "permission
denied on the node". kmsrelayd's periodic audit of a gss zone finds the
child name too.
"""
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import adlib  # noqa: E402
import krtest  # noqa: E402
import relaylib as rl  # noqa: E402
from krtest import check  # noqa: E402

CTL = krtest.binpath("kmsrelayctl")
APEX = "_vlmcs._tcp.corp.test."
CHILD = "_vlmcs._tcp.child.corp.test."
FIX = {}
FIX_H = krtest.Harness("ad_audit-fixtures")


def samba():
    if "x" not in FIX:
        FIX["x"] = adlib.samba(FIX_H)
        FIX["x"].kinit()
    x = FIX["x"]
    x.enter()
    os.environ["KRB5_CONFIG"] = x.krb5_conf
    return x


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def nsupdate(x, lines):
    rc, out = x.nsupdate_g("server 127.0.0.1\nzone corp.test\n" + "\n".join(lines) + "\nsend\n")
    # Samba's reply MAC is not in the RFC form: nsupdate -g says "tsig verify
    # failure" although the update was applied (dns.md 2.10a).
    check(rc == 0 or "tsig verify failure" in out, "nsupdate -g: %s" % out)


def populate(h, x):
    """Three records at each name; returns {(owner, target): port}."""
    rogue = rl.start_stub(h, "kms-rogue")
    relay = rl.start_stub(h, "kms-relay")
    dead = free_port()
    recs = {(APEX, "dead.corp.test."): dead, (APEX, "rogue.corp.test."): rogue.port,
            (APEX, "relay.corp.test."): relay.port,
            (CHILD, "gone.child.corp.test."): 1688,  # NXDOMAIN
            (CHILD, "rogue.corp.test."): rogue.port, (CHILD, "relay.corp.test."): relay.port}
    # dead.corp.test has an address of its own: on 127.0.0.1 the wrong-port
    # check would find the stubs and call it a moved host (MISCONFIGURED).
    lines = ["update add dead.corp.test. 600 IN A 127.0.0.9"]
    lines += ["update add %s 600 IN A 127.0.0.1" % n for n in ("rogue.corp.test.", "relay.corp.test.")]
    lines += ["update add %s 600 IN SRV 0 0 %d %s" % (o, p, t) for (o, t), p in recs.items()]
    nsupdate(x, lines)
    check(len(x.dig(CHILD, "SRV")) == 3 and len(x.dig(APEX, "SRV")) == 3,
          "records not in the zone: %s %s" % (x.dig(APEX, "SRV"), x.dig(CHILD, "SRV")))
    return recs


def audit(h, x, *extra, gss=True):
    args = [CTL, "audit", "--json", "--server", "127.0.0.1", "--timeout", "2s",
            "--sanctioned", "relay.corp.test"]
    if gss:
        args += ["--keytab", x.keytab, "--principal", x.principal]
    r = subprocess.run(args + list(extra) + ["corp.test"], capture_output=True, env=x.env,
                       timeout=180)
    out = r.stdout.decode("utf-8", "replace")
    err = r.stderr.decode("utf-8", "replace")
    check("Sanitizer" not in err and "runtime error" not in err, "sanitizer: %s" % err)
    try:
        return r.returncode, json.loads(out), err
    except ValueError:
        raise krtest.Failure("audit output is not JSON (rc %d): %s %s" % (r.returncode, out, err))


def classes(doc):
    return {(f["owner"], f["record"]["target"]): f for f in doc["findings"] if f["record"]}


def t_directory_audit_and_fix(h):
    x = samba()
    recs = populate(h, x)
    # Without Kerberos: only the name asked for; the child is invisible.
    rc, doc, err = audit(h, x, gss=False)
    check({z["owner"] for z in doc["zones"]} == {APEX},
          "without --keytab only %s should be seen: %s" % (APEX, doc["zones"]))

    t0 = time.time()
    rc, doc, err = audit(h, x)
    took = time.time() - t0
    zones = {z["owner"]: z for z in doc["zones"]}
    check(set(zones) == {APEX, CHILD}, "names found: %s %s" % (list(zones), err))
    check(zones[CHILD]["found_by"] == "ldap", "child found by: %s" % zones[CHILD])
    ldap_views = [v for v in zones[CHILD]["servers"] if v["server"].startswith("ldap://")]
    check(ldap_views and ldap_views[0]["records"] == 3, "the directory's view: %s" % zones[CHILD])
    got = {k: f["class"] for k, f in classes(doc).items()}
    want = {(APEX, "dead.corp.test."): "STALE_DEAD", (APEX, "rogue.corp.test."): "ROGUE",
            (APEX, "relay.corp.test."): "AUTHORIZED_OK",
            (CHILD, "gone.child.corp.test."): "STALE_DEAD", (CHILD, "rogue.corp.test."): "ROGUE",
            (CHILD, "relay.corp.test."): "AUTHORIZED_OK"}
    check(got == want, "classes: %s" % got)
    check(rc == 1 and not doc["errors"], "rc %d, errors %s" % (rc, doc["errors"]))

    # --fix on one moment's evidence deletes nothing.
    rc, doc, err = audit(h, x, "--fix")
    fixes = [f.get("fix") for f in classes(doc).values() if f.get("fix")]
    check(fixes and all(f["action"] == "skipped" for f in fixes), "fix without evidence: %s" % fixes)
    check(len(x.dig(APEX, "SRV")) == 3 and len(x.dig(CHILD, "SRV")) == 3, "deleted too early")

    # With evidence over time: only the dead ones go, signed with Kerberos.
    rc, doc, err = audit(h, x, "--fix", "--dead-for", "2s", "--probe-every", "1s")
    deleted = sorted(k for k, f in classes(doc).items()
                     if (f.get("fix") or {}).get("action") == "deleted")
    check(deleted == sorted([(APEX, "dead.corp.test."), (CHILD, "gone.child.corp.test.")]),
          "deleted: %s (%s)" % (deleted, err))
    check(rc == 1, "rogue records are still problems: rc %d" % rc)
    left = {APEX: sorted(x.dig(APEX, "SRV")), CHILD: sorted(x.dig(CHILD, "SRV"))}
    for owner in (APEX, CHILD):
        check(len(left[owner]) == 2 and not any("dead" in v or "gone" in v for v in left[owner]),
              "after --fix at %s: %s" % (owner, left[owner]))
    # The deletes were GSS-TSIG updates: Samba refuses anything else.
    rc, doc, err = audit(h, x)
    check(len(classes(doc)) == 4 and "STALE_DEAD" not in [f["class"] for f in doc["findings"]],
          "after the fix: %s" % classes(doc))
    print("timing: audit of corp.test through LDAP %.2f s" % took, flush=True)
    return recs


def t_directory_errors(h):
    """A principal not in the keytab: the directory is not read and the
    audit says why. Any other account of the domain may read it
    (Authenticated Users can read dnsNode objects by default)."""
    x = samba()
    nsupdate(x, ["update add _vlmcs._tcp.other.corp.test. 600 IN SRV 0 0 1 nowhere.corp.test."])
    rc, doc, err = audit(h, x, "--principal", x.other_principal)
    check(any("not in keytab" in e and "directory not read" in e for e in doc["errors"]),
          "wrong principal: %s" % doc["errors"])
    check(rc == 2, "an unread directory is an error: rc %d" % rc)
    rc, doc, err = audit(h, x, "--keytab", x.other_keytab, "--principal", x.other_principal)
    check("_vlmcs._tcp.other.corp.test." in [z["owner"] for z in doc["zones"]],
          "another account should read the directory: %s %s" % (doc["zones"], doc["errors"]))
    # kmsrelayctl dns directory: the read alone, and its errors.
    rc, out = directory(x)
    check(rc == 0 and "_vlmcs._tcp.other.corp.test." in out and "SASL GSSAPI bind" in out
          and "0 0 1 nowhere.corp.test." in out, "dns directory: %s" % out)
    rc, out = directory(x, "--server-name", "nosuch.corp.test")
    check(rc == 1 and "the KDC does not know ldap/nosuch.corp.test" in out,
          "unknown ldap/ SPN: %s" % out)
    rc, out = directory(x, "--server", "127.0.0.2", "--server-name", "dc1.corp.test")
    check(rc == 1 and "cannot connect to 127.0.0.2:389" in out, "no LDAP server: %s" % out)
    rc, out = directory(x, "--zone", "nozone.test", "--server-name", "dc1.corp.test")
    check(rc == 1 and "zone nozone.test is not in the directory" in out, "unknown zone: %s" % out)


def directory(x, *extra):
    args = {"--zone": "corp.test", "--server": "127.0.0.1", "--keytab": x.keytab,
            "--principal": x.principal, "--timeout": "3s"}
    for k, v in zip(extra[::2], extra[1::2]):
        args[k] = v
    r = subprocess.run([CTL, "dns", "directory"] + [w for kv in args.items() for w in kv],
                       capture_output=True, env=x.env, timeout=60)
    return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")


def t_fix_foreign_node(h):
    """A dead record whose node another account owns (a Windows KMS host's
    computer account, in real life): --fix cannot delete it, says
    "permission denied on the node", and the record stays."""
    x = samba()
    other_env = dict(x.env, KRB5CCNAME="FILE:" + h.path("other.ccache"))
    x.kinit(x.other_principal, x.other_keytab, env=other_env)
    name = "_vlmcs._tcp.foreign.corp.test."
    rc, out = x.nsupdate_g("server 127.0.0.1\nzone corp.test\nupdate add %s 600 IN SRV 0 0 1 "
                           "nowhere.corp.test.\nsend\n" % name, env=other_env)
    check(x.dig(name, "SRV"), "the other account's record is missing: %s" % out)
    rc, doc, err = audit(h, x, "--fix", "--dead-for", "1s", "--probe-every", "1s")
    fix = [f.get("fix") for f in doc["findings"] if f["owner"] == name and f["record"]]
    check(fix and fix[0] and fix[0]["action"] == "failed"
          and "permission denied on the node" in fix[0]["error"],
          "--fix on another account's node: %s" % fix)
    check(rc == 2 and x.dig(name, "SRV"), "the foreign record should stay (rc %d)" % rc)


def t_periodic_audit(h):
    """kmsrelayd's periodic audit of a gss zone reads the directory too."""
    x = samba()
    nsupdate(x, ["update add _vlmcs._tcp.branch.corp.test. 600 IN SRV 0 0 1 nowhere.corp.test."])
    sock = h.path("ctl.sock")
    a = rl.start_stub(h, "kms-a")
    conf = h.path("relay.conf")
    rl.write(conf, rl.conf_text(h, [a], extra=(
        'control: { socket = "%s"; mode = "0600"; };\n'
        'dns: { zones = ( { name = "corp.test"; servers = [ "127.0.0.1:53" ];\n'
        '   gss = { keytab = "%s"; principal = "%s"; }; target = "relay-p.corp.test."; } );\n'
        '   audit_interval = "1s"; timeout = "2s"; };\n' % (sock, x.keytab, x.principal))))
    r = rl.start_relay(h, conf)

    def report():
        code, out, _ = h.run([CTL, "--socket", sock, "--json", "dns"], timeout=30)
        rep = json.loads(out).get("audit") if code == 0 else None
        return [z for z in (rep or {}).get("zones", [])
                if z["owner"] == "_vlmcs._tcp.branch.corp.test."]

    z = rl.wait_for(report, 40, "the daemon's audit to find the branch name", poll=0.5)[0]
    check(z["found_by"] == "ldap", "daemon: %s" % z)
    # kmsrelayctl audit --config takes the zone's gss account from the file.
    r2 = subprocess.run([CTL, "audit", "--json", "--config", conf, "--timeout", "2s"],
                        capture_output=True, env=x.env, timeout=120)
    doc = json.loads(r2.stdout.decode())
    check("_vlmcs._tcp.branch.corp.test." in [z["owner"] for z in doc["zones"]],
          "audit --config with a gss zone: %s %s" % (doc["zones"], r2.stderr.decode()))
    check(h.stop(r.proc) == 0, "kmsrelayd exit status")
    log = r.log()
    check("Sanitizer" not in log and "runtime error" not in log, "sanitizer output")


if __name__ == "__main__":
    try:
        krtest.run_tests("ad_audit", [t_directory_audit_and_fix, t_directory_errors,
                                      t_fix_foreign_node, t_periodic_audit])
    finally:
        FIX_H.cleanup()
