/* storecli.c - the store protocol's envelopes, sent through one sendq (see storecli.h). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "bus.h"
#include "errors.h"
#include "log.h"
#include "sendq.h"
#include "storecli.h"

#define STORECLI_PROGRESS_MS	5000		/* a progress note gives up after this long */
#define STORECLI_DELETES_MAX	(64u << 20)	/* memory for one batch of deletes */

struct storecli {
	struct storecli_opts	 o;
	struct sendq		*q;
	uint64_t		 batch_seq;	/* caller thread */
	_Atomic uint64_t	 rejected;	/* sender thread counts, caller reads */
	pthread_mutex_t		 mtx;		/* guards why */
	char			 why[512];	/* first rejection since the caller last asked */
};

static void
stat_bump(struct stat_counter *s, int64_t n)
{
	if (s != NULL)
		stat_add(s, n);
}

/* The store's answer to one message, on the sender thread: counters and logs for batches. */
static void
on_answer(void *arg, const struct sendq_meta *m, int rv, const Crmsync__Envelope *reply, int64_t ms)
{
	struct storecli *c = arg;
	const Crmsync__Ack *ack = reply != NULL && reply->body_case == CRMSYNC__ENVELOPE__BODY_ACK ?
	    reply->ack : NULL;
	unsigned long long id = (unsigned long long)m->tag;

	if (m->tag == 0)
		return;		/* not a batch */
	if (rv == 0) {
		stat_bump(c->o.batches, 1);
		stat_bump(c->o.rows, (int64_t)m->n);
		log_debug("batch.committed", "entity=%s batch=%llu n=%zu applied=%u unchanged=%u "
		    "store_ms=%lld", m->label, id, m->n, ack ? ack->applied : 0, ack ? ack->unchanged : 0,
		    (long long)ms);
	} else if (rv == CS_EREJECTED) {
		const char *why = ack != NULL ? ack->error : "?";
		stat_bump(c->o.rejected, 1);
		atomic_fetch_add(&c->rejected, 1);
		pthread_mutex_lock(&c->mtx);
		if (c->why[0] == '\0')
			snprintf(c->why, sizeof(c->why), "%s: the store rejected batch %llu: %s", m->label,
			    id, why);
		pthread_mutex_unlock(&c->mtx);
		log_warnx("batch.rejected", "entity=%s batch=%llu n=%zu reason=%s", m->label, id, m->n,
		    lq(why));
	} else {
		log_warnx("batch.not_sent", "entity=%s batch=%llu n=%zu err=%s", m->label, id, m->n,
		    lq(cs_strerror(rv)));
	}
}

/* After the answer counts for storecli_reached: the caller's wake-up. */
static void
on_answered(void *arg)
{
	struct storecli *c = arg;

	c->o.wake(c->o.wake_arg);
}

int
storecli_open(struct storecli **out, nng_socket s, const struct storecli_opts *o)
{
	struct storecli *c;
	int rv;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return CS_ENOMEM;
	c->o = *o;
	pthread_mutex_init(&c->mtx, NULL);
	const struct sendq_opts qo = { .timeout_ms = o->timeout_ms, .deadline_ms = o->deadline_ms,
	    .grace_ms = o->grace_ms, .depth = o->depth, .stop = o->stop, .done = on_answer,
	    .answered = o->wake != NULL ? on_answered : NULL, .arg = c };
	if ((rv = sendq_open(&c->q, s, &qo)) != 0) {
		pthread_mutex_destroy(&c->mtx);
		free(c);
		return rv;
	}
	*out = c;
	return 0;
}

void
storecli_close(struct storecli *c)
{
	if (c == NULL)
		return;
	sendq_close(c->q);
	pthread_mutex_destroy(&c->mtx);
	free(c);
}

int
storecli_run_begin(struct storecli *c, Crmsync__SyncKind kind, const char *trigger,
    const char *const *entities, size_t n, int64_t *run_id, int64_t *last_rows, char *err,
    size_t errlen)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT, *ack = NULL;
	Crmsync__RunBegin rb = CRMSYNC__RUN_BEGIN__INIT;
	char why[1024];
	int rv;

	*run_id = 0;
	rb.crm = (Crmsync__Crm)c->o.crm;
	rb.kind = kind;
	rb.trigger = (char *)trigger;
	rb.entities = (char **)entities;
	rb.n_entities = n;
	env.body_case = CRMSYNC__ENVELOPE__BODY_RUN_BEGIN;
	env.run_begin = &rb;
	/* A run starts clean: a failure before it (a RunBegin that timed out) is not its own. */
	sendq_clear_error(c->q);
	for (size_t i = 0; last_rows != NULL && i < n; i++)
		last_rows[i] = -1;
	if ((rv = sendq_call(c->q, &env, NULL, &ack)) == 0) {
		*run_id = ack->ack->run_id;
		/* A store that does not know them answers none: no bound. */
		for (size_t i = 0; last_rows != NULL && i < n && i < ack->ack->n_last_rows; i++)
			last_rows[i] = ack->ack->last_rows[i];
	} else {
		int has = ack != NULL && ack->body_case == CRMSYNC__ENVELOPE__BODY_ACK;
		snprintf(why, sizeof(why), "the store did not open the run: %s%s%s", cs_strerror(rv),
		    has ? ": " : "", has ? ack->ack->error : "");
		if (err != NULL)
			snprintf(err, errlen, "%s", why);
		log_warnx("run.begin_failed", "err=%s", lq(why));
	}
	bus_free(ack);
	return rv;
}

