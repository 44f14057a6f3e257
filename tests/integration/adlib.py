"""adlib - Kerberos DNS servers for kmsrelay's GSS-TSIG tests (issue 12).

TEST ONLY. Two fixtures, each in a private network + mount + UTS + PID
namespace (`unshare -n -m -u -p --fork --mount-proc`, loopback only), so
they may use the standard ports (53, 88, 389) and never see the machine's
/etc/krb5.conf or /etc/samba/smb.conf:

    import adlib
    dc = adlib.samba(h)          # a Samba AD DC for CORP.TEST (zone corp.test)
    kb = adlib.mitbind(h)        # an MIT KDC + BIND 9 (zone corp.test, realm CORP.TEST)
    x.enter()                    # this test process joins x's network namespace:
                                 # every child (dig, nsupdate, kmsrelayd) then sees
                                 # the servers on 127.0.0.1
    x.env                        # KRB5_CONFIG / KRB5CCNAME for children
    x.keytab, x.principal        # the relay's account (mode 0600 copy)
    x.other_keytab, x.other_principal   # a second account
    x.nsupdate_g(script)         # `nsupdate -g` with the relay's ticket

Samba: provisioning takes about 10 s, so it happens ONCE per build tree:
the provisioned directory (accounts and keytabs included) is kept as a tar
in <build>/ad-cache/ (guarded by a lock) and every later test unpacks it
into its own namespace's tmpfs and starts `samba` on it (about 3-5 s). The
namespace bind-mounts an empty file over /etc/samba/smb.conf and tmpfs over
/run/samba, /var/lib/samba, /var/cache/samba and /var/log/samba, so Samba
writes nothing on the machine.

Cleanup: the namespace's first process is the child of `unshare
--kill-child`; stopping that unshare (by PID, through the harness) kills
the whole PID namespace.
"""
import ctypes
import fcntl
import os
import shutil
import subprocess
import time

import krtest

REALM = "CORP.TEST"
ZONE = "corp.test"
PASS = "Kms-Relay-Test-1"  # TEST ONLY
CACHE = os.path.join(krtest.BIN, "..", "ad-cache")
CLONE_NEWNET = 0x40000000

KRB5_CONF = """[libdefaults]
  default_realm = {realm}
  dns_lookup_kdc = false
  dns_lookup_realm = false
  rdns = false
  dns_canonicalize_hostname = false
  udp_preference_limit = 1
[realms]
  {realm} = {{
    kdc = 127.0.0.1
    admin_server = 127.0.0.1
  }}
[domain_realm]
  .{zone} = {realm}
  {zone} = {realm}
"""


def _ns_child(unshare_pid, seconds=10):
    """PID (outside view) of the namespace's first process."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with open("/proc/%d/task/%d/children" % (unshare_pid, unshare_pid)) as f:
                kids = f.read().split()
            if kids:
                return int(kids[0])
        except OSError:
            pass
        time.sleep(0.02)
    raise krtest.Failure("unshare started no namespace process")


class Fixture:
    def __init__(self, h, kind):
        self.h = h
        self.kind = kind
        self.dir = h.path(kind)
        os.makedirs(self.dir, exist_ok=True)
        self.proc = None
        self.nspid = None
        self.krb5_conf = os.path.join(self.dir, "krb5.conf")
        with open(self.krb5_conf, "w") as f:
            f.write(KRB5_CONF.format(realm=REALM, zone=ZONE))
        self.ccache = os.path.join(self.dir, "ccache")
        self.env = dict(os.environ, KRB5_CONFIG=self.krb5_conf,
                        KRB5CCNAME="FILE:" + self.ccache, KRB5_TRACE="/dev/null")
        self.env.pop("KRB5_TRACE")

    def start_ns(self, script, name):
        path = os.path.join(self.dir, name + ".sh")
        with open(path, "w") as f:
            f.write(script)
        self.proc, _ = self.h.start(["unshare", "-n", "-m", "-u", "-p", "--fork",
                                     "--mount-proc", "--kill-child", "bash", path],
                                    name, env=self.env)
        self.nspid = _ns_child(self.proc.pid)

    def enter(self):
        """Moves this (single-threaded) test process into the fixture's
        network namespace. One fixture per test process."""
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open("/proc/%d/ns/net" % self.nspid, os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise krtest.Failure("setns: %s" % os.strerror(ctypes.get_errno()))
        finally:
            os.close(fd)

    def ns_path(self, path):
        """A file inside the namespace's mount view."""
        return "/proc/%d/root%s" % (self.nspid, path)

    def wait_dns(self, name, seconds=30):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise krtest.Failure("%s exited: %s" % (self.kind, self.h.tail(self.proc)))
            r = subprocess.run(["dig", "+tcp", "+short", "+time=1", "+tries=1", "@127.0.0.1",
                                name, "SOA"], capture_output=True, env=self.env)
            if r.returncode == 0 and r.stdout.strip():
                return
            time.sleep(0.2)
        raise krtest.Failure("%s: no DNS answer within %d s: %s"
                             % (self.kind, seconds, self.h.tail(self.proc)))

    def kinit(self, principal=None, keytab=None, seconds=20, env=None):
        """kinit -k with a bounded retry (the KDC may start after DNS)."""
        deadline = time.time() + seconds
        while True:
            r = subprocess.run(["kinit", "-k", "-t", keytab or self.keytab,
                                principal or self.principal],
                               capture_output=True, env=env or self.env)
            if r.returncode == 0:
                return
            if time.time() > deadline:
                raise krtest.Failure("kinit %s: %s" % (principal or self.principal,
                                                       r.stderr.decode()))
            time.sleep(0.3)

    def nsupdate_g(self, script, env=None):
        """Runs `nsupdate -g` (GSS-TSIG) with the ticket in env's ccache;
        returns (rc, stdout+stderr)."""
        r = subprocess.run(["nsupdate", "-g"], input=script.encode(), capture_output=True,
                           env=env or self.env, timeout=60)
        return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")

    def dig(self, name, rtype):
        r = subprocess.run(["dig", "+tcp", "+noall", "+answer", "@127.0.0.1", name, rtype],
                           capture_output=True, env=self.env, timeout=30)
        return [l.split(None, 4)[4] for l in r.stdout.decode().splitlines()
                if len(l.split(None, 4)) == 5]

    def copy_keytab(self, src, name):
        dst = os.path.join(self.h.dir, name)
        shutil.copyfile(src, dst)
        os.chmod(dst, 0o600)
        return dst


