/*
 * rederive.c - typed columns and child rows re-derived from each row's stored raw JSON with
 * the normaliser the sync services use (lib/normalise.c): no API call.
 *
 * Work comes as jobs in crmsync.rederive_jobs, one per entity (evolve.c queues them at
 * start-up, `crmsyncctl rederive` on demand), each belonging to a run of kind 'rederive' in
 * crmsync.sync_runs. The store's loop calls rederive_step() whenever no message waits: a
 * step reads the next rows of the oldest job in key order (keyset pagination), runs
 * normalise_row() on each raw, hashes the result as apply.c does, and writes, in one
 * transaction with the job's position (a killed store resumes where it stopped):
 *   in place: the typed columns, source_updated_at and content_hash of the rows whose hash
 *     changed - only where the row is still the one read (xmin), and for an upgrade only
 *     rows written before it began: a row a sync wrote since is this release's derivation
 *     of newer data, never overwritten by a re-derivation of older data - and their child
 *     rows replaced;
 *   rebuild (the entity's key changed, evolve.c renamed the old table aside): the rows
 *     inserted into the new table, the newest version winning per new key, synced_at and
 *     deleted_at carried over; the entity's batches wait (ACK_RETRY) until it is done.
 * Deleted rows stay deleted and synced_at does not move (nothing came from the CRM).
 * The normaliser's context: per row, "$name" columns (the call's parameters, e.g.
 * hollihop.ed_units.status) as the row holds them; per CRM, what evolve_ctx_value() gives
 * (the store's own copy of the sync services' settings), recorded in sync_runs.context.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus.h"
#include "clock.h"
#include "errors.h"
#include "json.h"
#include "log.h"
#include "normalise.h"
#include "rederive.h"
#include "store.h"

#define RD_MAX_TOKENS	(1 << 20)	/* one row's raw JSON */
#define RD_LOG_EVERY_MS	5000

/* Global context names the store can supply (evolve_ctx_value), as stable strings. */
static const char *const ctx_names[] = { NORM_CTX_AMO_LEAD_FIELD, NORM_CTX_UTC_OFFSET };


static void
set_status(struct rederive *rd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
set_status(struct rederive *rd, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&rd->mu);
	va_start(ap, fmt);
	vsnprintf(rd->status, sizeof(rd->status), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&rd->mu);
}

void
rederive_status(struct store *st, char *buf, size_t len)
{
	pthread_mutex_lock(&st->rd->mu);
	snprintf(buf, len, "%s", st->rd->status);
	pthread_mutex_unlock(&st->rd->mu);
}

static void
job_clear(struct rederive *rd)
{
	free(rd->sel_first);
	free(rd->sel_next);
	free(rd->create);
	free(rd->stage_copy);
	free(rd->apply);
	free(rd->progress);
	for (size_t c = 0; rd->e != NULL && c < rd->e->nchildren; c++) {
		if (rd->ccopy != NULL)
			free(rd->ccopy[c]);
		if (rd->cdel != NULL)
			free(rd->cdel[c]);
		if (rd->cins != NULL)
			free(rd->cins[c]);
	}
	free(rd->ccopy);
	free(rd->cdel);
	free(rd->cins);
	free(rd->set);
	for (size_t k = 0; k < RD_MAX_KEYS; k++)
		free(rd->last[k]);
	rd->sel_first = rd->sel_next = rd->create = rd->stage_copy = rd->apply = rd->progress = NULL;
	rd->ccopy = rd->cdel = rd->cins = NULL;
	rd->set = NULL;
	memset(rd->last, 0, sizeof(rd->last));
	rd->have = 0;
	rd->e = NULL;
	rd->created = 0;
	rd->solo = 0;
}

int
rederive_init(struct store *st)
{
	struct rederive *rd = calloc(1, sizeof(*rd));

	if (rd == NULL)
		return CS_ENOMEM;
	pthread_mutex_init(&rd->mu, NULL);
	buf_init(&rd->sbuf, (size_t)1 << 30);
	buf_init(&rd->cbuf, (size_t)1 << 30);
	arena_init(&rd->arena, (size_t)1 << 30);
	st->rd = rd;
	return 0;
}

void
rederive_free(struct store *st)
{
	struct rederive *rd = st->rd;

	if (rd == NULL)
		return;
	job_clear(rd);
	buf_free(&rd->sbuf);
	buf_free(&rd->cbuf);
	arena_free(&rd->arena);
	pthread_mutex_destroy(&rd->mu);
	free(rd);
	st->rd = NULL;
}

void
rederive_reset_conn(struct store *st)
{
	if (st->rd != NULL)
		st->rd->created = 0;
}

int
rederive_pending(struct store *st)
{
	return st->rd != NULL && (!st->rd->known || st->rd->npending > 0);
}

static int pending_refresh(struct store *st, struct rederive *rd);

int
rederive_blocks(struct store *st, int crm, const char *entity, char *err, size_t errlen)
{
	struct rederive *rd = st->rd;

	if (rd != NULL && !rd->known && pending_refresh(st, rd) != 0)
		return 0;	/* the batch itself will meet the database error */

	for (size_t i = 0; rd != NULL && i < rd->nblocked; i++) {
		if ((int)rd->blocked[i]->crm != crm || strcmp(rd->blocked[i]->name, entity) != 0)
			continue;
		snprintf(err, errlen, "upgrading: table %s.%s is being rebuilt (its key changed); retry later",
		    runs_crm_name(crm), entity);
		return 1;
	}
	return 0;
}

