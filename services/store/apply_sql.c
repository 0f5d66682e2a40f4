/*
 * apply_sql.c - the SQL of every catalogue entity, built once at start-up.
 *
 * Identifiers come only from the compiled-in catalogue; values travel as COPY data or as
 * parameters (key arrays), never inside SQL text. Per entity:
 *   lookup   which of the batch's keys the table has, with their content_hash;
 *   direct   COPY of rows the table does not have yet, straight into it (and children);
 *   staged   COPY into a temp stage, then one INSERT ... ON CONFLICT for rows that exist
 *            and differ (version-checked), soft deletes, child replacement;
 *   seen     the keys a full run saw, one text[] row per batch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "buf.h"
#include "errors.h"
#include "store.h"

void
esql_free(struct entity_sql *x)
{
	free(x->lookup);
	free(x->seen);
	free(x->written);
	free(x->direct);
	free(x->create);
	free(x->copy);
	free(x->upsert);
	free(x->softdel);
	for (size_t c = 0; x->e != NULL && c < x->e->nchildren; c++) {
		if (x->child_direct != NULL)
			free(x->child_direct[c]);
		if (x->child_copy != NULL)
			free(x->child_copy[c]);
		if (x->child_del != NULL)
			free(x->child_del[c]);
		if (x->child_ins != NULL)
			free(x->child_ins[c]);
	}
	free(x->child_direct);
	free(x->child_copy);
	free(x->child_del);
	free(x->child_ins);
	free(x->kidx);
	memset(x, 0, sizeof(*x));
}

/*
 * A key as one text: "a.k1::text" or "a.k1::text || '|' || a.k2::text". The run's seen
 * keys and the table's keys are compared as this text, so both sides are built here:
 * columns named as in the catalogue, or positional ("k0", "k1"... of an unnest) when
 * positional is set.
 */
static const char *
key_expr(const struct cat_entity *e, const char *alias, int positional, char *buf, size_t cap)
{
	size_t o = 0, k = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < e->ncols; i++) {
		if (!(e->cols[i].flags & CF_KEY))
			continue;
		if (positional)
			o += (size_t)snprintf(buf + o, o < cap ? cap - o : 0, "%s%s.k%zu::text",
			    k ? " || '|' || " : "", alias, k);
		else
			o += (size_t)snprintf(buf + o, o < cap ? cap - o : 0, "%s%s.%s::text",
			    k ? " || '|' || " : "", alias, e->cols[i].column);
		k++;
	}
	return o < cap ? buf : NULL;
}

const char *
apply_key_expr(const struct cat_entity *e, const char *alias, char *buf, size_t cap)
{
	return key_expr(e, alias, 0, buf, cap);
}

static const struct cat_col *
kcol(const struct entity_sql *x, size_t k)
{
	return &x->e->cols[x->kidx[k]];
}

/* The key columns, comma-separated, each after prefix and, when typed, with its SQL type. */
static int
key_cols(struct buf *b, const struct entity_sql *x, const char *prefix, int typed)
{
	int rv = 0;

	for (size_t k = 0; k < x->nk; k++)
		rv |= buf_printf(b, "%s%s%s%s%s", k ? ", " : "", prefix, kcol(x, k)->column,
		    typed ? " " : "", typed ? catalog_sql_type(kcol(x, k)->type) : "");
	return rv;
}

/* "t.k1 = u.k0 AND t.k2 = u.k1": the table's keys against an unnest_keys row. */
static int
key_join_unnest(struct buf *b, const struct entity_sql *x)
{
	int rv = 0;

	for (size_t k = 0; k < x->nk; k++)
		rv |= buf_printf(b, "%st.%s = u.k%zu", k ? " AND " : "", kcol(x, k)->column, k);
	return rv;
}

/* "unnest($p::t1[], $p+1::t2[]) AS u(k1, k2...)" (plus "WITH ORDINALITY ... , i"). */
static int
unnest_keys(struct buf *b, const struct entity_sql *x, int first_param, int ordinality)
{
	int rv = buf_printf(b, "unnest(");

	for (size_t k = 0; k < x->nk; k++)
		rv |= buf_printf(b, "%s$%d::%s[]", k ? ", " : "", first_param + (int)k,
		    catalog_sql_type(kcol(x, k)->type));
	rv |= buf_printf(b, ")%s AS u(", ordinality ? " WITH ORDINALITY" : "");
	for (size_t k = 0; k < x->nk; k++)
		rv |= buf_printf(b, "%sk%zu", k ? ", " : "", k);
	rv |= buf_printf(b, "%s)", ordinality ? ", i" : "");
	return rv;
}

