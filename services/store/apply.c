/*
 * apply.c - one RecordBatch -> one transaction, in bulk.
 *
 * For each catalogue entity the SQL is built once at start-up. A batch then costs a fixed
 * number of round trips whatever its size:
 *   BEGIN; COPY the records into a temp stage table; one INSERT ... ON CONFLICT that only
 *   rewrites a row when the incoming version is not older and the content differs (the keys
 *   it touched land in a temp "applied" table); soft-delete the records flagged deleted;
 *   replace the child rows of applied parents (COPY + DELETE + INSERT); note the keys seen
 *   for a full run; advance the cursor and the run's counters; COMMIT.
 * Duplicate keys inside one batch are resolved here in C first (newest version wins, then
 * the later record), since ON CONFLICT cannot touch a row twice in one statement.
 * Identifiers come only from the compiled-in catalogue; values travel as COPY data or
 * parameters, never inside SQL text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errors.h"
#include "hash.h"
#include "log.h"
#include "normalise.h"
#include "store.h"

struct entity_sql {
	const struct cat_entity	*e;
	const char		*schema;
	int			 created;	/* temp tables exist on this connection */
	char			*create;	/* temp stage tables */
	char			*copy;		/* COPY st FROM STDIN */
	char			*upsert;
	char			*softdel;
	char			*seen;
	char			**child_copy;	/* per child */
	char			**child_del;
	char			**child_ins;
	size_t			*kidx;		/* positions of the key columns in e->cols */
	size_t			 nk;
};

static void
esql_free(struct entity_sql *x)
{
	free(x->create);
	free(x->copy);
	free(x->upsert);
	free(x->softdel);
	free(x->seen);
	for (size_t c = 0; x->e != NULL && c < x->e->nchildren; c++) {
		free(x->child_copy[c]);
		free(x->child_del[c]);
		free(x->child_ins[c]);
	}
	free(x->child_copy);
	free(x->child_del);
	free(x->child_ins);
	free(x->kidx);
}

/* "k1::text" or "k1::text || '|' || k2::text", prefixed by alias. */
const char *
apply_key_expr(const struct cat_entity *e, const char *alias, char *buf, size_t cap)
{
	size_t o = 0;
	int first = 1;

	buf[0] = '\0';
	for (size_t i = 0; i < e->ncols; i++) {
		if (!(e->cols[i].flags & CF_KEY))
			continue;
		o += (size_t)snprintf(buf + o, o < cap ? cap - o : 0, "%s%s.%s::text",
		    first ? "" : " || '|' || ", alias, e->cols[i].column);
		first = 0;
	}
	return o < cap ? buf : NULL;
}

static char *
steal(struct buf *b)
{
	return buf_steal(b, NULL);
}