/* The run of this request: opened with the context the store derives with. */
static int
run_open(struct store *st, const struct cat_entity *e, const char *trigger, int64_t *run_id)
{
	struct buf ctx;
	PGresult *r = NULL;
	int rv;

	buf_init(&ctx, 64 * 1024);
	const struct cat_crm_desc *d = catalog_crm(e->crm);
	/* The context of every entity of the CRM: what this run derives with. */
	rv = buf_addc(&ctx, '{');
	for (size_t i = 0; i < d->nentities; i++) {
		size_t before = ctx.len;
		if (ctx.len > 1)
			rv |= buf_addc(&ctx, ',');
		size_t mark = ctx.len;
		rv |= evolve_ctx_json(st, &d->entities[i], &ctx);
		if (ctx.len == mark)
			ctx.len = before;	/* this entity reads none */
	}
	rv |= buf_addc(&ctx, '}');
	/* Keys repeat across entities; jsonb keeps one of each. */
	const char *v[3] = { runs_crm_name(e->crm), trigger, ctx.data };
	if (rv == 0)
		rv = db_execp(st, "INSERT INTO crmsync.sync_runs (crm, kind, trigger, entities, context) "
		    "VALUES ($1, 'rederive', $2, '{}', $3::jsonb) RETURNING id, context::text", 3, v, &r);
	if (rv == 0) {
		*run_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		stat_add(&store_stats[ST_RUNS_STARTED], 1);
		log_info("run.started", "run=%lld crm=%s kind=rederive trigger=%s context=%s",
		    (long long)*run_id, runs_crm_name(e->crm), trigger, lq(PQgetvalue(r, 0, 1)));
	} else {
		log_warnx("rederive.failed", "step=open_run err=%s", lq(db_errmsg(st, r)));
	}
	PQclear(r);
	buf_free(&ctx);
	return rv;
}

