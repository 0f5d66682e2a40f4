/*
 * evolve.c - schema evolution: the catalogue compiled into this store against what the
 * database holds, applied at start-up under the migration lock in one transaction.
 *
 * Every catalogue table (entity and child) is compared with pg_catalog: a missing table is
 * created; a missing column added; a column of another type converted (where the cast
 * fails, NULL: the re-derivation refills it); a column the catalogue no longer has is
 * dropped (its values are still in raw; one that other objects depend on, e.g. an analyst's
 * view, is kept, emptied and commented instead); a child table whose key differs is dropped
 * and created again; an entity table whose key differs is renamed aside and rebuilt from
 * its rows. Each step lands in crmsync.schema_steps and the log.
 *
 * Then each entity's derivation - its columns' JSON paths, types and flags, its children,
 * NORMALISE_VERSION and the context values the store supplies (the Hollihop time zone, the
 * amoCRM link field) - is compared with the one recorded in crmsync.catalog_state. An
 * entity whose derivation changed, or whose table changed, and which holds rows gets a
 * re-derivation job (rederive.c, in the background once the store serves). A database from
 * a release before this one has no record: each of its non-empty tables is re-derived once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "normalise.h"
#include "store.h"
#include "version.h"

#define EVOLVE_MAX_COLS	160	/* columns of one table, bookkeeping included */
#define EVOLVE_KEEP_NOTE "crmsync: no longer in the catalogue; kept because other objects depend on it; not maintained"

struct want_col {
	char		 name[64];
	const char	*type;		/* catalogue SQL type ("bigint", "timestamptz") */
};

struct want_table {
	const char		*name;
	struct want_col		 cols[EVOLVE_MAX_COLS];
	size_t			 ncols;
	char			 key[512];	/* "a,b" */
};

/* What the database holds, read once before any change. */
struct evo {
	struct store	*st;
	PGresult	*cols;	/* nspname, relname, attname, format_type, comment */
	PGresult	*keys;	/* nspname, relname, index name, "a,b" */
	PGresult	*types;	/* catalogue type, format_type */
	struct {
		const char	*table;
		int		 changed;	/* its parents' child rows need re-deriving */
	}		 done[512];	/* child tables already checked (shared ones) */
	size_t		 ndone;
};

/* Per entity: what evolution found it needs. */
struct need {
	int		 cols, children, rebuilt, created;
	char		 source[128];	/* table a rebuild reads from */
	char		 why[512];
};

static void
why_add(struct need *n, const char *fmt, const char *arg)
{
	size_t o = strlen(n->why);

	if (o + 4 < sizeof(n->why))
		snprintf(n->why + o, sizeof(n->why) - o, o ? "; " : "");
	o = strlen(n->why);
	if (o + 4 < sizeof(n->why))
		snprintf(n->why + o, sizeof(n->why) - o, fmt, arg);
}

int
evolve_step(struct store *st, const char *crm, const char *entity, const char *tbl,
    const char *action, const char *detail, int64_t rows, int64_t run_id)
{
	char r[24], run[24];
	const char *v[8] = { CRMSYNC_VERSION, crm, entity, tbl, action, detail, r, run };
	int rv;

	snprintf(r, sizeof(r), "%lld", (long long)rows);
	snprintf(run, sizeof(run), "%lld", (long long)run_id);
	if (rows < 0)
		v[6] = NULL;
	if (run_id <= 0)
		v[7] = NULL;
	rv = db_execp(st, "INSERT INTO crmsync.schema_steps (release, crm, entity, tbl, action, detail, "
	    "rows, run_id) VALUES ($1, $2, $3, $4, $5, $6, $7::bigint, $8::bigint)", 8, v, NULL);
	log_info("evolve.step", "table=%s action=%s rows=%lld detail=%s", tbl, action, (long long)rows,
	    lq(detail != NULL ? detail : ""));
	return rv;
}

/* PostgreSQL's own name of a catalogue type ("timestamptz" -> "timestamp with time zone"). */
static const char *
canon(const struct evo *ev, const char *type)
{
	for (int i = 0; i < PQntuples(ev->types); i++)
		if (strcmp(PQgetvalue(ev->types, i, 0), type) == 0)
			return PQgetvalue(ev->types, i, 1);
	return type;
}

static int
db_has_table(const struct evo *ev, const char *schema, const char *table)
{
	for (int i = 0; i < PQntuples(ev->cols); i++)
		if (strcmp(PQgetvalue(ev->cols, i, 1), table) == 0 &&
		    strcmp(PQgetvalue(ev->cols, i, 0), schema) == 0)
			return 1;
	return 0;
}

