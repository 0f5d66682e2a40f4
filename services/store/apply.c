/*
 * apply.c - one RecordBatch -> one transaction, in bulk.
 *
 * A batch costs a fixed number of round trips whatever its size. In C first: duplicate
 * keys inside the batch are resolved (newest version wins, then the later record), and
 * each live record gets its content_hash, a 64-bit hash (lib/hash.h) of the source JSON,
 * the version and every typed and child value. Then, in one transaction:
 *   1. lookup: the table's content_hash for the batch's keys (key arrays as parameters);
 *      each live record is new (key absent), unchanged (same hash, not soft-deleted) or
 *      changed;
 *   2. new records are COPYed straight into the table, their children into the child
 *      tables: no stage, no conflict handling, the cheapest write PostgreSQL has;
 *   3. changed records and delete records go through a temp stage: one
 *      INSERT ... ON CONFLICT that rewrites a row only when the incoming version is not
 *      older (the keys written land in a temp "applied" table), soft deletes, and the
 *      children of applied parents replaced (COPY + DELETE + INSERT);
 *   4. the keys a full run saw (one text[] row per batch), the cursor, the run's counters;
 *   5. the analytic tables fed by the entity, for the keys written (analytics.c); COMMIT.
 * Unchanged records cost only their share of the lookup: not parsed, not locked, not
 * written, so a nightly export of unchanged data writes almost nothing. Because typed
 * values are in the hash, a new catalogue mapping or time zone rewrites the rows it changes.
 * If another writer inserts one of the "new" keys between the lookup and the COPY, the
 * COPY fails with a unique violation; the batch is then redone with every record staged.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apply.h"
#include "clock.h"
#include "errors.h"
#include "hash.h"
#include "log.h"
#include "normalise.h"
#include "store.h"

int
apply_init(struct store *st)
{
	const enum cat_crm crms[] = { CAT_HOLLIHOP, CAT_AMO };
	size_t n = 0, k = 0;
	int rv;

	for (size_t c = 0; c < nitems(crms); c++)
		n += catalog_crm(crms[c])->nentities;
	if ((st->esql = calloc(n, sizeof(*st->esql))) == NULL)
		return CS_ENOMEM;
	st->nesql = n;
	for (size_t c = 0; c < nitems(crms); c++) {
		const struct cat_crm_desc *d = catalog_crm(crms[c]);
		for (size_t i = 0; i < d->nentities; i++)
			if ((rv = esql_build(&st->esql[k++], &d->entities[i], d->schema)) != 0)
				return rv;
	}
	buf_init(&st->copy, (size_t)st->conf.recv_max * 2 + (1u << 20));
	return 0;
}

void
apply_free(struct store *st)
{
	for (size_t i = 0; i < st->nesql; i++)
		esql_free(&st->esql[i]);
	free(st->esql);
	st->esql = NULL;
	buf_free(&st->copy);
}

void
apply_reset_conn(struct store *st)
{
	for (size_t i = 0; i < st->nesql; i++)
		st->esql[i].created = st->esql[i].prep_lookup = st->esql[i].prep_seen =
		    st->esql[i].prep_written = 0;
}

static struct entity_sql *
esql_find(struct store *st, int crm, const char *entity)
{
	for (size_t i = 0; i < st->nesql; i++)
		if ((int)st->esql[i].e->crm == crm && strcmp(st->esql[i].e->name, entity) == 0)
			return &st->esql[i];
	return NULL;
}

/* A typed value in COPY text format (or \N). */
static int
copy_value(struct buf *b, const char *v, int isnull)
{
	return isnull ? buf_add_copy_null(b) : buf_add_copytext(b, v, strlen(v));
}

static int
fmt_us(char *dst, size_t cap, int64_t us)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL)
		return CS_ERANGE;
	snprintf(dst, cap, "%04d-%02d-%02d %02d:%02d:%02d.%06lld+00", tm.tm_year + 1900, tm.tm_mon + 1,
	    tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long long)(us % 1000000));
	return 0;
}

/* A NULL value hashes as a length no string can have, so NULL and "" differ. */
#define HASH_NULL_MARK	UINT64_MAX