/* Build every statement for entity e. */
static int
esql_build(struct entity_sql *x, const struct cat_entity *e, const char *schema)
{
	struct buf b;
	char st[96], ap[96], keyexpr[512], pcol[64], dcol[64];
	int rv = 0;

	memset(x, 0, sizeof(*x));
	x->e = e;
	x->schema = schema;
	x->nk = catalog_nkeys(e);
	x->kidx = calloc(x->nk ? x->nk : 1, sizeof(*x->kidx));
	x->child_copy = calloc(e->nchildren + 1, sizeof(char *));
	x->child_del = calloc(e->nchildren + 1, sizeof(char *));
	x->child_ins = calloc(e->nchildren + 1, sizeof(char *));
	if (x->kidx == NULL || x->child_copy == NULL || x->child_del == NULL || x->child_ins == NULL)
		return CS_ENOMEM;
	for (size_t i = 0, k = 0; i < e->ncols; i++)
		if (e->cols[i].flags & CF_KEY)
			x->kidx[k++] = i;
	if (x->nk == 0)
		return CS_EINVAL;
	snprintf(st, sizeof(st), "st_%s_%s", schema, e->name);
	snprintf(ap, sizeof(ap), "ap_%s_%s", schema, e->name);
	buf_init(&b, 1u << 20);

	/* Temp tables: stage (typed like the target), applied keys, child stages. */
	rv |= buf_printf(&b, "CREATE TEMP TABLE IF NOT EXISTS %s (del boolean, ver timestamptz", st);
	for (size_t i = 0; i < e->ncols; i++)
		rv |= buf_printf(&b, ", %s %s", e->cols[i].column, catalog_sql_type(e->cols[i].type));
	rv |= buf_printf(&b, ", raw jsonb) ON COMMIT DELETE ROWS;\nCREATE TEMP TABLE IF NOT EXISTS %s (", ap);
	for (size_t k = 0; k < x->nk; k++)
		rv |= buf_printf(&b, "%s%s %s", k ? ", " : "", e->cols[x->kidx[k]].column,
		    catalog_sql_type(e->cols[x->kidx[k]].type));
	rv |= buf_printf(&b, ") ON COMMIT DELETE ROWS;\n");
	for (size_t c = 0; c < e->nchildren; c++) {
		const struct cat_child *ch = &e->children[c];
		rv |= buf_printf(&b, "CREATE TEMP TABLE IF NOT EXISTS sc_%s_%s_%zu (", schema, e->name, c);
		for (size_t k = 0; k < x->nk; k++)
			rv |= buf_printf(&b, "%s%s %s", k ? ", " : "", e->cols[x->kidx[k]].column,
			    catalog_sql_type(e->cols[x->kidx[k]].type));
		rv |= buf_printf(&b, ", idx integer");
		for (size_t i = 0; i < ch->ncols; i++)
			rv |= buf_printf(&b, ", %s %s", ch->cols[i].column, catalog_sql_type(ch->cols[i].type));
		rv |= buf_printf(&b, ") ON COMMIT DELETE ROWS;\n");
	}
	x->create = steal(&b);

	buf_init(&b, 1u << 20);
	rv |= buf_printf(&b, "COPY %s FROM STDIN", st);
	x->copy = steal(&b);

	/* Upsert: rewrite only when not older and different; remember the keys written. */
	buf_init(&b, 1u << 20);
	rv |= buf_printf(&b, "WITH up AS (INSERT INTO %s.%s AS t (", schema, e->name);
	for (size_t i = 0; i < e->ncols; i++)
		rv |= buf_printf(&b, "%s, ", e->cols[i].column);
	rv |= buf_printf(&b, "source_updated_at, raw, synced_at, deleted_at) SELECT ");
	for (size_t i = 0; i < e->ncols; i++)
		rv |= buf_printf(&b, "s.%s, ", e->cols[i].column);
	rv |= buf_printf(&b, "s.ver, s.raw, now(), NULL FROM %s s WHERE NOT s.del ON CONFLICT (", st);
	for (size_t k = 0; k < x->nk; k++)
		rv |= buf_printf(&b, "%s%s", k ? ", " : "", e->cols[x->kidx[k]].column);
	rv |= buf_printf(&b, ") DO UPDATE SET ");
	for (size_t i = 0; i < e->ncols; i++)
		if (!(e->cols[i].flags & CF_KEY))
			rv |= buf_printf(&b, "%s = excluded.%s, ", e->cols[i].column, e->cols[i].column);
	rv |= buf_printf(&b, "source_updated_at = excluded.source_updated_at, raw = excluded.raw, "
	    "synced_at = now(), deleted_at = NULL "
	    "WHERE (t.source_updated_at IS NULL OR excluded.source_updated_at IS NULL "
	    "OR t.source_updated_at <= excluded.source_updated_at) "
	    "AND (t.raw IS DISTINCT FROM excluded.raw OR t.deleted_at IS NOT NULL) RETURNING ");
	for (size_t k = 0; k < x->nk; k++)
		rv |= buf_printf(&b, "%st.%s", k ? ", " : "", e->cols[x->kidx[k]].column);
	rv |= buf_printf(&b, ") INSERT INTO %s SELECT * FROM up", ap);
	x->upsert = steal(&b);

	/* Soft delete by key; an older delete never hides a newer row. */
	buf_init(&b, 1u << 20);
	rv |= buf_printf(&b, "UPDATE %s.%s AS t SET deleted_at = now(), synced_at = now(), "
	    "source_updated_at = GREATEST(t.source_updated_at, s.ver) FROM %s s WHERE s.del", schema,
	    e->name, st);
	for (size_t k = 0; k < x->nk; k++)
		rv |= buf_printf(&b, " AND t.%s = s.%s", e->cols[x->kidx[k]].column,
		    e->cols[x->kidx[k]].column);
	rv |= buf_printf(&b, " AND t.deleted_at IS NULL AND (s.ver IS NULL OR t.source_updated_at IS NULL "
	    "OR t.source_updated_at <= s.ver)");
	x->softdel = steal(&b);

	/* Keys seen by a full run ($1 run id, $2 entity). */
	buf_init(&b, 1u << 20);
	rv |= buf_printf(&b, "INSERT INTO crmsync.run_seen (run_id, entity, key) SELECT $1, $2, %s "
	    "FROM %s s WHERE NOT s.del ON CONFLICT DO NOTHING",
	    apply_key_expr(e, "s", keyexpr, sizeof(keyexpr)), st);
	x->seen = steal(&b);

	for (size_t c = 0; c < e->nchildren; c++) {
		const struct cat_child *ch = &e->children[c];
		const char *dval = catalog_discriminator(ch, dcol, sizeof(dcol));

		buf_init(&b, 1u << 20);
		rv |= buf_printf(&b, "COPY sc_%s_%s_%zu FROM STDIN", schema, e->name, c);
		x->child_copy[c] = steal(&b);

		buf_init(&b, 1u << 20);
		rv |= buf_printf(&b, "DELETE FROM %s.%s AS c USING %s a WHERE ", schema, ch->table, ap);
		for (size_t k = 0; k < x->nk; k++) {
			rv |= catalog_child_parent_col(e, ch, k, pcol, sizeof(pcol));
			rv |= buf_printf(&b, "%sc.%s = a.%s", k ? " AND " : "", pcol,
			    e->cols[x->kidx[k]].column);
		}
		if (dval != NULL)
			rv |= buf_printf(&b, " AND c.%s = $1", dcol);
		x->child_del[c] = steal(&b);

		buf_init(&b, 1u << 20);
		rv |= buf_printf(&b, "INSERT INTO %s.%s (", schema, ch->table);
		if (dval != NULL)
			rv |= buf_printf(&b, "%s, ", dcol);
		for (size_t k = 0; k < x->nk; k++) {
			rv |= catalog_child_parent_col(e, ch, k, pcol, sizeof(pcol));
			rv |= buf_printf(&b, "%s, ", pcol);
		}
		rv |= buf_printf(&b, "idx");
		for (size_t i = 0; i < ch->ncols; i++)
			rv |= buf_printf(&b, ", %s", ch->cols[i].column);
		rv |= buf_printf(&b, ") SELECT %s", dval != NULL ? "$1, " : "");
		for (size_t k = 0; k < x->nk; k++)
			rv |= buf_printf(&b, "s.%s, ", e->cols[x->kidx[k]].column);
		rv |= buf_printf(&b, "s.idx");
		for (size_t i = 0; i < ch->ncols; i++)
			rv |= buf_printf(&b, ", s.%s", ch->cols[i].column);
		rv |= buf_printf(&b, " FROM sc_%s_%s_%zu s JOIN %s a USING (", schema, e->name, c, ap);
		for (size_t k = 0; k < x->nk; k++)
			rv |= buf_printf(&b, "%s%s", k ? ", " : "", e->cols[x->kidx[k]].column);
		rv |= buf_printf(&b, ")");
		x->child_ins[c] = steal(&b);
	}
	if (rv != 0 || x->create == NULL || x->upsert == NULL)
		return CS_ENOMEM;
	return 0;
}

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