int
storecli_run_end(struct storecli *c, int64_t run_id, Crmsync__RunStatus status, const char *error,
    const struct storecli_entity *res, size_t n)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT;
	Crmsync__RunEnd re = CRMSYNC__RUN_END__INIT;
	Crmsync__EntityResult *er = calloc(n + 1, sizeof(*er));
	Crmsync__EntityResult **erp = calloc(n + 1, sizeof(*erp));
	int stopping = c->o.stop != NULL && *c->o.stop;
	struct sendq_meta m = { .unstoppable = stopping,
	    .deadline_ms = stopping ? STORECLI_STOPPING_MS : 0 };
	int rv = CS_ENOMEM;

	if (er == NULL || erp == NULL)
		goto out;
	for (size_t i = 0; i < n; i++) {
		crmsync__entity_result__init(&er[i]);
		er[i].entity = (char *)res[i].entity;
		er[i].complete = res[i].complete;
		er[i].rows = res[i].rows;
		er[i].pages = res[i].pages;
		er[i].rows_rejected = res[i].rows_rejected;
		if (res[i].has_total) {
			er[i].api_total_opt_case = CRMSYNC__ENTITY_RESULT__API_TOTAL_OPT_API_TOTAL;
			er[i].api_total = res[i].api_total;
		}
		erp[i] = &er[i];
	}
	re.run_id = run_id;
	re.status = status;
	re.error = (char *)(error != NULL ? error : "");
	re.entities = erp;
	re.n_entities = n;
	env.body_case = CRMSYNC__ENVELOPE__BODY_RUN_END;
	env.run_end = &re;
	/* After everything queued, whatever became of it. */
	(void)sendq_drain(c->q);
	sendq_clear_error(c->q);
	if ((rv = sendq_call(c->q, &env, &m, NULL)) == CS_ECANCELED) {
		/* The stop came while it was on its way: it still gets its own bounded try. */
		m.unstoppable = 1;
		m.deadline_ms = STORECLI_STOPPING_MS;
		sendq_clear_error(c->q);
		rv = sendq_call(c->q, &env, &m, NULL);
	}
	if (rv != 0)
		log_warnx("run.end_unrecorded", "run=%lld err=%s", (long long)run_id, lq(cs_strerror(rv)));
out:
	free(er);
	free(erp);
	return rv;
}

void
storecli_progress(struct storecli *c, int64_t run_id, const char *entity, int64_t rows,
    int64_t pages)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT;
	Crmsync__RunProgress rp = CRMSYNC__RUN_PROGRESS__INIT;
	const struct sendq_meta m = { .deadline_ms = STORECLI_PROGRESS_MS, .best_effort = 1 };

	if (run_id == 0)
		return;		/* hook fetches belong to no run */
	rp.run_id = run_id;
	rp.entity = (char *)entity;
	rp.rows = rows;
	rp.pages = pages;
	env.body_case = CRMSYNC__ENVELOPE__BODY_RUN_PROGRESS;
	env.run_progress = &rp;
	/* Informational: it must never hold the sync up for long. */
	(void)sendq_submit(c->q, &env, &m);
}

/* Stamp b with what the client owns and wrap it. */
static void
batch_envelope(struct storecli *c, Crmsync__RecordBatch *b, Crmsync__Envelope *env,
    struct sendq_meta *m)
{
	b->crm = (Crmsync__Crm)c->o.crm;
	b->batch_id = ++c->batch_seq;
	b->replace_children = 1;
	env->body_case = CRMSYNC__ENVELOPE__BODY_BATCH;
	env->batch = b;
	m->tag = b->batch_id;
	m->n = b->n_records;
	m->label = b->entity;
}

int
storecli_batch(struct storecli *c, Crmsync__RecordBatch *b)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT;
	struct sendq_meta m = { 0 };

	batch_envelope(c, b, &env, &m);
	return sendq_submit(c->q, &env, &m);
}

