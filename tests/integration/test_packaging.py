#!/usr/bin/env python3
"""Packaging and docs (issue 5, acceptance 4): the systemd unit passes
`systemd-analyze verify`, the man pages render with `man -l` (and groff -ww)
without warnings, `cmake --install` installs the pages, the unit, the
sysusers entry and the commented configuration, the configuration lists
every setting and parses, kmsrelayd speaks sd_notify (READY, RELOADING,
STOPPING) to a NOTIFY_SOCKET, and `cpack -G DEB` builds a package.

Tools: systemd-analyze and systemd-sysusers (package systemd), man (man-db)
and groff; dpkg-deb and cpack for the package. A missing tool fails the
test that needs it with a message naming the package, except the .deb build,
which is skipped when dpkg-deb is absent.
"""
import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import krtest  # noqa: E402
import relaylib  # noqa: E402
from krtest import check  # noqa: E402

SRC = os.path.abspath(krtest.SRC)
BUILD = os.path.abspath(os.path.join(krtest.BIN, ".."))
PAGES = ["doc/kmsrelayd.8", "doc/kmsrelayctl.8", "doc/kmsrelay.conf.5"]


def need(tool, package):
    path = shutil.which(tool)
    check(path, "%s not found: install the Debian package %s" % (tool, package))
    return path


def run(args, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 300)
    return subprocess.run(args, **kw)


def install(h):
    """cmake --install of the build under test into a scratch prefix."""
    prefix = h.path("prefix")
    p = run(["cmake", "--install", BUILD, "--prefix", prefix])
    check(p.returncode == 0, "cmake --install: %s%s" % (p.stdout, p.stderr))
    return prefix


def test_man_pages(h):
    need("man", "man-db")
    need("groff", "groff")
    prefix = install(h)
    for page in PAGES:
        src = os.path.join(SRC, page)
        env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
        p = run(["man", "--warnings", "-l", src], env=env)
        check(p.returncode == 0 and p.stderr == "", "man -l %s: rc %d\n%s"
              % (page, p.returncode, p.stderr))
        check(len(p.stdout.splitlines()) > 40, "man -l %s rendered too little" % page)
        g = run(["groff", "-ww", "-z", "-man", src])
        check(g.returncode == 0 and g.stderr == "", "groff -ww %s: %s" % (page, g.stderr))
        sect = page.rsplit(".", 1)[1]
        inst = os.path.join(prefix, "share", "man", "man" + sect, os.path.basename(page))
        check(os.path.exists(inst), "cmake --install did not install %s" % inst)
    # every kmsrelayctl command of the generated help is in kmsrelayctl(8)
    ctl = run([krtest.binpath("kmsrelayctl"), "help"]).stdout
    cmds = re.findall(r"^  (\S+)", ctl.split("Commands:")[1].split("Options:")[0], re.M)
    check(cmds, "no commands in kmsrelayctl help:\n" + ctl)
    text = open(os.path.join(SRC, "doc/kmsrelayctl.8")).read()
    missing = [c for c in cmds if not re.search(r"^\.(B|BI|BR|TP)\s.*\b%s\b" % re.escape(c),
                                                text, re.M)]
    check(not missing, "kmsrelayctl(8) does not document: %s" % ", ".join(missing))
    # every control API route (src/control/dispatch.c) is in kmsrelayctl(8)
    disp = os.path.join(SRC, "src/control/dispatch.c")
    if os.path.exists(disp):
        routes = re.findall(r'\{CTL_([A-Z]+), "(/v1[^"]*)"', open(disp).read())
        env = dict(os.environ, MANWIDTH="250", LC_ALL="C.UTF-8")
        txt = run(["man", "-l", os.path.join(SRC, "doc/kmsrelayctl.8")], env=env).stdout
        txt = re.sub(r".\x08", "", txt)
        undoc = ["%s %s" % (m, p) for m, p in routes
                 if "%s %s" % (m, p.replace("{", "").replace("}", "")) not in txt]
        check(routes and not undoc, "kmsrelayctl(8) does not document: %s" % ", ".join(undoc))
    # every option of kmsrelayd --help is in kmsrelayd(8)
    dhelp = run([krtest.binpath("kmsrelayd"), "--help"]).stdout
    page = open(os.path.join(SRC, "doc/kmsrelayd.8")).read().replace("\\-", "-")
    for opt in set(re.findall(r"--[a-z][a-z-]+", dhelp)):
        check(opt in page, "kmsrelayd(8) does not document %s" % opt)


