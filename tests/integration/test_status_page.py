#!/usr/bin/env python3
"""The read-only status page on the metrics listener, loaded by a real
browser (issue 14, acceptance 4).

Scenario: three stub hosts. kms-a and kms-c are established (30 clients
sent to each directly beforehand, so their Windows counts are above the
threshold of 25); kms-b is fresh. A BIND server takes our SRV record. 12
clients go through kmsrelayd (threshold assist off, so the ones pinned to
kms-b are answered by kms-b and its count stays below 25), two of them
sharing one CMID under different names (a cloned image), then one client
whose workstation name carries markup and quotes (kms-loadgen --ws-prefix)
and whose clock is 5 h ahead. Then kms-c is stopped and goes DOWN.

Checks:
- GET / redirects to /status; /status is text/html with a no-script
  Content-Security-Policy, a viewport meta and a 10 s refresh, refers to
  nothing outside the page, and contains no <script>;
- the page shows the three hosts with their states (kms-c down with the
  failed check's reason, kms-b below its threshold), the findings the
  report computes (kms-b below threshold, the skewed client, the cloned
  CMID) and the DNS state (our published SRV record, last update ok);
- the markup in the workstation name arrives escaped in the HTML and as
  text (never as an element) in the DOM headless Chromium builds;
- Chromium's screenshots (desktop and phone widths) are PNG files of the
  requested size whose pixels include the page's "down" red and "below
  threshold" amber, so the picture shows both states.

KR_STATUS_PNG_OUT=path copies the desktop screenshot there (that is how
doc/status-page.png is made) and the phone's to path-phone.png. Chromium is Debian's `chromium` package
(tests/run installs it); without it the test fails, it does not skip.
"""
import http.client
import os
import re
import shutil
import struct
import subprocess
import sys
import urllib.request
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bindlib  # noqa: E402
import krtest  # noqa: E402
import relaylib as rl  # noqa: E402
from krtest import Failure, check  # noqa: E402

PRODUCTS = "win10"
WS_PREFIX = "<b>x</b>&\"'"
WS_NAME = WS_PREFIX + "0.example.test"
WS_ESCAPED = "&lt;b&gt;x&lt;/b&gt;&amp;&quot;&#39;0.example.test"
TARGET = "relay1.example.test."
RED = (0xc0, 0x39, 0x2b)    # .down / .bad in status.c's style sheet
AMBER = (0xa8, 0x6a, 0x00)  # .warn
DESKTOP = (1100, 1500)
PHONE = (390, 2400)


def chromium():
    for n in ("chromium", "chromium-browser"):
        p = shutil.which(n)
        if p:
            return p
    raise Failure("chromium not found: install Debian's chromium package (tests/run does)")


def dns_block(port, key):
    return ('dns: { rise = "500ms"; reconcile = "2s"; backoff_min = "500ms"; timeout = "1s"; '
            'zones = ( { name = "example.test"; servers = [ "127.0.0.1:%d" ]; key = "%s"; '
            'target = "%s"; priority = 0; weight = 100; ttl = 300; } ); };\n'
            % (port, key, TARGET))


def get(addr, path):
    """(status, headers, body text) without following redirects."""
    host, port = addr.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode()
    finally:
        c.close()


def card(html, host):
    """The host's card: from its name to the next card (or the next section)."""
    m = re.search(r'<div class="card (\w+)"><span class="name">%s</span>(.*?)(?=<div class="card |<h2>)'
                  % re.escape(host), html, re.S)
    check(m, "no card for host %s in the page" % host)
    return m.group(1), m.group(2)


def setup(h):
    stubs = rl.start_stubs(h, ["kms-a", "kms-b", "kms-c"])
    for n, seed in (("kms-a", 11), ("kms-c", 12)):
        rc, doc, out = rl.loadgen(h, stubs[n].addr(), 30, k=30, seed=seed,
                                  extra=["--products", PRODUCTS], name="preseed-" + n)
        rl.check_all_ok(rc, doc, out, 30, "preseed " + n)
    srv = bindlib.start(h)
    conf = h.path("relay.conf")
    rl.write(conf, rl.conf_text(h, [stubs[n] for n in ("kms-a", "kms-b", "kms-c")], assist=False,
                                extra='metrics: { listen = "127.0.0.1:0"; };\n'
                                + dns_block(srv.port, srv.key)))
    r = rl.start_relay(h, conf, wait_up=["kms-a", "kms-b", "kms-c"])
    maddr = rl.wait_log(r.proc, r"event=metrics_listen addr=(\S+)").group(1)
    return stubs, srv, r, maddr


