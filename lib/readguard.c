/*
 * readguard.c - repeated pages and implausible sizes while an entity is read (see
 * readguard.h). Keys and page contents are kept as 64-bit hashes in open-addressing sets
 * (0 marks a free slot); a false "seen" needs a 2^-64 collision.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "hash.h"
#include "normalise.h"
#include "readguard.h"

struct hset {
	uint64_t	*v;
	size_t		 cap;	/* a power of two, or 0 */
	size_t		 n;
};

struct readguard {
	const struct cat_entity	*e;
	size_t			 kcols[8];	/* the key columns (CF_KEY) */
	size_t			 nk;
	int64_t			 limit;		/* -1: none */
	int64_t			 last_rows;
	int64_t			 rows;		/* every pass */
	int64_t			 pages;		/* this pass */
	int64_t			 longest;	/* this pass's longest page */
	struct hset		 keys;		/* this pass */
	struct hset		 content;	/* this pass */
	int64_t			 page_rows, page_seen;
	int			 full;		/* keys stopped being remembered this pass */
};

static uint64_t
hset_norm(uint64_t h)
{
	h = hash_content_final(h);
	return h != 0 ? h : 1;
}

/* Add h; 1 if it was there already, 0 if added, -1 out of memory or full (max). */
static int
hset_add(struct hset *s, uint64_t h, size_t max)
{
	size_t i;

	if (s->n + 1 > s->cap / 2) {
		size_t ncap = s->cap ? s->cap * 2 : 256;
		uint64_t *nv;
		if (s->n >= max || (nv = calloc(ncap, sizeof(*nv))) == NULL)
			goto lookup;
		for (size_t k = 0; k < s->cap; k++) {
			if (s->v[k] == 0)
				continue;
			for (i = s->v[k] & (ncap - 1); nv[i] != 0; i = (i + 1) & (ncap - 1))
				;
			nv[i] = s->v[k];
		}
		free(s->v);
		s->v = nv;
		s->cap = ncap;
	}
	for (i = h & (s->cap - 1); s->v[i] != 0; i = (i + 1) & (s->cap - 1))
		if (s->v[i] == h)
			return 1;
	s->v[i] = h;
	s->n++;
	return 0;
lookup:
	/* No room to grow: still answer "seen" for what is there. */
	for (i = s->cap ? h & (s->cap - 1) : 0; s->cap && s->v[i] != 0; i = (i + 1) & (s->cap - 1))
		if (s->v[i] == h)
			return 1;
	return -1;
}

static void
hset_clear(struct hset *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

int
readguard_new(struct readguard **out, const struct cat_entity *e, int64_t last_rows,
    int64_t growth)
{
	struct readguard *g = calloc(1, sizeof(*g));

	*out = NULL;
	if (g == NULL)
		return CS_ENOMEM;
	g->e = e;
	for (size_t i = 0; i < e->ncols && g->nk < sizeof(g->kcols) / sizeof(g->kcols[0]); i++)
		if (e->cols[i].flags & CF_KEY)
			g->kcols[g->nk++] = i;
	g->last_rows = last_rows;
	g->limit = last_rows >= 0 && growth > 0 ? last_rows * growth + READGUARD_SLACK_ROWS : -1;
	*out = g;
	return 0;
}

void
readguard_free(struct readguard *g)
{
	if (g == NULL)
		return;
	hset_clear(&g->keys);
	hset_clear(&g->content);
	free(g);
}

void
readguard_pass(struct readguard *g)
{
	hset_clear(&g->keys);
	hset_clear(&g->content);
	g->pages = g->longest = 0;
	g->full = 0;
}

void
readguard_page_begin(struct readguard *g)
{
	g->page_rows = g->page_seen = 0;
}

void
readguard_row(struct readguard *g, const Crmsync__Record *rec)
{
	uint64_t h = HASH_CONTENT_INIT;

	g->page_rows++;
	g->rows++;
	for (size_t k = 0; k < g->nk; k++) {
		const char *v = g->kcols[k] < rec->n_values && !norm_isnull(&rec->null_mask, g->kcols[k]) ?
		    rec->values[g->kcols[k]] : "";
		size_t n = strlen(v);
		/* Lengths mixed in: ("1", "23") and ("12", "3") differ. */
		h = hash_content(h, &n, sizeof(n));
		h = hash_content(h, v, n);
	}
	int seen = hset_add(&g->keys, hset_norm(h), READGUARD_KEYS_MAX);
	if (seen < 0)
		g->full = 1;
	else if (seen > 0)
		g->page_seen++;
}

int
readguard_page_end(struct readguard *g, const void *content, size_t len, char *why, size_t cap)
{
	int64_t n = g->page_rows;
	int again = 0;

	g->pages++;
	if (n > 0 && content != NULL)
		again = hset_add(&g->content, hset_norm(hash_content(HASH_CONTENT_INIT, content, len)),
		    SIZE_MAX / 4) > 0;
	if (again) {
		snprintf(why, cap, "%s: page %lld of this pass repeats an earlier page (the same %lld "
		    "rows): a page sequence that does not end", g->e->name, (long long)g->pages,
		    (long long)n);
		return CS_EPROTO;
	}
	/* A page as long as any before it whose every key came already: the listing went back. */
	if (n >= 2 && !g->full && g->page_seen == n && n >= g->longest) {
		snprintf(why, cap, "%s: every one of the %lld rows of page %lld was read earlier in this "
		    "pass: the listing went back to rows already read", g->e->name, (long long)n,
		    (long long)g->pages);
		return CS_EPROTO;
	}
	if (n > g->longest)
		g->longest = n;
	if (g->limit >= 0 && g->rows > g->limit) {
		snprintf(why, cap, "%s: %lld rows read, more than is plausible (its last complete read "
		    "had %lld; the bound is %lld): a page sequence that does not end?", g->e->name,
		    (long long)g->rows, (long long)g->last_rows, (long long)g->limit);
		return CS_ETOOBIG;
	}
	return 0;
}

int64_t
readguard_limit(const struct readguard *g)
{
	return g->limit;
}

int64_t
readguard_rows(const struct readguard *g)
{
	return g->rows;
}
