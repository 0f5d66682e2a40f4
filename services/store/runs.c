/*
 * runs.c - sync-run bookkeeping, cursors, deletion detection and dead letters.
 *
 * A run row is opened by RunBegin (answered with each entity's rows of its last complete
 * full read, the sender's bound on what is plausible) and closed by RunEnd. Only a RunEnd
 * with status COMPLETE of a FULL run soft-deletes, and only for the entities it lists as
 * complete: rows of those entities whose keys the run never sent (crmsync.run_seen) get
 * deleted_at. Deletion that cannot lie, one rule for both CRMs (deletion_verdict): an
 * entity deletes nothing when its reading may be wrong: rows it could not read
 * (dead-lettered), a total the API reported that the rows do not match, rows more than
 * CS_STORE_DELETE_GUARD percent below its last complete full read, or deletions of more
 * than that percent (or all) of its live rows. A refusal is logged (run.deletion_refused),
 * counted (deletions_refused{crm,entity}), kept per entity in sync_runs.deletions_refused
 * and the run's error. Everything for one RunEnd happens in one transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "store.h"

/* Below this many rows a drop or a deletion is not "suspicious" by size alone (a small
 * reference table losing a few rows), unless it empties the table. */
#define RUNS_GUARD_MIN_ROWS	10

static char refused_names[ST_REFUSED_MAX][160];
static size_t refused_n;

size_t
runs_metrics_init(void)
{
	const enum cat_crm crms[] = { CAT_AMO, CAT_HOLLIHOP };

	refused_n = 0;
	for (size_t c = 0; c < sizeof(crms) / sizeof(crms[0]); c++) {
		const struct cat_crm_desc *d = catalog_crm(crms[c]);
		for (size_t i = 0; i < d->nentities && refused_n < ST_REFUSED_MAX; i++, refused_n++) {
			struct stat_counter *sc = &store_stats[ST__N + refused_n];
			snprintf(refused_names[refused_n], sizeof(refused_names[0]),
			    "deletions_refused{crm=\"%s\",entity=\"%s\"}", runs_crm_name((int)crms[c]),
			    d->entities[i].name);
			sc->name = refused_names[refused_n];
			sc->help = "complete full runs whose deletions the store refused for this entity "
			    "(reason in crmsync.sync_runs.deletions_refused)";
		}
	}
	return refused_n;
}

static void
refused_count(const char *crm, const char *entity)
{
	char want[160];

	snprintf(want, sizeof(want), "deletions_refused{crm=\"%s\",entity=\"%s\"}", crm, entity);
	for (size_t i = 0; i < refused_n; i++)
		if (strcmp(refused_names[i], want) == 0)
			stat_add(&store_stats[ST__N + i], 1);
}

const char *
runs_crm_name(int crm)
{
	switch (crm) {
	case CRMSYNC__CRM__CRM_AMO:		return "amo";
	case CRMSYNC__CRM__CRM_HOLLIHOP:	return "hollihop";
	default:				return "unknown";
	}
}

const char *
runs_kind_name(Crmsync__SyncKind k)
{
	switch (k) {
	case CRMSYNC__SYNC_KIND__SYNC_FULL:	return "full";
	case CRMSYNC__SYNC_KIND__SYNC_HOOKS:	return "hooks";
	default:				return "incremental";
	}
}

static const char *
status_name(Crmsync__RunStatus s)
{
	switch (s) {
	case CRMSYNC__RUN_STATUS__RUN_COMPLETE:	return "complete";
	case CRMSYNC__RUN_STATUS__RUN_PARTIAL:	return "partial";
	case CRMSYNC__RUN_STATUS__RUN_FAILED:	return "failed";
	default:				return "running";
	}
}

