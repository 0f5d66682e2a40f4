/*
 * contract.c - the response half of the contract tests (contract.h says the format).
 */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "arena.h"
#include "batch.h"
#include "buf.h"
#include "bus.h"
#include "contract.h"
#include "json.h"
#include "normalise.h"

struct contract ct;

static const char *
ct_schema(void)
{
	return catalog_crm(ct.crm)->schema;
}

#define MAX_LINES	2048
#define MAX_PATHS	1024


enum lk { L_ROW, L_VERSION, L_CHILDVAL, L_RAWONLY };

struct line {
	enum lk	 kind;
	char	 key[128];
	char	 table[64];
	int	 idx;
	char	 column[64];
	char	 value[1024];
	int	 used;
};

struct expect {
	char		 entity[64];
	char		 list[128];	/* "list PATH": rows at PATH, "-" = the body is one row */
	struct norm_ctx	 ctx;
	char		 ctxstore[1024];
	long		 rows;
	struct line	*l;
	int		 n;
};

char *
ct_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *data = NULL;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (data = malloc((size_t)n + 1)) != NULL) {
		*len = fread(data, 1, (size_t)n, f);
		data[*len] = '\0';
	}
	fclose(f);
	return data;
}

/* "word rest": copy the first space-separated word into w, return the rest (or NULL). */
const char *
ct_word(const char *s, char *w, size_t cap)
{
	size_t n = strcspn(s, " ");

	if (n == 0 || n >= cap)
		return NULL;
	memcpy(w, s, n);
	w[n] = '\0';
	s += n;
	return *s == ' ' ? s + 1 : s;
}

static void
parse_expect(const char *path, struct expect *x)
{
	size_t len, used = 0;
	char *text = ct_slurp(path, &len), *save = NULL;

	if (text == NULL)
		fail_msg("%s: missing (every fixture needs its expectations)", path);
	memset(x, 0, sizeof(*x));
	x->rows = -1;
	x->l = calloc(MAX_LINES, sizeof(*x->l));
	assert_non_null(x->l);
	for (char *ln = strtok_r(text, "\n", &save); ln != NULL; ln = strtok_r(NULL, "\n", &save)) {
		char kw[32], idx[16];
		const char *p;
		struct line *l = &x->l[x->n];

		if (ln[0] == '#' || ln[0] == '\0')
			continue;
		if ((p = ct_word(ln, kw, sizeof(kw))) == NULL)
			fail_msg("%s: bad line: %s", path, ln);
		if (x->n >= MAX_LINES)
			fail_msg("%s: too many lines", path);
		if (strcmp(kw, "entity") == 0) {
			snprintf(x->entity, sizeof(x->entity), "%s", p);
		} else if (strcmp(kw, "list") == 0) {
			snprintf(x->list, sizeof(x->list), "%s", p);
		} else if (strcmp(kw, "ctx") == 0) {
			const char *eq = strchr(p, '=');
			size_t need = strlen(p) + 1;
			if (eq == NULL || used + need > sizeof(x->ctxstore))
				fail_msg("%s: bad ctx line: %s", path, ln);
			memcpy(x->ctxstore + used, p, need);
			x->ctxstore[used + (size_t)(eq - p)] = '\0';
			norm_ctx_set(&x->ctx, x->ctxstore + used, x->ctxstore + used + (eq - p) + 1);
			used += need;
		} else if (strcmp(kw, "rows") == 0) {
			x->rows = strtol(p, NULL, 10);
		} else if (strcmp(kw, "raw-only") == 0) {
			l->kind = L_RAWONLY;
			snprintf(l->value, sizeof(l->value), "%s", p);
			x->n++;
		} else if (strcmp(kw, "row") == 0 || strcmp(kw, "version") == 0) {
			l->kind = kw[0] == 'r' ? L_ROW : L_VERSION;
			if ((p = ct_word(p, l->key, sizeof(l->key))) == NULL ||
			    (l->kind == L_ROW && (p = ct_word(p, l->column, sizeof(l->column))) == NULL))
				fail_msg("%s: bad line: %s", path, ln);
			snprintf(l->value, sizeof(l->value), "%s", p);
			x->n++;
		} else if (strcmp(kw, "childval") == 0) {
			l->kind = L_CHILDVAL;
			if ((p = ct_word(p, l->key, sizeof(l->key))) == NULL ||
			    (p = ct_word(p, l->table, sizeof(l->table))) == NULL ||
			    (p = ct_word(p, idx, sizeof(idx))) == NULL ||
			    (p = ct_word(p, l->column, sizeof(l->column))) == NULL)
				fail_msg("%s: bad line: %s", path, ln);
			l->idx = (int)strtol(idx, NULL, 10);
			snprintf(l->value, sizeof(l->value), "%s", p);
			x->n++;
		} else {
			fail_msg("%s: unknown keyword %s", path, kw);
		}
	}
	free(text);
	if (x->entity[0] == '\0' || x->rows < 0)
		fail_msg("%s: needs \"entity\" and \"rows\"", path);
}