static int
db_col(const struct evo *ev, const char *schema, const char *table, const char *col)
{
	for (int i = 0; i < PQntuples(ev->cols); i++)
		if (strcmp(PQgetvalue(ev->cols, i, 2), col) == 0 &&
		    strcmp(PQgetvalue(ev->cols, i, 1), table) == 0 &&
		    strcmp(PQgetvalue(ev->cols, i, 0), schema) == 0)
			return i;
	return -1;
}

/* The primary key's columns "a,b" ("" when none); its index name into idx. */
static const char *
db_key(const struct evo *ev, const char *schema, const char *table, const char **idx)
{
	for (int i = 0; i < PQntuples(ev->keys); i++)
		if (strcmp(PQgetvalue(ev->keys, i, 1), table) == 0 &&
		    strcmp(PQgetvalue(ev->keys, i, 0), schema) == 0) {
			*idx = PQgetvalue(ev->keys, i, 2);
			return PQgetvalue(ev->keys, i, 3);
		}
	*idx = NULL;
	return "";
}

static int
want_add(struct want_table *w, const char *name, const char *type)
{
	if (w->ncols >= EVOLVE_MAX_COLS || strlen(name) >= sizeof(w->cols[0].name))
		return CS_ETOOBIG;
	snprintf(w->cols[w->ncols].name, sizeof(w->cols[0].name), "%s", name);
	w->cols[w->ncols++].type = type;
	return 0;
}

static int
key_add(struct want_table *w, const char *name)
{
	size_t o = strlen(w->key);

	if (o + strlen(name) + 2 > sizeof(w->key))
		return CS_ETOOBIG;
	snprintf(w->key + o, sizeof(w->key) - o, "%s%s", o ? "," : "", name);
	return 0;
}

/* The columns and key catalog_ddl() gives the entity table of e. */
static int
want_entity(struct want_table *w, const struct cat_entity *e)
{
	int rv = 0;

	memset(w, 0, sizeof(*w));
	w->name = e->name;
	for (size_t i = 0; i < e->ncols; i++) {
		rv |= want_add(w, e->cols[i].column, catalog_sql_type(e->cols[i].type));
		if (e->cols[i].flags & CF_KEY)
			rv |= key_add(w, e->cols[i].column);
	}
	rv |= want_add(w, "source_updated_at", "timestamptz");
	rv |= want_add(w, "synced_at", "timestamptz");
	rv |= want_add(w, "deleted_at", "timestamptz");
	rv |= want_add(w, "raw", "jsonb");
	rv |= want_add(w, "content_hash", "bigint");
	return rv;
}

/* The columns and key catalog_ddl() gives child table ch of e. */
static int
want_child(struct want_table *w, const struct cat_entity *e, const struct cat_child *ch)
{
	char pcol[64], dcol[64];
	int rv = 0;

	memset(w, 0, sizeof(*w));
	w->name = ch->table;
	if (catalog_discriminator(ch, dcol, sizeof(dcol)) != NULL) {
		rv |= want_add(w, dcol, "text");
		rv |= key_add(w, dcol);
	}
	for (size_t k = 0, i = 0; i < e->ncols; i++) {
		if (!(e->cols[i].flags & CF_KEY))
			continue;
		rv |= catalog_child_parent_col(e, ch, k++, pcol, sizeof(pcol));
		rv |= want_add(w, pcol, catalog_sql_type(e->cols[i].type));
		rv |= key_add(w, pcol);
	}
	rv |= want_add(w, "idx", "integer");
	rv |= key_add(w, "idx");
	for (size_t i = 0; i < ch->ncols; i++)
		rv |= want_add(w, ch->cols[i].column, catalog_sql_type(ch->cols[i].type));
	return rv;
}

/* Run one statement; on error log it with what and return the code. */
static int
exec_what(struct store *st, const char *sql, const char *what)
{
	PGresult *r = NULL;
	int rv = db_execp(st, sql, 0, NULL, &r);

	if (rv != 0)
		log_warnx("evolve.failed", "step=%s err=%s", lq(what), lq(db_errmsg(st, r)));
	PQclear(r);
	return rv;
}

/* First value of a one-row query as an integer (-1 on error). */
static int64_t
count_of(struct store *st, const char *sql)
{
	PGresult *r = NULL;
	int64_t n = -1;

	if (db_execp(st, sql, 0, NULL, &r) == 0 && PQntuples(r) == 1)
		n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return n;
}