/* "[discriminator, ]parent key..., idx, columns..." of child table ch. */
static int
child_columns(struct buf *b, const struct entity_sql *x, const struct cat_child *ch)
{
	char pcol[64], dcol[64];
	int rv = 0;

	if (catalog_discriminator(ch, dcol, sizeof(dcol)) != NULL)
		rv |= buf_printf(b, "%s, ", dcol);
	for (size_t k = 0; k < x->nk; k++) {
		rv |= catalog_child_parent_col(x->e, ch, k, pcol, sizeof(pcol));
		rv |= buf_printf(b, "%s, ", pcol);
	}
	rv |= buf_printf(b, "idx");
	for (size_t i = 0; i < ch->ncols; i++)
		rv |= buf_printf(b, ", %s", ch->cols[i].column);
	return rv;
}

static int
build_lookup_direct_seen(struct entity_sql *x, struct buf *b)
{
	const struct cat_entity *e = x->e;
	char keyexpr[512];
	int rv = 0;

	/* Which keys exist: ordinal of the key in the arrays, stored hash, soft-deleted. */
	buf_init(b, 1u << 20);
	rv |= buf_printf(b, "SELECT u.i, t.content_hash, t.deleted_at IS NOT NULL FROM ");
	rv |= unnest_keys(b, x, 1, 1);
	rv |= buf_printf(b, " JOIN %s.%s t ON ", x->schema, e->name);
	rv |= key_join_unnest(b, x);
	x->lookup = buf_steal(b, NULL);

	/* The keys a full run saw, rendered by PostgreSQL the way runs.c renders the table's. */
	buf_init(b, 1u << 20);
	rv |= buf_printf(b, "INSERT INTO crmsync.run_seen (run_id, entity, keys) SELECT $1, $2, "
	    "array_agg(%s) FROM ", key_expr(e, "u", 1, keyexpr, sizeof(keyexpr)));
	rv |= unnest_keys(b, x, 3, 0);
	x->seen = buf_steal(b, NULL);

	/* Rows this transaction wrote carry its now(): the new, the changed, the soft-deleted. */
	buf_init(b, 1u << 20);
	rv |= buf_printf(b, "SELECT coalesce(array_agg(DISTINCT %s), '{}') FROM (SELECT * FROM ",
	    key_expr(e, "t", 0, keyexpr, sizeof(keyexpr)));
	rv |= unnest_keys(b, x, 1, 0);
	rv |= buf_printf(b, " UNION ALL SELECT * FROM ");
	rv |= unnest_keys(b, x, 1 + (int)x->nk, 0);
	rv |= buf_printf(b, ") u JOIN %s.%s t ON ", x->schema, e->name);
	rv |= key_join_unnest(b, x);
	rv |= buf_printf(b, " WHERE t.synced_at = now()");
	x->written = buf_steal(b, NULL);

	buf_init(b, 1u << 20);
	rv |= buf_printf(b, "COPY %s.%s (", x->schema, e->name);
	for (size_t i = 0; i < e->ncols; i++)
		rv |= buf_printf(b, "%s, ", e->cols[i].column);
	rv |= buf_printf(b, "source_updated_at, raw, content_hash) FROM STDIN");
	x->direct = buf_steal(b, NULL);

	for (size_t c = 0; c < e->nchildren; c++) {
		const struct cat_child *ch = &e->children[c];
		buf_init(b, 1u << 20);
		rv |= buf_printf(b, "COPY %s.%s (", x->schema, ch->table);
		rv |= child_columns(b, x, ch);
		rv |= buf_printf(b, ") FROM STDIN");
		x->child_direct[c] = buf_steal(b, NULL);
	}
	return rv;
}

