/*
 * amo_fixtures_test.c - every entity of the amoCRM catalogue against a recorded response.
 *
 * For each catalogue entity, tests/data/amo/<entity>.json is one list page (or object) in
 * the API's shape, including the alternatives the API documentation leaves open (task result
 * [] or {"text"}, custom_fields_values null, date custom fields as unix or "YYYY-MM-DD",
 * catalog element is_deleted null, numeric values as strings, object values), and
 * <entity>.expect says what the normaliser must make of it, line by line:
 *   ctx NAME=VALUE                         a "$NAME" context value (parent type, catalog id)
 *   rows N                                 records produced from the page
 *   row I COLUMN VALUE|NULL                typed value (PostgreSQL text form) of record I
 *   child I TABLE N                        child rows of record I in TABLE
 *   childval I TABLE K COLUMN VALUE|NULL   column of the K-th such child row
 * JSON values are compared without insignificant whitespace. An entity without a fixture
 * fails the test: adding an entity means adding its fixture. No database: fast, per push.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "arena.h"
#include "catalog.h"
#include "json.h"
#include "normalise.h"

static char *
slurp(const char *path, size_t *len)
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

/* Drop whitespace outside JSON strings (compare JSON text regardless of layout). */
static void
compact(const char *in, char *out, size_t cap)
{
	size_t o = 0;
	int str = 0, esc = 0;

	for (; *in != '\0' && o + 1 < cap; in++) {
		char c = *in;
		if (str) {
			if (esc)
				esc = 0;
			else if (c == '\\')
				esc = 1;
			else if (c == '"')
				str = 0;
		} else if (c == '"') {
			str = 1;
		} else if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
			continue;
		}
		out[o++] = c;
	}
	out[o] = '\0';
}

static int
same_value(const char *got, int isnull, const char *want)
{
	char a[8192], b[8192];

	if (strcmp(want, "NULL") == 0)
		return isnull;
	if (isnull)
		return 0;
	if (strcmp(got, want) == 0)
		return 1;
	compact(got, a, sizeof(a));
	compact(want, b, sizeof(b));
	return (a[0] == '{' || a[0] == '[') && strcmp(a, b) == 0;
}

static int
col_index(const struct cat_col *cols, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(cols[i].column, name) == 0)
			return (int)i;
	return -1;
}

static int
child_index(const struct cat_entity *e, const char *table)
{
	for (size_t c = 0; c < e->nchildren; c++)
		if (strcmp(e->children[c].table, table) == 0)
			return (int)c;
	return -1;
}

/* The k-th child row of record r that belongs to child table c, or NULL. */
static const Crmsync__ChildRow *
nth_child(const Crmsync__Record *r, int c, int k, int *count)
{
	const Crmsync__ChildRow *hit = NULL;
	int n = 0;

	for (size_t i = 0; i < r->n_children; i++) {
		if ((int)r->children[i]->child != c)
			continue;
		if (n == k)
			hit = r->children[i];
		n++;
	}
	if (count != NULL)
		*count = n;
	return hit;
}

