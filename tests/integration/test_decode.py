"""kmsrelayctl decode: the command itself, on every shared vector.

Acceptance (foundation issue, point 2): `kmsrelayctl decode --json`
reproduces every field under `expect` for every vector file, with the same
field names; input errors exit 2 with a message naming the file.
"""
import json
import os

import krtest
from krtest import check


def ctl():
    return krtest.binpath("kmsrelayctl")


def t_every_vector_reproduces_expect(h):
    names = sorted(f for f in os.listdir(krtest.VECTORS) if f.endswith(".json"))
    check(len(names) >= 9, "expected the shared vectors, found %d" % len(names))
    for name in names:
        path = os.path.join(krtest.VECTORS, name)
        with open(path) as f:
            expect = json.load(f)["expect"]
        rc, out, err = h.run([ctl(), "decode", "--json", path], check_rc=0)
        got = json.loads(out)
        for kind in ("requests", "responses"):
            want_list, got_list = expect[kind], got[kind]
            check(len(want_list) == len(got_list),
                  "%s: %d %s expected, decoded %d" % (name, len(want_list), kind, len(got_list)))
            for i, (w, g) in enumerate(zip(want_list, got_list)):
                for k, v in w.items():
                    check(g.get(k) == v, "%s: %s[%d].%s = %r, want %r" % (name, kind, i, k, g.get(k), v))
        check(got.get("hresult") == expect["hresult"],
              "%s: hresult %r, want %r" % (name, got.get("hresult"), expect["hresult"]))


def t_text_output_and_hex_lines(h):
    with open(os.path.join(krtest.VECTORS, "v5_win8pro_ndr32.json")) as f:
        v = json.load(f)
    p = h.path("conv.txt")
    with open(p, "w") as f:
        f.write("# V5 request and response, no bind\n")
        f.write(v["client_to_server"][1]["hex"] + "\n")
        f.write(v["server_to_client"][1]["hex"].upper() + "   # response\n")
    rc, out, err = h.run([ctl(), "decode", p], check_rc=0)
    check("KMS 5.0 request" in out and "6d1a0f3e-2b9c-4e7d-8f10-aa55cc33ee77" in out,
          "text output lacks the decoded request: " + out)
    check("guessed" in out, "without a bind the NDR syntax is guessed and says so: " + out)


def t_bad_input_is_a_clear_error(h):
    p = h.path("bad.txt")
    with open(p, "w") as f:
        f.write("05000b13\nnot-hex\n")
    rc, out, err = h.run([ctl(), "decode", p])
    check(rc == 2 and "bad.txt:2" in err, "want exit 2 naming bad.txt:2, got %d %r" % (rc, err))
    rc, out, err = h.run([ctl(), "decode", h.path("missing.json")])
    check(rc == 2 and "missing.json" in err, "missing file: %d %r" % (rc, err))
    rc, out, err = h.run([ctl(), "decode"])
    check(rc == 2 and "usage" in err, "no file: %d %r" % (rc, err))
    rc, out, err = h.run([ctl(), "frobnicate"])
    check(rc == 2 and "unknown command" in err, "unknown command: %d %r" % (rc, err))
    # A PDU that decodes badly is reported in place, with exit 1.
    with open(p, "w") as f:
        f.write("05000003100000002c00000002000000\n")
    rc, out, err = h.run([ctl(), "decode", "--json", p])
    d = json.loads(out)
    check(rc == 1 and "error" in d["pdus"][0], "truncated PDU: %d %r" % (rc, out))


if __name__ == "__main__":
    krtest.run_tests("decode", [t_every_vector_reproduces_expect, t_text_output_and_hex_lines,
                                t_bad_input_is_a_clear_error])
