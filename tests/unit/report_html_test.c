/*
 * report_html_test.c - crmsyncctl report's renderers on rows made in memory (libpq's
 * PQmakeEmptyPGresult, no server): escaping, data-k keys of every kind of row, bars below
 * zero, labels cut at a character (not byte) boundary in the chart only, "no data yet",
 * the output limit, and --text columns that line up with Cyrillic labels.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "errors.h"
#include "report.h"

static const struct rep_col cols[] = {
	{ "net", "net", REP_MONEY },
	{ "rate", "rate", REP_PCT },
};

static const struct rep_section sec = {
	.id = "t.s", .title = "Title <T>", .about = "About & more", .table = "analytics.t",
	.row_header = "row", .none_label = "(no row)", .shape = REP_BARS, .cols = cols, .ncols = 2,
	.bar = 0, .bar_note = -1, .more = "more not shown", .sql = "",
};

/* A result with the report's columns; rows[i] = { grp, grp_label, kind, key, label, net, rate }. */
static PGresult *
result(const char *const rows[][7], int n)
{
	PGresAttDesc att[7];
	PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);

	memset(att, 0, sizeof(att));
	for (int c = 0; c < 7; c++) {
		att[c].name = (char *)"c";
		att[c].typid = 25;	/* text */
		att[c].typlen = -1;
		att[c].atttypmod = -1;
	}
	assert_int_equal(PQsetResultAttrs(r, 7, att), 1);
	for (int i = 0; i < n; i++)
		for (int c = 0; c < 7; c++)
			assert_int_equal(PQsetvalue(r, i, c, (char *)rows[i][c],
			    rows[i][c] != NULL ? (int)strlen(rows[i][c]) : -1), 1);
	return r;
}

/* The page (or --text) for one section with these rows; the caller frees b. */
static void
render(struct buf *b, const char *const rows[][7], int n, int text)
{
	struct rep_filter f = { NULL, NULL, "db<1>", "2026-01-01 00:00 UTC" };
	struct rep_w w = { b, 0 };
	PGresult *r = result(rows, n);

	buf_init(b, 1u << 20);
	if (text)
		rep_text(&w, &f, &sec, &r, 1);
	else
		rep_html(&w, &f, &sec, &r, 1);
	assert_int_equal(w.rv, 0);
	PQclear(r);
}

static void
test_escape_every_special_character(void **state)
{
	struct buf b;
	struct rep_w w = { &b, 0 };

	(void)state;
	buf_init(&b, 1024);
	rep_esc(&w, "<b>\"Boss\" & O'Brien</b> Мария");
	assert_string_equal(b.data, "&lt;b&gt;&quot;Boss&quot; &amp; O&#39;Brien&lt;/b&gt; Мария");
	buf_reset(&b);
	rep_esc(&w, "");
	rep_esc(&w, "&&");
	assert_string_equal(b.data, "&amp;&amp;");
	buf_free(&b);
}

static void
test_output_past_the_limit_fails_and_stops(void **state)
{
	struct buf b;
	struct rep_w w = { &b, 0 };

	(void)state;
	buf_init(&b, 16);
	rep_puts(&w, "0123456789");
	rep_putf(&w, "%s", "0123456789");
	assert_int_equal(w.rv, CS_ETOOBIG);
	rep_puts(&w, "x");
	assert_string_equal(b.data, "0123456789");
	buf_free(&b);
}

static void
test_values_and_keys_of_every_row_kind(void **state)
{
	static const char *const rows[][7] = {
		{ "7", "P", "r", "a.b", "A", "1.50", "12.5" },
		{ "7", "P", "n", NULL, NULL, "2.00", NULL },
		{ "7", "P", "o", NULL, "3", "-4.00", "" },
		{ "", "2", "m", NULL, NULL, NULL, NULL },
	};
	PGresult *r = result(rows, 4);
	char k[128];

	(void)state;
	rep_key(k, sizeof(k), &sec, r, 0, "net");
	assert_string_equal(k, "t.s.7.a.b.net");
	rep_key(k, sizeof(k), &sec, r, 1, "net");
	assert_string_equal(k, "t.s.7:none.net");
	rep_key(k, sizeof(k), &sec, r, 2, NULL);
	assert_string_equal(k, "t.s.7:others");
	rep_key(k, sizeof(k), &sec, r, 3, NULL);
	assert_string_equal(k, "t.s:more");
	rep_value(k, sizeof(k), &cols[1], PQgetvalue(r, 0, REP_C_VALUES + 1));
	assert_string_equal(k, "12.5%");
	rep_value(k, sizeof(k), &cols[1], PQgetvalue(r, 1, REP_C_VALUES + 1));
	assert_string_equal(k, "n/a");
	assert_string_equal(rep_label(&sec, r, 1), "(no row)");
	assert_int_equal(rep_nrows(r), 3);
	PQclear(r);
}