# ---- Samba AD DC --------------------------------------------------------------

_SAMBA_PREP = r"""
set -e
ip link set lo up
hostname dc1
for d in /run/samba /var/lib/samba /var/cache/samba /var/log/samba; do
  mkdir -p $d; mount -t tmpfs tmpfs $d
done
: > {dir}/empty.conf
[ -e /etc/samba/smb.conf ] && mount --bind {dir}/empty.conf /etc/samba/smb.conf
D=/var/lib/samba/dc
"""

_SAMBA_PROVISION = _SAMBA_PREP + r"""
mkdir -p $D/run $D/ncalrpc $D/winbindd $D/ntp_signd $D/log
samba-tool domain provision --targetdir=$D --realm={realm} --domain=CORP \
  --server-role=dc --dns-backend=SAMBA_INTERNAL --host-name=dc1 --host-ip=127.0.0.1 \
  --adminpass='{pw}' --option="interfaces=127.0.0.1" --option="bind interfaces only=yes" \
  --option="pid directory=$D/run" --option="ncalrpc dir=$D/ncalrpc" \
  --option="winbindd socket directory=$D/winbindd" \
  --option="ntp signd socket directory=$D/ntp_signd" \
  --option="log file=$D/log/samba.log" --option="dns update command=/bin/true" >/dev/null
S="-s $D/etc/smb.conf"
# A DC's ldap/ SPN comes from samba_spnupdate (the dnsupdate service, off
# here); the audit's LDAP SASL GSSAPI bind needs it (a Windows DC has it).
samba-tool spn add ldap/dc1.{zone} 'DC1$' $S >/dev/null
for u in kmsrelay other; do
  samba-tool user add $u '{pw}' $S >/dev/null
  samba-tool user setexpiry $u --noexpiry $S >/dev/null
  samba-tool domain exportkeytab $D/$u.keytab --principal=$u@{realm} $S >/dev/null
done
tar -C /var/lib/samba -cf {tar}.tmp dc
mv {tar}.tmp {tar}
"""

_SAMBA_RUN = _SAMBA_PREP + r"""
tar -C /var/lib/samba -xf {tar}
chmod 0750 $D/ntp_signd
# no TLS key generation at start (the tests bind with SASL GSSAPI), no file serving
sed -i 's/^\[global\]$/[global]\n\ttls enabled = no\n\tserver services = -s3fs -spoolss -ntp_signd -kcc -drepl -dnsupdate/' $D/etc/smb.conf
cp $D/kmsrelay.keytab $D/other.keytab {dir}/
exec samba -F --debug-stdout -d 1 -s $D/etc/smb.conf
"""


