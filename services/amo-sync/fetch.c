/*
 * fetch.c - the one paging loop: any catalogue entity -> pages of rows -> record batches.
 *
 * An endpoint with a {placeholder} is fetched once per value of its `parent` (a literal
 * list such as "leads,contacts,...", or the keys of another entity from its last complete
 * fetch), and the value is given to the normaliser as "$placeholder". Paging is HAL
 * page/limit until 204, an empty list, `_page_count` or an unpaged list (page_says_last);
 * a short page without _links.next is not the end (catalog elements come 100 a page
 * without a next link, amocrm/amocrm-api-php#528).
 * Every page must be the shape asked for (a HAL object holding the list, or the object
 * itself): anything else a 2xx may carry (`{"Error": …}`, a login page) fails the pass.
 * A row that cannot be read is sent with the page as a RejectedRow (dead-lettered by the
 * store; its entity then deletes nothing); lib/readguard stops a page sequence that
 * repeats itself or grows past what the entity's last complete read makes plausible.
 * On each pass's first page `_total_items`, where amoCRM gives it, is summed for RunEnd.
 *
 * Incremental passes ask for filter[<version>][from] = cursor - look-back (and
 * order[<version>]=asc). The cursor is the newest version seen; it travels in
 * RecordBatch.cursor, so the store moves it in the same transaction as the rows: on the
 * last page of a pass, or on every page while the rows come back in ascending order. The
 * rows themselves are the probe for accounts without API filtering: a row older than `from`
 * means the filter was ignored; the pass then simply reads everything, skipping rows older
 * than `from` (unchanged since the last pass), and the account is remembered as such.
 * Between pages it calls the sync loop's idle hook (which runs due hook tasks), so a long
 * full sync does not delay them. Pages of the CE_EVENT_LOG entity are first scanned for
 * *_deleted events (events.c). Batches go to the store through a->store (lib/storecli),
 * queued without waiting; a pass ends when the store has answered all of them.
 * Worker thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "arena.h"
#include "buf.h"
#include "errors.h"
#include "events.h"
#include "fetch.h"
#include "json.h"
#include "log.h"
#include "normalise.h"
#include "readguard.h"
#include "storecli.h"
#include "strlist.h"

#define FETCH_MAX_PAGES		200000
#define FETCH_ARENA_MAX		(256u << 20)
#define FETCH_TOKENS_MAX	(8 << 20)
#define PARENT_KEYS_MAX		100000
#define REJECTED_RAW_MAX	(256u << 10)	/* bytes of a rejected row kept */

/* What the worker remembers per entity between passes (in memory only). */
struct memo_entity {
	int	 filter_ignored;	/* the account ignored filter[<version>][from] */
	int	 no_order;		/* the API refused order[...] */
	char	**keys;			/* keys from the last complete fetch (parents only) */
	size_t	 nkeys;
	int	 keys_known;
};

struct fetch_memo {
	struct memo_entity	*m;
	size_t			 n;
	fetch_idle_fn		 idle;		/* between pages; may be NULL */
	void			*idle_arg;
};

struct pass {
	struct amo		*a;
	const struct cat_entity	*e;
	struct memo_entity	*m;
	enum fetch_mode		 mode;
	int64_t			 run_id;
	char			 pname[64];	/* placeholder name, e.g. "entity_type" */
	const char		*pvalue;	/* its value for this pass */
	char			 path[512];
	char			 cursor_name[192];
	int			 filtered;	/* filter[<ver>][from] sent */
	int			 ordered;	/* order[<ver>]=asc sent */
	int64_t			 from;		/* unix seconds */
	int64_t			 cursor;	/* cursor value before the pass (0 = none) */
	int64_t			 max_ver;	/* newest version seen, unix seconds */
	int64_t			 last_ver;
	int			 ascending;	/* rows so far came in version order */
	int			 skipped_old;
	int			 unwanted;	/* FETCH_IDS: rows we did not ask for */
	char *const		*ids;		/* FETCH_IDS */
	size_t			 nids;
	struct buf		*keys;		/* collects keys ("\0"-separated) for children */
	size_t			 nkeys;
	struct fetch_result	*res;
	struct readguard	*guard;		/* the entity's (NULL for hook fetches) */
};