/* Close the re-derivation runs that have no pending job left. */
static int
runs_close(struct store *st)
{
	PGresult *r = NULL;
	int rv = db_execp(st, "UPDATE crmsync.sync_runs r SET finished_at = now(), status = CASE "
	    "WHEN EXISTS (SELECT 1 FROM crmsync.rederive_jobs j WHERE j.run_id = r.id AND j.status = 'failed') "
	    "THEN 'failed' WHEN EXISTS (SELECT 1 FROM crmsync.rederive_jobs j WHERE j.run_id = r.id "
	    "AND j.status = 'superseded') THEN 'abandoned' ELSE 'complete' END, "
	    "error = (SELECT string_agg(j.entity || ': ' || coalesce(j.error, j.status), '; ') "
	    "FROM crmsync.rederive_jobs j WHERE j.run_id = r.id AND j.status IN ('failed', 'superseded')) "
	    "WHERE r.kind = 'rederive' AND r.status = 'running' AND NOT EXISTS (SELECT 1 FROM "
	    "crmsync.rederive_jobs j WHERE j.run_id = r.id AND j.status = 'pending') "
	    "RETURNING r.id, r.status, r.rows_written", 0, NULL, &r);

	for (int i = 0; rv == 0 && i < PQntuples(r); i++) {
		stat_add(&store_stats[ST_RUNS_FINISHED], 1);
		log_info("run.finished", "run=%s kind=rederive status=%s written=%s", PQgetvalue(r, i, 0),
		    PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
	}
	PQclear(r);
	return rv;
}

int
rederive_enqueue(struct store *st, const struct cat_entity *e, const char *reason,
    int children, const char *synced_before, const char *source, const char *trigger,
    int64_t *run_id)
{
	char run[24], ch[2] = { children ? 't' : 'f', '\0' };
	PGresult *r = NULL;
	int rv;

	if (*run_id == 0 && (rv = run_open(st, e, trigger, run_id)) != 0)
		return rv;
	snprintf(run, sizeof(run), "%lld", (long long)*run_id);
	const char *v[7] = { run, runs_crm_name(e->crm), e->name, reason, ch,
	    synced_before != NULL ? synced_before : "", source != NULL ? source : "" };
	/* A pending in-place job of the entity is superseded (this one redoes every row);
	 * a pending rebuild never is: its rows exist only in the old table. */
	rv = db_execp(st, "UPDATE crmsync.rederive_jobs SET status = 'superseded', finished_at = now(), "
	    "error = 'superseded by run ' || $1::text WHERE crm = $2 AND entity = $3 AND status = 'pending' "
	    "AND source_table IS NULL", 3, v, NULL);
	if (rv == 0)
		rv = db_execp(st, "INSERT INTO crmsync.rederive_jobs (run_id, crm, entity, reason, children, "
		    "synced_before, source_table) VALUES ($1::bigint, $2, $3, $4, $5::boolean, "
		    "CASE $6 WHEN '' THEN NULL WHEN 'now' THEN now() ELSE $6::timestamptz END, NULLIF($7, '')) "
		    "RETURNING id", 7, v, &r);
	if (rv == 0)
		rv = db_execp(st, "UPDATE crmsync.sync_runs SET entities = array_append(entities, $2) "
		    "WHERE id = $1::bigint", 2, (const char *const[]){ run, e->name }, NULL);
	if (rv == 0)
		rv = runs_close(st);
	if (rv == 0)
		log_info("rederive.queued", "run=%s crm=%s entity=%s children=%d source=%s reason=%s", run,
		    v[1], e->name, children, source != NULL ? source : e->name, lq(reason));
	else
		log_warnx("rederive.failed", "step=queue entity=%s err=%s", e->name, lq(db_errmsg(st, r)));
	PQclear(r);
	if (st->rd != NULL)
		st->rd->known = 0;
	return rv;
}

/* Name of the n-byte context name at p into dst ("" when it does not fit). */
static const char *
ctx_name(const char *p, char *dst, size_t cap)
{
	size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");

	if (n >= cap)
		n = 0;
	memcpy(dst, p, n);
	dst[n] = '\0';
	return dst;
}

static int
ctx_own(const struct cat_entity *e, const char *name)
{
	for (size_t i = 0; i < e->ncols; i++)
		if (e->cols[i].json[0] == '$' && strcmp(e->cols[i].json + 1, name) == 0)
			return 1;
	return 0;
}

/*
 * Does column c read a global context value the store does not know of? Such a column
 * keeps its stored value. A value the store knows of but has not got (the amoCRM account's
 * offset before the account was synced) is absent for the normaliser, as it would be for
 * the sync service: the column derives as the sync service would derive it then, and
 * evolve.c re-derives it once the value is there (the recorded context changes).
 */
int
rederive_ctx_missing(const struct cat_entity *e, const struct cat_col *c)
{
	char name[64];

	for (const char *p = strchr(c->json, '$'); p != NULL; p = strchr(p + 1, '$')) {
		int known = 0;
		if (!ctx_name(p + 1, name, sizeof(name))[0] || ctx_own(e, name))
			continue;
		for (size_t i = 0; i < nitems(ctx_names); i++)
			known |= strcmp(ctx_names[i], name) == 0;
		if (!known)
			return 1;
	}
	return 0;
}

/* Keyset columns of the source (its primary key) and their types; "$name" columns it has. */
static int
job_source(struct store *st, struct rederive *rd)
{
	const char *v[2] = { rd->schema, rd->source };
	PGresult *r = NULL;
	int rv;

	rv = db_execp(st, "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_index i "
	    "JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
	    "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord) "
	    "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
	    "WHERE n.nspname = $1 AND c.relname = $2 AND i.indisprimary ORDER BY k.ord", 2, v, &r);
	if (rv != 0 || PQntuples(r) < 1 || PQntuples(r) > RD_MAX_KEYS) {
		log_warnx("rederive.failed", "table=%s.%s err=%s", rd->schema, rd->source,
		    lq(rv ? db_errmsg(st, r) : "no usable primary key"));
		PQclear(r);
		return rv ? rv : CS_EINVAL;
	}
	rd->nk = (size_t)PQntuples(r);
	for (size_t k = 0; k < rd->nk; k++) {
		snprintf(rd->keycol[k], sizeof(rd->keycol[k]), "%s", PQgetvalue(r, (int)k, 0));
		snprintf(rd->keytype[k], sizeof(rd->keytype[k]), "%s", PQgetvalue(r, (int)k, 1));
	}
	PQclear(r);
	rd->nctx = 0;
	for (size_t i = 0; i < rd->e->ncols && rd->nctx < RD_MAX_CTX; i++) {
		if (rd->e->cols[i].json[0] != '$')
			continue;
		const char *cv[3] = { rd->schema, rd->source, rd->e->cols[i].column };
		if ((rv = db_execp(st, "SELECT 1 FROM information_schema.columns WHERE table_schema = $1 "
		    "AND table_name = $2 AND column_name = $3", 3, cv, &r)) != 0)
			return rv;
		rd->ctxcol[rd->nctx] = i;
		rd->ctxhave[rd->nctx++] = PQntuples(r) > 0;
		PQclear(r);
	}
	return 0;
}

/* What is pending: totals of jobs not started yet (for progress) and the blocked entities. */
static int
pending_refresh(struct store *st, struct rederive *rd)
{
	PGresult *r = NULL;
	int rv;

	if ((rv = db_execp(st, "SELECT id, crm, entity, coalesce(source_table, entity), "
	    "coalesce(synced_before::text, '') FROM crmsync.rederive_jobs "
	    "WHERE status = 'pending' AND rows_total IS NULL", 0, NULL, &r)) != 0)
		return rv;
	for (int i = 0; i < PQntuples(r) && rv == 0; i++) {
		const struct cat_entity *e = catalog_find(strcmp(PQgetvalue(r, i, 1), "amo") == 0 ?
		    CAT_AMO : CAT_HOLLIHOP, PQgetvalue(r, i, 2));
		char sql[512];
		const char *v[2] = { PQgetvalue(r, i, 0), PQgetvalue(r, i, 4) };
		if (e == NULL)
			continue;
		/* The table name comes from the catalogue (or its __rebuild twin). */
		snprintf(sql, sizeof(sql), "UPDATE crmsync.rederive_jobs SET rows_total = (SELECT count(*) "
		    "FROM %s.%s%s WHERE synced_at < coalesce(NULLIF($2, '')::timestamptz, 'infinity')) "
		    "WHERE id = $1::bigint", catalog_crm(e->crm)->schema, e->name,
		    strcmp(PQgetvalue(r, i, 3), e->name) != 0 ? "__rebuild" : "");
		rv = db_execp(st, sql, 2, v, NULL);
	}
	PQclear(r);
	r = NULL;
	if (rv == 0)
		rv = db_execp(st, "SELECT crm, entity, source_table IS NOT NULL FROM crmsync.rederive_jobs "
		    "WHERE status = 'pending'", 0, NULL, &r);
	rd->nblocked = 0;
	rd->npending = rv == 0 ? PQntuples(r) : rd->npending;
	for (int i = 0; rv == 0 && i < PQntuples(r) && rd->nblocked < RD_MAX_BLOCKED; i++) {
		const struct cat_entity *e = catalog_find(strcmp(PQgetvalue(r, i, 0), "amo") == 0 ?
		    CAT_AMO : CAT_HOLLIHOP, PQgetvalue(r, i, 1));
		if (e != NULL && PQgetvalue(r, i, 2)[0] == 't')
			rd->blocked[rd->nblocked++] = e;
	}
	PQclear(r);
	if (rv == 0)
		rd->known = 1;
	return rv;
}

/* Put into ctx the global context values column c reads, as the store has them. */
static void
ctx_fill(struct store *st, const struct cat_entity *e, const struct cat_col *c, struct norm_ctx *ctx)
{
	const char *imp = evolve_ctx_implicit(c->type);
	char name[64];

	for (const char *p = strchr(c->json, '$'); p != NULL || imp != NULL;
	    p = p != NULL ? strchr(p + 1, '$') : NULL) {
		const char *v;
		if (p != NULL)
			ctx_name(p + 1, name, sizeof(name));
		else {
			snprintf(name, sizeof(name), "%s", imp);
			imp = NULL;
		}
		if (name[0] == '\0' || (v = evolve_ctx_value(st, e->crm, name)) == NULL)
			continue;
		/* norm_ctx keeps the pointer: a name from the static list, not this buffer. */
		for (size_t i = 0; i < nitems(ctx_names); i++)
			if (strcmp(ctx_names[i], name) == 0)
				norm_ctx_set(ctx, ctx_names[i], v);
	}
}

/* The pending job's row (job_load's query) into rd; 1 in *resumed when it had stopped midway. */
static int
job_parse(struct rederive *rd, PGresult *r, int *resumed)
{
	const struct cat_crm_desc *d = catalog_crm(strcmp(PQgetvalue(r, 0, 2), "amo") == 0 ?
	    CAT_AMO : CAT_HOLLIHOP);
	int rv = 0;

	rd->id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	rd->run_id = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	rd->e = catalog_find(d->crm, PQgetvalue(r, 0, 3));
	rd->schema = d->schema;
	rd->children = PQgetvalue(r, 0, 4)[0] == 't';
	snprintf(rd->since, sizeof(rd->since), "%s", PQgetvalue(r, 0, 5));
	rd->rebuild = PQgetvalue(r, 0, 6)[0] != '\0';
	rd->total = strtoll(PQgetvalue(r, 0, 7), NULL, 10);
	rd->read = strtoll(PQgetvalue(r, 0, 8), NULL, 10);
	rd->written = strtoll(PQgetvalue(r, 0, 9), NULL, 10);
	rd->merged = strtoll(PQgetvalue(r, 0, 10), NULL, 10);
	rd->skipped = strtoll(PQgetvalue(r, 0, 11), NULL, 10);
	rd->unreadable = strtoll(PQgetvalue(r, 0, 12), NULL, 10);
	rd->npending = strtoll(PQgetvalue(r, 0, 17), NULL, 10) + 1;
	stat_set(&store_stats[ST_RD_PENDING], rd->npending - 1);
	*resumed = !PQgetisnull(r, 0, 13);
	for (size_t k = 0; k < RD_MAX_KEYS; k++)
		if (!PQgetisnull(r, 0, 13 + (int)k) && (rd->last[k] = strdup(PQgetvalue(r, 0, 13 + (int)k))) == NULL)
			rv = CS_ENOMEM;
	if (rd->e != NULL)
		snprintf(rd->source, sizeof(rd->source), "%s", rd->rebuild ? PQgetvalue(r, 0, 6) : rd->e->name);
	return rv;
}

/* An entity this release no longer has: nothing to derive it with, the job fails. */
static int
job_fail_unknown(struct store *st, const struct rederive *rd, const char *entity)
{
	char id[24];
	const char *v[1] = { id };
	int rv;

	snprintf(id, sizeof(id), "%lld", (long long)rd->id);
	log_warnx("rederive.unknown_entity", "job=%s entity=%s", id, entity);
	if ((rv = db_execp(st, "UPDATE crmsync.rederive_jobs SET status = 'failed', finished_at = now(), "
	    "error = 'entity not in this release''s catalogue' WHERE id = $1::bigint", 1, v, NULL)) == 0)
		rv = runs_close(st);
	return rv;
}

/* The loaded job starts (or resumes): its source, SQL and context, started_at, status, log. */
static int
job_start(struct store *st, struct rederive *rd, int resumed)
{
	char id[24];
	const char *v[1] = { id };
	int rv;

	if ((rv = job_source(st, rd)) != 0 || (rv = rederive_sql(rd)) != 0)
		return rv;
	memset(&rd->gctx, 0, sizeof(rd->gctx));
	for (size_t i = 0; i < rd->e->ncols; i++)
		ctx_fill(st, rd->e, &rd->e->cols[i], &rd->gctx);
	for (size_t c = 0; c < rd->e->nchildren; c++)
		for (size_t i = 0; i < rd->e->children[c].ncols; i++)
			ctx_fill(st, rd->e, &rd->e->children[c].cols[i], &rd->gctx);
	snprintf(id, sizeof(id), "%lld", (long long)rd->id);
	if ((rv = db_execp(st, "UPDATE crmsync.rederive_jobs SET started_at = coalesce(started_at, now()) "
	    "WHERE id = $1::bigint", 1, v, NULL)) != 0)
		return rv;
	rd->have = 1;
	rd->t0 = rd->last_log = bus_now_ms();
	set_status(rd, "upgrading: %s %s.%s %lld/%lld rows (run %lld)", rd->rebuild ? "rebuilding" :
	    "re-deriving", rd->schema, rd->e->name, (long long)rd->read, (long long)rd->total,
	    (long long)rd->run_id);
	log_info("rederive.started", "job=%lld run=%lld entity=%s.%s source=%s children=%d rows=%lld%s",
	    (long long)rd->id, (long long)rd->run_id, rd->schema, rd->e->name, rd->source, rd->children,
	    (long long)rd->total, resumed ? " resumed=1" : "");
	return 0;
}

/* The oldest pending job (rebuilds first), its SQL built; rd->have = 0 when none. */
static int
job_load(struct store *st, struct rederive *rd)
{
	PGresult *r = NULL;
	int rv, resumed;

	job_clear(rd);
	if (!rd->known && (rv = pending_refresh(st, rd)) != 0)
		return rv;
	if ((rv = db_execp(st, "SELECT id, run_id, crm, entity, children, coalesce(synced_before::text, ''), "
	    "coalesce(source_table, ''), rows_total, rows_read, rows_written, rows_merged, rows_skipped, "
	    "rows_unreadable, last_key[1], last_key[2], last_key[3], last_key[4], "
	    "(SELECT coalesce(sum(greatest(rows_total - rows_read, 0)), 0) FROM crmsync.rederive_jobs "
	    "WHERE status = 'pending') FROM crmsync.rederive_jobs WHERE status = 'pending' "
	    "ORDER BY source_table IS NULL, id LIMIT 1", 0, NULL, &r)) != 0)
		return rv;
	if (PQntuples(r) == 0) {
		rd->npending = 0;
		rd->nblocked = 0;
		stat_set(&store_stats[ST_RD_PENDING], 0);
		set_status(rd, "%s", "");
		PQclear(r);
		return 0;
	}
	rv = job_parse(rd, r, &resumed);
	if (rd->e == NULL)
		rv = job_fail_unknown(st, rd, PQgetvalue(r, 0, 3));
	else if (rv == 0)
		rv = job_start(st, rd, resumed);
	PQclear(r);
	return rv;
}

static int
fmt_version(struct buf *o, int64_t us)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;

	if (us == 0 || gmtime_r(&t, &tm) == NULL)
		return buf_add_copy_null(o);
	return buf_printf(o, "%04d-%02d-%02d %02d:%02d:%02d.%06lld+00", tm.tm_year + 1900, tm.tm_mon + 1,
	    tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long long)(us % 1000000));
}

