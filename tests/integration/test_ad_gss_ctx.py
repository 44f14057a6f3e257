#!/usr/bin/env python3
"""GSS-TSIG security contexts over time (issue 12), against a real MIT KDC +
BIND 9 and a Samba AD DC (tests/integration/adlib.py):

- reuse: kmsrelayd negotiates ONE context (one TKEY exchange) with the
  server and signs every later read, repair and update with it (counted
  from its debug log: event=gss_context per TKEY negotiation,
  event=gss_signed_exchange per signed message);
- BIND restarted (it forgets every TKEY context): the next message gets
  BADKEY, kmsrelayd negotiates once more and the message (and the update
  after it) succeed;
- a short ticket (ticket_lifetime = 20s in the daemon's own krb5.conf):
  kmsrelayd negotiates again before the context expires, with a fresh
  ticket, and no message fails;
- the KDC down when the context is due: failed negotiations back off (1, 2,
  4 s ...) while the old context serves; the KDC back: a new context;
- Samba: one context for many messages (its MAC form); Samba restarted
  answers NOTAUTH/BADKEY and kmsrelayd negotiates once more;
- clock skew, for real under libfaketime: our clock 10 minutes ahead gives
  BIND's BADTIME, read as clock skew with NTP advice (Kerberos itself
  tolerates it: MIT follows the KDC's clock); with kdc_timesync = 0 the
  Kerberos error itself (MIT: the KDC reply's time; Samba, which requires
  pre-authentication: KRB_AP_ERR_SKEW) reads as clock skew beyond
  Kerberos' 5 minutes;
- no key or ticket bytes in the daemon's debug log or in /v1/dns.

Timings printed at the end (context set-up and one signed update against
BIND; test_ad_gss.py prints Samba's) are for the notes, not assertions.
"""
import base64
import json
import os
import re
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
TARGET = "relay1.corp.test."
CTL = krtest.binpath("kmsrelayctl")
FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
TIMINGS = {}
FIX = {}
FIX_H = krtest.Harness("ad_gss_ctx-fixtures")  # outlives the per-test harnesses

TIMERS = ('rise = "500ms"; hold_down = "2s"; min_state = "0s"; reconcile = "1s"; '
          'backoff_min = "500ms"; backoff_max = "4s"; withdraw_wait = "2s"; timeout = "3s"; '
          'rate = 600; flap_limit = 100;')


def fixture(kind="mitbind"):
    """One fixture per server kind for the whole file; this process joins
    its network namespace."""
    if kind not in FIX:
        FIX[kind] = adlib.samba(FIX_H) if kind == "samba" else adlib.mitbind(FIX_H)
    FIX[kind].enter()
    os.environ["KRB5_CONFIG"] = FIX[kind].krb5_conf
    return FIX[kind]


def krb5_conf(x, h, name, extra):
    """The fixture's krb5.conf with `extra` lines in [libdefaults]."""
    path = h.path(name)
    with open(x.krb5_conf) as f:
        text = f.read().replace("[libdefaults]\n", "[libdefaults]\n" + extra + "\n", 1)
    with open(path, "w") as f:
        f.write(text)
    return path


def start(h, x, env=None):
    """kmsrelayd at debug level with one GSS zone on BIND and a control
    socket; returns (relay, stub, socket path) once it has published."""
    a = rl.start_stub(h, "kms-a")
    sock = h.path("control.sock")
    conf = h.path("relay.conf")
    text = rl.conf_text(h, [a], extra=(
        'control: { socket = "%s"; mode = "0600"; };\n'
        'dns: { %s zones = ( { name = "corp.test"; servers = [ "127.0.0.1:53" ]; '
        'gss = { keytab = "%s"; principal = "%s"; }; target = "%s"; priority = 0; '
        'weight = 100; ttl = 300; } ); };\n' % (sock, TIMERS, x.keytab, x.principal, TARGET)))
    text = text.replace("log: { activations = true; };",
                        'log: { activations = true; level = "debug"; };')
    check('level = "debug"' in text, "could not set the log level")
    rl.write(conf, text)
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        r = rl.start_relay(h, conf)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    rl.wait_for(lambda: ours(x, r.port), 15, "our SRV record", poll=0.2)
    return r, a, sock


