/*
 * rederive_sql.c - the SQL of one re-derivation job, built when the job starts: the keyset
 * read of its source table, the temp stage, the in-place UPDATE (or, for a rebuild, the
 * INSERT ... ON CONFLICT into the new table), child-row replacement and the job's position.
 * Identifiers come only from the catalogue and pg_catalog; values travel as COPY data or
 * parameters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "rederive.h"
#include "store.h"

static const char *
kname(const struct rederive *rd, size_t k)
{
	size_t n = 0;

	for (size_t i = 0; i < rd->e->ncols; i++)
		if ((rd->e->cols[i].flags & CF_KEY) && n++ == k)
			return rd->e->cols[i].column;
	return "";
}

static const char *
ktype(const struct rederive *rd, size_t k)
{
	size_t n = 0;

	for (size_t i = 0; i < rd->e->ncols; i++)
		if ((rd->e->cols[i].flags & CF_KEY) && n++ == k)
			return catalog_sql_type(rd->e->cols[i].type);
	return "text";
}

/* Which columns a re-derivation writes: not the key, not one reading a context value the
 * store does not know of (kept as stored, and said so); children likewise. */
static int
sql_columns_set(struct rederive *rd)
{
	const struct cat_entity *e = rd->e;
	const char *s = rd->schema;

	for (size_t i = 0; i < e->ncols; i++) {
		rd->set[i] = !(e->cols[i].flags & CF_KEY) && !rederive_ctx_missing(e, &e->cols[i]);
		if (!(e->cols[i].flags & CF_KEY) && !rd->set[i])
			log_warnx("rederive.column_kept", "entity=%s.%s column=%s reason=%s", s, e->name,
			    e->cols[i].column, lq("reads a context value the store does not know of"));
	}
	for (size_t c = 0; c < e->nchildren && rd->children; c++)
		for (size_t i = 0; i < e->children[c].ncols; i++)
			if (rederive_ctx_missing(e, &e->children[c].cols[i])) {
				log_warnx("rederive.children_kept", "entity=%s.%s table=%s reason=%s", s, e->name,
				    e->children[c].table, lq("reads a context value the store does not know of"));
				rd->children = 0;
			}
	return 0;
}

/* Read: the source's key, raw, xmin, hash, synced_at, deleted_at, "$name" columns;
 * the first page and the pages after a position. */
static int
sql_select(struct rederive *rd)
{
	const struct cat_entity *e = rd->e;
	const char *s = rd->schema;
	struct buf b;
	int rv = 0;

	for (int first = 1; first >= 0; first--) {
		buf_init(&b, 1u << 20);
		/* Every column qualified: an output column named like the key ("id::text" is
		 * "id") would otherwise order the rows as text (10 < 9). */
		rv |= buf_printf(&b, "SELECT ");
		for (size_t k = 0; k < rd->nk; k++)
			rv |= buf_printf(&b, "t.%s::text, ", rd->keycol[k]);
		rv |= buf_printf(&b, "t.raw::text, t.xmin::text, t.content_hash, t.synced_at::text, t.deleted_at::text");
		for (size_t i = 0; i < rd->nctx; i++)
			rv |= rd->ctxhave[i] ? buf_printf(&b, ", t.%s::text", e->cols[rd->ctxcol[i]].column) :
			    buf_printf(&b, ", NULL");
		rv |= buf_printf(&b, " FROM %s.%s AS t WHERE true", s, rd->source);
		int p = 2;
		if (!first) {
			rv |= buf_printf(&b, " AND (");
			for (size_t k = 0; k < rd->nk; k++)
				rv |= buf_printf(&b, "%st.%s", k ? ", " : "", rd->keycol[k]);
			rv |= buf_printf(&b, ") > (");
			for (size_t k = 0; k < rd->nk; k++)
				rv |= buf_printf(&b, "%s$%d::%s", k ? ", " : "", p++, rd->keytype[k]);
			rv |= buf_printf(&b, ")");
		}
		if (rd->since[0])
			rv |= buf_printf(&b, " AND t.synced_at < $%d::timestamptz", p);
		rv |= buf_printf(&b, " ORDER BY ");
		for (size_t k = 0; k < rd->nk; k++)
			rv |= buf_printf(&b, "%st.%s", k ? ", " : "", rd->keycol[k]);
		rv |= buf_printf(&b, " LIMIT $1::int");
		if (first)
			rd->sel_first = buf_steal(&b, NULL);
		else
			rd->sel_next = buf_steal(&b, NULL);
	}
	return rv;
}

/* Temp tables: the stage (stored key, derived columns...), the keys written, children;
 * and the COPY into the stage. */
