#!/usr/bin/env python3
"""report_test.py - `crmsyncctl report` as a person sees it: rendered by a real browser.

A throwaway PostgreSQL gets tests/report/fixture.sql (the four analytics tables the report
reads, with names full of < & " ', Cyrillic, NULL channels and managers, more rows than a
chart shows, more pipelines than the report draws). Then:
  - the page, rendered by Debian's headless chromium: the screenshot is not blank (decoded
    here with zlib: enough non-white pixels, colours, and the bars' own blue), and every
    number in the rendered DOM (elements with data-k) equals what this test computes with its
    own GROUP BY queries over the same tables, both ways (no number missing, none extra);
  - names from the database are text, never markup; the page fetches nothing, runs nothing;
  - --since and --pipeline: the same comparison on the filtered page;
  - --text prints the same numbers; empty tables say "no data yet" per section; a database
    without the analytics tables, no DSN and bad arguments fail with a clear message.
Self-checks: the comparison flags one changed number, and the screenshot check flags a blank
PNG, so neither can pass vacuously.
    CS_BUILD_DIR=build-test tests/report/report_test.py      (ctest sets it)
Exit 77 (skipped) when chromium is not installed (deploy/install-deps.sh installs it).
"""
import collections
import html.parser
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from decimal import Decimal, ROUND_HALF_UP

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
B = os.path.abspath(os.environ.get("CS_BUILD_DIR", os.path.join(SRC, "build-test")))
CTL = os.path.join(B, "tools/crmsyncctl/crmsyncctl")
TESTPG = os.path.join(SRC, "tests/harness/testpg")
FIXTURE = os.path.join(SRC, "tests/report/fixture.sql")
TOP, TOP_PIPELINES, MONTHS = 20, 10, 12          # the report's caps (report.h)
BAR_BLUE = (0x2F, 0x6D, 0xB5)
# Headless chromium as root in a VM or container: no sandbox (root), no GPU, no D-Bus.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                  "--no-first-run", "--disable-extensions", "--window-size=1280,1600"]
T0 = time.monotonic()
T = None


def say(msg):
    print("[%5.1fs] %s" % (time.monotonic() - T0, msg), flush=True)


def fail(msg):
    raise AssertionError(msg)


# --- PostgreSQL -----------------------------------------------------------------------------
def psql(db, sql):
    """Rows of sql as tuples of str, None for NULL (unit/record separators survive any name)."""
    out = subprocess.run(
        ["psql", "-X", "-q", "-A", "-t", "-h", os.path.join(T, "pg"), "-U", "postgres", "-d", db,
         "-v", "ON_ERROR_STOP=1", "-F", "\x1f", "-R", "\x1e", "-P", "null=\x02", "-c", sql],
        check=True, capture_output=True, text=True).stdout
    rows = [r for r in out.rstrip("\n").split("\x1e") if r != ""]
    return [tuple(None if v == "\x02" else v for v in r.split("\x1f")) for r in rows]


def dsn(db):
    return "host=%s port=5432 dbname=%s user=postgres" % (os.path.join(T, "pg"), db)


def ctl(db, *args, check=True):
    env = dict(os.environ, CS_CTL_PG_DSN=dsn(db) if db else "", CS_PG_DSN="")
    p = subprocess.run([CTL, "report", *args], capture_output=True, text=True, env=env, timeout=60)
    if check and p.returncode != 0:
        fail("crmsyncctl report %s: exit %d\n%s" % (" ".join(args), p.returncode, p.stderr))
    return p


# --- What the page should say, from this test's own queries -------------------------------------
def dec(v):
    return None if v is None else Decimal(v)


def rnd(v, places):
    return None if v is None else v.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def pct(num, den):
    return None if num is None or not den else rnd(100 * num / den, 1)


def where(since, pipeline, date_col, pipeline_col=True):
    w = ["TRUE"]
    if since:
        w.append("%s >= '%s-01'" % (date_col, since))
    if pipeline and pipeline_col:
        w.append("pipeline_id = %d" % int(pipeline))
    return " AND ".join(w)


