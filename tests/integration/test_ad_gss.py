#!/usr/bin/env python3
"""GSS-TSIG against real Kerberos DNS servers (issue 12), through
tests/integration/adlib.py: a Samba AD DC (provisioned once per build tree)
and an MIT KDC + BIND 9 with tkey-gssapi-keytab, each in a private network
namespace on loopback.

kmsrelayd with dns.zones[].gss publishes its SRV record and TXT marker
(seen by dig), withdraws them on health loss and on SIGTERM, and leaves a
record at the same name that is not its own alone, on both servers.

Fixture proof: `nsupdate -g` with the relay account's keytab adds a record
that dig then sees, on both servers; Samba refuses another account at the
same name (SERVFAIL, the record stays) and BIND refuses a principal outside
its update-policy (REFUSED).

Interop of kmsrelay's own GSS-TSIG client (`kmsrelayctl dns check|update`):
its update is seen by dig and removed by `nsupdate -g`, and a record added by
`nsupdate -g` is removed by it; its replies from Samba verify in Samba's MAC
form (logged at debug level), from BIND in the RFC form.

Errors, each produced for real and its advice checked: no keytab, a keytab
readable by others, principal not in the keytab, unknown server principal,
KDC unreachable, permission denied on the node (Samba SERVFAIL, BIND
REFUSED), an HMAC-keyed relay against Samba (BADKEY, pointing at gss),
clock skew (BIND BADTIME, our TSIG time skewed by a test-only
option).

The process joins one fixture's network namespace at a time
(adlib.Fixture.enter); each server is started once for the whole file.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import adlib  # noqa: E402
import krtest  # noqa: E402
import relaylib as rl  # noqa: E402
from krtest import check  # noqa: E402

SRV = "_vlmcs._tcp.corp.test."
TIMINGS = {}


def nsupdate_script(lines):
    return "server 127.0.0.1\nzone corp.test\n" + "\n".join(lines) + "\nsend\n"


def fixture_suite(x):
    """nsupdate -g works with the relay's keytab; another account is refused."""
    t0 = time.time()
    x.kinit()
    TIMINGS["kinit"] = time.time() - t0
    t0 = time.time()
    rc, out = x.nsupdate_g(nsupdate_script(
        ["update add %s 600 IN SRV 0 0 1688 kms1.corp.test." % SRV]))
    TIMINGS["nsupdate -g"] = time.time() - t0
    # Samba signs its replies in a non-RFC form: nsupdate prints "tsig
    # verify failure" and exits 2 although the update is applied (dns.md 2.10a).
    check(rc == 0 or "tsig verify failure" in out, "nsupdate -g failed: %s" % out)
    check("0 0 1688 kms1.corp.test." in x.dig(SRV, "SRV"), "record not in the zone")

    other_env = dict(x.env, KRB5CCNAME="FILE:" + x.h.path("other.ccache"))
    x.kinit(x.other_principal, x.other_keytab, env=other_env)
    rc, out = x.nsupdate_g(nsupdate_script(
        ["update delete %s SRV 0 0 1688 kms1.corp.test." % SRV]), env=other_env)
    check(rc != 0, "another account deleted the relay's record: %s" % out)
    check("0 0 1688 kms1.corp.test." in x.dig(SRV, "SRV"),
          "another account's delete removed the record")
    return out


CTL = krtest.binpath("kmsrelayctl")
FIX = {}
FIX_H = krtest.Harness("ad_gss-fixtures")  # outlives the per-test harnesses


def fixture(kind):
    """One fixture per server for the whole file (Samba starts in ~5 s);
    this process joins its network namespace."""
    if kind not in FIX:
        t0 = time.time()
        FIX[kind] = adlib.samba(FIX_H) if kind == "samba" else adlib.mitbind(FIX_H)
        TIMINGS["%s start" % kind] = time.time() - t0
    FIX[kind].enter()
    # kmsrelayd and every tool started from here use the fixture's krb5.conf
    os.environ["KRB5_CONFIG"] = FIX[kind].krb5_conf
    return FIX[kind]


