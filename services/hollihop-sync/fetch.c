/*
 * fetch.c - the fetcher thread: pages through one catalogue entity and hands parsed pages
 * to the run thread through a short queue, so downloading page n+1 overlaps with
 * normalising and storing page n while at most CS_HOLLIHOP_QUEUE_PAGES pages are held.
 *
 * One loop per paging mode, never per method: PAGE_NONE (one call), PAGE_TAKE_SKIP
 * (take/skip until a short page) and PAGE_PER_PARENT (one call per key of the parent
 * entity, e.g. per ClientId). A template with alternatives ("targets={Employees|Students}")
 * runs the loop once per alternative. Each page says which page sequence it belongs to,
 * so the run thread's lib/readguard can tell a server that ignores skip or wraps around.
 * A body without the rows asked for is the empty answer only when it holds nothing else
 * ({} or just "Now"); any other shape fails the entity.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "errors.h"
#include "hh.h"
#include "log.h"

struct fetch {
	const struct cat_entity	*e;
	const struct hh_conf	*c;
	struct api		*api;
	struct hh_vars		 vars;
	const struct keys	*parents;
	volatile _Atomic int		*run_stop;
	struct fetch_bell	*bell;		/* rung on every page and at the end (or NULL) */
	volatile _Atomic int		 cancel;	/* run stop seen, or the consumer gave up */
	pthread_t		 thr;
	pthread_mutex_t		 mtx;
	pthread_cond_t		 cv;
	struct page		*head, *tail;
	int			 depth;
	int			 qmax;		/* pages queued at most */
	int			 done;
	int			 rv;
	int			 truncated;
	int			 pass;		/* the page sequence being read */
	int64_t			 pages;
	int64_t			 api_us;	/* in api_call: request, download, parse */
	int64_t			 blocked_us;	/* the fetcher waiting for room in the queue */
	int64_t			 idle_us;	/* the consumer waiting for a page */
	char			 err[1024];
};

void
bell_init(struct fetch_bell *b)
{
	pthread_mutex_init(&b->mtx, NULL);
	pthread_cond_init(&b->cv, NULL);
	b->rings = 0;
}

void
bell_destroy(struct fetch_bell *b)
{
	pthread_mutex_destroy(&b->mtx);
	pthread_cond_destroy(&b->cv);
}

uint64_t
bell_rings(struct fetch_bell *b)
{
	pthread_mutex_lock(&b->mtx);
	uint64_t n = b->rings;
	pthread_mutex_unlock(&b->mtx);
	return n;
}

void
bell_wait(struct fetch_bell *b, uint64_t seen, int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)ms * 1000000L;
	while (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&b->mtx);
	while (b->rings == seen)
		if (pthread_cond_timedwait(&b->cv, &b->mtx, &ts) != 0)
			break;
	pthread_mutex_unlock(&b->mtx);
}

void
bell_ring(void *arg)
{
	struct fetch_bell *b = arg;

	pthread_mutex_lock(&b->mtx);
	b->rings++;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mtx);
}

static void
ring(struct fetch *f)
{
	if (f->bell != NULL)
		bell_ring(f->bell);
}

void
page_free(struct page *p)
{
	if (p == NULL)
		return;
	json_free(&p->j);
	http_response_free(&p->resp);
	free(p);
}

/* Find the rows of a response: the list key's array, the response itself, or nothing. */
static int
locate_rows(const struct cat_entity *e, struct page *p, char *err, size_t errlen)
{
	int t;

	if (e->list_key == NULL || e->list_key[0] == '\0') {
		p->one_row = 1;
		p->rows = 0;
		p->nrows = 1;
		return 0;
	}
	t = json_path(&p->j, 0, e->list_key);
	if (json_kind(&p->j, t) == JK_ABSENT) {
		/* Root keys of several methods are UNSURE: accept the only array there is. */
		int found = -1, n = 0;
		for (int i = 0, k = json_first(&p->j, 0); i < json_size(&p->j, 0); i++) {
			int v = k + 1;
			if (json_kind(&p->j, v) == JK_ARRAY) {
				found = v;
				n++;
			}
			k = json_skip(&p->j, v);
		}
		if (n == 1) {
			size_t kl;
			const char *kn = json_raw(&p->j, found - 1, &kl);
			log_debug("fetch.list_key_fallback", "entity=%s want=%s got=%s", e->name,
			    e->list_key, lqn(kn, kl));
			t = found;
		}
	}
	switch (json_kind(&p->j, t)) {
	case JK_ARRAY:
		p->rows = t;
		p->nrows = json_size(&p->j, t);
		return 0;
	case JK_ABSENT:
		/* Empty results leave the list out ({} or {"Now": …}); anything else is not an
		 * empty page but an answer we do not understand (issue 16 item 4). */
		for (int i = 0, k = json_first(&p->j, 0); i < json_size(&p->j, 0); i++) {
			if (!json_streq(&p->j, k, "Now")) {
				size_t kl;
				const char *kn = json_raw(&p->j, k, &kl);
				snprintf(err, errlen, "%s: the answer holds neither \"%s\" nor only \"Now\" "
				    "(first key \"%.*s\"): not the shape asked for", e->endpoint, e->list_key,
				    (int)(kl > 64 ? 64 : kl), kn);
				return CS_EPROTO;
			}
			k = json_skip(&p->j, k + 1);
		}
		/* FALLTHROUGH */
	case JK_NULL:
		p->rows = -1;
		p->nrows = 0;
		return 0;
	default:
		snprintf(err, errlen, "%s: \"%s\" is not an array", e->endpoint, e->list_key);
		return CS_EJSON;
	}
}

