#!/usr/bin/env python3
"""Fault injection on the backend side of kmsrelayd (issue 6).

Every scenario runs kms-loadgen through kmsrelayd while one backend
misbehaves, and asserts from both sides that no valid activation was lost
(the loadgen saw every activation succeed AND kmsrelayd logged exactly that
many successful activation lines) and that the fault was reported in a clear,
specific log line. Each scenario also proves that the fault really happened
(requests were in flight on the host when it was killed or stopped, the fake
host really received requests and answered them badly), so it cannot pass
because the bad host was simply never used.

  sigkill      a host is SIGKILLed while requests are in flight on it
  sigstop      a host hangs (SIGSTOP) mid-run, then comes back (SIGCONT)
  resets       hosts that reset (RST) or close connections on a request,
               and one that resets every connection at accept
  garbage      a host that binds correctly then answers every request with a
               different kind of garbage (random bytes, a fault, a wrong call
               id, bad NDR, an undecodable KMS message, a huge frag_length, a
               bind_ack, a genuine answer for another CMID); and a host that
               answers garbage from the first byte
  slow         a host slower than the attempt deadline
  all_die      every host dies: activations fail fast with a clear RPC fault,
               none hangs; one host returns: everything succeeds again

Threshold assist is off, so an answer's ePID names the host that produced it.
"""
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl  # noqa: E402
from faultlib import check, krtest, rl  # noqa: E402

NAMES = ["kms-a", "kms-b", "kms-c"]
FAULT_UNAVAILABLE = "0x000006ba"  # rpc_s_server_unavailable


def served_by(doc, emap):
    """host name -> number of answers that carried its ePID."""
    out = {}
    for c in doc["clients"]:
        for e in c["epids"]:
            n = emap.get(e, "?" + e)
            out[n] = out.get(n, 0) + 1
    return out


def down_line(log, host, since, reason_rx):
    """The host's first logged DOWN since `since`; its reason must match."""
    downs = log.events("host_state", since, host=host, to="DOWN")
    check(downs, "no event=host_state host=%s ... to=DOWN logged" % host)
    d = downs[0]
    check(re.search(reason_rx, d.get("reason", "")),
          "%s went DOWN with an unclear reason: %s" % (host, fl.print_line(d)))
    return d


def t_sigkill_mid_request(h):
    st = rl.start_stubs(h, NAMES, extra={"kms-b": ["--delay-ms", "250"]})
    emap = rl.epid_map(st)
    r = fl.start_relay(h, list(st.values()), debug=True, assist=False, wait_up=NAMES,
                       groups={"backend": {"pool_size": 8}})
    log = fl.RelayLog(r.proc)
    m0 = log.mark()
    n = 900
    lg = rl.loadgen_bg(h, r.target(), n, c=24, seed=11)
    log.wait("activation", 60, "30 activations answered by kms-b", since=m0, count=30,
             host="kms-b", proc=r.proc)
    check(lg.poll() is None, "the loadgen finished before the kill")
    mk = log.mark()
    h.stop(st["kms-b"].proc, signal.SIGKILL)
    rc, doc, out = rl.loadgen_wait(h, lg)
    fl.check_lost_none(rc, doc, out, n, log, m0, "%d activations, kms-b killed" % n)

    # The kill really hit requests in flight: attempts on kms-b that had
    # waited on it for 100 ms or more (so were sent before the kill, not
    # refused at connect after it) failed, and those clients were answered
    # by another host. (An in-flight attempt usually ends as status=connect:
    # kmsrelayd re-sends a request once on a fresh connection when a reused
    # one dies before any answer byte, and that connect is refused.)
    closed = [a for a in log.events("attempt_failed", mk, host="kms-b")
              if int(a["latency_us"]) >= 100000]
    check(closed, "no attempt that was in flight on kms-b at the kill failed: nothing was "
          "in flight")
    retried = [a for a in log.events("activation", mk) if int(a["retries"]) > 0]
    check(len(retried) >= len(closed) and all(a["host"] != "kms-b" for a in retried),
          "%d in-flight attempts died but only %d activations after the kill were retried "
          "elsewhere" % (len(closed), len(retried)))
    d = down_line(log, "kms-b", mk, r"request failed: (closed|connect)|connect")
    stt = fl.ctl(h, "status")["activations"]
    check(stt["ok"] == n and stt["failed"] == 0 and stt["retries"] >= len(closed),
          "kmsrelayctl status: %s; want ok %d, failed 0, retries >= %d" % (stt, n, len(closed)))
    check(fl.host_status(h, "kms-b")["health"] == "down", "kmsrelayctl hosts: kms-b not down")
    sb = served_by(doc, emap)
    check(all(k in emap.values() for k in sb), "answers with unknown ePIDs: %s" % sb)
    print("  kms-b killed with %d attempts in flight; %d activations retried elsewhere; "
          "served %s; %s" % (len(closed), len(retried), sb, fl.print_line(d)))
    fl.check_alive(h, r)
    fl.stop_relay_clean(h, r)