def _samba_cache(h):
    """The provisioned domain as a tar, made once per build tree."""
    os.makedirs(CACHE, exist_ok=True)
    # the name changes with what provisioning does (-2: the ldap/ SPN)
    tar = os.path.abspath(os.path.join(CACHE, "samba-dc-2.tar"))
    with open(os.path.join(CACHE, "samba.lock"), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        if not os.path.exists(tar):
            d = h.path("samba-provision")
            os.makedirs(d, exist_ok=True)
            script = os.path.join(d, "provision.sh")
            with open(script, "w") as f:
                f.write(_SAMBA_PROVISION.format(dir=d, realm=REALM, pw=PASS, tar=tar, zone=ZONE))
            t0 = time.time()
            r = subprocess.run(["unshare", "-n", "-m", "-u", "-p", "--fork", "--mount-proc",
                                "--kill-child", "bash", script], capture_output=True, timeout=300)
            if r.returncode != 0 or not os.path.exists(tar):
                raise krtest.Failure("samba provision failed: %s"
                                     % (r.stdout + r.stderr).decode()[-3000:])
            print("adlib: provisioned the Samba domain in %.1f s" % (time.time() - t0),
                  flush=True)
    return tar


def samba(h):
    """Starts a Samba AD DC for CORP.TEST on 127.0.0.1 in its own namespace;
    returns the fixture once DNS answers."""
    tar = _samba_cache(h)
    x = Fixture(h, "samba")
    x.start_ns(_SAMBA_RUN.format(dir=x.dir, tar=tar), "samba")
    x.server = "dc1.corp.test"
    x.principal = "kmsrelay@" + REALM
    x.other_principal = "other@" + REALM
    x.enter()
    x.wait_dns(ZONE)
    x.keytab = x.copy_keytab(os.path.join(x.dir, "kmsrelay.keytab"), "kmsrelay.keytab")
    x.other_keytab = x.copy_keytab(os.path.join(x.dir, "other.keytab"), "other.keytab")
    return x


# ---- MIT KDC + BIND -----------------------------------------------------------

_KDC_CONF = """[kdcdefaults]
  kdc_listen = 127.0.0.1
  kdc_tcp_listen = 127.0.0.1
[realms]
  {realm} = {{
    database_name = {dir}/principal
    key_stash_file = {dir}/stash
    acl_file = {dir}/kadm5.acl
    max_life = 10h 0m 0s
    supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
  }}
[logging]
  kdc = FILE:{dir}/kdc.log
"""

_NAMED_CONF = """options {{
  directory "{dir}";
  pid-file "{dir}/named.pid";
  session-keyfile "{dir}/session.key";
  managed-keys-directory "{dir}";
  listen-on port 53 {{ 127.0.0.1; }};
  listen-on-v6 {{ none; }};
  recursion no;
  notify no;
  dnssec-validation no;
  tkey-gssapi-keytab "{dir}/dns.keytab";
}};
controls {{ }};
zone "{zone}" {{
  type primary;
  file "{dir}/{zone}.zone";
  update-policy {{
    grant "kmsrelay/relay.{zone}@{realm}" name _vlmcs._tcp.{zone}. SRV TXT;
    grant "admin/relay.{zone}@{realm}" subdomain {zone}. ANY;
  }};
}};
"""

_ZONE = """$TTL 300
@ IN SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 300
@ IN NS ns.{zone}.
ns IN A 127.0.0.1
kms1 IN A 127.0.0.1
"""

_MIT_RUN = r"""
set -e
ip link set lo up
hostname ns
export KRB5_KDC_PROFILE={dir}/kdc.conf
kdb5_util create -s -r {realm} -P '{pw}' >/dev/null
for p in DNS/ns.{zone} kmsrelay/relay.{zone} other/relay.{zone} admin/relay.{zone}; do
  kadmin.local -q "addprinc -randkey $p" >/dev/null
done
kadmin.local -q "ktadd -k {dir}/dns.keytab DNS/ns.{zone}" >/dev/null
kadmin.local -q "ktadd -k {dir}/kmsrelay.keytab kmsrelay/relay.{zone}" >/dev/null
kadmin.local -q "ktadd -k {dir}/other.keytab other/relay.{zone}" >/dev/null
kadmin.local -q "ktadd -k {dir}/admin.keytab admin/relay.{zone}" >/dev/null
krb5kdc -n -P {dir}/kdc.pid &
exec named -g -c {dir}/named.conf
"""


def mitbind(h):
    """Starts an MIT KDC and BIND 9 (tkey-gssapi-keytab) for CORP.TEST in
    their own namespace; returns the fixture once DNS answers."""
    x = Fixture(h, "mitbind")
    d = x.dir
    os.chmod(h.dir, 0o711)
    with open(os.path.join(d, "kdc.conf"), "w") as f:
        f.write(_KDC_CONF.format(realm=REALM, dir=d))
    with open(os.path.join(d, "kadm5.acl"), "w") as f:
        f.write("")
    with open(os.path.join(d, "named.conf"), "w") as f:
        f.write(_NAMED_CONF.format(realm=REALM, dir=d, zone=ZONE))
    with open(os.path.join(d, ZONE + ".zone"), "w") as f:
        f.write(_ZONE.format(zone=ZONE))
    x.start_ns(_MIT_RUN.format(dir=d, realm=REALM, zone=ZONE, pw=PASS), "mitbind")
    x.server = "ns.corp.test"
    x.principal = "kmsrelay/relay.%s@%s" % (ZONE, REALM)
    x.other_principal = "other/relay.%s@%s" % (ZONE, REALM)
    x.admin_principal = "admin/relay.%s@%s" % (ZONE, REALM)
    x.enter()
    x.wait_dns(ZONE)
    x.keytab = x.copy_keytab(os.path.join(d, "kmsrelay.keytab"), "kmsrelay.keytab")
    x.other_keytab = x.copy_keytab(os.path.join(d, "other.keytab"), "other.keytab")
    x.admin_keytab = x.copy_keytab(os.path.join(d, "admin.keytab"), "admin.keytab")
    return x