int
runs_begin(struct store *st, const Crmsync__RunBegin *rb, int64_t *run_id, int64_t *last_rows,
    char *err, size_t errlen)
{
	struct buf ents;
	PGresult *r = NULL;
	int rv;

	*run_id = 0;
	if (catalog_crm((enum cat_crm)rb->crm) == NULL) {
		snprintf(err, errlen, "unknown crm %d", (int)rb->crm);
		return CS_EINVAL;
	}
	/* text[] literal of the entity names; names are checked against the catalogue. */
	buf_init(&ents, 64 * 1024);
	buf_addc(&ents, '{');
	for (size_t i = 0; i < rb->n_entities; i++) {
		if (catalog_find((enum cat_crm)rb->crm, rb->entities[i]) == NULL) {
			snprintf(err, errlen, "unknown entity %s", rb->entities[i]);
			buf_free(&ents);
			return CS_EUNKNOWN_ENTITY;
		}
		buf_printf(&ents, "%s%s", i ? "," : "", rb->entities[i]);
	}
	buf_addc(&ents, '}');
	const char *v[4] = { runs_crm_name(rb->crm), runs_kind_name(rb->kind), rb->trigger, ents.data };
	/*
	 * One run of a kind per CRM at a time: a run of the same kind still marked running was
	 * cut off (its sender crashed or was killed). Close it as abandoned, which deletes
	 * nothing, and drop its seen-keys, so the new run starts cleanly.
	 */
	if ((rv = db_exec(st, "BEGIN")) != 0) {
		snprintf(err, errlen, "BEGIN: %s", db_errmsg(st, NULL));
		goto out;
	}
	rv = db_execp(st, "WITH gone AS (UPDATE crmsync.sync_runs SET status = 'abandoned', "
	    "finished_at = now(), error = coalesce(error, 'interrupted: a new run started') "
	    "WHERE crm = $1 AND kind = $2 AND status = 'running' RETURNING id) "
	    "DELETE FROM crmsync.run_seen WHERE run_id IN (SELECT id FROM gone)", 2, v, NULL);
	if (rv == 0)
		rv = db_execp(st, "INSERT INTO crmsync.sync_runs (crm, kind, trigger, entities) "
		    "VALUES ($1, $2, $3, $4) RETURNING id", 4, v, &r);
	if (rv == 0)
		*run_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	r = NULL;
	/* What each entity read in its last complete full run, in the request's order. */
	if (rv == 0)
		rv = db_execp(st, "SELECT coalesce(s.last_full_rows, -1) FROM unnest($2::text[]) "
		    "WITH ORDINALITY u(entity, i) LEFT JOIN crmsync.entity_state s ON s.crm = $1 "
		    "AND s.entity = u.entity ORDER BY u.i", 2, (const char *const[]){ v[0], v[3] }, &r);
	for (size_t i = 0; rv == 0 && i < rb->n_entities; i++)
		last_rows[i] = (int)i < PQntuples(r) ? strtoll(PQgetvalue(r, (int)i, 0), NULL, 10) : -1;
	if (rv == 0)
		rv = db_exec(st, "COMMIT");
	if (rv != 0) {
		snprintf(err, errlen, "%s", db_errmsg(st, r));
		db_rollback(st);
	}
	PQclear(r);
out:
	buf_free(&ents);
	return rv;
}

int
runs_progress(struct store *st, const Crmsync__RunProgress *rp)
{
	char run[24], rows[24], pages[24];
	const char *v[4] = { run, rp->entity, rows, pages };

	snprintf(run, sizeof(run), "%lld", (long long)rp->run_id);
	snprintf(rows, sizeof(rows), "%lld", (long long)rp->rows);
	snprintf(pages, sizeof(pages), "%lld", (long long)rp->pages);
	return db_execp(st, "UPDATE crmsync.sync_runs SET progress = progress || "
	    "jsonb_build_object($2::text, jsonb_build_object('rows', $3::bigint, 'pages', $4::bigint)) "
	    "WHERE id = $1 AND status = 'running'", 4, v, NULL);
}

int
runs_rejected_rows(struct store *st, const Crmsync__RecordBatch *b, char *err, size_t errlen)
{
	char bid[24], rid[24];
	int rv = 0;

	snprintf(bid, sizeof(bid), "%llu", (unsigned long long)b->batch_id);
	snprintf(rid, sizeof(rid), "%lld", (long long)b->run_id);
	for (size_t i = 0; i < b->n_rejected && rv == 0; i++) {
		const Crmsync__RejectedRow *x = b->rejected[i];
		const char *vals[6] = { runs_crm_name(b->crm), b->entity, bid, rid,
		    x->reason != NULL && x->reason[0] ? x->reason : "unreadable row",
		    (const char *)x->raw_json.data };
		int lens[6] = { 0, 0, 0, 0, 0, (int)x->raw_json.len };
		int fmts[6] = { 0, 0, 0, 0, 0, 1 };
		PGresult *r = PQexecParams(st->pg, "INSERT INTO crmsync.dead_letters (crm, entity, batch_id, "
		    "run_id, reason, payload) VALUES ($1, $2, $3, $4, 'row: ' || $5, $6)", 6, NULL, vals,
		    lens, fmts, 0);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			rv = db_classify(st, r);
			snprintf(err, errlen, "dead letter of a rejected row: %s", db_errmsg(st, r));
		}
		PQclear(r);
	}
	if (rv == 0)
		log_warnx("batch.rows_rejected", "crm=%s entity=%s batch=%llu run=%lld n=%zu first=%s",
		    runs_crm_name(b->crm), b->entity, (unsigned long long)b->batch_id, (long long)b->run_id,
		    b->n_rejected, lq(b->rejected[0]->reason));
	return rv;
}