def t_sigstop_hang(h):
    st = rl.start_stubs(h, NAMES)
    emap = rl.epid_map(st)
    att_ms = 600
    r = fl.start_relay(h, list(st.values()), debug=True, assist=False, wait_up=NAMES,
                       groups={"backend": {"attempt_timeout": "%dms" % att_ms}})
    log = fl.RelayLog(r.proc)
    m0 = log.mark()
    n = 900
    lg = rl.loadgen_bg(h, r.target(), n, c=16, seed=12, extra=["--rate", "300"])
    log.wait("activation", 60, "30 activations answered by kms-b", since=m0, count=30,
             host="kms-b", proc=r.proc)
    check(lg.poll() is None, "the loadgen finished before the SIGSTOP")
    mk = log.mark()
    t_stop = time.time()
    os.kill(st["kms-b"].proc.pid, signal.SIGSTOP)
    try:
        d = log.wait("host_state", 10, "kms-b DOWN after SIGSTOP", since=mk, host="kms-b",
                     to="DOWN", proc=r.proc)[0]
        took = fl.ts_of(d) - t_stop
        rc, doc, out = rl.loadgen_wait(h, lg)
        fl.check_lost_none(rc, doc, out, n, log, m0, "%d activations, kms-b hung" % n)
        # a hung host accepts connections (the kernel does) but answers
        # nothing: requests time out, new connections time out in the bind
        check(re.search(r"request failed: (timeout|connect)|no bind_ack", d.get("reason", "")),
              "kms-b DOWN with an unclear reason: " + fl.print_line(d))
        timeouts = [a for a in log.events("attempt_failed", mk, host="kms-b")
                    if a["status"] in ("timeout", "connect") and int(a["latency_us"]) >= 400000]
        check(timeouts, "no attempt on kms-b waited for the hung host and timed out: nothing "
              "was sent to it")
        slow = [a for a in log.events("activation", mk)
                if int(a["latency_us"]) > (att_ms + 1500) * 1000]
        check(not slow, "%d activations took longer than the attempt timeout + 1.5 s, e.g. %s"
              % (len(slow), fl.print_line(slow[0]) if slow else ""))
        print("  kms-b stopped: DOWN after %.2f s (%s); %d attempts timed out and were "
              "retried; max latency %.0f ms" % (took, d["reason"], len(timeouts),
                                                doc["summary"]["latency_ms"]["max"]))
    finally:
        mc = log.mark()  # before SIGCONT: kms-b is UP again within milliseconds
        os.kill(st["kms-b"].proc.pid, signal.SIGCONT)
    log.wait("host_state", 10, "kms-b UP after SIGCONT", since=mc, host="kms-b", to="UP",
             proc=r.proc)
    rc, doc, out = rl.loadgen(h, r.target(), 300, c=8, seed=13, name="after")
    rl.check_all_ok(rc, doc, out, 300, "new clients after SIGCONT")
    sb = served_by(doc, emap)
    check(sb.get("kms-b", 0) >= 40, "kms-b is back UP but got %s of 300 new clients"
          % sb.get("kms-b", 0))
    fl.stop_relay_clean(h, r)