static void
check_entity(const struct cat_entity *e)
{
	const char *dir = getenv("CS_SOURCE_DIR");
	char path[1024], line[8192], ctxbuf[8][128];
	struct norm_ctx ctx = { 0 };
	Crmsync__Record recs[64];
	struct arena ar;
	struct json j;
	size_t len = 0;
	int nrec = 0, nctx = 0, list, checks = 0;
	char *data;
	FILE *f;

	snprintf(path, sizeof(path), "%s/tests/data/amo/%s.json", dir ? dir : ".", e->name);
	if ((data = slurp(path, &len)) == NULL)
		fail_msg("%s: no fixture %s (every catalogue entity needs one)", e->name, path);
	snprintf(path, sizeof(path), "%s/tests/data/amo/%s.expect", dir ? dir : ".", e->name);
	if ((f = fopen(path, "r")) == NULL)
		fail_msg("%s: no %s", e->name, path);
	/* ctx lines first: they shape the records. */
	while (fgets(line, sizeof(line), f) != NULL) {
		char name[64], value[64];
		if (sscanf(line, "ctx %63[^=]=%63s", name, value) == 2 && nctx < 4) {
			snprintf(ctxbuf[2 * nctx], sizeof(ctxbuf[0]), "%s", name);
			snprintf(ctxbuf[2 * nctx + 1], sizeof(ctxbuf[0]), "%s", value);
			norm_ctx_set(&ctx, ctxbuf[2 * nctx], ctxbuf[2 * nctx + 1]);
			nctx++;
		}
	}
	rewind(f);
	assert_int_equal(json_parse(&j, data, len, 1 << 20), 0);
	arena_init(&ar, 64u << 20);
	list = e->list_key[0] == '\0' ? 0 : json_path(&j, 0, e->list_key);
	if (e->list_key[0] == '\0') {
		char err[256];
		assert_int_equal(normalise_row(e, &j, 0, &ctx, &ar, &recs[0], NULL, err, sizeof(err)), 0);
		nrec = 1;
	} else {
		if (json_kind(&j, list) != JK_ARRAY)
			fail_msg("%s: no array at %s", e->name, e->list_key);
		for (int i = 0, t = json_first(&j, list); i < json_size(&j, list) && nrec < 64;
		    i++, t = json_skip(&j, t)) {
			char err[256];
			if (normalise_row(e, &j, t, &ctx, &ar, &recs[nrec], NULL, err, sizeof(err)) != 0)
				fail_msg("%s: row %d: %s", e->name, i, err);
			nrec++;
		}
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char col[64], table[64], want[4096];
		int row, k, n;

		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0' || strncmp(line, "ctx ", 4) == 0)
			continue;
		if (sscanf(line, "rows %d", &n) == 1) {
			if (n != nrec)
				fail_msg("%s: %d records, expected %d", e->name, nrec, n);
		} else if (sscanf(line, "row %d %63s %4095[^\n]", &row, col, want) == 3) {
			int c = col_index(e->cols, e->ncols, col);
			if (c < 0 || row >= nrec)
				fail_msg("%s: bad expectation: %s", e->name, line);
			const Crmsync__Record *r = &recs[row];
			if (!same_value(r->values[c], norm_isnull(&r->null_mask, (size_t)c), want))
				fail_msg("%s row %d: %s = %s, expected %s", e->name, row, col,
				    norm_isnull(&r->null_mask, (size_t)c) ? "NULL" : r->values[c], want);
		} else if (sscanf(line, "child %d %63s %d", &row, table, &n) == 3) {
			int c = child_index(e, table), count = 0;
			if (c < 0 || row >= nrec)
				fail_msg("%s: bad expectation: %s", e->name, line);
			nth_child(&recs[row], c, 0, &count);
			if (count != n)
				fail_msg("%s row %d: %d rows in %s, expected %d", e->name, row, count, table, n);
		} else if (sscanf(line, "childval %d %63s %d %63s %4095[^\n]", &row, table, &k, col, want) == 5) {
			int c = child_index(e, table);
			if (c < 0 || row >= nrec)
				fail_msg("%s: bad expectation: %s", e->name, line);
			const struct cat_child *ch = &e->children[c];
			const Crmsync__ChildRow *cr = nth_child(&recs[row], c, k, NULL);
			int ci = col_index(ch->cols, ch->ncols, col);
			if (cr == NULL || ci < 0)
				fail_msg("%s: no child row %d of %s / column %s", e->name, k, table, col);
			if (!same_value(cr->values[ci], norm_isnull(&cr->null_mask, (size_t)ci), want))
				fail_msg("%s row %d %s[%d].%s = %s, expected %s", e->name, row, table, k, col,
				    norm_isnull(&cr->null_mask, (size_t)ci) ? "NULL" : cr->values[ci], want);
		} else {
			fail_msg("%s: cannot read %s line: %s", e->name, path, line);
		}
		checks++;
	}
	fclose(f);
	if (checks < 2)
		fail_msg("%s: the fixture checks almost nothing", e->name);
	/* Every record keeps its row's JSON byte for byte, and the version is the CF_VERSION. */
	for (int i = 0; i < nrec; i++)
		assert_true(recs[i].raw_json.len > 2 && recs[i].raw_json.data[0] == '{');
	arena_free(&ar);
	json_free(&j);
	free(data);
}

static void
test_every_entity_lands_field_exact(void **state)
{
	(void)state;
	for (size_t i = 0; i < catalog_amo.nentities; i++)
		check_entity(&catalog_amo.entities[i]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_entity_lands_field_exact),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