/* Create the tables of e that are missing (catalog_ddl: IF NOT EXISTS for each). */
static int
create_tables(struct store *st, const struct cat_entity *e, const char *schema)
{
	struct buf b;
	int rv;

	buf_init(&b, 1u << 20);
	if ((rv = catalog_ddl(e, schema, &b)) == 0)
		rv = exec_what(st, b.data, "create tables");
	buf_free(&b);
	return rv;
}

/* Column c of table tbl takes its catalogue type: the cast where PostgreSQL has one that fits
 * every value, else emptied (and said so). */
static int
retype_column(struct evo *ev, const char *crm, const char *entity, const char *tbl,
    const struct want_col *c, const char *have)
{
	struct store *st = ev->st;
	char sql[1024], detail[512], step[768];
	PGresult *r = NULL;
	int rv, cast;

	snprintf(sql, sizeof(sql), "SELECT count(%s) FROM %s", c->name, tbl);
	int64_t n = count_of(st, sql);
	if ((rv = exec_what(st, "SAVEPOINT evolve_retype", "savepoint")) != 0)
		return rv;
	snprintf(sql, sizeof(sql), "ALTER TABLE %s ALTER COLUMN %s TYPE %s USING %s::%s", tbl,
	    c->name, c->type, c->name, c->type);
	if (!(cast = db_execp(st, sql, 0, NULL, &r) == 0)) {
		snprintf(detail, sizeof(detail), "%s", db_errmsg(st, r));
		detail[strcspn(detail, "\n")] = '\0';
	}
	PQclear(r);
	if (!cast) {
		if ((rv = exec_what(st, "ROLLBACK TO SAVEPOINT evolve_retype", "rollback")) != 0)
			return rv;
		snprintf(sql, sizeof(sql), "ALTER TABLE %s ALTER COLUMN %s TYPE %s USING NULL", tbl,
		    c->name, c->type);
		if ((rv = exec_what(st, sql, sql)) != 0)
			return rv;
		log_warnx("evolve.cast_failed", "table=%s column=%s err=%s", tbl, c->name, lq(detail));
	}
	snprintf(step, sizeof(step), "%s: %s -> %s (%s)", c->name, have, canon(ev, c->type),
	    cast ? "values cast" : "no cast fits every value, emptied");
	if ((rv = exec_what(st, "RELEASE SAVEPOINT evolve_retype", "release")) != 0)
		return rv;
	return evolve_step(st, crm, entity, tbl, "retype_column", step, n, 0);
}

/* Column q (quoted; name as read) the catalogue no longer has: dropped (its values stay in
 * raw), or, when something depends on it (an analyst's view), kept but emptied and commented. */
static int
drop_column(struct evo *ev, const char *crm, const char *entity, const char *tbl,
    const char *name, const char *q)
{
	struct store *st = ev->st;
	char sql[1024], detail[512];
	PGresult *r = NULL;
	int rv;

	snprintf(sql, sizeof(sql), "SELECT count(%s) FROM %s", q, tbl);
	int64_t n = count_of(st, sql);
	if ((rv = exec_what(st, "SAVEPOINT evolve_drop", "savepoint")) != 0)
		return rv;
	snprintf(sql, sizeof(sql), "ALTER TABLE %s DROP COLUMN %s", tbl, q);
	if (db_execp(st, sql, 0, NULL, &r) == 0) {
		PQclear(r);
		if ((rv = exec_what(st, "RELEASE SAVEPOINT evolve_drop", "release")) != 0)
			return rv;
		snprintf(detail, sizeof(detail), "%s (its values stay in raw)", name);
		return evolve_step(st, crm, entity, tbl, "drop_column", detail, n, 0);
	}
	snprintf(detail, sizeof(detail), "%s: kept, emptied and commented: %s", name, db_errmsg(st, r));
	detail[strcspn(detail, "\n")] = '\0';
	PQclear(r);
	log_warnx("evolve.column_kept", "table=%s column=%s", tbl, lq(name));
	if ((rv = exec_what(st, "ROLLBACK TO SAVEPOINT evolve_drop", "rollback")) != 0)
		return rv;
	snprintf(sql, sizeof(sql), "UPDATE %s SET %s = NULL WHERE %s IS NOT NULL", tbl, q, q);
	if ((rv = exec_what(st, sql, "empty a kept column")) != 0)
		return rv;
	snprintf(sql, sizeof(sql), "COMMENT ON COLUMN %s.%s IS '%s'", tbl, q, EVOLVE_KEEP_NOTE);
	if ((rv = exec_what(st, sql, "comment a kept column")) != 0)
		return rv;
	return evolve_step(st, crm, entity, tbl, "keep_column", detail, n, 0);
}

