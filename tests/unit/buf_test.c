/* buf_test.c - bounded buffer and arena: limits hold, failed appends leave data intact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "arena.h"
#include "buf.h"
#include "errors.h"

static void
test_buf_limit(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 10);
	assert_int_equal(buf_addstr(&b, "hello"), 0);
	assert_int_equal(buf_printf(&b, "%d", 12345), 0);
	assert_int_equal(b.len, 10);
	assert_int_equal(buf_addc(&b, 'x'), CS_ETOOBIG);
	assert_int_equal(buf_printf(&b, "%s", "more"), CS_ETOOBIG);
	assert_string_equal(b.data, "hello12345");
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static void
test_arena(void **state)
{
	struct arena a;

	(void)state;
	arena_init(&a, 200000);
	char *p = arena_strndup(&a, "abc", 3);
	for (int i = 0; i < 100; i++)
		assert_non_null(arena_alloc(&a, 1000));	/* spans several blocks */
	assert_string_equal(p, "abc");			/* earlier pointers stay valid */
	assert_null(arena_alloc(&a, 150000));		/* over the limit */
	assert_int_equal((uintptr_t)arena_alloc(&a, 3) % 16, 0);
	arena_reset(&a);
	assert_non_null(arena_alloc(&a, 150000));
	arena_reset(&a);
}

/* COPY text: the four escapes, NUL refused, \N for NULL. */
static void
test_copytext(void **state)
{
	struct buf b;
	static const char in[] = "a\\b\tc\nd\re\"{}";

	(void)state;
	buf_init(&b, 1024);
	assert_int_equal(buf_add_copytext(&b, in, sizeof(in) - 1), 0);
	assert_int_equal(buf_addc(&b, '|'), 0);
	assert_int_equal(buf_add_copy_null(&b), 0);
	assert_string_equal(b.data, "a\\\\b\\tc\\nd\\re\"{}|\\N");
	assert_int_equal(buf_add_copytext(&b, "x\0y", 3), CS_EINVAL);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_limit),
		cmocka_unit_test(test_copytext),
		cmocka_unit_test(test_arena),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
