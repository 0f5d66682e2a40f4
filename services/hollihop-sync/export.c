/*
 * export.c - one export run: RunBegin, every selected catalogue entity in catalogue order,
 * RunEnd with a per-entity "complete" flag (the store soft-deletes only what a complete
 * entity of a complete run did not send).
 *
 * Per entity a fetcher thread (fetch.c) delivers parsed pages; this thread normalises
 * their rows with the catalogue (normalise_row, the one generic mapper) and queues them for
 * the store as RecordBatches, one per page (small per-client pages are gathered up to
 * CS_HOLLIHOP_BATCH_ROWS rows). A sender thread (lib/sendq) delivers them in order, so
 * the store commits page n while page n+1 is normalised; at most two packed batches wait.
 * An entity ends only when the store has answered all its batches (a rejected batch makes
 * it incomplete), and RunEnd goes after everything else. Nothing is held beyond the pages
 * in flight. Keys of entities that drive per-client methods (students -> ClientId) are
 * collected on the way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus.h"
#include "errors.h"
#include "hh.h"
#include "log.h"
#include "sendq.h"
#include "strlist.h"

#define EXPORT_ARENA_MAX	(512u << 20)
#define EXPORT_MAX_PARENTS	8
#define EXPORT_KEYS_MAX		(64u << 20)

struct parent_keys {
	const struct cat_entity	*e;
	struct keys		 keys;
	int			 complete;
};

struct exporter {
	const struct hh_conf	*c;
	nng_socket		 store;
	struct ratelimit	 rl;
	struct api		*api;
	uint64_t		 batch_seq;
	struct sendq		*q;		/* to the store, during a run */
	uint64_t		 rejected;	/* batches the store rejected (sender thread; read after a drain) */
	char			 reject_err[512];	/* the first rejection of the current entity */
	pthread_mutex_t		 mtx;		/* guards status */
	char			 status[256];
};

/* What one entity's export produced. */
struct entity_out {
	int		 complete;
	int64_t		 rows;
	int64_t		 pages;
	int64_t		 bad_rows;
	int		 fatal;		/* stop the run */
	int		 rv;
	char		 err[1024];
};

int
export_new(struct exporter **out, const struct hh_conf *c, nng_socket store)
{
	struct exporter *x;
	int rv;

	*out = NULL;
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return CS_ENOMEM;
	x->c = c;
	x->store = store;
	/*
	 * At most `rate` requests in any window: a burst of a tenth of them, and a refill slow
	 * enough that burst + refill over one window stays within the allowance (600/30 s ->
	 * burst 60, then 18/s).
	 */
	double burst = c->rate >= 20 ? (double)(c->rate / 10) : 1;
	double rate = c->rate > 0 ? ((double)c->rate - burst) * 1000.0 / (double)c->rate_window_ms : 0;
	if (c->rate > 0 && rate <= 0)
		rate = 1000.0 / (double)c->rate_window_ms;
	rl_init(&x->rl, rate, burst);
	pthread_mutex_init(&x->mtx, NULL);
	snprintf(x->status, sizeof(x->status), "idle");
	if ((rv = api_new(&x->api, c, &x->rl)) != 0) {
		export_free(x);
		return rv;
	}
	*out = x;
	return 0;
}

void
export_free(struct exporter *x)
{
	if (x == NULL)
		return;
	api_free(x->api);
	rl_destroy(&x->rl);
	pthread_mutex_destroy(&x->mtx);
	free(x);
}

void
export_status(struct exporter *x, char *buf, size_t len)
{
	pthread_mutex_lock(&x->mtx);
	snprintf(buf, len, "%s", x->status);
	pthread_mutex_unlock(&x->mtx);
}

static void
set_status(struct exporter *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
set_status(struct exporter *x, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&x->mtx);
	va_start(ap, fmt);
	vsnprintf(x->status, sizeof(x->status), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&x->mtx);
}

