/*
 * sink.c - amo-sync's side of the store protocol: record batches, soft deletes, sync runs,
 * progress and cursors, over one REQ socket owned by the sink thread.
 *
 * Every message is packed at once (so the page it came from can be freed) and queued in
 * order. Page batches of a sync pass are queued without waiting (sink_batch_async, at
 * most SINK_QUEUE_MAX ahead), so the next API request overlaps the store's COPY and
 * COMMIT of the previous page; everything else waits for its answer. The order of the
 * queue is the order the store sees, so a cursor still moves with its rows, and
 * sink_flush() marks the points where a caller needs "all committed" (end of a pass, a
 * hook task before done_seq moves). Each message is re-sent until the store answers (a
 * store that is down or restarting only pauses the sync); a batch the store rejects
 * (dead-lettered there, with the reason) is logged and counted, and the sync goes on.
 */
#include <pthread.h>
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
#define SINK_CLOSING_MS	5000	/* what queued messages still get, together, once the service stops */
#define SINK_QUEUE_MAX	2	/* page batches queued ahead of the store */

struct sink_job {
	nng_msg			*msg;		/* the packed Envelope */
	int			 async;		/* nobody waits: the sink thread frees it */
	int			 ack;		/* the answer is an Ack (else any message) */
	int			 done;
	int			 rv;
	Crmsync__Envelope	*reply;		/* for a waiting caller, who frees it */
	char			 entity[64];	/* batches: for logs and counters */
	size_t			 n;
	uint64_t		 batch_id;
	int64_t			 run_id;
	struct sink_job		*next;
};

struct sink {
	pthread_t		 thr;
	pthread_mutex_t		 mtx;
	pthread_cond_t		 work, room;
	struct sink_job		*head, *tail;
	size_t			 queued;	/* async jobs queued or in flight */
	int			 busy;
	int			 closing;
	int64_t			 closing_since;	/* when the stop was first seen (one deadline for all) */
	uint64_t		 rejected;
};

static struct sink sink;

static void
sink_sleep(int ms)
{
	struct timespec ts = { 0, (long)ms * 1000000L };

	nanosleep(&ts, NULL);
}

/* Send j until the store answers for good. Sink thread only. */
static int
sink_exchange(struct amo *a, struct sink_job *j)
{
	int backoff = 50;

	for (;;) {
		Crmsync__Envelope *rep = NULL;
		nng_msg *m = NULL;
		int rv;

		if (a->stop) {
			if (sink.closing_since == 0)
				sink.closing_since = bus_now_ms();
			else if (bus_now_ms() - sink.closing_since > SINK_CLOSING_MS)
				return CS_ECANCELED;
		}
		int timeout = a->stop ? 2000 : SINK_TIMEOUT_MS;
		nng_socket_set_ms(a->store, NNG_OPT_SENDTIMEO, timeout);
		if ((rv = nng_msg_dup(&m, j->msg)) != 0)
			return CS_ENOMEM;
		if ((rv = nng_sendmsg(a->store, m, 0)) != 0) {
			nng_msg_free(m);
			rv = rv == NNG_ETIMEDOUT ? CS_ETIMEDOUT : CS_ENNG;
		} else {
			rv = bus_recv(a->store, &rep, timeout);
		}
		if (rv == 0 && rep->body_case == CRMSYNC__ENVELOPE__BODY_ACK) {
			Crmsync__AckStatus st = rep->ack->status;
			if (st == CRMSYNC__ACK_STATUS__ACK_OK || st == CRMSYNC__ACK_STATUS__ACK_REJECTED) {
				j->reply = rep;
				return st == CRMSYNC__ACK_STATUS__ACK_OK ? 0 : CS_EREJECTED;
			}
			log_debug("store.retry", "reason=%s", lq(rep->ack->error));
		} else if (rv == 0 && !j->ack) {
			j->reply = rep;
			return 0;
		} else if (rv == 0) {
			log_warnx("store.unexpected_reply", "body=%d", (int)rep->body_case);
		} else if (rv != CS_ETIMEDOUT) {
			log_debug("store.call_failed", "err=%s", lq(cs_strerror(rv)));
		}
		bus_free(rep);
		for (int s = 0; s < backoff && !a->stop; s += 50)
			sink_sleep(50);
		if (backoff < 2000)
			backoff *= 2;
	}
}

