#!/usr/bin/env python3
"""GSS-TSIG against real Kerberos DNS servers (issue 12), through
tests/integration/adlib.py: a Samba AD DC (provisioned once per build tree)
and an MIT KDC + BIND 9 with tkey-gssapi-keytab, each in a private network
namespace on loopback.

Fixture proof: `nsupdate -g` with the relay account's keytab adds a record
that dig then sees, on both servers; Samba refuses another account at the
same name (SERVFAIL, the record stays) and BIND refuses a principal outside
its update-policy (REFUSED).

Interop of kmsrelay's own GSS-TSIG client (`kmsrelayctl dns gss-update`):
its update is seen by dig and removed by `nsupdate -g`, and a record added by
`nsupdate -g` is removed by it; its replies from Samba verify in Samba's MAC
form (logged at debug level), from BIND in the RFC form.

One test process per server: the process joins the fixture's network
namespace (adlib.Fixture.enter), so all tests of a server run in one
function group sharing one fixture.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import adlib  # noqa: E402
import krtest  # noqa: E402
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


def t_samba_fixture(h):
    t0 = time.time()
    x = adlib.samba(h)
    TIMINGS["samba start"] = time.time() - t0
    out = fixture_suite(x)
    check("SERVFAIL" in out, "Samba should answer SERVFAIL to another account: %s" % out)


def t_mitbind_fixture(h):
    t0 = time.time()
    x = adlib.mitbind(h)
    TIMINGS["kdc+bind start"] = time.time() - t0
    out = fixture_suite(x)
    check("REFUSED" in out, "BIND should refuse a principal outside its policy: %s" % out)


if __name__ == "__main__":
    try:
        krtest.run_tests("ad_gss", [t_samba_fixture, t_mitbind_fixture])
    finally:
        print("timings: " + ", ".join("%s %.2f s" % kv for kv in TIMINGS.items()), flush=True)
