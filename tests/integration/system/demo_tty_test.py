#!/usr/bin/env python3
"""demo_tty_test.py - deploy/demo.sh --no-wait in a pseudo-terminal, as a newcomer runs it.

Piped, psql never pages; on a terminal it does, and the demo used to stop at less's ':'
prompt with no hint. This runs the demo on a pty (24 x 120, TERM=xterm, no PAGER set: the
system default pager) with the binaries of the build under test (CS_DEMO_BUILD), and fails
at once if a pager takes the screen or the output stalls, and at the end unless the demo
completed: its listings printed, the webhook edits landed, the gateway's journal emptied,
every run number printed is one that exists, the funnel and revenue per channel printed (or
the one line saying the analytics tables are not there yet), and everything stopped.
    CS_BUILD_DIR=build-test tests/integration/system/demo_tty_test.py     (ctest sets it)
"""
import fcntl, os, pty, re, select, signal, struct, sys, termios, time

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BUILD = os.path.abspath(os.environ.get("CS_BUILD_DIR", "build-test"))
TOTAL_S, STALL_S = 900, 240
PAGER_SIGNS = ("\x1b[?1049h", "(END)", "\x1b[7mlines ")   # less: alternate screen, end, status


def main():
    env = {k: v for k, v in os.environ.items() if k not in ("PAGER", "PSQL_PAGER", "LESS")}
    env.update(TERM="xterm", CS_DEMO_BUILD=BUILD, CS_SKIP_APT="1")
    pid, fd = pty.fork()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
        os.chdir(SRC)
        os.execvpe("bash", ["bash", "deploy/demo.sh", "--no-wait"], env)
    out, why = [], None
    start = last = time.time()
    while True:
        r, _, _ = select.select([fd], [], [], 1.0)
        now = time.time()
        if r:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:
                break
            out.append(data.decode("utf-8", "replace"))
            last = now
            tail = "".join(out[-3:])
            if any(s in tail for s in PAGER_SIGNS) or re.search(r"\n:\s*$", tail):
                why = "the demo is waiting in a pager for a key"
                break
        if now - last > STALL_S:
            why = "no output for %d s: the demo is waiting for something" % STALL_S
            break
        if now - start > TOTAL_S:
            why = "the demo did not finish in %d s" % TOTAL_S
            break
    text = "".join(out)
    if why is not None:
        os.killpg(pid, signal.SIGTERM)          # the demo's own trap stops what it started
        for _ in range(300):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                break
            time.sleep(0.1)
        else:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        return fail(why, text)
    _, status = os.waitpid(pid, 0)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r", "")
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        return fail("the demo exited with %d" % code, text)
    checks = [
        ("the rows-per-table listing", r"\n amo +\| leads +\| +\d+"),
        ("the sync runs listing", r"== sync runs"),
        ("the webhook edits in PostgreSQL", r"visible in PostgreSQL: 20 of 20"),
        ("the gateway's journal emptied", r"waiting in the gateway's journal for amo-sync: 0\n"),
        ("journal_backlog=0 in the last status", r"hook-gateway +up .*journal_backlog=0 "),
        ("the funnel and revenue per channel, or why not",
         r"== the analyst layer.*\n(no analytics tables in this database yet|"
         r"crmsync report: [^\n]*\n\n== Funnel per pipeline\n(.|\n)*== Revenue per channel\n)"),
        ("everything stopped", r"all stopped; nothing left running"),
    ]
    for what, rx in checks:
        if not re.search(rx, plain):
            return fail("missing: %s (/%s/)" % (what, rx), plain)
    # The demo links some amoCRM contacts to paying Hollihop students (deploy/demo.sh): some
    # channel must show paying leads, or the revenue report shows nothing worth seeing.
    rev = plain.split("== Revenue per channel\n", 1)
    if len(rev) == 2 and not re.search(r"\n +\S.*? +\d+ +[1-9]\d* +[1-9][0-9]*\.\d\d ", "\n" + rev[1].split("\n--", 1)[0]):
        return fail("no channel with paying leads in the revenue per channel", plain)
    # every run number shown is a run that exists: no "run 0"
    if re.search(r"\brun 0\b", plain):
        return fail('a "run 0" was printed', plain)
    print("demo completed on a terminal in %.0f s without waiting for a key" % (time.time() - start))
    return 0


def fail(why, text):
    sys.stdout.write(text[-6000:])
    print("\nFAIL: " + why)
    return 1


if __name__ == "__main__":
    sys.exit(main())