static int
copy_val(struct buf *o, const char *v, int isnull)
{
	return isnull || v == NULL ? buf_add_copy_null(o) : buf_add_copytext(o, v, strlen(v));
}

static int
exec_n(struct store *st, const char *sql, int n, const char *const *v, long *count, char *err,
    size_t errlen)
{
	PGresult *r = NULL;
	int rv = db_execp(st, sql, n, v, &r);

	if (rv != 0)
		snprintf(err, errlen, "%s", db_errmsg(st, r));
	else if (count != NULL)
		*count = strtol(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return rv;
}

/* One row of the step, derived: its record, or NULL (unreadable). */
struct rd_row {
	Crmsync__Record	*rec;
	int64_t		 hash;
	int		 stage;		/* to be written */
};

/* Key of a derived record as one string (for the rebuild's in-step dedupe). */
static void
rec_key(const struct rederive *rd, const Crmsync__Record *r, char *dst, size_t cap)
{
	size_t o = 0;

	dst[0] = '\0';
	for (size_t i = 0; i < rd->e->ncols; i++)
		if (rd->e->cols[i].flags & CF_KEY)
			o += (size_t)snprintf(dst + o, o < cap ? cap - o : 0, "%s\x1f", r->values[i]);
}

/* Rebuild: of records with the same new key in one step, only the newest is staged. */
static void
dedupe(const struct rederive *rd, struct rd_row *rows, int n)
{
	char a[1024], b[1024];

	for (int i = 0; i < n; i++) {
		if (!rows[i].stage)
			continue;
		rec_key(rd, rows[i].rec, a, sizeof(a));
		for (int k = i + 1; k < n; k++) {
			if (!rows[k].stage)
				continue;
			rec_key(rd, rows[k].rec, b, sizeof(b));
			if (strcmp(a, b) != 0)
				continue;
			if (rows[k].rec->source_updated_at_us >= rows[i].rec->source_updated_at_us) {
				rows[i].stage = 0;
				break;
			}
			rows[k].stage = 0;
		}
	}
}

/* The job is done: record it, drop a rebuilt table's predecessor, close its run. */
static int
job_finish(struct store *st, struct rederive *rd, const char *error)
{
	char id[24], detail[512], tbl[160];
	const char *v[2] = { id, error };
	int64_t secs = (bus_now_ms() - rd->t0) / 1000;
	int rv;

	snprintf(id, sizeof(id), "%lld", (long long)rd->id);
	snprintf(tbl, sizeof(tbl), "%s.%s", rd->schema, rd->e->name);
	snprintf(detail, sizeof(detail), "%s%s: read %lld, written %lld, merged into a newer row %lld, "
	    "changed since %lld, unreadable %lld%s%s", error != NULL ? "failed: " : "", rd->rebuild ? "rebuilt" : "re-derived",
	    (long long)rd->read, (long long)rd->written, (long long)rd->merged, (long long)rd->skipped,
	    (long long)rd->unreadable, rd->children ? ", child rows replaced" : "",
	    error != NULL ? error : "");
	if ((rv = db_exec(st, "BEGIN")) != 0)
		return rv;
	rv = db_execp(st, error != NULL ? "UPDATE crmsync.rederive_jobs SET status = 'failed', "
	    "finished_at = now(), error = $2 WHERE id = $1::bigint" : "UPDATE crmsync.rederive_jobs SET "
	    "status = 'done', finished_at = now() WHERE id = $1::bigint", error != NULL ? 2 : 1, v, NULL);
	if (rv == 0)
		rv = evolve_step(st, rd->schema, rd->e->name, tbl, "rederive", detail, rd->written, rd->run_id);
	if (rv == 0 && rd->rebuild && error == NULL) {
		char sql[256], what[256];
		snprintf(what, sizeof(what), "%s.%s", rd->schema, rd->source);
		if (rd->unreadable == 0) {
			snprintf(sql, sizeof(sql), "DROP TABLE %s.%s", rd->schema, rd->source);
			if ((rv = db_exec(st, sql)) == 0)
				rv = evolve_step(st, rd->schema, rd->e->name, what, "drop_table",
				    "rebuilt into the new table", rd->read, rd->run_id);
		} else {
			rv = evolve_step(st, rd->schema, rd->e->name, what, "keep_table",
			    "rows that could not be re-derived are still here", rd->unreadable, rd->run_id);
		}
	}
	if (rv == 0)
		rv = runs_close(st);
	if (rv == 0)
		rv = db_exec(st, "COMMIT");
	if (rv != 0) {
		db_rollback(st);
		return rv;
	}
	if (error != NULL)
		log_warnx("rederive.failed", "job=%lld entity=%s err=%s", (long long)rd->id, tbl, lq(error));
	log_info("rederive.finished", "job=%lld run=%lld entity=%s read=%lld written=%lld merged=%lld "
	    "changed_since=%lld unreadable=%lld secs=%lld", (long long)rd->id, (long long)rd->run_id, tbl,
	    (long long)rd->read, (long long)rd->written, (long long)rd->merged, (long long)rd->skipped,
	    (long long)rd->unreadable, (long long)secs);
	if (error == NULL && rd->written > 0)
		(void)analytics_rebuild(st, rd->e->crm, rd->e->name, "rederive");	/* logged */
	job_clear(rd);
	rd->known = 0;	/* re-read what is pending (and what is blocked) */
	return 0;
}

/*
 * One staged row as COPY text into o: stored key (in place), derived columns, version, hash,
 * then xmin, raw, synced, deleted (a rebuild keeps the stored raw, synced and deleted).
 */
static int
stage_row(const struct rederive *rd, PGresult *sel, int i, const struct rd_row *row, struct buf *o)
{
	const Crmsync__Record *r = row->rec;
	size_t nk = catalog_nkeys(rd->e);
	int base = (int)rd->nk, rv = 0;

	for (size_t k = 0; k < nk; k++) {
		rv |= rd->rebuild ? buf_add_copy_null(o) : copy_val(o, PQgetvalue(sel, i, (int)k), 0);
		rv |= buf_addc(o, '\t');
	}
	for (size_t c = 0; c < r->n_values; c++) {
		rv |= copy_val(o, r->values[c], norm_isnull(&r->null_mask, c));
		rv |= buf_addc(o, '\t');
	}
	rv |= fmt_version(o, r->source_updated_at_us);
	rv |= buf_printf(o, "\t%" PRId64 "\t", row->hash);
	if (rd->rebuild) {
		rv |= buf_add(o, "\\N\t", 3);
		rv |= copy_val(o, PQgetvalue(sel, i, base), 0);
		rv |= buf_addc(o, '\t');
		rv |= copy_val(o, PQgetvalue(sel, i, base + 3), 0);
		rv |= buf_addc(o, '\t');
		rv |= copy_val(o, PQgetvalue(sel, i, base + 4), PQgetisnull(sel, i, base + 4));
		rv |= buf_addc(o, '\n');
	} else {
		rv |= copy_val(o, PQgetvalue(sel, i, base + 1), 0);
		rv |= buf_add(o, "\t\\N\t\\N\t\\N\n", 10);
	}
	return rv;
}

/* Child c's rows of the staged records as COPY text in rd->cbuf: parent key, idx, values. */
static int
stage_child_rows(struct rederive *rd, const struct rd_row *rows, int n, size_t c, size_t *nrows)
{
	const struct cat_entity *e = rd->e;
	int rv = 0;

	*nrows = 0;
	buf_reset(&rd->cbuf);
	for (int i = 0; i < n && rv == 0; i++) {
		const Crmsync__Record *r = rows[i].rec;
		int idx = 0;
		if (!rows[i].stage)
			continue;
		for (size_t k = 0; k < r->n_children; k++) {
			const Crmsync__ChildRow *cr = r->children[k];
			if (cr->child != c)
				continue;
			for (size_t q = 0; q < e->ncols; q++)
				if (e->cols[q].flags & CF_KEY) {
					rv |= copy_val(&rd->cbuf, r->values[q], 0);
					rv |= buf_addc(&rd->cbuf, '\t');
				}
			rv |= buf_printf(&rd->cbuf, "%d", idx++);
			for (size_t v = 0; v < cr->n_values; v++) {
				rv |= buf_addc(&rd->cbuf, '\t');
				rv |= copy_val(&rd->cbuf, cr->values[v], norm_isnull(&cr->null_mask, v));
			}
			rv |= buf_addc(&rd->cbuf, '\n');
			(*nrows)++;
		}
	}
	return rv;
}

/* Replace child table c's rows of the staged records. */
static int
write_child(struct store *st, struct rederive *rd, const struct rd_row *rows, int n, size_t c,
    char *err, size_t errlen)
{
	char dcol[64];
	const char *dval = catalog_discriminator(&rd->e->children[c], dcol, sizeof(dcol));
	const char *dv[1] = { dval };
	size_t nrows;
	int rv;

	if ((rv = stage_child_rows(rd, rows, n, c, &nrows)) != 0) {
		snprintf(err, errlen, "child rows too large to stage: %s", cs_strerror(rv));
		return CS_ETOOBIG;
	}
	if ((rv = exec_n(st, rd->cdel[c], dval ? 1 : 0, dv, NULL, err, errlen)) != 0)
		return rv;
	if (nrows == 0)
		return 0;
	if ((rv = db_copy_in(st, rd->ccopy[c], &rd->cbuf, err, errlen)) != 0 ||
	    (rv = exec_n(st, rd->cins[c], dval ? 1 : 0, dv, NULL, err, errlen)) != 0)
		return rv;
	return 0;
}

/* Stage rows[] (COPY data into rd->sbuf / rd->cbuf per child) and write them. */
static int
step_write(struct store *st, struct rederive *rd, PGresult *sel, struct rd_row *rows, int n,
    long *written, char *err, size_t errlen)
{
	int rv = 0, nstage = 0;

	*written = 0;
	buf_reset(&rd->sbuf);
	for (int i = 0; i < n && rv == 0; i++) {
		if (!rows[i].stage)
			continue;
		nstage++;
		rv |= stage_row(rd, sel, i, &rows[i], &rd->sbuf);
	}
	if (rv != 0) {
		snprintf(err, errlen, "step too large to stage: %s", cs_strerror(rv));
		return CS_ETOOBIG;
	}
	if (nstage == 0)
		return 0;
	if (!rd->created) {
		if ((rv = exec_n(st, rd->create, 0, NULL, NULL, err, errlen)) != 0)
			return rv;
		rd->created = 1;
	}
	if ((rv = db_copy_in(st, rd->stage_copy, &rd->sbuf, err, errlen)) != 0 ||
	    (rv = exec_n(st, rd->apply, 0, NULL, written, err, errlen)) != 0)
		return rv;
	for (size_t c = 0; c < rd->e->nchildren && rd->children && *written > 0; c++)
		if ((rv = write_child(st, rd, rows, n, c, err, errlen)) != 0)
			return rv;
	return 0;
}

/* The job's position, counts and run progress, in the step's transaction. */
static int
step_progress(struct store *st, struct rederive *rd, PGresult *sel, int n, int64_t nread,
    int64_t nwritten, int64_t nmerged, int64_t nskipped, int64_t nbad, char *err, size_t errlen)
{
	char id[24], a[24], w[24], u[24], s[24], b[24], run[24], tot[24], rd_total[24];
	const char *v[7 + RD_MAX_KEYS] = { id, a, w, u, s, b };
	int rv;

	snprintf(id, sizeof(id), "%lld", (long long)rd->id);
	snprintf(a, sizeof(a), "%lld", (long long)nread);
	snprintf(w, sizeof(w), "%lld", (long long)nwritten);
	snprintf(u, sizeof(u), "%lld", (long long)nmerged);
	snprintf(s, sizeof(s), "%lld", (long long)nskipped);
	snprintf(b, sizeof(b), "%lld", (long long)nbad);
	for (size_t k = 0; k < rd->nk; k++)
		v[6 + k] = PQgetvalue(sel, n - 1, (int)k);
	if ((rv = exec_n(st, rd->progress, 6 + (int)rd->nk, v, NULL, err, errlen)) != 0)
		return rv;
	snprintf(run, sizeof(run), "%lld", (long long)rd->run_id);
	snprintf(tot, sizeof(tot), "%lld", (long long)(rd->read + nread));
	snprintf(rd_total, sizeof(rd_total), "%lld", (long long)rd->total);
	const char *pv[6] = { run, w, u, rd->e->name, tot, rd_total };
	return exec_n(st, "UPDATE crmsync.sync_runs SET batches = batches + 1, "
	    "rows_written = rows_written + $2::bigint, rows_unchanged = rows_unchanged + $3::bigint, "
	    "progress = progress || jsonb_build_object($4::text, jsonb_build_object('rows', $5::bigint, "
	    "'total', $6::bigint)) WHERE id = $1::bigint", 6, pv, NULL, err, errlen);
}

/* What one step did, counted as it goes. */
struct rd_step {
	PGresult	*sel;
	struct rd_row	*rows;
	int		 n;
	long		 written;
	int64_t		 nmerged, nbad, nstage;
	int64_t		 t0, t_sel, t_derive;
	char		 err[1024];
};

/* The job to work on: the one loaded, or the next pending one (none: *idle). */
static int
step_job(struct store *st, struct rederive *rd, int *idle)
{
	int rv;

	*idle = 0;
	if (rd->have)
		return 0;
	if ((rv = job_load(st, rd)) != 0) {
		log_warnx("rederive.load_failed", "err=%s", lq(db_errmsg(st, NULL)));
		if (rv != CS_EDBCONN && rd->e != NULL) {
			/* A job that cannot even start (its table is gone...) fails; others go on. */
			char e2[256];
			snprintf(e2, sizeof(e2), "cannot start: %s", cs_strerror(rv));
			rv = job_finish(st, rd, e2);
		}
		if (rv != 0)
			job_clear(rd);
		return rv;
	}
	*idle = !rd->have;
	return 0;
}

/* The next rows after the job's position (one at a time while rows are tried solo). */
static int
step_select(struct store *st, struct rederive *rd, struct rd_step *s)
{
	char lim[24];
	const char *v[2 + RD_MAX_KEYS];
	int p = 0, rv;

	snprintf(lim, sizeof(lim), "%lld", (long long)(rd->solo > 0 ? 1 : st->conf.rederive_rows));
	v[p++] = lim;
	if (rd->last[0] != NULL)
		for (size_t k = 0; k < rd->nk; k++)
			v[p++] = rd->last[k];
	if (rd->since[0])
		v[p++] = rd->since;
	s->t0 = clock_mono_us();
	rv = db_execp(st, rd->last[0] != NULL ? rd->sel_next : rd->sel_first, p, v, &s->sel);
	if (rv != 0)
		snprintf(s->err, sizeof(s->err), "%s", db_errmsg(st, s->sel));
	s->t_sel = clock_mono_us();
	return rv;
}

/* Derive every row: the normaliser, as the sync services run it, on the stored raw. */
static int
step_derive(struct rederive *rd, struct rd_step *s)
{
	int base = (int)rd->nk, rv = 0;

	arena_reset(&rd->arena);
	for (int i = 0; i < s->n; i++) {
		struct norm_ctx ctx = rd->gctx;
		struct json j;
		char nerr[256];
		const char *raw = PQgetvalue(s->sel, i, base);
		Crmsync__Record *rec = arena_alloc(&rd->arena, sizeof(*rec));

		for (size_t c = 0; c < rd->nctx; c++)
			if (!PQgetisnull(s->sel, i, base + 5 + (int)c))
				norm_ctx_set(&ctx, rd->e->cols[rd->ctxcol[c]].json + 1,
				    PQgetvalue(s->sel, i, base + 5 + (int)c));
		if (rec == NULL)
			return CS_ENOMEM;
		if ((rv = json_parse(&j, raw, strlen(raw), RD_MAX_TOKENS)) != 0 ||
		    normalise_row(rd->e, &j, 0, &ctx, &rd->arena, rec, NULL, nerr, sizeof(nerr)) != 0) {
			if (rv != 0)
				snprintf(nerr, sizeof(nerr), "%s", cs_strerror(rv));
			if (s->nbad + rd->unreadable < 10)
				log_warnx("rederive.unreadable", "entity=%s.%s key=%s reason=%s", rd->schema,
				    rd->e->name, lq(PQgetvalue(s->sel, i, 0)), lq(nerr));
			json_free(&j);
			s->nbad++;
			rv = 0;
			continue;
		}
		s->rows[i].rec = rec;
		s->rows[i].hash = apply_rec_hash(rec);
		json_free(&j);
		/*
		 * Every row is written, even one whose hash is what is stored: the hash speaks for
		 * the values derived when it was written, not for the columns as they are now (a
		 * column added back, values edited by hand).
		 */
		s->rows[i].stage = 1;
	}
	if (rd->rebuild)
		dedupe(rd, s->rows, s->n);
	for (int i = 0; rd->rebuild && i < s->n; i++)
		s->nmerged += s->rows[i].rec != NULL && !s->rows[i].stage;	/* lost to a newer row, same new key */
	for (int i = 0; i < s->n; i++)
		s->nstage += s->rows[i].stage;
	s->t_derive = clock_mono_us();
	return 0;
}

/* Write the derived rows and the job's new position in one transaction. */
static int
step_commit(struct store *st, struct rederive *rd, struct rd_step *s)
{
	int rv;

	if ((rv = db_exec(st, "BEGIN")) != 0)
		return rv;
	rv = step_write(st, rd, s->sel, s->rows, s->n, &s->written, s->err, sizeof(s->err));
	if (rv == 0)
		rv = step_progress(st, rd, s->sel, s->n, s->n, s->written, s->nmerged,
		    rd->rebuild ? 0 : s->nstage - s->written, s->nbad, s->err, sizeof(s->err));
	if (rv == 0 && (rv = db_exec(st, "COMMIT")) != 0)
		snprintf(s->err, sizeof(s->err), "COMMIT: %s", db_errmsg(st, NULL));
	if (rv != 0)
		db_rollback(st);
	return rv;
}

/*
 * PostgreSQL refused a value (CS_EDB). Several rows: take them one at a time to find it
 * (*retry). One row: count it unreadable and move past it; when not even the job's own
 * position can be written, the job fails and the store goes on with the next (no loop on
 * an error that will not go away, *done).
 */
static int
step_refused(struct store *st, struct rederive *rd, struct rd_step *s, int *retry, int *done)
{
	int rv;

	*retry = *done = 0;
	if (rd->solo == 0 && s->n > 1) {
		log_warnx("rederive.step_failed", "entity=%s.%s rows=%d err=%s; retrying them one by one",
		    rd->schema, rd->e->name, s->n, lq(s->err));
		rd->solo = s->n;
		*retry = 1;
		return 0;
	}
	log_warnx("rederive.unreadable", "entity=%s.%s key=%s reason=%s", rd->schema, rd->e->name,
	    lq(PQgetvalue(s->sel, 0, 0)), lq(s->err));
	s->nbad = s->n;
	s->written = s->nmerged = s->nstage = 0;
	if ((rv = db_exec(st, "BEGIN")) == 0 &&
	    (rv = step_progress(st, rd, s->sel, s->n, s->n, 0, 0, 0, s->nbad, s->err, sizeof(s->err))) == 0)
		rv = db_exec(st, "COMMIT");
	if (rv != 0)
		db_rollback(st);
	if (rv == CS_EDB) {
		char e2[1024];
		snprintf(e2, sizeof(e2), "%s", s->err);
		*done = 1;
		return job_finish(st, rd, e2);
	}
	return rv;
}

/* Committed: move the position on, count, and tell the status line and the log. */
static int
step_advance(struct rederive *rd, const struct rd_step *s)
{
	int rv = 0;

	for (size_t k = 0; k < rd->nk; k++) {
		free(rd->last[k]);
		if ((rd->last[k] = strdup(PQgetvalue(s->sel, s->n - 1, (int)k))) == NULL)
			rv = CS_ENOMEM;
	}
	rd->read += s->n;
	rd->written += s->written;
	rd->merged += s->nmerged;
	rd->skipped += rd->rebuild ? 0 : s->nstage - s->written;
	rd->unreadable += s->nbad;
	if (rd->solo > 0)
		rd->solo -= s->n;
	stat_add(&store_stats[ST_RD_READ], s->n);
	stat_add(&store_stats[ST_RD_WRITTEN], s->written);
	stat_add(&store_stats[ST_RD_UNREADABLE], s->nbad);
	int64_t left = rd->total - rd->read;
	stat_set(&store_stats[ST_RD_PENDING], (rd->npending - 1) + (left > 0 ? left : 0));
	set_status(rd, "upgrading: %s %s.%s %lld/%lld rows (run %lld)", rd->rebuild ? "rebuilding" :
	    "re-deriving", rd->schema, rd->e->name, (long long)rd->read, (long long)rd->total,
	    (long long)rd->run_id);
	if (bus_now_ms() - rd->last_log >= RD_LOG_EVERY_MS) {
		int64_t ms = bus_now_ms() - rd->t0;
		log_info("rederive.progress", "job=%lld entity=%s.%s read=%lld total=%lld written=%lld "
		    "rows_per_s=%lld", (long long)rd->id, rd->schema, rd->e->name, (long long)rd->read,
		    (long long)rd->total, (long long)rd->written, ms > 0 ? (long long)(rd->read * 1000 / ms) : 0);
		rd->last_log = bus_now_ms();
	}
	return rv;
}

int
rederive_step(struct store *st)
{
	struct rederive *rd = st->rd;
	struct rd_step s = { 0 };
	int rv, idle, retry, done;

	if ((rv = step_job(st, rd, &idle)) != 0 || idle)
		return rv;
	if ((rv = step_select(st, rd, &s)) != 0) {
		PQclear(s.sel);
		return rv == CS_EDBCONN ? rv : job_finish(st, rd, s.err);
	}
	if ((s.n = PQntuples(s.sel)) == 0) {
		PQclear(s.sel);
		return job_finish(st, rd, NULL);
	}
	if ((s.rows = calloc((size_t)s.n, sizeof(*s.rows))) == NULL) {
		PQclear(s.sel);
		return CS_ENOMEM;
	}
	if ((rv = step_derive(rd, &s)) == 0)
		rv = step_commit(st, rd, &s);
	if (rv == CS_EDB) {
		rv = step_refused(st, rd, &s, &retry, &done);
		if (retry || done)
			goto out;
	}
	if (rv != 0) {
		log_warnx("rederive.step_failed", "entity=%s.%s err=%s", rd->schema, rd->e->name,
		    lq(s.err[0] ? s.err : db_errmsg(st, NULL)));
		goto out;
	}
	log_debug("rederive.timing", "entity=%s rows=%d select_us=%lld derive_us=%lld write_us=%lld",
	    rd->e->name, s.n, (long long)(s.t_sel - s.t0), (long long)(s.t_derive - s.t_sel),
	    (long long)(clock_mono_us() - s.t_derive));
	rv = step_advance(rd, &s);
out:
	free(s.rows);
	PQclear(s.sel);
	return rv;
}

int
rederive_request(struct store *st, const Crmsync__RederiveRequest *rq, int64_t *run_id,
    char *err, size_t errlen)
{
	const struct cat_crm_desc *d = catalog_crm((enum cat_crm)rq->crm);
	PGresult *r = NULL;
	int rv;

	*run_id = 0;
	if (d == NULL) {
		snprintf(err, errlen, "unknown crm %d", (int)rq->crm);
		return CS_EINVAL;
	}
	for (size_t i = 0; i < rq->n_entities; i++)
		if (catalog_find(d->crm, rq->entities[i]) == NULL) {
			snprintf(err, errlen, "unknown entity %s for crm %s", rq->entities[i], d->schema);
			return CS_EUNKNOWN_ENTITY;
		}
	/* One re-derivation of a CRM at a time: a second would redo the first's rows. */
	const char *v[1] = { d->schema };
	if ((rv = db_execp(st, "SELECT run_id, entity FROM crmsync.rederive_jobs WHERE crm = $1 AND "
	    "status = 'pending' ORDER BY id LIMIT 1", 1, v, &r)) != 0) {
		snprintf(err, errlen, "%s", db_errmsg(st, r));
		PQclear(r);
		return rv;
	}
	if (PQntuples(r) > 0) {
		*run_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		snprintf(err, errlen, "busy: run %s is re-deriving %s.%s", PQgetvalue(r, 0, 0), d->schema,
		    PQgetvalue(r, 0, 1));
		PQclear(r);
		return CS_EBUSY;
	}
	PQclear(r);
	if ((rv = db_exec(st, "BEGIN")) != 0) {
		snprintf(err, errlen, "%s", db_errmsg(st, NULL));
		return rv;
	}
	for (size_t i = 0; i < d->nentities && rv == 0; i++) {
		const struct cat_entity *e = &d->entities[i];
		int want = rq->n_entities == 0;
		for (size_t k = 0; k < rq->n_entities && !want; k++)
			want = strcmp(rq->entities[k], e->name) == 0;
		if (want)
			rv = rederive_enqueue(st, e, "requested (crmsyncctl rederive)", 1, "", NULL, "crmsyncctl",
			    run_id);
	}
	if (rv == 0)
		rv = db_exec(st, "COMMIT");
	if (rv != 0) {
		snprintf(err, errlen, "%s", db_errmsg(st, NULL));
		db_rollback(st);
		*run_id = 0;
	}
	return rv;
}