def t_resets(h):
    st = rl.start_stubs(h, ["kms-a", "kms-c"])
    rst = fl.start_fake(h, "kms-rst", "rst-request")
    fin = fl.start_fake(h, "kms-fin", "close-request")
    acc = fl.start_fake(h, "kms-acc", "rst-accept")
    hosts = [st["kms-a"], st["kms-c"], rst, fin, acc]
    r = fl.start_relay(h, hosts, debug=True, assist=False)
    log = fl.RelayLog(r.proc)
    for hn in ("kms-a", "kms-c", "kms-rst", "kms-fin"):
        rl.wait_host_state(r, hn, "UP")
    m0 = log.mark()
    n = 600
    rc, doc, out = rl.loadgen(h, r.target(), n, c=8, seed=14)
    fl.check_lost_none(rc, doc, out, n, log, m0, "%d activations with resetting hosts" % n)
    emap = rl.epid_map(st)
    sb = served_by(doc, emap)
    check(set(sb) <= {"kms-a", "kms-c"}, "answers from hosts other than kms-a/kms-c: %s" % sb)
    for f, status in ((rst, "closed"), (fin, "closed")):
        got = len(f.events("request"))
        check(got > 0, "%s never received a request: the fault was not exercised" % f.name)
        failed = log.events("attempt_failed", m0, host=f.name, status=status)
        check(failed, "no attempt on %s failed with status=%s" % (f.name, status))
        d = down_line(log, f.name, 0, r"request failed: closed")
        print("  %s: %d requests reset/closed, %d attempts failed; %s"
              % (f.name, got, len(failed), fl.print_line(d)))
    check(acc.events("rst"), "kms-acc never reset a connection")
    d = down_line(log, "kms-acc", 0, r"closed|reset|connect|bind")
    check(not log.events("host_state", 0, host="kms-acc", to="UP"),
          "kms-acc, which resets every connection, was marked UP")
    print("  kms-acc (reset at accept) never UP: %s" % fl.print_line(d))
    fl.check_alive(h, r)
    fl.stop_relay_clean(h, r)


def t_garbage(h):
    st = rl.start_stubs(h, ["kms-a", "kms-c"])
    g1 = fl.start_fake(h, "kms-garb", "garbage-request")
    g2 = fl.start_fake(h, "kms-noise", "garbage")
    r = fl.start_relay(h, [st["kms-a"], st["kms-c"], g1, g2], debug=True, assist=False)
    log = fl.RelayLog(r.proc)
    for hn in ("kms-a", "kms-c", "kms-garb"):
        rl.wait_host_state(r, hn, "UP")
    emap = rl.epid_map(st)
    m0 = log.mark()
    total, kinds = 0, set()
    for rnd in range(6):  # bounded: until every kind of garbage was sent
        n = 200
        rc, doc, out = rl.loadgen(h, r.target(), n, c=8, seed=20 + rnd, name="lg%d" % rnd)
        rl.check_all_ok(rc, doc, out, n, "round %d with garbage hosts" % rnd)
        sb = served_by(doc, emap)
        check(set(sb) <= {"kms-a", "kms-c"}, "a client got an answer not from kms-a/kms-c: %s "
              "(garbage passed on?)" % sb)
        total += n
        kinds = {e["kind"] for e in g1.events("request")}
        if kinds >= set(fl.GARBAGE_KINDS):
            break
    check(kinds >= set(fl.GARBAGE_KINDS), "kms-garb only sent %s" % sorted(kinds))
    acts = log.events("activation", m0)
    res = fl.activations_by_result(acts)
    check(res.get("ok", 0) == total == len(acts) and all(a["host"] in ("kms-a", "kms-c")
                                                         for a in acts),
          "kmsrelayd logged %s for %d activations" % (res, total))
    bad = log.events("attempt_failed", m0, host="kms-garb", status="garbage")
    n_req = len(g1.events("request"))
    check(fl.host_status(h, "kms-garb")["errors"] >= len(bad) and
          fl.host_status(h, "kms-noise")["health"] == "down",
          "kmsrelayctl hosts does not show the garbage hosts' errors / state")
    check(len(bad) >= n_req - 2,
          "kms-garb answered %d requests with garbage but only %d attempts failed as garbage"
          % (n_req, len(bad)))
    d = down_line(log, "kms-garb", 0, r"request failed: (garbage|bad KMS response)")
    mx = fl.metrics(r)
    check(fl.metric(mx, "kmsrelay_host_errors_total", host="kms-garb") >= len(bad) and
          fl.metric(mx, "kmsrelay_host_requests_total", host="kms-garb") >= n_req,
          "/metrics: kms-garb errors %s requests %s; %d garbage answers"
          % (fl.metric(mx, "kmsrelay_host_errors_total", host="kms-garb"),
             fl.metric(mx, "kmsrelay_host_requests_total", host="kms-garb"), n_req))
    print("  kms-garb: %d garbage answers of %d kinds, all refused; %s"
          % (n_req, len(kinds), fl.print_line(d)))
    check(g2.events("garbage"), "kms-noise never got to answer garbage")
    d = down_line(log, "kms-noise", 0, r"bad answer to bind|bind")
    check(not log.events("host_state", 0, host="kms-noise", to="UP"), "kms-noise marked UP")
    print("  kms-noise (garbage from the first byte) never UP: %s" % fl.print_line(d))
    fl.check_alive(h, r)
    fl.stop_relay_clean(h, r)