/* ---------------------------------------------------------------- key strings */

/* Value of key column `col` in KEY "a=1,b=2" into dst; 0 or -1. */
static int
key_part(const char *key, const char *col, char *dst, size_t cap)
{
	size_t cl = strlen(col);

	for (const char *p = key; *p;) {
		size_t n = strcspn(p, ",");
		if (n > cl && strncmp(p, col, cl) == 0 && p[cl] == '=') {
			if (n - cl - 1 >= cap)
				return -1;
			memcpy(dst, p + cl + 1, n - cl - 1);
			dst[n - cl - 1] = '\0';
			return 0;
		}
		p += n;
		if (*p == ',')
			p++;
	}
	return -1;
}

/* KEY string of a normalised record: "col=v[,col=v]" in catalogue key order. */
static void
record_key(const struct cat_entity *e, const Crmsync__Record *r, char *dst, size_t cap)
{
	size_t o = 0;

	dst[0] = '\0';
	for (size_t i = 0; i < e->ncols; i++)
		if (e->cols[i].flags & CF_KEY)
			o += (size_t)snprintf(dst + o, o < cap ? cap - o : 0, "%s%s=%s", o ? "," : "",
			    e->cols[i].column, r->values[i]);
}

/* " WHERE a.k1::text = $1 AND ..." over the key (in child table ch: its parent columns). */
static void
key_where(const struct cat_entity *e, const struct cat_child *ch, const char *alias, const char *key,
    struct buf *b, const char **vals, char kst[][128])
{
	char col[64];
	size_t n = 0;

	for (size_t i = 0; i < e->ncols; i++) {
		if (!(e->cols[i].flags & CF_KEY))
			continue;
		if (key_part(key, e->cols[i].column, kst[n], 128) != 0)
			fail_msg("key %s lacks %s", key, e->cols[i].column);
		if (ch != NULL)
			assert_int_equal(catalog_child_parent_col(e, ch, n, col, sizeof(col)), 0);
		else
			snprintf(col, sizeof(col), "%s", e->cols[i].column);
		vals[n] = kst[n];
		buf_printf(b, "%s %s.%s::text = $%zu", n ? " AND" : " WHERE", alias, col, n + 1);
		n++;
	}
}

/* ---------------------------------------------------------------- raw-only paths */

struct paths {
	char	*p[MAX_PATHS];
	int	 n;
};

static void
paths_add(struct paths *ps, const char *p)
{
	for (int i = 0; i < ps->n; i++)
		if (strcmp(ps->p[i], p) == 0)
			return;
	assert_true(ps->n < MAX_PATHS);
	ps->p[ps->n++] = strdup(p);
}

static void
paths_free(struct paths *ps)
{
	for (int i = 0; i < ps->n; i++)
		free(ps->p[i]);
	ps->n = 0;
}