def send_clients(h, r, stubs):
    rc, doc, out = rl.loadgen(h, r.target(), 12, k=12, seed=5, c=4,
                              extra=["--products", PRODUCTS, "--clone-clients", "1"], name="lg")
    rl.check_all_ok(rc, doc, out, 12, "clients through the relay")
    got = rl.spread(rl.last_host(doc, rl.epid_map(stubs)))
    check(got.get("kms-b", 0) >= 1, "no client landed on kms-b: %s (change the seed)" % got)
    rc, doc, out = rl.loadgen(h, r.target(), 1, k=1, seed=6, c=1,
                              extra=["--products", PRODUCTS, "--skew-clients", "1",
                                     "--skew-seconds", "18000", "--ws-prefix", WS_PREFIX],
                              name="lg-markup")
    rl.check_all_ok(rc, doc, out, 1, "the client with markup in its name")
    return got


def page_ready(maddr):
    """The page once its report includes every client (bounded by the caller)."""
    st, hd, body = get(maddr, "/status")
    check(st == 200, "GET /status: %d" % st)
    if "Hosts below their activation threshold" in body and WS_ESCAPED in body \
            and "Cloned images" in body:
        return hd, body
    return None


def check_html(hd, body):
    check(hd.get("content-type") == "text/html; charset=utf-8", "Content-Type %r" % hd)
    csp = hd.get("content-security-policy", "")
    check("default-src 'none'" in csp and "script" not in csp, "CSP %r" % csp)
    check(re.search(r'<meta name="viewport" content="width=device-width', body), "viewport meta")
    check('<meta http-equiv="refresh" content="10">' in body, "refresh meta")
    check("<script" not in body.lower(), "a script element in the page")
    for m in re.finditer(r'(?:src|href)="([^"]*)"', body):
        check(m.group(1).startswith("/"), "the page refers outside itself: %s" % m.group(0))
    # The client's name: escaped in every place it appears, never raw.
    check(WS_NAME not in body and "<b>x</b>" not in body, "raw markup from a client in the page")
    check(body.count(WS_ESCAPED) >= 1, "escaped workstation name missing")
    # Hosts and states.
    state, c = card(body, "kms-c")
    check(state == "down" and '<span class="badge down">down</span>' in c, "kms-c card: %s" % c)
    check('class="why">last check: ' in c, "kms-c: no reason for DOWN: %s" % c)
    state, b = card(body, "kms-b")
    check(state == "up" and '<span class="badge warn">below</span>' in b, "kms-b card: %s" % b)
    state, a = card(body, "kms-a")
    check(state == "up" and "below" not in a, "kms-a card: %s" % a)
    # Findings: kms-b (only) below threshold, the skew, the clone.
    bt = re.search(r"Hosts below their activation threshold \((\d+)\)(.*?)</table>", body, re.S)
    check(bt and bt.group(1) == "1" and re.search(r'<td class="name"[^>]*>kms-b</td>', bt.group(2)),
          "below-threshold findings: %s" % (bt and bt.group(0)))
    sk = re.search(r"Clients with a skewed clock \((\d+)\)(.*?)</table>", body, re.S)
    check(sk and sk.group(1) == "1" and WS_ESCAPED in sk.group(2) and "+5.0 h" in sk.group(2),
          "clock-skew findings: %s" % (sk and sk.group(0)))
    check(re.search(r"Cloned images: one CMID, several names \(1\)", body), "cloned images")
    # DNS: our record published, the last update ok.
    check(re.search(r'example\.test\.</span> <span class="badge ok">published</span>', body),
          "zone not shown as published")
    check(re.search(r"_vlmcs\._tcp\.example\.test\.\s+\d+\s+IN\s+SRV\s+0 100 \d+ "
                    + re.escape(TARGET), body), "our SRV record is not on the page")
    check(re.search(r'last DNS operation: \w+ <span class="badge ok">ok</span>', body),
          "DNS last result")


