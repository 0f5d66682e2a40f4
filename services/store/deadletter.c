/*
 * deadletter.c - crmsyncctl deadletters resubmit|discard, done by the store (the only
 * writer of crmsync.dead_letters).
 *
 * Two kinds of dead letter exist (runs.c): a whole batch the store rejected (main.c
 * reject(): payload = the Envelope as received) and a row a sync service could not read
 * (runs_rejected_rows: reason "row: ...", payload = the row's source JSON). Only the first
 * can be resubmitted: its RecordBatch is applied again through apply_batch, the normal
 * path, so a row older than the stored one changes nothing; its cursor is dropped (an old
 * cursor would move the sync back) and so are its run (long over) and its rejected rows
 * (dead letters of their own). A row the source sent unreadable has nothing to apply: a
 * full read of its entity (crmsyncctl resync) reads it again. A dead letter is closed,
 * never deleted: resolved_at, resolution, resolution_reason, resolved_by.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "store.h"

#define DL_MAX_IDS	1000

/* Close dead letter id with resolution; 0 or the db error (err says it). */
static int
dl_close(struct store *st, const char *id, const char *resolution, const char *reason,
    const char *who, char *err, size_t errlen)
{
	const char *v[4] = { id, resolution, reason, who };
	PGresult *r = NULL;
	int rv;

	rv = db_execp(st, "UPDATE crmsync.dead_letters SET resolved_at = now(), resolution = $2, "
	    "resolution_reason = $3, resolved_by = $4 WHERE id = $1 AND resolved_at IS NULL", 4, v, &r);
	if (rv != 0)
		snprintf(err, errlen, "%s", db_errmsg(st, r));
	else if (strcmp(PQcmdTuples(r), "1") != 0)
		snprintf(err, errlen, "closed meanwhile by another request");
	PQclear(r);
	return rv;
}

/* Apply the batch of a batch dead letter again; 0 with detail, else the error in detail. */
static int
dl_resubmit_batch(struct store *st, const char *id, const char *crm, const char *entity,
    const unsigned char *payload, size_t len, char *detail, size_t dlen)
{
	Crmsync__Envelope *env = crmsync__envelope__unpack(NULL, len, payload);
	Crmsync__RecordBatch b;
	uint32_t applied = 0, unchanged = 0;
	char err[1024] = "";
	int rv;

	if (env == NULL || env->body_case != CRMSYNC__ENVELOPE__BODY_BATCH) {
		snprintf(detail, dlen, "its payload is %s, not a record batch: nothing to apply (discard it)",
		    env == NULL ? "undecodable" : "another message");
		if (env != NULL)
			crmsync__envelope__free_unpacked(env, NULL);
		return CS_EINVAL;
	}
	b = *env->batch;
	b.run_id = 0;
	b.cursor_opt_case = CRMSYNC__RECORD_BATCH__CURSOR_OPT__NOT_SET;
	b.cursor = NULL;
	b.n_rejected = 0;
	b.rejected = NULL;
	if (rederive_blocks(st, b.crm, b.entity, err, sizeof(err))) {
		snprintf(detail, dlen, "not now: %s (try again later)", err);
		rv = CS_EBUSY;
	} else if ((rv = apply_batch(st, &b, &applied, &unchanged, err, sizeof(err))) == 0) {
		snprintf(detail, dlen, "applied: %u rows written, %u unchanged", applied, unchanged);
		log_info("deadletter.resubmitted", "id=%s crm=%s entity=%s written=%u unchanged=%u", id, crm,
		    entity, applied, unchanged);
	} else {
		snprintf(detail, dlen, "still rejected: %s", err[0] ? err : cs_strerror(rv));
	}
	crmsync__envelope__free_unpacked(env, NULL);
	return rv;
}