/* The temp tables: stage (typed like the target, raw as text), applied keys, child stages. */
static int
staged_create(struct entity_sql *x, struct buf *b, const char *st, const char *ap)
{
	const struct cat_entity *e = x->e;
	int rv = 0;

	buf_init(b, 1u << 20);
	rv |= buf_printf(b, "CREATE TEMP TABLE IF NOT EXISTS %s (del boolean, ver timestamptz", st);
	for (size_t i = 0; i < e->ncols; i++)
		rv |= buf_printf(b, ", %s %s", e->cols[i].column, catalog_sql_type(e->cols[i].type));
	rv |= buf_printf(b, ", raw text, h bigint) ON COMMIT DELETE ROWS;\n"
	    "CREATE TEMP TABLE IF NOT EXISTS %s (", ap);
	rv |= key_cols(b, x, "", 1);
	rv |= buf_printf(b, ") ON COMMIT DELETE ROWS;\n");
	for (size_t c = 0; c < e->nchildren; c++) {
		const struct cat_child *ch = &e->children[c];
		rv |= buf_printf(b, "CREATE TEMP TABLE IF NOT EXISTS sc_%s_%s_%zu (", x->schema, e->name, c);
		rv |= key_cols(b, x, "", 1);
		rv |= buf_printf(b, ", idx integer");
		for (size_t i = 0; i < ch->ncols; i++)
			rv |= buf_printf(b, ", %s %s", ch->cols[i].column, catalog_sql_type(ch->cols[i].type));
		rv |= buf_printf(b, ") ON COMMIT DELETE ROWS;\n");
	}
	x->create = buf_steal(b, NULL);
	return rv;
}

/* Rewrite only when not older and different; remember the keys written. */
static int
staged_upsert(struct entity_sql *x, struct buf *b, const char *st, const char *ap)
{
	const struct cat_entity *e = x->e;
	int rv = 0;

	buf_init(b, 1u << 20);
	rv |= buf_printf(b, "WITH up AS (INSERT INTO %s.%s AS t (", x->schema, e->name);
	for (size_t i = 0; i < e->ncols; i++)
		rv |= buf_printf(b, "%s, ", e->cols[i].column);
	rv |= buf_printf(b, "source_updated_at, raw, content_hash, synced_at, deleted_at) SELECT ");
	for (size_t i = 0; i < e->ncols; i++)
		rv |= buf_printf(b, "s.%s, ", e->cols[i].column);
	rv |= buf_printf(b, "s.ver, s.raw::jsonb, s.h, now(), NULL FROM %s s WHERE NOT s.del ON CONFLICT (", st);
	rv |= key_cols(b, x, "", 0);
	rv |= buf_printf(b, ") DO UPDATE SET ");
	for (size_t i = 0; i < e->ncols; i++)
		if (!(e->cols[i].flags & CF_KEY))
			rv |= buf_printf(b, "%s = excluded.%s, ", e->cols[i].column, e->cols[i].column);
	rv |= buf_printf(b, "source_updated_at = excluded.source_updated_at, raw = excluded.raw, "
	    "content_hash = excluded.content_hash, synced_at = now(), deleted_at = NULL "
	    "WHERE (t.source_updated_at IS NULL OR excluded.source_updated_at IS NULL "
	    "OR t.source_updated_at <= excluded.source_updated_at) "
	    "AND (t.content_hash IS DISTINCT FROM excluded.content_hash OR t.deleted_at IS NOT NULL) "
	    "RETURNING ");
	rv |= key_cols(b, x, "t.", 0);
	rv |= buf_printf(b, ") INSERT INTO %s SELECT * FROM up", ap);
	x->upsert = buf_steal(b, NULL);
	return rv;
}

/* Soft delete by key; an older delete never hides a newer row. */
static int
staged_softdel(struct entity_sql *x, struct buf *b, const char *st)
{
	int rv = 0;

	buf_init(b, 1u << 20);
	rv |= buf_printf(b, "UPDATE %s.%s AS t SET deleted_at = now(), synced_at = now(), "
	    "source_updated_at = GREATEST(t.source_updated_at, s.ver) FROM %s s WHERE s.del", x->schema,
	    x->e->name, st);
	for (size_t k = 0; k < x->nk; k++)
		rv |= buf_printf(b, " AND t.%s = s.%s", kcol(x, k)->column, kcol(x, k)->column);
	rv |= buf_printf(b, " AND t.deleted_at IS NULL AND (s.ver IS NULL OR t.source_updated_at IS NULL "
	    "OR t.source_updated_at <= s.ver)");
	x->softdel = buf_steal(b, NULL);
	return rv;
}