/* The columns of w's table the database has and the catalogue does not. */
static int
drop_removed(struct evo *ev, const struct cat_crm_desc *d, const char *entity,
    const struct want_table *w, const char *tbl)
{
	int rv = 0;

	for (int i = 0; i < PQntuples(ev->cols) && rv == 0; i++) {
		const char *name = PQgetvalue(ev->cols, i, 2);
		int known = 0;
		if (strcmp(PQgetvalue(ev->cols, i, 1), w->name) != 0 ||
		    strcmp(PQgetvalue(ev->cols, i, 0), d->schema) != 0)
			continue;
		for (size_t k = 0; k < w->ncols && !known; k++)
			known = strcmp(w->cols[k].name, name) == 0;
		if (known || strcmp(PQgetvalue(ev->cols, i, 4), EVOLVE_KEEP_NOTE) == 0)
			continue;
		char *q = PQescapeIdentifier(ev->st->pg, name, strlen(name));
		if (q == NULL)
			return CS_ENOMEM;
		rv = drop_column(ev, d->schema, entity, tbl, name, q);
		PQfreemem(q);
	}
	return rv;
}

/*
 * Columns of table w: add the missing, convert the retyped, drop (or keep) the removed.
 * *changed = 1 when a catalogue column was added or converted.
 */
static int
check_columns(struct evo *ev, const struct cat_crm_desc *d, const char *entity,
    const struct want_table *w, int *changed)
{
	char sql[1024], tbl[160];
	int rv = 0;

	snprintf(tbl, sizeof(tbl), "%s.%s", d->schema, w->name);
	for (size_t i = 0; i < w->ncols && rv == 0; i++) {
		const struct want_col *c = &w->cols[i];
		int at = db_col(ev, d->schema, w->name, c->name);

		if (at < 0) {
			snprintf(sql, sizeof(sql), "ALTER TABLE %s ADD COLUMN %s %s", tbl, c->name, c->type);
			if ((rv = exec_what(ev->st, sql, sql)) == 0)
				rv = evolve_step(ev->st, d->schema, entity, tbl, "add_column", c->name, -1, 0);
			*changed = 1;
			continue;
		}
		const char *have = PQgetvalue(ev->cols, at, 3);
		if (strcmp(have, canon(ev, c->type)) == 0)
			continue;
		rv = retype_column(ev, d->schema, entity, tbl, c, have);
		*changed = 1;
	}
	return rv == 0 ? drop_removed(ev, d, entity, w, tbl) : rv;
}

/* The entity table of e: created, rebuilt (key changed) or brought in line. */
static int
check_entity(struct evo *ev, const struct cat_crm_desc *d, const struct cat_entity *e,
    struct need *n)
{
	struct store *st = ev->st;
	struct want_table w;
	const char *idx, *key;
	char tbl[160], sql[1024], detail[1024];
	int rv, changed = 0;

	if ((rv = want_entity(&w, e)) != 0)
		return rv;
	snprintf(tbl, sizeof(tbl), "%s.%s", d->schema, e->name);
	if (!db_has_table(ev, d->schema, e->name)) {
		n->created = 1;
		if ((rv = create_tables(st, e, d->schema)) == 0)
			rv = evolve_step(st, d->schema, e->name, tbl, "create_table", NULL, 0, 0);
		return rv;
	}
	key = db_key(ev, d->schema, e->name, &idx);
	if (strcmp(key, w.key) != 0) {
		/* A new key: the old table is renamed aside and rebuilt into a new one. */
		snprintf(n->source, sizeof(n->source), "%s__rebuild", e->name);
		if (db_has_table(ev, d->schema, n->source)) {
			log_warnx("evolve.failed", "table=%s err=%s", tbl,
			    lq("its key changed while an earlier rebuild is unfinished"));
			return CS_EINVAL;
		}
		snprintf(sql, sizeof(sql), "ALTER TABLE %s RENAME TO %s", tbl, n->source);
		if ((rv = exec_what(st, sql, sql)) != 0)
			return rv;
		if (idx != NULL) {
			snprintf(sql, sizeof(sql), "ALTER INDEX %s.%s RENAME TO %s_pkey", d->schema, idx,
			    n->source);
			if ((rv = exec_what(st, sql, sql)) != 0)
				return rv;
		}
		if ((rv = create_tables(st, e, d->schema)) != 0)
			return rv;
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s.%s", d->schema, n->source);
		snprintf(detail, sizeof(detail), "key (%s) -> (%s): rows re-derived from %s.%s", key, w.key,
		    d->schema, n->source);
		n->rebuilt = n->cols = n->children = 1;
		why_add(n, "key changed to (%s): table rebuilt", w.key);
		return evolve_step(st, d->schema, e->name, tbl, "rebuild_table", detail, count_of(st, sql), 0);
	}
	if ((rv = check_columns(ev, d, e->name, &w, &changed)) != 0)
		return rv;
	if (changed) {
		n->cols = 1;
		why_add(n, "%s", "columns added or retyped");
	}
	return 0;
}