def ours(x, port):
    return [v for v in x.dig(SRV, "SRV") if v == "0 100 %d %s" % (port, TARGET)]


def contexts(log, start=0):
    return re.findall(r"event=gss_context zone=\S+ [^\n]*", log[start:])


def exchanges(log, start=0):
    return re.findall(r"event=gss_signed_exchange [^\n]*", log[start:])


def admin_update(x, h, lines):
    env = dict(x.env, KRB5CCNAME="FILE:" + h.path("admin.ccache"))
    x.kinit(x.admin_principal, x.admin_keytab, env=env)
    return x.nsupdate_g("server 127.0.0.1\nzone corp.test\n" + "\n".join(lines) + "\nsend\n",
                        env=env)


def key_material(keytab):
    """The keytab's key bytes (klist -K prints them in hex), as hex and
    base64 strings a leak would show."""
    r = subprocess.run(["klist", "-k", "-K", "-t", keytab], capture_output=True)
    out = []
    for hx in re.findall(r"\(0x([0-9a-fA-F]{32,})\)", r.stdout.decode()):
        raw = bytes.fromhex(hx)
        out += [hx.lower(), hx.upper(), base64.b64encode(raw).decode()]
    return out


def no_blobs(text, name):
    """No long base64 or hex run (a ticket, a token, a key, a MAC)."""
    blobs = re.findall(r"[A-Za-z0-9+/]{40,}={0,2}|[0-9a-fA-F]{40,}", text)
    check(not blobs, "binary-looking blobs in the %s: %s" % (name, blobs[:3]))


def t_reuse_and_secrets(h):
    """One TKEY negotiation serves many signed messages; no key or ticket
    bytes in the debug log or in /v1/dns."""
    x = fixture()
    r, a, sock = start(h, x)
    rl.wait_for(lambda: len(exchanges(r.log())) >= 12, 30, "12 signed messages", poll=0.2)
    log = r.log()
    n_ctx, n_msg = len(contexts(log)), len(exchanges(log))
    print("  %d signed messages on %d security context(s)" % (n_msg, n_ctx))
    check(n_ctx == 1, "one TKEY negotiation should serve every message: %s" % contexts(log))
    check("tsig_error=0 verified=1" in exchanges(log)[-1], "last exchange: %s" % exchanges(log)[-1])
    check("event=dns_error" not in log, "errors: %s" % re.findall(r"event=dns_error[^\n]*", log))
    # Secrets: the keytab's keys, in hex or base64, and any long base64 or
    # hex blob (a ticket, a token, a MAC) are in neither the log nor /v1/dns.
    code, api, err = h.run([CTL, "--socket", sock, "--json", "dns"], timeout=30)
    check(code == 0 and json.loads(api)["zones"], "GET /v1/dns: %s %s" % (api, err))
    keys = key_material(x.keytab)
    check(keys, "klist -K showed no key (cannot check for leaks)")
    for name, text in (("log", log), ("/v1/dns", api)):
        for k in keys:
            check(k not in text, "key bytes of the keytab in the %s" % name)
        no_blobs(text, name)
    check(h.stop(r.proc) == 0, "kmsrelayd exit status")


