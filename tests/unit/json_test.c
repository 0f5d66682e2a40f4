/* json_test.c - the jsmn view: lookups, paths, strings, numbers, limits, malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "errors.h"
#include "json.h"

static const char doc[] =
    "{\"Students\":[{\"ClientId\":2,\"Name\":\"\\u0418\\u0432\\u0430\\u043d\",\"Tags\":[\"a\",\"b\"],"
    "\"Nested\":{\"Deep\":{\"X\":-7}}},{\"ClientId\":3,\"Name\":\"Мария \\\"М\\\"\",\"Emoji\":\"\\ud83d\\ude00\"}],"
    "\"Now\":\"2024-01-01T10:00:00\",\"Empty\":[],\"N\":null,\"B\":true,\"F\":12.0}";

static void
test_lookup_and_paths(void **state)
{
	struct json j;
	char s[128];
	int64_t v;

	(void)state;
	assert_int_equal(json_parse(&j, doc, strlen(doc), 1000), 0);
	int arr = json_get(&j, 0, "Students");
	assert_int_equal(json_kind(&j, arr), JK_ARRAY);
	assert_int_equal(json_size(&j, arr), 2);
	int second = json_skip(&j, json_first(&j, arr));
	assert_int_equal(json_int64(&j, json_get(&j, second, "ClientId"), &v), 0);
	assert_int_equal(v, 3);
	assert_int_equal(json_int64(&j, json_path(&j, 0, "Students.0.Nested.Deep.X"), &v), 0);
	assert_int_equal(v, -7);
	assert_int_equal(json_str(&j, json_path(&j, 0, "Students.0.Tags.1"), s, sizeof(s), NULL), 0);
	assert_string_equal(s, "b");
	assert_int_equal(json_path(&j, 0, "Students.2"), -1);
	assert_int_equal(json_path(&j, 0, "Nope.x"), -1);
	assert_int_equal(json_kind(&j, json_get(&j, 0, "N")), JK_NULL);
	assert_int_equal(json_kind(&j, json_get(&j, 0, "Missing")), JK_ABSENT);
	assert_int_equal(json_first(&j, json_get(&j, 0, "Empty")), -1);
	assert_int_equal(json_int64(&j, json_get(&j, 0, "F"), &v), 0);	/* 12.0 is an integer */
	assert_int_equal(v, 12);
	json_free(&j);
}

static void
test_strings_unescape(void **state)
{
	struct json j;
	char s[128];
	size_t n;

	(void)state;
	assert_int_equal(json_parse(&j, doc, strlen(doc), 1000), 0);
	assert_int_equal(json_str(&j, json_path(&j, 0, "Students.0.Name"), s, sizeof(s), &n), 0);
	assert_string_equal(s, "Иван");
	assert_int_equal(json_str(&j, json_path(&j, 0, "Students.1.Name"), s, sizeof(s), NULL), 0);
	assert_string_equal(s, "Мария \"М\"");
	assert_int_equal(json_str(&j, json_path(&j, 0, "Students.1.Emoji"), s, sizeof(s), NULL), 0);
	assert_string_equal(s, "\xF0\x9F\x98\x80");
	/* Too small a buffer is an error, not a truncation. */
	assert_int_equal(json_str(&j, json_path(&j, 0, "Students.1.Name"), s, 4, NULL), CS_ETOOBIG);
	/* Raw text of a row is the source bytes. */
	size_t len;
	const char *raw = json_text(&j, json_path(&j, 0, "Students.0.Tags"), &len);
	assert_int_equal(len, 9);
	assert_memory_equal(raw, "[\"a\",\"b\"]", 9);
	json_free(&j);
}

static void
test_malformed_and_limits(void **state)
{
	static const char *const bad[] = {
		"", "{", "{\"a\":}", "[1,2", "{\"a\":1} trailing", "{'a':1}", "{\"a\":tru}", "\"\\u12\"",
	};
	struct json j;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_not_equal(json_parse(&j, bad[i], strlen(bad[i]), 100), 0);
	assert_int_equal(json_parse(&j, doc, strlen(doc), 10), CS_ETOOBIG);
	/* Nesting deeper than 64 levels is refused. */
	char deep[200];
	memset(deep, '[', 100);
	memset(deep + 100, ']', 100);
	assert_int_equal(json_parse(&j, deep, sizeof(deep), 1000), CS_EJSON);
	assert_int_equal(json_parse(&j, deep + 40, 120, 1000), 0);
	json_free(&j);
	/* Bad escapes are refused when decoded. */
	char out[16];
	assert_true(json_unescape("\\ud800x", 7, out, sizeof(out)) < 0);
	assert_true(json_unescape("\\u0000", 6, out, sizeof(out)) < 0);
	assert_true(json_unescape("\\q", 2, out, sizeof(out)) < 0);
}

