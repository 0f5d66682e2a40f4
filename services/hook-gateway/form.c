/*
 * form.c - amoCRM webhook form bodies -> HookEvents (see form.h).
 *
 * One pass over the body: split on '&', percent-decode key and value into scratch buffers,
 * check them (UTF-8, NUL, sizes), split the key into its name and bracket segments, and
 * route it. account[...] fills the delivery; entity[action][index][field] fills the event
 * of (entity, action, index), found through a small open-addressing hash so a bulk hook
 * stays linear. Deeper keys (custom_fields, tags, linked ids) are checked but not kept.
 * Which wire field lands in which HookEvent member is data, in form_entities[] and
 * form_fields[]: a member can come under several names (updated_at or last_modified), each
 * row has a rank and the highest rank wins, whatever the order of the keys.
 * The entity stays the wire key: amoCRM sends companies as contacts[...] with
 * [type]=company, and the event keeps both (entity "contacts", type "company"); amo-sync
 * routes by them (services/amo-sync/tasks.c).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "errors.h"
#include "hash.h"
#include "form.h"

enum form_target {
	FT_ID,			/* the entity's numeric id */
	FT_UID,			/* its text id: unsorted uid, message UUID, talk chat id */
	FT_ACCOUNT,
	FT_STATUS,
	FT_PIPELINE,
	FT_OLD_STATUS,
	FT_OLD_PIPELINE,
	FT_UPDATED,
	FT_ELEMENT_ID,		/* what a note, task, message or catalog element belongs to */
	FT_ELEMENT_TYPE,
	FT_TYPE,		/* [type]: "company" on contacts[...] hooks about companies */
	FT_N
};

/* Ranks: a field at the notes' extra [note] level beats the same field one level up. */
#define RANK_OWN_ID	4
#define RANK_NOTE_BOOST	8

/*
 * Entities amoCRM sends (its webhook format documentation). id_key names the entity's own id field;
 * id_text means that id is text (kept in uid). Entities not listed are still turned into
 * events, with the defaults, so a new kind on the wire is forwarded rather than lost.
 */
static const struct form_entity {
	const char	*name;
	const char	*id_key;
	int		 id_text;
} form_entities[] = {
	{ "leads",		"id",		0 },
	{ "contacts",		"id",		0 },
	{ "companies",		"id",		0 },
	{ "customers",		"id",		0 },
	{ "task",		"id",		0 },	/* singular on the wire */
	{ "tasks",		"id",		0 },	/* never seen; accepted in case */
	{ "catalogs",		"id",		0 },
	{ "unsorted",		"uid",		1 },
	{ "talk",		"talk_id",	0 },
	{ "message",		"id",		1 },	/* message ids are UUIDs */
	{ "outgoing_message",	"id",		1 },
};
static const struct form_entity form_entity_default = { NULL, "id", 0 };

/* Fields kept from the level right below entity[action][index] (or [note] for notes). */
static const struct form_field {
	const char		*key;
	enum form_target	 target;
	int			 rank;
	const char		*implied_type;	/* element_type implied by this element_id */
} form_fields[] = {
	{ "uid",		FT_UID,		 3, NULL },
	{ "chat_id",		FT_UID,		 1, NULL },
	{ "account_id",		FT_ACCOUNT,	 1, NULL },
	{ "status_id",		FT_STATUS,	 1, NULL },
	{ "pipeline_id",	FT_PIPELINE,	 1, NULL },
	{ "old_status_id",	FT_OLD_STATUS,	 1, NULL },
	{ "old_pipeline_id",	FT_OLD_PIPELINE, 1, NULL },
	{ "updated_at",		FT_UPDATED,	 3, NULL },
	{ "last_modified",	FT_UPDATED,	 2, NULL },
	{ "element_id",		FT_ELEMENT_ID,	 3, NULL },
	{ "entity_id",		FT_ELEMENT_ID,	 2, NULL },
	{ "catalog_id",		FT_ELEMENT_ID,	 1, "catalogs" },
	{ "lead_id",		FT_ELEMENT_ID,	 1, "leads" },
	{ "element_type",	FT_ELEMENT_TYPE, 3, NULL },
	{ "entity_type",	FT_ELEMENT_TYPE, 2, NULL },
	{ "type",		FT_TYPE,	 1, NULL },
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

struct form_seg {
	const char	*p;
	size_t		 len;
};

struct form_event {
	Crmsync__HookEvent	 ev;
	const struct form_entity *kind;
	const char		*index;
	size_t			 indexlen;
	uint64_t		 hash;
	unsigned char		 rank[FT_N];
};

struct form_ctx {
	const struct form_limits *lim;
	struct arena		*a;
	struct form_event	*events;
	size_t			 nevents, capevents;
	struct form_event	**table;
	size_t			 tabmask;
	char			*subdomain;
	int64_t			 account_id;
	int			 have_account;
	char			*err;
	size_t			 errlen;
};

static int
form_fail(struct form_ctx *c, int rv, const char *fmt, size_t where)
{
	if (c->err != NULL && c->errlen > 0)
		snprintf(c->err, c->errlen, fmt, where);
	return rv;
}

int
form_utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;

		if (c == 0)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return 0;	/* continuation byte, 0xc0/0xc1 overlong lead, > 0xf4 */
		}
		if (len - i - 1 < n)
			return 0;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += n + 1;
	}
	return 1;
}