def t_samba_reuse(h):
    """The same against a Samba AD DC: one context, many messages, each
    reply verified (in Samba's MAC form)."""
    x = fixture("samba")
    r, a, sock = start(h, x)
    rl.wait_for(lambda: len(exchanges(r.log())) >= 8, 30, "8 signed messages", poll=0.2)
    log = r.log()
    print("  %d signed messages on %d security context(s)" % (len(exchanges(log)),
                                                            len(contexts(log))))
    check(len(contexts(log)) == 1, "one negotiation with Samba: %s" % contexts(log))
    check(all("verified=1" in e for e in exchanges(log)), "unverified: %s" % exchanges(log))
    check("event=dns_error" not in log, "errors: %s" % re.findall(r"event=dns_error[^\n]*", log))
    check(h.stop(r.proc) == 0, "kmsrelayd exit status")
    timings(x, "Samba")
    # AD requires pre-authentication: with a clock 10 minutes ahead (and no
    # kdc_timesync) the DC itself refuses us with KRB_AP_ERR_SKEW.
    rc, out = skewed(x, h, "+10m", krb5_conf(x, h, "krb5-nosync.conf", "  kdc_timesync = 0"))
    print("  %s" % out.strip().splitlines()[-1][:300])
    check(rc == 1 and "clock skew beyond Kerberos' 5 minutes" in out and "NTP" in out,
          "Kerberos clock skew against the DC: %s" % out)


def t_samba_restart(h):
    """Samba restarted (its KDC and DNS server; it keeps no TKEY context):
    one new negotiation, then the reads go on verified."""
    x = fixture("samba")
    r, a, sock = start(h, x)
    rl.wait_for(lambda: len(exchanges(r.log())) >= 3, 15, "3 signed messages", poll=0.2)
    off = rl.log_size(r.proc)
    t0 = time.time()
    x.restart_server("samba", 60)
    TIMINGS["Samba restart (s)"] = time.time() - t0
    rl.wait_for(lambda: contexts(r.log(), off), 30, "a new context after the restart",
                poll=0.2)
    rl.wait_for(lambda: "tsig_error=0 verified=1" in (exchanges(r.log(), off) or [""])[-1], 15,
                "a verified message on the new context", poll=0.2)
    log = r.log()[off:]
    new = contexts(log)
    print("  after the restart: %s" % "\n  ".join(c[:160] for c in new))
    check(len(new) == 1 and "reason=stale" in new[0], "one renegotiation: %s" % new)
    told = [e for e in exchanges(log) if "verified=0" in e]
    print("  Samba's answer to the forgotten context: %s" % told[:1])
    check(told and "rcode=NOTAUTH" in told[0], "Samba's answer: %s" % told)
    check(ours(x, r.port), "our record left")
    check(h.stop(r.proc) == 0, "kmsrelayd exit status")


def t_bind_restart(h):
    """BIND restarted forgets our context: one new negotiation (BADKEY seen,
    reason=stale), then the read and the repair update succeed."""
    x = fixture()
    r, a, sock = start(h, x)
    rl.wait_for(lambda: len(exchanges(r.log())) >= 3, 15, "3 signed messages", poll=0.2)
    check(len(contexts(r.log())) == 1, "contexts before: %s" % contexts(r.log()))
    off = rl.log_size(r.proc)  # the next reconcile may come during the restart
    t0 = time.time()
    x.restart_named()
    TIMINGS["BIND restart (s)"] = time.time() - t0
    # Our SRV record deleted behind our back: the repair is an update that
    # must go through on the new context.
    rc, out = admin_update(x, h, ["update delete %s SRV 0 100 %d %s" % (SRV, r.port, TARGET)])
    check(rc == 0, "nsupdate -g as admin: %s" % out)
    m = rl.wait_log(r.proc, r"event=dns_published zone=corp.test.[^\n]*", 20, start=off)
    rl.wait_for(lambda: ours(x, r.port), 10, "the repaired record", poll=0.2)
    log = r.log()[off:]
    new = contexts(log)
    print("  after the restart: %s" % new)
    check(len(new) == 1 and "reason=stale" in new[0],
          "exactly one renegotiation after BADKEY: %s" % new)
    ex = exchanges(log)
    stale = [e for e in ex if "tsig_error=17" in e or "tsig_error=16" in e]
    check(stale, "the server should have said BADKEY/BADSIG once: %s" % ex[:4])
    check(all("tsig_error=0 verified=1" in e for e in ex[ex.index(stale[0]) + 1:]),
          "every message after the renegotiation verified: %s" % ex)
    check("event=dns_repair" in log and m, "no repair")
    errs = [e for e in re.findall(r"event=dns_error[^\n]*", log) if "status=network" not in e]
    check(not errs, "errors other than the restart's own network gap: %s" % errs)
    check(h.stop(r.proc) == 0, "kmsrelayd exit status")


