/* normalise_test.c - JSON value -> PostgreSQL text form, per catalogue type, and whole rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "errors.h"
#include "normalise.h"

/* Convert the value of key "v" in a one-key object. Returns the text, "NULL" or "ERR". */
static const char *
conv(struct arena *a, enum cat_type t, const char *json)
{
	static char out[256];
	struct json j;
	char *v = NULL;

	if (json_parse(&j, json, strlen(json), 100) != 0)
		return "BADJSON";
	int rv = normalise_value(t, &j, json_get(&j, 0, "v"), a, &v, NULL);
	snprintf(out, sizeof(out), "%s", rv != 0 ? "ERR" : v == NULL ? "NULL" : v);
	json_free(&j);
	return out;
}

static void
test_types(void **state)
{
	struct arena a;

	(void)state;
	arena_init(&a, 1 << 20);
	assert_string_equal(conv(&a, CT_INT8, "{\"v\":42}"), "42");
	assert_string_equal(conv(&a, CT_INT8, "{\"v\":\"42\"}"), "42");
	assert_string_equal(conv(&a, CT_INT8, "{\"v\":4.5}"), "ERR");
	assert_string_equal(conv(&a, CT_INT8, "{\"v\":null}"), "NULL");
	assert_string_equal(conv(&a, CT_INT8, "{\"w\":1}"), "NULL");
	assert_string_equal(conv(&a, CT_NUMERIC, "{\"v\":33000.0}"), "33000.0");
	assert_string_equal(conv(&a, CT_NUMERIC, "{\"v\":\"12,5\"}"), "12.5");
	assert_string_equal(conv(&a, CT_MONEY_TEXT, "{\"v\":\"33\xc2\xa0" "000,00 руб.\"}"), "33000.00");
	assert_string_equal(conv(&a, CT_MONEY_TEXT, "{\"v\":\"-23 500,00 руб.\"}"), "-23500.00");
	assert_string_equal(conv(&a, CT_MONEY_TEXT, "{\"v\":\"$ 1,5\"}"), "1.5");
	assert_string_equal(conv(&a, CT_MONEY_TEXT, "{\"v\":\"руб.\"}"), "ERR");
	assert_string_equal(conv(&a, CT_BOOL, "{\"v\":true}"), "t");
	assert_string_equal(conv(&a, CT_BOOL, "{\"v\":false}"), "f");
	assert_string_equal(conv(&a, CT_BOOL, "{\"v\":\"x\"}"), "ERR");
	assert_string_equal(conv(&a, CT_TS_UNIX, "{\"v\":1542067200}"), "2018-11-13 00:00:00+00");
	assert_string_equal(conv(&a, CT_DATE, "{\"v\":\"2024-02-29\"}"), "2024-02-29");
	assert_string_equal(conv(&a, CT_DATE, "{\"v\":\"2024-02-29T10:00:00\"}"), "2024-02-29");
	assert_string_equal(conv(&a, CT_DATE, "{\"v\":\"29.02.2024\"}"), "ERR");
	assert_string_equal(conv(&a, CT_TIME, "{\"v\":\"09:30\"}"), "09:30");
	assert_string_equal(conv(&a, CT_TIME, "{\"v\":\"9:30\"}"), "ERR");
	assert_string_equal(conv(&a, CT_TEXT, "{\"v\":\"Иван\\tИванович\"}"), "Иван\tИванович");
	assert_string_equal(conv(&a, CT_TEXT, "{\"v\":17}"), "17");
	assert_string_equal(conv(&a, CT_JSONB, "{\"v\":{\"a\":[1,2]}}"), "{\"a\":[1,2]}");
	assert_string_equal(conv(&a, CT_INT8_ARRAY, "{\"v\":[1,2,3]}"), "{1,2,3}");
	assert_string_equal(conv(&a, CT_TEXT_ARRAY, "{\"v\":[\"Гитара\",\"a\\\"b\"]}"), "{\"Гитара\",\"a\\\"b\"}");
	arena_reset(&a);
}

static void
test_local_time_uses_zone(void **state)
{
	struct arena a;

	(void)state;
	arena_init(&a, 1 << 20);
	assert_int_equal(normalise_set_timezone("Europe/Moscow"), 0);
	assert_string_equal(conv(&a, CT_TS_LOCAL, "{\"v\":\"2024-01-01T10:00:00\"}"), "2024-01-01 07:00:00+00");
	/* An explicit offset wins over the zone. */
	assert_string_equal(conv(&a, CT_TS_LOCAL, "{\"v\":\"2024-01-01T10:00:00+05:00\"}"), "2024-01-01 05:00:00+00");
	assert_string_equal(conv(&a, CT_TS_LOCAL, "{\"v\":\"2024-01-01T10:00:00.123Z\"}"), "2024-01-01 10:00:00+00");
	assert_int_equal(normalise_set_timezone("Asia/Yekaterinburg"), 0);
	assert_string_equal(conv(&a, CT_TS_LOCAL, "{\"v\":\"2024-01-01T10:00\"}"), "2024-01-01 05:00:00+00");
	assert_string_equal(conv(&a, CT_TS_LOCAL, "{\"v\":\"2024-13-01T10:00:00\"}"), "ERR");
	arena_reset(&a);
}

