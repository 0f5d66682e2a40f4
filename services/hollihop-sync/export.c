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
 * collected on the way, each with its newest "changed" stamp when a per-client method's
 * catalogue entry has changed_by (students' Updated/Created): such a method is called only
 * for the clients changed since its last complete pass (a store cursor), and for every
 * client on a sweep every CS_HOLLIHOP_SWEEP_EVERY; only a sweep may delete its rows
 * (pc_plan, run_per_client). Its changed_via sources (payments -> client_id, created) are
 * collected the same way, keyed by the column that names the client, so that a client with
 * a payment created since the last pass counts as changed too (pc_changed).
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
#define EXPORT_STAMP_COLS	8
#define EXPORT_STAMP_MAX	40	/* "YYYY-MM-DD HH:MM:SS+00" */
#define EXPORT_SWEEP_SLACK_S	(6 * 3600)	/* a nightly schedule's sweep does not slip a night */
#define EXPORT_VIA_MAX		4	/* changed_via sources of one per-client method */
#define EXPORT_STAMP_NONE	"~"	/* a floor above every stamp: record no stamped key */

struct parent_keys {
	const struct cat_entity	*e;
	size_t			 kcol;		/* the column whose values are collected */
	int			 via;		/* a changed_via source: only keys stamped after floor */
	char			 floor[EXPORT_STAMP_MAX];
	struct keys		 keys;
	/* Parallel to keys when nscol > 0: each key's newest value of the columns scol
	 * (normalised UTC text, which sorts as time; "" = none). */
	struct buf		 stamps;
	size_t			 scol[EXPORT_STAMP_COLS];
	int			 nscol;
	char			 newest[EXPORT_STAMP_MAX];	/* newest stamp of the listing */
	int			 complete;
};

/* How a per-client method with changed_by runs this time (pc_plan). */
struct pc_mode {
	int	 sweep;				/* every parent; its deletions count */
	char	 since[EXPORT_STAMP_MAX];	/* else: parents stamped after this */
	int	 nvia;				/* and clients of changed_via rows stamped after */
	char	 since_via[EXPORT_VIA_MAX][EXPORT_STAMP_MAX];
	char	 why[128];
};

/* Thread ownership: the run thread (one run at a time) uses everything but status. */
struct exporter {
	const struct hh_conf	*c;
	volatile _Atomic int	*stop;
	struct ratelimit	 rl;
	struct api		*api[EXPORT_CONCURRENCY_MAX];	/* one per entity in flight */
	int			 napi;
	struct fetch_bell	 bell;		/* rung by the fetchers of the entities in flight */
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
	struct parent_keys	*collect;	/* where its keys go, or NULL */
	struct fetch		*f;
	struct arena		 arena;		/* the records of the batch being gathered */
	struct page		*pending;	/* pages the gathered records point into */
	Crmsync__Record		**recs;
	Crmsync__RejectedRow	**rej;		/* unreadable rows of the batch being gathered */
	size_t			 nrec, nrej, cap;
	struct readguard	*guard;
	int			 pass;		/* of the last page (fetch.c numbers them) */
	int64_t			 skip;		/* of the last page */
	int64_t			 t0, last_note, pages;
	int			 logged_bad;
	struct entity_out	*o;
};

enum { ST_WAITING, ST_ACTIVE, ST_DONE };

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
	struct pc_mode		 pcm[256];	/* per-client plans, by catalogue index (pc_plan) */
	unsigned char		 planned[256];
	unsigned char		 state[256];	/* ST_*, by catalogue index */
	size_t			 ridx[256];	/* its line in results, by catalogue index */
	size_t			 nres;
	int			 failed, stopped;
	int			 sweep_all;	/* run_req.sweep_all */
	int64_t			 t0, req0, bytes0, retries0;
	time_t			 started;
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
	 * At most `rate` requests in any window, counted as the server counts them: a sliding
	 * window whose slots come free a window after each response (ratelimit.h). The token
	 * bucket it replaces had to keep burst + refill over one window within the allowance
	 * (600/30 s: burst 12, then 19.6/s), so a long run went at 98% of it.
	 */
	rv = 0;
	if (c->rate > 0)
		rv = rl_init_window(&x->rl, (size_t)c->rate, (int64_t)c->rate_window_ms);
	else
		rl_init(&x->rl, 0, 1);
	if (rv != 0) {
		free(x);
		return rv;
	}
	bell_init(&x->bell);
	pthread_mutex_init(&x->mtx, NULL);
	snprintf(x->status, sizeof(x->status), "idle");
	/* Two packed batches wait at most: the store commits one while the next is normalised. */
	const struct storecli_opts so = { .crm = CAT_HOLLIHOP, .timeout_ms = (int)c->store_timeout_ms,
	    .deadline_ms = c->store_deadline_ms, .depth = 2, .stop = stop,
	    .batches = &hh_stats[HS_BATCHES_SENT], .rows = &hh_stats[HS_ROWS_SENT],
	    .rejected = &hh_stats[HS_BATCHES_REJECTED], .wake = bell_ring, .wake_arg = &x->bell };
	x->napi = c->concurrency < 1 ? 1 : c->concurrency > EXPORT_CONCURRENCY_MAX ?
	    EXPORT_CONCURRENCY_MAX : (int)c->concurrency;
	for (int i = 0; i < x->napi; i++) {
		if ((rv = api_new(&x->api[i], c, &x->rl)) != 0) {
			export_free(x);
			return rv;
		}
	}
	if ((rv = storecli_open(&x->sc, store, &so)) != 0) {
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
	for (int i = 0; i < EXPORT_CONCURRENCY_MAX; i++)
		api_free(x->api[i]);
	rl_destroy(&x->rl);
	bell_destroy(&x->bell);
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

		size_t cols[EXPORT_STAMP_COLS];
		if (catalog_changed_cols(e, cols, EXPORT_STAMP_COLS) < 0) {
			snprintf(err, errlen, "catalogue: %s: changed_by \"%s\" must name timestamp "
			    "columns of its parent", e->name, e->changed_by);
			return CS_ECONFIG;
		}
		const struct cat_entity *src;
		size_t kc, sc, nv;
		int vr = 0;
		for (nv = 0; nv <= EXPORT_VIA_MAX && (vr = catalog_changed_via(e, nv, &src, &kc, &sc)) == 1; nv++)
			;
		if (vr < 0 || nv > EXPORT_VIA_MAX) {
			snprintf(err, errlen, "catalogue: %s: changed_via \"%s\" must name at most %d "
			    "\"entity:column:timestamp column\" of entities before it", e->name,
			    e->changed_via, EXPORT_VIA_MAX);
			return CS_ECONFIG;
		}
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
			const struct cat_entity *p = catalog_find(CAT_HOLLIHOP, e->parent), *src;
			size_t kc, sc;
			if (p != NULL)
				sel[p - d->entities] = 1;
			/* The sources that say a client changed come along (sources come first). */
			for (size_t v = 0; catalog_changed_via(e, v, &src, &kc, &sc) == 1; v++)
				sel[src - d->entities] = 1;
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
	/* Which page went when: the order the store gets them in (tests read it). */
	log_debug("export.batch", "run=%lld entity=%s pass=%d skip=%lld records=%zu",
	    (long long)r->run_id, r->e->name, r->pass, (long long)r->skip, r->nrec);
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

/* Sort and de-duplicate pk's keys (offset paging can return a row twice), keeping each
 * key's newest stamp. */
static int
keys_unique(struct parent_keys *pk)
{
	struct keys *k = &pk->keys;
	const char **v;
	struct buf nb, ns;
	size_t n = 0;
	const char *p = k->b.data, *q = pk->stamps.data;
	int rv = CS_ETOOBIG;

	if (k->n < 2)
		return 0;
	/* v[2i] the key, v[2i + 1] its stamp (or NULL): sorted by key, pairs kept together. */
	if ((v = calloc(k->n, 2 * sizeof(*v))) == NULL)
		return CS_ENOMEM;
	for (size_t i = 0; i < k->n; i++, p += strlen(p) + 1) {
		v[2 * i] = p;
		if (pk->nscol > 0) {
			v[2 * i + 1] = q;
			q += strlen(q) + 1;
		}
	}
	qsort(v, k->n, 2 * sizeof(*v), cmp_str);
	buf_init(&nb, EXPORT_KEYS_MAX);
	buf_init(&ns, EXPORT_KEYS_MAX);
	for (size_t i = 0; i < k->n; i++) {
		const char *key = v[2 * i], *st = v[2 * i + 1];
		if (i > 0 && strcmp(key, v[2 * i - 2]) == 0) {
			/* The same client twice: the newer stamp wins (only ns's last entry). */
			if (st != NULL && ns.len > 0) {
				const char *last = ns.data + ns.len - 1;
				while (last > ns.data && last[-1] != '\0')
					last--;
				if (strcmp(st, last) > 0) {
					ns.len = (size_t)(last - ns.data);
					if (buf_add(&ns, st, strlen(st) + 1) != 0)
						goto out;
				}
			}
			continue;
		}
		if (buf_add(&nb, key, strlen(key) + 1) != 0 ||
		    (st != NULL && buf_add(&ns, st, strlen(st) + 1) != 0))
			goto out;
		n++;
	}
	buf_free(&k->b);
	k->b = nb;
	k->n = n;
	buf_free(&pk->stamps);
	pk->stamps = ns;
	buf_init(&nb, 0);
	buf_init(&ns, 0);
	rv = 0;
out:
	free(v);
	buf_free(&nb);
	buf_free(&ns);
	return rv;
}

/*
 * Collect row rec's key (column pk->kcol) into pk, with its stamp when pk has stamp columns:
 * its newest value of them. A changed_via source keeps only keys stamped after its floor
 * (what no per-client method needs is not held), but sees every stamp for pk->newest.
 */
static int
collect_row(struct parent_keys *pk, const Crmsync__Record *rec)
{
	const char *best = "";

	if (pk->kcol >= rec->n_values || norm_isnull(&rec->null_mask, pk->kcol) ||
	    rec->values[pk->kcol] == NULL)
		return 0;
	if (pk->nscol == 0)
		return keys_add(&pk->keys, rec->values[pk->kcol]);

	for (int i = 0; i < pk->nscol; i++) {
		size_t c = pk->scol[i];
		if (c < rec->n_values && !norm_isnull(&rec->null_mask, c) && rec->values[c] != NULL &&
		    strcmp(rec->values[c], best) > 0)
			best = rec->values[c];
	}
	if (strlen(best) >= EXPORT_STAMP_MAX)
		best = "";	/* not a timestamp this code wrote: "unknown", called every run */
	if (strcmp(best, pk->newest) > 0)
		snprintf(pk->newest, sizeof(pk->newest), "%s", best);
	if (pk->via && strcmp(best, pk->floor) <= 0)
		return 0;
	if (keys_add(&pk->keys, rec->values[pk->kcol]) != 0)
		return CS_ETOOBIG;
	return buf_add(&pk->stamps, best, strlen(best) + 1) != 0 ? CS_ETOOBIG : 0;
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
	if (r->collect != NULL && collect_row(r->collect, rec) != 0) {
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
	r->skip = p->skip;
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
 * The entity was read to its end: send the rest and mark where its batches end in the
 * store client's queue (other entities keep queueing theirs behind). Returns 0 or the
 * error that makes it fail.
 */
static int
finish_begin(struct entity_run *r, uint64_t *mark)
{
	int rv;

	if ((rv = flush(r, NULL)) != 0)
		return rv;
	*mark = storecli_mark(r->x->sc);
	return 0;
}

/*
 * The store has answered every batch of the entity (everything queued before its mark;
 * store_rv the sender's sticky error then): decide whether it is complete. Returns 0 or
 * the error that makes it fail.
 */
static int
finish_entity(struct entity_run *r, int store_rv, uint64_t rejected0, int parents_complete)
{
	struct entity_out *o = r->o;
	char ferr[1024] = "", why[512];
	int truncated = 0, rv;

	/* Every batch of the entity answered before it counts as complete. */
	if (store_rv != 0) {
		store_err(store_rv, o->err, sizeof(o->err));
		return store_rv;
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

/* One entity being read; a run keeps up to CS_HOLLIHOP_CONCURRENCY of them (run_entities). */
struct active {
	int			 used;
	size_t			 idx;		/* catalogue index */
	int			 slot;		/* its api (and place in the run's table) */
	int			 started;	/* its fetcher runs */
	int			 finishing;	/* read to its end: waits for the store to reach mark */
	uint64_t		 mark;		/* after its last batch in the store client's queue */
	int			 parents_complete;
	int			 changed_only;	/* per-client: changed parents only */
	struct parent_keys	*ppk;		/* its parent's keys (per-client) */
	struct keys		 changed;
	struct pc_mode		 m;
	uint64_t		 rejected0;	/* the store's rejections before it began */
	struct entity_run	 r;
	struct entity_out	 o;
};

/*
 * Start reading entity a->idx; a->o says why it failed at once (then it counts as ended).
 * collect: where to put its keys (NULL if no one needs them). last_rows: its last complete
 * full read (-1: unknown), for the readguard's bound. alone: no other entity is in flight
 * (so rejections the store reported before are this run's past, not another's present).
 */
static int
entity_open(struct exporter *x, struct active *a, int64_t run_id, const struct hh_vars *vars,
    const struct keys *parents, struct parent_keys *collect, int64_t last_rows, int alone)
{
	const struct cat_entity *e = &catalog_crm(CAT_HOLLIHOP)->entities[a->idx];
	struct entity_run *r = &a->r;
	struct entity_out *o = &a->o;
	char why[512];
	int rv;

	memset(o, 0, sizeof(*o));
	memset(r, 0, sizeof(*r));
	r->x = x;
	r->e = e;
	r->run_id = run_id;
	r->collect = collect;
	r->o = o;
	r->cap = 2 * (size_t)x->c->batch_rows;
	r->t0 = r->last_note = bus_now_ms();
	a->rejected0 = storecli_rejected(x->sc, NULL, 0);
	if (alone)
		(void)storecli_rejected(x->sc, why, sizeof(why));	/* forget rejections before it */
	arena_init(&r->arena, EXPORT_ARENA_MAX);
	log_info("export.entity_begin", "run=%lld entity=%s method=%s", (long long)run_id, e->name,
	    e->endpoint);
	set_status(x, "running run=%lld entity=%s", (long long)run_id, e->name);
	if ((r->recs = malloc(r->cap * sizeof(*r->recs))) == NULL ||
	    (r->rej = malloc(r->cap * sizeof(*r->rej))) == NULL ||
	    readguard_new(&r->guard, e, last_rows, x->c->max_growth) != 0) {
		rv = CS_ENOMEM;
		snprintf(o->err, sizeof(o->err), "%s: out of memory", e->name);
		goto fail;
	}
	if ((rv = fetch_start(&r->f, e, x->c, x->api[a->slot], vars, parents, x->stop,
	    &x->bell)) != 0) {
		r->f = NULL;
		snprintf(o->err, sizeof(o->err), "%s: cannot start the fetcher", e->name);
		goto fail;
	}
	a->started = 1;
	return 0;
fail:
	fail_entity(r, rv);
	o->fatal = 1;	/* no memory, no fetcher thread: nothing else will do better */
	return rv;
}

/*
 * One page of a's, if its fetcher has one: 0 it went to the store (or the entity was read
 * to its end and waits for the store now), 1 none yet, 2 the entity ended (read to its end
 * and answered by the store, or failed: a->o says which). An entity waiting for the
 * store's answers does not hold up the others: this thread goes on with their pages.
 */
static int
entity_step(struct exporter *x, struct active *a)
{
	struct page *p;
	int rv, store_rv, got;

	if (a->finishing) {
		if (!storecli_reached(x->sc, a->mark, &store_rv))
			return 1;
		if ((rv = finish_entity(&a->r, store_rv, a->rejected0, a->parents_complete)) == 0)
			return 2;
		fail_entity(&a->r, rv);
		return 2;
	}
	if ((got = fetch_poll(a->r.f, &p)) == 0)
		return 1;
	if (got > 0) {
		if ((rv = add_page(&a->r, p)) == 0) {	/* p is the entity's now, in all cases */
			note_progress(&a->r);
			return 0;
		}
	} else if ((rv = finish_begin(&a->r, &a->mark)) == 0) {
		a->finishing = 1;
		return 0;
	}
	fail_entity(&a->r, rv);
	return 2;
}

/* Free what reading a held (its outcome stays in a->o). */
static void
entity_close(struct active *a)
{
	struct entity_run *r = &a->r;

	while (r->pending != NULL) {
		struct page *q = r->pending;
		r->pending = q->next;
		page_free(q);
	}
	arena_reset(&r->arena);
	free(r->recs);
	free(r->rej);
	readguard_free(r->guard);
	r->recs = NULL;
	r->rej = NULL;
	r->guard = NULL;
}

/* The run's key collector of entity e (column kcol; a changed_via source or a parent), new
 * if need be; NULL when e already has one for another column, or too many. */
static struct parent_keys *
collector(struct run *run, const struct cat_entity *e, size_t kcol, int via)
{
	struct parent_keys *pk;

	for (int k = 0; k < run->npk; k++)
		if (run->pk[k].e == e)
			return run->pk[k].kcol == kcol && run->pk[k].via == via ? &run->pk[k] : NULL;
	if (run->npk == EXPORT_MAX_PARENTS)
		return NULL;
	pk = &run->pk[run->npk++];
	pk->e = e;
	pk->kcol = kcol;
	pk->via = via;
	snprintf(pk->floor, sizeof(pk->floor), "%s", EXPORT_STAMP_NONE);
	buf_init(&pk->keys.b, EXPORT_KEYS_MAX);
	buf_init(&pk->stamps, EXPORT_KEYS_MAX);
	return pk;
}

static void
stamp_col(struct parent_keys *pk, size_t col)
{
	for (int k = 0; k < pk->nscol; k++)
		if (pk->scol[k] == col)
			return;
	if (pk->nscol < EXPORT_STAMP_COLS)
		pk->scol[pk->nscol++] = col;
}

static int
plan_conflict(struct run_result *res, const struct cat_entity *e)
{
	snprintf(res->error, sizeof(res->error), "catalogue: %s drives per-client methods through "
	    "two different columns (or too many collectors)", e->name);
	return CS_ECONFIG;
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
	/* Entities whose keys drive per-client methods of this run, and the columns whose
	 * newest value says when a parent changed (the union of its children's changed_by);
	 * then the changed_via sources, keyed by their column that names the parent. */
	for (size_t i = 0; i < d->nentities; i++) {
		const struct cat_entity *e = &d->entities[i], *p, *src;
		struct parent_keys *pk;
		size_t cols[EXPORT_STAMP_COLS], kc, sc;
		int nc;
		if (!run->sel[i] || e->paging != PAGE_PER_PARENT ||
		    (p = catalog_find(CAT_HOLLIHOP, e->parent)) == NULL)
			continue;
		if ((pk = collector(run, p, first_key_col(p), 0)) == NULL)
			return plan_conflict(res, p);
		if ((nc = catalog_changed_cols(e, cols, EXPORT_STAMP_COLS)) > 0)
			for (int c = 0; c < nc; c++)
				stamp_col(pk, cols[c]);
		for (size_t v = 0; catalog_changed_via(e, v, &src, &kc, &sc) == 1; v++) {
			if ((pk = collector(run, src, kc, 1)) == NULL)
				return plan_conflict(res, src);
			stamp_col(pk, sc);
		}
	}
	return 0;
}

/* Cursor "<entity>.<what>" of a per-client method: 1 found, 0 not, -1 the store failed. */
static int
pc_cursor(struct exporter *x, const struct cat_entity *e, const char *what, char *dst, size_t cap)
{
	char name[160];
	int found = 0;

	snprintf(name, sizeof(name), "%s.%s", e->name, what);
	if (storecli_cursor_get(x->sc, name, dst, cap, &found) != 0)
		return -1;
	return found;
}

/* The stamp `s` ("YYYY-MM-DD HH:MM:SS+00", as normalise writes them) less ms, into dst. */
static int
stamp_minus(const char *s, int64_t ms, char *dst, size_t cap)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	if ((end = strptime(s, "%Y-%m-%d %H:%M:%S", &tm)) == NULL || strcmp(end, "+00") != 0)
		return CS_EINVAL;
	time_t t = timegm(&tm) - (time_t)(ms / 1000);
	if (gmtime_r(&t, &tm) == NULL || strftime(dst, cap, "%Y-%m-%d %H:%M:%S+00", &tm) == 0)
		return CS_EINVAL;
	return 0;
}

/* The since of each changed_via source of e into m; a source without a cursor: a sweep. */
static int
pc_plan_via(struct exporter *x, const struct cat_entity *e, struct pc_mode *m)
{
	const struct cat_entity *src;
	size_t kc, sc;
	char what[96], seen[EXPORT_STAMP_MAX];
	int f;

	for (m->nvia = 0; m->nvia < EXPORT_VIA_MAX &&
	    catalog_changed_via(e, (size_t)m->nvia, &src, &kc, &sc) == 1; m->nvia++) {
		char *since = m->since_via[m->nvia];
		snprintf(what, sizeof(what), "changed_seen.%s", src->name);
		if ((f = pc_cursor(x, e, what, seen, sizeof(seen))) < 0)
			return CS_ENNG;
		if (f == 0) {
			m->sweep = 1;
			snprintf(m->why, sizeof(m->why), "no complete pass with %s yet", src->name);
			return 0;
		}
		if (seen[0] == '\0')
			since[0] = '\0';
		else if (stamp_minus(seen, x->c->changed_lookback_ms, since, EXPORT_STAMP_MAX) != 0) {
			m->sweep = 1;
			snprintf(m->why, sizeof(m->why), "unreadable cursor %s", seen);
			return 0;
		}
	}
	return 0;
}

/*
 * Per-client method e with changed_by: a sweep (every parent) when CS_HOLLIHOP_SWEEP_EVERY
 * is 0, when it has never completed one, or when its last complete sweep began that long
 * ago (less EXPORT_SWEEP_SLACK_S, so a nightly schedule does not slip a night); otherwise
 * only parents stamped after the newest stamp its last complete pass saw, less
 * CS_HOLLIHOP_CHANGED_LOOKBACK (so a student changed while the listing ran, after its page
 * was read, is still caught; stamps come from Hollihop's clock, not ours), and the clients
 * of its changed_via rows stamped after the newest such stamp, less the same, each source
 * with its cursor ("" = none seen yet: every row counts).
 */
static int
pc_plan(struct exporter *x, const struct cat_entity *e, time_t now, struct pc_mode *m)
{
	char swept[32] = "", seen[EXPORT_STAMP_MAX] = "";
	int64_t every_s = x->c->sweep_every_ms / 1000;
	int64_t slack = every_s / 2 < EXPORT_SWEEP_SLACK_S ? every_s / 2 : EXPORT_SWEEP_SLACK_S;
	int f1, f2;

	memset(m, 0, sizeof(*m));
	m->sweep = 1;
	if (every_s <= 0) {
		snprintf(m->why, sizeof(m->why), "CS_HOLLIHOP_SWEEP_EVERY=0");
		return 0;
	}
	if ((f1 = pc_cursor(x, e, "swept_at", swept, sizeof(swept))) < 0 ||
	    (f2 = pc_cursor(x, e, "changed_seen", seen, sizeof(seen))) < 0)
		return CS_ENNG;
	if (f1 == 0 || f2 == 0) {
		snprintf(m->why, sizeof(m->why), "no complete pass yet");
	} else if ((int64_t)now - strtoll(swept, NULL, 10) >= every_s - slack) {
		snprintf(m->why, sizeof(m->why), "last sweep at unix %s", swept);
	} else if (stamp_minus(seen, x->c->changed_lookback_ms, m->since, sizeof(m->since)) != 0) {
		snprintf(m->why, sizeof(m->why), "unreadable cursor %s", seen);
	} else {
		m->sweep = 0;
	}
	return m->sweep ? 0 : pc_plan_via(x, e, m);
}

/* The run's plan for per-client method e (pc_plan, once per run): never NULL. */
static const struct pc_mode *
run_plan(struct exporter *x, struct run *run, const struct cat_entity *e)
{
	size_t i = (size_t)(e - run->d->entities);
	struct pc_mode *m = &run->pcm[i];

	if (!run->planned[i] && run->sweep_all) {
		memset(m, 0, sizeof(*m));
		m->sweep = 1;
		snprintf(m->why, sizeof(m->why), "a re-sync reads every client");
	} else if (!run->planned[i] && pc_plan(x, e, run->started, m) != 0) {
		memset(m, 0, sizeof(*m));
		m->sweep = 1;
		snprintf(m->why, sizeof(m->why), "its cursors could not be read from the store");
	}
	run->planned[i] = 1;
	return m;
}

/*
 * Read every per-client method's plan (its cursors) while the store client's queue is
 * empty, at the run's start: a cursor read waits for everything queued before it, which
 * later in the run means other entities' pages, with this thread (and so every entity)
 * held up meanwhile. The plans depend on the cursors of earlier runs only.
 */
static void
plan_per_client(struct exporter *x, struct run *run)
{
	for (size_t i = 0; i < run->d->nentities; i++) {
		const struct cat_entity *e = &run->d->entities[i];
		if (run->sel[i] && e->paging == PAGE_PER_PARENT && e->changed_by != NULL)
			(void)run_plan(x, run, e);
	}
}

/* The source's collector in the run, when it read its listing to the end; else NULL. */
static const struct parent_keys *
via_keys(const struct run *run, const struct cat_entity *src)
{
	for (int k = 0; k < run->npk; k++)
		if (run->pk[k].e == src && run->pk[k].via)
			return run->pk[k].complete ? &run->pk[k] : NULL;
	return NULL;
}

/* Mark the keys of pk (sorted) that v (sorted) holds with a stamp after since. */
static void
mark_via(const struct parent_keys *pk, const struct parent_keys *v, const char *since,
    unsigned char *mark)
{
	const char *k = pk->keys.b.data, *vk = v->keys.b.data, *vs = v->stamps.data;
	size_t i = 0, j = 0;

	while (i < pk->keys.n && j < v->keys.n) {
		int c = strcmp(k, vk);
		if (c == 0 && strcmp(vs, since) > 0)
			mark[i] = 1;
		if (c <= 0) {
			k += strlen(k) + 1;
			i++;
		}
		if (c >= 0) {
			vk += strlen(vk) + 1;
			vs += strlen(vs) + 1;
			j++;
		}
	}
}

/*
 * The keys of pk stamped after m->since (or without a stamp), or that a changed_via source
 * of e holds with a stamp after its since, into out (caller frees). CS_EINVAL when a source
 * was not read completely (then nobody can tell who changed).
 */
static int
pc_changed(const struct run *run, const struct cat_entity *e, const struct parent_keys *pk,
    const struct pc_mode *m, struct keys *out)
{
	const char *k = pk->keys.b.data, *st = pk->stamps.data;
	const struct cat_entity *src;
	unsigned char *mark;
	size_t kc, sc;
	int rv = 0;

	buf_init(&out->b, EXPORT_KEYS_MAX);
	out->n = 0;
	if ((mark = calloc(pk->keys.n + 1, 1)) == NULL)
		return CS_ENOMEM;
	for (int v = 0; v < m->nvia && catalog_changed_via(e, (size_t)v, &src, &kc, &sc) == 1; v++) {
		const struct parent_keys *vk = via_keys(run, src);
		if (vk == NULL) {
			rv = CS_EINVAL;
			goto out;
		}
		mark_via(pk, vk, m->since_via[v], mark);
	}
	for (size_t i = 0; i < pk->keys.n; i++, k += strlen(k) + 1, st += strlen(st) + 1)
		if ((mark[i] || st[0] == '\0' || strcmp(st, m->since) > 0) && keys_add(out, k) != 0) {
			rv = CS_ETOOBIG;
			goto out;
		}
out:
	free(mark);
	return rv;
}

/* Move cursor "<entity>.<what>" to value, with an empty batch of e (waits for the store). */
static int
pc_cursor_set(struct exporter *x, const struct cat_entity *e, int64_t run_id, const char *what,
    const char *value)
{
	Crmsync__RecordBatch b = CRMSYNC__RECORD_BATCH__INIT;
	Crmsync__Cursor cur = CRMSYNC__CURSOR__INIT;
	char name[160];

	snprintf(name, sizeof(name), "%s.%s", e->name, what);
	cur.name = name;
	cur.value = (char *)value;
	b.entity = (char *)e->name;
	b.run_id = run_id;
	b.cursor_opt_case = CRMSYNC__RECORD_BATCH__CURSOR_OPT_CURSOR;
	b.cursor = &cur;
	return storecli_batch_wait(x->sc, &b);
}

/*
 * Per-client method e with changed_by, its parent's listing complete: which parents to call
 * (all, or the changed ones into *changed). Returns 1 when only the changed ones.
 */
static int
run_per_client(struct exporter *x, struct run *run, const struct cat_entity *e, int64_t run_id,
    const struct parent_keys *ppk, struct pc_mode *m, struct keys *changed)
{
	int rv;

	*m = *run_plan(x, run, e);
	if (!m->sweep && (rv = pc_changed(run, e, ppk, m, changed)) != 0) {
		m->sweep = 1;
		snprintf(m->why, sizeof(m->why), "%s", rv == CS_EINVAL ? "a changed_via source was not "
		    "read completely" : "too many changed clients to list");
	}
	log_info("export.per_client", "run=%lld entity=%s mode=%s clients=%zu of=%zu since=%s%s%s",
	    (long long)run_id, e->name, m->sweep ? "sweep" : "changed",
	    m->sweep ? ppk->keys.n : changed->n, ppk->keys.n, m->sweep ? "-" : m->since,
	    m->sweep ? " why=" : "", m->sweep ? lq(m->why) : "");
	return !m->sweep;
}

/* A complete pass of per-client method e: the next run's changed-since, and its sweep. */
static void
pc_done(struct exporter *x, struct run *run, const struct cat_entity *e, int64_t run_id,
    const struct parent_keys *ppk, const struct pc_mode *m)
{
	char now[32];
	int rv = 0;

	snprintf(now, sizeof(now), "%lld", (long long)run->started);
	if (ppk->newest[0] != '\0')
		rv = pc_cursor_set(x, e, run_id, "changed_seen", ppk->newest);
	/* Each changed_via source read completely: its newest stamp ("" = it had none). */
	const struct cat_entity *src;
	size_t kc, sc;
	for (size_t v = 0; rv == 0 && catalog_changed_via(e, v, &src, &kc, &sc) == 1; v++) {
		const struct parent_keys *vk = via_keys(run, src);
		char what[96];
		if (vk == NULL)
			continue;
		snprintf(what, sizeof(what), "changed_seen.%s", src->name);
		rv = pc_cursor_set(x, e, run_id, what, vk->newest);
	}
	if (rv == 0 && m->sweep)
		rv = pc_cursor_set(x, e, run_id, "swept_at", now);
	if (rv != 0)
		log_warnx("export.cursor_failed", "run=%lld entity=%s err=%s: the next run calls "
		    "more clients than it needs", (long long)run_id, e->name, lq(cs_strerror(rv)));
}

/*
 * Before changed_via source pk->e is read: keep only the keys a per-client method of the
 * run will ask about, those stamped after the oldest since of the methods not sweeping.
 */
static void
via_floor(struct exporter *x, struct run *run, struct parent_keys *pk)
{
	const struct cat_entity *src;
	size_t kc, sc;

	snprintf(pk->floor, sizeof(pk->floor), "%s", EXPORT_STAMP_NONE);
	for (size_t i = 0; i < run->d->nentities; i++) {
		const struct cat_entity *e = &run->d->entities[i];
		if (!run->sel[i])
			continue;
		for (size_t v = 0; v < EXPORT_VIA_MAX && catalog_changed_via(e, v, &src, &kc, &sc) == 1; v++) {
			const struct pc_mode *m = run_plan(x, run, e);
			if (src == pk->e && !m->sweep && strcmp(m->since_via[v], pk->floor) < 0)
				snprintf(pk->floor, sizeof(pk->floor), "%s", m->since_via[v]);
		}
	}
}

/* Entity e can start: what it needs from other entities of the run is there (a per-client
 * method: its parent's keys and its changed_via sources, each read and done with). */
static int
entity_ready(const struct run *run, const struct cat_entity *e)
{
	const struct cat_entity *p, *src;
	size_t kc, sc;

	if (e->paging != PAGE_PER_PARENT)
		return 1;
	if ((p = catalog_find(CAT_HOLLIHOP, e->parent)) != NULL &&
	    run->sel[p - run->d->entities] && run->state[p - run->d->entities] != ST_DONE)
		return 0;
	for (size_t v = 0; catalog_changed_via(e, v, &src, &kc, &sc) == 1; v++)
		if (run->sel[src - run->d->entities] && run->state[src - run->d->entities] != ST_DONE)
			return 0;
	return 1;
}

/* Start entity a->idx of the run: its parents' keys, its per-client plan, its fetcher. */
static void
run_entity_start(struct exporter *x, struct run *run, struct active *a, int alone,
    struct run_result *res)
{
	const struct cat_entity *e = &run->d->entities[a->idx];
	struct parent_keys *collect = NULL;
	const struct keys *parents = NULL;

	a->parents_complete = e->paging != PAGE_PER_PARENT;	/* until its parent is found */
	a->changed_only = 0;
	a->ppk = NULL;
	buf_init(&a->changed.b, 0);
	a->changed.n = 0;
	memset(&a->m, 0, sizeof(a->m));
	a->m.sweep = 1;
	for (int k = 0; k < run->npk; k++) {
		if (run->pk[k].e == e)
			collect = &run->pk[k];
		if (e->paging == PAGE_PER_PARENT && strcmp(run->pk[k].e->name, e->parent) == 0) {
			a->ppk = &run->pk[k];
			parents = &a->ppk->keys;
			a->parents_complete = a->ppk->complete;
		}
	}
	if (collect != NULL && collect->via)
		via_floor(x, run, collect);
	if (a->ppk != NULL && a->ppk->complete && e->changed_by != NULL &&
	    run_per_client(x, run, e, res->run_id, a->ppk, &a->m, &a->changed)) {
		a->changed_only = 1;
		parents = &a->changed;
	}
	(void)entity_open(x, a, res->run_id, &run->vars, parents, collect,
	    run->last_rows[run->ridx[a->idx]], alone);
}

/* Entity a ended (a->o): its RunEnd line, its cursors and keys, what it does to the run. */
static void
run_entity_end(struct exporter *x, struct run *run, struct active *a, struct run_result *res)
{
	const struct cat_entity *e = &run->d->entities[a->idx];
	struct storecli_entity *er = &run->results[run->ridx[a->idx]];
	struct entity_out *o = &a->o;

	/* Changed clients only: the rows of the others were not asked for, so not "complete"
	 * for the store (which would delete them); their deletions wait for the sweep. */
	er->complete = o->complete && !a->changed_only;
	er->rows = o->rows;
	er->pages = o->pages;
	er->rows_rejected = o->bad_rows;
	if (a->ppk != NULL && e->changed_by != NULL && o->complete && o->rv == 0)
		pc_done(x, run, e, res->run_id, a->ppk, &a->m);
	buf_free(&a->changed.b);
	for (int k = 0; k < run->npk; k++) {
		if (run->pk[k].e == e) {
			run->pk[k].complete = o->complete && o->rv == 0;
			if (keys_unique(&run->pk[k]) != 0)
				run->pk[k].complete = 0;
		}
	}
	run->state[a->idx] = ST_DONE;
	if (o->rv == CS_ECANCELED || *x->stop) {
		run->stopped |= !run->failed;
		return;
	}
	size_t len = strlen(res->error);
	if (o->err[0] != '\0' && len + strlen(o->err) + 3 < sizeof(res->error))
		snprintf(res->error + len, sizeof(res->error) - len, "%s%s", len ? "; " : "", o->err);
	if (o->rv != 0 && o->fatal)
		run->failed = 1;
}

/* Some per-client method of the run still waits for entity e (its parent or a source). */
static int
entity_awaited(const struct run *run, const struct cat_entity *e)
{
	const struct cat_entity *src;
	size_t kc, sc;

	for (size_t i = 0; i < run->d->nentities; i++) {
		const struct cat_entity *w = &run->d->entities[i];
		if (!run->sel[i] || run->state[i] != ST_WAITING || w->paging != PAGE_PER_PARENT)
			continue;
		if (w->parent != NULL && strcmp(w->parent, e->name) == 0)
			return 1;
		for (size_t v = 0; catalog_changed_via(w, v, &src, &kc, &sc) == 1; v++)
			if (src == e)
				return 1;
	}
	return 0;
}

/*
 * Start entities that can start while there is room. With room for more than one: the
 * per-client methods first (long, paced by the rate limit alone), then the listings they
 * wait for (students, payments), then the other listings in catalogue order; with room for
 * one, catalogue order.
 */
static void
start_ready(struct exporter *x, struct run *run, struct active *act, int *nact,
    struct run_result *res)
{
	const struct cat_crm_desc *d = run->d;

	for (int pass = x->napi > 1 ? 0 : 2; pass < 3; pass++) {
		for (size_t i = 0; i < d->nentities && *nact < x->napi; i++) {
			const struct cat_entity *e = &d->entities[i];
			if (!run->sel[i] || run->state[i] != ST_WAITING || !entity_ready(run, e) ||
			    (pass == 0 && e->paging != PAGE_PER_PARENT) ||
			    (pass == 1 && !entity_awaited(run, e)))
				continue;
			int k = 0;
			while (act[k].used)
				k++;
			memset(&act[k], 0, sizeof(act[k]));
			act[k].used = 1;
			act[k].idx = i;
			act[k].slot = k;
			run->state[i] = ST_ACTIVE;
			run_entity_start(x, run, &act[k], *nact == 0, res);
			(*nact)++;
		}
	}
}

/*
 * Read the run's entities, up to CS_HOLLIHOP_CONCURRENCY at once: each has its fetcher
 * thread (its own connection; the rate limit is shared, so whatever one entity leaves of
 * it another uses), and this thread takes their pages as they come, one entity's pages
 * always in order, and sends them to the store through the one ordered queue. So the
 * store gets each entity's batches in the order they were read, while the entities'
 * batches interleave (the store applies each batch by itself). An entity still ends only
 * once the store has answered all its batches (everything queued up to its mark), but it
 * waits for that without holding up the others. A failure that ends the run starts nothing
 * more (entities not started are listed incomplete); the entities in flight end as they
 * would have (each with its own outcome and error: a refused key fails them all at once,
 * a store that is gone too), and RunEnd goes after all of them.
 */
static void
run_entities(struct exporter *x, struct run *run, struct run_result *res)
{
	struct active *act = calloc((size_t)x->napi, sizeof(*act));
	int nact = 0;

	if (act == NULL) {
		snprintf(res->error, sizeof(res->error), "out of memory");
		run->failed = 1;
		return;
	}
	for (;;) {
		if (*x->stop)
			run->stopped |= !run->failed;
		if (!run->failed && !run->stopped)
			start_ready(x, run, act, &nact, res);
		if (nact == 0)
			break;
		uint64_t seen = bell_rings(&x->bell);
		int moved = 0;
		for (int k = 0; k < x->napi; k++) {
			struct active *a = &act[k];
			int st = 1;
			if (!a->used)
				continue;
			/* A round takes one listing page of each entity (its batch may wait for
			 * the store), but every per-client answer queued: they only gather. */
			int n = run->d->entities[a->idx].paging == PAGE_PER_PARENT ?
			    FETCH_PER_PARENT_QUEUE : 1;
			for (int i = 0; i < n && (st = a->started ? entity_step(x, a) : 2) == 0; i++)
				moved = 1;
			if (st == 1)
				continue;
			moved = 1;
			if (st == 2) {
				entity_close(a);
				run_entity_end(x, run, a, res);
				a->used = 0;
				nact--;
			}
		}
		if (!moved)
			bell_wait(&x->bell, seen, 100);
	}
	free(act);
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
	run->started = time(NULL);
	run->sweep_all = rq->sweep_all;
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
	plan_per_client(x, run);
	/* Every selected entity has its RunEnd line, incomplete until it ends well. */
	for (size_t i = 0; i < run->d->nentities; i++) {
		if (!run->sel[i])
			continue;
		run->ridx[i] = run->nres;
		run->results[run->nres++].entity = run->d->entities[i].name;
	}
	run_entities(x, run, res);
	close_run(x, run, res);
	rv = 0;
out:
	for (int k = 0; k < run->npk; k++) {
		buf_free(&run->pk[k].keys.b);
		buf_free(&run->pk[k].stamps);
	}
	free(run);
	return rv;
}
