/*
 * export.c - one export run: RunBegin, every selected catalogue entity in catalogue order,
 * RunEnd with a per-entity "complete" flag (the store soft-deletes only what a complete
 * entity of a complete run did not send).
 *
 * Per entity a fetcher thread (fetch.c) delivers parsed pages; this thread normalises
 * their rows with the catalogue (normalise_row, the one generic mapper) and queues them for
 * the store as RecordBatches, one per page (small per-client pages are gathered up to
 * CS_HOLLIHOP_BATCH_ROWS rows). The store client (lib/storecli, one sender thread)
 * delivers them in order, so the store commits page n while page n+1 is normalised; at
 * most two packed batches wait.
 * A row that cannot be read (no key, a key written twice, not an object) goes with its batch
 * as a RejectedRow: the store dead-letters it and the entity deletes nothing in this run.
 * lib/readguard watches the pages (a sequence that repeats itself, more rows than the
 * entity's last complete read makes plausible) and fails the entity when they go wrong.
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
#include "readguard.h"
#include "storecli.h"
#include "strlist.h"

#define EXPORT_ARENA_MAX	(512u << 20)
#define EXPORT_MAX_PARENTS	8
#define EXPORT_KEYS_MAX		(64u << 20)
#define EXPORT_NOTE_MS		2000	/* progress log and note at most this often */
#define EXPORT_REJECTED_RAW_MAX	(256u << 10)	/* bytes of a rejected row kept */

struct parent_keys {
	const struct cat_entity	*e;
	struct keys		 keys;
	int			 complete;
};

/* Thread ownership: the run thread (one run at a time) uses everything but status. */
struct exporter {
	const struct hh_conf	*c;
	volatile _Atomic int	*stop;
	struct ratelimit	 rl;
	struct api		*api;
	struct storecli		*sc;		/* to the store; its sender thread owns the socket */
	pthread_mutex_t		 mtx;		/* guards status (read by the health thread) */
	char			 status[256];
};

/* What one entity's export produced. */
struct entity_out {
	int		 complete;
	int64_t		 rows;
	int64_t		 pages;
	int64_t		 bad_rows;	/* rows that could not be read: dead-lettered */
	int		 fatal;		/* stop the run */
	int		 rv;
	char		 err[1024];
};

/* One entity's export in progress (export_entity and its phases). */
struct entity_run {
	struct exporter		*x;
	const struct cat_entity	*e;
	int64_t			 run_id;
	struct keys		*collect;	/* where its keys go, or NULL */
	struct fetch		*f;
	struct arena		 arena;		/* the records of the batch being gathered */
	struct page		*pending;	/* pages the gathered records point into */
	Crmsync__Record		**recs;
	Crmsync__RejectedRow	**rej;		/* unreadable rows of the batch being gathered */
	size_t			 nrec, nrej, cap;
	struct readguard	*guard;
	int			 pass;		/* of the last page (fetch.c numbers them) */
	size_t			 kcol;
	int64_t			 t0, last_note, pages;
	int			 logged_bad;
	struct entity_out	*o;
};

/* One run in progress (export_run and its phases). */
struct run {
	const struct cat_crm_desc *d;
	unsigned char		 sel[256];	/* selected entities, by catalogue index */
	const char		*names[256];
	size_t			 nsel;
	struct hh_vars		 vars;
	struct parent_keys	 pk[EXPORT_MAX_PARENTS];
	int			 npk;
	struct storecli_entity	 results[256];
	int64_t			 last_rows[256];	/* per selected entity, from RunBegin */
	size_t			 nres;
	int			 failed, stopped;
	int64_t			 t0, req0, bytes0, retries0;
};