/* content_hash of a live record: source JSON, version, typed values, child rows. */
int64_t
apply_rec_hash(const Crmsync__Record *r)
{
	uint64_t h = HASH_CONTENT_INIT;

	h = hash_content(h, r->raw_json.data, r->raw_json.len);
	h = hash_content_step(h, (uint64_t)r->source_updated_at_us);
	for (size_t c = 0; c < r->n_values; c++)
		h = norm_isnull(&r->null_mask, c) ? hash_content_step(h, HASH_NULL_MARK) :
		    hash_content(h, r->values[c], strlen(r->values[c]));
	for (size_t k = 0; k < r->n_children; k++) {
		const Crmsync__ChildRow *cr = r->children[k];
		h = hash_content_step(h, ((uint64_t)1 << 32) | cr->child);
		for (size_t v = 0; v < cr->n_values; v++)
			h = norm_isnull(&cr->null_mask, v) ? hash_content_step(h, HASH_NULL_MARK) :
			    hash_content(h, cr->values[v], strlen(cr->values[v]));
	}
	return (int64_t)hash_content_final(h);
}

/* Key of record r as one string, for in-batch dedupe. */
static size_t
rec_key(const struct entity_sql *x, const Crmsync__Record *r, char *dst, size_t cap)
{
	size_t o = 0;

	for (size_t k = 0; k < x->nk; k++) {
		const char *v = r->values[x->kidx[k]];
		size_t n = strlen(v);
		if (o + n + 2 > cap)
			return 0;
		memcpy(dst + o, v, n);
		o += n;
		dst[o++] = '\x1f';
	}
	dst[o] = '\0';
	return o;
}

/*
 * keep[i] = 1 for the winning record of each key: newest version, then the later one.
 * Returns 0 or CS_EINVAL when a record is malformed (err says which).
 */
static int
dedupe(const struct entity_sql *x, const Crmsync__RecordBatch *b, unsigned char *keep,
    char *err, size_t errlen)
{
	size_t cap = 16, n = b->n_records;
	int64_t *slot;
	char k1[1024], k2[1024];
	int rv = 0;

	while (cap < n * 2)
		cap *= 2;
	if ((slot = malloc(cap * sizeof(*slot))) == NULL)
		return CS_ENOMEM;
	for (size_t i = 0; i < cap; i++)
		slot[i] = -1;
	for (size_t i = 0; i < n; i++) {
		const Crmsync__Record *r = b->records[i];
		size_t l1;
		uint64_t h;

		if (r->n_values != x->e->ncols) {
			snprintf(err, errlen, "record %zu has %zu values, entity %s has %zu columns", i,
			    r->n_values, x->e->name, x->e->ncols);
			rv = CS_EINVAL;
			break;
		}
		for (size_t k = 0; k < x->nk; k++) {
			if (norm_isnull(&r->null_mask, x->kidx[k])) {
				snprintf(err, errlen, "record %zu: key column %s is NULL", i,
				    x->e->cols[x->kidx[k]].column);
				rv = CS_EINVAL;
				goto out;
			}
		}
		for (size_t c = 0; c < r->n_children; c++) {
			const Crmsync__ChildRow *cr = r->children[c];
			if (cr->child >= x->e->nchildren || cr->n_values != x->e->children[cr->child].ncols) {
				snprintf(err, errlen, "record %zu: child row %zu does not match the catalogue", i, c);
				rv = CS_EINVAL;
				goto out;
			}
		}
		if ((l1 = rec_key(x, r, k1, sizeof(k1))) == 0) {
			snprintf(err, errlen, "record %zu: key too long", i);
			rv = CS_EINVAL;
			break;
		}
		keep[i] = 1;
		h = hash_fnv1a(HASH_FNV1A_INIT, k1, l1) & (cap - 1);
		for (;; h = (h + 1) & (cap - 1)) {
			if (slot[h] < 0) {
				slot[h] = (int64_t)i;
				break;
			}
			const Crmsync__Record *o = b->records[slot[h]];
			if (rec_key(x, o, k2, sizeof(k2)) == l1 && memcmp(k1, k2, l1) == 0) {
				if (r->source_updated_at_us >= o->source_updated_at_us) {
					keep[slot[h]] = 0;
					slot[h] = (int64_t)i;
				} else {
					keep[i] = 0;
				}
				break;
			}
		}
	}
out:
	free(slot);
	return rv;
}

