#!/usr/bin/env python3
"""upgrade_compare.py - the checks of upgrade_test.sh, as SQL over psql (standard library only).

  upgrade_compare.py snapshot PGHOST DB        before the upgrade: copy what must survive
                                               (keys, raw, deleted_at of every entity table;
                                               cursors; runs) into schema pre_upgrade of DB
  upgrade_compare.py survived PGHOST DB        after it: every row still there with the same
                                               raw, deleted rows still deleted, cursors and
                                               runs unchanged
  upgrade_compare.py compare PGHOST UP FRESH   UP (upgraded) against FRESH (synced from
                                               scratch by the new release): every typed
                                               column and child row of every live row whose
                                               raw both hold equal is equal

Columns whose source is a value of the call, not of the row ("$name" in the catalogue, e.g.
hollihop.ed_units.status = the statuses= pass), are not in raw: an upgrade keeps them as
stored, so they are reported, not compared. Exit 0 when every check passes.
"""
import json
import subprocess
import sys

BOOKKEEPING = {"synced_at", "content_hash"}


def psql(host, db, sql):
    r = subprocess.run(["psql", "-X", "-q", "-tA", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-h", host,
                        "-U", "postgres", "-d", db, "-c", sql], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"upgrade_compare: psql failed on {db}: {r.stderr.strip()}\n{sql[:2000]}")
    return [line.split("\t") for line in r.stdout.splitlines() if line != ""]


def psql_rows(host, db, queries):
    """Run queries that return one row each in one psql session; their rows, in order."""
    if not queries:
        return []
    rows = psql(host, db, ";\n".join(queries))
    if len(rows) != len(queries):
        sys.exit(f"upgrade_compare: {len(queries)} queries gave {len(rows)} rows on {db}")
    return rows


def entity_tables(host, db):
    """(schema, table, [key columns]) of every entity table the catalogue gives the database."""
    rows = psql(host, db, "SELECT s.crm, s.entity, (SELECT string_agg(a.attname, ',' ORDER BY k.ord) "
                "FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord) "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
                "WHERE i.indrelid = (s.crm || '.' || s.entity)::regclass AND i.indisprimary) "
                "FROM crmsync.catalog_state s ORDER BY 1, 2")
    return [(r[0], r[1], r[2].split(",")) for r in rows]


def q(name):
    return '"' + name.replace('"', '""') + '"'


def snapshot(host, db):
    tables = psql(host, db, "SELECT n.nspname, c.relname, (SELECT string_agg(a.attname, ',' ORDER BY k.ord) "
                  "FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord) "
                  "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
                  "WHERE i.indrelid = c.oid AND i.indisprimary) FROM pg_class c JOIN pg_namespace n "
                  "ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid "
                  "WHERE n.nspname IN ('amo', 'hollihop') AND c.relkind = 'r' AND a.attname = 'raw'")
    sql = ["DROP SCHEMA IF EXISTS pre_upgrade CASCADE", "CREATE SCHEMA pre_upgrade"]
    for s, t, keys in tables:
        cols = ", ".join(q(k) for k in keys.split(","))
        sql.append(f"CREATE TABLE pre_upgrade.{q(s + '__' + t)} AS SELECT {cols}, raw, deleted_at FROM {s}.{q(t)}")
    sql.append("CREATE TABLE pre_upgrade.cursors AS SELECT * FROM crmsync.cursors")
    sql.append("CREATE TABLE pre_upgrade.sync_runs AS SELECT id, crm, kind, status, started_at, finished_at, "
               "batches, rows_written, rows_unchanged, rows_deleted, error FROM crmsync.sync_runs")
    psql(host, db, ";\n".join(sql))
    print(f"snapshot: {len(tables)} tables copied to pre_upgrade")