/* Child table ch of e (shared child tables are checked once). */
static int
check_child(struct evo *ev, const struct cat_crm_desc *d, const struct cat_entity *e,
    const struct cat_child *ch, struct need *n)
{
	struct store *st = ev->st;
	struct want_table w;
	const char *idx, *key;
	char tbl[160], sql[512], detail[1024];
	int rv, changed = 0;

	for (size_t i = 0; i < ev->ndone; i++) {
		if (strcmp(ev->done[i].table, ch->table) != 0)
			continue;
		/* Shared by several parents (custom field values): each one refills its rows. */
		if (ev->done[i].changed) {
			n->children = 1;
			why_add(n, "child table %s changed", ch->table);
		}
		return 0;
	}
	if (ev->ndone >= nitems(ev->done))
		return CS_ETOOBIG;
	ev->done[ev->ndone].table = ch->table;
	ev->done[ev->ndone].changed = 0;
	int *mark = &ev->done[ev->ndone++].changed;
	if ((rv = want_child(&w, e, ch)) != 0)
		return rv;
	snprintf(tbl, sizeof(tbl), "%s.%s", d->schema, ch->table);
	if (!db_has_table(ev, d->schema, ch->table)) {
		*mark = 1;	/* other parents sharing it fill theirs */
		if (n->created)
			return 0;	/* created with its parent just now */
		if ((rv = create_tables(st, e, d->schema)) == 0)
			rv = evolve_step(st, d->schema, e->name, tbl, "create_table", "filled from the parents' raw", 0, 0);
		n->children = 1;
		why_add(n, "child table %s created", ch->table);
		return rv;
	}
	key = db_key(ev, d->schema, ch->table, &idx);
	if (strcmp(key, w.key) != 0) {
		/* Child rows are all in their parents' raw: drop the table, create it, refill it. */
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", tbl);
		int64_t rows = count_of(st, sql);
		snprintf(sql, sizeof(sql), "DROP TABLE %s", tbl);
		if ((rv = exec_what(st, sql, sql)) != 0 || (rv = create_tables(st, e, d->schema)) != 0)
			return rv;
		*mark = 1;
		snprintf(detail, sizeof(detail), "key (%s) -> (%s): dropped, created, refilled from the parents' raw",
		    key, w.key);
		n->children = 1;
		why_add(n, "child table %s recreated", ch->table);
		return evolve_step(st, d->schema, e->name, tbl, "recreate_table", detail, rows, 0);
	}
	if ((rv = check_columns(ev, d, e->name, &w, &changed)) != 0)
		return rv;
	if (changed) {
		*mark = 1;
		n->children = 1;
		why_add(n, "columns of %s added or retyped", ch->table);
	}
	return 0;
}

/* JSON string (quoted, escaped) of s into b. */
static int
json_q(struct buf *b, const char *s)
{
	int rv = buf_addc(b, '"');

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			rv |= buf_addc(b, '\\') | buf_addc(b, (char)*p);
		else if (*p < 0x20)
			rv |= buf_printf(b, "\\u%04x", *p);
		else
			rv |= buf_addc(b, (char)*p);
	}
	return rv | buf_addc(b, '"');
}

static int
desc_cols(struct buf *b, const struct cat_col *cols, size_t n)
{
	char v[512];
	int rv = buf_addc(b, '{');

	for (size_t i = 0; i < n; i++) {
		snprintf(v, sizeof(v), "%s %s %u", cols[i].json, catalog_sql_type(cols[i].type),
		    cols[i].flags);
		/* The cat_type itself: two types may share an SQL type (unix vs local time). */
		snprintf(v + strlen(v), sizeof(v) - strlen(v), " t%d", (int)cols[i].type);
		rv |= (i ? buf_addc(b, ',') : 0) | json_q(b, cols[i].column) | buf_addc(b, ':') | json_q(b, v);
	}
	return rv | buf_addc(b, '}');
}

