"""stack.py - the Python callers' handle on the launchers in tests/harness (README.md there).

The same scripts the C harness and the shell tests run, called through subprocess: testpg for
PostgreSQL, fake for the fake CRMs, svc for the services and any other process. Every process
lives under a work directory DIR as NAME: DIR/NAME.pid, DIR/NAME.log (appended to),
DIR/NAME.rc (its exit status, once it has ended). A launcher's error goes to stderr and
raises subprocess.CalledProcessError.

    import sys; sys.path.insert(0, os.path.join(SRC, "tests/harness")); import stack
    dsn = stack.pg_start(T + "/pg")
    url = stack.fake_start(T, "fake-hollihop", "hollihop", "--scale", "tiny")
    stack.svc_start(T, "store", build, env)
    rc = stack.stop(T, "store")
    stack.finish(T, ok)        # after everything in T is stopped: removed if ok, else kept
    stack.bench_end(T, procs, keep, pgdir)   # a benchmark's end: stop, then remove unless keep
"""
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TESTPG = os.path.join(HERE, "testpg")
SVC = os.path.join(HERE, "svc")
FAKE = os.path.join(HERE, "fake")


def _out(argv, env=None):
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True, env=env).stdout.strip()


def pg_start(d, *dbs, env=None):
    """A throwaway PostgreSQL in d with databases dbs (default crmsync): the first one's DSN.
    env may set CS_PG_DURABLE and CS_PG_OPTS (see testpg)."""
    return _out([TESTPG, "start", d] + list(dbs or ["crmsync"]), env)


def pg_stop(d, mode="fast"):
    _out([TESTPG, "stop", d, mode])


def pg_restart(d):
    _out([TESTPG, "restart", d])


def fake_start(d, name, kind, *args, env=None):
    """The fake CRM kind ("amocrm", "hollihop") with args after --port 0, listening: its base
    URL. Its interpreter is this one unless env names CS_PYTHON."""
    env = dict(os.environ if env is None else env)
    env.setdefault("CS_PYTHON", sys.executable)
    return _out([FAKE, "start", d, name, kind] + [str(a) for a in args], env)


def svc_start(d, service, build, env=None):
    """build/services/SERVICE/crmsync-SERVICE with env, answering crmsyncctl probe --live."""
    _out([SVC, "start", d, service, build], env)


def run(d, name, argv, env=None):
    """Any command in the background as name; returns its pid."""
    _out([SVC, "run", d, name] + [str(a) for a in argv], env)
    return pid(d, name)


def pid(d, name):
    with open(os.path.join(d, name + ".pid")) as f:
        return int(f.read())


def running(d, name):
    return os.path.exists(os.path.join(d, name + ".pid")) and not os.path.exists(os.path.join(d, name + ".rc"))


def stop(d, name, sig="TERM"):
    """Signal name (TERM), wait for its end (20 s, then KILL): its exit status, None when it was
    not running."""
    out = _out([SVC, "stop", d, name, sig])
    return int(out) if out else None


def finish(d, ok):
    """The end of a test's work directory d, once nothing runs in it any more (every process
    stopped, pg_stop called): removed when the test passed (ok) and CS_TEST_KEEP is unset or
    "0"; otherwise kept, and named on stderr, for inspection. A cluster still running in it
    (DIR/data/postmaster.pid) keeps it too."""
    keep = os.environ.get("CS_TEST_KEEP", "0") not in ("", "0")
    running = [e for e in sorted(os.listdir(d)) if os.path.exists(os.path.join(d, e, "data", "postmaster.pid"))]
    if ok and not keep and not running:
        shutil.rmtree(d, ignore_errors=True)
        return
    why = "PostgreSQL in %s still runs" % running[0] if running else "CS_TEST_KEEP is set" if ok else "test failed"
    print("stack: kept %s (%s)" % (d, why), file=sys.stderr)


def bench_end(d, names, keep, pgdir=None, pg_mode="fast"):
    """A benchmark's end: the processes it started in d stopped, its cluster in pgdir (if
    any) stopped with pg_mode, then d removed, or kept (--keep) and named on stdout."""
    for n in names:
        stop(d, n)
    if pgdir is not None:
        pg_stop(pgdir, pg_mode)
    if keep:
        print(f"  kept {d}")
    else:
        shutil.rmtree(d, ignore_errors=True)