def key_of(prefix, k):
    return "%s:none" % prefix if k is None else "%s.%s" % (prefix, k)


def top_and_others(prefix, rows, rank, cols, combine):
    """rows: {k: {col: Decimal|None}}; the top rows by rank, the rest in one others row."""
    exp = {}
    order = sorted(rows, key=rank)
    for k in order[:TOP]:
        for c in cols:
            exp["%s.%s" % (key_of(prefix, k), c)] = rows[k][c]
    rest = order[TOP:]
    if rest:
        exp[prefix + ":others.count"] = Decimal(len(rest))
        for c, v in combine([rows[k] for k in rest]).items():
            exp[prefix + ":others." + c] = v
    return exp


def nsum(vals):
    vals = [v for v in vals if v is not None]
    return sum(vals) if vals else None


def expect_funnel(db, since, pipeline):
    rows = psql(db, "SELECT pipeline_id, status_id, sum(leads_reached), "
                "sum(leads_reached) FILTER (WHERE conv_next IS NOT NULL), sum(conv_next * leads_reached), "
                "sum(leads_reached) FILTER (WHERE conv_won IS NOT NULL), sum(conv_won * leads_reached) "
                "FROM analytics.amo_funnel WHERE %s GROUP BY 1, 2"
                % where(since, pipeline, "cohort_month"))
    leads = collections.defaultdict(int)
    for p, _, reached, *_ in rows:
        leads[p] = max(leads[p], int(reached))
    shown = sorted(leads, key=lambda p: (-leads[p], int(p)))[:TOP_PIPELINES]
    exp = {}
    for p, s, reached, nn, wn, nw, ww in rows:
        if p in shown:
            k = "funnel.%s.%s." % (p, s)
            exp[k + "reached"] = dec(reached)
            exp[k + "conv_next"] = pct(dec(wn), dec(nn))
            exp[k + "conv_won"] = pct(dec(ww), dec(nw))
    if len(leads) > TOP_PIPELINES:
        exp["funnel:more"] = Decimal(len(leads) - TOP_PIPELINES)
    return exp


def revenue_combine(rs):
    paid, refunds = sum(r["paid"] for r in rs), sum(r["refunds"] for r in rs)
    return {"leads": sum(r["leads"] for r in rs), "paying": sum(r["paying"] for r in rs),
            "paid": rnd(paid, 2), "refunds": rnd(refunds, 2), "net": rnd(paid - refunds, 2)}


def expect_revenue(db, since, pipeline, by):
    rows = {}
    for k, leads, paying, paid, refunds in psql(
            db, "SELECT %s, count(*), count(first_paid_at), coalesce(sum(total_paid), 0), "
            "coalesce(sum(refunds), 0) FROM analytics.lead_revenue WHERE %s GROUP BY 1"
            % (by, where(since, pipeline, "created_at"))):
        rows[k] = {"leads": Decimal(leads), "paying": Decimal(paying), "paid": Decimal(paid),
                   "refunds": Decimal(refunds)}
    for r in rows.values():
        r["net"] = r["paid"] - r["refunds"]

    def rank(k):
        tie = (1, "") if k is None else (0, int(k) if by != "channel" else k)
        return (-rows[k]["net"], tie)
    exp = top_and_others("revenue." + ("channel" if by == "channel" else "manager"), rows, rank,
                         ["leads", "paying", "paid", "refunds", "net"], revenue_combine)
    return {k: rnd(v, 2) if k.rsplit(".", 1)[1] in ("paid", "refunds", "net") else v
            for k, v in exp.items()}