/* Every member path of value t: "a", "a.b", "arr[].x"; scalar array elements as "arr[]". */
static void
walk(const struct json *j, int t, const char *prefix, struct paths *ps)
{
	char p[512];

	if (json_kind(j, t) == JK_OBJECT) {
		for (int i = 0, k = json_first(j, t); i < json_size(j, t); i++) {
			size_t kl;
			const char *kn = json_raw(j, k, &kl);
			snprintf(p, sizeof(p), "%s%s%.*s", prefix, prefix[0] ? "." : "", (int)kl, kn);
			paths_add(ps, p);
			walk(j, k + 1, p, ps);
			k = json_skip(j, k + 1);
		}
	} else if (json_kind(j, t) == JK_ARRAY) {
		snprintf(p, sizeof(p), "%s[]", prefix);
		for (int i = 0, el = json_first(j, t); i < json_size(j, t); i++, el = json_skip(j, el)) {
			if (json_kind(j, el) == JK_OBJECT || json_kind(j, el) == JK_ARRAY)
				walk(j, el, p, ps);
			else
				paths_add(ps, p);
		}
	}
}

/* The paths a column spec reads, relative to its element, with base prefixed. */
static void
consumed(const char *base, const char *outer, const char *json, struct paths *ps)
{
	char spec[256], p[512];
	size_t n = strcspn(json, "~?");

	if (json[0] == '$')
		return;
	snprintf(spec, sizeof(spec), "%.*s", (int)n, json);
	if (spec[0] == '^') {
		snprintf(p, sizeof(p), "%s%s%s", outer, outer[0] ? "." : "", spec + 1);
		paths_add(ps, p);
		return;
	}
	const char *lb = strchr(spec, '[');
	if (lb != NULL) {
		const char *eq = strchr(lb, '='), *rb = strchr(lb, ']');
		assert_non_null(eq);
		assert_non_null(rb);
		snprintf(p, sizeof(p), "%s%s%.*s[].%.*s", base, base[0] ? "." : "", (int)(lb - spec), spec,
		    (int)(eq - lb - 1), lb + 1);
		paths_add(ps, p);
		snprintf(p, sizeof(p), "%s%s%.*s[]%s", base, base[0] ? "." : "", (int)(lb - spec), spec, rb + 1);
		paths_add(ps, p);
		return;
	}
	for (const char *a = spec;;) {
		size_t an = strcspn(a, "|");
		if (an == 0)
			snprintf(p, sizeof(p), "%s", base);
		else
			snprintf(p, sizeof(p), "%s%s%.*s", base, base[0] ? "." : "", (int)an, a);
		if (p[0] != '\0')
			paths_add(ps, p);
		if (a[an] == '\0')
			break;
		a += an + 1;
	}
}

static void
entity_consumed(const struct cat_entity *e, struct paths *ps)
{
	for (size_t i = 0; i < e->ncols; i++)
		consumed("", "", e->cols[i].json, ps);
	for (size_t c = 0; c < e->nchildren; c++) {
		const struct cat_child *ch = &e->children[c];
		char base[512], outer[256];
		const char *br = strstr(ch->json, "[].");

		if (br != NULL) {
			snprintf(outer, sizeof(outer), "%.*s[]", (int)(br - ch->json), ch->json);
			snprintf(base, sizeof(base), "%s.%s[]", outer, br + 3);
		} else {
			outer[0] = '\0';
			snprintf(base, sizeof(base), "%s[]", ch->json);
		}
		for (size_t i = 0; i < ch->ncols; i++)
			consumed(base, outer, ch->cols[i].json, ps);
	}
}

/* Is fixture path p read by a column: equal, an ancestor of what is read, or inside it. */
static int
is_consumed(const struct paths *cs, const char *p)
{
	size_t pl = strlen(p);

	for (int i = 0; i < cs->n; i++) {
		const char *c = cs->p[i];
		size_t cl = strlen(c);
		if (strcmp(c, p) == 0)
			return 1;
		if (cl > pl && strncmp(c, p, pl) == 0 && (c[pl] == '.' || c[pl] == '['))
			return 1;
		if (pl > cl && strncmp(p, c, cl) == 0 && (p[cl] == '.' || p[cl] == '['))
			return 1;
	}
	return 0;
}

