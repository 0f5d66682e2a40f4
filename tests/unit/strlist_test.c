/*
 * strlist_test.c - the comma-list walker every config value and catalogue list goes
 * through: separators, blanks, empty items, whole-item matches, indexing and bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "errors.h"
#include "strlist.h"

static void
test_strlist_walks_items_and_skips_blanks(void **state)
{
	const char *cur = " leads,contacts , ,companies,,", *item;
	const char *want[] = { "leads", "contacts", "companies" };
	size_t len, n = 0;

	(void)state;
	while (strlist_next(&cur, &item, &len)) {
		assert_true(n < 3);
		assert_int_equal(len, strlen(want[n]));
		assert_memory_equal(item, want[n], len);
		n++;
	}
	assert_int_equal(n, 3);
	assert_false(strlist_next(&cur, &item, &len));	/* stays at the end */
}

static void
test_strlist_empty_and_null_lists_have_no_items(void **state)
{
	const char *cur = NULL, *item;
	size_t len;

	(void)state;
	assert_false(strlist_next(&cur, &item, &len));
	cur = "";
	assert_false(strlist_next(&cur, &item, &len));
	cur = " , ,";
	assert_false(strlist_next(&cur, &item, &len));
	assert_false(strlist_has(NULL, "a", 1));
	assert_false(strlist_has_str("a,b", NULL));
}

static void
test_strlist_has_matches_whole_items_only(void **state)
{
	(void)state;
	assert_true(strlist_has_str("lead,task", "lead"));
	assert_true(strlist_has_str("lead,task", "task"));
	assert_true(strlist_has_str("students groups", "groups"));
	assert_false(strlist_has_str("leads,tasks", "lead"));	/* a prefix is not an item */
	assert_false(strlist_has_str("lead,task", "leads"));
	assert_false(strlist_has_str("lead,task", ""));
	assert_true(strlist_has("common_note,x", "common_note_deleted", 11));
}

static void
test_strlist_nth_copies_and_bounds(void **state)
{
	char dst[12];

	(void)state;
	assert_int_equal(strlist_nth("entity_type,entity_id", 0, dst, 12), 0);
	assert_int_equal(strlist_nth("a, bb ,ccc", 1, dst, sizeof(dst)), 0);
	assert_string_equal(dst, "bb");
	assert_int_equal(strlist_nth("a, bb ,ccc", 2, dst, sizeof(dst)), 0);
	assert_string_equal(dst, "ccc");
	assert_int_equal(strlist_nth("a, bb ,ccc", 3, dst, sizeof(dst)), CS_ENOENT);
	assert_int_equal(strlist_nth("abcdefghijkl", 0, dst, sizeof(dst)), CS_ETOOBIG);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strlist_walks_items_and_skips_blanks),
		cmocka_unit_test(test_strlist_empty_and_null_lists_have_no_items),
		cmocka_unit_test(test_strlist_has_matches_whole_items_only),
		cmocka_unit_test(test_strlist_nth_copies_and_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