def test_unit_verifies(h):
    sa = need("systemd-analyze", "systemd")
    prefix = install(h)
    unit = open(os.path.join(SRC, "deploy/kmsrelayd.service")).read()
    for key in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "StateDirectory=kmsrelay",
                "RuntimeDirectory=kmsrelay", "User=kmsrelay", "NoNewPrivileges=yes",
                "ProtectSystem=strict", "PrivateTmp=yes", "ProtectHome=yes",
                "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "CapabilityBoundingSet=\n",
                "SystemCallFilter=@system-service"):
        check(key in unit, "unit lacks %r" % key.strip())
    # The unit names /usr/sbin; verify checks the binaries exist, so point
    # it at the build. Documentation= is checked with man: use the pages
    # just installed.
    d = h.path("units")
    os.makedirs(d)
    path = os.path.join(d, "kmsrelayd.service")
    with open(path, "w") as f:
        f.write(unit.replace("/usr/sbin/kmsrelayd", krtest.binpath("kmsrelayd")))
    env = dict(os.environ, MANPATH=os.path.join(prefix, "share", "man"))
    p = run([sa, "verify", path], env=env, cwd=d)
    check(p.returncode == 0 and p.stderr.strip() == "",
          "systemd-analyze verify: rc %d\n%s%s" % (p.returncode, p.stdout, p.stderr))
    # the installed copy is the same unit with this build's paths
    inst = os.path.join(prefix, "lib", "systemd", "system", "kmsrelayd.service")
    check(os.path.exists(inst), "unit not installed")
    with open(inst) as f:
        check("Type=notify" in f.read(), "installed unit differs")
    # the sysusers entry creates the user and group
    users = os.path.join(prefix, "lib", "sysusers.d", "kmsrelay.conf")
    check(os.path.exists(users), "sysusers entry not installed")
    root = h.path("root")
    os.makedirs(os.path.join(root, "etc"))
    su = need("systemd-sysusers", "systemd")
    p = run([su, "--root=" + root, users])
    check(p.returncode == 0, "systemd-sysusers: %s" % p.stderr)
    with open(os.path.join(root, "etc", "passwd")) as f:
        check(re.search(r"^kmsrelay:x:\d+:\d+:", f.read(), re.M), "no kmsrelay user")


def settings_in_source():
    """(group, name) of every scalar setting (src/conf/settings.c) and the
    lists handled by hand."""
    rows = re.findall(r'\{\s*(NULL|"[a-z_]+"),\s*"([a-z_]+)",\s*CT_',
                      open(os.path.join(SRC, "src/conf/settings.c")).read())
    out = {(g.strip('"') if g != "NULL" else None, n) for g, n in rows}
    out |= {(None, "listen"), (None, "hosts"), ("clients", "allow")}
    dns = os.path.join(SRC, "src/conf/dns.c")
    if os.path.exists(dns):
        text = open(dns).read()
        out |= {("dns", n) for n in ("zones", "resolvers", "self") if '"%s"' % n in text}
        if '"discover"' in text:
            out.add(("backend", "discover"))
    return out


def test_config_file(h):
    conf = os.path.join(SRC, "deploy/kmsrelay.conf")
    text = open(conf).read()
    # each setting appears (commented or not) inside its group
    groups, cur = {}, None
    for ln in text.splitlines():
        m = re.match(r"^([a-z_]+)\s*[:=]\s*\{", ln)
        if m:
            cur = m.group(1)
            continue
        if re.match(r"^\};", ln):
            cur = None
            continue
        m = re.match(r"^\s*#?\s*([a-z_]+)\s*=", ln)
        if m:
            groups.setdefault(cur, set()).add(m.group(1))
    missing = sorted("%s%s" % (g + "." if g else "", n) for g, n in settings_in_source()
                     if n not in groups.get(g, set()))
    check(not missing, "deploy/kmsrelay.conf does not mention: %s" % ", ".join(missing))
    # as shipped (no hosts yet) it parses with a host from the command line
    p = run([krtest.binpath("kmsrelayd"), "-n", "-c", conf, "-H", "t=127.0.0.1:1688"])
    check(p.returncode == 0 and "configuration OK" in p.stdout, "as shipped: %s%s"
          % (p.stdout, p.stderr))
    # with every example uncommented ("#" directly before a setting) it parses too;
    # -n also checks the files it names (issue 11 #12), so the example key file
    # must exist, and a missing one is named
    full = h.path("all.conf")
    uncommented = re.sub(r"(?m)^(\s*)#([^ #\n])", r"\1\2", text)
    with open(full, "w") as f:
        f.write(uncommented)
    p = run([krtest.binpath("kmsrelayd"), "-n", "-c", full])
    check(p.returncode != 0 and "/etc/kmsrelay/dns.key" in p.stderr,
          "uncommented, no key file: %s%s" % (p.stdout, p.stderr))
    key = h.path("dns.key")
    with open(key, "w") as f:
        f.write('key "kmsrelay" {\n\talgorithm hmac-sha256;\n'
                '\tsecret "t41f/LggFK+03OF7k6cTwWplqIR1UBV5+3jBDdJSwwI=";\n};\n')
    os.chmod(key, 0o600)
    # the peers example's TLS material and pre-shared key must exist too
    peer = peer_files(h)
    for etc, path in peer.items():
        uncommented = uncommented.replace(etc, path)
    with open(full, "w") as f:
        f.write(uncommented.replace("/etc/kmsrelay/dns.key", key)
                .replace("/var/lib/kmsrelay", h.path("state")))
    p = run([krtest.binpath("kmsrelayd"), "-n", "-c", full])
    check(p.returncode == 0, "uncommented: %s%s" % (p.stdout, p.stderr))


