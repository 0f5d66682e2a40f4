/* log_test.c - logfmt lines and secret redaction (stderr captured through a pipe). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"

static char out[8192];

static void
capture(void (*fn)(void))
{
	int p[2], saved = dup(2);
	ssize_t n;

	assert_int_equal(pipe(p), 0);
	dup2(p[1], 2);
	fn();
	dup2(saved, 2);
	close(p[1]);
	n = read(p[0], out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	close(p[0]);
	close(saved);
}

static void
emit(void)
{
	log_init("test", 0);
	log_secret("s3cr3t-token-value");
	log_warnx("auth.failed", "url=%s token=%s", lq("https://x/?authkey=s3cr3t-token-value"),
	    "s3cr3t-token-value");
	log_debug("hidden", "not shown without -v");
	log_info("quote.test", "reason=%s", lq("a \"quoted\"\nline"));
}

static void
test_redaction_and_format(void **state)
{
	(void)state;
	capture(emit);
	assert_null(strstr(out, "s3cr3t"));
	assert_non_null(strstr(out, "token=***"));
	assert_non_null(strstr(out, "lvl=warn svc=test ev=auth.failed"));
	assert_null(strstr(out, "hidden"));
	assert_non_null(strstr(out, "reason=\"a \\\"quoted\\\"\\nline\""));
	/* One line per event. */
	int lines = 0;
	for (char *p = out; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 2);
}

static void
emit_rotations(void)
{
	char tok[64];

	log_init("test", 0);
	log_secret("pinned-config-secret");
	/* A long-running service sees many rotated tokens; the newest and the pinned stay hidden. */
	for (int i = 0; i < 200; i++) {
		snprintf(tok, sizeof(tok), "rotated-token-%04d", i);
		log_secret(tok);
	}
	log_warnx("rotation", "new=%s config=%s", "rotated-token-0199", "pinned-config-secret");
}

static void
test_redaction_survives_rotations(void **state)
{
	(void)state;
	capture(emit_rotations);
	assert_null(strstr(out, "rotated-token-0199"));
	assert_null(strstr(out, "pinned-config-secret"));
}

/* libpq's multi-line errors ("...\n\tIs the server running...") and other control bytes. */
static void
emit_controls(void)
{
	log_init("test", 0);
	log_warnx("db.down", "err=%s", lq("could not connect: No such file\n\tIs the server running?\r\x01"));
	/* A caller that formats a raw multi-line message without lq() still gets one line. */
	log_warnx("db.raw", "msg=%s tail=1", "line one\nline\ttwo\x1b[31m");
}

static void
test_control_characters_escaped_one_line(void **state)
{
	(void)state;
	capture(emit_controls);
	assert_non_null(strstr(out, "err=\"could not connect: No such file\\n\\tIs the server running?\\r\\x01\""));
	assert_non_null(strstr(out, "msg=line one\\nline\\ttwo\\x1b[31m tail=1"));
	assert_null(strstr(out, "?Is"));
	/* exactly two lines, no raw control byte except their two newlines */
	int lines = 0;
	for (char *p = out; *p; p++) {
		unsigned char c = (unsigned char)*p;
		lines += c == '\n';
		assert_true(c >= 0x20 || c == '\n');
	}
	assert_int_equal(lines, 2);
}

/* An escaped line longer than the line buffer is cut, still one line. */
static void
emit_long_controls(void)
{
	char big[3000];

	memset(big, '\t', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_init("test", 0);
	log_warnx("long", "v=%s", big);
}

static void
test_long_escaped_line_cut(void **state)
{
	(void)state;
	capture(emit_long_controls);
	assert_int_equal(strchr(out, '\n') - out + 1, (long)strlen(out));
	assert_true(strlen(out) <= 4096 + 8);
	assert_non_null(strstr(out, "..."));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_redaction_and_format),
		cmocka_unit_test(test_redaction_survives_rotations),
		cmocka_unit_test(test_control_characters_escaped_one_line),
		cmocka_unit_test(test_long_escaped_line_cut),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