static const struct cat_col row_cols[] = {
	{ "Id", "id", CT_INT8, CF_KEY },
	{ "Name", "name", CT_TEXT, 0 },
	{ "Updated", "updated", CT_TS_UNIX, CF_VERSION },
	{ "Office.Id", "office_id", CT_INT8, 0 },
	{ "$kind", "kind", CT_TEXT, 0 },
	{ "Broken", "broken", CT_DATE, 0 },
};
static const struct cat_col val_cols[] = {
	{ "^field_id", "field_id", CT_INT8, 0 },
	{ "value", "value", CT_TEXT, 0 },
	{ "enum_id", "enum_id", CT_INT8, 0 },
};
static const struct cat_col tag_cols[] = {
	{ "", "name", CT_TEXT, 0 },
};
static const struct cat_child row_children[] = {
	{ "cf[].values", "values", val_cols, nitems(val_cols), NULL, NULL },
	{ "Tags", "tags", tag_cols, nitems(tag_cols), NULL, NULL },
};
static const struct cat_entity row_entity = {
	.crm = CAT_AMO, .name = "things", .cols = row_cols, .ncols = nitems(row_cols),
	.children = row_children, .nchildren = nitems(row_children),
};

static void
test_row_with_children(void **state)
{
	static const char page[] = "[{\"Id\":7,\"Name\":\"Seven\",\"Updated\":100,\"Office\":{\"Id\":3},"
	    "\"Broken\":\"yesterday\",\"cf\":[{\"field_id\":11,\"values\":[{\"value\":\"a\",\"enum_id\":5},"
	    "{\"value\":\"b\"}]},{\"field_id\":12,\"values\":[{\"value\":\"c\"}]}],\"Tags\":[\"x\",\"y\"]},"
	    "{\"Name\":\"no id\"}]";
	struct norm_ctx ctx = { 0 };
	Crmsync__Record rec;
	struct json j;
	struct arena a;
	char err[256];
	int bad = 0;

	(void)state;
	arena_init(&a, 1 << 20);
	norm_ctx_set(&ctx, "kind", "lead");
	assert_int_equal(json_parse(&j, page, strlen(page), 1000), 0);
	int row = json_first(&j, 0);
	assert_int_equal(normalise_row(&row_entity, &j, row, &ctx, &a, &rec, &bad, err, sizeof(err)), 0);
	assert_int_equal(rec.n_values, 6);
	assert_string_equal(rec.values[0], "7");
	assert_string_equal(rec.values[3], "3");
	assert_string_equal(rec.values[4], "lead");
	assert_true(norm_isnull(&rec.null_mask, 5));	/* unreadable date -> NULL, counted */
	assert_false(norm_isnull(&rec.null_mask, 1));
	assert_int_equal(bad, 1);
	assert_int_equal(rec.source_updated_at_us, 100 * 1000000LL);
	assert_int_equal(rec.n_children, 5);
	assert_string_equal(rec.children[0]->values[0], "11");
	assert_string_equal(rec.children[1]->values[1], "b");
	assert_true(norm_isnull(&rec.children[1]->null_mask, 2));
	assert_string_equal(rec.children[2]->values[0], "12");
	assert_int_equal(rec.children[3]->child, 1);
	assert_string_equal(rec.children[4]->values[0], "y");
	/* raw is the row's bytes exactly. */
	assert_int_equal(rec.raw_json.data[0], '{');
	assert_int_equal(rec.raw_json.data[rec.raw_json.len - 1], '}');
	/* A row without its key is refused with a reason. */
	int second = json_skip(&j, row);
	assert_int_equal(normalise_row(&row_entity, &j, second, &ctx, &a, &rec, &bad, err, sizeof(err)), CS_EINVAL);
	assert_non_null(strstr(err, "id"));
	json_free(&j);
	arena_reset(&a);
}