def browse(h, url, args, timeout=120):
    prof = h.path("chromium-profile")
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--hide-scrollbars", "--user-data-dir=" + prof] + args + [url]
    env = dict(os.environ, HOME=h.dir)
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise Failure("chromium did not finish within %d s: %s" % (timeout, " ".join(cmd)))
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def png_pixels(path):
    """(width, height, rows of RGB tuples) of an 8-bit, non-interlaced RGB or
    RGBA PNG; raises Failure on anything else (a sane screenshot is that)."""
    with open(path, "rb") as f:
        data = f.read()
    check(data[:8] == b"\x89PNG\r\n\x1a\n", "%s is not a PNG" % path)
    pos, idat, hdr = 8, b"", None
    while pos < len(data):
        n, typ = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        check(zlib.crc32(typ + body) == struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0],
              "bad CRC in %s chunk %r" % (path, typ))
        if typ == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif typ == b"IDAT":
            idat += body
        pos += 12 + n
    check(hdr, "no IHDR")
    w, ht, depth, ctype, _, _, interlace = hdr
    check(depth == 8 and ctype in (2, 6) and interlace == 0, "unexpected PNG format %s" % (hdr,))
    bpp = 3 if ctype == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), w * bpp, [], bytearray(w * bpp)
    for y in range(ht):
        ft, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if ft == 1:
                line[i] = (line[i] + a) & 255
            elif ft == 2:
                line[i] = (line[i] + b) & 255
            elif ft == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ft == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return w, ht, [[tuple(r[x * bpp:x * bpp + 3]) for x in range(w)] for r in rows]


def load(h, url, size, name):
    """One Chromium run: the DOM it built (--dump-dom) and a screenshot of
    the window (checked here); returns (dom, png path)."""
    path = h.path(name)
    rc, dom, err = browse(h, url, ["--dump-dom", "--screenshot=" + path,
                                   "--window-size=%d,%d" % size])
    check(rc == 0 and "</html>" in dom and os.path.exists(path),
          "chromium failed (%d): %s" % (rc, err[-2000:]))
    w, ht, px = png_pixels(path)
    check((w, ht) == size, "%s is %dx%d, asked for %dx%d" % (name, w, ht, size[0], size[1]))
    colours = {}
    for row in px:
        for p in row:
            colours[p] = colours.get(p, 0) + 1
    check(len(colours) > 20, "%s is nearly uniform (%d colours)" % (name, len(colours)))
    print("  %s: %dx%d, %d bytes, %d colours, %d red and %d amber pixels"
          % (name, w, ht, os.path.getsize(path), len(colours), colours.get(RED, 0),
             colours.get(AMBER, 0)))
    check(colours.get(RED, 0) >= 200, "%s: no 'down' red in the picture" % name)
    check(colours.get(AMBER, 0) >= 200, "%s: no 'below threshold' amber in the picture" % name)
    return dom, path


def check_dom(dom):
    for host in ("kms-a", "kms-b", "kms-c"):
        check('<span class="name">%s</span>' % host in dom, "%s missing from the DOM" % host)
    check('<span class="badge down">down</span>' in dom, "no host down in the DOM")
    check('<span class="badge warn">below</span>' in dom, "no host below threshold in the DOM")
    # In the DOM the name is a text node: serialised with &lt; &gt; &amp;,
    # never a <b> element.
    check("&lt;b&gt;x&lt;/b&gt;&amp;\"'0.example.test" in dom, "workstation text in the DOM")
    check("<b>x</b>" not in dom, "the workstation's markup became an element")


def test_status_page(h):
    stubs, srv, r, maddr = setup(h)
    spread = send_clients(h, r, stubs)
    print("  clients per host: %s" % spread)
    h.stop(stubs["kms-c"].proc)
    rl.wait_host_state(r, "kms-c", "DOWN")
    rl.wait_for(lambda: [x for x in srv.srv() if x["target"] == TARGET], 10,
                "our SRV record in DNS")

    st, hd, body = get(maddr, "/")
    check(st == 302 and hd.get("location") == "/status", "GET /: %d %s" % (st, hd))
    st, hd, body = get(maddr, "/nothing")
    check(st == 404, "GET /nothing: %d" % st)
    # The report is built off the loop at most every 10 s: wait (bounded)
    # until one includes every client.
    hd, body = rl.wait_for(lambda: page_ready(maddr), 40, "a report with every client", poll=1)
    check_html(hd, body)

    url = "http://%s/status" % maddr
    for size, name in ((DESKTOP, "status-desktop.png"), (PHONE, "status-phone.png")):
        dom, png = load(h, url, size, name)
        check_dom(dom)
        if size == DESKTOP:
            desktop = png
        else:
            phone = png
    out = os.environ.get("KR_STATUS_PNG_OUT")
    if out:
        shutil.copyfile(desktop, out)
        shutil.copyfile(phone, re.sub(r"(\.png)?$", "-phone.png", out, count=1))
        print("  copied to %s (and the phone's beside it)" % out)
    check(h.stop(r.proc) == 0, "kmsrelayd exit status")
    log = r.log()
    check("runtime error" not in log and "Sanitizer" not in log, "sanitizer output in the log")


if __name__ == "__main__":
    krtest.run_tests("status_page", [test_status_page])