/* What the store knows about one entity of a RunEnd before it may delete. */
struct verdict {
	long	 live, unseen;		/* live rows, and those the run did not see */
	int64_t	 last_rows, last_run;	/* its last complete full read (-1: none) */
	char	 why[512];		/* why the reading is not trusted; "" = trusted */
};

/* Its last complete full read, from entity_state. */
static int
last_full(struct store *st, const char *crm, const char *entity, struct verdict *vd)
{
	const char *v[2] = { crm, entity };
	PGresult *r = NULL;
	int rv;

	vd->last_rows = vd->last_run = -1;
	rv = db_execp(st, "SELECT coalesce(last_full_rows, -1), coalesce(last_full_run_id, -1) "
	    "FROM crmsync.entity_state WHERE crm = $1 AND entity = $2", 2, v, &r);
	if (rv == 0 && PQntuples(r) == 1) {
		vd->last_rows = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		vd->last_run = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	}
	PQclear(r);
	return rv;
}

/*
 * The one rule, for both CRMs: may this complete reading of an entity be trusted to say
 * what vanished? Fills vd->why when not. Facts first (rows it could not read, a total it
 * does not match), then, for entities that delete by comparison (sizes), sizes against
 * CS_STORE_DELETE_GUARD (100 turns those off).
 */
static void
deletion_verdict(const struct store *st, const Crmsync__EntityResult *er, int sizes,
    struct verdict *vd)
{
	int64_t guard = sizes ? st->conf.delete_guard_pct : 100, drop = vd->last_rows - er->rows;

	vd->why[0] = '\0';
	if (er->rows_rejected > 0) {
		snprintf(vd->why, sizeof(vd->why), "%lld rows could not be read (kept in "
		    "crmsync.dead_letters)", (long long)er->rows_rejected);
	} else if (er->api_total_opt_case == CRMSYNC__ENTITY_RESULT__API_TOTAL_OPT_API_TOTAL &&
	    er->api_total != er->rows) {
		snprintf(vd->why, sizeof(vd->why), "read %lld rows, but the API reports a total of %lld",
		    (long long)er->rows, (long long)er->api_total);
	} else if (guard < 100 && vd->last_rows > 0 && drop * 100 > vd->last_rows * guard &&
	    (drop > RUNS_GUARD_MIN_ROWS || er->rows == 0)) {
		snprintf(vd->why, sizeof(vd->why), "read %lld rows, %lld%% fewer than the %lld of its last "
		    "complete run %lld (CS_STORE_DELETE_GUARD %lld%%)", (long long)er->rows,
		    (long long)(drop * 100 / vd->last_rows), (long long)vd->last_rows,
		    (long long)vd->last_run, (long long)guard);
	} else if (guard < 100 && vd->unseen > 0 && vd->unseen == vd->live) {
		snprintf(vd->why, sizeof(vd->why), "it would delete every row");
	} else if (guard < 100 && vd->unseen > RUNS_GUARD_MIN_ROWS &&
	    vd->unseen * 100 > vd->live * guard) {
		snprintf(vd->why, sizeof(vd->why), "over CS_STORE_DELETE_GUARD %lld%% of the table",
		    (long long)guard);
	}
}

/*
 * One statement over e's table against the keys run_id saw ($1 the run, $2 the entity);
 * sqlfmt takes the schema, the table and the key expression of alias t, in that order
 * (or as %1$s, %2$s, %3$s where one is needed twice).
 */
