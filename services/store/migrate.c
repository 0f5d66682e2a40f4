/*
 * migrate.c - the store owns the schema.
 *
 * Start-up takes a session advisory lock (so two stores starting at once take turns),
 * applies every numbered migration not yet in crmsync.schema_migrations, each in its own
 * transaction together with its bookkeeping row, then brings the entity tables in line
 * with the compiled-in catalogue: CREATE TABLE IF NOT EXISTS and ADD COLUMN IF NOT EXISTS
 * (additive only: a column the catalogue dropped stays, with its data).
 */
#include <stdio.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "store.h"

#define MIGRATE_LOCK_KEY	"7301001"

struct migration {
	int		 version;
	const char	*name;
	const char	*sql;
};

static const struct migration migrations[] = {
	{ 1, "crmsync system schema",
	  /* Schemas a DBA created beforehand (deploy/compose/server-b) are used as they are:
	   * CREATE SCHEMA IF NOT EXISTS would still need CREATE on the database. */
	  "DO $$ DECLARE s text; BEGIN FOREACH s IN ARRAY ARRAY['amo', 'hollihop'] LOOP\n"
	  "  IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = s) THEN\n"
	  "    EXECUTE format('CREATE SCHEMA %I', s);\n"
	  "  END IF; END LOOP; END $$;\n"
	  "CREATE TABLE crmsync.sync_runs (\n"
	  "  id bigserial PRIMARY KEY,\n"
	  "  crm text NOT NULL,\n"
	  "  kind text NOT NULL,\n"
	  "  trigger text,\n"
	  "  entities text[],\n"
	  "  started_at timestamptz NOT NULL DEFAULT now(),\n"
	  "  finished_at timestamptz,\n"
	  "  status text NOT NULL DEFAULT 'running'\n"
	  "    CHECK (status IN ('running','complete','partial','failed','abandoned')),\n"
	  "  batches bigint NOT NULL DEFAULT 0,\n"
	  "  rows_written bigint NOT NULL DEFAULT 0,\n"
	  "  rows_unchanged bigint NOT NULL DEFAULT 0,\n"
	  "  rows_deleted bigint NOT NULL DEFAULT 0,\n"
	  "  progress jsonb NOT NULL DEFAULT '{}',\n"
	  "  error text);\n"
	  "CREATE INDEX ON crmsync.sync_runs (crm, started_at);\n"
	  "CREATE TABLE crmsync.cursors (\n"
	  "  crm text NOT NULL,\n"
	  "  name text NOT NULL,\n"
	  "  value text NOT NULL,\n"
	  "  updated_at timestamptz NOT NULL DEFAULT now(),\n"
	  "  PRIMARY KEY (crm, name));\n"
	  "CREATE TABLE crmsync.dead_letters (\n"
	  "  id bigserial PRIMARY KEY,\n"
	  "  received_at timestamptz NOT NULL DEFAULT now(),\n"
	  "  crm text,\n"
	  "  entity text,\n"
	  "  batch_id bigint,\n"
	  "  run_id bigint,\n"
	  "  reason text NOT NULL,\n"
	  "  payload bytea);\n"
	  "CREATE TABLE crmsync.run_seen (\n"
	  "  run_id bigint NOT NULL,\n"
	  "  entity text NOT NULL,\n"
	  "  key text NOT NULL,\n"
	  "  PRIMARY KEY (run_id, entity, key));\n"
	  "CREATE TABLE crmsync.entity_state (\n"
	  "  crm text NOT NULL,\n"
	  "  entity text NOT NULL,\n"
	  "  last_ok_at timestamptz,\n"
	  "  last_run_id bigint,\n"
	  "  last_rows bigint,\n"
	  "  last_error text,\n"
	  "  last_error_at timestamptz,\n"
	  "  PRIMARY KEY (crm, entity));\n" },
	{ 2, "seen keys as one array per batch",
	  /* One row per batch instead of one per record: a full export's bookkeeping costs a
	   * few hundred rows, not a million index entries. A full run still running under the
	   * old format cannot end with deletions: it is closed as abandoned (deletes nothing). */
	  "UPDATE crmsync.sync_runs SET status = 'abandoned', finished_at = now(),\n"
	  "  error = coalesce(error, 'interrupted: the store was upgraded during the run')\n"
	  "  WHERE status = 'running' AND kind = 'full';\n"
	  "DROP TABLE crmsync.run_seen;\n"
	  "CREATE TABLE crmsync.run_seen (\n"
	  "  run_id bigint NOT NULL,\n"
	  "  entity text NOT NULL,\n"
	  "  keys text[] NOT NULL);\n"
	  "CREATE INDEX ON crmsync.run_seen (run_id, entity);\n" },
	{ 4, "deletions refused, and each entity's last complete full read",
	  /* Why a complete full run deleted nothing for an entity (runs.c, one object per
	   * entity), and the row count the next run is measured against. */
	  "ALTER TABLE crmsync.sync_runs ADD COLUMN IF NOT EXISTS deletions_refused jsonb NOT NULL DEFAULT '{}';\n"
	  "ALTER TABLE crmsync.entity_state ADD COLUMN IF NOT EXISTS last_full_rows bigint,\n"
	  "  ADD COLUMN IF NOT EXISTS last_full_run_id bigint;\n" },
};