def expect_fill(db):
    offices = {}
    for o, d, groups, students, vac, filled in psql(
            db, "SELECT office, discipline, count(*), coalesce(sum(students), 0), "
            "sum(vacancies) FILTER (WHERE vacancies > 0), sum(students) FILTER (WHERE vacancies > 0) "
            "FROM analytics.group_fill GROUP BY 1, 2"):
        offices["%s / %s" % (o or "", d or "")] = {
            "groups": Decimal(groups), "students": Decimal(students), "vacancies": dec(vac),
            "filled": dec(filled)}

    def office_combine(rs):
        vac, filled = nsum(r["vacancies"] for r in rs), nsum(r["filled"] for r in rs)
        return {"groups": sum(r["groups"] for r in rs), "students": sum(r["students"] for r in rs),
                "vacancies": vac, "rate": pct(filled, vac)}
    for r in offices.values():
        r["rate"] = pct(r["filled"], r["vacancies"])
    exp = top_and_others("fill.office", offices, lambda k: (-offices[k]["students"], k),
                         ["groups", "students", "vacancies", "rate"], office_combine)
    groups = {}
    for gid, students, vac, rate in psql(
            db, "SELECT ed_unit_id, students, vacancies, fill_rate FROM analytics.group_fill"):
        groups[gid] = {"students": dec(students), "vacancies": dec(vac), "raw": dec(rate),
                       "rate": None if rate is None else rnd(100 * Decimal(rate), 1)}

    def group_combine(rs):
        with_vac = [r for r in rs if r["vacancies"] and r["vacancies"] > 0]
        return {"students": nsum(r["students"] for r in rs), "vacancies": nsum(r["vacancies"] for r in rs),
                "rate": pct(nsum(r["students"] for r in with_vac), nsum(r["vacancies"] for r in with_vac))}

    def group_rank(k):
        rate = groups[k]["raw"]
        return (rate is None, -(rate or 0), int(k))
    exp.update(top_and_others("fill.group", groups, group_rank, ["students", "vacancies", "rate"],
                              group_combine))
    return exp


def expect_hours(db, since):
    teachers = {}
    for t, hours, lessons in psql(db, "SELECT teacher_id, sum(hours), sum(lessons) FROM "
                                  "analytics.teacher_hours WHERE %s GROUP BY 1"
                                  % where(since, None, "month")):
        teachers[t] = {"hours": Decimal(hours), "lessons": Decimal(lessons)}

    def rank(k):
        return (-teachers[k]["hours"], k is None, int(k or 0))
    exp = top_and_others("hours.teacher", teachers, rank, ["hours", "lessons"],
                         lambda rs: {"hours": sum(r["hours"] for r in rs),
                                     "lessons": sum(r["lessons"] for r in rs)})
    exp = {k: rnd(v, 2) if k.endswith(".hours") else v for k, v in exp.items()}
    cells = psql(db, "SELECT teacher_id, to_char(month, 'YYYY-MM'), sum(hours) FROM "
                 "analytics.teacher_hours WHERE %s GROUP BY 1, 2" % where(since, None, "month"))
    months = sorted({m for _, m, _ in cells})[-MONTHS:]
    top = set(sorted(teachers, key=rank)[:TOP])
    others = collections.defaultdict(Decimal)
    for t, m, hours in cells:
        if m not in months:
            continue
        if t in top:
            exp["%s.%s" % (key_of("hours.month", t), m)] = rnd(Decimal(hours), 2)
        else:
            others[m] += Decimal(hours)
    for m, hours in others.items():
        exp["hours.month:others." + m] = rnd(hours, 2)
    if others:
        exp["hours.month:others.count"] = Decimal(len(teachers) - TOP)
    return exp


def expected(db, since=None, pipeline=None):
    exp = expect_funnel(db, since, pipeline)
    exp.update(expect_revenue(db, since, pipeline, "channel"))
    exp.update(expect_revenue(db, since, pipeline, "responsible_user_id"))
    exp.update(expect_fill(db))
    exp.update(expect_hours(db, since))
    return exp