/* Day-valued fields (amoCRM date custom fields): an epoch is a midnight in the account's zone. */
static const struct cat_col day_cols[] = {
	{ "id", "id", CT_INT8, CF_KEY },
	{ "v?t=date,birthday", "day", CT_DATE_DAY, 0 },
	{ "v?t=numeric", "number", CT_NUMERIC, 0 },
};
static const struct cat_entity day_entity = {
	.crm = CAT_AMO, .name = "days", .cols = day_cols, .ncols = nitems(day_cols),
};

/* Column col of the one-row page json with context utc_offset = off (NULL: none): the value,
 * "NULL", or "ERR" (unreadable, counted as bad). */
static const char *
day(struct arena *a, const char *off, const char *json, size_t col)
{
	static char out[64];
	struct norm_ctx ctx = { 0 };
	Crmsync__Record rec;
	struct json j;
	char err[128];
	int bad = 0;

	if (off != NULL)
		norm_ctx_set(&ctx, NORM_CTX_UTC_OFFSET, off);
	if (json_parse(&j, json, strlen(json), 100) != 0)
		return "BADJSON";
	if (normalise_row(&day_entity, &j, 0, &ctx, a, &rec, &bad, err, sizeof(err)) != 0)
		snprintf(out, sizeof(out), "ROWERR");
	else
		snprintf(out, sizeof(out), "%s", bad ? "ERR" : norm_isnull(&rec.null_mask, col) ?
		    "NULL" : rec.values[col]);
	json_free(&j);
	return out;
}

static void
test_date_day_in_account_zone(void **state)
{
	struct arena a;

	(void)state;
	arena_init(&a, 1 << 20);
	/* 1642626000 = 2022-01-20 00:00 Moscow = 2022-01-19 21:00 UTC. */
	assert_string_equal(day(&a, "+03:00", "{\"id\":1,\"t\":\"date\",\"v\":1642626000}", 1), "2022-01-20");
	assert_string_equal(day(&a, "+03:00", "{\"id\":1,\"t\":\"date\",\"v\":\"1642626000\"}", 1), "2022-01-20");
	assert_string_equal(day(&a, "+0300", "{\"id\":1,\"t\":\"birthday\",\"v\":1642626000}", 1), "2022-01-20");
	/* A UTC midnight (2018 captures) is the same day east of UTC. */
	assert_string_equal(day(&a, "+03:00", "{\"id\":1,\"t\":\"date\",\"v\":1542067200}", 1), "2018-11-13");
	assert_string_equal(day(&a, "+00:00", "{\"id\":1,\"t\":\"date\",\"v\":1642626000}", 1), "2022-01-19");
	assert_string_equal(day(&a, "-05:00", "{\"id\":1,\"t\":\"date\",\"v\":1642654800}", 1), "2022-01-20");
	assert_string_equal(day(&a, "+05:30", "{\"id\":1,\"t\":\"date\",\"v\":1642617000}", 1), "2022-01-20");
	/* A date string is the day itself, zone or not. */
	assert_string_equal(day(&a, NULL, "{\"id\":1,\"t\":\"date\",\"v\":\"2020-05-08\"}", 1), "2020-05-08");
	/* No known offset: an epoch's day is unknown (NULL, not a day early), not unreadable. */
	assert_string_equal(day(&a, NULL, "{\"id\":1,\"t\":\"date\",\"v\":1642626000}", 1), "NULL");
	assert_string_equal(day(&a, "", "{\"id\":1,\"t\":\"date\",\"v\":1642626000}", 1), "NULL");
	assert_string_equal(day(&a, "+03:00", "{\"id\":1,\"t\":\"date\",\"v\":\"soon\"}", 1), "ERR");
	assert_string_equal(day(&a, "+03:00", "{\"id\":1,\"t\":\"date\",\"v\":null}", 1), "NULL");
	/* Only the field types named: a text field's digits are no date, no number. */
	assert_string_equal(day(&a, "+03:00", "{\"id\":1,\"t\":\"text\",\"v\":1642626000}", 1), "NULL");
	assert_string_equal(day(&a, "+03:00", "{\"id\":1,\"t\":\"text\",\"v\":\"abc\"}", 2), "NULL");
	assert_string_equal(day(&a, "+03:00", "{\"id\":1,\"v\":\"12\"}", 2), "NULL");
	/* Numeric fields arrive as strings. */
	assert_string_equal(day(&a, "+03:00", "{\"id\":1,\"t\":\"numeric\",\"v\":\"12.5\"}", 2), "12.5");
	assert_string_equal(day(&a, "+03:00", "{\"id\":1,\"t\":\"numeric\",\"v\":7}", 2), "7");
	arena_reset(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_local_time_uses_zone),
		cmocka_unit_test(test_row_with_children),
		cmocka_unit_test(test_date_day_in_account_zone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