static size_t
entity_index(const struct cat_entity *e)
{
	return (size_t)(e - catalog_amo.entities);
}

static const struct cat_col *
version_col(const struct cat_entity *e)
{
	for (size_t i = 0; i < e->ncols; i++)
		if (e->cols[i].flags & CF_VERSION)
			return &e->cols[i];
	return NULL;
}

/* The key column read from the row itself (not a "$param" one). */
static const struct cat_col *
own_key_col(const struct cat_entity *e, size_t *idx)
{
	for (size_t i = 0; i < e->ncols; i++) {
		if ((e->cols[i].flags & CF_KEY) && e->cols[i].json[0] != '$') {
			if (idx != NULL)
				*idx = i;
			return &e->cols[i];
		}
	}
	return NULL;
}

/* Is e the parent whose keys drive another entity's calls? */
static int
is_parent(const struct cat_entity *e)
{
	for (size_t i = 0; i < catalog_amo.nentities; i++)
		if (catalog_amo.entities[i].parent != NULL &&
		    strcmp(catalog_amo.entities[i].parent, e->name) == 0)
			return 1;
	return 0;
}

/* "{name}" inside the endpoint -> name; 0 when there is none. */
static int
placeholder(const struct cat_entity *e, char *name, size_t cap, size_t *at, size_t *len)
{
	const char *o = strchr(e->endpoint, '{'), *c;

	if (o == NULL || (c = strchr(o, '}')) == NULL || (size_t)(c - o - 1) + 1 > cap)
		return 0;
	memcpy(name, o + 1, (size_t)(c - o - 1));
	name[c - o - 1] = '\0';
	*at = (size_t)(o - e->endpoint);
	*len = (size_t)(c - o + 1);
	return 1;
}

int
fetch_memo_new(struct amo *a, fetch_idle_fn idle, void *arg)
{
	struct fetch_memo *fm = calloc(1, sizeof(*fm));

	if (fm == NULL || (fm->m = calloc(catalog_amo.nentities, sizeof(*fm->m))) == NULL) {
		free(fm);
		return CS_ENOMEM;
	}
	fm->n = catalog_amo.nentities;
	fm->idle = idle;
	fm->idle_arg = arg;
	a->memo = fm;
	return 0;
}

static void
memo_keys_free(struct memo_entity *m)
{
	for (size_t i = 0; i < m->nkeys; i++)
		free(m->keys[i]);
	free(m->keys);
	m->keys = NULL;
	m->nkeys = 0;
}

void
fetch_memo_free(struct amo *a)
{
	if (a->memo == NULL)
		return;
	for (size_t i = 0; i < a->memo->n; i++)
		memo_keys_free(&a->memo->m[i]);
	free(a->memo->m);
	free(a->memo);
	a->memo = NULL;
}

/* Remember the keys collected by a complete pass over a parent entity. */
static void
memo_set_keys(struct memo_entity *m, const struct buf *b, size_t n)
{
	char **keys = calloc(n + 1, sizeof(char *));
	const char *p = b->data;

	if (keys == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		keys[i] = strdup(p);
		p += strlen(p) + 1;
	}
	memo_keys_free(m);
	m->keys = keys;
	m->nkeys = n;
	m->keys_known = 1;
}

/* Append "&name=value" with both parts percent-encoded except brackets' meaning. */
static int
add_param(struct buf *q, const char *name, const char *value)
{
	int rv = buf_addc(q, q->len ? '&' : '?');

	rv |= http_urlencode(q, name);
	rv |= buf_addc(q, '=');
	rv |= http_urlencode(q, value);
	return rv;
}