/* ---------------------------------------------------------------- one fixture */

static void
send_records(const struct cat_entity *e, Crmsync__Record **recs, size_t n)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT, *ack = NULL;
	Crmsync__RecordBatch b = CRMSYNC__RECORD_BATCH__INIT;
	int64_t run;

	assert_int_equal(h_run_begin(ct.sock, ct.crm, 1, &run), 0);
	b.crm = ct.crm == CAT_AMO ? CRMSYNC__CRM__CRM_AMO : CRMSYNC__CRM__CRM_HOLLIHOP;
	b.entity = (char *)e->name;
	b.batch_id = (uint64_t)run;
	b.run_id = run;
	b.records = recs;
	b.n_records = n;
	b.replace_children = 1;
	env.body_case = CRMSYNC__ENVELOPE__BODY_BATCH;
	env.batch = &b;
	int rv = bus_call_ack(ct.sock, &env, &ack, 5000, 60000, NULL);
	if (rv != 0)
		fail_msg("%s: the store answered %d: %s", e->name, rv,
		    ack != NULL && ack->ack != NULL ? ack->ack->error : "");
	bus_free(ack);
	assert_int_equal(h_run_end(ct.sock, run, CRMSYNC__RUN_STATUS__RUN_COMPLETE, e->name, 1), 0);
}

static const char *
want_value(struct expect *x, enum lk kind, const char *key, const char *table, int idx, const char *col)
{
	for (int i = 0; i < x->n; i++) {
		struct line *l = &x->l[i];
		if (l->kind == kind && strcmp(l->key, key) == 0 && (table == NULL || strcmp(l->table, table) == 0) &&
		    (kind != L_CHILDVAL || l->idx == idx) && (col == NULL || strcmp(l->column, col) == 0)) {
			l->used = 1;
			return l->value;
		}
	}
	return NULL;
}

static void
compare(const char *what, const char *col, const char *want, PGresult *r, int row, int f)
{
	const char *got = PQgetisnull(r, row, f) ? "NULL" : PQgetvalue(r, row, f);

	if (strcmp(want, got) != 0)
		fail_msg("%s: %s is \"%s\", want \"%s\"", what, col, got, want);
}

