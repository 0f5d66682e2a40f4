#!/usr/bin/env python3
"""check_dashboard.py - deploy/monitoring/grafana-dashboard.json against what the services export.

    check_dashboard.py DASHBOARD.json METRICS.txt...

The dashboard must parse as JSON, every panel but a row must have at least one query, and
every metric a query names (crmsync_*, plus Prometheus' own `up`) must be a sample name in
one of the METRICS.txt files: the Prometheus text the running services served on /metrics
(tests/monitoring/prometheus_test.py saves them). Grafana is not packaged in Debian, so
this is as far as a test can take the dashboard. Exit 0 or 1 with the missing names.
"""
import json
import re
import sys

BUILTIN = {"up"}            # Prometheus' per-target series, not exported by a service


def exported(paths):
    names = set()
    for p in paths:
        with open(p) as f:
            for line in f:
                m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", line)
                if m and not line.startswith("#"):
                    names.add(m.group(1))
    return names


def panels(d):
    for p in d.get("panels", []):
        yield p
        yield from panels(p)


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        dash = json.load(f)
    have = exported(argv[2:])
    if not any(n.startswith("crmsync_") for n in have):
        print("check_dashboard: no crmsync_ metric in %s" % argv[2:])
        return 1
    bad, used, nq = [], set(), 0
    for p in panels(dash):
        if p.get("type") == "row":
            continue
        exprs = [t.get("expr", "") for t in p.get("targets", [])]
        if not exprs or not all(e.strip() for e in exprs):
            bad.append("panel %r has no query" % p.get("title"))
        for e in exprs:
            nq += 1
            # Metric names: identifiers not followed by "(" (functions) and not inside
            # {...} label matchers or quotes. Label names after by/on/without are skipped.
            e = re.sub(r'"[^"]*"', '""', e)
            e = re.sub(r"\{[^}]*\}", "", e)
            e = re.sub(r"\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
            e = re.sub(r"\[[^\]]*\]", "", e)
            for name in re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", e):
                if name in ("and", "or", "unless", "bool", "offset") or name.startswith("__"):
                    continue
                if re.fullmatch(r"[0-9.e]+", name):
                    continue
                used.add(name)
                if name not in have and name not in BUILTIN:
                    bad.append("panel %r: %s is not exported by any service" % (p.get("title"), name))
    for b in bad:
        print("check_dashboard: " + b)
    print("check_dashboard: %d queries, %d metrics, all exported" % (nq, len(used)) if not bad else
          "check_dashboard: %d problems" % len(bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