def t_slower_than_deadline(h):
    att_ms, delay_ms = 400, 1500
    st = rl.start_stubs(h, NAMES, extra={"kms-b": ["--delay-ms", str(delay_ms)]})
    emap = rl.epid_map(st)
    r = fl.start_relay(h, list(st.values()), debug=True, assist=False, wait_up=NAMES,
                       groups={"backend": {"attempt_timeout": "%dms" % att_ms,
                                           "connect_timeout": "300ms"}})
    log = fl.RelayLog(r.proc)
    m0 = log.mark()
    n = 400
    rc, doc, out = rl.loadgen(h, r.target(), n, c=16, seed=15)
    acts = fl.check_lost_none(rc, doc, out, n, log, m0, "%d activations, kms-b slow" % n)
    sb = served_by(doc, emap)
    check("kms-b" not in sb, "kms-b's late answers reached %d clients" % sb.get("kms-b", 0))
    timeouts = log.events("attempt_failed", m0, host="kms-b", status="timeout")
    got = rl.stub_requests(st["kms-b"], settle=1.2)
    check(timeouts and got, "kms-b got %d requests, %d attempts timed out: the slow host was "
          "not exercised" % (len(got), len(timeouts)))
    retried = [a for a in acts if int(a["retries"]) > 0]
    check(len(retried) >= len(timeouts), "%d timeouts but only %d activations retried"
          % (len(timeouts), len(retried)))
    worst = max(int(a["latency_us"]) for a in acts) / 1000.0
    check(worst < att_ms + 1500, "an activation took %.0f ms (attempt timeout %d ms)"
          % (worst, att_ms))
    d = down_line(log, "kms-b", 0, r"request failed: timeout")
    mx = fl.metrics(r)
    check(fl.metric(mx, "kmsrelay_host_errors_total", host="kms-b") >= len(timeouts) and
          fl.metric(mx, "kmsrelay_retries_total") >= len(timeouts),
          "/metrics: kms-b errors %s, retries %s; %d timeouts were logged"
          % (fl.metric(mx, "kmsrelay_host_errors_total", host="kms-b"),
             fl.metric(mx, "kmsrelay_retries_total"), len(timeouts)))
    print("  kms-b (%d ms late): %d requests, %d attempt timeouts, all retried; worst "
          "latency %.0f ms; %s" % (delay_ms, len(got), len(timeouts), worst, fl.print_line(d)))
    fl.stop_relay_clean(h, r)