/* Token-dense input outgrows the first token array: the parse resumes and is exact. */
static void
test_token_array_grows(void **state)
{
	static char src[256 * 1024];
	struct json j;
	size_t o = 0;
	int64_t v;

	(void)state;
	o += (size_t)snprintf(src + o, sizeof(src) - o, "{\"rows\":[");
	for (int i = 0; i < 5000; i++)
		o += (size_t)snprintf(src + o, sizeof(src) - o, "%s[%d,\"x\",{}]", i ? "," : "", i);
	o += (size_t)snprintf(src + o, sizeof(src) - o, "]}");
	assert_true(o < sizeof(src));
	assert_int_equal(json_parse(&j, src, o, 1000000), 0);
	assert_int_equal(j.ntok, 3 + 5000 * 4);
	int rows = json_get(&j, 0, "rows");
	assert_int_equal(json_size(&j, rows), 5000);
	int t = json_first(&j, rows);
	for (int i = 0; i < 4999; i++)
		t = json_skip(&j, t);
	assert_int_equal(json_int64(&j, json_first(&j, t), &v), 0);
	assert_int_equal(v, 4999);
	/* Skipping a nested value lands on the next sibling, whatever its size. */
	assert_int_equal(json_skip(&j, rows), j.ntok);
	assert_int_equal(json_skip(&j, json_first(&j, rows)), json_first(&j, rows) + 4);
	assert_int_equal(json_skip(&j, 1), 2);	/* a key: its value follows */
	json_free(&j);
	/* The limit still holds when it is only reached after growing. */
	assert_int_equal(json_parse(&j, src, o, 10000), CS_ETOOBIG);
}

/*
 * Hostile nesting is refused at the bracket too many, before the rest of the input is read:
 * the input claims 400 KB but only its first page is readable; any read past it (what jsmn
 * did, walking the parent chain at each of 200,000 closing brackets: quadratic time) faults.
 */
static void
test_deep_nesting_refused_before_full_parse(void **state)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), len = 400 * 1024;
	size_t maplen = (len + page - 1) / page * page;
	struct json j;
	char *m;

	(void)state;
	m = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(m != MAP_FAILED);
	memset(m, '[', page);
	assert_int_equal(mprotect(m + page, maplen - page, PROT_NONE), 0);
	assert_int_equal(mprotect(m, page, PROT_READ), 0);
	assert_int_equal(json_parse(&j, m, len, 1 << 20), CS_EJSON);
	munmap(m, maplen);
}

/* The depth scan sees what jsmn sees: brackets in strings (escaped quotes too) do not count. */
static void
test_depth_check_follows_tokens(void **state)
{
	static char src[8192];
	struct json j;
	size_t o;

	(void)state;
	/* exactly the limit: accepted; one more: refused at that bracket */
	memset(src, '[', JSON_MAX_DEPTH);
	memset(src + JSON_MAX_DEPTH, ']', JSON_MAX_DEPTH);
	assert_int_equal(json_depth_check(src, 2 * JSON_MAX_DEPTH, JSON_MAX_DEPTH), 2 * JSON_MAX_DEPTH);
	assert_int_equal(json_parse(&j, src, 2 * JSON_MAX_DEPTH, 1000), 0);
	json_free(&j);
	o = (size_t)snprintf(src, sizeof(src), "{\"a\":");
	memset(src + o, '[', JSON_MAX_DEPTH);
	memset(src + o + JSON_MAX_DEPTH, ']', JSON_MAX_DEPTH);
	src[o + 2 * JSON_MAX_DEPTH] = '}';
	assert_int_equal(json_depth_check(src, o + 2 * JSON_MAX_DEPTH + 1, JSON_MAX_DEPTH),
	    o + JSON_MAX_DEPTH - 1);
	assert_int_equal(json_parse(&j, src, o + 2 * JSON_MAX_DEPTH + 1, 1000), CS_EJSON);
	/* 3,000 brackets inside a string (with an escaped quote before them) are text */
	o = (size_t)snprintf(src, sizeof(src), "[\"x\\\"");
	memset(src + o, '[', 3000);
	o += 3000;
	o += (size_t)snprintf(src + o, sizeof(src) - o, "\",[1,{\"k\":\"]]]{{{\"}]]");
	assert_int_equal(json_depth_check(src, o, JSON_MAX_DEPTH), o);
	assert_int_equal(json_parse(&j, src, o, 1000), 0);
	assert_int_equal(json_size(&j, 0), 2);
	json_free(&j);
	/* deep but legal, many times over: accepted (linear: each bracket walks <= 64 tokens) */
	o = 0;
	while (o + 2 * JSON_MAX_DEPTH + 3 < sizeof(src)) {
		src[o] = o == 0 ? '[' : ',';
		o++;
		memset(src + o, '[', JSON_MAX_DEPTH - 1);
		memset(src + o + JSON_MAX_DEPTH - 1, ']', JSON_MAX_DEPTH - 1);
		o += 2 * (JSON_MAX_DEPTH - 1);
	}
	src[o++] = ']';
	assert_int_equal(json_parse(&j, src, o, 100000), 0);
	json_free(&j);
	/* a NUL ends the input for jsmn: brackets after it are not counted (and are garbage) */
	memcpy(src, "[1]\0[[[[", 9);
	assert_int_equal(json_depth_check(src, 9, 2), 9);
}