/* Is "$name" the whole path of one of e's own columns (a per-row value, stored)? */
static int
own_ctx(const struct cat_entity *e, const char *name, size_t n)
{
	for (size_t i = 0; i < e->ncols; i++)
		if (e->cols[i].json[0] == '$' && strlen(e->cols[i].json + 1) == n &&
		    memcmp(e->cols[i].json + 1, name, n) == 0)
			return 1;
	return 0;
}

/* Append to names (a "\0"-separated list, unique) each global context value column c reads:
 * the "$name"s of its path, and the one its converter reads (evolve_ctx_implicit). */
static void
ctx_names_of(const struct cat_entity *e, const struct cat_col *c, char *names, size_t cap, size_t *used)
{
	const char *imp = evolve_ctx_implicit(c->type);

	for (const char *p = strchr(c->json, '$'); p != NULL || imp != NULL;
	    p = p != NULL ? strchr(p + 1, '$') : NULL) {
		const char *nm = p != NULL ? p + 1 : imp;
		size_t n = strspn(nm, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
		int dup = 0;
		if (p == NULL)
			imp = NULL;	/* the implicit one last, once */
		if (n == 0 || (p != NULL && own_ctx(e, nm, n)))
			continue;
		for (size_t o = 0; o < *used && !dup; o += strlen(names + o) + 1)
			dup = strlen(names + o) == n && memcmp(names + o, nm, n) == 0;
		if (dup || *used + n + 1 > cap)
			continue;
		memcpy(names + *used, nm, n);
		names[*used + n] = '\0';
		*used += n + 1;
	}
}

/* amoCRM's account UTC offset as amo-sync stored it (the account row's raw), read at start-up. */
static char amo_utc_offset[32];
static int have_amo_utc_offset;

const char *
evolve_ctx_implicit(enum cat_type type)
{
	/* Day-valued amoCRM fields are read in the account's zone (normalise.h). */
	if (type == CT_DATE_DAY)
		return NORM_CTX_UTC_OFFSET;
	return NULL;
}

/* The account's UTC offset from the stored amo.account row: what amo-sync read from
 * /api/v4/account and derived its rows with. */
static int
load_amo_utc_offset(struct store *st)
{
	PGresult *r = NULL;
	int rv;

	have_amo_utc_offset = 0;
	if ((rv = db_execp(st, "SELECT to_regclass('amo.account') IS NOT NULL", 0, NULL, &r)) != 0 ||
	    PQgetvalue(r, 0, 0)[0] != 't') {
		PQclear(r);
		return rv;	/* a new database: no account row yet */
	}
	PQclear(r);
	rv = db_execp(st, "SELECT raw->'_embedded'->'datetime_settings'->>'timezone_offset' FROM amo.account "
	    "WHERE deleted_at IS NULL AND raw->'_embedded'->'datetime_settings'->>'timezone_offset' IS NOT NULL "
	    "ORDER BY synced_at DESC LIMIT 1", 0, NULL, &r);
	if (rv == 0 && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) &&
	    strlen(PQgetvalue(r, 0, 0)) < sizeof(amo_utc_offset)) {
		snprintf(amo_utc_offset, sizeof(amo_utc_offset), "%s", PQgetvalue(r, 0, 0));
		have_amo_utc_offset = 1;
	}
	PQclear(r);
	return rv;
}

const char *
evolve_ctx_value(struct store *st, enum cat_crm crm, const char *name)
{
	/* The same values, from the same variables, as hollihop-sync gives its normaliser. */
	if (crm == CAT_HOLLIHOP && strcmp(name, "tz") == 0)
		return st->conf.hh_timezone;
	if (crm == CAT_HOLLIHOP && strcmp(name, NORM_CTX_AMO_LEAD_FIELD) == 0)
		return st->conf.hh_amo_lead_field;
	if (crm == CAT_AMO && strcmp(name, NORM_CTX_UTC_OFFSET) == 0)
		return have_amo_utc_offset ? amo_utc_offset : NULL;
	return NULL;
}

int
evolve_ctx_json(struct store *st, const struct cat_entity *e, struct buf *b)
{
	char names[1024];
	size_t used = 0;
	int rv = 0, local = 0, first = 1;

	for (size_t i = 0; i < e->ncols; i++) {
		ctx_names_of(e, &e->cols[i], names, sizeof(names), &used);
		local |= e->cols[i].type == CT_TS_LOCAL;
	}
	for (size_t c = 0; c < e->nchildren; c++)
		for (size_t i = 0; i < e->children[c].ncols; i++) {
			ctx_names_of(e, &e->children[c].cols[i], names, sizeof(names), &used);
			local |= e->children[c].cols[i].type == CT_TS_LOCAL;
		}
	if (local) {
		const char *v = evolve_ctx_value(st, e->crm, "tz");
		rv |= json_q(b, "tz") | buf_addc(b, ':') | (v != NULL ? json_q(b, v) : buf_addstr(b, "null"));
		first = 0;
	}
	for (size_t o = 0; o < used; o += strlen(names + o) + 1) {
		const char *v = evolve_ctx_value(st, e->crm, names + o);
		rv |= (first ? 0 : buf_addc(b, ',')) | json_q(b, names + o) | buf_addc(b, ':');
		rv |= v != NULL ? json_q(b, v) : buf_addstr(b, "null");
		first = 0;
	}
	return rv;
}