/* After a reconnect the temp tables are gone. */
void apply_reset_conn(struct store *st);
void
apply_reset_conn(struct store *st)
{
	for (size_t i = 0; i < st->nesql; i++)
		st->esql[i].created = 0;
}

static struct entity_sql *
esql_find(struct store *st, int crm, const char *entity)
{
	for (size_t i = 0; i < st->nesql; i++)
		if ((int)st->esql[i].e->crm == crm && strcmp(st->esql[i].e->name, entity) == 0)
			return &st->esql[i];
	return NULL;
}

/* Append a value in COPY text format. */
static int
copy_value(struct buf *b, const char *v, int isnull)
{
	const char *p = v, *start = v;
	int rv = 0;

	if (isnull)
		return buf_add(b, "\\N", 2);
	for (; *p != '\0'; p++) {
		char esc = 0;
		switch (*p) {
		case '\\':	esc = '\\'; break;
		case '\t':	esc = 't'; break;
		case '\n':	esc = 'n'; break;
		case '\r':	esc = 'r'; break;
		default:	continue;
		}
		rv |= buf_add(b, start, (size_t)(p - start));
		rv |= buf_addc(b, '\\');
		rv |= buf_addc(b, esc);
		start = p + 1;
	}
	rv |= buf_add(b, start, (size_t)(p - start));
	return rv;
}