/* Issue 16 item 5: PostgreSQL's jsonb keeps the last of two equal keys, a lookup the first;
 * json_dup_key finds them at any depth, written plainly or with escapes, in small and big
 * objects, so a row read two ways can be refused. */
static void
test_duplicate_keys_found(void **state)
{
	static const char *const dups[] = {
		"{\"id\":1,\"name\":\"a\",\"id\":2}",
		"{\"id\":1,\"\\u0069d\":2}",
		"[{\"a\":1},{\"x\":{\"y\":1,\"y\":1}}]",
	};
	struct json j;
	char big[8192];
	int dup;
	size_t n, len;

	(void)state;
	for (size_t i = 0; i < sizeof(dups) / sizeof(dups[0]); i++) {
		assert_int_equal(json_parse(&j, dups[i], strlen(dups[i]), 1000), 0);
		assert_int_equal(json_dup_key(&j, 0, &dup), 0);
		assert_true(dup > 0);
		json_free(&j);
	}
	/* the lookup decodes escaped keys too: "\u0069d" is "id" */
	assert_int_equal(json_parse(&j, dups[1], strlen(dups[1]), 1000), 0);
	assert_int_equal(json_get(&j, 0, "id"), 2);
	json_free(&j);
	assert_int_equal(json_parse(&j, doc, strlen(doc), 1000), 0);
	assert_int_equal(json_dup_key(&j, 0, &dup), 0);
	assert_int_equal(dup, -1);
	json_free(&j);
	/* 200 members: hashed and sorted; the repeat is the last one, found by its token */
	n = (size_t)snprintf(big, sizeof(big), "{");
	for (int i = 0; i < 200; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "%s\"k%d\":%d", i ? "," : "", i, i);
	len = n;
	n += (size_t)snprintf(big + n, sizeof(big) - n, "}");
	assert_int_equal(json_parse(&j, big, n, 10000), 0);
	assert_int_equal(json_dup_key(&j, 0, &dup), 0);
	assert_int_equal(dup, -1);
	json_free(&j);
	n = len + (size_t)snprintf(big + len, sizeof(big) - len, ",\"k17\":0}");
	assert_int_equal(json_parse(&j, big, n, 10000), 0);
	assert_int_equal(json_dup_key(&j, 0, &dup), 0);
	assert_int_equal(dup, j.ntok - 2);
	json_free(&j);
}

/* A key found through its escapes wherever they start (key_is compares the raw bytes up
 * to the first escape, then decodes), and only the whole key matches. */
static void
test_escaped_keys_found(void **state)
{
	static const char keys[] =
	    "{\"ClientIdNo\":1,\"Cl\\u0069entId\":2,\"\\u004eame\":3,"
	    "\"a\\\\\\u0062c\":4,\"x\\\\y\":5,\"Client\":6}";
	struct json j;
	int64_t v;

	(void)state;
	assert_int_equal(json_parse(&j, keys, strlen(keys), 1000), 0);
	assert_int_equal(json_int64(&j, json_get(&j, 0, "ClientId"), &v), 0);
	assert_int_equal(v, 2);
	assert_int_equal(json_int64(&j, json_get(&j, 0, "Name"), &v), 0);
	assert_int_equal(v, 3);
	/* "a\\\u0062c" is a, backslash, b, c: an escaped backslash, then one more escape */
	assert_int_equal(json_int64(&j, json_get(&j, 0, "a\\bc"), &v), 0);
	assert_int_equal(v, 4);
	assert_int_equal(json_int64(&j, json_get(&j, 0, "x\\y"), &v), 0);
	assert_int_equal(v, 5);
	assert_int_equal(json_int64(&j, json_get(&j, 0, "Client"), &v), 0);
	assert_int_equal(v, 6);
	assert_int_equal(json_get(&j, 0, "ClientI"), -1);
	assert_int_equal(json_get(&j, 0, "a\\b"), -1);
	assert_int_equal(json_get(&j, 0, "Nam"), -1);
	json_free(&j);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookup_and_paths),
		cmocka_unit_test(test_strings_unescape),
		cmocka_unit_test(test_malformed_and_limits),
		cmocka_unit_test(test_token_array_grows),
		cmocka_unit_test(test_deep_nesting_refused_before_full_parse),
		cmocka_unit_test(test_depth_check_follows_tokens),
		cmocka_unit_test(test_duplicate_keys_found),
		cmocka_unit_test(test_escaped_keys_found),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