static int
unseen_exec(struct store *st, int64_t run_id, const struct cat_entity *e, const char *sqlfmt,
    PGresult **r, char *err, size_t errlen)
{
	const struct cat_crm_desc *d = catalog_crm(e->crm);
	char keyexpr[512], sql[2048], run[24];
	const char *v[2] = { run, e->name };
	int rv;

	*r = NULL;
	snprintf(run, sizeof(run), "%lld", (long long)run_id);
	apply_key_expr(e, "t", keyexpr, sizeof(keyexpr));
	snprintf(sql, sizeof(sql), sqlfmt, d->schema, e->name, keyexpr);
	if ((rv = db_execp(st, sql, 2, v, r)) != 0) {
		snprintf(err, errlen, "%s", db_errmsg(st, *r));
		PQclear(*r);
		*r = NULL;
	}
	return rv;
}

/* Live rows of e, and those run_id did not see. */
static int
count_unseen(struct store *st, int64_t run_id, const struct cat_entity *e, struct verdict *vd,
    char *err, size_t errlen)
{
	PGresult *r;
	int rv;

	/* A hash join against the run's keys (an array per batch, unnested once). */
	rv = unseen_exec(st, run_id, e, "SELECT count(*), count(*) FILTER (WHERE s.key IS NULL) "
	    "FROM %s.%s t LEFT JOIN (SELECT DISTINCT unnest(keys) AS key FROM crmsync.run_seen "
	    "WHERE run_id = $1 AND entity = $2) s ON s.key = %s WHERE t.deleted_at IS NULL",
	    &r, err, errlen);
	if (rv != 0)
		return rv;
	vd->live = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	vd->unseen = strtol(PQgetvalue(r, 0, 1), NULL, 10);
	PQclear(r);
	return 0;
}

/* Record a refusal: the run's per-entity record, the log, the counter. */
static int
refuse(struct store *st, const char *run, const char *crm, const struct cat_entity *e,
    const Crmsync__EntityResult *er, const struct verdict *vd, char *err, size_t errlen)
{
	char rows[24], last[24], total[24], rej[24], unseen[24], live[24];
	int has_total = er->api_total_opt_case == CRMSYNC__ENTITY_RESULT__API_TOTAL_OPT_API_TOTAL;
	const char *v[9] = { run, e->name, vd->why, rows, vd->last_rows >= 0 ? last : NULL,
	    has_total ? total : NULL, rej, unseen, live };
	int rv;

	snprintf(rows, sizeof(rows), "%lld", (long long)er->rows);
	snprintf(last, sizeof(last), "%lld", (long long)vd->last_rows);
	snprintf(total, sizeof(total), "%lld", (long long)er->api_total);
	snprintf(rej, sizeof(rej), "%lld", (long long)er->rows_rejected);
	snprintf(unseen, sizeof(unseen), "%ld", vd->unseen);
	snprintf(live, sizeof(live), "%ld", vd->live);
	rv = db_execp(st, "UPDATE crmsync.sync_runs SET deletions_refused = deletions_refused || "
	    "jsonb_build_object($2::text, jsonb_strip_nulls(jsonb_build_object('reason', $3::text, "
	    "'rows', $4::bigint, 'last_full_rows', $5::bigint, 'api_total', $6::bigint, "
	    "'rows_rejected', $7::bigint, 'would_delete', $8::bigint, 'live', $9::bigint))) "
	    "WHERE id = $1", 9, v, NULL);
	if (rv != 0) {
		snprintf(err, errlen, "deletions_refused: %s", db_errmsg(st, NULL));
		return rv;
	}
	log_warnx("run.deletion_refused", "run=%s crm=%s entity=%s would_delete=%ld live=%ld rows=%lld "
	    "last_full_rows=%lld reason=%s", run, crm, e->name, vd->unseen, vd->live,
	    (long long)er->rows, (long long)vd->last_rows, lq(vd->why));
	return 0;
}

/*
 * Soft-delete the rows of e that run_id did not see, and refresh the analytic tables for
 * them in the same transaction: the tables are current when the RunEnd commits, so the
 * complete run's full rebuild can wait until after the ack (analytics_rebuild_due).
 * One statement returns the count and the keys (a text[] literal, as apply_key_expr
 * renders them, so PostgreSQL does the quoting).
 */