int
export_check(const struct run_req *rq, char *err, size_t errlen)
{
	const struct cat_crm_desc *d = catalog_crm(CAT_HOLLIHOP);
	struct hh_vars v;
	char store[1024];

	memset(&v, 0, sizeof(v));
	for (size_t i = 0; i < d->nentities; i++) {
		const struct cat_entity *e = &d->entities[i];
		struct buf form;
		struct norm_ctx ctx = { 0 };
		int rv;

		if (e->paging == PAGE_PER_PARENT) {
			const struct cat_entity *p = catalog_find(CAT_HOLLIHOP, e->parent);
			if (p == NULL || p >= e) {
				snprintf(err, errlen, "catalogue: %s needs parent %s listed before it",
				    e->name, e->parent ? e->parent : "(none)");
				return CS_ECONFIG;
			}
		}
		buf_init(&form, 64 * 1024);
		rv = params_expand(e->params, "x", &v, &form, &ctx, store, sizeof(store), err, errlen);
		buf_free(&form);
		if (rv != 0)
			return CS_ECONFIG;
	}
	for (int i = 0; rq != NULL && i < rq->nentities; i++) {
		if (catalog_find(CAT_HOLLIHOP, rq->entities[i]) == NULL) {
			snprintf(err, errlen, "unknown entity %s", rq->entities[i]);
			return CS_EUNKNOWN_ENTITY;
		}
	}
	return 0;
}

/* Which entities run: the request's (or config's) selection, plus the parents they need. */
static void
select_entities(const struct exporter *x, const struct run_req *rq, unsigned char *sel)
{
	const struct cat_crm_desc *d = catalog_crm(CAT_HOLLIHOP);

	for (size_t i = 0; i < d->nentities; i++) {
		const char *name = d->entities[i].name;
		int want;
		if (rq->nentities > 0) {
			want = 0;
			for (int k = 0; k < rq->nentities; k++)
				if (strcmp(rq->entities[k], name) == 0)
					want = 1;
		} else {
			want = (x->c->entities[0] == '\0' || strlist_has_str(x->c->entities, name)) &&
			    !strlist_has_str(x->c->skip, name);
		}
		sel[i] = (unsigned char)want;
	}
	for (size_t i = d->nentities; i-- > 0;) {
		const struct cat_entity *e = &d->entities[i];
		if (sel[i] && e->paging == PAGE_PER_PARENT) {
			const struct cat_entity *p = catalog_find(CAT_HOLLIHOP, e->parent);
			if (p != NULL)
				sel[p - d->entities] = 1;
		}
	}
}

/* The store's answer to a batch, on the sender thread: counters and logs. */
static void
on_batch_done(void *arg, const struct sendq_meta *m, int rv, const Crmsync__Envelope *ack, int64_t ms)
{
	struct exporter *x = arg;

	if (m->tag == 0)
		return;		/* not a batch */
	log_debug("export.batch", "entity=%s batch=%llu n=%zu store_ms=%lld", m->label,
	    (unsigned long long)m->tag, m->n, (long long)ms);
	if (rv == 0) {
		stat_add(&hh_stats[HS_BATCHES_SENT], 1);
		stat_add(&hh_stats[HS_ROWS_SENT], (int64_t)m->n);
	} else if (rv == CS_EREJECTED) {
		const char *why = ack != NULL && ack->ack != NULL ? ack->ack->error : "?";
		stat_add(&hh_stats[HS_BATCHES_REJECTED], 1);
		x->rejected++;
		if (x->reject_err[0] == '\0')
			snprintf(x->reject_err, sizeof(x->reject_err), "%s: the store rejected batch %llu: %s",
			    m->label, (unsigned long long)m->tag, why);
		log_warnx("export.batch_rejected", "entity=%s batch=%llu n=%zu reason=%s", m->label,
		    (unsigned long long)m->tag, m->n, lq(why));
	}
}

static void
store_err(int rv, char *err, size_t errlen)
{
	if (rv == CS_ETIMEDOUT)
		snprintf(err, errlen, "the store did not acknowledge within CS_HOLLIHOP_STORE_DEADLINE");
	else
		snprintf(err, errlen, "sending to the store: %s", cs_strerror(rv));
}