/* What e's rows derive from: the description recorded in crmsync.catalog_state. */
static int
descriptor(struct store *st, const struct cat_entity *e, struct buf *b)
{
	char pcol[256];
	int rv = buf_printf(b, "{\"nv\":%d,\"cols\":", NORMALISE_VERSION);

	rv |= desc_cols(b, e->cols, e->ncols);
	rv |= buf_addstr(b, ",\"children\":{");
	for (size_t c = 0; c < e->nchildren; c++) {
		const struct cat_child *ch = &e->children[c];
		snprintf(pcol, sizeof(pcol), "%s", ch->parent_cols != NULL ? ch->parent_cols : "");
		rv |= (c ? buf_addc(b, ',') : 0) | json_q(b, ch->table) | buf_addstr(b, ":{\"json\":");
		rv |= json_q(b, ch->json) | buf_addstr(b, ",\"parent\":") | json_q(b, pcol);
		rv |= buf_addstr(b, ",\"disc\":") | json_q(b, ch->discriminator ? ch->discriminator : "");
		rv |= buf_addstr(b, ",\"cols\":") | desc_cols(b, ch->cols, ch->ncols) | buf_addc(b, '}');
	}
	rv |= buf_addstr(b, "},\"ctx\":{");
	rv |= evolve_ctx_json(st, e, b);
	return rv | buf_addstr(b, "}}");
}

/*
 * Compare e's derivation with the recorded one, record the new one, and queue the work.
 * *run_id: this CRM's re-derivation run of this start-up (opened by the first job).
 */
static int
check_derivation(struct store *st, const struct cat_crm_desc *d, const struct cat_entity *e,
    struct need *n, int64_t *run_id)
{
	struct buf b;
	char sql[2048];
	PGresult *r = NULL;
	int rv;

	buf_init(&b, 1u << 20);
	if ((rv = descriptor(st, e, &b)) != 0)
		goto out;
	const char *v[3] = { d->schema, e->name, b.data };
	snprintf(sql, sizeof(sql),
	    "SELECT s.descriptor IS NULL,"
	    " s.descriptor->'cols' IS DISTINCT FROM p.d->'cols',"
	    " s.descriptor->'children' IS DISTINCT FROM p.d->'children',"
	    " s.descriptor->'ctx' IS DISTINCT FROM p.d->'ctx' OR s.descriptor->'nv' IS DISTINCT FROM p.d->'nv',"
	    " (SELECT string_agg(k, ',' ORDER BY k) FROM (SELECT jsonb_object_keys(p.d->'cols')"
	    "   UNION SELECT jsonb_object_keys(coalesce(s.descriptor->'cols', '{}'))) x(k)"
	    "   WHERE p.d->'cols'->k IS DISTINCT FROM s.descriptor->'cols'->k),"
	    " (SELECT string_agg(k, ',' ORDER BY k) FROM (SELECT jsonb_object_keys(p.d->'children')"
	    "   UNION SELECT jsonb_object_keys(coalesce(s.descriptor->'children', '{}'))) x(k)"
	    "   WHERE p.d->'children'->k IS DISTINCT FROM s.descriptor->'children'->k),"
	    " EXISTS (SELECT 1 FROM %s.%s)"
	    " FROM (SELECT $3::jsonb AS d) p LEFT JOIN crmsync.catalog_state s"
	    " ON s.crm = $1 AND s.entity = $2", d->schema, n->rebuilt ? n->source : e->name);
	if ((rv = db_execp(st, sql, 3, v, &r)) != 0 || PQntuples(r) != 1) {
		log_warnx("evolve.failed", "entity=%s.%s err=%s", d->schema, e->name, lq(db_errmsg(st, r)));
		rv = rv ? rv : CS_EDB;
		goto out;
	}
	int fresh = PQgetvalue(r, 0, 0)[0] == 't', rows = PQgetvalue(r, 0, 6)[0] == 't';
	if (fresh) {
		n->cols = n->children = 1;
		why_add(n, "%s", "no recorded derivation (a database from an earlier release)");
	} else {
		if (PQgetvalue(r, 0, 1)[0] == 't') {
			n->cols = 1;
			why_add(n, "columns: %s", PQgetvalue(r, 0, 4));
		}
		if (PQgetvalue(r, 0, 2)[0] == 't') {
			n->children = 1;
			why_add(n, "child tables: %s", PQgetvalue(r, 0, 5));
		}
		if (PQgetvalue(r, 0, 3)[0] == 't') {
			n->cols = n->children = 1;
			why_add(n, "%s", "normaliser version or context values");
		}
	}
	PQclear(r);
	r = NULL;
	if ((rv = db_execp(st, "INSERT INTO crmsync.catalog_state (crm, entity, descriptor) VALUES ($1, $2, $3) "
	    "ON CONFLICT (crm, entity) DO UPDATE SET descriptor = excluded.descriptor, recorded_at = now() "
	    "WHERE catalog_state.descriptor IS DISTINCT FROM excluded.descriptor", 3, v, NULL)) != 0)
		goto out;
	if ((n->cols || n->children) && rows) {
		/* A child table created for a parent whose derivation is unchanged still needs
		 * its rows, but the parent's own columns are re-derived along anyway (cheap). */
		n->cols = 1;
		rv = rederive_enqueue(st, e, n->why, n->children, n->rebuilt ? "" : "now",
		    n->rebuilt ? n->source : NULL, "upgrade", run_id);
	} else if (n->rebuilt) {
		/* Nothing to copy: the renamed table is empty. */
		snprintf(sql, sizeof(sql), "DROP TABLE %s.%s", d->schema, n->source);
		rv = exec_what(st, sql, sql);
	}
out:
	PQclear(r);
	buf_free(&b);
	return rv;
}