static int
form_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode src[0..n) ('+' = space, %XX) into dst (n bytes at least). -1 on a bad escape. */
static long
form_decode(const char *src, size_t n, char *dst)
{
	size_t i = 0, o = 0;

	while (i < n) {
		unsigned char c = (unsigned char)src[i];

		if (c == '+') {
			dst[o++] = ' ';
			i++;
		} else if (c == '%') {
			int hi, lo;
			if (n - i < 3 || (hi = form_hexval((unsigned char)src[i + 1])) < 0 ||
			    (lo = form_hexval((unsigned char)src[i + 2])) < 0)
				return -1;
			dst[o++] = (char)(hi << 4 | lo);
			i += 3;
		} else {
			dst[o++] = (char)c;
			i++;
		}
	}
	return (long)o;
}

/*
 * Split "name[a][b]" into name and segments. Returns the number of segments, -1 when the
 * brackets are malformed, -2 when there are more than max segments.
 */
static int
form_split_key(const char *k, size_t klen, struct form_seg *name, struct form_seg *segs,
    size_t max)
{
	const char *open = memchr(k, '[', klen);
	size_t i, n = 0;

	name->p = k;
	name->len = open != NULL ? (size_t)(open - k) : klen;
	if (name->len == 0 || memchr(k, ']', name->len) != NULL)
		return -1;
	for (i = name->len; i < klen;) {
		const char *close;

		if (k[i] != '[')
			return -1;	/* text after a ']' */
		if ((close = memchr(k + i + 1, ']', klen - i - 1)) == NULL)
			return -1;	/* unclosed '[' */
		if (memchr(k + i + 1, '[', (size_t)(close - (k + i + 1))) != NULL)
			return -1;	/* '[' inside a segment */
		if (n == max)
			return -2;
		segs[n].p = k + i + 1;
		segs[n].len = (size_t)(close - (k + i + 1));
		n++;
		i = (size_t)(close - k) + 1;
	}
	return (int)n;
}

static int
form_seg_is(const struct form_seg *s, const char *lit)
{
	size_t n = strlen(lit);

	return s->len == n && memcmp(s->p, lit, n) == 0;
}

