/* readguard_test.c - a page sequence that repeats, keys going back, an implausible size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "arena.h"
#include "catalog.h"
#include "errors.h"
#include "json.h"
#include "normalise.h"
#include "readguard.h"

/* Feed one page of students (ClientId keys from..from+n-1, names tagged with `tag`). */
static int
page(struct readguard *g, int from, int n, const char *tag, char *why, size_t cap)
{
	const struct cat_entity *e = catalog_find(CAT_HOLLIHOP, "students");
	char src[8192];
	size_t o = 0;
	struct arena a;
	struct json j;
	struct norm_ctx ctx = { 0 };
	int rv, t;

	o += (size_t)snprintf(src + o, sizeof(src) - o, "[");
	for (int i = 0; i < n; i++)
		o += (size_t)snprintf(src + o, sizeof(src) - o, "%s{\"ClientId\":%d,\"FirstName\":\"%s\"}",
		    i ? "," : "", from + i, tag);
	o += (size_t)snprintf(src + o, sizeof(src) - o, "]");
	assert_int_equal(json_parse(&j, src, o, 10000), 0);
	arena_init(&a, 1u << 20);
	readguard_page_begin(g);
	t = json_first(&j, 0);
	for (int i = 0; i < n; i++, t = json_skip(&j, t)) {
		Crmsync__Record rec;
		char err[256];
		assert_int_equal(normalise_row(e, &j, t, &ctx, &a, &rec, NULL, err, sizeof(err)), 0);
		readguard_row(g, &rec);
	}
	rv = readguard_page_end(g, src, o, why, cap);
	arena_free(&a);
	json_free(&j);
	return rv;
}

static void
test_loop_of_identical_pages_stops(void **state)
{
	struct readguard *g;
	char why[512];

	(void)state;
	assert_int_equal(readguard_new(&g, catalog_find(CAT_HOLLIHOP, "students"), -1, 4), 0);
	assert_int_equal(readguard_limit(g), -1);
	assert_int_equal(page(g, 1, 3, "a", why, sizeof(why)), 0);
	assert_int_equal(page(g, 4, 3, "a", why, sizeof(why)), 0);
	/* 1,2,1: page 1 again, not the page just before it */
	assert_int_equal(page(g, 1, 3, "a", why, sizeof(why)), CS_EPROTO);
	assert_non_null(strstr(why, "repeats an earlier page"));
	/* a new pass (another parent value) may see the same rows again */
	readguard_pass(g);
	assert_int_equal(page(g, 1, 3, "a", why, sizeof(why)), 0);
	readguard_free(g);
}

static void
test_keys_going_back_stop(void **state)
{
	struct readguard *g;
	char why[512];

	(void)state;
	assert_int_equal(readguard_new(&g, catalog_find(CAT_HOLLIHOP, "students"), -1, 4), 0);
	assert_int_equal(page(g, 1, 4, "a", why, sizeof(why)), 0);
	assert_int_equal(page(g, 5, 4, "a", why, sizeof(why)), 0);
	/* a row seen twice (offset paging while rows move) is normal; a short tail too */
	assert_int_equal(page(g, 8, 4, "a", why, sizeof(why)), 0);
	assert_int_equal(page(g, 11, 1, "a", why, sizeof(why)), 0);
	assert_int_equal(page(g, 11, 1, "b", why, sizeof(why)), 0);
	/* a full page of rows read before, with new content (edited meanwhile): went back */
	assert_int_equal(page(g, 1, 4, "changed", why, sizeof(why)), CS_EPROTO);
	assert_non_null(strstr(why, "went back"));
	readguard_free(g);
}

static void
test_rows_bounded_by_last_complete_read(void **state)
{
	struct readguard *g;
	char why[512];
	int rv = 0, pages = 0;

	(void)state;
	/* last complete read: 10 rows; growth 2 -> bound 20 + slack */
	assert_int_equal(readguard_new(&g, catalog_find(CAT_HOLLIHOP, "students"), 10, 2), 0);
	assert_int_equal(readguard_limit(g), 20 + READGUARD_SLACK_ROWS);
	for (int k = 0; rv == 0 && k < 1000; k++, pages++)
		rv = page(g, 1 + k * 50, 50, "x", why, sizeof(why));
	assert_int_equal(rv, CS_ETOOBIG);
	assert_int_equal(readguard_rows(g), (int64_t)pages * 50);
	assert_true(readguard_rows(g) > 20 + READGUARD_SLACK_ROWS);
	assert_true(readguard_rows(g) <= 20 + READGUARD_SLACK_ROWS + 50);
	assert_non_null(strstr(why, "more than is plausible"));
	readguard_free(g);
	/* growth 0: no bound */
	assert_int_equal(readguard_new(&g, catalog_find(CAT_HOLLIHOP, "students"), 10, 0), 0);
	assert_int_equal(readguard_limit(g), -1);
	readguard_free(g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loop_of_identical_pages_stops),
		cmocka_unit_test(test_keys_going_back_stop),
		cmocka_unit_test(test_rows_bounded_by_last_complete_read),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