int
evolve_schema(struct store *st)
{
	const enum cat_crm crms[] = { CAT_HOLLIHOP, CAT_AMO };
	const char *types = "{bigint,numeric,text,boolean,timestamptz,date,time,jsonb,bigint[],text[],integer}";
	struct evo ev;
	int rv = 0;

	memset(&ev, 0, sizeof(ev));
	ev.st = st;
	if ((rv = load_amo_utc_offset(st)) != 0) {
		log_warnx("evolve.failed", "step=amo_utc_offset err=%s", lq(db_errmsg(st, NULL)));
		return rv;
	}
	if ((rv = db_execp(st, "SELECT t, format_type(t::regtype, NULL) FROM unnest($1::text[]) t", 1,
	    &types, &ev.types)) != 0 ||
	    (rv = db_execp(st, "SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), "
	    "coalesce(col_description(c.oid, a.attnum), '') FROM pg_attribute a "
	    "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
	    "WHERE n.nspname IN ('amo', 'hollihop') AND c.relkind IN ('r', 'p') AND a.attnum > 0 "
	    "AND NOT a.attisdropped ORDER BY 1, 2, a.attnum", 0, NULL, &ev.cols)) != 0 ||
	    (rv = db_execp(st, "SELECT n.nspname, c.relname, ic.relname, "
	    "string_agg(a.attname, ',' ORDER BY k.ord) FROM pg_index i "
	    "JOIN pg_class c ON c.oid = i.indrelid JOIN pg_class ic ON ic.oid = i.indexrelid "
	    "JOIN pg_namespace n ON n.oid = c.relnamespace "
	    "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord) "
	    "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
	    "WHERE n.nspname IN ('amo', 'hollihop') AND i.indisprimary GROUP BY 1, 2, 3", 0, NULL,
	    &ev.keys)) != 0) {
		log_warnx("evolve.failed", "step=introspect err=%s", lq(db_errmsg(st, NULL)));
		goto out;
	}
	for (size_t c = 0; c < nitems(crms) && rv == 0; c++) {
		const struct cat_crm_desc *d = catalog_crm(crms[c]);
		int64_t run_id = 0;
		for (size_t i = 0; i < d->nentities && rv == 0; i++) {
			const struct cat_entity *e = &d->entities[i];
			struct need n;
			memset(&n, 0, sizeof(n));
			rv = check_entity(&ev, d, e, &n);
			for (size_t k = 0; k < e->nchildren && rv == 0; k++)
				rv = check_child(&ev, d, e, &e->children[k], &n);
			if (rv == 0)
				rv = check_derivation(st, d, e, &n, &run_id);
		}
	}
out:
	PQclear(ev.types);
	PQclear(ev.cols);
	PQclear(ev.keys);
	return rv;
}