static int
migrate_apply(struct store *st, const struct migration *m)
{
	char ver[16];
	const char *vals[2] = { ver, m->name };
	PGresult *r = NULL;
	int rv;

	snprintf(ver, sizeof(ver), "%d", m->version);
	if ((rv = db_exec(st, "BEGIN")) != 0)
		return rv;
	if ((rv = db_execp(st, m->sql, 0, NULL, &r)) != 0) {
		log_warnx("migrate.failed", "version=%d name=%s err=%s", m->version, lq(m->name),
		    lq(db_errmsg(st, r)));
		PQclear(r);
		db_rollback(st);
		return rv;
	}
	PQclear(r);
	if ((rv = db_execp(st, "INSERT INTO crmsync.schema_migrations (version, name) VALUES ($1, $2)",
	    2, vals, NULL)) != 0 || (rv = db_exec(st, "COMMIT")) != 0) {
		db_rollback(st);
		return rv;
	}
	log_info("migrate.applied", "version=%d name=%s", m->version, lq(m->name));
	return 0;
}

/* CREATE/ADD COLUMN for every catalogue table, in one transaction. */
static int
migrate_catalog(struct store *st)
{
	const enum cat_crm crms[] = { CAT_HOLLIHOP, CAT_AMO };
	struct buf b;
	int rv = 0;
	size_t ntables = 0;

	buf_init(&b, 16u << 20);
	for (size_t c = 0; c < nitems(crms) && rv == 0; c++) {
		const struct cat_crm_desc *d = catalog_crm(crms[c]);
		for (size_t i = 0; i < d->nentities && rv == 0; i++) {
			const struct cat_entity *e = &d->entities[i];
			rv = catalog_ddl(e, d->schema, &b);
			rv |= buf_printf(&b, "ALTER TABLE %s.%s ADD COLUMN IF NOT EXISTS content_hash bigint;\n",
			    d->schema, e->name);
			for (size_t k = 0; k < e->ncols && rv == 0; k++)
				rv = buf_printf(&b, "ALTER TABLE %s.%s ADD COLUMN IF NOT EXISTS %s %s;\n",
				    d->schema, e->name, e->cols[k].column, catalog_sql_type(e->cols[k].type));
			for (size_t ch = 0; ch < e->nchildren && rv == 0; ch++) {
				const struct cat_child *cc = &e->children[ch];
				for (size_t k = 0; k < cc->ncols && rv == 0; k++)
					rv = buf_printf(&b, "ALTER TABLE %s.%s ADD COLUMN IF NOT EXISTS %s %s;\n",
					    d->schema, cc->table, cc->cols[k].column,
					    catalog_sql_type(cc->cols[k].type));
			}
			ntables += 1 + e->nchildren;
		}
	}
	/*
	 * raw compressed with lz4 where the server has it: several times cheaper than the
	 * default pglz for the rows big enough to be compressed (over ~2 kB). Only tables not
	 * yet switched are altered, so a restart takes no table locks.
	 */
	rv |= buf_printf(&b, "DO $$ DECLARE r record; BEGIN\n"
	    "  FOR r IN SELECT c.oid::regclass AS t FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid\n"
	    "    JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('amo', 'hollihop')\n"
	    "    AND c.relkind = 'r' AND a.attname = 'raw' AND a.attcompression IS DISTINCT FROM 'l' LOOP\n"
	    "    EXECUTE format('ALTER TABLE %%s ALTER COLUMN raw SET COMPRESSION lz4', r.t);\n"
	    "  END LOOP;\n"
	    "EXCEPTION WHEN feature_not_supported THEN RAISE NOTICE 'no lz4 here: raw keeps pglz';\n"
	    "END $$;\n");
	if (rv != 0) {
		buf_free(&b);
		return rv;
	}
	if ((rv = db_exec(st, "BEGIN")) == 0) {
		PGresult *r = NULL;
		/* The DDL comes only from the compiled-in catalogue, never from input. */
		rv = db_execp(st, b.data, 0, NULL, &r);
		if (rv != 0)
			log_warnx("migrate.catalog_failed", "err=%s", lq(db_errmsg(st, r)));
		PQclear(r);
		rv = rv != 0 ? rv : db_exec(st, "COMMIT");
		if (rv != 0)
			db_rollback(st);
	}
	if (rv == 0)
		log_info("migrate.catalog", "tables=%zu", ntables);
	buf_free(&b);
	return rv;
}

int
migrate_run(struct store *st)
{
	PGresult *r = NULL;
	int rv, have;

	if ((rv = db_exec(st, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")")) != 0)
		return rv;
	rv = db_exec(st, "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'crmsync') "
	    "THEN CREATE SCHEMA crmsync; END IF; END $$;"
	    "CREATE TABLE IF NOT EXISTS crmsync.schema_migrations ("
	    " version integer PRIMARY KEY, name text NOT NULL,"
	    " applied_at timestamptz NOT NULL DEFAULT now())");
	for (size_t i = 0; i < nitems(migrations) && rv == 0; i++) {
		char ver[16];
		const char *v[1] = { ver };
		snprintf(ver, sizeof(ver), "%d", migrations[i].version);
		if ((rv = db_execp(st, "SELECT 1 FROM crmsync.schema_migrations WHERE version = $1",
		    1, v, &r)) != 0)
			break;
		have = PQntuples(r) > 0;
		PQclear(r);
		r = NULL;
		if (!have)
			rv = migrate_apply(st, &migrations[i]);
	}
	if (rv == 0)
		rv = migrate_catalog(st);
	(void)db_exec(st, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")");
	return rv;
}