/* Queue a page, waiting while the queue is full. Takes p in all cases. */
static int
enqueue(struct fetch *f, struct page *p)
{
	int64_t t0 = clock_mono_us();

	pthread_mutex_lock(&f->mtx);
	while (f->depth >= f->qmax && !f->cancel) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&f->cv, &f->mtx, &ts);
	}
	f->blocked_us += clock_mono_us() - t0;
	if (f->cancel) {
		pthread_mutex_unlock(&f->mtx);
		page_free(p);
		return CS_ECANCELED;
	}
	if (f->tail != NULL)
		f->tail->next = p;
	else
		f->head = p;
	f->tail = p;
	f->depth++;
	f->pages++;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mtx);
	ring(f);
	return 0;
}

/* One call: expand the parameters, add paging, fetch, parse, locate the rows. */
static int
fetch_page(struct fetch *f, const char *alt, int64_t take, int64_t skip, struct page **out)
{
	const struct cat_entity *e = f->e;
	struct page *p;
	struct buf form;
	int rv;

	*out = NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return CS_ENOMEM;
	p->skip = skip;
	p->pass = f->pass;
	buf_init(&form, 64 * 1024);
	rv = params_expand(e->params, alt, &f->vars, &form, &p->ctx, p->ctxstore,
	    sizeof(p->ctxstore), f->err, sizeof(f->err));
	params_context(&p->ctx, f->c);
	if (rv == 0 && take > 0 && buf_printf(&form, "&take=%lld&skip=%lld", (long long)take,
	    (long long)skip) != 0)
		rv = CS_ETOOBIG;
	int64_t t0 = clock_mono_us();
	if (rv == 0)
		rv = api_call(f->api, e->endpoint, form.data != NULL ? form.data : "", &f->cancel,
		    &p->resp, &p->j, f->err, sizeof(f->err));
	f->api_us += clock_mono_us() - t0;
	buf_free(&form);
	if (rv == 0 && (rv = locate_rows(e, p, f->err, sizeof(f->err))) == 0) {
		*out = p;
		return 0;
	}
	page_free(p);
	return rv;
}

/*
 * take/skip until the end. A page shorter than take ends the listing once the server has
 * shown that it honours our take (one page of exactly take rows); until then (a clamped
 * take, or everything fitting in one page) only an empty page does, so a server whose
 * maximum take is below ours is still read to the end. skip advances by the rows received.
 */
static int
pass_take_skip(struct fetch *f, const char *alt)
{
	int64_t take = f->e->page_size > 0 ? f->e->page_size : f->c->page_size;
	int64_t longest = 0;
	int rv;

	for (int64_t skip = 0;;) {
		struct page *p;

		if (f->pages >= f->c->max_pages) {
			f->truncated = 1;
			snprintf(f->err, sizeof(f->err), "%s: stopped at CS_HOLLIHOP_MAX_PAGES (%lld)",
			    f->e->endpoint, (long long)f->c->max_pages);
			return 0;
		}
		if ((rv = fetch_page(f, alt, take, skip, &p)) != 0)
			return rv;
		int64_t n = p->nrows;
		if (n > longest)
			longest = n;
		int last = n == 0 || (n < take && longest >= take);
		if ((rv = enqueue(f, p)) != 0)
			return rv;
		if (last)
			return 0;
		skip += n;
	}
}

static int
pass_per_parent(struct fetch *f, const char *alt)
{
	const char *k = f->parents != NULL ? f->parents->b.data : NULL;
	size_t n = f->parents != NULL ? f->parents->n : 0;
	int rv;

	for (size_t i = 0; i < n; i++, k += strlen(k) + 1) {
		struct page *p;

		if (f->c->per_client_limit > 0 && (int64_t)i >= f->c->per_client_limit) {
			f->truncated = 1;
			snprintf(f->err, sizeof(f->err), "%s: stopped after CS_HOLLIHOP_PER_CLIENT_LIMIT "
			    "(%lld) of %zu parents", f->e->endpoint, (long long)f->c->per_client_limit, n);
			return 0;
		}
		f->vars.parent = k;
		f->pass++;	/* one parent's answer is a sequence of its own */
		rv = fetch_page(f, alt, 0, 0, &p);
		f->vars.parent = NULL;
		if (rv != 0)
			return rv;
		if ((rv = enqueue(f, p)) != 0)
			return rv;
	}
	return 0;
}