def survived(host, db):
    bad = 0
    total = deleted = 0
    meta = psql(host, db, "SELECT table_name, string_agg(column_name, ',' ORDER BY ordinal_position) "
                "FROM information_schema.columns WHERE table_schema = 'pre_upgrade' AND table_name LIKE '%\\_\\_%' "
                "AND column_name NOT IN ('raw', 'deleted_at') GROUP BY 1 ORDER BY 1")
    queries = []
    for name, cols in meta:
        s, t = name.split("__", 1)
        on = " AND ".join(f"p.{q(c)} = t.{q(c)}" for c in cols.split(","))
        queries.append(f"SELECT count(*), count(*) FILTER (WHERE t.raw IS NULL), "
                       f"count(*) FILTER (WHERE t.raw IS NOT NULL AND t.raw <> p.raw), "
                       f"count(*) FILTER (WHERE t.raw IS NOT NULL AND t.deleted_at IS DISTINCT FROM p.deleted_at), "
                       f"count(*) FILTER (WHERE p.deleted_at IS NOT NULL), "
                       f"(SELECT count(*) FROM {s}.{q(t)}) FROM pre_upgrade.{q(name)} p "
                       f"LEFT JOIN {s}.{q(t)} t ON {on}")
    for (name, _), r in zip(meta, psql_rows(host, db, queries)):
        n, gone, raw, dele, ndel, now = map(int, r)
        total += n
        deleted += ndel
        if gone or raw or dele or now != n:
            print(f"FAIL {name.replace('__', '.', 1)}: {n} rows before, {now} after; {gone} gone, "
                  f"{raw} with other raw, {dele} with other deleted_at")
            bad += 1
    r = psql(host, db, "SELECT (SELECT count(*) FROM ((SELECT * FROM pre_upgrade.cursors) EXCEPT "
             "(SELECT * FROM crmsync.cursors)) x), (SELECT count(*) FROM pre_upgrade.cursors), "
             "(SELECT count(*) FROM ((SELECT * FROM pre_upgrade.sync_runs) EXCEPT (SELECT id, crm, kind, "
             "status, started_at, finished_at, batches, rows_written, rows_unchanged, rows_deleted, error "
             "FROM crmsync.sync_runs)) x), (SELECT count(*) FROM pre_upgrade.sync_runs)")[0]
    if r[0] != "0" or r[2] != "0":
        print(f"FAIL cursors changed: {r[0]} of {r[1]}; runs changed: {r[2]} of {r[3]}")
        bad += 1
    print(f"survived: {total} rows ({deleted} of them deleted) in {len(meta)} tables, {r[1]} cursors, {r[3]} runs")
    return bad


