/*
 * sink.c - amo-sync's side of the store protocol: record batches, soft deletes, sync runs,
 * progress and cursors, over one REQ socket owned by the worker thread.
 *
 * Every call waits for the store's answer and re-sends until it gets one (bus_call_ack):
 * a store that is down or restarting only pauses the sync, nothing is skipped. A batch the
 * store rejects (dead-lettered there, with the reason) is logged and counted here and the
 * sync goes on: one bad row must not stop an account's mirror.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "amo.h"
#include "arena.h"
#include "bus.h"
#include "errors.h"
#include "log.h"

#define SINK_TIMEOUT_MS	15000	/* one round trip (a page of 250 rows commits in ms) */
#define SINK_CLOSING_MS	5000	/* RunEnd while stopping */

int
sink_open(struct amo *a)
{
	return bus_dial(&a->store, a->conf.store_url, (size_t)a->conf.recv_max);
}

void
sink_close(struct amo *a)
{
	bus_close(a->store);
}

/*
 * One request that must be acknowledged; *ack_out (optional) is freed by the caller. While
 * the service stops, a last message (RunEnd) still gets a few seconds to go through.
 */
static int
sink_call(struct amo *a, Crmsync__Envelope *env, Crmsync__Envelope **ack_out)
{
	Crmsync__Envelope *ack = NULL;
	int rv = a->stop ? bus_call_ack(a->store, env, &ack, 2000, SINK_CLOSING_MS, NULL) :
	    bus_call_ack(a->store, env, &ack, SINK_TIMEOUT_MS, 0, &a->stop);

	if (ack_out != NULL)
		*ack_out = ack;
	else
		bus_free(ack);
	return rv;
}

int
sink_batch(struct amo *a, Crmsync__RecordBatch *b)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT, *ack = NULL;
	int rv;

	b->crm = CRMSYNC__CRM__CRM_AMO;
	b->batch_id = ++a->batch_seq;
	b->replace_children = 1;
	env.body_case = CRMSYNC__ENVELOPE__BODY_BATCH;
	env.batch = b;
	rv = sink_call(a, &env, &ack);
	if (rv == 0) {
		stat_add(&amo_stats[AS_BATCHES], 1);
		log_debug("batch.committed", "entity=%s batch=%llu run=%lld n=%zu applied=%u unchanged=%u",
		    b->entity, (unsigned long long)b->batch_id, (long long)b->run_id, b->n_records,
		    ack->ack->applied, ack->ack->unchanged);
	} else if (rv == CS_EREJECTED) {
		stat_add(&amo_stats[AS_REJECTED], 1);
		log_warnx("batch.rejected", "entity=%s batch=%llu run=%lld n=%zu reason=%s", b->entity,
		    (unsigned long long)b->batch_id, (long long)b->run_id, b->n_records,
		    lq(ack != NULL ? ack->ack->error : "?"));
	}
	bus_free(ack);
	return rv;
}

int
sink_deletes(struct amo *a, const struct cat_entity *e, const char *param,
    char *const *keys, const int64_t *ver_us, size_t n, int64_t run_id)
{
	Crmsync__RecordBatch b = CRMSYNC__RECORD_BATCH__INIT;
	struct arena ar;
	int rv = CS_ENOMEM;

	if (n == 0)
		return 0;
	arena_init(&ar, 64u << 20);
	b.entity = (char *)e->name;
	b.run_id = run_id;
	if ((b.records = arena_alloc(&ar, n * sizeof(*b.records))) == NULL)
		goto out;
	for (size_t i = 0; i < n; i++) {
		Crmsync__Record *r = arena_alloc(&ar, sizeof(*r));
		if (r == NULL)
			goto out;
		crmsync__record__init(r);
		r->deleted = 1;
		r->source_updated_at_us = ver_us != NULL ? ver_us[i] : 0;
		r->n_values = e->ncols;
		r->values = arena_alloc(&ar, e->ncols * sizeof(char *));
		r->null_mask.len = (e->ncols + 7) / 8;
		r->null_mask.data = arena_alloc(&ar, r->null_mask.len);
		if (r->values == NULL || r->null_mask.data == NULL)
			goto out;
		/* Only the key matters: the entity's own key column gets the id, a "$param" key
		 * column the parent value; everything else is NULL. */
		for (size_t c = 0; c < e->ncols; c++) {
			const struct cat_col *col = &e->cols[c];
			const char *v = NULL;
			if (col->flags & CF_KEY)
				v = col->json[0] == '$' ? param : keys[i];
			if (v == NULL) {
				r->null_mask.data[c / 8] |= (uint8_t)(1u << (c % 8));
				v = "";
			}
			r->values[c] = (char *)v;
		}
		b.records[b.n_records++] = r;
	}
	rv = sink_batch(a, &b);
	if (rv == 0) {
		stat_add(&amo_stats[AS_DELETES], (int64_t)n);
		log_info("sync.deleted", "entity=%s n=%zu run=%lld", e->name, n, (long long)run_id);
	}
out:
	arena_free(&ar);
	return rv == CS_EREJECTED ? 0 : rv;
}