int
storecli_batch_wait(struct storecli *c, Crmsync__RecordBatch *b)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT;
	struct sendq_meta m = { 0 };

	batch_envelope(c, b, &env, &m);
	return sendq_call(c->q, &env, &m, NULL);
}

/* One delete record: only the key matters (the entity's own key column gets the id, a
 * "$param" key column the parent value); everything else is NULL. */
static Crmsync__Record *
delete_record(struct arena *ar, const struct cat_entity *e, const char *param, const char *key,
    int64_t ver_us)
{
	Crmsync__Record *r = arena_alloc(ar, sizeof(*r));

	if (r == NULL)
		return NULL;
	crmsync__record__init(r);
	r->deleted = 1;
	r->source_updated_at_us = ver_us;
	r->n_values = e->ncols;
	r->values = arena_alloc(ar, e->ncols * sizeof(char *));
	r->null_mask.len = (e->ncols + 7) / 8;
	r->null_mask.data = arena_alloc(ar, r->null_mask.len);
	if (r->values == NULL || r->null_mask.data == NULL)
		return NULL;
	for (size_t c = 0; c < e->ncols; c++) {
		const struct cat_col *col = &e->cols[c];
		const char *v = NULL;
		if (col->flags & CF_KEY)
			v = col->json[0] == '$' ? param : key;
		if (v == NULL) {
			r->null_mask.data[c / 8] |= (uint8_t)(1u << (c % 8));
			v = "";
		}
		r->values[c] = (char *)v;
	}
	return r;
}

int
storecli_deletes(struct storecli *c, const struct cat_entity *e, const char *param,
    char *const *keys, const int64_t *ver_us, size_t n, int64_t run_id)
{
	Crmsync__RecordBatch b = CRMSYNC__RECORD_BATCH__INIT;
	struct arena ar;
	int rv = CS_ENOMEM;

	if (n == 0)
		return 0;
	arena_init(&ar, STORECLI_DELETES_MAX);
	b.entity = (char *)e->name;
	b.run_id = run_id;
	if ((b.records = arena_alloc(&ar, n * sizeof(*b.records))) == NULL)
		goto out;
	for (size_t i = 0; i < n; i++) {
		Crmsync__Record *r = delete_record(&ar, e, param, keys[i], ver_us != NULL ? ver_us[i] : 0);
		if (r == NULL)
			goto out;
		b.records[b.n_records++] = r;
	}
	if ((rv = storecli_batch_wait(c, &b)) == 0) {
		stat_bump(c->o.deletes, (int64_t)n);
		log_info("sync.deleted", "entity=%s n=%zu run=%lld", e->name, n, (long long)run_id);
	}
out:
	arena_free(&ar);
	return rv == CS_EREJECTED ? 0 : rv;
}

int
storecli_cursor_get(struct storecli *c, const char *name, char *dst, size_t cap, int *found)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT, *rep = NULL;
	Crmsync__CursorGet cg = CRMSYNC__CURSOR_GET__INIT;
	const struct sendq_meta m = { .data_reply = 1 };
	int rv;

	*found = 0;
	dst[0] = '\0';
	cg.crm = (Crmsync__Crm)c->o.crm;
	cg.name = (char *)name;
	env.body_case = CRMSYNC__ENVELOPE__BODY_CURSOR_GET;
	env.cursor_get = &cg;
	/* The answer is a CursorValue (an Ack only for a retry or a rejection). */
	rv = sendq_call(c->q, &env, &m, &rep);
	if (rv == 0 && rep->body_case == CRMSYNC__ENVELOPE__BODY_CURSOR_VALUE) {
		*found = rep->cursor_value->found;
		snprintf(dst, cap, "%s", rep->cursor_value->value ? rep->cursor_value->value : "");
	} else if (rv == 0) {
		log_warnx("cursor.unexpected_reply", "name=%s body=%d", lq(name), (int)rep->body_case);
		rv = CS_EPROTO;
	} else if (rv == CS_EREJECTED) {
		log_warnx("cursor.rejected", "name=%s err=%s", lq(name), lq(rep ? rep->ack->error : "?"));
	}
	bus_free(rep);
	return rv;
}

int
storecli_drain(struct storecli *c)
{
	return sendq_drain(c->q);
}

uint64_t
storecli_mark(struct storecli *c)
{
	return sendq_mark(c->q);
}

int
storecli_reached(struct storecli *c, uint64_t mark, int *err)
{
	return sendq_reached(c->q, mark, err);
}

uint64_t
storecli_rejected(struct storecli *c, char *why, size_t cap)
{
	if (why != NULL) {
		pthread_mutex_lock(&c->mtx);
		snprintf(why, cap, "%s", c->why);
		c->why[0] = '\0';
		pthread_mutex_unlock(&c->mtx);
	}
	return atomic_load(&c->rejected);
}