static void
sink_account(struct amo *a, struct sink_job *j)
{
	(void)a;
	if (j->batch_id == 0)
		return;
	if (j->rv == 0) {
		stat_add(&amo_stats[AS_BATCHES], 1);
		stat_add(&amo_stats[AS_ROWS], (int64_t)j->n);
		log_debug("batch.committed", "entity=%s batch=%llu run=%lld n=%zu applied=%u unchanged=%u",
		    j->entity, (unsigned long long)j->batch_id, (long long)j->run_id, j->n,
		    j->reply->ack->applied, j->reply->ack->unchanged);
	} else if (j->rv == CS_EREJECTED) {
		stat_add(&amo_stats[AS_REJECTED], 1);
		sink.rejected++;
		log_warnx("batch.rejected", "entity=%s batch=%llu run=%lld n=%zu reason=%s", j->entity,
		    (unsigned long long)j->batch_id, (long long)j->run_id, j->n,
		    lq(j->reply != NULL ? j->reply->ack->error : "?"));
	} else {
		log_warnx("batch.not_sent", "entity=%s batch=%llu n=%zu err=%s", j->entity,
		    (unsigned long long)j->batch_id, j->n, lq(cs_strerror(j->rv)));
	}
}

static void *
sink_main(void *arg)
{
	struct amo *a = arg;

	pthread_mutex_lock(&sink.mtx);
	for (;;) {
		struct sink_job *j;

		while (sink.head == NULL && !sink.closing)
			pthread_cond_wait(&sink.work, &sink.mtx);
		if ((j = sink.head) == NULL)
			break;
		sink.head = j->next;
		if (sink.head == NULL)
			sink.tail = NULL;
		sink.busy = 1;
		pthread_mutex_unlock(&sink.mtx);
		j->rv = sink_exchange(a, j);
		pthread_mutex_lock(&sink.mtx);
		sink_account(a, j);
		sink.busy = 0;
		if (j->async) {
			sink.queued--;
			bus_free(j->reply);
			nng_msg_free(j->msg);
			free(j);
		} else {
			j->done = 1;
		}
		pthread_cond_broadcast(&sink.room);
	}
	pthread_mutex_unlock(&sink.mtx);
	return NULL;
}

int
sink_open(struct amo *a)
{
	int rv;

	if ((rv = bus_dial(&a->store, a->conf.store_url, (size_t)a->conf.recv_max)) != 0)
		return rv;
	pthread_mutex_init(&sink.mtx, NULL);
	pthread_cond_init(&sink.work, NULL);
	pthread_cond_init(&sink.room, NULL);
	if (pthread_create(&sink.thr, NULL, sink_main, a) != 0) {
		bus_close(a->store);
		return CS_ENOMEM;
	}
	return 0;
}

/* After the worker has stopped: finish (bounded) what is queued, stop the thread. */
void
sink_close(struct amo *a)
{
	pthread_mutex_lock(&sink.mtx);
	sink.closing = 1;
	pthread_cond_broadcast(&sink.work);
	pthread_mutex_unlock(&sink.mtx);
	pthread_join(sink.thr, NULL);
	bus_close(a->store);
	pthread_cond_destroy(&sink.work);
	pthread_cond_destroy(&sink.room);
	pthread_mutex_destroy(&sink.mtx);
}

/*
 * Queue env. async: return once queued (waiting for room); otherwise wait for the answer:
 * *reply (optional, caller frees) gets it. Returns the job's result.
 */