int
sink_run_begin(struct amo *a, Crmsync__SyncKind kind, const char *trigger,
    const struct cat_entity *const *ents, size_t n, int64_t *run_id)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT, *ack = NULL;
	Crmsync__RunBegin rb = CRMSYNC__RUN_BEGIN__INIT;
	char **names = calloc(n + 1, sizeof(char *));
	int rv;

	*run_id = 0;
	if (names == NULL)
		return CS_ENOMEM;
	for (size_t i = 0; i < n; i++)
		names[i] = (char *)ents[i]->name;
	rb.crm = CRMSYNC__CRM__CRM_AMO;
	rb.kind = kind;
	rb.trigger = (char *)trigger;
	rb.entities = names;
	rb.n_entities = n;
	env.body_case = CRMSYNC__ENVELOPE__BODY_RUN_BEGIN;
	env.run_begin = &rb;
	rv = sink_call(a, &env, &ack);
	if (rv == 0)
		*run_id = ack->ack->run_id;
	else if (ack != NULL)
		log_warnx("run.begin_failed", "err=%s", lq(ack->ack->error));
	bus_free(ack);
	free(names);
	return rv;
}

int
sink_run_end(struct amo *a, int64_t run_id, Crmsync__RunStatus status, const char *error,
    const struct cat_entity *const *ents, const struct fetch_result *res, size_t n)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT;
	Crmsync__RunEnd re = CRMSYNC__RUN_END__INIT;
	Crmsync__EntityResult *er = calloc(n + 1, sizeof(*er));
	Crmsync__EntityResult **erp = calloc(n + 1, sizeof(*erp));
	int rv = CS_ENOMEM;

	if (er == NULL || erp == NULL)
		goto out;
	for (size_t i = 0; i < n; i++) {
		crmsync__entity_result__init(&er[i]);
		er[i].entity = (char *)ents[i]->name;
		er[i].complete = res[i].complete;
		er[i].rows = res[i].rows;
		er[i].pages = res[i].pages;
		erp[i] = &er[i];
	}
	re.run_id = run_id;
	re.status = status;
	re.error = (char *)(error != NULL ? error : "");
	re.entities = erp;
	re.n_entities = n;
	env.body_case = CRMSYNC__ENVELOPE__BODY_RUN_END;
	env.run_end = &re;
	rv = sink_call(a, &env, NULL);
out:
	free(er);
	free(erp);
	return rv;
}

int
sink_progress(struct amo *a, int64_t run_id, const char *entity, int64_t rows, int64_t pages)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT;
	Crmsync__RunProgress rp = CRMSYNC__RUN_PROGRESS__INIT;

	if (run_id == 0)
		return 0;
	rp.run_id = run_id;
	rp.entity = (char *)entity;
	rp.rows = rows;
	rp.pages = pages;
	env.body_case = CRMSYNC__ENVELOPE__BODY_RUN_PROGRESS;
	env.run_progress = &rp;
	return sink_call(a, &env, NULL);
}

int
sink_cursor_get(struct amo *a, const char *name, char *dst, size_t cap, int *found)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT, *rep = NULL;
	Crmsync__CursorGet cg = CRMSYNC__CURSOR_GET__INIT;
	int backoff = 50, rv;

	*found = 0;
	dst[0] = '\0';
	cg.crm = CRMSYNC__CRM__CRM_AMO;
	cg.name = (char *)name;
	env.body_case = CRMSYNC__ENVELOPE__BODY_CURSOR_GET;
	env.cursor_get = &cg;
	/* The answer is a CursorValue, not an Ack: retry here (Ack = ACK_RETRY, or timeout). */
	for (;;) {
		if (a->stop)
			return CS_ECANCELED;
		rv = bus_call(a->store, &env, &rep, SINK_TIMEOUT_MS);
		if (rv == 0 && rep->body_case == CRMSYNC__ENVELOPE__BODY_CURSOR_VALUE) {
			*found = rep->cursor_value->found;
			snprintf(dst, cap, "%s", rep->cursor_value->value ? rep->cursor_value->value : "");
			bus_free(rep);
			return 0;
		}
		if (rv == 0 && rep->body_case == CRMSYNC__ENVELOPE__BODY_ACK &&
		    rep->ack->status == CRMSYNC__ACK_STATUS__ACK_REJECTED) {
			log_warnx("cursor.rejected", "name=%s err=%s", lq(name), lq(rep->ack->error));
			bus_free(rep);
			return CS_EREJECTED;
		}
		bus_free(rep);
		rep = NULL;
		for (int s = 0; s < backoff && !a->stop; s += 50) {
			struct timespec ts = { 0, 50 * 1000000L };
			nanosleep(&ts, NULL);
		}
		if (backoff < 2000)
			backoff *= 2;
	}
}