/* Typed columns and version of the row with key K: as the lines say, NULL otherwise. */
static void
check_row(const struct cat_entity *e, struct expect *x, const char *key, const char *raw, size_t rawlen)
{
	struct buf b;
	const char *vals[8];
	char kst[8][128], what[256];

	buf_init(&b, 1 << 16);
	buf_printf(&b, "SELECT ");
	for (size_t i = 0; i < e->ncols; i++)
		buf_printf(&b, "t.%s::text, ", e->cols[i].column);
	buf_printf(&b, "t.source_updated_at::text, t.raw = $%zu::jsonb FROM %s.%s t",
	    catalog_nkeys(e) + 1, ct_schema(), e->name);
	key_where(e, NULL, "t", key, &b, vals, kst);
	char *rawz = strndup(raw, rawlen);
	vals[catalog_nkeys(e)] = rawz;
	PGresult *r = PQexecParams(ct.db, b.data, (int)catalog_nkeys(e) + 1, NULL, vals, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		fail_msg("%s %s: %d rows (%s)", e->name, key, PQntuples(r), PQresultErrorMessage(r));
	snprintf(what, sizeof(what), "%s %s", e->name, key);
	for (size_t i = 0; i < e->ncols; i++) {
		const char *w = want_value(x, L_ROW, key, NULL, 0, e->cols[i].column);
		compare(what, e->cols[i].column, w ? w : "NULL", r, 0, (int)i);
	}
	const char *v = want_value(x, L_VERSION, key, NULL, 0, NULL);
	compare(what, "source_updated_at", v ? v : "NULL", r, 0, (int)e->ncols);
	if (strcmp(PQgetvalue(r, 0, (int)e->ncols + 1), "t") != 0)
		fail_msg("%s: raw is not the row as received", what);
	PQclear(r);
	free(rawz);
	buf_free(&b);
}

/* Every child row of the row with key K, column by column. */
static void
check_children(const struct cat_entity *e, struct expect *x, const char *key)
{
	for (size_t c = 0; c < e->nchildren; c++) {
		const struct cat_child *ch = &e->children[c];
		struct buf b;
		const char *vals[8];
		char kst[8][128], what[256];

		buf_init(&b, 1 << 16);
		buf_printf(&b, "SELECT c.idx");
		for (size_t i = 0; i < ch->ncols; i++)
			buf_printf(&b, ", c.%s::text", ch->cols[i].column);
		buf_printf(&b, " FROM %s.%s c", ct_schema(), ch->table);
		key_where(e, ch, "c", key, &b, vals, kst);
		buf_printf(&b, " ORDER BY c.idx");
		PGresult *r = PQexecParams(ct.db, b.data, (int)catalog_nkeys(e), NULL, vals, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			fail_msg("%s: %s", ch->table, PQresultErrorMessage(r));
		for (int k = 0; k < PQntuples(r); k++) {
			int idx = (int)strtol(PQgetvalue(r, k, 0), NULL, 10);
			int named = 0;
			snprintf(what, sizeof(what), "%s %s [%d]", ch->table, key, idx);
			for (int i = 0; i < x->n; i++)
				named |= x->l[i].kind == L_CHILDVAL && strcmp(x->l[i].key, key) == 0 &&
				    strcmp(x->l[i].table, ch->table) == 0 && x->l[i].idx == idx;
			if (!named)
				fail_msg("%s: stored, but the .expect does not name it", what);
			for (size_t i = 0; i < ch->ncols; i++) {
				const char *w = want_value(x, L_CHILDVAL, key, ch->table, idx, ch->cols[i].column);
				compare(what, ch->cols[i].column, w ? w : "NULL", r, k, (int)i + 1);
			}
		}
		PQclear(r);
		buf_free(&b);
	}
}

/* Fixtures of one entity follow each other: each is checked on its own rows only. */
static void
clean_tables(const struct cat_entity *e)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "DELETE FROM %s.%s", ct_schema(), e->name);
	assert_int_equal(h_sql_exec(ct.db, sql), 0);
	for (size_t c = 0; c < e->nchildren; c++) {
		snprintf(sql, sizeof(sql), "DELETE FROM %s.%s", ct_schema(), e->children[c].table);
		assert_int_equal(h_sql_exec(ct.db, sql), 0);
	}
}