static void
send_progress(struct exporter *x, int64_t run_id, const char *entity, int64_t rows, int64_t pages)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT;
	Crmsync__RunProgress rp = CRMSYNC__RUN_PROGRESS__INIT;
	struct sendq_meta m = { .deadline_ms = 5000, .best_effort = 1 };

	rp.run_id = run_id;
	rp.entity = (char *)entity;
	rp.rows = rows;
	rp.pages = pages;
	env.body_case = CRMSYNC__ENVELOPE__BODY_RUN_PROGRESS;
	env.run_progress = &rp;
	/* Best effort: progress must never hold the export up for long. */
	(void)sendq_submit(x->q, &env, &m);
}

/* Queue the gathered records as one batch. Returns 0 or the sender's (fatal) error. */
static int
send_batch(struct exporter *x, const struct cat_entity *e, int64_t run_id, Crmsync__Record **recs,
    size_t n, char *err, size_t errlen)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT;
	Crmsync__RecordBatch b = CRMSYNC__RECORD_BATCH__INIT;
	struct sendq_meta m = { 0 };
	int rv;

	if (n == 0)
		return 0;
	b.crm = CRMSYNC__CRM__CRM_HOLLIHOP;
	b.entity = (char *)e->name;
	b.batch_id = ++x->batch_seq;
	b.run_id = run_id;
	b.records = recs;
	b.n_records = n;
	b.replace_children = 1;
	env.body_case = CRMSYNC__ENVELOPE__BODY_BATCH;
	env.batch = &b;
	m.tag = b.batch_id;
	m.n = n;
	m.label = e->name;
	if ((rv = sendq_submit(x->q, &env, &m)) != 0)
		store_err(rv, err, errlen);
	return rv;
}

