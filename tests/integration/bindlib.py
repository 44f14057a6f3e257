"""bindlib - a real BIND 9 `named` for kmsrelay's DNS integration tests.

TEST ONLY. Starts the Debian `named` (package bind9; `dig` and `nsupdate` come
from bind9-dnsutils) as a process the test owns, on 127.0.0.1 only, with a
throw-away copy of zones/example.test.zone and the test-only TSIG keys of
zones/keys/.

    import bindlib
    b = bindlib.start(h)                      # h: a krtest.Harness
    b.port, b.zone                            # 127.0.0.1:<port>, "example.test"
    b.key                                     # 0600 copy of kmsrelay's key file
    b.add("_vlmcs._tcp.example.test. 3600 IN SRV 0 0 1688 kms1.example.test.")
    b.dig("_vlmcs._tcp.example.test", "SRV")  # [{"name", "ttl", "type", "data", "prio", ...}]
    b.restart()                               # same port, same zone data
    b.stop()

How it runs:
- Port: named has no port file, so a free port is picked by binding TCP and
  UDP sockets on 127.0.0.1 port 0, closing them and passing the port in
  `listen-on port P { 127.0.0.1; }`. If another process takes the port in
  between (named logs "address in use", exits, or never answers), named is
  stopped and started again on a new port, up to 5 times. Ready means `dig
  @127.0.0.1 -p P SOA <zone>` answered, bounded by 15 s.
- named runs in the foreground with -g (log on stderr -> <harness>/named.log,
  shown on test failure), with -c <harness>/named/named.conf. Its directory,
  pid-file, session-keyfile and managed-keys-directory are in
  <harness>/named/; `controls { };` disables rndc; listen-on 127.0.0.1 only,
  no IPv6, no recursion, notify off. It is stopped by PID (SIGTERM).
- Privileges: the tests may run as root (containers, tests/run). named must
  not run as root there, and `named -u bind` would still start as root. When
  we are root and user "bind" exists, named is started through
  `setpriv --reuid=bind --regid=bind --init-groups`, which execs named as
  "bind" (so the PID we hold is named's). For that, <harness>/named/ is
  chowned to bind and the harness directory (mkdtemp makes it 0700) is made
  0711 so bind can reach named/ without listing anything else. As a normal
  user named simply runs as that user. Our kmsrelay key copies stay owned by
  the test user, mode 0600.
- Keys (all hmac-sha256, TEST ONLY):
    key        kmsrelay-test-key.  may change only SRV and TXT at _vlmcs._tcp.<zone>
    wrong_key  same name, wrong secret -> NOTAUTH + TSIG BADSIG
    other_key  other-host-key., known but granted nothing -> REFUSED
    admin_key  test-admin-key., zonesub ANY: the tests' own key for setup
  Every key is copied into <harness>/ with mode 0600 (kmsrelay refuses group-
  or world-readable key files); named gets its own copies in named/.
- Policies: policy="kmsrelay" (default) grants the kmsrelay key SRV+TXT at
  _vlmcs._tcp.<zone>; policy="refuse" grants it only SRV at
  _nothing._tcp.<zone>, so every kmsrelay update is REFUSED.
- AXFR is allowed to the kmsrelay and admin keys only (TSIG), as the audit's
  --axfr needs.
- restart() reuses the port and the zone as named left it (journal), so a
  test can stop BIND, watch kmsrelay back off, and start it again.
- Lookup failures (the audit's UNKNOWN): start(secondaries=["child.example.test"])
  also serves those zones as secondaries of a primary that does not exist,
  so they never load and named answers SERVFAIL for every name in them.
  start_resolver(h, b) starts a second, recursive named (directory
  <harness>/named-resolver/, log named-resolver.log) that forwards b's zones
  to b: names under a delegation whose servers are dead get SERVFAIL.
"""
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ZONES = os.environ.get("KR_ZONES_DIR") or os.path.join(HERE, "../../zones")
NAMED = shutil.which("named") or "/usr/sbin/named"

KEYS = {  # attribute -> (file in zones/keys, key name)
    "key": ("kmsrelay-test.key", "kmsrelay-test-key."),
    "wrong_key": ("kmsrelay-wrong.key", "kmsrelay-test-key."),
    "other_key": ("other-host.key", "other-host-key."),
    "admin_key": ("test-admin.key", "test-admin-key."),
}


class BindError(Exception):
    pass


def _free_port():
    """A port free for both TCP and UDP on 127.0.0.1 at this moment."""
    for _ in range(50):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise BindError("no free port found")