/* Build path + query for page `page` of pass p into q. */
static int
build_query(struct pass *p, int page, int limit, struct buf *q)
{
	const struct cat_entity *e = p->e;
	const struct cat_col *vc = version_col(e);
	char name[160], val[32];
	int rv = 0;

	buf_init(q, 64u << 10);
	if (e->paging == PAGE_HAL) {
		snprintf(val, sizeof(val), "%d", limit);
		rv |= add_param(q, "limit", val);
		snprintf(val, sizeof(val), "%d", page);
		rv |= add_param(q, "page", val);
	}
	if (e->params != NULL) {
		rv |= buf_addc(q, q->len ? '&' : '?');
		rv |= buf_addstr(q, e->params);
	}
	if (p->filtered && vc != NULL) {
		snprintf(name, sizeof(name), "filter[%s][from]", vc->json);
		snprintf(val, sizeof(val), "%lld", (long long)p->from);
		rv |= add_param(q, name, val);
	}
	if (p->ordered && vc != NULL) {
		snprintf(name, sizeof(name), "order[%s]", vc->json);
		rv |= add_param(q, name, "asc");
	}
	if (p->mode == FETCH_IDS) {
		/* amoCRM filters numeric keys as filter[id]; string keys by their name (uid). */
		const struct cat_col *kc = own_key_col(e, NULL);
		snprintf(name, sizeof(name), "filter[%s][]", kc->type == CT_TEXT ? kc->json : "id");
		for (size_t i = 0; i < p->nids; i++)
			rv |= add_param(q, name, p->ids[i]);
	}
	if (rv != 0)
		return CS_ETOOBIG;
	/* The path goes in front: move the query behind it. */
	struct buf full;
	buf_init(&full, 64u << 10);
	rv = buf_addstr(&full, p->path) | buf_add(&full, q->data, q->len);
	buf_free(q);
	*q = full;
	return rv ? CS_ETOOBIG : 0;
}

static int
wanted_id(const struct pass *p, const char *key)
{
	for (size_t i = 0; i < p->nids; i++)
		if (strcmp(p->ids[i], key) == 0)
			return 1;
	return 0;
}

/* A row that cannot be read goes with the batch to the store's dead letters. */
static int
page_reject(struct pass *p, const struct json *j, int row, const char *why, struct arena *ar,
    Crmsync__RecordBatch *b, int n)
{
	Crmsync__RejectedRow *x;
	size_t len;
	const char *raw = json_text(j, row, &len);
	char *reason;

	amo_count(p->a, AS_BAD_ROWS, 1);
	p->res->rows_rejected++;
	log_warnx("row.rejected", "entity=%s path=%s reason=%s row=%s", p->e->name, lq(p->path),
	    lq(why), lqn(raw, len > 512 ? 512 : len));
	if (b->rejected == NULL && (b->rejected = arena_alloc(ar, (size_t)n * sizeof(*b->rejected))) == NULL)
		return CS_ENOMEM;
	if ((x = arena_alloc(ar, sizeof(*x))) == NULL || (reason = arena_alloc(ar, strlen(why) + 1)) == NULL)
		return CS_ENOMEM;
	crmsync__rejected_row__init(x);
	memcpy(reason, why, strlen(why) + 1);
	x->reason = reason;
	x->raw_json.data = (uint8_t *)raw;	/* points into the page: packed before it is freed */
	x->raw_json.len = len > REJECTED_RAW_MAX ? REJECTED_RAW_MAX : len;
	b->rejected[b->n_rejected++] = x;
	return 0;
}

/*
 * Normalise the rows of one page into batch b (memory from ar). Sets *nrows to the number of
 * rows the page held (before skipping): none ends the pass.
 */
