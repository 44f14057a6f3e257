#!/usr/bin/env python3
"""`kmsrelayd -n` runs every check that start-up runs, without side effects
(issue 11, item 12): a configuration that -n passes is not refused at start.
TSIG key files (missing, mode 0644, a secret that is not base64, an unknown
algorithm), a state_dir that cannot be created, and a control socket whose
directory is missing (a warning: the daemon runs without the control API),
a damaged store (refused as the start refuses it), and a descriptor limit
too small for clients.max_connections (a warning, as the start logs it).
-n creates nothing.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import krtest  # noqa: E402
import relaylib as rl  # noqa: E402
from krtest import check  # noqa: E402

SECRET = "t41f/LggFK+03OF7k6cTwWplqIR1UBV5+3jBDdJSwwI="


def key_text(alg="hmac-sha256", secret=SECRET):
    return 'key "kms-proxy-key." {\n\talgorithm %s;\n\tsecret "%s";\n};\n' % (alg, secret)


def conf_with_key(h, key, state=None, control=None):
    extra = ('dns: { zones = ( { name = "example.test."; servers = [ "127.0.0.1:53" ]; '
             'key = "%s"; target = "relay1.example.test."; } ); };\n' % key)
    if control:
        extra += 'control: { socket = "%s"; };\n' % control
    return rl.conf_text(h, [rl.host_entry("a", 1700)], extra=extra, state_dir=state)


def check_n(h, name, text, want_rc, want):
    path = h.path(name + ".conf")
    rl.write(path, text)
    rc, out, err = h.run([krtest.binpath("kmsrelayd"), "-n", "-c", path], timeout=60)
    print("  %-18s rc=%d %s" % (name, rc, (err.strip() or out.strip())[:150]))
    check(rc == want_rc and want in out + err, "%s: rc %d (want %d), %r not in %r"
          % (name, rc, want_rc, want, (out + err)[:500]))
    return out + err


def write_key(h, name, text, mode=0o600):
    p = h.path(name)
    with open(p, "w") as f:
        f.write(text)
    os.chmod(p, mode)
    return p


def t_check_runs_startup_checks(h):
    good = write_key(h, "good.key", key_text())
    check_n(h, "good", conf_with_key(h, good), 0, "configuration OK")
    check_n(h, "missing_key", conf_with_key(h, h.path("nope.key")), 1, "nope.key")
    loose = write_key(h, "loose.key", key_text(), 0o644)
    check_n(h, "key_mode_0644", conf_with_key(h, loose), 1, "chmod 600")
    b64 = write_key(h, "b64.key", key_text(secret="not base64 !!!"))
    check_n(h, "secret_not_base64", conf_with_key(h, b64), 1, "b64.key")
    alg = write_key(h, "alg.key", key_text(alg="hmac-md4"))
    check_n(h, "unknown_algorithm", conf_with_key(h, alg), 1, "alg.key")

    # state_dir below a regular file can never be created.
    with open(h.path("afile"), "w") as f:
        f.write("x")
    check_n(h, "state_dir", conf_with_key(h, good, state=h.path("afile", "state")), 1,
            "state_dir")
    # No side effects: -n created neither the state directory nor anything in it.
    fresh = h.path("fresh-state")
    check_n(h, "fresh_state_dir", conf_with_key(h, good, state=fresh), 0, "configuration OK")
    check(not os.path.exists(fresh), "-n created the state directory")
    # A control socket in a missing directory: a warning, as the start logs it.
    out = check_n(h, "control_dir", conf_with_key(h, good, control=h.path("nodir", "c.sock")),
                  0, "configuration OK")
    check("without the control API" in out, "no warning about the control socket: %r" % out)


def t_check_store_and_fd_budget(h):
    good = write_key(h, "good.key", key_text())
    # An empty data.mdb is damage (the start refuses it): -n must say so.
    state = h.path("damaged-state")
    os.makedirs(state)
    open(os.path.join(state, "data.mdb"), "w").close()
    check_n(h, "empty_store", conf_with_key(h, good, state=state), 1, "data.mdb")
    # No store yet: fine (the start creates one).
    start = h.path("cut-state")
    cfg = h.path("cut.conf")
    rl.write(cfg, conf_with_key(h, good, state=start))
    rc, out, err = h.run([krtest.binpath("kmsrelayd"), "-n", "-c", cfg], timeout=60)
    check(rc == 0, "fresh state: rc %d %s" % (rc, err))
    # A real store (the format 1 fixture of tests/fixtures) is sound...
    fx = os.path.join(os.environ.get("KR_SRC_DIR", os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "..", "..")), "tests", "fixtures", "store-v1", "data.mdb")
    os.makedirs(start)
    with open(fx, "rb") as f:
        data = f.read()
    with open(os.path.join(start, "data.mdb"), "wb") as f:
        f.write(data)
    check_n(h, "sound_store", conf_with_key(h, good, state=start), 0, "configuration OK")
    # ...and cut to 8 KiB, its meta pages promise more than the file holds.
    with open(os.path.join(start, "data.mdb"), "wb") as f:
        f.write(data[:8192])
    check_n(h, "cut_store", conf_with_key(h, good, state=start), 1, "data.mdb")
    # The descriptor budget: a hard limit of 300 has no room for 10000 clients.
    path = h.path("fd.conf")
    rl.write(path, conf_with_key(h, good))
    rc, out, err = h.run(["prlimit", "--nofile=300:300", krtest.binpath("kmsrelayd"), "-n", "-c",
                          path], timeout=60)
    print("  fd_budget          rc=%d %s" % (rc, err.strip()[:150]))
    check(rc == 0 and "configuration OK" in out + err, "fd budget: rc %d %r" % (rc, out + err))
    check("descriptor limit (300" in err and "clients.max_connections = 10000" in err,
          "no warning about the descriptor budget: %r" % err)


if __name__ == "__main__":
    krtest.run_tests("check_startup", [t_check_runs_startup_checks, t_check_store_and_fd_budget])