static void
test_page_escapes_names_and_draws_negative_bars_red(void **state)
{
	static const char *const rows[][7] = {
		{ "", "", "r", "x\"y", "<i>Boss</i> & Co", "10.00", "50.0" },
		{ "", "", "n", NULL, NULL, "-5.00", NULL },
		{ "", "", "o", NULL, "7", "1.00", "0.0" },
	};
	struct buf b;

	(void)state;
	render(&b, rows, 3, 0);
	assert_null(strstr(b.data, "<i>"));
	assert_non_null(strstr(b.data, "&lt;i&gt;Boss&lt;/i&gt; &amp; Co"));
	assert_non_null(strstr(b.data, "<td data-k=\"t.s.x&quot;y.net\">10.00</td>"));
	assert_non_null(strstr(b.data, "<td data-k=\"t.s:none.rate\">n/a</td>"));
	assert_non_null(strstr(b.data, "<td data-k=\"t.s.x&quot;y.rate\">50.0%</td>"));
	assert_non_null(strstr(b.data, "others (<span data-k=\"t.s:others.count\">7</span> more)"));
	/* the longest magnitude is the full bar; below zero is red, others grey */
	assert_non_null(strstr(b.data, "width=\"300\" height=\"14\" fill=\"#2f6db5\""));
	assert_non_null(strstr(b.data, "width=\"150\" height=\"14\" fill=\"#c0392b\""));
	assert_non_null(strstr(b.data, "width=\"30\" height=\"14\" fill=\"#9aa5b1\""));
	assert_non_null(strstr(b.data, "Database <b>db&lt;1&gt;</b>"));
	assert_null(strstr(b.data, "<script"));
	buf_free(&b);
}

static void
test_long_label_cut_in_chart_whole_in_table(void **state)
{
	/* 40 Cyrillic letters: 80 bytes; the chart shows 32 of them and "…" */
	static const char *const rows[][7] = {
		{ "", "", "r", "1", "ЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖ", "1.00", "1.0" },
	};
	struct buf b;
	char cut[128];

	(void)state;
	render(&b, rows, 1, 0);
	snprintf(cut, sizeof(cut), ">%.64s\xE2\x80\xA6</text>", rows[0][4]);
	assert_non_null(strstr(b.data, cut));
	snprintf(cut, sizeof(cut), "<td>%s</td>", rows[0][4]);
	assert_non_null(strstr(b.data, cut));
	buf_free(&b);
}

static void
test_no_rows_says_no_data_yet(void **state)
{
	struct buf b;

	(void)state;
	render(&b, NULL, 0, 0);
	assert_non_null(strstr(b.data, "data-empty=\"t.s\">No data yet: <code>analytics.t</code>"));
	assert_null(strstr(b.data, "<svg"));
	assert_null(strstr(b.data, "data-k="));
	buf_free(&b);
	render(&b, NULL, 0, 1);
	assert_non_null(strstr(b.data, "no data yet: analytics.t"));
	buf_free(&b);
}

/* Characters (not bytes) from the line's start to needle. */
static size_t
column_of(const char *line, const char *needle)
{
	const char *end = strstr(line, needle);
	size_t n = 0;

	assert_non_null(end);
	for (const char *p = line; p < end; p++)
		n += (*p & 0xC0) != 0x80;
	return n;
}

static void
test_text_columns_line_up_with_cyrillic(void **state)
{
	static const char *const rows[][7] = {
		{ "", "", "r", "1", "Анна", "125916.84", "1.0" },
		{ "", "", "r", "2", "Bob", "3.00", "50.0" },
	};
	struct buf b;
	char *anna, *bob, *header;

	(void)state;
	render(&b, rows, 2, 1);
	header = strstr(b.data, "  row");
	anna = strstr(b.data, "  Анна");
	bob = strstr(b.data, "  Bob");
	assert_non_null(header);
	assert_non_null(anna);
	assert_non_null(bob);
	/* right-aligned: every line's net ends where the header's does */
	assert_int_equal(column_of(anna, "125916.84") + 9, column_of(header, "net") + 3);
	assert_int_equal(column_of(bob, "3.00") + 4, column_of(header, "net") + 3);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_every_special_character),
		cmocka_unit_test(test_output_past_the_limit_fails_and_stops),
		cmocka_unit_test(test_values_and_keys_of_every_row_kind),
		cmocka_unit_test(test_page_escapes_names_and_draws_negative_bars_red),
		cmocka_unit_test(test_long_label_cut_in_chart_whole_in_table),
		cmocka_unit_test(test_no_rows_says_no_data_yet),
		cmocka_unit_test(test_text_columns_line_up_with_cyrillic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