static int
sink_submit(struct amo *a, Crmsync__Envelope *env, int async, int ack, Crmsync__Envelope **reply)
{
	size_t len = crmsync__envelope__get_packed_size(env);
	struct sink_job *j = calloc(1, sizeof(*j));
	int rv;

	(void)a;
	if (reply != NULL)
		*reply = NULL;
	if (j == NULL || nng_msg_alloc(&j->msg, len) != 0) {
		free(j);
		return CS_ENOMEM;
	}
	crmsync__envelope__pack(env, nng_msg_body(j->msg));
	j->async = async;
	j->ack = ack;
	if (env->body_case == CRMSYNC__ENVELOPE__BODY_BATCH) {
		snprintf(j->entity, sizeof(j->entity), "%s", env->batch->entity);
		j->n = env->batch->n_records;
		j->batch_id = env->batch->batch_id;
		j->run_id = env->batch->run_id;
	}
	pthread_mutex_lock(&sink.mtx);
	while (async && sink.queued >= SINK_QUEUE_MAX)
		pthread_cond_wait(&sink.room, &sink.mtx);
	if (async)
		sink.queued++;
	if (sink.tail != NULL)
		sink.tail->next = j;
	else
		sink.head = j;
	sink.tail = j;
	pthread_cond_signal(&sink.work);
	if (async) {
		pthread_mutex_unlock(&sink.mtx);
		return 0;
	}
	while (!j->done)
		pthread_cond_wait(&sink.room, &sink.mtx);
	pthread_mutex_unlock(&sink.mtx);
	rv = j->rv;
	if (reply != NULL)
		*reply = j->reply;
	else
		bus_free(j->reply);
	nng_msg_free(j->msg);
	free(j);
	return rv;
}

uint64_t
sink_flush(struct amo *a)
{
	uint64_t rejected;

	(void)a;
	pthread_mutex_lock(&sink.mtx);
	while (sink.queued > 0)
		pthread_cond_wait(&sink.room, &sink.mtx);
	rejected = sink.rejected;
	pthread_mutex_unlock(&sink.mtx);
	return rejected;
}

static void
batch_envelope(struct amo *a, Crmsync__RecordBatch *b, Crmsync__Envelope *env)
{
	b->crm = CRMSYNC__CRM__CRM_AMO;
	b->batch_id = ++a->batch_seq;
	b->replace_children = 1;
	env->body_case = CRMSYNC__ENVELOPE__BODY_BATCH;
	env->batch = b;
}

int
sink_batch(struct amo *a, Crmsync__RecordBatch *b)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT;

	batch_envelope(a, b, &env);
	return sink_submit(a, &env, 0, 1, NULL);
}

int
sink_batch_async(struct amo *a, Crmsync__RecordBatch *b)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT;

	batch_envelope(a, b, &env);
	return sink_submit(a, &env, 1, 1, NULL);
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

/* One request answered by an Ack; *ack_out (optional) is freed by the caller. */
static int
sink_call(struct amo *a, Crmsync__Envelope *env, Crmsync__Envelope **ack_out)
{
	return sink_submit(a, env, 0, 1, ack_out);
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
	return sink_submit(a, &env, 1, 1, NULL);	/* informational: nobody waits for it */
}

int
sink_cursor_get(struct amo *a, const char *name, char *dst, size_t cap, int *found)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT, *rep = NULL;
	Crmsync__CursorGet cg = CRMSYNC__CURSOR_GET__INIT;
	int rv;

	*found = 0;
	dst[0] = '\0';
	cg.crm = CRMSYNC__CRM__CRM_AMO;
	cg.name = (char *)name;
	env.body_case = CRMSYNC__ENVELOPE__BODY_CURSOR_GET;
	env.cursor_get = &cg;
	/* The answer is a CursorValue (an Ack only for retry/rejection). */
	rv = sink_submit(a, &env, 0, 0, &rep);
	if (rv == 0 && rep->body_case == CRMSYNC__ENVELOPE__BODY_CURSOR_VALUE) {
		*found = rep->cursor_value->found;
		snprintf(dst, cap, "%s", rep->cursor_value->value ? rep->cursor_value->value : "");
	} else if (rv == 0) {
		rv = CS_EPROTO;
	} else if (rv == CS_EREJECTED) {
		log_warnx("cursor.rejected", "name=%s err=%s", lq(name), lq(rep ? rep->ack->error : "?"));
	}
	bus_free(rep);
	return rv;
}