def compare(host, up, fresh):
    """Import UP's entity schemas into FRESH through postgres_fdw and compare there."""
    psql(host, fresh, "CREATE EXTENSION IF NOT EXISTS postgres_fdw; "
         "DROP SERVER IF EXISTS up CASCADE; "
         f"CREATE SERVER up FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '{host}', dbname '{up}'); "
         "CREATE USER MAPPING FOR CURRENT_USER SERVER up OPTIONS (user 'postgres'); "
         "DROP SCHEMA IF EXISTS up_amo CASCADE; DROP SCHEMA IF EXISTS up_hollihop CASCADE; "
         "DROP SCHEMA IF EXISTS up_crmsync CASCADE; "
         "CREATE SCHEMA up_amo; CREATE SCHEMA up_hollihop; CREATE SCHEMA up_crmsync; "
         "IMPORT FOREIGN SCHEMA amo FROM SERVER up INTO up_amo; "
         "IMPORT FOREIGN SCHEMA hollihop FROM SERVER up INTO up_hollihop; "
         "IMPORT FOREIGN SCHEMA crmsync LIMIT TO (catalog_state) FROM SERVER up INTO up_crmsync")
    # Both must derive with the same catalogue and context.
    d = psql(host, fresh, "SELECT crm || '.' || entity, (SELECT string_agg(k, ',') FROM (SELECT "
             "jsonb_object_keys(f.descriptor) UNION SELECT jsonb_object_keys(u.descriptor)) x(k) "
             "WHERE f.descriptor->k IS DISTINCT FROM u.descriptor->k) FROM crmsync.catalog_state f "
             "FULL JOIN up_crmsync.catalog_state u USING (crm, entity) "
             "WHERE f.descriptor IS DISTINCT FROM u.descriptor")
    bad = 0
    for entity, keys in d:
        # The context (the amoCRM account's offset...) is what each store had when it
        # started; the values it gives are compared below, column by column.
        if keys == "ctx":
            print(f"note {entity}: the two stores started with other context values")
            continue
        print(f"FAIL {entity} is derived differently in the two databases: {keys}")
        bad += 1

    colmap = {}
    for schema, table, cols in psql(host, fresh, "SELECT table_schema, table_name, "
                                    "string_agg(column_name, ',' ORDER BY ordinal_position) FROM "
                                    "information_schema.columns WHERE table_schema IN ('amo', 'hollihop', "
                                    "'up_amo', 'up_hollihop') GROUP BY 1, 2"):
        colmap[(schema, table)] = cols.split(",")
    descs = {(r[0], r[1]): json.loads(r[2]) for r in psql(host, fresh, "SELECT crm, entity, descriptor "
                                                             "FROM crmsync.catalog_state")}
    checks, queries = [], []
    for s, t, keys in entity_tables(host, fresh):
        desc = descs[(s, t)]
        ctx_cols = [c for c, src in desc["cols"].items() if src.startswith("$") and c not in keys]
        fcols, ucols = colmap.get((s, t), []), colmap.get(("up_" + s, t), [])
        cols = [c for c in fcols if c in ucols and c not in BOOKKEEPING and c not in ctx_cols and c != "raw"]
        missing = [c for c in fcols if c not in ucols]
        if missing:
            print(f"FAIL {s}.{t}: columns missing after the upgrade: {missing}")
            bad += 1
        if ctx_cols:
            print(f"note {s}.{t}: {ctx_cols} come from the call, not from raw: kept as stored, not compared")
        on = " AND ".join(f"u.{q(k)} = f.{q(k)}" for k in keys)
        per_col = "".join(f", count(*) FILTER (WHERE u.{q(c)} IS DISTINCT FROM f.{q(c)})" for c in cols)
        checks.append(("table", s, t, cols))
        queries.append(f"SELECT count(*), count(*) FILTER (WHERE f.raw IS NULL), "
                       f"count(*) FILTER (WHERE f.raw IS NOT NULL AND f.raw <> u.raw){per_col} "
                       f"FROM up_{s}.{q(t)} u LEFT JOIN {s}.{q(t)} f ON {on} WHERE u.deleted_at IS NULL")
        for ctab, ch in desc["children"].items():
            pcols = ch["parent"].split(",") if ch["parent"] else keys
            disc = ch["disc"].split("=", 1) if ch["disc"] else None
            ccols = [c for c in colmap.get((s, ctab), []) if c in colmap.get(("up_" + s, ctab), [])]
            sel = ", ".join(f"c.{q(c)}" for c in ccols)
            join = " AND ".join(f"c.{q(pc)} = p.{q(k)}" for pc, k in zip(pcols, keys))
            where = f" WHERE c.{q(disc[0])} = '{disc[1]}'" if disc else ""
            parents = (f"(SELECT {', '.join('u.' + q(k) for k in keys)} FROM up_{s}.{q(t)} u JOIN {s}.{q(t)} f "
                       f"ON {on} WHERE u.deleted_at IS NULL AND u.raw = f.raw)")
            checks.append(("child", s, ctab, t))
            queries.append(f"WITH p AS MATERIALIZED {parents}, "
                           f"a AS (SELECT {sel} FROM up_{s}.{q(ctab)} c JOIN p ON {join}{where}), "
                           f"b AS (SELECT {sel} FROM {s}.{q(ctab)} c JOIN p ON {join}{where}) "
                           f"SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM ((TABLE a EXCEPT ALL TABLE b) "
                           f"UNION ALL (TABLE b EXCEPT ALL TABLE a)) x)")
    compared = rows_total = child_total = 0
    for c, r in zip(checks, psql_rows(host, fresh, queries)):
        if c[0] == "table":
            _, s, t, cols = c
            n, absent, rawdiff = int(r[0]), int(r[1]), int(r[2])
            diffs = {col: int(v) for col, v in zip(cols, r[3:]) if int(v) != 0}
            rows_total += n
            compared += n > 0
            if absent or rawdiff or diffs:
                print(f"FAIL {s}.{t}: {n} live rows; {absent} not in the fresh database, {rawdiff} with "
                      f"other raw; columns differing: {diffs}")
                bad += 1
        else:
            _, s, ctab, t = c
            child_total += int(r[0])
            if r[1] != "0":
                print(f"FAIL {s}.{ctab} (children of {t}): {r[1]} rows differ of {r[0]}")
                bad += 1
    print(f"compare: {rows_total} live rows of {compared} tables and {child_total} child rows "
          f"checked against a fresh sync")
    return bad


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    cmd, host = sys.argv[1], sys.argv[2]
    if cmd == "snapshot":
        snapshot(host, sys.argv[3])
        return 0
    if cmd == "survived":
        return 1 if survived(host, sys.argv[3]) else 0
    if cmd == "compare" and len(sys.argv) == 5:
        return 1 if compare(host, sys.argv[3], sys.argv[4]) else 0
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main())