static int
copy_bytes(struct buf *b, const ProtobufCBinaryData *d)
{
	const char *s = (const char *)d->data;
	size_t start = 0;
	int rv = 0;

	for (size_t i = 0; i < d->len; i++) {
		char esc = 0;
		switch (s[i]) {
		case '\\':	esc = '\\'; break;
		case '\t':	esc = 't'; break;
		case '\n':	esc = 'n'; break;
		case '\r':	esc = 'r'; break;
		case '\0':	return CS_EINVAL;
		default:	continue;
		}
		rv |= buf_add(b, s + start, i - start);
		rv |= buf_addc(b, '\\');
		rv |= buf_addc(b, esc);
		start = i + 1;
	}
	rv |= buf_add(b, s + start, d->len - start);
	return rv;
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

/* Send b as COPY data for sql. */
static int
copy_send(struct store *st, const char *sql, struct buf *b, char *err, size_t errlen)
{
	PGresult *r = PQexec(st->pg, sql);
	int rv = 0;

	if (r == NULL || PQresultStatus(r) != PGRES_COPY_IN) {
		rv = db_classify(st, r);
		snprintf(err, errlen, "%s", db_errmsg(st, r));
		PQclear(r);
		return rv;
	}
	PQclear(r);
	for (size_t off = 0; off < b->len && rv == 0;) {
		size_t n = b->len - off > (1u << 20) ? (1u << 20) : b->len - off;
		if (PQputCopyData(st->pg, b->data + off, (int)n) != 1)
			rv = CS_EDBCONN;
		off += n;
	}
	if (PQputCopyEnd(st->pg, rv == 0 ? NULL : "aborted") != 1)
		rv = CS_EDBCONN;
	while ((r = PQgetResult(st->pg)) != NULL) {
		if (PQresultStatus(r) != PGRES_COMMAND_OK && rv == 0) {
			rv = db_classify(st, r);
			snprintf(err, errlen, "%s", db_errmsg(st, r));
		}
		PQclear(r);
	}
	if (rv == CS_EDBCONN && err[0] == '\0')
		snprintf(err, errlen, "%s", db_errmsg(st, NULL));
	return rv;
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

int
apply_batch(struct store *st, const Crmsync__RecordBatch *b, uint32_t *applied,
    uint32_t *unchanged, char *err, size_t errlen)
{
	struct entity_sql *x = esql_find(st, b->crm, b->entity);
	unsigned char *keep = NULL;
	char ver[64], run[24];
	long n_up = 0, n_del = 0, n_live = 0;
	int rv;

	*applied = *unchanged = 0;
	err[0] = '\0';
	if (x == NULL) {
		snprintf(err, errlen, "unknown entity %s for crm %s", b->entity, runs_crm_name(b->crm));
		return CS_EUNKNOWN_ENTITY;
	}
	if (b->n_records > (size_t)st->conf.batch_max_rows) {
		snprintf(err, errlen, "batch has %zu records, limit %lld", b->n_records,
		    (long long)st->conf.batch_max_rows);
		return CS_ETOOBIG;
	}
	if ((keep = calloc(b->n_records + 1, 1)) == NULL)
		return CS_ENOMEM;
	if ((rv = dedupe(x, b, keep, err, errlen)) != 0)
		goto out;

	/* Stage rows in COPY text format: del, ver, columns..., raw. */
	buf_reset(&st->copy);
	for (size_t i = 0; i < b->n_records && rv == 0; i++) {
		const Crmsync__Record *r = b->records[i];
		if (!keep[i])
			continue;
		if (r->deleted)
			n_del++;
		else
			n_live++;
		rv |= buf_add(&st->copy, r->deleted ? "t\t" : "f\t", 2);
		if (r->source_updated_at_us != 0) {
			fmt_us(ver, sizeof(ver), r->source_updated_at_us);
			rv |= buf_addstr(&st->copy, ver);
		} else {
			rv |= buf_add(&st->copy, "\\N", 2);
		}
		for (size_t c = 0; c < r->n_values && rv == 0; c++) {
			rv |= buf_addc(&st->copy, '\t');
			rv |= copy_value(&st->copy, r->values[c], norm_isnull(&r->null_mask, c));
		}
		rv |= buf_addc(&st->copy, '\t');
		if (r->raw_json.len == 0)
			rv |= buf_add(&st->copy, r->deleted ? "{}" : "null", r->deleted ? 2 : 4);
		else if (copy_bytes(&st->copy, &r->raw_json) != 0) {
			snprintf(err, errlen, "record %zu: raw JSON holds a NUL byte", i);
			rv = CS_EINVAL;
			goto out;
		}
		rv |= buf_addc(&st->copy, '\n');
	}
	if (rv != 0) {
		snprintf(err, errlen, "batch too large to stage: %s", cs_strerror(rv));
		rv = CS_ETOOBIG;
		goto out;
	}

	if ((rv = db_exec(st, "BEGIN")) != 0) {
		snprintf(err, errlen, "BEGIN: %s", db_errmsg(st, NULL));
		goto out;
	}
	if (!x->created) {
		if ((rv = exec_count(st, x->create, 0, NULL, NULL, err, errlen)) != 0)
			goto fail;
		x->created = 1;
	}
	if ((rv = copy_send(st, x->copy, &st->copy, err, errlen)) != 0)
		goto fail;
	if (n_live > 0 && (rv = exec_count(st, x->upsert, 0, NULL, &n_up, err, errlen)) != 0)
		goto fail;
	if (n_del > 0) {
		long nd = 0;
		if ((rv = exec_count(st, x->softdel, 0, NULL, &nd, err, errlen)) != 0)
			goto fail;
		stat_add(&store_stats[ST_ROWS_DELETED], nd);
		n_up += nd;
	}

	/* Children of applied parents: replace them wholesale. */
	for (size_t c = 0; c < x->e->nchildren && n_up > 0; c++) {
		const struct cat_child *ch = &x->e->children[c];
		char dcol[64];
		const char *dval = catalog_discriminator(ch, dcol, sizeof(dcol));
		const char *dv[1] = { dval };
		size_t nrows = 0;

		buf_reset(&st->copy);
		for (size_t i = 0; i < b->n_records && rv == 0; i++) {
			const Crmsync__Record *r = b->records[i];
			int idx = 0;
			if (!keep[i] || r->deleted)
				continue;
			for (size_t k = 0; k < r->n_children && rv == 0; k++) {
				const Crmsync__ChildRow *cr = r->children[k];
				if (cr->child != c)
					continue;
				for (size_t q = 0; q < x->nk; q++) {
					rv |= copy_value(&st->copy, r->values[x->kidx[q]], 0);
					rv |= buf_addc(&st->copy, '\t');
				}
				rv |= buf_printf(&st->copy, "%d", idx++);
				for (size_t v = 0; v < cr->n_values; v++) {
					rv |= buf_addc(&st->copy, '\t');
					rv |= copy_value(&st->copy, cr->values[v], norm_isnull(&cr->null_mask, v));
				}
				rv |= buf_addc(&st->copy, '\n');
				nrows++;
			}
		}
		if (rv != 0) {
			snprintf(err, errlen, "child rows too large to stage");
			rv = CS_ETOOBIG;
			goto fail;
		}
		if ((rv = exec_count(st, x->child_del[c], dval ? 1 : 0, dv, NULL, err, errlen)) != 0)
			goto fail;
		if (nrows == 0)
			continue;
		if ((rv = copy_send(st, x->child_copy[c], &st->copy, err, errlen)) != 0)
			goto fail;
		if ((rv = exec_count(st, x->child_ins[c], dval ? 1 : 0, dv, NULL, err, errlen)) != 0)
			goto fail;
	}

	if (b->run_id != 0 && n_live > 0 && (x->e->flags & CE_FULL_DELETES)) {
		const char *v[2] = { run, x->e->name };
		snprintf(run, sizeof(run), "%lld", (long long)b->run_id);
		if ((rv = exec_count(st, x->seen, 2, v, NULL, err, errlen)) != 0)
			goto fail;
	}
	if (b->cursor_opt_case == CRMSYNC__RECORD_BATCH__CURSOR_OPT_CURSOR && b->cursor != NULL) {
		const char *v[3] = { runs_crm_name(b->crm), b->cursor->name, b->cursor->value };
		if ((rv = exec_count(st, "INSERT INTO crmsync.cursors (crm, name, value) VALUES ($1, $2, $3) "
		    "ON CONFLICT (crm, name) DO UPDATE SET value = excluded.value, updated_at = now()",
		    3, v, NULL, err, errlen)) != 0)
			goto fail;
	}
	*applied = (uint32_t)n_up;
	*unchanged = (uint32_t)(n_live + n_del - n_up > 0 ? n_live + n_del - n_up : 0);
	if (b->run_id != 0) {
		char a[24], u[24];
		const char *v[3] = { run, a, u };
		snprintf(run, sizeof(run), "%lld", (long long)b->run_id);
		snprintf(a, sizeof(a), "%u", *applied);
		snprintf(u, sizeof(u), "%u", *unchanged);
		if ((rv = exec_count(st, "UPDATE crmsync.sync_runs SET batches = batches + 1, "
		    "rows_written = rows_written + $2, rows_unchanged = rows_unchanged + $3 WHERE id = $1",
		    3, v, NULL, err, errlen)) != 0)
			goto fail;
	}
	if ((rv = db_exec(st, "COMMIT")) != 0) {
		snprintf(err, errlen, "COMMIT: %s", db_errmsg(st, NULL));
		goto fail;
	}
	goto out;
fail:
	db_rollback(st);
	*applied = *unchanged = 0;
out:
	free(keep);
	return rv;
}