static int
page_records(struct pass *p, const struct json *j, int list, struct arena *ar,
    Crmsync__RecordBatch *b, int *nrows)
{
	const struct cat_entity *e = p->e;
	struct norm_ctx ctx = { 0 };
	size_t kidx = 0;
	int n, row;

	own_key_col(e, &kidx);
	if (p->pvalue != NULL)
		norm_ctx_set(&ctx, p->pname, p->pvalue);
	if (json_kind(j, list) == JK_OBJECT && p->e->list_key[0] == '\0') {
		n = 1;
		row = list;
	} else {
		n = json_size(j, list);
		row = json_first(j, list);
	}
	*nrows = n;
	if (n == 0)
		return 0;
	if ((b->records = arena_alloc(ar, (size_t)n * sizeof(*b->records))) == NULL)
		return CS_ENOMEM;
	for (int i = 0; i < n; i++, row = json_skip(j, row)) {
		Crmsync__Record *r = arena_alloc(ar, sizeof(*r));
		char err[256];
		int bad = 0;

		if (r == NULL)
			return CS_ENOMEM;
		int nrv = json_kind(j, row) != JK_OBJECT ? CS_EINVAL :
		    normalise_row(e, j, row, &ctx, ar, r, &bad, err, sizeof(err));
		if (nrv == CS_ENOMEM)
			return nrv;
		if (nrv != 0) {
			if ((nrv = page_reject(p, j, row, json_kind(j, row) != JK_OBJECT ?
			    "not an object" : err, ar, b, n)) != 0)
				return nrv;
			continue;
		}
		if (bad > 0)
			log_debug("row.bad_values", "entity=%s key=%s n=%d", e->name, lq(r->values[kidx]), bad);
		const char *key = r->values[kidx];
		if (p->guard != NULL)
			readguard_row(p->guard, r);
		if (p->mode == FETCH_IDS && !wanted_id(p, key)) {
			p->unwanted++;	/* the account ignored filter[id]: not what we asked for */
			continue;
		}
		int64_t ver = r->source_updated_at_us / 1000000;
		if (r->source_updated_at_us != 0) {
			if (p->filtered && ver < p->from) {
				if (!p->m->filter_ignored)
					log_warnx("sync.filter_ignored", "entity=%s from=%lld row_version=%lld: the "
					    "account does not apply API filters; incremental passes read everything "
					    "and skip unchanged rows", e->name, (long long)p->from, (long long)ver);
				p->m->filter_ignored = 1;
				p->skipped_old++;
				continue;	/* unchanged since the last pass */
			}
			if (ver < p->last_ver)
				p->ascending = 0;
			p->last_ver = ver;
			if (ver > p->max_ver)
				p->max_ver = ver;
		}
		if (p->keys != NULL && p->nkeys < PARENT_KEYS_MAX &&
		    buf_add(p->keys, key, strlen(key) + 1) == 0)
			p->nkeys++;
		b->records[b->n_records++] = r;
	}
	return 0;
}

/* What a page request came back with. */
enum page_kind {
	PAGE_ROWS,		/* a body to parse */
	PAGE_EMPTY,		/* 204 or no body: the end of the list */
	PAGE_UNAVAILABLE,	/* an optional entity the account does not offer */
};

/* One page being read: the answer, its parse, the batch made of it. */
struct page {
	struct http_response	 resp;
	struct json		 j;
	struct arena		 ar;		/* the batch's records */
	int			 list;		/* token of the row array (or of the one row) */
	int			 nrows;		/* rows the page held, before skipping */
	Crmsync__RecordBatch	 b;
	Crmsync__Cursor		 cur;
	char			 curval[32];
};

static void
page_free(struct page *pg)
{
	json_free(&pg->j);
	arena_free(&pg->ar);
	http_response_free(&pg->resp);
}

/* GET page `page` of the pass into pg->resp; *kind says what came back. */
static int
page_get(struct pass *p, int page, int limit, struct page *pg, enum page_kind *kind)
{
	const struct cat_entity *e = p->e;
	struct buf q;
	int rv;

	*kind = PAGE_ROWS;
	for (;;) {
		if ((rv = build_query(p, page, limit, &q)) != 0)
			return rv;
		rv = api_get(p->a, q.data, &pg->resp);
		buf_free(&q);
		if (!(rv == CS_EREMOTE && p->ordered && pg->resp.status == 400 && page == 1))
			break;
		/* The account refuses order[]: fine, the cursor then moves at the end. */
		log_warnx("sync.order_refused", "entity=%s: retrying without order[]", e->name);
		p->m->no_order = 1;
		p->ordered = 0;
		http_response_free(&pg->resp);
	}
	if (rv != 0 && (e->flags & CE_OPTIONAL) && page == 1 && (rv == CS_ENOENT ||
	    (rv == CS_EREMOTE && pg->resp.status >= 400 && pg->resp.status < 500))) {
		log_info("sync.unavailable", "entity=%s path=%s status=%ld: feature off or not "
		    "allowed; skipped", e->name, lq(p->path), pg->resp.status);
		*kind = PAGE_UNAVAILABLE;
		rv = 0;
	} else if (rv == 0 && (pg->resp.status == 204 || pg->resp.body.len == 0)) {
		*kind = PAGE_EMPTY;
	}
	return rv;
}