# --- What the page says ---------------------------------------------------------------------------
class Page(html.parser.HTMLParser):
    """Text of every data-k element (all occurrences), every tag, all text, empty sections."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.values = collections.defaultdict(list)
        self.tags = collections.Counter()
        self.text = []
        self.empty = []
        self.open = []          # [key, text parts] of data-k elements being read

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags[tag] += 1
        if "data-empty" in a:
            self.empty.append(a["data-empty"])
        if "data-k" in a:
            self.open.append([a["data-k"], [], tag])

    def handle_endtag(self, tag):
        if self.open and self.open[-1][2] == tag:
            k, parts, _ = self.open.pop()
            self.values[k].append("".join(parts).strip())

    def handle_data(self, data):
        self.text.append(data)
        for o in self.open:
            o[1].append(data)


def parse_page(text):
    p = Page()
    p.feed(text)
    p.close()
    return p


def as_number(text):
    if text == "n/a":
        return None
    return Decimal(text[:-1] if text.endswith("%") else text)


def compare(page_values, exp):
    """Differences between the page's data-k numbers and exp, as lines (empty = equal)."""
    bad = []
    for k in sorted(set(page_values) | set(exp)):
        if k not in exp:
            bad.append("page shows %s = %s, the SQL has no such number" % (k, page_values[k]))
            continue
        if k not in page_values:
            bad.append("page lacks %s (SQL: %s)" % (k, exp[k]))
            continue
        for shown in page_values[k]:
            try:
                got = as_number(shown)
            except Exception:
                got = "unparsable %r" % shown
            if got != exp[k]:
                bad.append("%s: page %r, SQL %s" % (k, shown, exp[k]))
    return bad


def check_numbers(what, page_values, exp):
    bad = compare(page_values, exp)
    if bad:
        fail("%s: %d numbers differ from SQL:\n  %s" % (what, len(bad), "\n  ".join(bad[:40])))
    say("%s: all %d numbers (%d occurrences) equal the SQL's" %
        (what, len(exp), sum(len(v) for v in page_values.values())))