static int
runs_delete_unseen(struct store *st, int64_t run_id, const struct cat_entity *e, long *deleted,
    char *err, size_t errlen)
{
	PGresult *r;
	int rv;

	*deleted = 0;
	rv = unseen_exec(st, run_id, e, "WITH d AS (UPDATE %1$s.%2$s t SET deleted_at = now() "
	    "WHERE t.deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM (SELECT unnest(keys) AS key "
	    "FROM crmsync.run_seen WHERE run_id = $1 AND entity = $2) s WHERE s.key = %3$s) "
	    "RETURNING %3$s AS key) SELECT count(*), coalesce(array_agg(key), '{}')::text FROM d",
	    &r, err, errlen);
	if (rv != 0)
		return rv;
	*deleted = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	if (*deleted > 0)
		rv = analytics_refresh(st, e, PQgetvalue(r, 0, 1), err, errlen);
	PQclear(r);
	return rv;
}

/* One RunEnd being applied: the run's row, and what its entities came to. */
struct run_end {
	const Crmsync__RunEnd	*re;
	char			 run[24], crm[16], kind[16];
	enum cat_crm		 c;
	int			 running;	/* 0: already closed (a retried RunEnd) */
	int			 complete_full;	/* a COMPLETE FULL run: it may delete */
	long			 total_deleted;
	const char		*refused[ST_REFUSED_MAX];
	size_t			 nref;
	struct buf		 errs;		/* the run's error: the sender's, then refusals */
};

/* BEGIN and lock the run's row. On failure the transaction is rolled back. */
static int
run_end_lock(struct store *st, struct run_end *x, char *err, size_t errlen)
{
	const char *v[1] = { x->run };
	PGresult *r = NULL;
	int rv;

	if ((rv = db_exec(st, "BEGIN")) != 0) {
		snprintf(err, errlen, "BEGIN: %s", db_errmsg(st, NULL));
		return rv;
	}
	rv = db_execp(st, "SELECT crm, kind, status FROM crmsync.sync_runs WHERE id = $1 FOR UPDATE", 1, v, &r);
	if (rv != 0 || PQntuples(r) != 1) {
		snprintf(err, errlen, "run %s: %s", x->run, rv ? db_errmsg(st, r) : "no such run");
		PQclear(r);
		db_rollback(st);
		return rv ? rv : CS_ENOENT;
	}
	snprintf(x->crm, sizeof(x->crm), "%s", PQgetvalue(r, 0, 0));
	snprintf(x->kind, sizeof(x->kind), "%s", PQgetvalue(r, 0, 1));
	x->running = strcmp(PQgetvalue(r, 0, 2), "running") == 0;
	PQclear(r);
	x->c = strcmp(x->crm, "amo") == 0 ? CAT_AMO : CAT_HOLLIHOP;
	x->complete_full = x->re->status == CRMSYNC__RUN_STATUS__RUN_COMPLETE &&
	    strcmp(x->kind, "full") == 0;
	return 0;
}

/* How far the entity's reading can be trusted (vd->why), and what deleting would remove. */
static int
run_end_verdict(struct store *st, const struct run_end *x, const Crmsync__EntityResult *er,
    const struct cat_entity *e, struct verdict *vd, char *err, size_t errlen)
{
	char e_err[600] = "";
	int rv;

	memset(vd, 0, sizeof(*vd));
	vd->last_rows = vd->last_run = -1;
	if (er->complete && x->complete_full) {
		if ((rv = last_full(st, x->crm, e->name, vd)) != 0 ||
		    ((e->flags & CE_FULL_DELETES) &&
		    (rv = count_unseen(st, x->re->run_id, e, vd, e_err, sizeof(e_err))) != 0)) {
			snprintf(err, errlen, "%s", e_err[0] ? e_err : db_errmsg(st, NULL));
			return rv;
		}
	}
	if (er->complete)
		deletion_verdict(st, er, (e->flags & CE_FULL_DELETES) != 0, vd);
	return 0;
}

/* Delete what the run did not see, or refuse to and say why in e_err. */
static int
run_end_delete(struct store *st, struct run_end *x, const Crmsync__EntityResult *er,
    const struct cat_entity *e, const struct verdict *vd, char *e_err, size_t e_errlen,
    char *err, size_t errlen)
{
	long deleted = 0;
	int rv;

	if (vd->why[0] != '\0') {
		snprintf(e_err, e_errlen, "%s: refusing to delete %ld of %ld rows: %s",
		    e->name, vd->unseen, vd->live, vd->why);
		if ((rv = refuse(st, x->run, x->crm, e, er, vd, err, errlen)) != 0)
			return rv;
		if (x->nref < sizeof(x->refused) / sizeof(x->refused[0]))
			x->refused[x->nref++] = e->name;
		buf_printf(&x->errs, "%s%s", x->errs.len ? "; " : "", e_err);
		return 0;
	}
	if ((rv = runs_delete_unseen(st, x->re->run_id, e, &deleted, err, errlen)) != 0)
		return rv;
	x->total_deleted += deleted;
	if (deleted > 0)
		log_info("run.deleted", "run=%s crm=%s entity=%s rows=%ld", x->run, x->crm,
		    e->name, deleted);
	return 0;
}