/*
 * Is a 2xx body the shape asked for? An object; a list entity's list key an array, or absent
 * only inside a HAL "_embedded" object. An {"Error": …} or any other object is not an
 * empty page (issue 16 item 4).
 */
static int
page_shape_ok(const struct cat_entity *e, const struct json *j, int list)
{
	char parent[128];
	const char *dot;

	if (json_kind(j, 0) != JK_OBJECT)
		return 0;
	if (e->list_key[0] == '\0' || json_kind(j, list) == JK_ARRAY)
		return 1;
	if (json_kind(j, list) != JK_ABSENT || (dot = strrchr(e->list_key, '.')) == NULL ||
	    (size_t)(dot - e->list_key) >= sizeof(parent))
		return 0;
	snprintf(parent, sizeof(parent), "%.*s", (int)(dot - e->list_key), e->list_key);
	return json_kind(j, json_path(j, 0, parent)) == JK_OBJECT;
}

/* Parse the page and normalise its rows into pg->b. */
static int
page_parse(struct pass *p, struct page *pg, int page)
{
	const struct cat_entity *e = p->e;
	size_t len = pg->resp.body.len;
	int maxtok = (int)(len / 2 + 64 > FETCH_TOKENS_MAX ? FETCH_TOKENS_MAX : len / 2 + 64);
	int rv;

	if ((rv = json_parse(&pg->j, pg->resp.body.data, len, maxtok)) != 0) {
		log_warnx("sync.bad_page", "entity=%s path=%s page=%d err=%s body=%s", e->name,
		    lq(p->path), page, lq(cs_strerror(rv)), lqn(pg->resp.body.data, len));
		return CS_EJSON;
	}
	pg->list = e->list_key[0] == '\0' ? 0 : json_path(&pg->j, 0, e->list_key);
	if (!page_shape_ok(e, &pg->j, pg->list)) {
		log_warnx("sync.unexpected_page", "entity=%s path=%s page=%d status=%ld: not the shape "
		    "asked for (%s); the pass fails body=%s", e->name, lq(p->path), page, pg->resp.status,
		    e->list_key[0] ? e->list_key : "an object", lqn(pg->resp.body.data, len > 512 ? 512 : len));
		return CS_EPROTO;
	}
	if (json_kind(&pg->j, pg->list) != JK_ARRAY && !(e->list_key[0] == '\0' &&
	    json_kind(&pg->j, pg->list) == JK_OBJECT))
		return 0;	/* no rows on this page (e.g. "_embedded": {}) */
	return page_records(p, &pg->j, pg->list, &pg->ar, &pg->b, &pg->nrows);
}

/*
 * Does the page itself say the list ends here? Only a terminal signal counts, never a short
 * page: amoCRM serves catalog elements 100 a page whatever the limit, without _links.next
 * (amocrm/amocrm-api-php#528), so "fewer rows than asked and no next link" is not the end.
 * Terminal: no rows (204 is handled before), `_page_count` reached, or a list that is not
 * paged at all (no `_page` and no next link; ASSUMPTION: a paged list says `_page`, as every
 * captured page does). A server that ignores `page` and repeats a page is readguard's.
 */
static int
page_says_last(const struct page *pg, int page)
{
	const struct json *j = &pg->j;
	int64_t count;
	int t;

	if (pg->nrows == 0)
		return 1;
	t = json_get(j, 0, "_page_count");
	if (json_kind(j, t) == JK_NUMBER && json_int64(j, t, &count) == 0 && count >= 1)
		return page >= count;
	return json_kind(j, json_get(j, 0, "_page")) == JK_ABSENT &&
	    json_kind(j, json_path(j, 0, "_links.next.href")) != JK_STRING;
}