def ctl(x, verb, *extra, keytab=None, principal=None, env=None, server_name=None):
    args = [CTL, "dns", verb, "--zone", "corp.test", "--server", "127.0.0.1", "--keytab",
            keytab or x.keytab, "--principal", principal or x.principal, "--debug"]
    if server_name:
        args += ["--server-name", server_name]
    r = subprocess.run(args + list(extra), capture_output=True, env=env or x.env, timeout=60)
    out = (r.stdout + r.stderr).decode("utf-8", "replace")
    m = re.search(r"security context with \S+ in ([0-9.]+) ms", out)
    if m:
        TIMINGS.setdefault("%s context set-up (ms)" % x.kind, float(m.group(1)))
    m = re.search(r"signed update: ok \(NOERROR, ([0-9.]+) ms", out)
    if m:
        TIMINGS.setdefault("%s signed update (ms)" % x.kind, float(m.group(1)))
    return r.returncode, out


def rr(target):
    return "%s 600 IN SRV 0 0 1688 %s" % (SRV, target)


def interop_suite(x, samba):
    """kmsrelay's signer and verifier against nsupdate -g, both ways."""
    x.kinit()
    rc, out = ctl(x, "check")
    check(rc == 0 and "reply verified" in out, "dns check failed: %s" % out)
    rc, out = ctl(x, "update", "--add", rr("kr1.corp.test."))
    check(rc == 0 and "signed update: ok" in out and "reply verified" in out,
          "our update failed: %s" % out)
    check(("gss_tsig_samba_form" in out) == samba,
          "Samba's MAC form should be accepted and logged at debug level (only for Samba): %s"
          % out)
    check("0 0 1688 kr1.corp.test." in x.dig(SRV, "SRV"), "dig does not see our record")
    # nsupdate -g removes what we added ...
    rc, out = x.nsupdate_g(nsupdate_script(["update delete %s" % rr("kr1.corp.test.")]))
    check("0 0 1688 kr1.corp.test." not in x.dig(SRV, "SRV"),
          "nsupdate -g could not delete our record: %s" % out)
    # ... and we remove what nsupdate -g added.
    x.nsupdate_g(nsupdate_script(["update add %s" % rr("ns1.corp.test.")]))
    check("0 0 1688 ns1.corp.test." in x.dig(SRV, "SRV"), "nsupdate -g add not seen")
    rc, out = ctl(x, "update", "--del", rr("ns1.corp.test."))
    check(rc == 0, "our delete failed: %s" % out)
    check("0 0 1688 ns1.corp.test." not in x.dig(SRV, "SRV"), "our delete not applied")
    rc, out = ctl(x, "check")
    check(rc == 0 and "kr1.corp.test" not in out, "check after the deletes: %s" % out)


def credential_errors(x):
    """Each operator error, produced for real, with its advice."""
    missing = x.h.path("missing.keytab")
    rc, out = ctl(x, "check", keytab=missing)
    check(rc == 1 and "No such file" in out and "exportkeytab" in out, "no keytab: %s" % out)
    loose = x.h.path("loose.keytab")
    shutil.copyfile(x.keytab, loose)
    os.chmod(loose, 0o644)
    rc, out = ctl(x, "check", keytab=loose)
    check(rc == 1 and "chmod 600" in out and "0644" in out, "keytab mode: %s" % out)
    rc, out = ctl(x, "check", keytab=x.other_keytab)
    check(rc == 1 and "is not in keytab" in out and x.other_principal in out,
          "principal not in keytab: %s" % out)
    rc, out = ctl(x, "check", server_name="nosuch.corp.test")
    check(rc == 1 and "DNS/nosuch.corp.test@CORP.TEST is unknown to the KDC" in out
          and "SPN" in out, "unknown server principal: %s" % out)
    bad_conf = x.h.path("krb5-nokdc.conf")
    with open(x.krb5_conf) as f:
        conf = f.read().replace("kdc = 127.0.0.1", "kdc = 127.0.0.1:1")
    with open(bad_conf, "w") as f:
        f.write(conf)
    rc, out = ctl(x, "check", env=dict(x.env, KRB5_CONFIG=bad_conf))
    check(rc == 1 and "no KDC of realm CORP.TEST answered" in out, "KDC unreachable: %s" % out)
    # kmsrelayd -n checks each gss zone's keytab like a TSIG key file.
    for kt, want in ((loose, "chmod 600"), (x.other_keytab, "is not in keytab"),
                     (x.keytab, None)):
        conf = x.h.path("n.conf")
        rl.write(conf, rl.conf_text(x.h, [rl.host_entry("kms-x", 1)],
                                    extra=gss_block(kt, x.principal)))
        r = subprocess.run([krtest.binpath("kmsrelayd"), "-n", "-c", conf], capture_output=True,
                           env=x.env, timeout=60)
        out = (r.stdout + r.stderr).decode("utf-8", "replace")
        if want:
            check(r.returncode != 0 and want in out, "kmsrelayd -n with %s: %s" % (kt, out))
        else:
            check(r.returncode == 0, "kmsrelayd -n with a good keytab: %s" % out)
    for o in (out,):
        check("krbtgt" not in o.lower() or "ticket" in o, "ticket material in output")


