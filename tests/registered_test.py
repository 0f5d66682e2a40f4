#!/usr/bin/env python3
"""registered_test.py - every test in the tree runs in the suite.

A test file that no ctest entry runs is a test that silently stopped counting. This lists
the test files under tests/ (C, shell and Python: *_test.c, *_test.sh, *_test.py, and the
fakes' unittest modules test_*.py) and fails for each one that no registered test runs:
a C test is run when a test command's program is named like the file (cs_test), a script
when its path appears in a test command. The build directory's ctest -N -V is the truth.

usage: registered_test.py BUILD_DIR SOURCE_DIR
"""
import os
import shlex
import subprocess
import sys

PATTERNS = ("_test.c", "_test.sh", "_test.py")


def test_files(source):
    found = []
    for root, dirs, files in os.walk(os.path.join(source, "tests")):
        dirs[:] = [d for d in dirs if d not in ("__pycache__",)]
        for f in files:
            if f.endswith(PATTERNS) or (f.startswith("test_") and f.endswith(".py")):
                found.append(os.path.relpath(os.path.join(root, f), source))
    return sorted(found)


def test_commands(build):
    out = subprocess.run(["ctest", "--test-dir", build, "-N", "-V"], check=True,
                         capture_output=True, text=True).stdout
    cmds = []
    for line in out.splitlines():
        _, sep, cmd = line.partition(": Test command: ")
        if sep:
            cmds.append(shlex.split(cmd))
    return cmds


def is_run(path, cmds):
    stem = os.path.splitext(os.path.basename(path))[0]
    for argv in cmds:
        if os.path.basename(argv[0]) == stem and path.endswith(".c"):
            return True
        if any(a == path or a.endswith("/" + path) for a in argv):
            return True
    return False


def main():
    if len(sys.argv) != 3 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(sys.argv) == 2 else 2
    build, source = sys.argv[1], sys.argv[2]
    files = test_files(source)
    cmds = test_commands(build)
    if not files or not cmds:
        print(f"registered_test: found {len(files)} test files and {len(cmds)} tests: "
              "wrong directories?")
        return 1
    missing = [f for f in files if not is_run(f, cmds)]
    for f in missing:
        print(f"registered_test: {f} is run by no ctest entry (register it in tests/)")
    print(f"registered_test: {len(files) - len(missing)} of {len(files)} test files run by "
          f"{len(cmds)} ctest entries")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