/* Is this the pass's last page? */
static int
page_is_last(struct pass *p, const struct page *pg, int page)
{
	const struct cat_entity *e = p->e;

	if (e->paging != PAGE_HAL || page_says_last(pg, page))
		return 1;
	if (p->mode != FETCH_IDS)
		return 0;
	if (p->res->rows + (int64_t)pg->b.n_records >= (int64_t)p->nids)
		return 1;	/* every key asked for has come back: no page 2 to ask */
	if (p->unwanted > 0) {
		/* Without API filtering a by-id fetch would page the whole table: keep what
		 * this page had and leave the rest to the incremental pass. */
		if (!p->m->filter_ignored)
			log_warnx("sync.filter_ignored", "entity=%s: filter[id] was ignored; hook "
			    "fetches read one page and rely on incremental passes", e->name);
		p->m->filter_ignored = 1;
		return 1;
	}
	return 0;
}

/* Attach the pass's cursor to b when it may move: on the last page, or now if the rows
 * come in version order. */
static void
page_cursor(struct pass *p, struct page *pg, int last)
{
	if (p->cursor_name[0] == '\0' || p->max_ver <= p->cursor)
		return;
	if (!last && !(p->ordered && p->ascending && p->skipped_old == 0))
		return;
	snprintf(pg->curval, sizeof(pg->curval), "%lld", (long long)p->max_ver);
	pg->cur.name = p->cursor_name;
	pg->cur.value = pg->curval;
	pg->b.cursor_opt_case = CRMSYNC__RECORD_BATCH__CURSOR_OPT_CURSOR;
	pg->b.cursor = &pg->cur;
}

/* Queue the page's batch (rows and/or cursor), not awaited: the next request overlaps
 * this page's COMMIT. */
static int
page_send(struct pass *p, struct page *pg)
{
	int rv = 0;

	if (pg->b.n_records > 0 || pg->b.n_rejected > 0 || pg->b.cursor != NULL) {
		pg->b.entity = (char *)p->e->name;
		pg->b.run_id = p->run_id;
		if ((rv = storecli_batch(p->a->store, &pg->b)) == 0 && pg->b.cursor != NULL)
			p->cursor = p->max_ver;
	}
	return rv;
}

/* A pass's first page: amoCRM's own count of the listing, where it gives one. */
static void
page_total(struct pass *p, const struct page *pg, int page)
{
	int64_t total;

	if (page != 1 || p->mode != FETCH_FULL)
		return;
	if (json_kind(&pg->j, json_get(&pg->j, 0, "_total_items")) == JK_NUMBER &&
	    json_int64(&pg->j, json_get(&pg->j, 0, "_total_items"), &total) == 0 && total >= 0)
		p->res->api_total += total;
	else
		p->res->has_total = 0;	/* one pass without a total: no total */
}

/* A page with rows: parse, check, send (the deletes it implies first). */
static int
page_rows(struct pass *p, struct page *pg, int page, int *last)
{
	const struct cat_entity *e = p->e;
	char why[512];
	size_t len;
	const char *txt;
	int rv;

	if (p->guard != NULL)
		readguard_page_begin(p->guard);
	if ((rv = page_parse(p, pg, page)) != 0)
		return rv;
	txt = pg->nrows > 0 ? json_text(&pg->j, pg->list, &len) : NULL;
	if (p->guard != NULL && (rv = readguard_page_end(p->guard, txt, txt ? len : 0, why,
	    sizeof(why))) != 0) {
		log_warnx("sync.page_sequence", "entity=%s path=%s page=%d: %s; the pass stops, "
		    "incomplete", e->name, lq(p->path), page, lq(why));
		return rv;
	}
	page_total(p, pg, page);
	*last = page_is_last(p, pg, page);
	if (pg->nrows > 0 && (e->flags & CE_EVENT_LOG) &&
	    (rv = events_deletes(p->a->store, &pg->j, pg->list, p->run_id)) != 0)
		return rv;
	page_cursor(p, pg, *last);
	rv = page_send(p, pg);
	p->res->rows += (int64_t)pg->b.n_records;
	p->res->pages++;
	return rv;
}

