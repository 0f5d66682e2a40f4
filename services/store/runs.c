/*
 * runs.c - sync-run bookkeeping, cursors, deletion detection and dead letters.
 *
 * A run row is opened by RunBegin and closed by RunEnd. Only a RunEnd with status
 * COMPLETE of a FULL run soft-deletes, and only for the entities it lists as complete:
 * rows of those entities whose keys the run never sent (crmsync.run_seen) get deleted_at.
 * A guard refuses to delete more than CS_STORE_DELETE_GUARD percent of an entity's live
 * rows in one run (a truncated export must not wipe a table); the refusal is logged and
 * recorded in the run's error. Everything for one RunEnd happens in one transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "store.h"

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
runs_begin(struct store *st, const Crmsync__RunBegin *rb, int64_t *run_id, char *err, size_t errlen)
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

/* Soft-delete unseen rows of one entity of a complete full run. */
static int
runs_delete_unseen(struct store *st, int64_t run_id, const struct cat_entity *e, long *deleted,
    char *err, size_t errlen)
{
	const struct cat_crm_desc *d = catalog_crm(e->crm);
	char keyexpr[512], sql[2048], run[24];
	const char *v[2] = { run, e->name };
	PGresult *r = NULL;
	long live, unseen;
	int rv;

	*deleted = 0;
	snprintf(run, sizeof(run), "%lld", (long long)run_id);
	apply_key_expr(e, "t", keyexpr, sizeof(keyexpr));
	/* A hash join against the run's keys (an array per batch, unnested once). */
	snprintf(sql, sizeof(sql), "SELECT count(*), count(*) FILTER (WHERE s.key IS NULL) "
	    "FROM %s.%s t LEFT JOIN (SELECT DISTINCT unnest(keys) AS key FROM crmsync.run_seen "
	    "WHERE run_id = $1 AND entity = $2) s ON s.key = %s WHERE t.deleted_at IS NULL",
	    d->schema, e->name, keyexpr);
	if ((rv = db_execp(st, sql, 2, v, &r)) != 0) {
		snprintf(err, errlen, "%s", db_errmsg(st, r));
		PQclear(r);
		return rv;
	}
	live = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	unseen = strtol(PQgetvalue(r, 0, 1), NULL, 10);
	PQclear(r);
	if (unseen == 0)
		return 0;
	if (st->conf.delete_guard_pct < 100 && unseen > 10 &&
	    unseen * 100 > live * st->conf.delete_guard_pct) {
		snprintf(err, errlen, "%s: refusing to delete %ld of %ld rows (over %lld%%)", e->name,
		    unseen, live, (long long)st->conf.delete_guard_pct);
		log_warnx("run.delete_guard", "run=%lld entity=%s unseen=%ld live=%ld guard_pct=%lld",
		    (long long)run_id, e->name, unseen, live, (long long)st->conf.delete_guard_pct);
		return CS_EREJECTED;
	}
	snprintf(sql, sizeof(sql), "UPDATE %s.%s t SET deleted_at = now() WHERE t.deleted_at IS NULL "
	    "AND NOT EXISTS (SELECT 1 FROM (SELECT unnest(keys) AS key FROM crmsync.run_seen "
	    "WHERE run_id = $1 AND entity = $2) s WHERE s.key = %s)", d->schema, e->name, keyexpr);
	if ((rv = db_execp(st, sql, 2, v, &r)) != 0) {
		snprintf(err, errlen, "%s", db_errmsg(st, r));
		PQclear(r);
		return rv;
	}
	*deleted = strtol(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return 0;
}

int
runs_end(struct store *st, const Crmsync__RunEnd *re, char *err, size_t errlen)
{
	char run[24], ndel[24];
	PGresult *r = NULL;
	char crm[16] = "", kind[16] = "", cur[16] = "";
	long total_deleted = 0;
	struct buf errs;
	int rv;

	snprintf(run, sizeof(run), "%lld", (long long)re->run_id);
	const char *v1[1] = { run };
	if ((rv = db_exec(st, "BEGIN")) != 0) {
		snprintf(err, errlen, "BEGIN: %s", db_errmsg(st, NULL));
		return rv;
	}
	rv = db_execp(st, "SELECT crm, kind, status FROM crmsync.sync_runs WHERE id = $1 FOR UPDATE", 1, v1, &r);
	if (rv != 0 || PQntuples(r) != 1) {
		snprintf(err, errlen, "run %s: %s", run, rv ? db_errmsg(st, r) : "no such run");
		PQclear(r);
		db_rollback(st);
		return rv ? rv : CS_ENOENT;
	}
	snprintf(crm, sizeof(crm), "%s", PQgetvalue(r, 0, 0));
	snprintf(kind, sizeof(kind), "%s", PQgetvalue(r, 0, 1));
	snprintf(cur, sizeof(cur), "%s", PQgetvalue(r, 0, 2));
	PQclear(r);
	if (strcmp(cur, "running") != 0) {
		/* A repeated RunEnd (the sender retried after a lost ack): already done. */
		db_rollback(st);
		return 0;
	}
	buf_init(&errs, 64 * 1024);
	if (re->error != NULL && re->error[0] != '\0')
		buf_addstr(&errs, re->error);
	enum cat_crm c = strcmp(crm, "amo") == 0 ? CAT_AMO : CAT_HOLLIHOP;
	for (size_t i = 0; i < re->n_entities; i++) {
		const Crmsync__EntityResult *er = re->entities[i];
		const struct cat_entity *e = catalog_find(c, er->entity);
		long deleted = 0;
		char e_err[512] = "";
		int erv = 0;

		if (e == NULL)
			continue;
		if (re->status == CRMSYNC__RUN_STATUS__RUN_COMPLETE && strcmp(kind, "full") == 0 &&
		    er->complete && (e->flags & CE_FULL_DELETES)) {
			erv = runs_delete_unseen(st, re->run_id, e, &deleted, e_err, sizeof(e_err));
			if (erv != 0 && erv != CS_EREJECTED) {
				snprintf(err, errlen, "%s", e_err);
				buf_free(&errs);
				db_rollback(st);
				return erv;
			}
			if (erv == CS_EREJECTED)
				buf_printf(&errs, "%s%s", errs.len ? "; " : "", e_err);
			total_deleted += deleted;
			if (deleted > 0)
				log_info("run.deleted", "run=%s crm=%s entity=%s rows=%ld", run, crm, e->name, deleted);
		}
		char rows[24];
		const char *v[5] = { crm, e->name, run, rows, e_err[0] ? e_err : NULL };
		snprintf(rows, sizeof(rows), "%lld", (long long)er->rows);
		if (er->complete && erv == 0)
			rv = db_execp(st, "INSERT INTO crmsync.entity_state (crm, entity, last_ok_at, last_run_id, last_rows) "
			    "VALUES ($1, $2, now(), $3, $4) ON CONFLICT (crm, entity) DO UPDATE SET "
			    "last_ok_at = now(), last_run_id = $3, last_rows = $4", 4, v, NULL);
		else
			rv = db_execp(st, "INSERT INTO crmsync.entity_state (crm, entity, last_run_id, last_error, last_error_at) "
			    "VALUES ($1, $2, $3, coalesce($4, 'incomplete'), now()) ON CONFLICT (crm, entity) DO UPDATE SET "
			    "last_run_id = $3, last_error = coalesce($4, 'incomplete'), last_error_at = now()",
			    4, (const char *const[]){ crm, e->name, run, e_err[0] ? e_err : NULL }, NULL);
		if (rv != 0) {
			snprintf(err, errlen, "entity_state: %s", db_errmsg(st, NULL));
			buf_free(&errs);
			db_rollback(st);
			return rv;
		}
	}
	snprintf(ndel, sizeof(ndel), "%ld", total_deleted);
	const char *v2[4] = { run, status_name(re->status), ndel, errs.len ? errs.data : NULL };
	rv = db_execp(st, "UPDATE crmsync.sync_runs SET finished_at = now(), status = $2, "
	    "rows_deleted = $3, error = $4 WHERE id = $1", 4, v2, NULL);
	if (rv == 0)
		rv = db_execp(st, "DELETE FROM crmsync.run_seen WHERE run_id = $1", 1, v1, NULL);
	if (rv == 0)
		rv = db_exec(st, "COMMIT");
	if (rv != 0) {
		snprintf(err, errlen, "%s", db_errmsg(st, NULL));
		db_rollback(st);
	} else {
		log_info("run.finished", "run=%s crm=%s kind=%s status=%s deleted=%ld%s%s", run, crm, kind,
		    status_name(re->status), total_deleted, errs.len ? " error=" : "",
		    errs.len ? lq(errs.data) : "");
	}
	buf_free(&errs);
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
