/* cfg_test.c - the environment configuration table: parsing, limits, defaults, redaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cfg.h"
#include "errors.h"

struct conf {
	char	*url;
	char	*secret;
	int64_t	 n;
	int64_t	 timeout;
	int64_t	 size;
	int	 flag;
};

/* Written with CFG_KEY, as the services write theirs. */
#define CFG_STRUCT struct conf
static const struct cfg_key keys[] = {
	CFG_KEY("T_URL", CFG_STR, url, "tcp://x", 0, 0, "url"),
	CFG_KEY("T_SECRET", CFG_SECRET, secret, "", 0, 0, "secret"),
	CFG_KEY("T_N", CFG_INT, n, "5", 1, 10, "n"),
	CFG_KEY("T_TIMEOUT", CFG_DURATION, timeout, "2s", 0, 0, "timeout"),
	CFG_KEY("T_SIZE", CFG_BYTES, size, "1KiB", 0, 0, "size"),
	CFG_KEY("T_FLAG", CFG_BOOL, flag, "off", 0, 0, "flag"),
};

static void
clear_env(void)
{
	for (size_t i = 0; i < CFG_NKEYS(keys); i++)
		unsetenv(keys[i].name);
}

static void
test_defaults(void **state)
{
	struct conf c = { 0 };
	char err[256];

	(void)state;
	clear_env();
	assert_int_equal(cfg_load(keys, CFG_NKEYS(keys), &c, err, sizeof(err)), 0);
	assert_string_equal(c.url, "tcp://x");
	assert_int_equal(c.n, 5);
	assert_int_equal(c.timeout, 2000);
	assert_int_equal(c.size, 1024);
	assert_int_equal(c.flag, 0);
	cfg_free(keys, CFG_NKEYS(keys), &c);
	assert_null(c.url);
}

static void
test_values_and_units(void **state)
{
	struct conf c = { 0 };
	char err[256];

	(void)state;
	clear_env();
	setenv("T_N", "10", 1);
	setenv("T_TIMEOUT", "250ms", 1);
	setenv("T_SIZE", "64MiB", 1);
	setenv("T_FLAG", "yes", 1);
	assert_int_equal(cfg_load(keys, CFG_NKEYS(keys), &c, err, sizeof(err)), 0);
	assert_int_equal(c.n, 10);
	assert_int_equal(c.timeout, 250);
	assert_int_equal(c.size, 64 << 20);
	assert_int_equal(c.flag, 1);
	cfg_free(keys, CFG_NKEYS(keys), &c);
	int64_t v;
	assert_int_equal(cfg_parse_duration("3m", &v), 0);
	assert_int_equal(v, 180000);
	assert_int_equal(cfg_parse_duration("1d", &v), 0);
	assert_int_equal(v, 86400000);
	assert_int_equal(cfg_parse_duration("5", &v), 0);
	assert_int_equal(v, 5000);
}

static void
test_bad_values_are_errors(void **state)
{
	static const char *const bad[][2] = {
		{ "T_N", "abc" }, { "T_N", "12x" }, { "T_N", "11" }, { "T_N", "0" }, { "T_N", "" },
		{ "T_TIMEOUT", "5 parsecs" }, { "T_TIMEOUT", "-1s" }, { "T_SIZE", "1TB!" },
		{ "T_FLAG", "maybe" }, { "T_N", "99999999999999999999999" },
	};
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct conf c = { 0 };
		clear_env();
		setenv(bad[i][0], bad[i][1], 1);
		assert_int_equal(cfg_load(keys, CFG_NKEYS(keys), &c, err, sizeof(err)), CS_ECONFIG);
		/* The message names the variable. */
		assert_non_null(strstr(err, bad[i][0]));
		cfg_free(keys, CFG_NKEYS(keys), &c);
	}
	/* ...and says what would have been right, in the terms of --help */
	static const char *const says[][3] = {
		{ "T_TIMEOUT", "5 parsecs", "is not a duration such as 250ms, 5s" },
		{ "T_SIZE", "1TB!", "is not a size such as 512, 64KiB" },
		{ "T_N", "abc", "is not a whole number" },
		{ "T_FLAG", "maybe", "is not on or off" },
	};
	for (size_t i = 0; i < sizeof(says) / sizeof(says[0]); i++) {
		struct conf c = { 0 };
		clear_env();
		setenv(says[i][0], says[i][1], 1);
		assert_int_equal(cfg_load(keys, CFG_NKEYS(keys), &c, err, sizeof(err)), CS_ECONFIG);
		if (strstr(err, says[i][2]) == NULL)
			fail_msg("%s=%s: \"%s\" does not say \"%s\"", says[i][0], says[i][1], err, says[i][2]);
		cfg_free(keys, CFG_NKEYS(keys), &c);
	}
}

static void
test_print_redacts_secret(void **state)
{
	struct conf c = { 0 };
	char err[256], out[4096] = "";
	FILE *f;

	(void)state;
	clear_env();
	setenv("T_SECRET", "hunter2-very-secret", 1);
	assert_int_equal(cfg_load(keys, CFG_NKEYS(keys), &c, err, sizeof(err)), 0);
	f = fmemopen(out, sizeof(out) - 1, "w");
	cfg_print(f, keys, CFG_NKEYS(keys), &c);
	cfg_usage(f, keys, CFG_NKEYS(keys));
	fclose(f);
	assert_null(strstr(out, "hunter2"));
	assert_non_null(strstr(out, "T_SECRET=***"));
	cfg_free(keys, CFG_NKEYS(keys), &c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_values_and_units),
		cmocka_unit_test(test_bad_values_are_errors),
		cmocka_unit_test(test_print_redacts_secret),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