/* After a page: progress now and then, and due hook tasks between the pages of a pass. */
static void
page_after(struct pass *p, int last)
{
	struct amo *a = p->a;

	if (p->mode == FETCH_IDS)
		return;
	if (a->conf.progress_pages > 0 && p->res->pages % a->conf.progress_pages == 0) {
		log_info("sync.progress", "entity=%s rows=%lld pages=%lld", p->e->name,
		    (long long)p->res->rows, (long long)p->res->pages);
		storecli_progress(a->store, p->run_id, p->e->name, p->res->rows, p->res->pages);
	}
	/* Hook tasks never wait for a long sync to finish. */
	if (!last && a->memo->idle != NULL)
		a->memo->idle(a->memo->idle_arg);
}

/* The pages of one pass over one path (one parent value). */
static int
fetch_pages(struct pass *p)
{
	int limit = p->e->page_size > 0 ? p->e->page_size : (int)p->a->conf.page_size;
	int rv = 0, last = 0;

	p->ascending = 1;
	p->last_ver = 0;
	for (int page = 1; !last && page <= FETCH_MAX_PAGES; page++) {
		struct page pg;
		enum page_kind kind;

		if (p->a->stop)
			return CS_ECANCELED;
		memset(&pg, 0, sizeof(pg));
		crmsync__record_batch__init(&pg.b);
		crmsync__cursor__init(&pg.cur);
		arena_init(&pg.ar, FETCH_ARENA_MAX);
		if ((rv = page_get(p, page, limit, &pg, &kind)) == 0 && kind == PAGE_ROWS) {
			rv = page_rows(p, &pg, page, &last);
		} else if (rv == 0) {
			/* The end of the list: only the cursor may still have to move. */
			last = 1;
			if (kind == PAGE_EMPTY) {
				page_cursor(p, &pg, last);
				rv = page_send(p, &pg);
			}
		}
		page_free(&pg);
		if (rv != 0)
			return rv;
		if (kind == PAGE_ROWS)
			page_after(p, last);
	}
	if (!last) {
		log_warnx("sync.too_many_pages", "entity=%s path=%s", p->e->name, lq(p->path));
		return CS_ETOOBIG;
	}
	return 0;
}

/*
 * One pass: its pages, then wait until the store has answered every batch of it (a pass
 * with a rejected batch is not complete; a hook fetch must be committed before done_seq
 * may move past it).
 */
static int
fetch_pass(struct pass *p)
{
	struct storecli *sc = p->a->store;
	uint64_t rejected;
	int rv, drv;

	(void)storecli_drain(sc);
	rejected = storecli_rejected(sc, NULL, 0);
	rv = fetch_pages(p);
	drv = storecli_drain(sc);
	if (drv != 0 || storecli_rejected(sc, NULL, 0) != rejected)
		p->res->complete = 0;
	return rv != 0 ? rv : drv;
}

/* Prepare pass p for parent value v (NULL = no placeholder). */
static int
pass_init(struct pass *p, struct amo *a, const struct cat_entity *e, enum fetch_mode mode,
    int64_t run_id, const char *v, struct fetch_result *res)
{
	size_t at = 0, len = 0;

	memset(p, 0, sizeof(*p));
	p->a = a;
	p->e = e;
	p->m = &a->memo->m[entity_index(e)];
	p->mode = mode;
	p->run_id = run_id;
	p->res = res;
	p->pvalue = v;
	if (placeholder(e, p->pname, sizeof(p->pname), &at, &len)) {
		if (v == NULL)
			return CS_EINVAL;
		snprintf(p->path, sizeof(p->path), "%.*s%s%s", (int)at, e->endpoint, v,
		    e->endpoint + at + len);
	} else {
		p->pvalue = NULL;
		snprintf(p->path, sizeof(p->path), "%s", e->endpoint);
	}
	return 0;
}

/* The cursor of an incremental entity for parent value v. */
static void
cursor_name(const struct cat_entity *e, const char *v, char *dst, size_t cap)
{
	const struct cat_col *vc = version_col(e);

	snprintf(dst, cap, "%s%s%s.%s", e->name, v ? "/" : "", v ? v : "", vc ? vc->column : "version");
}