static int
sql_temp_tables(struct rederive *rd)
{
	const struct cat_entity *e = rd->e;
	const char *s = rd->schema;
	size_t nk = catalog_nkeys(e);
	struct buf b;
	int rv = 0;

	buf_init(&b, 1u << 20);
	rv |= buf_printf(&b, "CREATE TEMP TABLE IF NOT EXISTS rs_%s_%s (", s, e->name);
	for (size_t k = 0; k < nk; k++)
		rv |= buf_printf(&b, "o_%s %s, ", kname(rd, k), ktype(rd, k));
	for (size_t i = 0; i < e->ncols; i++)
		rv |= buf_printf(&b, "%s %s, ", e->cols[i].column, catalog_sql_type(e->cols[i].type));
	rv |= buf_printf(&b, "ver timestamptz, h bigint, xm xid, raw text, syn timestamptz, "
	    "del timestamptz) ON COMMIT DELETE ROWS;\nCREATE TEMP TABLE IF NOT EXISTS ra_%s_%s (", s, e->name);
	for (size_t k = 0; k < nk; k++)
		rv |= buf_printf(&b, "%s%s %s", k ? ", " : "", kname(rd, k), ktype(rd, k));
	rv |= buf_printf(&b, ") ON COMMIT DELETE ROWS;\n");
	for (size_t c = 0; c < e->nchildren; c++) {
		const struct cat_child *ch = &e->children[c];
		rv |= buf_printf(&b, "CREATE TEMP TABLE IF NOT EXISTS rc_%s_%s_%zu (", s, e->name, c);
		for (size_t k = 0; k < nk; k++)
			rv |= buf_printf(&b, "%s %s, ", kname(rd, k), ktype(rd, k));
		rv |= buf_printf(&b, "idx integer");
		for (size_t i = 0; i < ch->ncols; i++)
			rv |= buf_printf(&b, ", %s %s", ch->cols[i].column, catalog_sql_type(ch->cols[i].type));
		rv |= buf_printf(&b, ") ON COMMIT DELETE ROWS;\n");
	}
	rd->create = buf_steal(&b, NULL);

	buf_init(&b, 1u << 20);
	rv |= buf_printf(&b, "COPY rs_%s_%s FROM STDIN", s, e->name);
	rd->stage_copy = buf_steal(&b, NULL);
	return rv;
}

/* The write: an update in place of the row read (same key, same xmin), or, when the key
 * changed, an insert under the new key where no newer row holds it. */
static int
sql_apply(struct rederive *rd)
{
	const struct cat_entity *e = rd->e;
	const char *s = rd->schema;
	size_t nk = catalog_nkeys(e);
	struct buf b;
	int rv = 0;

	buf_init(&b, 1u << 20);
	if (!rd->rebuild) {
		rv |= buf_printf(&b, "WITH up AS (UPDATE %s.%s AS t SET ", s, e->name);
		for (size_t i = 0; i < e->ncols; i++)
			if (rd->set[i])
				rv |= buf_printf(&b, "%s = s.%s, ", e->cols[i].column, e->cols[i].column);
		rv |= buf_printf(&b, "source_updated_at = s.ver, content_hash = s.h FROM rs_%s_%s s WHERE ",
		    s, e->name);
		for (size_t k = 0; k < nk; k++)
			rv |= buf_printf(&b, "t.%s = s.o_%s AND t.%s = s.%s AND ", kname(rd, k), kname(rd, k),
			    kname(rd, k), kname(rd, k));
		rv |= buf_printf(&b, "t.xmin = s.xm RETURNING ");
	} else {
		rv |= buf_printf(&b, "WITH up AS (INSERT INTO %s.%s AS t (", s, e->name);
		for (size_t i = 0; i < e->ncols; i++)
			rv |= buf_printf(&b, "%s, ", e->cols[i].column);
		rv |= buf_printf(&b, "source_updated_at, raw, content_hash, synced_at, deleted_at) SELECT ");
		for (size_t i = 0; i < e->ncols; i++)
			rv |= buf_printf(&b, "s.%s, ", e->cols[i].column);
		rv |= buf_printf(&b, "s.ver, s.raw::jsonb, s.h, s.syn, s.del FROM rs_%s_%s s ON CONFLICT (",
		    s, e->name);
		for (size_t k = 0; k < nk; k++)
			rv |= buf_printf(&b, "%s%s", k ? ", " : "", kname(rd, k));
		rv |= buf_printf(&b, ") DO UPDATE SET ");
		for (size_t i = 0; i < e->ncols; i++)
			if (!(e->cols[i].flags & CF_KEY))
				rv |= buf_printf(&b, "%s = excluded.%s, ", e->cols[i].column, e->cols[i].column);
		rv |= buf_printf(&b, "source_updated_at = excluded.source_updated_at, raw = excluded.raw, "
		    "content_hash = excluded.content_hash, synced_at = excluded.synced_at, "
		    "deleted_at = excluded.deleted_at WHERE t.source_updated_at IS NULL OR "
		    "excluded.source_updated_at IS NULL OR t.source_updated_at <= excluded.source_updated_at "
		    "RETURNING ");
	}
	for (size_t k = 0; k < nk; k++)
		rv |= buf_printf(&b, "%st.%s", k ? ", " : "", kname(rd, k));
	rv |= buf_printf(&b, ") INSERT INTO ra_%s_%s SELECT * FROM up", s, e->name);
	rd->apply = buf_steal(&b, NULL);
	return rv;
}