/* Strict decimal int64: optional '-', digits, no overflow. -1 when it is not one. */
static int
form_int(const char *s, size_t n, int64_t *out)
{
	uint64_t v = 0, lim = INT64_MAX;
	size_t i = 0;
	int neg = 0;

	if (n > 0 && s[0] == '-') {
		neg = 1;
		lim = (uint64_t)INT64_MAX + 1;
		i = 1;
	}
	if (i == n)
		return -1;
	for (; i < n; i++) {
		unsigned d;
		if (s[i] < '0' || s[i] > '9')
			return -1;
		d = (unsigned)(s[i] - '0');
		if (v > (lim - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

static uint64_t
form_hash(const struct form_seg *parts, size_t n)
{
	static const unsigned char sep = 0xff;	/* "ab","c" != "a","bc" */
	uint64_t h = HASH_FNV1A_INIT;

	for (size_t k = 0; k < n; k++) {
		h = hash_fnv1a(h, parts[k].p, parts[k].len);
		h = hash_fnv1a(h, &sep, 1);
	}
	return h;
}

static const struct form_entity *
form_entity_find(const struct form_seg *name)
{
	for (size_t i = 0; i < NELEM(form_entities); i++)
		if (form_seg_is(name, form_entities[i].name))
			return &form_entities[i];
	return &form_entity_default;
}

/* The event of (entity, action, index), created on first sight. NULL: limit or memory. */
static struct form_event *
form_event_get(struct form_ctx *c, const struct form_seg *name, const struct form_seg *action,
    const struct form_seg *index, int *rv)
{
	struct form_seg parts[3] = { *name, *action, *index };
	uint64_t h = form_hash(parts, 3);
	size_t slot = (size_t)h & c->tabmask;
	struct form_event *e;

	while ((e = c->table[slot]) != NULL) {
		if (e->hash == h && form_seg_is(name, e->ev.entity) &&
		    form_seg_is(action, e->ev.action) && e->indexlen == index->len &&
		    memcmp(e->index, index->p, index->len) == 0)
			return e;
		slot = (slot + 1) & c->tabmask;
	}
	if (c->nevents == c->capevents) {
		*rv = CS_ETOOBIG;
		return NULL;
	}
	e = &c->events[c->nevents];
	crmsync__hook_event__init(&e->ev);
	if ((e->ev.entity = arena_strndup(c->a, name->p, name->len)) == NULL ||
	    (e->ev.action = arena_strndup(c->a, action->p, action->len)) == NULL ||
	    (e->index = arena_strndup(c->a, index->p, index->len)) == NULL) {
		*rv = CS_ENOMEM;
		return NULL;
	}
	e->indexlen = index->len;
	e->hash = h;
	e->kind = form_entity_find(name);
	memset(e->rank, 0, sizeof(e->rank));
	c->table[slot] = e;
	c->nevents++;
	return e;
}

/* Store one value into target t of e if rank beats what is there. 0 or CS_ENOMEM. */
static int
form_event_set(struct form_ctx *c, struct form_event *e, enum form_target t, int rank,
    const char *v, size_t vlen, const char *implied_type, int rank_type)
{
	Crmsync__HookEvent *ev = &e->ev;
	int64_t n;
	char *s;

	if (rank < e->rank[t])
		return 0;
	switch (t) {
	case FT_UID:
	case FT_ELEMENT_TYPE:
	case FT_TYPE:
		if ((s = arena_strndup(c->a, v, vlen)) == NULL)
			return CS_ENOMEM;
		if (t == FT_UID)
			ev->uid = s;
		else if (t == FT_TYPE)
			ev->type = s;
		else
			ev->element_type = s;
		break;
	default:
		/* Numbers arrive as text; one that does not parse is ignored, not fatal. */
		if (form_int(v, vlen, &n) != 0)
			return 0;
		switch (t) {
		case FT_ID:		ev->id = n; break;
		case FT_ACCOUNT:	ev->account_id = n; break;
		case FT_STATUS:		ev->status_id = n; break;
		case FT_PIPELINE:	ev->pipeline_id = n; break;
		case FT_OLD_STATUS:	ev->old_status_id = n; break;
		case FT_OLD_PIPELINE:	ev->old_pipeline_id = n; break;
		case FT_UPDATED:	ev->updated_at = n; break;
		case FT_ELEMENT_ID:	ev->element_id = n; break;
		default:		break;
		}
		if (t == FT_ELEMENT_ID && implied_type != NULL && rank_type >= e->rank[FT_ELEMENT_TYPE]) {
			ev->element_type = (char *)implied_type;
			e->rank[FT_ELEMENT_TYPE] = (unsigned char)rank_type;
		}
		break;
	}
	e->rank[t] = (unsigned char)rank;
	return 0;
}

/* A field right below the event (or below [note]): route it through the tables. */
static int
form_event_field(struct form_ctx *c, struct form_event *e, const struct form_seg *field,
    int boost, const char *v, size_t vlen)
{
	int64_t n;

	if (form_seg_is(field, e->kind->id_key)) {
		int numeric = !e->kind->id_text && form_int(v, vlen, &n) == 0;
		return form_event_set(c, e, numeric ? FT_ID : FT_UID, RANK_OWN_ID + boost,
		    v, vlen, NULL, 0);
	}
	for (size_t i = 0; i < NELEM(form_fields); i++) {
		const struct form_field *f = &form_fields[i];
		if (form_seg_is(field, f->key))
			return form_event_set(c, e, f->target, f->rank + boost, v, vlen,
			    f->implied_type, f->rank + boost);
	}
	return 0;
}

static int
form_route(struct form_ctx *c, const struct form_seg *name, const struct form_seg *segs,
    int nseg, const char *v, size_t vlen)
{
	struct form_event *e;
	int rv = 0;

	if (form_seg_is(name, "account")) {
		if (nseg != 1)
			return 0;
		c->have_account = 1;
		if (form_seg_is(&segs[0], "subdomain")) {
			if ((c->subdomain = arena_strndup(c->a, v, vlen)) == NULL)
				return CS_ENOMEM;
		} else if (form_seg_is(&segs[0], "id")) {
			(void)form_int(v, vlen, &c->account_id);
		}
		return 0;
	}
	if (nseg < 2)
		return 0;	/* no index: not an event ("leads[add]=x") */
	if ((e = form_event_get(c, name, &segs[0], &segs[1], &rv)) == NULL)
		return rv;
	if (nseg == 3)
		return form_event_field(c, e, &segs[2], 0, v, vlen);
	if (nseg == 4 && form_seg_is(&segs[0], "note") && form_seg_is(&segs[2], "note"))
		return form_event_field(c, e, &segs[3], RANK_NOTE_BOOST, v, vlen);
	return 0;	/* custom fields, tags, linked ids...: checked, not kept */
}

static size_t
form_pow2(size_t n)
{
	size_t p = 16;

	while (p < n)
		p <<= 1;
	return p;
}

size_t
form_arena_size(size_t len, const struct form_limits *lim)
{
	size_t ev = lim->max_events < len + 1 ? lim->max_events : len + 1;

	/* scratch (2 x len) + copied strings (< 2 x len) + 16-byte rounding per copy
	 * + events and their hash slots */
	return 6 * (len + 1) + ev * (sizeof(struct form_event) + 4 * sizeof(void *) + 128) +
	    65536;
}

/* Count the pairs, then take the event table, its hash slots and the decode buffers. */
static int
form_setup(struct form_ctx *c, const char *body, size_t len, char **kbuf, char **vbuf)
{
	const struct form_limits *lim = c->lim;
	size_t est = 1;

	for (size_t i = 0; i < len; i++)
		if (body[i] == '&')
			est++;
	if (est > lim->max_pairs)
		return form_fail(c, CS_ETOOBIG, "more than %zu key=value pairs", lim->max_pairs);
	c->capevents = est < lim->max_events ? est : lim->max_events;
	c->tabmask = form_pow2(c->capevents * 2) - 1;
	if ((c->events = arena_alloc(c->a, c->capevents * sizeof(*c->events))) == NULL ||
	    (c->table = arena_alloc(c->a, (c->tabmask + 1) * sizeof(*c->table))) == NULL ||
	    (*kbuf = arena_alloc(c->a, len + 1)) == NULL ||
	    (*vbuf = arena_alloc(c->a, len + 1)) == NULL)
		return form_fail(c, CS_ENOMEM, "body of %zu bytes exceeds the parse memory", len);
	return 0;
}

/* One key=value pair (p[0..plen), at byte pos of the body): decoded, checked, routed. */
static int
form_pair(struct form_ctx *c, const char *p, size_t plen, size_t pos, char *kbuf, char *vbuf)
{
	const struct form_limits *lim = c->lim;
	struct form_seg name, segs[FORM_DEPTH_MAX];
	size_t maxdepth = lim->max_depth < FORM_DEPTH_MAX ? lim->max_depth : FORM_DEPTH_MAX;
	const char *eq = memchr(p, '=', plen);
	size_t rklen = eq != NULL ? (size_t)(eq - p) : plen;
	long klen, vlen = 0;
	int nseg, rv;

	if (rklen == 0)
		return 0;
	if ((klen = form_decode(p, rklen, kbuf)) < 0)
		return form_fail(c, CS_EPROTO, "bad percent escape in a key at byte %zu", pos);
	if ((size_t)klen > lim->max_key)
		return form_fail(c, CS_ETOOBIG, "key longer than the limit at byte %zu", pos);
	if (!form_utf8_valid((const unsigned char *)kbuf, (size_t)klen))
		return form_fail(c, CS_EUTF8, "key is not UTF-8 (or holds NUL) at byte %zu", pos);
	if (eq != NULL && (vlen = form_decode(eq + 1, plen - rklen - 1, vbuf)) < 0)
		return form_fail(c, CS_EPROTO, "bad percent escape in a value at byte %zu", pos);
	if (!form_utf8_valid((const unsigned char *)vbuf, (size_t)vlen))
		return form_fail(c, CS_EUTF8, "value is not UTF-8 (or holds NUL) at byte %zu", pos);
	nseg = form_split_key(kbuf, (size_t)klen, &name, segs, maxdepth);
	if (nseg == -1)
		return form_fail(c, CS_EPROTO, "malformed brackets in a key at byte %zu", pos);
	if (nseg == -2)
		return form_fail(c, CS_ETOOBIG, "key nested deeper than the limit at byte %zu", pos);
	if ((rv = form_route(c, &name, segs, nseg, vbuf, (size_t)vlen)) != 0)
		return form_fail(c, rv, rv == CS_ETOOBIG ? "more events than the limit at byte %zu" :
		    "out of parse memory at byte %zu", pos);
	return 0;
}

/* The events found, in order, into the delivery (each with the account's id). */
static int
form_finish(struct form_ctx *c, size_t npairs, size_t len, Crmsync__HookDelivery *out)
{
	if (c->nevents == 0 && !c->have_account)
		return form_fail(c, CS_EPROTO, "no events and no account: not an amoCRM hook (%zu pairs)", npairs);
	out->subdomain = c->subdomain != NULL ? c->subdomain : (char *)"";
	out->account_id = c->account_id;
	out->n_events = c->nevents;
	out->events = NULL;
	if (c->nevents == 0)
		return 0;
	if ((out->events = arena_alloc(c->a, c->nevents * sizeof(*out->events))) == NULL)
		return form_fail(c, CS_ENOMEM, "out of parse memory at byte %zu", len);
	for (size_t i = 0; i < c->nevents; i++) {
		Crmsync__HookEvent *ev = &c->events[i].ev;
		if (ev->account_id == 0)
			ev->account_id = c->account_id;
		out->events[i] = ev;
	}
	return 0;
}

int
form_parse(const char *body, size_t len, const struct form_limits *lim,
    struct arena *a, Crmsync__HookDelivery *out, char *err, size_t errlen)
{
	struct form_ctx c;
	size_t pos = 0, npairs = 0;
	char *kbuf, *vbuf;
	int rv;

	memset(&c, 0, sizeof(c));
	c.lim = lim;
	c.a = a;
	c.err = err;
	c.errlen = errlen;
	if (err != NULL && errlen > 0)
		err[0] = '\0';

	/* A trailing newline is a sender's artefact, not part of the last value. */
	while (len > 0 && (body[len - 1] == '\n' || body[len - 1] == '\r'))
		len--;
	if ((rv = form_setup(&c, body, len, &kbuf, &vbuf)) != 0)
		return rv;
	while (pos <= len) {
		const char *p = body + pos;
		const char *amp = memchr(p, '&', len - pos);
		size_t plen = amp != NULL ? (size_t)(amp - p) : len - pos;

		npairs++;
		if ((rv = form_pair(&c, p, plen, pos, kbuf, vbuf)) != 0)
			return rv;
		if (amp == NULL)
			break;
		pos += plen + 1;
	}
	return form_finish(&c, npairs, len, out);
}