static int
fetch_one(struct amo *a, const struct cat_entity *e, enum fetch_mode mode, int64_t run_id,
    const char *v, struct readguard *guard, struct fetch_result *res)
{
	struct pass p;
	char val[64];
	int rv, found;

	if ((rv = pass_init(&p, a, e, mode, run_id, v, res)) != 0)
		return rv;
	/* Each parent value is a page sequence of its own. */
	p.guard = guard;
	readguard_pass(guard);
	if ((e->flags & CE_INCREMENTAL) && version_col(e) != NULL) {
		cursor_name(e, p.pvalue, p.cursor_name, sizeof(p.cursor_name));
		if (mode == FETCH_INCREMENTAL) {
			if ((rv = storecli_cursor_get(a->store, p.cursor_name, val, sizeof(val), &found)) != 0)
				return rv;
			if (found && (p.cursor = strtoll(val, NULL, 10)) > 0) {
				p.from = p.cursor - a->conf.lookback_ms / 1000;
				p.filtered = 1;
				p.ordered = !p.m->no_order;
			}
		}
	}
	if (mode == FETCH_FULL && is_parent(e)) {
		if ((p.keys = malloc(sizeof(*p.keys))) == NULL)
			return CS_ENOMEM;
		buf_init(p.keys, 16u << 20);
	}
	rv = fetch_pass(&p);
	if (p.keys != NULL) {
		if (rv == 0)
			memo_set_keys(p.m, p.keys, p.nkeys);
		buf_free(p.keys);
		free(p.keys);
	}
	if (p.skipped_old > 0)
		log_info("sync.skipped_unchanged", "entity=%s%s%s rows=%d", e->name, v ? " param=" : "",
		    v ? v : "", p.skipped_old);
	return rv;
}

int
fetch_entity(struct amo *a, const struct cat_entity *e, enum fetch_mode mode, int64_t run_id,
    int64_t last_rows, struct fetch_result *res)
{
	const struct cat_entity *pe;
	struct readguard *guard = NULL;
	int rv = 0;

	memset(res, 0, sizeof(*res));
	res->complete = 1;
	res->has_total = mode == FETCH_FULL;
	if ((rv = readguard_new(&guard, e, last_rows, a->conf.max_growth)) != 0)
		return rv;
	if (e->parent == NULL) {
		rv = fetch_one(a, e, mode, run_id, NULL, guard, res);
	} else if ((pe = catalog_find(CAT_AMO, e->parent)) != NULL) {
		struct memo_entity *m = &a->memo->m[entity_index(pe)];
		if (!m->keys_known) {
			struct fetch_result pr;
			log_info("sync.parent_first", "entity=%s parent=%s", e->name, pe->name);
			if ((rv = fetch_entity(a, pe, FETCH_FULL, run_id, -1, &pr)) != 0)
				goto out;
		}
		/* Copy: a hook task between pages may not touch it, but stay safe. */
		size_t n = m->nkeys;
		char **keys = calloc(n + 1, sizeof(char *));
		if (keys == NULL) {
			rv = CS_ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < n; i++)
			keys[i] = strdup(m->keys[i]);
		for (size_t i = 0; i < n && rv == 0; i++)
			rv = fetch_one(a, e, mode, run_id, keys[i], guard, res);
		for (size_t i = 0; i < n; i++)
			free(keys[i]);
		free(keys);
	} else {
		const char *cur = e->parent, *item;
		size_t k;
		char v[64];
		while (rv == 0 && strlist_next(&cur, &item, &k)) {
			snprintf(v, sizeof(v), "%.*s", (int)k, item);
			rv = fetch_one(a, e, mode, run_id, v, guard, res);
		}
	}
out:
	readguard_free(guard);
	if (rv != 0)
		res->complete = 0;
	return rv;
}

int
fetch_ids(struct amo *a, const struct cat_entity *e, const char *param, char *const *keys,
    size_t n, struct fetch_result *res)
{
	struct pass p;
	int rv;

	memset(res, 0, sizeof(*res));
	res->complete = 1;
	if (own_key_col(e, NULL) == NULL)
		return CS_EINVAL;
	if ((rv = pass_init(&p, a, e, FETCH_IDS, 0, param, res)) != 0)
		return rv;
	p.ids = keys;
	p.nids = n;
	rv = fetch_pass(&p);
	if (rv != 0)
		res->complete = 0;
	return rv;
}