static void *
fetch_main(void *arg)
{
	struct fetch *f = arg;
	char alts[PARAMS_MAX_ALTS][64];
	int nalt = params_alternatives(f->e->params, alts, PARAMS_MAX_ALTS);
	int rv = 0;

	for (int i = 0; i < (nalt > 0 ? nalt : 1) && rv == 0 && !f->truncated; i++) {
		const char *alt = nalt > 0 ? alts[i] : NULL;
		struct page *p;

		f->pass++;
		switch (f->e->paging) {
		case PAGE_TAKE_SKIP:
			rv = pass_take_skip(f, alt);
			break;
		case PAGE_PER_PARENT:
			rv = pass_per_parent(f, alt);
			break;
		default:
			if ((rv = fetch_page(f, alt, 0, 0, &p)) == 0)
				rv = enqueue(f, p);
			break;
		}
	}
	pthread_mutex_lock(&f->mtx);
	f->rv = rv;
	if (rv == CS_ECANCELED && f->err[0] == '\0')
		snprintf(f->err, sizeof(f->err), "%s: canceled", f->e->endpoint);
	f->done = 1;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mtx);
	ring(f);
	return NULL;
}

int
fetch_start(struct fetch **out, const struct cat_entity *e, const struct hh_conf *c,
    struct api *api, const struct hh_vars *vars, const struct keys *parents, volatile _Atomic int *stop,
    struct fetch_bell *bell)
{
	struct fetch *f;

	*out = NULL;
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return CS_ENOMEM;
	f->e = e;
	f->c = c;
	f->api = api;
	f->vars = *vars;
	f->parents = parents;
	f->run_stop = stop;
	f->bell = bell;
	/* A per-client answer is a few rows (gathered into batches): more of them wait, so
	 * the calls go on at the limit while the consumer sends another entity's page. */
	f->qmax = (int)c->queue_pages;
	if (e->paging == PAGE_PER_PARENT && f->qmax < FETCH_PER_PARENT_QUEUE)
		f->qmax = FETCH_PER_PARENT_QUEUE;
	pthread_mutex_init(&f->mtx, NULL);
	pthread_cond_init(&f->cv, NULL);
	if (pthread_create(&f->thr, NULL, fetch_main, f) != 0) {
		pthread_mutex_destroy(&f->mtx);
		pthread_cond_destroy(&f->cv);
		free(f);
		return CS_ENOMEM;
	}
	*out = f;
	return 0;
}

/* The oldest queued page, off the queue; f->mtx held, f->head not NULL. Wakes the fetcher. */
static struct page *
take_head(struct fetch *f)
{
	struct page *p = f->head;

	f->head = p->next;
	if (f->head == NULL)
		f->tail = NULL;
	p->next = NULL;
	f->depth--;
	pthread_cond_broadcast(&f->cv);
	return p;
}

struct page *
fetch_next(struct fetch *f)
{
	struct page *p = NULL;
	int64_t t0 = clock_mono_us();

	pthread_mutex_lock(&f->mtx);
	for (;;) {
		if (f->run_stop != NULL && *f->run_stop)
			f->cancel = 1;
		if (f->head != NULL && !f->cancel) {
			p = take_head(f);
			break;
		}
		if (f->done || f->cancel)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&f->cv, &f->mtx, &ts);
	}
	f->idle_us += clock_mono_us() - t0;
	pthread_mutex_unlock(&f->mtx);
	return p;
}

int
fetch_poll(struct fetch *f, struct page **out)
{
	int rv = 0;

	*out = NULL;
	pthread_mutex_lock(&f->mtx);
	if (f->run_stop != NULL && *f->run_stop)
		f->cancel = 1;
	if (f->head != NULL && !f->cancel) {
		*out = take_head(f);
		rv = 1;
	} else if (f->done || f->cancel) {
		rv = -1;
	}
	pthread_mutex_unlock(&f->mtx);
	return rv;
}

int
fetch_finish(struct fetch *f, int *truncated, int64_t *pages, char *err, size_t errlen)
{
	int rv;

	pthread_mutex_lock(&f->mtx);
	if (!f->done)
		f->cancel = 1;	/* the consumer stopped early */
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mtx);
	pthread_join(f->thr, NULL);
	/* Which side waited: a fetcher blocked on a full queue means the consumer (normalise,
	 * store) is the slower one; a consumer idle means the download is. */
	log_debug("fetch.times", "entity=%s pages=%lld api_ms=%lld fetcher_blocked_ms=%lld "
	    "consumer_idle_ms=%lld", f->e->name, (long long)f->pages, (long long)(f->api_us / 1000),
	    (long long)(f->blocked_us / 1000), (long long)(f->idle_us / 1000));
	while (f->head != NULL) {
		struct page *p = f->head;
		f->head = p->next;
		page_free(p);
	}
	rv = f->rv;
	if (rv == 0 && f->cancel)
		rv = CS_ECANCELED;
	if (truncated != NULL)
		*truncated = f->truncated;
	if (pages != NULL)
		*pages = f->pages;
	snprintf(err, errlen, "%s", f->err);
	pthread_mutex_destroy(&f->mtx);
	pthread_cond_destroy(&f->cv);
	free(f);
	return rv;
}