static int
keys_add(struct keys *k, const char *v)
{
	if (buf_add(&k->b, v, strlen(v) + 1) != 0)
		return CS_ETOOBIG;
	k->n++;
	return 0;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sort and de-duplicate (offset paging can return a row twice). */
static int
keys_unique(struct keys *k)
{
	const char **v;
	struct buf nb;
	size_t n = 0;
	const char *p = k->b.data;

	if (k->n < 2)
		return 0;
	if ((v = malloc(k->n * sizeof(*v))) == NULL)
		return CS_ENOMEM;
	for (size_t i = 0; i < k->n; i++, p += strlen(p) + 1)
		v[i] = p;
	qsort(v, k->n, sizeof(*v), cmp_str);
	buf_init(&nb, EXPORT_KEYS_MAX);
	for (size_t i = 0; i < k->n; i++) {
		if (i > 0 && strcmp(v[i], v[i - 1]) == 0)
			continue;
		if (buf_add(&nb, v[i], strlen(v[i]) + 1) != 0) {
			free(v);
			buf_free(&nb);
			return CS_ETOOBIG;
		}
		n++;
	}
	free(v);
	buf_free(&k->b);
	k->b = nb;
	k->n = n;
	return 0;
}

static size_t
first_key_col(const struct cat_entity *e)
{
	for (size_t i = 0; i < e->ncols; i++)
		if (e->cols[i].flags & CF_KEY)
			return i;
	return 0;
}

/*
 * Queue the gathered records (packed at once), then free the arena and the pages they
 * pointed into, except keep (the page still being read, or NULL). Returns send_batch's result.
 */
static int
flush(struct exporter *x, const struct cat_entity *e, int64_t run_id, Crmsync__Record **recs,
    size_t *nrec, struct arena *arena, struct page **pending, struct page *keep,
    char *err, size_t errlen)
{
	int rv = send_batch(x, e, run_id, recs, *nrec, err, errlen);
	struct page **pp = pending;

	*nrec = 0;
	arena_reset(arena);
	while (*pp != NULL) {
		struct page *q = *pp;
		if (q == keep) {
			pp = &q->next;
			continue;
		}
		*pp = q->next;
		page_free(q);
	}
	return rv;
}

/* Export one entity; fills o. collect: where to put its keys (NULL if no one needs them). */
static void
export_entity(struct exporter *x, const struct cat_entity *e, int64_t run_id,
    const struct hh_vars *vars, const struct keys *parents, int parents_complete,
    struct keys *collect, volatile _Atomic int *stop, struct entity_out *o)
{
	struct fetch *f = NULL;
	struct arena arena;
	struct page *pending = NULL, *p;
	Crmsync__Record **recs = NULL;
	size_t nrec = 0, cap = 2 * (size_t)x->c->batch_rows;
	size_t kcol = first_key_col(e);
	int64_t t0 = bus_now_ms(), last_note = t0, pages = 0;
	int truncated = 0, rv, logged_bad = 0;
	uint64_t rejected0 = x->rejected;	/* the queue is drained: the sender is idle */
	char ferr[1024] = "";

	memset(o, 0, sizeof(*o));
	x->reject_err[0] = '\0';
	arena_init(&arena, EXPORT_ARENA_MAX);
	log_info("export.entity_begin", "run=%lld entity=%s method=%s", (long long)run_id, e->name,
	    e->endpoint);
	set_status(x, "running run=%lld entity=%s", (long long)run_id, e->name);
	if ((recs = malloc(cap * sizeof(*recs))) == NULL) {
		o->rv = CS_ENOMEM;
		o->fatal = 1;
		snprintf(o->err, sizeof(o->err), "%s: out of memory", e->name);
		return;
	}
	if ((rv = fetch_start(&f, e, x->c, x->api, vars, parents, stop)) != 0) {
		free(recs);
		o->rv = rv;
		o->fatal = 1;
		snprintf(o->err, sizeof(o->err), "%s: cannot start the fetcher", e->name);
		return;
	}
	while ((p = fetch_next(f)) != NULL) {
		int t = p->one_row ? p->rows : json_first(&p->j, p->rows);

		pages++;
		stat_add(&hh_stats[HS_PAGES], 1);
		p->next = pending;
		pending = p;
		for (int i = 0; i < p->nrows; i++, t = p->one_row ? t : json_skip(&p->j, t)) {
			Crmsync__Record *r = arena_alloc(&arena, sizeof(*r));
			char nerr[256];
			int bad = 0;

			if (r == NULL) {
				rv = CS_ENOMEM;
				snprintf(o->err, sizeof(o->err), "%s: page too large for memory", e->name);
				goto fail;
			}
			if (normalise_row(e, &p->j, t, &p->ctx, &arena, r, &bad, nerr, sizeof(nerr)) != 0) {
				/* A row without its key cannot be stored or compared; raw is in the log. */
				o->bad_rows++;
				stat_add(&hh_stats[HS_ROWS_BAD], 1);
				if (logged_bad++ < 10) {
					size_t len;
					const char *raw = json_text(&p->j, t, &len);
					log_warnx("export.row_skipped", "entity=%s skip=%lld row=%d reason=%s raw=%s",
					    e->name, (long long)p->skip, i, lq(nerr), lqn(raw, len));
				}
				continue;
			}
			if (bad > 0)
				stat_add(&hh_stats[HS_BAD_VALUES], bad);
			if (collect != NULL && !norm_isnull(&r->null_mask, kcol) &&
			    keys_add(collect, r->values[kcol]) != 0) {
				rv = CS_ETOOBIG;
				snprintf(o->err, sizeof(o->err), "%s: too many keys to drive per-client calls", e->name);
				goto fail;
			}
			recs[nrec++] = r;
			o->rows++;
			if (nrec == cap) {
				/* A huge unpaged answer: send part of it, keep its page. */
				if ((rv = flush(x, e, run_id, recs, &nrec, &arena, &pending, p,
				    o->err, sizeof(o->err))) != 0)
					goto fail;
			}
		}
		/* One batch per page; small per-client answers are gathered up to batch_rows. */
		if (nrec >= (size_t)x->c->batch_rows || e->paging != PAGE_PER_PARENT) {
			if ((rv = flush(x, e, run_id, recs, &nrec, &arena, &pending, NULL,
			    o->err, sizeof(o->err))) != 0)
				goto fail;
		}
		int64_t now = bus_now_ms();
		if (now - last_note >= 2000) {
			log_info("export.progress", "run=%lld entity=%s pages=%lld rows=%lld",
			    (long long)run_id, e->name, (long long)pages, (long long)o->rows);
			send_progress(x, run_id, e->name, o->rows, pages);
			set_status(x, "running run=%lld entity=%s pages=%lld rows=%lld", (long long)run_id,
			    e->name, (long long)pages, (long long)o->rows);
			last_note = now;
		}
	}
	if ((rv = flush(x, e, run_id, recs, &nrec, &arena, &pending, NULL, o->err,
	    sizeof(o->err))) != 0)
		goto fail;
	/* Every batch of the entity answered before it counts as complete. */
	if ((rv = sendq_drain(x->q)) != 0) {
		store_err(rv, o->err, sizeof(o->err));
		goto fail;
	}
	int rejected = x->rejected != rejected0;
	rv = fetch_finish(f, &truncated, NULL, ferr, sizeof(ferr));
	f = NULL;
	o->pages = pages;
	if (rv != 0) {
		snprintf(o->err, sizeof(o->err), "%s", ferr);
		goto fail;
	}
	o->complete = !truncated && !rejected && parents_complete;
	if (truncated)
		snprintf(o->err, sizeof(o->err), "%s", ferr);
	else if (rejected)
		snprintf(o->err, sizeof(o->err), "%s", x->reject_err);
	else if (!parents_complete)
		snprintf(o->err, sizeof(o->err), "%s: its parent %s was not exported completely", e->name,
		    e->parent);
	send_progress(x, run_id, e->name, o->rows, pages);
	log_info("export.entity_done", "run=%lld entity=%s pages=%lld rows=%lld bad_rows=%lld "
	    "complete=%d ms=%lld%s%s", (long long)run_id, e->name, (long long)pages, (long long)o->rows,
	    (long long)o->bad_rows, o->complete, (long long)(bus_now_ms() - t0),
	    o->err[0] ? " note=" : "", o->err[0] ? lq(o->err) : "");
	goto out;
fail:
	o->rv = rv;
	o->pages = pages;
	if (f != NULL) {
		(void)fetch_finish(f, NULL, NULL, ferr, sizeof(ferr));
		if (o->err[0] == '\0')
			snprintf(o->err, sizeof(o->err), "%s", ferr);
	}
	/* The API refusing the key, the store gone or a stop request end the run; a failing
	 * optional method only skips itself. */
	o->fatal = rv == CS_EAUTH || rv == CS_ECANCELED || rv == CS_ETIMEDOUT || rv == CS_ENOMEM ||
	    !(e->flags & CE_OPTIONAL) || rv == CS_ENNG || rv == CS_ECLOSED;
	log_warnx("export.entity_failed", "run=%lld entity=%s pages=%lld rows=%lld fatal=%d err=%s",
	    (long long)run_id, e->name, (long long)pages, (long long)o->rows, o->fatal, lq(o->err));
out:
	while (pending != NULL) {
		struct page *q = pending;
		pending = q->next;
		page_free(q);
	}
	arena_reset(&arena);
	free(recs);
}

int
export_run(struct exporter *x, const struct run_req *rq, volatile _Atomic int *stop,
    void (*on_begin)(void *, int64_t), void *arg, struct run_result *res)
{
	const struct cat_crm_desc *d = catalog_crm(CAT_HOLLIHOP);
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT, *ack = NULL;
	Crmsync__RunBegin rb = CRMSYNC__RUN_BEGIN__INIT;
	Crmsync__RunEnd re = CRMSYNC__RUN_END__INIT;
	unsigned char sel[256];
	char *names[256];
	Crmsync__EntityResult results[256], *rptr[256];
	struct parent_keys pk[EXPORT_MAX_PARENTS];
	int npk = 0, rv, failed = 0, stopped = 0;
	size_t nsel = 0;
	struct hh_vars vars;
	int64_t t0 = bus_now_ms(), req0 = stat_get(&hh_stats[HS_REQUESTS]),
	    bytes0 = stat_get(&hh_stats[HS_BYTES_IN]), retries0 = stat_get(&hh_stats[HS_RETRIES]);

	memset(res, 0, sizeof(*res));
	memset(pk, 0, sizeof(pk));
	if (d->nentities > 256)
		return CS_ETOOBIG;
	select_entities(x, rq, sel);
	for (size_t i = 0; i < d->nentities; i++)
		if (sel[i])
			names[nsel++] = (char *)d->entities[i].name;
	if (params_vars(&vars, x->c, time(NULL)) != 0) {
		snprintf(res->error, sizeof(res->error), "bad CS_HOLLIHOP_DATE_FROM/DATE_TO");
		return CS_ECONFIG;
	}

	struct sendq_opts qo = { .timeout_ms = (int)x->c->store_timeout_ms,
	    .deadline_ms = x->c->store_deadline_ms, .depth = 2, .stop = stop, .done = on_batch_done, .arg = x };
	if ((rv = sendq_open(&x->q, x->store, &qo)) != 0) {
		snprintf(res->error, sizeof(res->error), "cannot start the store sender: %s", cs_strerror(rv));
		return rv;
	}
	rb.crm = CRMSYNC__CRM__CRM_HOLLIHOP;
	rb.kind = CRMSYNC__SYNC_KIND__SYNC_FULL;
	rb.trigger = (char *)rq->trigger;
	rb.entities = names;
	rb.n_entities = nsel;
	env.body_case = CRMSYNC__ENVELOPE__BODY_RUN_BEGIN;
	env.run_begin = &rb;
	if ((rv = sendq_call(x->q, &env, NULL, &ack)) != 0) {
		snprintf(res->error, sizeof(res->error), "the store did not open the run: %s%s%s",
		    cs_strerror(rv), ack && ack->ack ? ": " : "", ack && ack->ack ? ack->ack->error : "");
		bus_free(ack);
		log_warnx("run.begin_failed", "err=%s", lq(res->error));
		sendq_close(x->q);
		x->q = NULL;
		return rv;
	}
	res->run_id = ack->ack->run_id;
	bus_free(ack);
	ack = NULL;
	stat_add(&hh_stats[HS_RUNS_STARTED], 1);
	stat_set(&hh_stats[HS_RUNNING], 1);
	stat_set(&hh_stats[HS_LAST_RUN_ID], res->run_id);
	log_info("run.begin", "run=%lld trigger=%s entities=%zu today=%s date_from=%s date_to=%s",
	    (long long)res->run_id, rq->trigger, nsel, vars.today, vars.date_from, vars.date_to);
	if (on_begin != NULL)
		on_begin(arg, res->run_id);

	/* Entities whose keys drive per-client methods of this run. */
	for (size_t i = 0; i < d->nentities; i++) {
		const struct cat_entity *e = &d->entities[i];
		const struct cat_entity *p;
		int have = 0;
		if (!sel[i] || e->paging != PAGE_PER_PARENT || (p = catalog_find(CAT_HOLLIHOP, e->parent)) == NULL)
			continue;
		for (int k = 0; k < npk; k++)
			have |= pk[k].e == p;
		if (!have && npk < EXPORT_MAX_PARENTS) {
			pk[npk].e = p;
			buf_init(&pk[npk].keys.b, EXPORT_KEYS_MAX);
			npk++;
		}
	}

	size_t nres = 0;
	for (size_t i = 0; i < d->nentities; i++) {
		const struct cat_entity *e = &d->entities[i];
		struct entity_out o;
		struct keys *collect = NULL;
		const struct keys *parents = NULL;
		int parents_complete = e->paging != PAGE_PER_PARENT;	/* until its parent is found */

		if (!sel[i])
			continue;
		Crmsync__EntityResult *er = &results[nres];
		crmsync__entity_result__init(er);
		er->entity = (char *)e->name;
		rptr[nres++] = er;
		if (failed || stopped || *stop) {
			stopped |= *stop;
			continue;	/* listed as incomplete */
		}
		for (int k = 0; k < npk; k++) {
			if (pk[k].e == e)
				collect = &pk[k].keys;
			if (e->paging == PAGE_PER_PARENT && strcmp(pk[k].e->name, e->parent) == 0) {
				parents = &pk[k].keys;
				parents_complete = pk[k].complete;
			}
		}
		export_entity(x, e, res->run_id, &vars, parents, parents_complete, collect, stop, &o);
		er->complete = o.complete;
		er->rows = o.rows;
		er->pages = o.pages;
		for (int k = 0; k < npk; k++) {
			if (pk[k].e == e) {
				pk[k].complete = o.complete && o.rv == 0;
				if (keys_unique(&pk[k].keys) != 0)
					pk[k].complete = 0;
			}
		}
		if (o.rv == CS_ECANCELED || *stop) {
			stopped = 1;
			continue;
		}
		if (o.err[0] != '\0' && strlen(res->error) + strlen(o.err) + 3 < sizeof(res->error))
			snprintf(res->error + strlen(res->error), sizeof(res->error) - strlen(res->error),
			    "%s%s", res->error[0] ? "; " : "", o.err);
		if (o.rv != 0 && o.fatal)
			failed = 1;
	}
	for (int k = 0; k < npk; k++)
		buf_free(&pk[k].keys.b);

	res->status = failed ? CRMSYNC__RUN_STATUS__RUN_FAILED :
	    stopped ? CRMSYNC__RUN_STATUS__RUN_PARTIAL : CRMSYNC__RUN_STATUS__RUN_COMPLETE;
	if (stopped && !failed && res->error[0] == '\0')
		snprintf(res->error, sizeof(res->error), "stopped before the end (shutdown)");
	re.run_id = res->run_id;
	re.status = (Crmsync__RunStatus)res->status;
	re.error = res->error;
	re.entities = rptr;
	re.n_entities = nres;
	env.body_case = CRMSYNC__ENVELOPE__BODY_RUN_END;
	env.run_end = &re;
	/* Record the end even while stopping or after a store failure: after everything queued
	 * (in order), with a short deadline of its own when stopping. */
	struct sendq_meta em = { .deadline_ms = stopped ? 5000 : x->c->store_deadline_ms, .unstoppable = 1 };
	(void)sendq_drain(x->q);
	sendq_clear_error(x->q);
	rv = sendq_call(x->q, &env, &em, NULL);
	sendq_close(x->q);
	x->q = NULL;
	stat_set(&hh_stats[HS_RUNNING], 0);
	if (res->status == CRMSYNC__RUN_STATUS__RUN_COMPLETE) {
		stat_add(&hh_stats[HS_RUNS_COMPLETE], 1);
		stat_set(&hh_stats[HS_LAST_OK_UNIX], (int64_t)time(NULL));
	} else {
		stat_add(&hh_stats[HS_RUNS_FAILED], 1);
	}
	const char *sname = res->status == CRMSYNC__RUN_STATUS__RUN_COMPLETE ? "complete" :
	    res->status == CRMSYNC__RUN_STATUS__RUN_PARTIAL ? "partial" : "failed";
	set_status(x, "idle; last run %lld %s", (long long)res->run_id, sname);
	if (rv != 0)
		log_warnx("run.end_unrecorded", "run=%lld err=%s", (long long)res->run_id, lq(cs_strerror(rv)));
	log_info("run.end", "run=%lld status=%s ms=%lld requests=%lld bytes=%lld retries=%lld%s%s",
	    (long long)res->run_id, sname, (long long)(bus_now_ms() - t0),
	    (long long)(stat_get(&hh_stats[HS_REQUESTS]) - req0),
	    (long long)(stat_get(&hh_stats[HS_BYTES_IN]) - bytes0),
	    (long long)(stat_get(&hh_stats[HS_RETRIES]) - retries0), res->error[0] ? " error=" : "",
	    res->error[0] ? lq(res->error) : "");
	return 0;
}