int
export_new(struct exporter **out, const struct hh_conf *c, nng_socket store,
    volatile _Atomic int *stop)
{
	struct exporter *x;
	int rv;

	*out = NULL;
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return CS_ENOMEM;
	x->c = c;
	x->stop = stop;
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
	/* Two packed batches wait at most: the store commits one while the next is normalised. */
	const struct storecli_opts so = { .crm = CAT_HOLLIHOP, .timeout_ms = (int)c->store_timeout_ms,
	    .deadline_ms = c->store_deadline_ms, .depth = 2, .stop = stop,
	    .batches = &hh_stats[HS_BATCHES_SENT], .rows = &hh_stats[HS_ROWS_SENT],
	    .rejected = &hh_stats[HS_BATCHES_REJECTED] };
	if ((rv = api_new(&x->api, c, &x->rl)) != 0 || (rv = storecli_open(&x->sc, store, &so)) != 0) {
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
	storecli_close(x->sc);
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

static void
store_err(int rv, char *err, size_t errlen)
{
	if (rv == CS_ETIMEDOUT)
		snprintf(err, errlen, "the store did not acknowledge within CS_HOLLIHOP_STORE_DEADLINE");
	else
		snprintf(err, errlen, "sending to the store: %s", cs_strerror(rv));
}

/* Queue the gathered records as one batch. Returns 0 or the sender's (fatal) error. */
static int
send_batch(struct entity_run *r)
{
	Crmsync__RecordBatch b = CRMSYNC__RECORD_BATCH__INIT;
	int rv;

	if (r->nrec == 0 && r->nrej == 0)
		return 0;
	b.entity = (char *)r->e->name;
	b.run_id = r->run_id;
	b.records = r->recs;
	b.n_records = r->nrec;
	b.rejected = r->rej;
	b.n_rejected = r->nrej;
	if ((rv = storecli_batch(r->x->sc, &b)) != 0)
		store_err(rv, r->o->err, sizeof(r->o->err));
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
flush(struct entity_run *r, struct page *keep)
{
	int rv = send_batch(r);
	struct page **pp = &r->pending;

	r->nrec = r->nrej = 0;
	arena_reset(&r->arena);
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

/* Normalise one row into the batch being gathered; a row that cannot be stored is skipped. */
static int
add_row(struct entity_run *r, struct page *p, int t, int i)
{
	struct entity_out *o = r->o;
	Crmsync__Record *rec = arena_alloc(&r->arena, sizeof(*rec));
	char nerr[256];
	int bad = 0;

	if (rec == NULL) {
		snprintf(o->err, sizeof(o->err), "%s: page too large for memory", r->e->name);
		return CS_ENOMEM;
	}
	/* (Rows may be scalars: GetDisciplines lists names; the catalogue says how to read them.) */
	int nrv = normalise_row(r->e, &p->j, t, &p->ctx, &r->arena, rec, &bad, nerr, sizeof(nerr));
	if (nrv == CS_ENOMEM) {
		snprintf(o->err, sizeof(o->err), "%s: page too large for memory", r->e->name);
		return nrv;
	}
	if (nrv != 0) {
		/* Not stored, not compared: dead-lettered with the batch, and the entity
		 * deletes nothing this run (the store's rule). */
		Crmsync__RejectedRow *x = arena_alloc(&r->arena, sizeof(*x));
		size_t len;
		const char *raw = json_text(&p->j, t, &len);
		char *why;
		if (x == NULL || (why = arena_alloc(&r->arena, strlen(nerr) + 1)) == NULL) {
			snprintf(o->err, sizeof(o->err), "%s: page too large for memory", r->e->name);
			return CS_ENOMEM;
		}
		o->bad_rows++;
		stat_add(&hh_stats[HS_ROWS_BAD], 1);
		if (r->logged_bad++ < 10)
			log_warnx("export.row_rejected", "entity=%s skip=%lld row=%d reason=%s raw=%s",
			    r->e->name, (long long)p->skip, i, lq(nerr), lqn(raw, len > 512 ? 512 : len));
		crmsync__rejected_row__init(x);
		memcpy(why, nerr, strlen(nerr) + 1);
		x->reason = why;
		x->raw_json.data = (uint8_t *)raw;	/* into the page, kept until the flush */
		x->raw_json.len = len > EXPORT_REJECTED_RAW_MAX ? EXPORT_REJECTED_RAW_MAX : len;
		r->rej[r->nrej++] = x;
		return r->nrej == r->cap ? flush(r, p) : 0;
	}
	if (bad > 0)
		stat_add(&hh_stats[HS_BAD_VALUES], bad);
	readguard_row(r->guard, rec);
	if (r->collect != NULL && !norm_isnull(&rec->null_mask, r->kcol) &&
	    keys_add(r->collect, rec->values[r->kcol]) != 0) {
		snprintf(o->err, sizeof(o->err), "%s: too many keys to drive per-client calls", r->e->name);
		return CS_ETOOBIG;
	}
	r->recs[r->nrec++] = rec;
	o->rows++;
	/* A huge unpaged answer: send part of it, keep its page. */
	return r->nrec == r->cap ? flush(r, p) : 0;
}

/* Every row of one page; then one batch per page (small per-client answers are gathered
 * up to batch_rows). */
static int
add_page(struct entity_run *r, struct page *p)
{
	int t = p->one_row ? p->rows : json_first(&p->j, p->rows);
	char why[512];
	size_t len = 0;
	const char *txt = p->nrows > 0 ? json_text(&p->j, p->rows, &len) : NULL;
	int rv;

	r->pages++;
	stat_add(&hh_stats[HS_PAGES], 1);
	p->next = r->pending;
	r->pending = p;
	if (p->pass != r->pass) {
		readguard_pass(r->guard);
		r->pass = p->pass;
	}
	readguard_page_begin(r->guard);
	for (int i = 0; i < p->nrows; i++, t = p->one_row ? t : json_skip(&p->j, t))
		if ((rv = add_row(r, p, t, i)) != 0)
			return rv;
	if ((rv = readguard_page_end(r->guard, txt, len, why, sizeof(why))) != 0) {
		snprintf(r->o->err, sizeof(r->o->err), "%s (skip=%lld)", why, (long long)p->skip);
		return rv;
	}
	if (r->nrec >= (size_t)r->x->c->batch_rows || r->e->paging != PAGE_PER_PARENT)
		return flush(r, NULL);
	return 0;
}

/* Log and record progress, at most every EXPORT_NOTE_MS. */
static void
note_progress(struct entity_run *r)
{
	int64_t now = bus_now_ms();

	if (now - r->last_note < EXPORT_NOTE_MS)
		return;
	log_info("export.progress", "run=%lld entity=%s pages=%lld rows=%lld", (long long)r->run_id,
	    r->e->name, (long long)r->pages, (long long)r->o->rows);
	storecli_progress(r->x->sc, r->run_id, r->e->name, r->o->rows, r->pages);
	set_status(r->x, "running run=%lld entity=%s pages=%lld rows=%lld", (long long)r->run_id,
	    r->e->name, (long long)r->pages, (long long)r->o->rows);
	r->last_note = now;
}

/*
 * The entity was read to its end: send the rest, wait until the store answered all of it,
 * and decide whether it is complete. Returns 0 or the error that makes it fail.
 */
static int
finish_entity(struct entity_run *r, uint64_t rejected0, int parents_complete)
{
	struct entity_out *o = r->o;
	char ferr[1024] = "", why[512];
	int truncated = 0, rv;

	if ((rv = flush(r, NULL)) != 0)
		return rv;
	/* Every batch of the entity answered before it counts as complete. */
	if ((rv = storecli_drain(r->x->sc)) != 0) {
		store_err(rv, o->err, sizeof(o->err));
		return rv;
	}
	int rejected = storecli_rejected(r->x->sc, why, sizeof(why)) != rejected0;
	rv = fetch_finish(r->f, &truncated, NULL, ferr, sizeof(ferr));
	r->f = NULL;
	o->pages = r->pages;
	if (rv != 0) {
		snprintf(o->err, sizeof(o->err), "%s", ferr);
		return rv;
	}
	o->complete = !truncated && !rejected && parents_complete;
	if (truncated)
		snprintf(o->err, sizeof(o->err), "%s", ferr);
	else if (rejected)
		snprintf(o->err, sizeof(o->err), "%s", why);
	else if (!parents_complete)
		snprintf(o->err, sizeof(o->err), "%s: its parent %s was not exported completely",
		    r->e->name, r->e->parent);
	storecli_progress(r->x->sc, r->run_id, r->e->name, o->rows, r->pages);
	log_info("export.entity_done", "run=%lld entity=%s pages=%lld rows=%lld rejected_rows=%lld "
	    "complete=%d ms=%lld%s%s", (long long)r->run_id, r->e->name, (long long)r->pages,
	    (long long)o->rows, (long long)o->bad_rows, o->complete, (long long)(bus_now_ms() - r->t0),
	    o->err[0] ? " note=" : "", o->err[0] ? lq(o->err) : "");
	return 0;
}

/* The entity failed with rv: stop its fetcher and decide whether the run goes on. */
static void
fail_entity(struct entity_run *r, int rv)
{
	struct entity_out *o = r->o;
	char ferr[1024] = "";

	o->rv = rv;
	o->pages = r->pages;
	if (r->f != NULL) {
		(void)fetch_finish(r->f, NULL, NULL, ferr, sizeof(ferr));
		r->f = NULL;
		if (o->err[0] == '\0')
			snprintf(o->err, sizeof(o->err), "%s", ferr);
	}
	/* The API refusing the key, the store gone or a stop request end the run; a failing
	 * optional method only skips itself. */
	o->fatal = rv == CS_EAUTH || rv == CS_ECANCELED || rv == CS_ETIMEDOUT || rv == CS_ENOMEM ||
	    !(r->e->flags & CE_OPTIONAL) || rv == CS_ENNG || rv == CS_ECLOSED;
	log_warnx("export.entity_failed", "run=%lld entity=%s pages=%lld rows=%lld fatal=%d err=%s",
	    (long long)r->run_id, r->e->name, (long long)r->pages, (long long)o->rows, o->fatal,
	    lq(o->err));
}

/* Export one entity; fills o. collect: where to put its keys (NULL if no one needs them).
 * last_rows: its last complete full read (-1: unknown), for the readguard's bound. */
static void
export_entity(struct exporter *x, const struct cat_entity *e, int64_t run_id,
    const struct hh_vars *vars, const struct keys *parents, int parents_complete,
    struct keys *collect, int64_t last_rows, struct entity_out *o)
{
	struct entity_run r = { .x = x, .e = e, .run_id = run_id, .collect = collect, .o = o,
	    .cap = 2 * (size_t)x->c->batch_rows, .kcol = first_key_col(e) };
	uint64_t rejected0 = storecli_rejected(x->sc, NULL, 0);
	char why[512];
	struct page *p;
	int rv, started = 0;

	memset(o, 0, sizeof(*o));
	r.t0 = r.last_note = bus_now_ms();
	(void)storecli_rejected(x->sc, why, sizeof(why));	/* forget rejections before this entity */
	arena_init(&r.arena, EXPORT_ARENA_MAX);
	log_info("export.entity_begin", "run=%lld entity=%s method=%s", (long long)run_id, e->name,
	    e->endpoint);
	set_status(x, "running run=%lld entity=%s", (long long)run_id, e->name);
	if ((r.recs = malloc(r.cap * sizeof(*r.recs))) == NULL ||
	    (r.rej = malloc(r.cap * sizeof(*r.rej))) == NULL ||
	    readguard_new(&r.guard, e, last_rows, x->c->max_growth) != 0) {
		rv = CS_ENOMEM;
		snprintf(o->err, sizeof(o->err), "%s: out of memory", e->name);
		goto fail;
	}
	if ((rv = fetch_start(&r.f, e, x->c, x->api, vars, parents, x->stop)) != 0) {
		r.f = NULL;
		snprintf(o->err, sizeof(o->err), "%s: cannot start the fetcher", e->name);
		goto fail;
	}
	started = 1;
	while ((p = fetch_next(r.f)) != NULL) {
		if ((rv = add_page(&r, p)) != 0)
			goto fail;
		note_progress(&r);
	}
	if ((rv = finish_entity(&r, rejected0, parents_complete)) == 0)
		goto out;
fail:
	fail_entity(&r, rv);
	if (!started)
		o->fatal = 1;	/* no memory, no fetcher thread: nothing else will do better */
out:
	while (r.pending != NULL) {
		struct page *q = r.pending;
		r.pending = q->next;
		page_free(q);
	}
	arena_reset(&r.arena);
	free(r.recs);
	free(r.rej);
	readguard_free(r.guard);
}

/* Which entities run, their parents' key collectors, and the run's variables. */
static int
plan_run(struct exporter *x, const struct run_req *rq, struct run *run, struct run_result *res)
{
	const struct cat_crm_desc *d = run->d;

	if (d->nentities > nitems(run->sel))
		return CS_ETOOBIG;
	select_entities(x, rq, run->sel);
	for (size_t i = 0; i < d->nentities; i++)
		if (run->sel[i])
			run->names[run->nsel++] = d->entities[i].name;
	if (params_vars(&run->vars, x->c, time(NULL)) != 0) {
		snprintf(res->error, sizeof(res->error), "bad CS_HOLLIHOP_DATE_FROM/DATE_TO");
		return CS_ECONFIG;
	}
	/* Entities whose keys drive per-client methods of this run. */
	for (size_t i = 0; i < d->nentities; i++) {
		const struct cat_entity *e = &d->entities[i];
		const struct cat_entity *p;
		int have = 0;
		if (!run->sel[i] || e->paging != PAGE_PER_PARENT ||
		    (p = catalog_find(CAT_HOLLIHOP, e->parent)) == NULL)
			continue;
		for (int k = 0; k < run->npk; k++)
			have |= run->pk[k].e == p;
		if (!have && run->npk < EXPORT_MAX_PARENTS) {
			run->pk[run->npk].e = p;
			buf_init(&run->pk[run->npk].keys.b, EXPORT_KEYS_MAX);
			run->npk++;
		}
	}
	return 0;
}

/* Export entity e of the run, unless the run has already failed or is stopping. */
static void
run_entity(struct exporter *x, struct run *run, const struct cat_entity *e, struct run_result *res)
{
	int64_t last_rows = run->last_rows[run->nres];
	struct storecli_entity *er = &run->results[run->nres++];
	struct keys *collect = NULL;
	const struct keys *parents = NULL;
	int parents_complete = e->paging != PAGE_PER_PARENT;	/* until its parent is found */
	struct entity_out o;

	memset(er, 0, sizeof(*er));
	er->entity = e->name;
	if (run->failed || run->stopped || *x->stop) {
		run->stopped |= *x->stop;
		return;		/* listed as incomplete */
	}
	for (int k = 0; k < run->npk; k++) {
		if (run->pk[k].e == e)
			collect = &run->pk[k].keys;
		if (e->paging == PAGE_PER_PARENT && strcmp(run->pk[k].e->name, e->parent) == 0) {
			parents = &run->pk[k].keys;
			parents_complete = run->pk[k].complete;
		}
	}
	export_entity(x, e, res->run_id, &run->vars, parents, parents_complete, collect, last_rows, &o);
	er->complete = o.complete;
	er->rows = o.rows;
	er->pages = o.pages;
	er->rows_rejected = o.bad_rows;
	for (int k = 0; k < run->npk; k++) {
		if (run->pk[k].e == e) {
			run->pk[k].complete = o.complete && o.rv == 0;
			if (keys_unique(&run->pk[k].keys) != 0)
				run->pk[k].complete = 0;
		}
	}
	if (o.rv == CS_ECANCELED || *x->stop) {
		run->stopped = 1;
		return;
	}
	size_t len = strlen(res->error);
	if (o.err[0] != '\0' && len + strlen(o.err) + 3 < sizeof(res->error))
		snprintf(res->error + len, sizeof(res->error) - len, "%s%s", len ? "; " : "", o.err);
	if (o.rv != 0 && o.fatal)
		run->failed = 1;
}

/* Record the run's end with the store (even while stopping), then counters and logs. */
static void
close_run(struct exporter *x, struct run *run, struct run_result *res)
{
	res->status = run->failed ? CRMSYNC__RUN_STATUS__RUN_FAILED :
	    run->stopped ? CRMSYNC__RUN_STATUS__RUN_PARTIAL : CRMSYNC__RUN_STATUS__RUN_COMPLETE;
	if (run->stopped && !run->failed && res->error[0] == '\0')
		snprintf(res->error, sizeof(res->error), "stopped before the end (shutdown)");
	(void)storecli_run_end(x->sc, res->run_id, (Crmsync__RunStatus)res->status, res->error,
	    run->results, run->nres);
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
	log_info("run.end", "run=%lld status=%s ms=%lld requests=%lld bytes=%lld retries=%lld%s%s",
	    (long long)res->run_id, sname, (long long)(bus_now_ms() - run->t0),
	    (long long)(stat_get(&hh_stats[HS_REQUESTS]) - run->req0),
	    (long long)(stat_get(&hh_stats[HS_BYTES_IN]) - run->bytes0),
	    (long long)(stat_get(&hh_stats[HS_RETRIES]) - run->retries0), res->error[0] ? " error=" : "",
	    res->error[0] ? lq(res->error) : "");
}

int
export_run(struct exporter *x, const struct run_req *rq, void (*on_begin)(void *, int64_t),
    void *arg, struct run_result *res)
{
	struct run *run = calloc(1, sizeof(*run));
	int rv = CS_ENOMEM;

	memset(res, 0, sizeof(*res));
	if (run == NULL)
		return rv;
	run->d = catalog_crm(CAT_HOLLIHOP);
	run->t0 = bus_now_ms();
	run->req0 = stat_get(&hh_stats[HS_REQUESTS]);
	run->bytes0 = stat_get(&hh_stats[HS_BYTES_IN]);
	run->retries0 = stat_get(&hh_stats[HS_RETRIES]);
	if ((rv = plan_run(x, rq, run, res)) != 0)
		goto out;
	if ((rv = storecli_run_begin(x->sc, CRMSYNC__SYNC_KIND__SYNC_FULL, rq->trigger, run->names,
	    run->nsel, &res->run_id, run->last_rows, res->error, sizeof(res->error))) != 0)
		goto out;
	stat_add(&hh_stats[HS_RUNS_STARTED], 1);
	stat_set(&hh_stats[HS_RUNNING], 1);
	stat_set(&hh_stats[HS_LAST_RUN_ID], res->run_id);
	log_info("run.begin", "run=%lld trigger=%s entities=%zu today=%s date_from=%s date_to=%s",
	    (long long)res->run_id, rq->trigger, run->nsel, run->vars.today, run->vars.date_from,
	    run->vars.date_to);
	if (on_begin != NULL)
		on_begin(arg, res->run_id);
	for (size_t i = 0; i < run->d->nentities; i++)
		if (run->sel[i])
			run_entity(x, run, &run->d->entities[i], res);
	close_run(x, run, res);
	rv = 0;
out:
	for (int k = 0; k < run->npk; k++)
		buf_free(&run->pk[k].keys.b);
	free(run);
	return rv;
}