def t_short_ticket(h):
    """Tickets of 20 s: the daemon negotiates again before the context
    ends (reason=expiring, a fresh ticket) and no message fails."""
    x = fixture()
    conf = krb5_conf(x, h, "krb5-short.conf", "  ticket_lifetime = 20s")
    r, a, sock = start(h, x, env={"KRB5_CONFIG": conf})
    rl.wait_for(lambda: len([c for c in contexts(r.log()) if "reason=expiring" in c]) >= 2, 60,
                "two renegotiations before expiry", poll=0.5)
    log = r.log()
    ctx = contexts(log)
    print("  %s" % "\n  ".join(ctx))
    lives = [int(v) for v in re.findall(r"lifetime_s=(\d+)", "\n".join(ctx))]
    check(lives and max(lives) <= 20, "the ticket lifetime should be 20 s at most: %s" % lives)
    bad = [e for e in exchanges(log) if "tsig_error=0 verified=1" not in e]
    check(not bad, "a message failed around the renegotiation: %s" % bad)
    check("event=dns_error" not in log and "gss_context_failed" not in log,
          "errors: %s" % re.findall(r"event=(?:dns_error|gss_context_failed)[^\n]*", log))
    check(ours(x, r.port), "our record is gone")
    check(h.stop(r.proc) == 0, "kmsrelayd exit status")


def kdc_pids(x):
    with open("/proc/%d/task/%d/children" % (x.nspid, x.nspid)) as f:
        kids = [int(p) for p in f.read().split()]
    out = []
    for p in kids:
        try:
            with open("/proc/%d/comm" % p) as f:
                if f.read().strip() == "krb5kdc":
                    out.append(p)
        except OSError:
            pass
    return out


def t_kdc_down(h):
    """The KDC down when the context is due: each failed negotiation backs
    off (1 s, 2 s, 4 s ...) and the old context serves while it lasts; with
    the KDC back, a new context and the record never left."""
    x = fixture()
    conf = krb5_conf(x, h, "krb5-short.conf", "  ticket_lifetime = 20s")
    r, a, sock = start(h, x, env={"KRB5_CONFIG": conf})
    pids = kdc_pids(x)  # the fixture's KDC (its namespace started it)
    check(len(pids) == 1, "the fixture's krb5kdc: %s" % pids)
    os.kill(pids[0], signal.SIGTERM)
    rl.wait_for(lambda: not os.path.exists("/proc/%d" % pids[0]), 10, "krb5kdc to stop")
    m = rl.wait_log(r.proc, r"event=gss_context_failed [^\n]*retry_s=4", 40)
    fails = re.findall(r"[^\n]*event=gss_context_failed [^\n]*", r.log())
    print("  %s" % "\n  ".join(f[:200] for f in fails))
    retries = [int(v) for v in re.findall(r"retry_s=(\d+)", "\n".join(fails))]
    check(retries[:3] == [1, 2, 4], "backoff 1, 2, 4 s: %s" % retries)
    check("no KDC of realm CORP.TEST answered" in fails[0], "why: %s" % fails[0])
    # The KDC back (kept by the fixtures' harness for the later tests).
    off = rl.log_size(r.proc)
    FIX_H.start(["krb5kdc", "-n", "-P", os.path.join(x.dir, "kdc2.pid")], "krb5kdc-2",
                env=dict(x.env, KRB5_KDC_PROFILE=os.path.join(x.dir, "kdc.conf")))
    rl.wait_log(r.proc, r"event=gss_context zone=\S+ [^\n]*reason=expiring", 30, start=off)
    check(ours(x, r.port), "the record left while the KDC was down")
    rl.wait_for(lambda: "tsig_error=0 verified=1" in (exchanges(r.log(), off) or [""])[-1], 10,
                "a verified message on the new context", poll=0.2)
    check(h.stop(r.proc) == 0, "kmsrelayd exit status")