/* Per child table: its COPY, the delete of the written parents' rows and the insert. */
static int
sql_children(struct rederive *rd)
{
	const struct cat_entity *e = rd->e;
	const char *s = rd->schema;
	size_t nk = catalog_nkeys(e);
	struct buf b;
	char pcol[64], dcol[64];
	int rv = 0;

	for (size_t c = 0; c < e->nchildren; c++) {
		const struct cat_child *ch = &e->children[c];
		const char *dval = catalog_discriminator(ch, dcol, sizeof(dcol));

		buf_init(&b, 1u << 20);
		rv |= buf_printf(&b, "COPY rc_%s_%s_%zu FROM STDIN", s, e->name, c);
		rd->ccopy[c] = buf_steal(&b, NULL);

		buf_init(&b, 1u << 20);
		rv |= buf_printf(&b, "DELETE FROM %s.%s AS c USING ra_%s_%s a WHERE ", s, ch->table, s, e->name);
		for (size_t k = 0; k < nk; k++) {
			rv |= catalog_child_parent_col(e, ch, k, pcol, sizeof(pcol));
			rv |= buf_printf(&b, "%sc.%s = a.%s", k ? " AND " : "", pcol, kname(rd, k));
		}
		if (dval != NULL)
			rv |= buf_printf(&b, " AND c.%s = $1", dcol);
		rd->cdel[c] = buf_steal(&b, NULL);

		buf_init(&b, 1u << 20);
		rv |= buf_printf(&b, "INSERT INTO %s.%s (", s, ch->table);
		if (dval != NULL)
			rv |= buf_printf(&b, "%s, ", dcol);
		for (size_t k = 0; k < nk; k++) {
			rv |= catalog_child_parent_col(e, ch, k, pcol, sizeof(pcol));
			rv |= buf_printf(&b, "%s, ", pcol);
		}
		rv |= buf_printf(&b, "idx");
		for (size_t i = 0; i < ch->ncols; i++)
			rv |= buf_printf(&b, ", %s", ch->cols[i].column);
		rv |= buf_printf(&b, ") SELECT %s", dval != NULL ? "$1, " : "");
		for (size_t k = 0; k < nk; k++)
			rv |= buf_printf(&b, "s.%s, ", kname(rd, k));
		rv |= buf_printf(&b, "s.idx");
		for (size_t i = 0; i < ch->ncols; i++)
			rv |= buf_printf(&b, ", s.%s", ch->cols[i].column);
		rv |= buf_printf(&b, " FROM rc_%s_%s_%zu s JOIN ra_%s_%s a USING (", s, e->name, c, s, e->name);
		for (size_t k = 0; k < nk; k++)
			rv |= buf_printf(&b, "%s%s", k ? ", " : "", kname(rd, k));
		rv |= buf_printf(&b, ")");
		rd->cins[c] = buf_steal(&b, NULL);
	}
	return rv;
}

/* The job's position and counts, in the step's transaction. */
static int
sql_progress(struct rederive *rd)
{
	struct buf b;
	int rv = 0;

	buf_init(&b, 1u << 20);
	rv |= buf_printf(&b, "UPDATE crmsync.rederive_jobs SET rows_read = rows_read + $2::bigint, "
	    "rows_written = rows_written + $3::bigint, rows_merged = rows_merged + $4::bigint, "
	    "rows_skipped = rows_skipped + $5::bigint, rows_unreadable = rows_unreadable + $6::bigint, "
	    "updated_at = now(), last_key = ARRAY[");
	for (size_t k = 0; k < rd->nk; k++)
		rv |= buf_printf(&b, "%s$%zu", k ? ", " : "", 7 + k);
	rv |= buf_printf(&b, "]::text[] WHERE id = $1::bigint");
	rd->progress = buf_steal(&b, NULL);
	return rv;
}

/* Every statement of the loaded job, from the catalogue and the source table's key. */
int
rederive_sql(struct rederive *rd)
{
	const struct cat_entity *e = rd->e;
	size_t nc = e->nchildren + 1;
	int rv;

	rd->set = calloc(e->ncols + 1, 1);
	rd->ccopy = calloc(nc, sizeof(char *));
	rd->cdel = calloc(nc, sizeof(char *));
	rd->cins = calloc(nc, sizeof(char *));
	if (rd->set == NULL || rd->ccopy == NULL || rd->cdel == NULL || rd->cins == NULL)
		return CS_ENOMEM;
	rv = sql_columns_set(rd);
	rv |= sql_select(rd);
	rv |= sql_temp_tables(rd);
	rv |= sql_apply(rd);
	rv |= sql_children(rd);
	rv |= sql_progress(rd);
	if (rv != 0 || rd->sel_first == NULL || rd->sel_next == NULL || rd->create == NULL ||
	    rd->stage_copy == NULL || rd->apply == NULL || rd->progress == NULL)
		return CS_ENOMEM;
	for (size_t c = 0; c < e->nchildren; c++)
		if (rd->ccopy[c] == NULL || rd->cdel[c] == NULL || rd->cins[c] == NULL)
			return CS_ENOMEM;
	return 0;
}