void
ct_run_fixture(const char *method)
{
	char path[1024], key[256];
	struct expect x;
	struct json j;
	struct arena a;
	struct paths got = { .n = 0 }, reads = { .n = 0 };
	size_t len;
	char *text;

	snprintf(path, sizeof(path), "%s/%s.expect", ct.dir, method);
	parse_expect(path, &x);
	const struct cat_entity *e = catalog_find(ct.crm, x.entity);
	if (e == NULL)
		fail_msg("%s: no entity %s", path, x.entity);
	snprintf(path, sizeof(path), "%s/%s.json", ct.dir, method);
	assert_non_null(text = ct_slurp(path, &len));
	assert_int_equal(json_parse(&j, text, len, 1000000), 0);
	const char *lk = x.list[0] != '\0' ? (strcmp(x.list, "-") == 0 ? "" : x.list) : e->list_key;
	int one = lk == NULL || lk[0] == '\0';	/* the body is the row (GET /api/v4/account, ...) */
	int rows = one ? 0 : json_path(&j, 0, lk);
	int nrows = one ? 1 : json_size(&j, rows);
	if (ct.clean)
		clean_tables(e);
	assert_true(nrows > 0);
	arena_init(&a, 64u << 20);
	Crmsync__Record **recs = arena_alloc(&a, (size_t)nrows * sizeof(*recs));
	assert_non_null(recs);
	for (int i = 0, t = one ? 0 : json_first(&j, rows); i < nrows; i++, t = json_skip(&j, t)) {
		char err[256];
		int bad = 0;
		recs[i] = arena_alloc(&a, sizeof(**recs));
		if (normalise_row(e, &j, t, &x.ctx, &a, recs[i], &bad, err, sizeof(err)) != 0)
			fail_msg("%s row %d: %s", method, i, err);
		if (bad != 0)
			fail_msg("%s row %d: %d unreadable values", method, i, bad);
		walk(&j, t, "", &got);
	}
	send_records(e, recs, (size_t)nrows);

	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s.%s WHERE deleted_at IS NULL", ct_schema(), e->name);
	if (h_sql_int(ct.db, sql) != x.rows || x.rows != nrows)
		fail_msg("%s: %lld rows stored, %d in the fixture, %ld expected", method,
		    (long long)h_sql_int(ct.db, sql), nrows, x.rows);
	for (int i = 0, t = one ? 0 : json_first(&j, rows); i < nrows; i++, t = json_skip(&j, t)) {
		size_t rl;
		const char *raw = json_text(&j, t, &rl);
		record_key(e, recs[i], key, sizeof(key));
		int named = 0;
		for (int k = 0; k < x.n; k++)
			named |= x.l[k].kind == L_ROW && strcmp(x.l[k].key, key) == 0;
		if (!named)
			fail_msg("%s: row %s is not named in the .expect", method, key);
		check_row(e, &x, key, raw, rl);
		check_children(e, &x, key);
	}
	for (int i = 0; i < x.n; i++)
		if (x.l[i].kind != L_RAWONLY && !x.l[i].used)
			fail_msg("%s.expect: line for %s %s %s matches nothing stored", method, x.l[i].key,
			    x.l[i].table, x.l[i].column);

	/* Keys of the rows that no typed column reads = the declared raw-only list. */
	entity_consumed(e, &reads);
	for (int i = 0; i < got.n; i++) {
		int declared = 0;
		for (int k = 0; k < x.n; k++)
			declared |= x.l[k].kind == L_RAWONLY && strcmp(x.l[k].value, got.p[i]) == 0;
		if (!is_consumed(&reads, got.p[i]) && !declared)
			fail_msg("%s: real rows carry %s, no typed column reads it and the .expect does "
			    "not list it as raw-only", method, got.p[i]);
		if (is_consumed(&reads, got.p[i]) && declared)
			fail_msg("%s: %s is listed as raw-only but a column reads it", method, got.p[i]);
	}
	for (int k = 0; k < x.n; k++) {
		int seen = 0;
		for (int i = 0; i < got.n && x.l[k].kind == L_RAWONLY; i++)
			seen |= strcmp(x.l[k].value, got.p[i]) == 0;
		if (x.l[k].kind == L_RAWONLY && !seen)
			fail_msg("%s: raw-only %s is not in the fixture", method, x.l[k].value);
	}
	paths_free(&got);
	paths_free(&reads);
	arena_free(&a);
	json_free(&j);
	free(text);
	free(x.l);
}

/* ---------------------------------------------------------------- the rest */

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
ct_list(const char *d, const char *ext, char **names, int max)
{
	DIR *dd = opendir(d);
	struct dirent *de;
	size_t el = strlen(ext);
	int n = 0;

	assert_non_null(dd);
	while ((de = readdir(dd)) != NULL) {
		size_t l = strlen(de->d_name);
		if (l > el && strcmp(de->d_name + l - el, ext) == 0 && n < max)
			names[n++] = strndup(de->d_name, l - el);
	}
	closedir(dd);
	qsort(names, (size_t)n, sizeof(names[0]), cmp_names);
	return n;
}

