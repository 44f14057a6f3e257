#!/usr/bin/env python3
"""kmsrelayd acceptance 5: drain and retire through SIGHUP reload.

- drain: new CMIDs never go to the host, pinned ones still do;
- retired: its pinned clients move on next contact, and the pin really moved
  (setting the host back to ready does not bring them back);
- no connection is dropped: a raw RPC session bound before the reloads still
  gets answers after each of them, and loadgen runs (open loop, so they
  surely span the reload) straddle each SIGHUP with 0 errors.

Threshold assist is off: the routed host is identified by the answer's ePID.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import krtest  # noqa: E402
import relaylib as rl  # noqa: E402
from krtest import check, recv_pdu  # noqa: E402

NAMES = ["kms-a", "kms-b", "kms-c"]
POP = 900  # population P1, pinned while every host is ready


def session_bind(port):
    """A raw client connection with a completed NDR32 bind."""
    v = rl.vector("bind_ndr32_only")
    s = rl.raw_session(port)
    s.sendall(rl.pdus(v, "bind")[0])
    ack = recv_pdu(s)
    check(len(ack) >= 16 and ack[2] == 12, "no bind_ack on the raw session: %r" % ack[:32])
    return s


def session_request(h, s, call_id, stubs, what):
    """Sends the vector's request with call_id on an open session; checks the
    answer is a real host's response for that call."""
    v = rl.vector("bind_ndr32_only")
    req = rl.set_call_id(rl.pdus(v, "request")[0], call_id)
    try:
        s.sendall(req)
        resp = recv_pdu(s)
    except OSError as e:
        raise krtest.Failure("%s: the held connection failed: %s" % (what, e))
    check(len(resp) >= 16, "%s: the held connection was closed by kmsrelayd" % what)
    ptype, _, _, cid = rl.hdr(resp)
    check(ptype == 2 and cid == call_id, "%s: want a response for call %d, got ptype %d call %d"
          % (what, call_id, ptype, cid))
    d = rl.decode(h, [rl.pdus(v, "bind")[0], req], [resp], name="held-%d" % call_id)
    check(d["hresult"] == "0x00000000" and len(d["responses"]) == 1, "%s: %s" % (what, d))
    got = d["responses"][0]
    check(got["cmid_echo"] == v["expect"]["requests"][0]["cmid"] and
          got["epid"] in rl.epid_map(stubs), "%s: bad answer %s" % (what, got))


def rerun(h, r, emap, seed, n, name):
    rc, doc, out = rl.loadgen(h, r.target(), n, k=n, c=8, seed=seed, name=name)
    rl.check_all_ok(rc, doc, out, n, name)
    return rl.last_host(doc, emap)


def reload_during_load(h, r, text, admin_pattern, seed, name):
    """Starts an open-loop loadgen of P1 (4 contacts per client at 600/s,
    ~6 s), sends SIGHUP with `text` once it is well under way, and returns
    its result after it finished (all ok required)."""
    lg = rl.loadgen_bg(h, r.target(), 4 * POP, k=POP, c=8, seed=seed, name=name,
                       extra=["--rate", "600"])
    start = rl.log_size(r.proc)
    rl.wait_for(lambda: rl.read(r.proc.kr_log)[start:].count("event=activation ") >= POP
                or lg.poll() is not None, 30, "%s under way" % name)
    check(lg.poll() is None, "%s finished before the reload" % name)
    rl.reload(r, text, admin_pattern)
    check(lg.poll() is None, "%s finished before the reload took effect; the test needs "
          "it to span the reload" % name)
    rc, doc, out = rl.loadgen_wait(h, lg)
    rl.check_all_ok(rc, doc, out, 4 * POP, name + " across the reload")
    return doc


def t_drain_then_retire(h):
    st = rl.start_stubs(h, NAMES)
    emap = rl.epid_map(st)
    conf = h.path("relay.conf")

    def text(a_state=None):
        return rl.conf_text(h, [rl.host_entry(s.name, s.port, state=a_state if s.name == "kms-a"
                                              else None) for s in st.values()],
                            assist=False, extra="")

    rl.write(conf, text())
    r = rl.start_relay(h, conf, wait_up=NAMES)
    pin1 = rerun(h, r, emap, 51, POP, "P1")
    on_a = {c for c, hn in pin1.items() if hn == "kms-a"}
    check(len(on_a) >= 0.2 * POP, "only %d of %d clients pinned to kms-a" % (len(on_a), POP))

    held = session_bind(r.port)

    # --- drain, while P1 renews ---
    doc = reload_during_load(h, r, text("drain"),
                             r"event=host_admin host=kms-a from=ready to=drain", 51, "L1")
    hosts = rl.client_hosts(doc, emap)
    moved = [(c, pin1[c], hs) for c, hs in hosts.items() if hs != [pin1[c]]]
    check(not moved, "drain: %d pinned clients were not served by their pinned host, e.g. %s"
          % (len(moved), moved[:3]))
    session_request(h, held, 0x101, st, "after the drain reload")

    now = rerun(h, r, emap, 51, POP, "P1-drained")
    check(now == pin1, "drain: pinned clients moved: %s"
          % [(c, pin1[c], now[c]) for c in pin1 if now[c] != pin1[c]][:3])
    new = rerun(h, r, emap, 52, POP, "P2-new")
    sp = rl.spread(new)
    check(sp.get("kms-a", 0) == 0, "drain: %d new clients went to the draining kms-a"
          % sp.get("kms-a", 0))
    check(sp.get("kms-b", 0) > 0.3 * POP and sp.get("kms-c", 0) > 0.3 * POP,
          "new clients should spread over kms-b and kms-c: %s" % sp)

    # --- retire, while P1 renews ---
    doc = reload_during_load(h, r, text("retired"),
                             r"event=host_admin host=kms-a from=drain to=retired", 51, "L2")
    hosts = rl.client_hosts(doc, emap)
    bad = [(c, hs) for c, hs in hosts.items()
           if (c in on_a and (hs[-1] == "kms-a" or hs[0] != "kms-a" or len(hs) != 2)) or
           (c not in on_a and hs != [pin1[c]])]
    check(not bad, "retire: %d clients not moved off kms-a exactly once (or others disturbed),"
          " e.g. %s" % (len(bad), bad[:3]))
    moved_to = {c: hosts[c][-1] for c in on_a}
    session_request(h, held, 0x102, st, "after the retire reload")

    now = rerun(h, r, emap, 51, POP, "P1-retired")
    diff = [(c, now[c]) for c in pin1 if now[c] != moved_to.get(c, pin1[c])]
    check(not diff, "after retire: clients not where they moved: %s" % diff[:3])

    # kms-a ready again: the moved pins stay moved; new clients reach kms-a.
    rl.reload(r, text("ready"), r"event=host_admin host=kms-a from=retired to=ready")
    session_request(h, held, 0x103, st, "after the third reload")
    now = rerun(h, r, emap, 51, POP, "P1-after")
    back = [c for c in on_a if now[c] == "kms-a"]
    check(not back, "%d retired clients went back to kms-a: their pins had not moved"
          % len(back))
    sp = rl.spread(rerun(h, r, emap, 53, POP, "P3-new"))
    check(sp.get("kms-a", 0) >= 0.2 * POP, "kms-a ready again but got %s of %d new clients"
          % (sp.get("kms-a", 0), POP))
    held.close()
    check(h.stop(r.proc) == 0, "SIGTERM exit status: " + r.log()[-2000:])


if __name__ == "__main__":
    krtest.run_tests("relay_admin", [t_drain_then_retire])
