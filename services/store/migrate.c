/*
 * migrate.c - the store owns the schema.
 *
 * Start-up takes a session advisory lock (so two stores starting at once take turns),
 * applies every numbered migration not yet in crmsync.schema_migrations, each in its own
 * transaction together with its bookkeeping row, then brings the entity tables in line
 * with the compiled-in catalogue (evolve.c: tables and columns created, converted or
 * dropped, re-derivations from raw queued), in one transaction, still under the lock,
 * and last creates the analytic tables (analytics.c).
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
	{ 3, "schema evolution and re-derivation from raw",
	  /* What each entity table was derived with (evolve.c), every step evolution took, and
	   * the re-derivation jobs with their position (rederive.c). A run records the context
	   * values it derived with. */
	  "ALTER TABLE crmsync.sync_runs ADD COLUMN context jsonb;\n"
	  "CREATE TABLE crmsync.catalog_state (\n"
	  "  crm text NOT NULL,\n"
	  "  entity text NOT NULL,\n"
	  "  descriptor jsonb NOT NULL,\n"
	  "  recorded_at timestamptz NOT NULL DEFAULT now(),\n"
	  "  PRIMARY KEY (crm, entity));\n"
	  "CREATE TABLE crmsync.schema_steps (\n"
	  "  id bigserial PRIMARY KEY,\n"
	  "  at timestamptz NOT NULL DEFAULT now(),\n"
	  "  release text NOT NULL,\n"
	  "  crm text,\n"
	  "  entity text,\n"
	  "  tbl text NOT NULL,\n"
	  "  action text NOT NULL,\n"
	  "  detail text,\n"
	  "  rows bigint,\n"
	  "  run_id bigint);\n"
	  "CREATE TABLE crmsync.rederive_jobs (\n"
	  "  id bigserial PRIMARY KEY,\n"
	  "  run_id bigint NOT NULL,\n"
	  "  crm text NOT NULL,\n"
	  "  entity text NOT NULL,\n"
	  "  reason text NOT NULL,\n"
	  "  children boolean NOT NULL,\n"
	  "  synced_before timestamptz,\n"
	  "  source_table text,\n"
	  "  status text NOT NULL DEFAULT 'pending'\n"
	  "    CHECK (status IN ('pending','done','failed','superseded')),\n"
	  "  last_key text[],\n"
	  "  rows_total bigint,\n"
	  "  rows_read bigint NOT NULL DEFAULT 0,\n"
	  "  rows_written bigint NOT NULL DEFAULT 0,\n"
	  "  rows_merged bigint NOT NULL DEFAULT 0,\n"
	  "  rows_skipped bigint NOT NULL DEFAULT 0,\n"
	  "  rows_unreadable bigint NOT NULL DEFAULT 0,\n"
	  "  created_at timestamptz NOT NULL DEFAULT now(),\n"
	  "  started_at timestamptz,\n"
	  "  updated_at timestamptz,\n"
	  "  finished_at timestamptz,\n"
	  "  error text);\n"
	  "CREATE INDEX ON crmsync.rederive_jobs (crm) WHERE status = 'pending';\n" },
	{ 4, "deletions refused, and each entity's last complete full read",
	  /* Why a complete full run deleted nothing for an entity (runs.c, one object per
	   * entity), and the row count the next run is measured against. */
	  "ALTER TABLE crmsync.sync_runs ADD COLUMN IF NOT EXISTS deletions_refused jsonb NOT NULL DEFAULT '{}';\n"
	  "ALTER TABLE crmsync.entity_state ADD COLUMN IF NOT EXISTS last_full_rows bigint,\n"
	  "  ADD COLUMN IF NOT EXISTS last_full_run_id bigint;\n" },
	{ 5, "analytics schema, its bookkeeping, CRM schema changes",
	  /* The analyst layer (analytics.c): each table's definition hash and last rebuild; the
	   * custom fields and pipeline stages last seen (schema_snapshot) and every change to
	   * them (schema_changes). The tables themselves are created at each start from their
	   * an_table definitions. */
	  "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'analytics') THEN\n"
	  "  CREATE SCHEMA analytics; END IF; END $$;\n"
	  "COMMENT ON SCHEMA analytics IS 'crmsync: what analysts ask, derived from the mirror by the store "
	  "in the same transaction as the rows it derives from (README, For analysts)';\n"
	  "CREATE TABLE crmsync.analytics_state (\n"
	  "  name text PRIMARY KEY,\n"
	  "  definition_hash text NOT NULL,\n"
	  "  rebuilt_at timestamptz,\n"
	  "  rebuild_ms bigint,\n"
	  "  rebuild_rows bigint);\n"
	  "CREATE TABLE crmsync.schema_snapshot (\n"
	  "  crm text NOT NULL,\n"
	  "  kind text NOT NULL,\n"
	  "  scope text NOT NULL,\n"
	  "  object_id bigint NOT NULL,\n"
	  "  name text,\n"
	  "  type text,\n"
	  "  PRIMARY KEY (crm, kind, scope, object_id));\n"
	  "CREATE TABLE crmsync.schema_changes (\n"
	  "  id bigserial PRIMARY KEY,\n"
	  "  at timestamptz NOT NULL DEFAULT now(),\n"
	  "  crm text NOT NULL,\n"
	  "  kind text NOT NULL,\n"
	  "  change text NOT NULL CHECK (change IN ('added','renamed','retyped','deleted')),\n"
	  "  scope text NOT NULL,\n"
	  "  object_id bigint NOT NULL,\n"
	  "  old_name text,\n"
	  "  new_name text);\n"
	  "COMMENT ON TABLE crmsync.schema_changes IS 'One row per custom field or pipeline stage a CRM "
	  "added, renamed, retyped or deleted, as the store saw it (compared with crmsync.schema_snapshot "
	  "at start and after each batch of custom_fields or pipelines). kind: custom_field (scope = "
	  "entity type) or pipeline_status (scope = pipeline id)';\n" },
	{ 10, "dead letters resolved: resubmitted or discarded, by whom, why, when",
	  /* crmsyncctl deadletters (deadletter.c): a row stays, closed with its resolution;
	   * a resubmission that failed again keeps its row open with the new error. */
	  "ALTER TABLE crmsync.dead_letters ADD COLUMN IF NOT EXISTS resolved_at timestamptz,\n"
	  "  ADD COLUMN IF NOT EXISTS resolution text CHECK (resolution IN ('resubmitted', 'discarded')),\n"
	  "  ADD COLUMN IF NOT EXISTS resolution_reason text,\n"
	  "  ADD COLUMN IF NOT EXISTS resolved_by text,\n"
	  "  ADD COLUMN IF NOT EXISTS resubmit_error text,\n"
	  "  ADD COLUMN IF NOT EXISTS resubmit_at timestamptz;\n"
	  "CREATE INDEX IF NOT EXISTS dead_letters_open ON crmsync.dead_letters (id) WHERE resolved_at IS NULL;\n" },
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