/* The row of column col in section [sec, end) names one of the tags. */
static void
doc_column(const char *doc, const char *sec, const char *end, const char *table, const char *col,
    const char *const *tags, size_t ntags)
{
	char rowhead[128];

	snprintf(rowhead, sizeof(rowhead), "\n| `%s` |", col);
	const char *r = strstr(sec, rowhead);
	if (r == NULL || r > end)
		fail_msg("docs/api/%s: %s.%s is not documented", doc, table, col);
	const char *eol = strchr(r + 1, '\n');
	for (size_t t = 0; t < ntags; t++) {
		const char *hit = strstr(r + 1, tags[t]);
		if (hit != NULL && (eol == NULL || hit < eol))
			return;
	}
	fail_msg("docs/api/%s: %s.%s has no evidence tag", doc, table, col);
}

void
ct_check_docs(const char *doc, const char *const *tags, size_t ntags)
{
	const struct cat_crm_desc *d = catalog_crm(ct.crm);
	char path[1024];
	size_t len;

	snprintf(path, sizeof(path), "%s/../../../docs/api/%s", ct.dir, doc);
	char *text = ct_slurp(path, &len);
	if (text == NULL)
		fail_msg("cannot read %s", path);
	for (size_t i = 0; i < d->nentities; i++) {
		const struct cat_entity *e = &d->entities[i];
		for (size_t c = 0; c <= e->nchildren; c++) {
			const char *table = c == 0 ? e->name : e->children[c - 1].table;
			const struct cat_col *cols = c == 0 ? e->cols : e->children[c - 1].cols;
			size_t ncols = c == 0 ? e->ncols : e->children[c - 1].ncols;
			char head[128];
			snprintf(head, sizeof(head), "### `%s.%s`", d->schema, table);
			const char *sec = strstr(text, head);
			if (sec == NULL)
				fail_msg("docs/api/%s has no section \"%s\"", doc, head);
			const char *end = strstr(sec + 4, "\n### ");
			for (size_t k = 0; k < ncols; k++)
				doc_column(doc, sec, end != NULL ? end : text + len, table, cols[k].column,
				    tags, ntags);
		}
	}
	free(text);
}

int
ct_start(enum cat_crm crm, const char *sub, int clean)
{
	const char *src = getenv("CS_SOURCE_DIR");
	char e_store[600], e_health[600], e_dsn[1024], url[512], health[512];

	ct.crm = crm;
	ct.clean = clean;
	snprintf(ct.dir, sizeof(ct.dir), "%s/tests/contract/%s", src ? src : ".", sub);
	if (h_pg_start(&ct.pg) != 0)
		return -1;
	snprintf(url, sizeof(url), "%s", h_url("store"));
	snprintf(health, sizeof(health), "%s", h_url("store-health"));
	snprintf(e_store, sizeof(e_store), "CS_STORE_URL=%s", url);
	snprintf(e_health, sizeof(e_health), "CS_STORE_HEALTH_URL=%s", health);
	snprintf(e_dsn, sizeof(e_dsn), "CS_PG_DSN=%s", ct.pg.dsn);
	char *env[] = { e_store, e_health, e_dsn, NULL };
	if (h_spawn(&ct.store, "store", "services/store/crmsync-store", env, NULL) != 0 ||
	    h_wait_ready(health, 20000) != 0) {
		h_dump_log(&ct.store);
		return -1;
	}
	if (bus_dial(&ct.sock, url, BUS_RECVMAX_DEFAULT) != 0)
		return -1;
	if ((ct.db = h_connect(&ct.pg)) == NULL || h_sql_exec(ct.db, "SET timezone = 'UTC'") != 0)
		return -1;
	return 0;
}

int
ct_stop(void)
{
	int rv;

	nng_close(ct.sock);
	PQfinish(ct.db);
	if ((rv = h_kill(&ct.store, SIGTERM)) != 0) {
		fprintf(stderr, "store exited with %d\n", rv);
		h_dump_log(&ct.store);
	}
	return h_pg_stop(&ct.pg, 0) != 0 || rv != 0 ? -1 : 0;
}