# --- The screenshot -----------------------------------------------------------------------------------
def png_pixels(path):
    """(width, height, Counter of (r, g, b) over every other row) of an 8-bit RGB(A) PNG."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail("%s is not a PNG" % path)
    pos, idat = 8, []
    while pos < len(data):
        n, typ = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if typ == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif typ == b"IDAT":
            idat.append(body)
        pos += 12 + n
    if depth != 8 or interlace != 0 or ctype not in (2, 6):
        fail("unexpected PNG format depth=%d colour=%d interlace=%d" % (depth, ctype, interlace))
    bpp = 3 if ctype == 2 else 4
    raw, stride = zlib.decompress(b"".join(idat)), w * bpp
    prev, colours = bytearray(stride), collections.Counter()
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        unfilter(f, line, prev, bpp)
        if y % 2 == 0:
            colours.update(zip(line[0::bpp], line[1::bpp], line[2::bpp]))
        prev = line
    return w, h, colours


def unfilter(f, line, prev, bpp):
    """Undo one PNG row filter in place (RFC 2083, 6.2-6.6)."""
    n = len(line)
    if f == 1:
        for i in range(bpp, n):
            line[i] = (line[i] + line[i - bpp]) & 255
    elif f == 2:
        for i in range(n):
            line[i] = (line[i] + prev[i]) & 255
    elif f == 3:
        for i in range(n):
            line[i] = (line[i] + (((line[i - bpp] if i >= bpp else 0) + prev[i]) >> 1)) & 255
    elif f == 4:
        for i in range(n):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255


def screenshot_problem(path):
    """None when the screenshot shows a page with charts, else what is wrong with it."""
    w, h, colours = png_pixels(path)
    total = sum(colours.values())
    ink = total - colours[(255, 255, 255)]
    if ink < total // 50:
        return "blank: %d of %d pixels are not white" % (ink, total)
    if len(colours) < 16:
        return "flat: only %d colours" % len(colours)
    if colours[BAR_BLUE] < 2000:
        return "no bars: %d pixels of the bars' blue" % colours[BAR_BLUE]
    return None


def write_png(path, w, h, rgb):
    """A w x h PNG of one colour (the blank page the screenshot check must reject)."""
    row = b"\x00" + bytes(rgb) * w

    def chunk(typ, body):
        return struct.pack(">I", len(body)) + typ + body + struct.pack(">I", zlib.crc32(typ + body))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(row * h)) + chunk(b"IEND", b""))


def render(html_path, png_path):
    """Screenshot and rendered DOM of a page, from one headless chromium run."""
    prof = tempfile.mkdtemp(dir=T, prefix="chromium-")
    env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS="disabled:")
    p = subprocess.run([shutil.which("chromium"), *CHROMIUM_FLAGS, "--user-data-dir=" + prof,
                        "--screenshot=" + png_path, "--dump-dom", "file://" + html_path],
                       capture_output=True, text=True, env=env, timeout=90)
    if p.returncode != 0 or not os.path.exists(png_path) or "</html>" not in p.stdout:
        fail("chromium failed (exit %d):\n%s" % (p.returncode, p.stderr[-3000:]))
    return p.stdout


# --- The test -----------------------------------------------------------------------------------
def test_errors():
    p = ctl(None, "--text", check=False)
    if p.returncode != 1 or "CS_CTL_PG_DSN" not in p.stderr:
        fail("no DSN: exit %d %r" % (p.returncode, p.stderr))
    for args in (["--since", "2026-13"], ["--pipeline", "x"], ["--only", "nope"], ["--bogus"]):
        p = ctl("crmsync", "--text", *args, check=False)
        if p.returncode != 2 or not p.stderr.startswith("crmsyncctl: report:"):
            fail("%s: exit %d %r" % (args, p.returncode, p.stderr))
    p = ctl("bare", "--text", check=False)
    if p.returncode != 1 or "Upgrade crmsync-store" not in p.stderr or "analytics." not in p.stderr:
        fail("no analytics tables: exit %d %r" % (p.returncode, p.stderr))
    if ctl(None, "--help").stdout.count("--since") < 2:
        fail("--help does not explain --since")
    say("errors: no DSN, bad arguments, no analytics tables: clear messages, exit 1/2")


def test_empty():
    page = parse_page(ctl("empty", "--out", "-").stdout)
    want = ["funnel", "revenue.channel", "revenue.manager", "fill.office", "fill.group",
            "hours.teacher", "hours.month"]
    if page.empty != want or page.values or page.tags["svg"]:
        fail("empty tables: sections saying no data %s, numbers %s, charts %d"
             % (page.empty, dict(page.values), page.tags["svg"]))
    if "No data yet" not in "".join(page.text):
        fail("empty tables: no 'No data yet'")
    text = ctl("empty", "--text").stdout
    if text.count("no data yet") != len(want):
        fail("--text on empty tables:\n" + text)
    say("empty tables: every section says no data yet, no chart, no number")


def test_page():
    out = os.path.join(T, "report.html")
    ctl("crmsync", "--out", out)
    src = open(out, encoding="utf-8").read()
    for bad in ("<script", "<link", "<img", "<iframe", "src=", "url(", "https://", "@import"):
        if bad in src.lower():
            fail("the page is not self-contained: it contains %r" % bad)
    if src.count("http://") != src.count('xmlns="http://www.w3.org/2000/svg"'):
        fail("the page names an address other than the SVG namespace")
    t = time.monotonic()
    dom = render(out, os.path.join(T, "report.png"))
    say("chromium rendered the page in %.1fs" % (time.monotonic() - t))
    page = parse_page(dom)
    exp = expected("crmsync")
    check_numbers("rendered page", page.values, exp)
    text = "".join(page.text)
    for name in ('<b>"Boss" & Co</b>', 'vk <ads> & "friends"', "Продажи <B2C> & \"школа\"",
                 "O'Brien", "Мария <Ивановна>", "(no channel)", "(no responsible user)"):
        if name not in text:
            fail("the rendered page does not show %r as text" % name)
    if page.tags["b"] != 1 or page.tags["ads"] or page.tags["b2c"]:
        fail("a name from the database became markup: %s" % dict(page.tags))
    if page.tags["svg"] < 8 or page.tags["rect"] < 60:
        fail("too few charts: %d svg, %d bars" % (page.tags["svg"], page.tags["rect"]))
    t = time.monotonic()
    problem = screenshot_problem(os.path.join(T, "report.png"))
    if problem:
        fail("screenshot %s: %s" % (os.path.join(T, "report.png"), problem))
    say("screenshot is a page with charts (checked in %.1fs)" % (time.monotonic() - t))
    return page, exp


def test_self_checks(page, exp):
    k = "revenue.channel.Яндекс.Директ.net"
    wrong = {kk: list(v) for kk, v in page.values.items()}
    wrong[k] = ["%s" % (as_number(wrong[k][0]) + Decimal("0.01"))]
    if not compare(wrong, exp) or compare(page.values, exp):
        fail("self-check: the comparison does not catch one changed number")
    blank = os.path.join(T, "blank.png")
    write_png(blank, 320, 200, (255, 255, 255))
    if screenshot_problem(blank) is None:
        fail("self-check: a blank PNG passes the screenshot check")
    say("self-checks: one changed number and a blank screenshot are caught")


def test_filters():
    page = parse_page(ctl("crmsync", "--since", "2026-02", "--pipeline", "7001", "--out", "-").stdout)
    check_numbers("--since 2026-02 --pipeline 7001", page.values, expected("crmsync", "2026-02", "7001"))
    if "funnel.7002.201.reached" in page.values or not page.values.get("funnel.7001.101.reached"):
        fail("--pipeline 7001 shows other pipelines")


def test_text(exp):
    text = ctl("crmsync", "--text").stdout
    lines = text.splitlines()
    for k, v in exp.items():
        if k.startswith("revenue.channel.") and k.endswith(".net"):
            name = k[len("revenue.channel."):-len(".net")]
            if not any(ln.strip().startswith(name) and ln.split()[-1] == str(v) for ln in lines):
                fail("--text has no line for channel %r with net %s:\n%s" % (name, v, text))
    for title in ("Funnel per pipeline", "Revenue per channel", "Revenue per manager",
                  "Group fill per group", "Hours per teacher and month"):
        if "== " + title not in text:
            fail("--text lacks section %r" % title)
    say("--text: every channel's net on its line, every section present")


def main():
    global T
    if shutil.which("chromium") is None:
        print("chromium not installed (deploy/install-deps.sh installs it): skipped")
        return 77
    if not os.access(CTL, os.X_OK):
        fail("%s not built" % CTL)
    T = tempfile.mkdtemp(prefix="report-test-")
    os.chmod(T, 0o755)
    ok = False
    try:
        subprocess.run([TESTPG, "start", os.path.join(T, "pg"), "crmsync", "empty", "bare"],
                       check=True, capture_output=True)
        for db in ("crmsync", "empty"):
            subprocess.run(["psql", "-X", "-q", "-h", os.path.join(T, "pg"), "-U", "postgres", "-d", db,
                            "-v", "ON_ERROR_STOP=1", "-f", FIXTURE], check=True, capture_output=True)
        psql("empty", "TRUNCATE analytics.amo_funnel, analytics.lead_revenue, "
             "analytics.group_fill, analytics.teacher_hours")
        say("PostgreSQL with the fixture")
        test_errors()
        test_empty()
        page, exp = test_page()
        test_self_checks(page, exp)
        test_filters()
        test_text(exp)
        ok = True
    finally:
        subprocess.run([TESTPG, "stop", os.path.join(T, "pg"), "immediate"], capture_output=True)
        if ok and os.environ.get("CS_TEST_KEEP", "0") in ("", "0"):
            shutil.rmtree(T, ignore_errors=True)
        else:
            print("left for inspection: %s" % T, file=sys.stderr)
    say("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