def skewed(x, h, offset, conf=None, *extra):
    """kmsrelayctl dns (check|update) with this process' clock `offset`
    ahead, through libfaketime."""
    env = dict(x.env, FAKETIME=offset, LD_PRELOAD=FAKETIME, FAKETIME_DONT_FAKE_MONOTONIC="1",
               ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0")
    if conf:
        env["KRB5_CONFIG"] = conf
    args = [CTL, "dns"] + list(extra or ["check"]) + [
        "--zone", "corp.test", "--server", "127.0.0.1", "--keytab", x.keytab,
        "--principal", x.principal, "--debug"]
    r = subprocess.run(args, capture_output=True, env=env, timeout=60)
    out = (r.stdout + r.stderr).decode("utf-8", "replace")
    no_blobs(out, "kmsrelayctl --debug output")
    return r.returncode, out


def t_clock_skew(h):
    x = fixture()
    check(os.path.exists(FAKETIME), "libfaketime is missing (tests/run installs faketime)")
    # Kerberos follows the KDC's clock (kdc_timesync, on by default), so the
    # ticket and the context work; BIND then checks the TSIG time itself.
    rc, out = skewed(x, h, "+10m", None, "update", "--add",
                     "%s 600 IN SRV 0 0 1688 skew.corp.test." % SRV)
    print("  %s" % out.strip().splitlines()[-1][:300])
    check(rc == 1 and "BADTIME" in out and "clock skew" in out and "NTP" in out,
          "BADTIME under a 10 min skew: %s" % out)
    check("0 0 1688 skew.corp.test." not in x.dig(SRV, "SRV"), "a skewed update was applied")
    # Without time sync the KDC's answer itself is refused: clock skew
    # beyond Kerberos' 5 minutes.
    conf = krb5_conf(x, h, "krb5-nosync.conf", "  kdc_timesync = 0")
    rc, out = skewed(x, h, "+10m", conf)
    print("  %s" % out.strip().splitlines()[-1][:300])
    check(rc == 1 and "clock skew beyond Kerberos' 5 minutes" in out and "NTP" in out,
          "Kerberos clock skew: %s" % out)
    # A skew inside the fudge and Kerberos' limit is fine.
    rc, out = skewed(x, h, "+90s", conf)
    check(rc == 0, "a 90 s skew should work: %s" % out)


def timings(x, label):
    """Context set-up and one signed update, as `kmsrelayctl dns update`
    measures them (printed for the notes, not asserted)."""
    for i in range(3):
        r = subprocess.run([CTL, "dns", "update", "--add",
                            "%s 600 IN SRV 0 0 1688 t%d.corp.test." % (SRV, i), "--zone",
                            "corp.test", "--server", "127.0.0.1", "--keytab", x.keytab,
                            "--principal", x.principal], capture_output=True, env=x.env,
                           timeout=60)
        out = (r.stdout + r.stderr).decode()
        check(r.returncode == 0, "update: %s" % out)
        for what, pat in (("context set-up", r"security context with \S+ in ([0-9.]+) ms"),
                          ("signed update", r"signed update: ok \(NOERROR, ([0-9.]+) ms")):
            m = re.search(pat, out)
            if m:
                TIMINGS.setdefault("%s %s (ms)" % (label, what), []).append(float(m.group(1)))


def t_timings(h):
    timings(fixture(), "BIND")


if __name__ == "__main__":
    try:
        krtest.run_tests("ad_gss_ctx", [t_reuse_and_secrets, t_bind_restart, t_clock_skew,
                                        t_timings, t_short_ticket, t_kdc_down, t_samba_reuse,
                                        t_samba_restart])
    finally:
        FIX_H.cleanup()
        print("timings: " + ", ".join("%s %s" % kv for kv in TIMINGS.items()), flush=True)