def t_all_die_then_one_returns(h):
    names = ["kms-a", "kms-b"]
    st = rl.start_stubs(h, names)
    emap = rl.epid_map(st)
    r = fl.start_relay(h, list(st.values()), assist=False, wait_up=names)
    log = fl.RelayLog(r.proc)
    rc, doc, out = rl.loadgen(h, r.target(), 200, k=200, c=8, seed=16, name="before")
    rl.check_all_ok(rc, doc, out, 200, "before the outage")
    before = rl.last_host(doc, emap)

    mk = log.mark()
    for n in names:
        h.stop(st[n].proc, signal.SIGKILL)
    for n in names:
        log.wait("host_state", 10, n + " DOWN", since=mk, host=n, to="DOWN", proc=r.proc)
    m1 = log.mark()
    n_out = 60
    t0 = time.time()
    rc, doc, out = rl.loadgen(h, r.target(), n_out, k=200, c=8, seed=16, name="outage",
                              extra=["--timeout-ms", "5000"])
    took = time.time() - t0
    check(doc is not None and rc == 1, "outage run: rc %d, %s" % (rc, out[-1000:]))
    s = doc["summary"]
    kinds = {k: v for k, v in s["errors_by_kind"].items() if v}
    check(s["ok"] == 0 and s["errors"] == n_out and kinds == {"fault": n_out} and
          s["faults"] == {FAULT_UNAVAILABLE: n_out},
          "during the outage the loadgen saw ok %d, errors %d %s faults %s; want %d x fault %s "
          "(no timeout, no hang)" % (s["ok"], s["errors"], kinds, s["faults"], n_out,
                                     FAULT_UNAVAILABLE))
    acts = log.events("activation", m1)
    mx = fl.metrics(r)
    check(fl.metric(mx, "kmsrelay_host_up") == 0, "/metrics shows a host up during the outage")
    stt = fl.ctl(h, "status")
    check(stt["hosts"]["health"]["down"] == 2 and stt["activations"]["failed"] == n_out and
          stt["activations"]["ok"] == 200,
          "kmsrelayctl status during the outage: hosts %s, activations %s; want 2 down, %d "
          "failed, 200 ok" % (stt["hosts"], stt["activations"], n_out))
    check(len(acts) == n_out and all(a.get("fault") == FAULT_UNAVAILABLE for a in acts),
          "kmsrelayd logged %s for the %d failed activations"
          % (fl.activations_by_result(acts), n_out))
    check(took < 10, "%d failing activations took %.1f s at concurrency 8: too slow to fail"
          % (n_out, took))
    print("  outage: %d/%d activations failed with fault %s in %.2f s (%.0f ms each at most)"
          % (n_out, n_out, FAULT_UNAVAILABLE, took, max(int(a["latency_us"]) for a in acts)
             / 1000.0))

    # kms-b returns on its old port: every client, old and new, succeeds.
    mb = log.mark()
    st["kms-b"] = rl.start_stub(h, "kms-b", port=st["kms-b"].port, tag="kms-b-again")
    log.wait("host_state", 10, "kms-b UP again", since=mb, host="kms-b", to="UP", proc=r.proc)
    m2 = log.mark()
    rc, doc, out = rl.loadgen(h, r.target(), 400, k=400, c=8, seed=16, name="after")
    fl.check_lost_none(rc, doc, out, 400, log, m2, "after kms-b returned")
    stt = fl.ctl(h, "status")["activations"]
    check(stt["ok"] == 600 and stt["failed"] == n_out, "kmsrelayctl status at the end: %s; want "
          "600 ok, %d failed" % (stt, n_out))
    after = rl.last_host(doc, emap)
    check(set(after.values()) == {"kms-b"}, "with only kms-b up, answers came from %s"
          % rl.spread(after))
    moved = sum(1 for c, hn in before.items() if hn == "kms-a")
    print("  kms-b back: 400/400 ok (200 old clients, %d of them moved from kms-a)" % moved)
    fl.stop_relay_clean(h, r)


if __name__ == "__main__":
    krtest.run_tests("faults_backend", [t_sigkill_mid_request, t_sigstop_hang, t_resets,
                                        t_garbage, t_slower_than_deadline,
                                        t_all_die_then_one_returns])
