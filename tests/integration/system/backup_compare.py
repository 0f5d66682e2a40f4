#!/usr/bin/env python3
"""backup_compare.py - the equality check of backup_restore_test.sh (standard library, psql).

  backup_compare.py HOST_A HOST_B DB

A is the reference database (never restored), B the restored one, both brought current by
the same syncs. B's schemas are imported into A through postgres_fdw, then for every table
of every schema either side has besides the system's own (amo, hollihop, analytics, ...):
the table must exist on both sides, and its rows must be equal as multisets (EXCEPT ALL
both ways: a row missing, changed or there twice counts) over every column but the
bookkeeping ones: synced_at (when the store wrote it) and deleted_at, which is compared as
"deleted or not" (a hook deleted the row in A, a later sync in B); of a deleted row
source_updated_at is not compared either (a hook's deletion keeps the last version, the
events API's stamps the event time). crmsync.cursors must be
equal too (crm, name, value). Exit 0 when all is equal; one FAIL line per difference.
"""
import subprocess
import sys

SYSTEM = ("pg_catalog", "information_schema", "public", "crmsync")
SKIP_COLS = {"synced_at", "deleted_at"}


def psql(host, db, sql):
    r = subprocess.run(["psql", "-X", "-q", "-tA", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-h", host,
                        "-U", "postgres", "-d", db, "-c", sql], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"backup_compare: psql failed on {host} {db}: {r.stderr.strip()}\n{sql[:2000]}")
    return [line.split("\t") for line in r.stdout.splitlines() if line != ""]


def q(name):
    return '"' + name.replace('"', '""') + '"'


def tables(host, db):
    """{(schema, table): [(column, type)]} of every ordinary table outside the system schemas."""
    out = {}
    rows = psql(host, db, "SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod) "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a "
                "ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped WHERE c.relkind IN ('r', 'p') "
                f"AND n.nspname NOT IN ({', '.join(repr(s) for s in SYSTEM)}) AND n.nspname NOT LIKE 'pg\\_%' "
                "AND n.nspname NOT LIKE 'b\\_%' ORDER BY 1, 2, a.attnum")
    for s, t, col, typ in rows:
        out.setdefault((s, t), []).append((col, typ))
    return out


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    host_a, host_b, db = sys.argv[1:4]
    ta, tb = tables(host_a, db), tables(host_b, db)
    bad = 0
    for key in sorted(set(ta) ^ set(tb)):
        print(f"FAIL {key[0]}.{key[1]}: only in {'A' if key in ta else 'B'}")
        bad += 1
    schemas = sorted({s for s, _ in tb} | {"crmsync"})
    sql = ["CREATE EXTENSION IF NOT EXISTS postgres_fdw", "DROP SERVER IF EXISTS restored CASCADE",
           f"CREATE SERVER restored FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '{host_b}', dbname '{db}')",
           "CREATE USER MAPPING FOR CURRENT_USER SERVER restored OPTIONS (user 'postgres')"]
    for s in schemas:
        sql += [f"DROP SCHEMA IF EXISTS {q('b_' + s)} CASCADE", f"CREATE SCHEMA {q('b_' + s)}"]
        if s == "crmsync":
            sql.append("IMPORT FOREIGN SCHEMA crmsync LIMIT TO (cursors) FROM SERVER restored INTO b_crmsync")
        else:
            sql.append(f"IMPORT FOREIGN SCHEMA {q(s)} FROM SERVER restored INTO {q('b_' + s)}")
    psql(host_a, db, ";\n".join(sql))

    queries, names, diffs = [], [], {}
    for (s, t) in sorted(set(ta) & set(tb)):
        if ta[(s, t)] != tb[(s, t)]:
            print(f"FAIL {s}.{t}: columns differ: A {ta[(s, t)]} B {tb[(s, t)]}")
            bad += 1
            continue
        cols = [c for c, _ in ta[(s, t)] if c not in SKIP_COLS]
        has_del = any(c == "deleted_at" for c, _ in ta[(s, t)])
        # A deletion learned from a hook keeps the row's last version; one learned from the
        # events API stamps the event's time: of a deleted row only "deleted" is compared.
        sel = ", ".join(f"CASE WHEN deleted_at IS NULL THEN {q(c)} END AS {q(c)}"
                        if has_del and c == "source_updated_at" else q(c) for c in cols)
        if has_del:
            sel += ", deleted_at IS NOT NULL AS deleted"
        a, b = f"{q(s)}.{q(t)}", f"{q('b_' + s)}.{q(t)}"
        diffs[f"{s}.{t}"] = (f"WITH a AS (SELECT {sel} FROM {a}), b AS (SELECT {sel} FROM {b}) "
                             "(SELECT 'A' AS side, x.* FROM (TABLE a EXCEPT ALL TABLE b) x LIMIT 2) UNION ALL "
                             "(SELECT 'B', y.* FROM (TABLE b EXCEPT ALL TABLE a) y LIMIT 2)")
        queries.append(f"WITH a AS (SELECT {sel} FROM {a}), b AS (SELECT {sel} FROM {b}) "
                       "SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM b), "
                       "(SELECT count(*) FROM (TABLE a EXCEPT ALL TABLE b) x), "
                       "(SELECT count(*) FROM (TABLE b EXCEPT ALL TABLE a) x), "
                       f"(SELECT count(*) FROM a WHERE {'deleted' if 'deleted' in sel else 'false'})")
        names.append(f"{s}.{t}")
    queries.append("SELECT (SELECT count(*) FROM crmsync.cursors), (SELECT count(*) FROM b_crmsync.cursors), "
                   "(SELECT count(*) FROM (SELECT crm, name, value FROM crmsync.cursors EXCEPT ALL "
                   "SELECT crm, name, value FROM b_crmsync.cursors) x), "
                   "(SELECT count(*) FROM (SELECT crm, name, value FROM b_crmsync.cursors EXCEPT ALL "
                   "SELECT crm, name, value FROM crmsync.cursors) x), 0")
    names.append("crmsync.cursors")
    rows = psql(host_a, db, ";\n".join(queries))
    if len(rows) != len(queries):
        sys.exit(f"backup_compare: {len(queries)} queries gave {len(rows)} rows")
    total = deleted = nonempty = 0
    per_schema = {}
    for name, r in zip(names, rows):
        na, nb, only_a, only_b, nd = map(int, r)
        total += na
        deleted += nd
        nonempty += na > 0
        s = name.split(".")[0]
        per_schema[s] = per_schema.get(s, 0) + 1
        if na != nb or only_a or only_b:
            print(f"FAIL {name}: A {na} rows, B {nb}; {only_a} only in A, {only_b} only in B")
            for row in psql(host_a, db, diffs[name]) if name in diffs else []:
                print("  " + " | ".join(v[:80] for v in row))
            bad += 1
    print("tables: " + ", ".join(f"{s} {n}" for s, n in sorted(per_schema.items())))
    print(f"compare: {total} rows ({deleted} deleted) in {len(names)} tables ({nonempty} not empty): "
          f"{'equal' if bad == 0 else f'{bad} differ'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