static int
exec_count(struct store *st, const char *sql, int n, const char *const *vals, long *count,
    char *err, size_t errlen)
{
	PGresult *r = NULL;
	int rv = db_execp(st, sql, n, vals, &r);

	if (rv != 0)
		snprintf(err, errlen, "%s", db_errmsg(st, r));
	else if (count != NULL)
		*count = strtol(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return rv;
}

/* What a batch's record turns out to be. */
enum rec_class {
	RC_DROPPED,	/* lost the in-batch dedupe */
	RC_NEW,		/* key not in the table: COPY straight in */
	RC_SAME,	/* same content_hash, live: nothing to do */
	RC_STAGED,	/* exists and differs, or a delete record: through the stage */
};

struct batch {
	struct entity_sql		*x;
	const Crmsync__RecordBatch	*b;
	unsigned char			*keep;	/* dedupe winners */
	unsigned char			*cls;	/* enum rec_class per record */
	int64_t				*hash;	/* per live record */
	size_t				*live;	/* live kept records, in key-array order */
	size_t				 nlive, ndel;
	struct buf			 karr[APPLY_MAX_KEYS];	/* text[] literals of live keys */
	struct buf			 dkarr[APPLY_MAX_KEYS];	/* ... and of delete records' keys */
	const char			*kparam[2 + APPLY_MAX_KEYS];
	size_t				 nnew, nsame, nstaged;
	long				 n_up;	/* staged rows written or deleted */
	int64_t				 t_lookup, t_direct, t_staged, t_an, t_commit;
};


/* Append v to an array literal opened with '{': "..." with " and \ escaped. */
static int
array_add(struct buf *a, const char *v)
{
	int rv = (a->len > 1 ? buf_addc(a, ',') : 0) | buf_addc(a, '"');

	for (const char *p = v; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			rv |= buf_addc(a, '\\');
		rv |= buf_addc(a, *p);
	}
	return rv | buf_addc(a, '"');
}

/* Dedupe, validate, hash, and build the key arrays of the live records. */
static int
batch_prepare(struct batch *t, char *err, size_t errlen)
{
	const Crmsync__RecordBatch *b = t->b;
	size_t n = b->n_records;
	int rv;

	t->keep = calloc(n + 1, 1);
	t->cls = calloc(n + 1, 1);
	t->hash = calloc(n + 1, sizeof(*t->hash));
	t->live = calloc(n + 1, sizeof(*t->live));
	if (t->keep == NULL || t->cls == NULL || t->hash == NULL || t->live == NULL)
		return CS_ENOMEM;
	if ((rv = dedupe(t->x, b, t->keep, err, errlen)) != 0)
		return rv;
	for (size_t k = 0; k < t->x->nk; k++) {
		buf_init(&t->karr[k], (size_t)64 << 20);
		buf_init(&t->dkarr[k], (size_t)64 << 20);
		rv |= buf_addc(&t->karr[k], '{') | buf_addc(&t->dkarr[k], '{');
	}
	for (size_t i = 0; i < n && rv == 0; i++) {
		const Crmsync__Record *r = b->records[i];
		if (!t->keep[i])
			continue;
		if (r->raw_json.len > 0 && memchr(r->raw_json.data, '\0', r->raw_json.len) != NULL) {
			snprintf(err, errlen, "record %zu: raw JSON holds a NUL byte", i);
			return CS_EINVAL;
		}
		if (r->deleted) {
			t->ndel++;
			for (size_t k = 0; k < t->x->nk; k++)
				rv |= array_add(&t->dkarr[k], r->values[t->x->kidx[k]]);
			continue;
		}
		t->hash[i] = apply_rec_hash(r);
		t->live[t->nlive++] = i;
		for (size_t k = 0; k < t->x->nk; k++)
			rv |= array_add(&t->karr[k], r->values[t->x->kidx[k]]);
	}
	for (size_t k = 0; k < t->x->nk; k++) {
		rv |= buf_addc(&t->karr[k], '}') | buf_addc(&t->dkarr[k], '}');
		t->kparam[2 + k] = t->karr[k].data;
	}
	if (rv != 0) {
		snprintf(err, errlen, "batch keys too large: %s", cs_strerror(rv));
		return CS_ETOOBIG;
	}
	return 0;
}

static void
batch_free(struct batch *t)
{
	for (size_t k = 0; t->x != NULL && k < t->x->nk; k++) {
		buf_free(&t->karr[k]);
		buf_free(&t->dkarr[k]);
	}
	free(t->keep);
	free(t->cls);
	free(t->hash);
	free(t->live);
}

/* Classify the live records by the table's content_hash of their keys. */
static int
batch_lookup(struct store *st, struct batch *t, int stage_all, char *err, size_t errlen)
{
	const Crmsync__RecordBatch *b = t->b;
	PGresult *r = NULL;
	int rv;

	t->nnew = t->nsame = t->nstaged = 0;
	for (size_t i = 0; i < b->n_records; i++)
		t->cls[i] = !t->keep[i] ? RC_DROPPED : b->records[i]->deleted ? RC_STAGED : RC_NEW;
	t->nstaged = t->ndel;
	if (t->nlive == 0)
		return 0;
	if ((rv = db_execprep(st, t->x->name_lookup, &t->x->prep_lookup, t->x->lookup, (int)t->x->nk,
	    t->kparam + 2, &r)) != 0) {
		snprintf(err, errlen, "lookup: %s", db_errmsg(st, r));
		PQclear(r);
		return rv;
	}
	for (int row = 0; row < PQntuples(r); row++) {
		long long ord = strtoll(PQgetvalue(r, row, 0), NULL, 10);
		if (ord < 1 || (size_t)ord > t->nlive)
			continue;
		size_t i = t->live[ord - 1];
		int same = !PQgetisnull(r, row, 1) && PQgetvalue(r, row, 2)[0] == 'f' &&
		    strtoll(PQgetvalue(r, row, 1), NULL, 10) == t->hash[i];
		t->cls[i] = same ? RC_SAME : RC_STAGED;
	}
	PQclear(r);
	for (size_t j = 0; j < t->nlive; j++) {
		size_t i = t->live[j];
		if (t->cls[i] == RC_NEW && stage_all)
			t->cls[i] = RC_STAGED;
		t->nnew += t->cls[i] == RC_NEW;
		t->nsame += t->cls[i] == RC_SAME;
		t->nstaged += t->cls[i] == RC_STAGED;
	}
	return 0;
}

/* Version as COPY text, or \N. */
static int
put_version(struct buf *o, int64_t us)
{
	char ver[64];

	if (us == 0)
		return buf_add(o, "\\N", 2);
	fmt_us(ver, sizeof(ver), us);
	return buf_addstr(o, ver);
}

/* The typed values, tab-separated (no leading or trailing tab). */
static int
put_values(struct buf *o, const Crmsync__Record *r)
{
	int rv = 0;

	for (size_t c = 0; c < r->n_values; c++) {
		if (c > 0)
			rv |= buf_addc(o, '\t');
		rv |= copy_value(o, r->values[c], norm_isnull(&r->null_mask, c));
	}
	return rv;
}

static int
put_raw(struct buf *o, const Crmsync__Record *r)
{
	if (r->raw_json.len == 0)
		return r->deleted ? buf_add(o, "{}", 2) : buf_add(o, "null", 4);
	return buf_add_copytext(o, (const char *)r->raw_json.data, r->raw_json.len);
}

/* Direct row: columns..., source_updated_at, raw, content_hash. */
static int
put_direct_row(struct buf *o, const Crmsync__Record *r, int64_t h)
{
	int rv = put_values(o, r);

	rv |= buf_addc(o, '\t');
	rv |= put_version(o, r->source_updated_at_us);
	rv |= buf_addc(o, '\t');
	rv |= put_raw(o, r);
	rv |= buf_printf(o, "\t%" PRId64 "\n", h);
	return rv;
}

/* Stage row: del, ver, columns..., raw, h (\N for a delete record). */
static int
put_stage_row(struct buf *o, const Crmsync__Record *r, int64_t h)
{
	int rv = buf_add(o, r->deleted ? "t\t" : "f\t", 2);

	rv |= put_version(o, r->source_updated_at_us);
	rv |= buf_addc(o, '\t');
	rv |= put_values(o, r);
	rv |= buf_addc(o, '\t');
	rv |= put_raw(o, r);
	if (r->deleted)
		rv |= buf_add(o, "\t\\N\n", 4);
	else
		rv |= buf_printf(o, "\t%" PRId64 "\n", h);
	return rv;
}

/*
 * Child rows of child table c for the records of class want: [discriminator,] parent
 * key..., idx, values... (the stage tables have no discriminator column).
 */
static int
put_children(struct buf *o, const struct batch *t, size_t c, enum rec_class want,
    const char *dval, size_t *nrows)
{
	const struct entity_sql *x = t->x;
	int rv = 0;

	*nrows = 0;
	for (size_t j = 0; j < t->nlive && rv == 0; j++) {
		const Crmsync__Record *r = t->b->records[t->live[j]];
		int idx = 0;
		if (t->cls[t->live[j]] != want)
			continue;
		for (size_t k = 0; k < r->n_children && rv == 0; k++) {
			const Crmsync__ChildRow *cr = r->children[k];
			if (cr->child != c)
				continue;
			if (dval != NULL) {
				rv |= copy_value(o, dval, 0);
				rv |= buf_addc(o, '\t');
			}
			for (size_t q = 0; q < x->nk; q++) {
				rv |= copy_value(o, r->values[x->kidx[q]], 0);
				rv |= buf_addc(o, '\t');
			}
			rv |= buf_printf(o, "%d", idx++);
			for (size_t v = 0; v < cr->n_values; v++) {
				rv |= buf_addc(o, '\t');
				rv |= copy_value(o, cr->values[v], norm_isnull(&cr->null_mask, v));
			}
			rv |= buf_addc(o, '\n');
			(*nrows)++;
		}
	}
	return rv;
}

static int
staged_too_large(char *err, size_t errlen, const char *what, int rv)
{
	snprintf(err, errlen, "%s too large to stage: %s", what, cs_strerror(rv));
	return CS_ETOOBIG;
}

/* New records: straight into the table, their children straight into the child tables. */
static int
batch_direct(struct store *st, struct batch *t, char *err, size_t errlen)
{
	const struct entity_sql *x = t->x;
	char dcol[64];
	int rv = 0;

	buf_reset(&st->copy);
	for (size_t j = 0; j < t->nlive && rv == 0; j++)
		if (t->cls[t->live[j]] == RC_NEW)
			rv = put_direct_row(&st->copy, t->b->records[t->live[j]], t->hash[t->live[j]]);
	if (rv != 0)
		return staged_too_large(err, errlen, "batch", rv);
	if ((rv = db_copy_in(st, x->direct, &st->copy, err, errlen)) != 0)
		return rv;
	for (size_t c = 0; c < x->e->nchildren; c++) {
		const char *dval = catalog_discriminator(&x->e->children[c], dcol, sizeof(dcol));
		size_t nrows;
		buf_reset(&st->copy);
		if ((rv = put_children(&st->copy, t, c, RC_NEW, dval, &nrows)) != 0)
			return staged_too_large(err, errlen, "child rows", rv);
		if (nrows > 0 && (rv = db_copy_in(st, x->child_direct[c], &st->copy, err, errlen)) != 0)
			return rv;
	}
	return 0;
}

/* Changed and delete records: stage, upsert, soft-delete, replace the applied children. */
static int
batch_staged(struct store *st, struct batch *t, char *err, size_t errlen)
{
	const Crmsync__RecordBatch *b = t->b;
	const struct entity_sql *x = t->x;
	size_t nlive_staged = t->nstaged - t->ndel;
	char dcol[64];
	int rv = 0;

	t->n_up = 0;
	buf_reset(&st->copy);
	for (size_t i = 0; i < b->n_records && rv == 0; i++)
		if (t->cls[i] == RC_STAGED)
			rv = put_stage_row(&st->copy, b->records[i], t->hash[i]);
	if (rv != 0)
		return staged_too_large(err, errlen, "batch", rv);
	if ((rv = db_copy_in(st, x->copy, &st->copy, err, errlen)) != 0)
		return rv;
	if (nlive_staged > 0 && (rv = exec_count(st, x->upsert, 0, NULL, &t->n_up, err, errlen)) != 0)
		return rv;
	if (t->ndel > 0) {
		long nd = 0;
		if ((rv = exec_count(st, x->softdel, 0, NULL, &nd, err, errlen)) != 0)
			return rv;
		stat_add(&store_stats[ST_ROWS_DELETED], nd);
		t->n_up += nd;
	}
	/* Children of applied parents (deleted parents keep theirs): replace them wholesale. */
	for (size_t c = 0; c < x->e->nchildren && t->n_up > 0 && nlive_staged > 0; c++) {
		const char *dval = catalog_discriminator(&x->e->children[c], dcol, sizeof(dcol));
		const char *dv[1] = { dval };
		size_t nrows;
		buf_reset(&st->copy);
		if ((rv = put_children(&st->copy, t, c, RC_STAGED, NULL, &nrows)) != 0)
			return staged_too_large(err, errlen, "child rows", rv);
		if ((rv = exec_count(st, x->child_del[c], dval ? 1 : 0, dv, NULL, err, errlen)) != 0)
			return rv;
		if (nrows == 0)
			continue;
		if ((rv = db_copy_in(st, x->child_copy[c], &st->copy, err, errlen)) != 0)
			return rv;
		if ((rv = exec_count(st, x->child_ins[c], dval ? 1 : 0, dv, NULL, err, errlen)) != 0)
			return rv;
	}
	return 0;
}

/*
 * The temp tables of the staged path, created once per connection outside any transaction
 * (a rolled-back CREATE would leave the flag set and the tables gone).
 */
static int
ensure_temp(struct store *st, struct entity_sql *x, char *err, size_t errlen)
{
	int rv;

	if (x->created)
		return 0;
	if ((rv = exec_count(st, x->create, 0, NULL, NULL, err, errlen)) == 0)
		x->created = 1;
	return rv;
}

/* Do the key columns render in SQL (::text) exactly as the batch carries them? */
static int
keys_as_text(const struct entity_sql *x)
{
	for (size_t k = 0; k < x->nk; k++)
		if (x->e->cols[x->kidx[k]].type != CT_INT8 && x->e->cols[x->kidx[k]].type != CT_TEXT)
			return 0;
	return 1;
}

/*
 * The keys the batch wrote, from its own classification, rendered as apply_key_expr does,
 * without asking the database (one round trip less per hook batch): the new records, and
 * when the stage wrote anything the staged ones too (changed and delete records). A staged
 * record the upsert left alone (an older version, a delete of a row already gone) makes
 * this a superset of the rows written; a refresh recomputes its keys' rows from the mirror,
 * so a key that did not change rewrites nothing. keys_new: only new records (crmsync.keys_new).
 */
static int
batch_analytics_keys(struct store *st, struct batch *t, int with_staged, char *err, size_t errlen)
{
	const Crmsync__RecordBatch *b = t->b;
	struct buf keys, one;
	int rv = 0;

	buf_init(&keys, (size_t)64 << 20);
	buf_init(&one, 4096);
	rv |= buf_addc(&keys, '{');
	for (size_t i = 0; i < b->n_records && rv == 0; i++) {
		const Crmsync__Record *r = b->records[i];
		if (t->cls[i] != RC_NEW && !(with_staged && t->cls[i] == RC_STAGED))
			continue;
		buf_reset(&one);
		for (size_t k = 0; k < t->x->nk; k++)
			rv |= (k ? buf_addc(&one, '|') : 0) | buf_addstr(&one, r->values[t->x->kidx[k]]);
		rv |= buf_addc(&one, '\0') | array_add(&keys, one.data);
	}
	rv |= buf_addc(&keys, '}') | buf_addc(&keys, '\0');
	if (rv != 0)
		rv = staged_too_large(err, errlen, "analytics keys", rv);
	else if (with_staged)
		rv = analytics_refresh(st, t->x->e, keys.data, err, errlen);
	else
		rv = analytics_refresh_new(st, t->x->e, keys.data, err, errlen);
	buf_free(&keys);
	buf_free(&one);
	return rv;
}

/*
 * The analytic tables fed by this entity, refreshed for the keys this transaction wrote or
 * soft-deleted (analytics.c): in the batch's transaction, so they commit or roll back with it.
 * Keys that do not render in SQL as the batch carries them are asked of the table (the rows
 * this transaction wrote carry its now()).
 */
static int
batch_analytics(struct store *st, struct batch *t, char *err, size_t errlen)
{
	struct entity_sql *x = t->x;
	const char *v[2 * APPLY_MAX_KEYS];
	PGresult *r = NULL;
	int rv;

	if (!st->conf.an_refresh || !analytics_reads(x->e) || t->nnew + t->n_up == 0)
		return 0;
	if (keys_as_text(x))
		return batch_analytics_keys(st, t, t->n_up > 0, err, errlen);
	for (size_t k = 0; k < x->nk; k++) {
		v[k] = t->karr[k].data;
		v[x->nk + k] = t->dkarr[k].data;
	}
	if ((rv = db_execprep(st, x->name_written, &x->prep_written, x->written, 2 * (int)x->nk, v,
	    &r)) != 0) {
		snprintf(err, errlen, "written keys: %s", db_errmsg(st, r));
		PQclear(r);
		return rv;
	}
	rv = analytics_refresh(st, x->e, PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "{}", err, errlen);
	PQclear(r);
	return rv;
}

/*
 * ANALYZE the entity's tables (parent and children) once the rows inserted since the last
 * time outnumber those the planner knew of then (and at least ANALYZE_MIN_GROWTH): in a
 * first export a table goes from empty to millions of rows within minutes, autovacuum
 * looks at it once a minute at best, and the analytic refreshes (prepared, so planned
 * once) kept choosing sequential scans of tables they believed empty: in the 1,818
 * batches of a Hollihop first export, refresh statements over 40 ms took 98.5 s.
 * Doubling keeps it to ~20 ANALYZEs for a table of a million rows. In the batch's
 * transaction, so the refresh after it is planned with the new figures; a rolled-back
 * batch only makes the next one come sooner. Only entities an analytic table reads: the
 * others' ANALYZEs (balances, lesson plans, ...) served no refresh and took ~9 of the 36 s
 * ANALYZE cost in a first export.
 */
#define ANALYZE_MIN_GROWTH	1000

static int
batch_analyze_grown(struct store *st, struct batch *t, char *err, size_t errlen)
{
	struct entity_sql *x = t->x;
	const struct cat_entity *e = x->e;
	char sql[256], name[160];
	PGresult *r = NULL;
	int rv;

	if (!st->conf.an_refresh || t->nnew == 0 || !analytics_reads(e))
		return 0;
	x->an_since += (long)t->nnew;
	if (x->an_known < 0) {		/* once per entity per store process: what the planner knows */
		const char *v[1] = { name };
		snprintf(name, sizeof(name), "%s.%s", x->schema, e->name);
		if ((rv = db_execp(st, "SELECT greatest(reltuples, 0) FROM pg_class "
		    "WHERE oid = to_regclass($1)", 1, v, &r)) != 0) {
			snprintf(err, errlen, "reltuples: %s", db_errmsg(st, r));
			PQclear(r);
			return rv;
		}
		x->an_known = PQntuples(r) == 1 ? strtod(PQgetvalue(r, 0, 0), NULL) : 0;
		PQclear(r);
	}
	if ((double)x->an_since < x->an_known || x->an_since < ANALYZE_MIN_GROWTH)
		return 0;
	for (size_t c = 0; c <= e->nchildren; c++) {
		snprintf(sql, sizeof(sql), "ANALYZE %s.%s", x->schema,
		    c == 0 ? e->name : e->children[c - 1].table);
		if ((rv = db_exec(st, sql)) != 0) {
			snprintf(err, errlen, "%s: %s", sql, db_errmsg(st, NULL));
			return rv;
		}
	}
	log_debug("store.analyzed", "entity=%s.%s rows_known=%.0f inserted_since=%ld", x->schema,
	    e->name, x->an_known, x->an_since);
	x->an_known += (double)x->an_since;
	x->an_since = 0;
	return 0;
}

/* One attempt at the whole batch in one transaction. */
static int
batch_tx(struct store *st, struct batch *t, int stage_all, char *err, size_t errlen)
{
	const Crmsync__RecordBatch *b = t->b;
	struct entity_sql *x = t->x;
	char run[24];
	int64_t t0 = clock_mono_us();
	int rv;

	snprintf(run, sizeof(run), "%lld", (long long)b->run_id);
	/*
	 * The lookup runs before BEGIN: under READ COMMITTED each statement takes its own
	 * snapshot anyway, and a race it cannot see is caught (a unique violation on a "new"
	 * key; the version check of the staged upsert).
	 */
	if ((rv = batch_lookup(st, t, stage_all, err, errlen)) != 0)
		return rv;
	t->t_lookup = clock_mono_us() - t0;
	if (t->nstaged > 0 && (rv = ensure_temp(st, x, err, errlen)) != 0)
		return rv;
	if ((rv = db_exec(st, "BEGIN")) != 0) {
		snprintf(err, errlen, "BEGIN: %s", db_errmsg(st, NULL));
		return rv;
	}
	if (t->nnew > 0 && (rv = batch_direct(st, t, err, errlen)) != 0)
		goto fail;
	t->t_direct = clock_mono_us() - t0 - t->t_lookup;
	if (t->nstaged > 0 && (rv = batch_staged(st, t, err, errlen)) != 0)
		goto fail;
	t->t_staged = clock_mono_us() - t0 - t->t_lookup - t->t_direct;
	if (b->run_id != 0 && t->nlive > 0 && (x->e->flags & CE_FULL_DELETES)) {
		t->kparam[0] = run;
		t->kparam[1] = x->e->name;
		PGresult *r = NULL;
		rv = db_execprep(st, x->name_seen, &x->prep_seen, x->seen, 2 + (int)x->nk, t->kparam, &r);
		if (rv != 0)
			snprintf(err, errlen, "seen keys: %s", db_errmsg(st, r));
		PQclear(r);
		if (rv != 0)
			goto fail;
	}
	/* Rows the sender could not read: kept with their reason, committed with the rest. */
	if (b->n_rejected > 0 && (rv = runs_rejected_rows(st, b, err, errlen)) != 0)
		goto fail;
	if (b->cursor_opt_case == CRMSYNC__RECORD_BATCH__CURSOR_OPT_CURSOR && b->cursor != NULL) {
		const char *v[3] = { runs_crm_name(b->crm), b->cursor->name, b->cursor->value };
		if ((rv = exec_count(st, "INSERT INTO crmsync.cursors (crm, name, value) VALUES ($1, $2, $3) "
		    "ON CONFLICT (crm, name) DO UPDATE SET value = excluded.value, updated_at = now()",
		    3, v, NULL, err, errlen)) != 0)
			goto fail;
	}
	if (b->run_id != 0) {
		char a[24], u[24];
		const char *v[3] = { run, a, u };
		long applied = (long)t->nnew + t->n_up;
		snprintf(a, sizeof(a), "%ld", applied);
		snprintf(u, sizeof(u), "%ld", (long)(t->nlive + t->ndel) - applied);
		if ((rv = exec_count(st, "UPDATE crmsync.sync_runs SET batches = batches + 1, "
		    "rows_written = rows_written + $2, rows_unchanged = rows_unchanged + $3 WHERE id = $1",
		    3, v, NULL, err, errlen)) != 0)
			goto fail;
	}
	int64_t t1 = clock_mono_us();
	if ((rv = batch_analyze_grown(st, t, err, errlen)) != 0 ||
	    (rv = batch_analytics(st, t, err, errlen)) != 0)
		goto fail;
	t->t_an = clock_mono_us() - t1;
	t1 = clock_mono_us();
	if ((rv = db_exec(st, "COMMIT")) != 0) {
		snprintf(err, errlen, "COMMIT: %s", db_errmsg(st, NULL));
		goto fail;
	}
	t->t_commit = clock_mono_us() - t1;
	return 0;
fail:
	db_rollback(st);
	return rv;
}

int
apply_batch(struct store *st, const Crmsync__RecordBatch *b, uint32_t *applied,
    uint32_t *unchanged, char *err, size_t errlen)
{
	struct batch t;
	int64_t t0 = clock_mono_us();
	int rv;

	*applied = *unchanged = 0;
	err[0] = '\0';
	memset(&t, 0, sizeof(t));
	t.b = b;
	if ((t.x = esql_find(st, b->crm, b->entity)) == NULL) {
		snprintf(err, errlen, "unknown entity %s for crm %s", b->entity, runs_crm_name(b->crm));
		return CS_EUNKNOWN_ENTITY;
	}
	if (b->n_records > (size_t)st->conf.batch_max_rows) {
		snprintf(err, errlen, "batch has %zu records, limit %lld", b->n_records,
		    (long long)st->conf.batch_max_rows);
		return CS_ETOOBIG;
	}
	if ((rv = batch_prepare(&t, err, errlen)) != 0)
		goto out;
	int64_t t_prep = clock_mono_us() - t0;
	if ((rv = batch_tx(st, &t, 0, err, errlen)) == CS_EEXISTS) {
		/* Another writer inserted a "new" key meanwhile: redo with every record staged. */
		stat_add(&store_stats[ST_REDONE], 1);
		log_info("batch.redo", "crm=%s entity=%s batch=%llu reason=%s", runs_crm_name(b->crm),
		    b->entity, (unsigned long long)b->batch_id, lq(err));
		err[0] = '\0';
		rv = batch_tx(st, &t, 1, err, errlen);
	}
	if (rv == 0) {
		*applied = (uint32_t)((long)t.nnew + t.n_up);
		*unchanged = (uint32_t)(t.nlive + t.ndel - *applied);
		log_debug("batch.timing", "entity=%s n=%zu new=%zu same=%zu staged=%zu prep_us=%lld "
		    "lookup_us=%lld direct_us=%lld staged_us=%lld analytics_us=%lld commit_us=%lld total_us=%lld",
		    b->entity, b->n_records, t.nnew, t.nsame, t.nstaged, (long long)t_prep,
		    (long long)t.t_lookup, (long long)t.t_direct, (long long)t.t_staged,
		    (long long)t.t_an, (long long)t.t_commit, (long long)(clock_mono_us() - t0));
	}
out:
	batch_free(&t);
	return rv;
}