TIMERS = ('rise = "500ms"; hold_down = "2s"; min_state = "0s"; reconcile = "2s"; '
          'backoff_min = "500ms"; backoff_max = "4s"; withdraw_wait = "2s"; timeout = "3s"; '
          'rate = 60; flap_limit = 100;')
TARGET = "relay1.corp.test."


def gss_block(keytab, principal):
    return ('dns: { %s zones = ( { name = "corp.test"; servers = [ "127.0.0.1:53" ]; '
            'gss = { keytab = "%s"; principal = "%s"; }; target = "%s"; priority = 0; '
            'weight = 100; ttl = 300; } ); };\n' % (TIMERS, keytab, principal, TARGET))


def ours(x, port):
    return [v for v in x.dig(SRV, "SRV") if v == "0 100 %d %s" % (port, TARGET)]


def markers(x):
    return [v for v in x.dig(SRV, "TXT") if v.startswith('"kmsrelay=1 ')]


def daemon_suite(h, x, host, env):
    """kmsrelayd publishes with Kerberos, withdraws on health loss and on
    SIGTERM, and never touches the foreign record at the same name. The
    foreign record points at a live stub (kms-peer), so the fail-static
    guard sees a healthy alternative and lets the withdrawal go ahead."""
    peer = rl.start_stub(h, "kms-peer")
    foreign = "0 0 %d %s" % (peer.port, host)
    x.nsupdate_g(nsupdate_script(["update add %s 600 IN SRV %s" % (SRV, foreign)]), env=env)
    check(foreign in x.dig(SRV, "SRV"), "the foreign record is missing before the test")
    a = rl.start_stub(h, "kms-a")
    conf = h.path("relay.conf")
    rl.write(conf, rl.conf_text(h, [a], extra=gss_block(x.keytab, x.principal)))
    r = rl.start_relay(h, conf)
    t0 = time.time()
    rl.wait_for(lambda: ours(x, r.port), 15, "our SRV record in %s" % x.kind, poll=0.2)
    TIMINGS.setdefault("%s daemon publish (s)" % x.kind, time.time() - t0)
    rl.wait_for(lambda: markers(x), 5, "our TXT marker", poll=0.2)
    check(foreign in x.dig(SRV, "SRV"), "the foreign record was touched")
    h.stop(a.proc, sig=signal.SIGKILL)
    rl.wait_for(lambda: not ours(x, r.port), 15, "withdrawal after health loss", poll=0.2)
    rl.wait_log(r.proc, r"event=dns_withdrawn zone=corp.test. reason=no_eligible_backend")
    check(not markers(x), "marker left after the withdrawal")
    check(foreign in x.dig(SRV, "SRV"), "the foreign record was deleted with ours")
    a = rl.start_stub(h, "kms-a", port=a.port, tag="kms-a-2")
    rl.wait_for(lambda: ours(x, r.port), 15, "republished", poll=0.2)
    r.proc.send_signal(signal.SIGTERM)
    rl.wait_for(lambda: not ours(x, r.port), 10, "withdrawal after SIGTERM", poll=0.2)
    check(r.proc.wait(timeout=15) == 0, "kmsrelayd exit status")
    log = r.log()
    check("event=dns_withdrawn zone=corp.test. reason=shutdown" in log, "shutdown log")
    check("runtime error" not in log and "Sanitizer" not in log, "sanitizer output")
    check(foreign in x.dig(SRV, "SRV"), "the foreign record was deleted at shutdown")
    check(not markers(x), "marker left after SIGTERM")