/* Child table c: COPY into its stage, delete the applied parents' rows, insert the stage's. */
static int
staged_child(struct entity_sql *x, struct buf *b, size_t c, const char *ap)
{
	const struct cat_entity *e = x->e;
	const char *schema = x->schema;
	const struct cat_child *ch = &e->children[c];
	char pcol[64], dcol[64];
	const char *dval = catalog_discriminator(ch, dcol, sizeof(dcol));
	int rv = 0;

	buf_init(b, 1u << 20);
	rv |= buf_printf(b, "COPY sc_%s_%s_%zu FROM STDIN", schema, e->name, c);
	x->child_copy[c] = buf_steal(b, NULL);

	buf_init(b, 1u << 20);
	rv |= buf_printf(b, "DELETE FROM %s.%s AS c USING %s a WHERE ", schema, ch->table, ap);
	for (size_t k = 0; k < x->nk; k++) {
		rv |= catalog_child_parent_col(e, ch, k, pcol, sizeof(pcol));
		rv |= buf_printf(b, "%sc.%s = a.%s", k ? " AND " : "", pcol, kcol(x, k)->column);
	}
	if (dval != NULL)
		rv |= buf_printf(b, " AND c.%s = $1", dcol);
	x->child_del[c] = buf_steal(b, NULL);

	buf_init(b, 1u << 20);
	rv |= buf_printf(b, "INSERT INTO %s.%s (", schema, ch->table);
	rv |= child_columns(b, x, ch);
	rv |= buf_printf(b, ") SELECT %s", dval != NULL ? "$1, " : "");
	for (size_t k = 0; k < x->nk; k++)
		rv |= buf_printf(b, "s.%s, ", kcol(x, k)->column);
	rv |= buf_printf(b, "s.idx");
	for (size_t i = 0; i < ch->ncols; i++)
		rv |= buf_printf(b, ", s.%s", ch->cols[i].column);
	rv |= buf_printf(b, " FROM sc_%s_%s_%zu s JOIN %s a USING (", schema, e->name, c, ap);
	rv |= key_cols(b, x, "", 0);
	rv |= buf_printf(b, ")");
	x->child_ins[c] = buf_steal(b, NULL);
	return rv;
}

static int
build_staged(struct entity_sql *x, struct buf *b)
{
	char st[96], ap[96];
	int rv = 0;

	snprintf(st, sizeof(st), "st_%s_%s", x->schema, x->e->name);
	snprintf(ap, sizeof(ap), "ap_%s_%s", x->schema, x->e->name);
	rv |= staged_create(x, b, st, ap);
	buf_init(b, 1u << 20);
	rv |= buf_printf(b, "COPY %s FROM STDIN", st);
	x->copy = buf_steal(b, NULL);
	rv |= staged_upsert(x, b, st, ap);
	rv |= staged_softdel(x, b, st);
	for (size_t c = 0; c < x->e->nchildren; c++)
		rv |= staged_child(x, b, c, ap);
	return rv;
}

/* Build every statement for entity e. On failure the caller frees x with esql_free. */
int
esql_build(struct entity_sql *x, const struct cat_entity *e, const char *schema)
{
	size_t nc = e->nchildren + 1;
	struct buf b;
	int rv;

	memset(x, 0, sizeof(*x));
	x->e = e;
	x->schema = schema;
	x->an_known = -1;
	snprintf(x->name_lookup, sizeof(x->name_lookup), "lk_%s_%s", schema, e->name);
	snprintf(x->name_seen, sizeof(x->name_seen), "sn_%s_%s", schema, e->name);
	snprintf(x->name_written, sizeof(x->name_written), "wr_%s_%s", schema, e->name);
	x->nk = catalog_nkeys(e);
	if (x->nk == 0 || x->nk > APPLY_MAX_KEYS)
		return CS_EINVAL;
	x->kidx = calloc(x->nk, sizeof(*x->kidx));
	x->child_direct = calloc(nc, sizeof(char *));
	x->child_copy = calloc(nc, sizeof(char *));
	x->child_del = calloc(nc, sizeof(char *));
	x->child_ins = calloc(nc, sizeof(char *));
	if (x->kidx == NULL || x->child_direct == NULL || x->child_copy == NULL ||
	    x->child_del == NULL || x->child_ins == NULL)
		return CS_ENOMEM;
	for (size_t i = 0, k = 0; i < e->ncols; i++)
		if (e->cols[i].flags & CF_KEY)
			x->kidx[k++] = i;
	rv = build_lookup_direct_seen(x, &b);
	rv |= build_staged(x, &b);
	if (rv != 0 || x->lookup == NULL || x->seen == NULL || x->written == NULL || x->direct == NULL ||
	    x->create == NULL || x->copy == NULL || x->upsert == NULL || x->softdel == NULL)
		return CS_ENOMEM;
	for (size_t c = 0; c < e->nchildren; c++)
		if (x->child_direct[c] == NULL || x->child_copy[c] == NULL || x->child_del[c] == NULL ||
		    x->child_ins[c] == NULL)
			return CS_ENOMEM;
	return 0;
}