def peer_files(h):
    """A private CA, relay-a's certificate and key, and a pre-shared key, as
    the commented peers example names them (made with the openssl CLI)."""
    d = h.path("peers")
    os.makedirs(d, exist_ok=True)
    f = {n: os.path.join(d, n) for n in ("ca.pem", "ca.key", "a.pem", "a.key", "a.csr", "psk")}
    for cmd in (["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", f["ca.key"], "-out", f["ca.pem"], "-subj", "/CN=ca",
                 "-days", "2"],
                ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", f["a.key"], "-out", f["a.csr"], "-subj", "/CN=relay-a"],
                ["x509", "-req", "-in", f["a.csr"], "-CA", f["ca.pem"], "-CAkey", f["ca.key"],
                 "-CAcreateserial", "-out", f["a.pem"], "-days", "2"],
                ["rand", "-hex", "-out", f["psk"], "32"]):
        p = run(["openssl"] + cmd)
        check(p.returncode == 0, "openssl %s: %s" % (cmd[0], p.stderr))
    for n in ("a.key", "psk", "ca.key"):
        os.chmod(f[n], 0o600)
    return {"/etc/kmsrelay/peers-ca.pem": f["ca.pem"], "/etc/kmsrelay/relay-a.pem": f["a.pem"],
            "/etc/kmsrelay/relay-a.key": f["a.key"], "/etc/kmsrelay/peers.psk": f["psk"]}


def test_sd_notify(h):
    """READY=1 once listening, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1
    on SIGTERM, sent to $NOTIFY_SOCKET as systemd would receive them."""
    nsock = h.path("notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(nsock)
    s.settimeout(15)
    stubs = relaylib.start_stubs(h, ["kms-a"])
    conf = h.path("relay.conf")
    relaylib.write(conf, relaylib.conf_text(
        h, [stubs["kms-a"]], extra='control: { socket = "%s"; };\n' % h.path("control.sock")))
    env = dict(os.environ, NOTIFY_SOCKET=nsock)
    proc, _ = h.start([krtest.binpath("kmsrelayd"), "-c", conf], "relayd", env=env)

    def expect(word):
        deadline = time.time() + 15
        seen = []
        while time.time() < deadline:
            msg = s.recv(4096).decode()
            seen.append(msg)
            if word in msg.split("\n"):
                return
        raise krtest.Failure("no %s from kmsrelayd, got %r" % (word, seen))
    try:
        expect("READY=1")
        check(re.search(r"event=ready ", relaylib.read(proc.kr_log)), "READY before event=ready")
        proc.send_signal(1)
        expect("RELOADING=1")
        expect("READY=1")
        proc.send_signal(15)
        expect("STOPPING=1")
        check(proc.wait(timeout=15) == 0, "kmsrelayd exit status %s" % proc.returncode)
    finally:
        s.close()


def test_deb(h):
    if not shutil.which("dpkg-deb") or not shutil.which("cpack"):
        print("  (dpkg-deb or cpack missing: .deb not built)")
        return
    out = h.path("deb")
    p = run(["cpack", "-G", "DEB", "-B", out], cwd=BUILD, timeout=600)
    check(p.returncode == 0, "cpack -G DEB: %s%s" % (p.stdout[-3000:], p.stderr[-3000:]))
    debs = glob.glob(os.path.join(out, "*.deb"))
    check(len(debs) == 1, "cpack made %r" % debs)
    files = run(["dpkg-deb", "-c", debs[0]]).stdout
    for f in ("sbin/kmsrelayd", "bin/kmsrelayctl", "man8/kmsrelayd.8", "man8/kmsrelayctl.8",
              "man5/kmsrelay.conf.5", "systemd/system/kmsrelayd.service",
              "sysusers.d/kmsrelay.conf", "kmsrelay/kmsrelay.conf", "windows-runbook.md"):
        check(f in files, ".deb lacks %s:\n%s" % (f, files))
    info = run(["dpkg-deb", "-I", debs[0]]).stdout
    check("Package: kmsrelay" in info and "postinst" in info and "conffiles" in info,
          ".deb control:\n" + info)
    ctl = h.path("ctl")
    run(["dpkg-deb", "-e", debs[0], ctl])
    with open(os.path.join(ctl, "conffiles")) as f:
        check(f.read().strip().endswith("/kmsrelay/kmsrelay.conf"), "conffiles")
    check(os.stat(os.path.join(ctl, "postinst")).st_mode & 0o111, "postinst not executable")
    print("  built %s" % os.path.basename(debs[0]))


if __name__ == "__main__":
    krtest.run_tests("packaging", [test_man_pages, test_unit_verifies, test_config_file,
                                   test_sd_notify, test_deb])