def read_key(path):
    """(name, algorithm, secret) of a tsig-keygen style key file."""
    with open(path) as f:
        txt = f.read()
    m = re.search(r'key\s+"([^"]+)"\s*\{\s*algorithm\s+([\w-]+)\s*;\s*secret\s+"([^"]+)"', txt)
    if not m:
        raise BindError("%s: not a tsig-keygen key file" % path)
    return m.group(1), m.group(2), m.group(3)


def _unquote_txt(data):
    """The strings of a TXT rdata as dig prints it ("a b" "c"), joined."""
    out, cur, inq, esc = [], "", False, False
    for ch in data:
        if esc:
            cur += ch
            esc = False
        elif ch == "\\":
            esc = True
        elif ch == '"':
            if inq:
                out.append(cur)
                cur = ""
            inq = not inq
        elif inq:
            cur += ch
    return "".join(out)


def parse_rrs(text):
    """Parses `dig +noall +answer` lines into dicts: name (lower case, with
    the final dot), ttl, cls, type, data (the rdata text). SRV records also
    get prio, weight, port and target; TXT records text (strings joined); A,
    AAAA and CNAME records addr / target."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        parts = line.split(None, 4)
        if len(parts) < 5 or not parts[1].isdigit():
            continue
        r = {"name": parts[0].lower(), "ttl": int(parts[1]), "cls": parts[2], "type": parts[3],
             "data": parts[4]}
        if r["type"] == "SRV":
            p = r["data"].split()
            r.update(prio=int(p[0]), weight=int(p[1]), port=int(p[2]), target=p[3].lower())
        elif r["type"] == "TXT":
            r["text"] = _unquote_txt(r["data"])
        elif r["type"] in ("A", "AAAA"):
            r["addr"] = r["data"]
        elif r["type"] == "CNAME":
            r["target"] = r["data"].lower()
        out.append(r)
    return out


def fqdn(name, zone=None):
    """name with a final dot; relative names get the zone appended."""
    if name.endswith("."):
        return name
    if zone and name != zone and not name.endswith("." + zone):
        return "%s.%s." % (name, zone)
    return name + "."


class Bind:
    """One running named. Attributes: port, zone (the first zone), zones,
    dir (named's directory), proc, key / wrong_key / other_key / admin_key
    (0600 key file paths in the harness dir), key_name, key_secret."""

    name = "named"  # directory and log file in the harness

    def __init__(self, h, zones, records, policy, secondaries=()):
        self.h = h
        self.secondaries = list(secondaries)
        self.zones = list(zones)
        self.zone = self.zones[0]
        self.policy = policy
        self.dir = h.path(self.name)
        self.port = None
        self.proc = None
        self._drop = os.geteuid() == 0 and _has_user("bind") and shutil.which("setpriv")
        os.makedirs(self.dir, exist_ok=True)
        for attr, (fname, _) in KEYS.items():
            src = os.path.join(ZONES, "keys", fname)
            for dst in (h.path(fname), os.path.join(self.dir, fname)):
                shutil.copyfile(src, dst)
                os.chmod(dst, 0o600)
            setattr(self, attr, h.path(fname))
        self.key_name, _, self.key_secret = read_key(self.key)
        with open(os.path.join(ZONES, "example.test.zone")) as f:
            template = f.read()
        for i, z in enumerate(self.zones):
            body = template.replace("example.test", z)
            if i == 0 and records:
                body += "; added by bindlib.start(records=...)\n" + "\n".join(records) + "\n"
            with open(os.path.join(self.dir, z + ".zone"), "w") as f:
                f.write(body)

    # ---- lifecycle ---------------------------------------------------------
    def _write_conf(self):
        kname = KEYS["key"][1]
        zones = []
        for z in self.zones:
            if self.policy == "refuse":
                grant = "grant %s name _nothing._tcp.%s. SRV;" % (kname, z)
            else:
                # a zone named _vlmcs._tcp.<domain> (the delegation of
                # deploy/dns/README.md) holds the RRset at its apex
                owner = z if z.lower().startswith("_vlmcs._tcp.") else "_vlmcs._tcp." + z
                grant = "grant %s name %s. SRV TXT;" % (kname, owner)
            # A zone named _vlmcs._tcp.<domain> (delegated, deploy/dns) has
            # host names with '_' in it: relax check-names there only.
            relax = "    check-names ignore;\n" if "_" in z else ""
            zones.append(
                'zone "%s" {\n    type primary;\n    file "%s.zone";\n%s'
                "    update-policy {\n        %s\n        grant test-admin-key. zonesub ANY;\n"
                "    };\n};\n" % (z, z, relax, grant))
        for z in self.secondaries:  # never loads: SERVFAIL (see the module docstring)
            zones.append('zone "%s" {\n    type secondary;\n    primaries { 127.0.0.1 port %d; };\n'
                         '    file "%s.bk";\n};\n' % (z, _free_port(), z))
        includes = "".join('include "%s/%s";\n' % (self.dir, f) for f in
                           ("kmsrelay-test.key", "other-host.key", "test-admin.key"))
        conf = (
            "// TEST ONLY - generated by tests/integration/bindlib.py\n" + includes +
            'options {\n    directory "%s";\n    pid-file "%s/named.pid";\n'
            '    session-keyfile "%s/session.key";\n    managed-keys-directory "%s";\n'
            "    listen-on port %d { 127.0.0.1; };\n    listen-on-v6 { none; };\n"
            "    recursion no;\n    allow-query { 127.0.0.1; };\n"
            "    allow-transfer { key %s; key test-admin-key.; };\n"
            "    notify no;\n    dnssec-validation no;\n};\ncontrols { };\n"
            % (self.dir, self.dir, self.dir, self.dir, self.port, kname)) + "".join(zones)
        with open(os.path.join(self.dir, "named.conf"), "w") as f:
            f.write(conf)

    def _spawn(self):
        self._write_conf()
        if self._drop:
            pw = pwd.getpwnam("bind")
            for root, dirs, files in os.walk(self.dir):
                for n in [root] + [os.path.join(root, x) for x in dirs + files]:
                    os.chown(n, pw.pw_uid, pw.pw_gid)
            mode = stat.S_IMODE(os.stat(self.h.dir).st_mode)
            os.chmod(self.h.dir, mode | 0o711)
            args = ["setpriv", "--reuid=bind", "--regid=bind", "--init-groups", "--",
                    NAMED, "-g", "-c", os.path.join(self.dir, "named.conf")]
        else:
            args = [NAMED, "-g", "-c", os.path.join(self.dir, "named.conf")]
        # Each start appends to the same log so a restart's history is kept.
        log = open(self.h.path(self.name + ".log"), "ab")
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        p.kr_name = self.name
        p.kr_log = self.h.path(self.name + ".log")
        self.h.procs.append(p)
        self.proc = p

    def _ready(self, timeout):
        """Waits until named answers SOA for every zone; False on a port clash."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            if "address in use" in self.log()[-20000:]:
                return False
            if all(self._soa_answers(z) for z in self.zones):
                return True
            time.sleep(0.1)
        return False

    def _soa_answers(self, zone):
        r = subprocess.run(["dig", "@127.0.0.1", "-p", str(self.port), "SOA", zone, "+short",
                            "+norec", "+time=1", "+tries=1"], capture_output=True, timeout=10)
        return r.returncode == 0 and r.stdout.strip() != b""

    def _start(self, fixed_port=None, tries=5):
        for _ in range(1 if fixed_port else tries):
            self.port = fixed_port or _free_port()
            self._spawn()
            if self._ready(15):
                return self
            self.h.stop(self.proc)
        raise BindError("named did not come up on 127.0.0.1:%s: %s" % (self.port, self.log()[-3000:]))

    def stop(self):
        """Stops named by PID (SIGTERM; named writes the zone back)."""
        if self.proc is not None:
            self.h.stop(self.proc)

    def restart(self, wait=True):
        """Starts named again on the same port with the same zone data."""
        self.stop()
        deadline = time.time() + 10
        while True:  # the port may still be held for a moment
            self._spawn()
            if not wait or self._ready(15):
                return self
            self.h.stop(self.proc)
            if time.time() > deadline:
                raise BindError("named did not restart on port %d: %s" % (self.port, self.log()[-3000:]))
            time.sleep(0.5)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            with open(self.h.path(self.name + ".log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    # ---- queries -----------------------------------------------------------
    def dig(self, name, rtype="SRV", key=None, tcp=False, section="answer"):
        """Records of `name`/`rtype` (a list of dicts, see parse_rrs). `key`
        signs the query; section "answer" or "all"."""
        args = ["dig", "@127.0.0.1", "-p", str(self.port), fqdn(name, self.zone), rtype, "+norec",
                "+noall", "+" + section, "+time=2", "+tries=2"]
        if tcp:
            args.append("+tcp")
        if key:
            args += ["-k", key]
        r = subprocess.run(args, capture_output=True, timeout=30)
        if r.returncode != 0:
            raise BindError("dig %s %s failed: %s" % (name, rtype, r.stderr.decode()[-500:]))
        return parse_rrs(r.stdout.decode())

    def srv(self, zone=None):
        """The _vlmcs._tcp SRV RRset of `zone` (default the first zone)."""
        return self.dig("_vlmcs._tcp.%s." % (zone or self.zone), "SRV")

    def txt(self, name=None):
        return self.dig(name or "_vlmcs._tcp.%s." % self.zone, "TXT")

    def soa_serial(self, zone=None):
        rrs = self.dig((zone or self.zone) + ".", "SOA")
        return int(rrs[0]["data"].split()[2]) if rrs else None

    def axfr(self, zone=None, key=None):
        """The zone's records through a TSIG-signed AXFR (admin key by default)."""
        return self.dig((zone or self.zone) + ".", "AXFR", key=key or self.admin_key)

    # ---- updates (test setup) ----------------------------------------------
    def update(self, lines, key=None, zone=None):
        """Sends one nsupdate message over TCP: `lines` are nsupdate commands
        ("update add NAME TTL IN TYPE DATA", "prereq ..."). Returns (rc,
        stdout, stderr); rc 0 means NOERROR."""
        script = "server 127.0.0.1 %d\nzone %s.\n%s\nsend\n" % (
            self.port, zone or self.zone, "\n".join(lines))
        r = subprocess.run(["nsupdate", "-v", "-t", "10", "-k", key or self.admin_key],
                           input=script.encode(), capture_output=True, timeout=60)
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def _must(self, verb, rrs, key, zone):
        rc, out, err = self.update(["update %s %s" % (verb, rr) for rr in rrs], key, zone)
        if rc != 0:
            raise BindError("nsupdate %s %s failed (%d): %s %s" % (verb, rrs, rc, out, err))

    def add(self, *rrs, key=None, zone=None):
        """Adds records ("NAME TTL IN TYPE DATA") in one UPDATE; raises on error."""
        self._must("add", rrs, key, zone)

    def delete(self, *rrs, key=None, zone=None):
        """Deletes exactly these records ("NAME IN TYPE DATA"), or whole RRsets
        ("NAME TYPE"), in one UPDATE; raises on error."""
        self._must("delete", rrs, key, zone)


def _has_user(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


class Resolver(Bind):
    """A recursive named that forwards the zones of `upstream` (a Bind) to it
    and resolves nothing else (no root hints are reachable on loopback)."""
    name = "named-resolver"

    def __init__(self, h, upstream):
        self.upstream = upstream
        Bind.__init__(self, h, upstream.zones, (), "kmsrelay")

    def _write_conf(self):
        fwd = "".join('zone "%s" {\n    type forward;\n    forward only;\n'
                      '    forwarders { 127.0.0.1 port %d; };\n};\n' % (z, self.upstream.port)
                      for z in self.zones)
        conf = (
            "// TEST ONLY - generated by tests/integration/bindlib.py (resolver)\n"
            'options {\n    directory "%s";\n    pid-file "%s/named.pid";\n'
            '    session-keyfile "%s/session.key";\n    managed-keys-directory "%s";\n'
            "    listen-on port %d { 127.0.0.1; };\n    listen-on-v6 { none; };\n"
            "    recursion yes;\n    allow-query { 127.0.0.1; };\n"
            "    allow-recursion { 127.0.0.1; };\n    resolver-query-timeout 5000;\n"
            "    notify no;\n    dnssec-validation no;\n};\ncontrols { };\n"
            % (self.dir, self.dir, self.dir, self.dir, self.port)) + fwd
        with open(os.path.join(self.dir, "named.conf"), "w") as f:
            f.write(conf)

    def _soa_answers(self, zone):
        r = subprocess.run(["dig", "@127.0.0.1", "-p", str(self.port), "SOA", zone, "+short",
                            "+time=1", "+tries=1"], capture_output=True, timeout=10)
        return r.returncode == 0 and r.stdout.strip() != b""


def start_resolver(h, upstream):
    """Starts a recursive named forwarding upstream's zones to it (see the
    module docstring); returns it once it answers (port in .port)."""
    return Resolver(h, upstream)._start()


def start(h, zones=("example.test",), records=(), policy="kmsrelay", secondaries=()):
    """Starts named for harness `h` and waits until it answers. `zones`: zone
    names, each a copy of zones/example.test.zone; `records`: zone-file lines
    appended to the first zone (relative names are fine); `policy`:
    "kmsrelay" or "refuse" (see the module docstring); `secondaries`: zones
    that never load (SERVFAIL). Returns a Bind."""
    if isinstance(zones, str):
        zones = (zones,)
    return Bind(h, zones, records, policy, secondaries)._start()
