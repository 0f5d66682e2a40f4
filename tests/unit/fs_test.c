/*
 * fs_test.c - fs_mkdirs (mkdir -p): nested creation, an existing tree, a file in the way,
 * and bad arguments.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "errors.h"
#include "fs.h"

static char root[64];

static int
setup(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "/tmp/fs_test.XXXXXX");
	return mkdtemp(root) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	return system(cmd) == 0 ? 0 : -1;
}

static int
is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void
test_fs_mkdirs_creates_every_missing_parent(void **state)
{
	char p[256];

	(void)state;
	snprintf(p, sizeof(p), "%s/a/b/c", root);
	assert_int_equal(fs_mkdirs(p, 0750, NULL, 0), 0);
	assert_true(is_dir(p));
	/* Again, with a trailing slash: the tree exists, nothing to do. */
	snprintf(p, sizeof(p), "%s/a/b/c/", root);
	assert_int_equal(fs_mkdirs(p, 0750, NULL, 0), 0);
}

static void
test_fs_mkdirs_reports_the_component_that_failed(void **state)
{
	char p[256], f[256], failed[256] = "";
	FILE *fp;

	(void)state;
	snprintf(f, sizeof(f), "%s/file", root);
	assert_non_null(fp = fopen(f, "w"));
	fclose(fp);
	snprintf(p, sizeof(p), "%s/file/sub", root);
	assert_int_equal(fs_mkdirs(p, 0750, failed, sizeof(failed)), CS_EIO);
	assert_int_equal(errno, ENOTDIR);
	assert_string_equal(failed, p);
}

static void
test_fs_mkdirs_refuses_empty_and_overlong_paths(void **state)
{
	char *big = malloc(8192);

	(void)state;
	assert_non_null(big);
	memset(big, 'a', 8191);
	big[8191] = '\0';
	assert_int_equal(fs_mkdirs("", 0750, NULL, 0), CS_EINVAL);
	assert_int_equal(fs_mkdirs(big, 0750, NULL, 0), CS_EINVAL);
	free(big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fs_mkdirs_creates_every_missing_parent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fs_mkdirs_reports_the_component_that_failed, setup, teardown),
		cmocka_unit_test(test_fs_mkdirs_refuses_empty_and_overlong_paths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