/* entity_state: a trusted read (e_err empty) or the entity's error. */
static int
run_end_entity_state(struct store *st, const struct run_end *x, const Crmsync__EntityResult *er,
    const struct cat_entity *e, const char *e_err, char *err, size_t errlen)
{
	char rows[24];
	int rv;

	snprintf(rows, sizeof(rows), "%lld", (long long)er->rows);
	if (er->complete && e_err[0] == '\0')
		/* A trusted complete full read is the next run's measure of "plausible". */
		rv = db_execp(st, "INSERT INTO crmsync.entity_state (crm, entity, last_ok_at, last_run_id, "
		    "last_rows, last_full_rows, last_full_run_id) VALUES ($1, $2, now(), $3, $4, "
		    "CASE WHEN $5::bool THEN $4::bigint END, CASE WHEN $5::bool THEN $3::bigint END) "
		    "ON CONFLICT (crm, entity) DO UPDATE SET last_ok_at = now(), last_run_id = $3, "
		    "last_rows = $4, last_full_rows = CASE WHEN $5::bool THEN $4::bigint ELSE "
		    "entity_state.last_full_rows END, last_full_run_id = CASE WHEN $5::bool THEN "
		    "$3::bigint ELSE entity_state.last_full_run_id END", 5,
		    (const char *const[]){ x->crm, e->name, x->run, rows, x->complete_full ? "t" : "f" },
		    NULL);
	else
		rv = db_execp(st, "INSERT INTO crmsync.entity_state (crm, entity, last_run_id, last_error, last_error_at) "
		    "VALUES ($1, $2, $3, coalesce($4, 'incomplete'), now()) ON CONFLICT (crm, entity) DO UPDATE SET "
		    "last_run_id = $3, last_error = coalesce($4, 'incomplete'), last_error_at = now()",
		    4, (const char *const[]){ x->crm, e->name, x->run, e_err[0] ? e_err : NULL }, NULL);
	if (rv != 0)
		snprintf(err, errlen, "entity_state: %s", db_errmsg(st, NULL));
	return rv;
}

/* One entity of the RunEnd: its verdict, its deletions (or refusal), its entity_state. */
static int
run_end_entity(struct store *st, struct run_end *x, const Crmsync__EntityResult *er,
    char *err, size_t errlen)
{
	const struct cat_entity *e = catalog_find(x->c, er->entity);
	struct verdict vd;
	char e_err[600] = "";
	int rv;

	if (e == NULL)
		return 0;
	if ((rv = run_end_verdict(st, x, er, e, &vd, err, errlen)) != 0)
		return rv;
	if (er->complete && x->complete_full && (e->flags & CE_FULL_DELETES) && vd.unseen > 0) {
		rv = run_end_delete(st, x, er, e, &vd, e_err, sizeof(e_err), err, errlen);
		if (rv != 0)
			return rv;
	} else if (vd.why[0] != '\0') {
		/* Nothing to delete, but the reading was still not right: say so. */
		snprintf(e_err, sizeof(e_err), "%s: %s", e->name, vd.why);
	}
	return run_end_entity_state(st, x, er, e, e_err, err, errlen);
}

/* Close the run's row, drop its seen-keys, COMMIT. */
static int
run_end_close(struct store *st, const struct run_end *x, char *err, size_t errlen)
{
	char ndel[24];
	const char *v1[1] = { x->run };
	const char *v2[4] = { x->run, status_name(x->re->status), ndel,
	    x->errs.len ? x->errs.data : NULL };
	int rv;

	snprintf(ndel, sizeof(ndel), "%ld", x->total_deleted);
	rv = db_execp(st, "UPDATE crmsync.sync_runs SET finished_at = now(), status = $2, "
	    "rows_deleted = $3, error = $4 WHERE id = $1", 4, v2, NULL);
	if (rv == 0)
		rv = db_execp(st, "DELETE FROM crmsync.run_seen WHERE run_id = $1", 1, v1, NULL);
	if (rv == 0)
		rv = db_exec(st, "COMMIT");
	if (rv != 0)
		snprintf(err, errlen, "%s", db_errmsg(st, NULL));
	return rv;
}