/* The catalogue against the database (evolve.c), then raw's compression, in one transaction. */
static int
migrate_catalog(struct store *st)
{
	int rv;

	if ((rv = db_exec(st, "BEGIN")) != 0)
		return rv;
	/*
	 * The analytics schema's views are the store's own, made again at every start from their
	 * definitions (analytics.c, after this): dropped first, so none of them pins a mirror
	 * column the catalogue retypes or drops (ALTER COLUMN TYPE fails under a view).
	 */
	rv = db_exec(st, "DO $$ DECLARE v record; BEGIN\n"
	    "  FOR v IN SELECT viewname FROM pg_views WHERE schemaname = 'analytics' LOOP\n"
	    "    EXECUTE format('DROP VIEW IF EXISTS analytics.%I CASCADE', v.viewname);\n"
	    "  END LOOP; END $$");
	if (rv == 0)
		rv = evolve_schema(st);
	/*
	 * raw compressed with lz4 where the server has it: several times cheaper than the
	 * default pglz for the rows big enough to be compressed (over ~2 kB). Only tables not
	 * yet switched are altered, so a restart takes no table locks.
	 */
	if (rv == 0)
		rv = db_exec(st, "DO $$ DECLARE r record; BEGIN\n"
		    "  FOR r IN SELECT c.oid::regclass AS t FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid\n"
		    "    JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('amo', 'hollihop')\n"
		    "    AND c.relkind = 'r' AND a.attname = 'raw' AND a.attcompression IS DISTINCT FROM 'l' LOOP\n"
		    "    EXECUTE format('ALTER TABLE %s ALTER COLUMN raw SET COMPRESSION lz4', r.t);\n"
		    "  END LOOP;\n"
		    "EXCEPTION WHEN feature_not_supported THEN RAISE NOTICE 'no lz4 here: raw keeps pglz';\n"
		    "END $$;");
	if (rv == 0)
		rv = db_exec(st, "COMMIT");
	if (rv != 0) {
		log_warnx("migrate.catalog_failed", "err=%s", lq(db_errmsg(st, NULL)));
		db_rollback(st);
		return rv;
	}
	log_info("migrate.catalog", "ok=1");
	return 0;
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
	if (rv == 0)
		rv = analytics_init(st);
	(void)db_exec(st, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")");
	return rv;
}