/* One id of the request into res; CS_EDBCONN ends the request (the database is away). */
static int
dl_one(struct store *st, const Crmsync__DeadLetterRequest *rq, int64_t idnum, Crmsync__DeadLetterResult *res,
    char *detail, size_t dlen)
{
	char id[24], err[1024] = "";
	const char *v[1] = { id };
	const char *who = rq->who != NULL && rq->who[0] ? rq->who : "unknown";
	PGresult *r = NULL;
	int rv;

	snprintf(id, sizeof(id), "%lld", (long long)idnum);
	res->id = idnum;
	rv = PQsendQueryParams(st->pg, "SELECT coalesce(crm, ''), coalesce(entity, ''), reason, payload, "
	    "coalesce(resolution || ' ' || to_char(resolved_at, 'YYYY-MM-DD HH24:MI:SS TZ'), '') "
	    "FROM crmsync.dead_letters WHERE id = $1", 1, NULL, v, NULL, NULL, 1) ? 0 : CS_EDBCONN;
	if (rv == 0) {
		r = PQgetResult(st->pg);
		for (PGresult *x; (x = PQgetResult(st->pg)) != NULL;)
			PQclear(x);
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			rv = db_classify(st, r);
	}
	if (rv != 0) {
		snprintf(detail, dlen, "reading it: %s", db_errmsg(st, r));
		PQclear(r);
		return rv;
	}
	if (PQntuples(r) != 1) {
		snprintf(detail, dlen, "no such dead letter");
	} else if (PQgetvalue(r, 0, 4)[0] != '\0') {
		snprintf(detail, dlen, "already %s", PQgetvalue(r, 0, 4));
	} else if (rq->action == CRMSYNC__DEAD_LETTER_ACTION__DL_DISCARD) {
		if ((rv = dl_close(st, id, "discarded", rq->reason, who, err, sizeof(err))) == 0 && err[0] == '\0') {
			res->ok = 1;
			snprintf(detail, dlen, "discarded");
			log_info("deadletter.discarded", "id=%s by=%s reason=%s", id, lq(who), lq(rq->reason));
		} else {
			snprintf(detail, dlen, "%s", err);
		}
	} else if (strncmp(PQgetvalue(r, 0, 2), "row: ", 5) == 0) {
		snprintf(detail, dlen, "a row %s could not read at the source (%s): nothing to apply; "
		    "`crmsyncctl resync %s %s` reads it again, then discard this", PQgetvalue(r, 0, 0),
		    PQgetvalue(r, 0, 2) + 5, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
	} else {
		rv = dl_resubmit_batch(st, id, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1),
		    (const unsigned char *)PQgetvalue(r, 0, 3), (size_t)PQgetlength(r, 0, 3), detail, dlen);
		if (rv == 0 && (rv = dl_close(st, id, "resubmitted", rq->reason != NULL && rq->reason[0] ?
		    rq->reason : detail, who, err, sizeof(err))) == 0) {
			res->ok = 1;
		} else if (rv != CS_EDBCONN && rv != CS_EINVAL) {
			/* Still failing: keep it open, with what the new attempt said. */
			const char *u[2] = { id, detail };
			rv = db_execp(st, "UPDATE crmsync.dead_letters SET resubmit_error = $2, resubmit_at = now() "
			    "WHERE id = $1", 2, u, NULL);
		}
	}
	PQclear(r);
	return rv == CS_EDBCONN ? rv : 0;
}

int
deadletter_request(struct store *st, const Crmsync__DeadLetterRequest *rq, Crmsync__DeadLetterReply *rep,
    char *err, size_t errlen)
{
	int rv = 0;

	rep->n_results = 0;
	if (rq->n_ids == 0 || rq->n_ids > DL_MAX_IDS) {
		snprintf(err, errlen, "give 1 to %d dead letter ids", DL_MAX_IDS);
		return CS_EINVAL;
	}
	if (rq->action == CRMSYNC__DEAD_LETTER_ACTION__DL_DISCARD && (rq->reason == NULL || rq->reason[0] == '\0')) {
		snprintf(err, errlen, "a discard needs a reason");
		return CS_EINVAL;
	}
	rep->results = calloc(rq->n_ids, sizeof(*rep->results));
	Crmsync__DeadLetterResult *res = calloc(rq->n_ids, sizeof(*res));
	char (*details)[1024] = calloc(rq->n_ids, sizeof(*details));
	if (rep->results == NULL || res == NULL || details == NULL) {
		free(rep->results);
		free(res);
		free(details);
		rep->results = NULL;
		snprintf(err, errlen, "out of memory");
		return CS_ENOMEM;
	}
	for (size_t i = 0; i < rq->n_ids && rv == 0; i++) {
		crmsync__dead_letter_result__init(&res[i]);
		rv = dl_one(st, rq, rq->ids[i], &res[i], details[i], sizeof(details[i]));
		res[i].detail = details[i];
		rep->results[rep->n_results++] = &res[i];
	}
	if (rv != 0)
		snprintf(err, errlen, "%s", details[rep->n_results - 1]);
	return rv;
}

void
deadletter_reply_free(Crmsync__DeadLetterReply *rep)
{
	if (rep->n_results > 0) {
		free(rep->results[0]->detail);	/* details[], one allocation */
		free(rep->results[0]);		/* res[], one allocation */
	}
	free(rep->results);
	rep->results = NULL;
	rep->n_results = 0;
}