/*
 * After the commit: counters, the log line, and for a complete full run the analytic
 * tables' full rebuild marked due, done once its ack is sent (analytics_rebuild_due): the
 * deletions were refreshed in the transaction, the rebuild is the run's safety net and
 * need not hold up the sender (3-4 s of a 20,000-student nightly export).
 */
static void
run_end_report(struct store *st, const struct run_end *x)
{
	const char *status = status_name(x->re->status);

	for (size_t i = 0; i < x->nref; i++)
		refused_count(x->crm, x->refused[i]);
	runstats_run_ended(st, x->run, x->crm, status);
	log_info("run.finished", "run=%s crm=%s kind=%s status=%s deleted=%ld%s%s", x->run, x->crm,
	    x->kind, status, x->total_deleted, x->errs.len ? " error=" : "",
	    x->errs.len ? lq(x->errs.data) : "");
	if (x->complete_full) {
		st->an_due.crms |= 1u << x->c;
		snprintf(st->an_due.why, sizeof(st->an_due.why), "run %s complete", x->run);
	}
}

int
runs_end(struct store *st, const Crmsync__RunEnd *re, char *err, size_t errlen)
{
	struct run_end x;
	int rv;

	memset(&x, 0, sizeof(x));
	x.re = re;
	snprintf(x.run, sizeof(x.run), "%lld", (long long)re->run_id);
	if ((rv = run_end_lock(st, &x, err, errlen)) != 0)
		return rv;
	if (!x.running) {
		/* A repeated RunEnd (the sender retried after a lost ack): already done. */
		db_rollback(st);
		return 0;
	}
	buf_init(&x.errs, 64 * 1024);
	if (re->error != NULL && re->error[0] != '\0')
		buf_addstr(&x.errs, re->error);
	for (size_t i = 0; i < re->n_entities; i++)
		if ((rv = run_end_entity(st, &x, re->entities[i], err, errlen)) != 0)
			goto out;
	if ((rv = run_end_close(st, &x, err, errlen)) == 0)
		run_end_report(st, &x);
out:
	if (rv != 0)
		db_rollback(st);
	buf_free(&x.errs);
	return rv;
}

int
runs_cursor_get(struct store *st, const Crmsync__CursorGet *cg, int *found, char **value)
{
	const char *v[2] = { runs_crm_name(cg->crm), cg->name };
	PGresult *r = NULL;
	int rv;

	*found = 0;
	*value = NULL;
	rv = db_execp(st, "SELECT value FROM crmsync.cursors WHERE crm = $1 AND name = $2", 2, v, &r);
	if (rv == 0 && PQntuples(r) == 1) {
		*found = 1;
		*value = strdup(PQgetvalue(r, 0, 0));
		if (*value == NULL)
			rv = CS_ENOMEM;
	}
	PQclear(r);
	return rv;
}

int
runs_dead_letter(struct store *st, const char *crm, const char *entity, uint64_t batch_id,
    int64_t run_id, const char *reason, const void *payload, size_t len)
{
	char bid[24], rid[24];
	const char *vals[6] = { crm, entity, bid, rid, reason, payload };
	int lens[6] = { 0, 0, 0, 0, 0, (int)len };
	int fmts[6] = { 0, 0, 0, 0, 0, 1 };
	PGresult *r;
	int rv = 0;

	if (st->pg == NULL)
		return CS_EDBCONN;
	snprintf(bid, sizeof(bid), "%llu", (unsigned long long)batch_id);
	snprintf(rid, sizeof(rid), "%lld", (long long)run_id);
	r = PQexecParams(st->pg, "INSERT INTO crmsync.dead_letters (crm, entity, batch_id, run_id, reason, payload) "
	    "VALUES ($1, $2, $3, $4, $5, $6)", 6, NULL, vals, lens, fmts, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		rv = db_classify(st, r);
		log_warnx("deadletter.failed", "err=%s", lq(db_errmsg(st, r)));
	}
	PQclear(r);
	return rv;
}