def t_samba_daemon(h):
    x = fixture("samba")
    # The record at the name that is not the daemon's (no marker) is made by
    # hand with the same account: on Samba only the node's owner may add.
    # Its target needs an address (the test domain has none for dc1).
    x.nsupdate_g(nsupdate_script(["update add peer.corp.test. 600 IN A 127.0.0.1"]))
    daemon_suite(h, x, "peer.corp.test.", x.env)


def t_samba_hmac(h):
    """An HMAC-keyed relay against the AD zone: a clear error in the log
    that points at GSS-TSIG, nothing published, no crash."""
    x = fixture("samba")
    key = h.path("hmac.key")
    r0 = subprocess.run(["tsig-keygen", "-a", "hmac-sha256", "kmsrelay-key"], capture_output=True)
    with open(key, "wb") as f:
        f.write(r0.stdout)
    os.chmod(key, 0o600)
    a = rl.start_stub(h, "kms-a")
    conf = h.path("relay.conf")
    block = gss_block(x.keytab, x.principal).replace(
        'gss = { keytab = "%s"; principal = "%s"; };' % (x.keytab, x.principal),
        'key = "%s";' % key)
    rl.write(conf, rl.conf_text(h, [a], extra=block))
    r = rl.start_relay(h, conf)
    m = rl.wait_log(r.proc, r"[^\n]*TSIG BADKEY[^\n]*", 15)
    check("accepts only GSS-TSIG" in m.group(0) and "gss = {" in m.group(0),
          "the BADKEY error should point at GSS-TSIG: %s" % m.group(0))
    check(not ours(x, r.port), "published with an HMAC key?")
    check(h.stop(r.proc) == 0, "kmsrelayd exit status")


def t_mitbind_daemon(h):
    x = fixture("mitbind")
    admin_env = dict(x.env, KRB5CCNAME="FILE:" + h.path("admin.ccache"))
    x.kinit(x.admin_principal, x.admin_keytab, env=admin_env)
    daemon_suite(h, x, "ns.corp.test.", admin_env)  # another principal's record


def t_samba_fixture(h):
    out = fixture_suite(fixture("samba"))
    check("SERVFAIL" in out, "Samba should answer SERVFAIL to another account: %s" % out)


def t_samba_interop(h):
    interop_suite(fixture("samba"), samba=True)


def t_samba_errors(h):
    x = fixture("samba")
    credential_errors(x)
    # The relay's record at the name; the other account may not touch it.
    ctl(x, "update", "--add", rr("kr2.corp.test."))
    rc, out = ctl(x, "update", "--del", rr("kr2.corp.test."), keytab=x.other_keytab,
                  principal=x.other_principal)
    check(rc == 1 and "permission denied on the node" in out and x.other_principal in out,
          "Samba SERVFAIL should read as permission denied: %s" % out)
    check("0 0 1688 kr2.corp.test." in x.dig(SRV, "SRV"), "the other account deleted it")


def t_mitbind_fixture(h):
    out = fixture_suite(fixture("mitbind"))
    check("REFUSED" in out, "BIND should refuse a principal outside its policy: %s" % out)


def t_mitbind_interop(h):
    interop_suite(fixture("mitbind"), samba=False)


def t_mitbind_errors(h):
    x = fixture("mitbind")
    credential_errors(x)
    rc, out = ctl(x, "update", "--add", rr("kr3.corp.test."), keytab=x.other_keytab,
                  principal=x.other_principal)
    check(rc == 1 and "REFUSED" in out and "permission denied" in out,
          "a principal outside update-policy: %s" % out)
    rc, out = ctl(x, "update", "--add", rr("kr3.corp.test."), "--clock-offset", "3600")
    check(rc == 1 and "BADTIME" in out and "clock skew" in out, "BADTIME: %s" % out)
    check("0 0 1688 kr3.corp.test." not in x.dig(SRV, "SRV"), "a refused update was applied")


if __name__ == "__main__":
    try:
        krtest.run_tests("ad_gss", [t_samba_fixture, t_samba_interop, t_samba_errors,
                                    t_samba_daemon, t_samba_hmac, t_mitbind_fixture, t_mitbind_interop,
                                    t_mitbind_errors, t_mitbind_daemon])
    finally:
        FIX_H.cleanup()
        print("timings: " + ", ".join("%s %.2f" % kv for kv in TIMINGS.items()), flush=True)
