/*
 * hollihop_contract_test.c - real Hollihop response shapes through the real code path.
 *
 * Every <Method>.json next to this file has the shape of a real response (keys, key order,
 * types, nesting, what is absent; see README.md for where each shape comes from) with
 * values of our own; ../contract.h says how each is checked against its <Method>.expect.
 *
 * The database starts as an installation upgraded from an older catalogue would be: the
 * columns real traffic made us drop are still there (nullable, one legacy row holds values),
 * and writes must work around them (test_dropped_columns_stay_harmless says what is left).
 *
 * Last test: docs/api/hollihop.md documents every typed Hollihop column with its evidence
 * (REAL, PROFILE, FIELDS, DOCS or ASSUMPTION).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "catalog.h"
#include "contract.h"
#include "harness.h"
#include "normalise.h"

#define TZ_NAME		"Europe/Moscow"

static void
test_real_shapes_land_field_by_field(void **state)
{
	char *names[64];
	int n = ct_list(ct.dir, ".json", names, 64);

	(void)state;
	assert_true(n >= 10);
	for (int i = 0; i < n; i++) {
		fprintf(stderr, "contract: %s\n", names[i]);
		ct_run_fixture(names[i]);
		free(names[i]);
	}
}

/* Columns an older catalogue had, as an upgraded installation still holds them. */
static const char *legacy_sql =
    "ALTER TABLE hollihop.ed_units ADD COLUMN IF NOT EXISTS created timestamptz,"
    " ADD COLUMN IF NOT EXISTS updated timestamptz;"
    "ALTER TABLE hollihop.ed_unit_student_days ADD COLUMN IF NOT EXISTS payable boolean,"
    " ADD COLUMN IF NOT EXISTS schedule_item_ids bigint[],"
    " ADD COLUMN IF NOT EXISTS working_off_to_ed_unit_id bigint,"
    " ADD COLUMN IF NOT EXISTS working_off_to_date date,"
    " ADD COLUMN IF NOT EXISTS working_off_from_ed_unit_id bigint,"
    " ADD COLUMN IF NOT EXISTS working_off_from_date date;"
    "ALTER TABLE hollihop.ed_unit_days ADD COLUMN IF NOT EXISTS accepted boolean,"
    " ADD COLUMN IF NOT EXISTS accepted_description text;"
    "ALTER TABLE hollihop.ed_unit_student_payers ADD COLUMN IF NOT EXISTS contract_number text;"
    "ALTER TABLE hollihop.teachers ADD COLUMN IF NOT EXISTS gender boolean;"
    "ALTER TABLE hollihop.leads ADD COLUMN IF NOT EXISTS gender boolean;"
    /* rows written by the old catalogue: an ed unit with its version, a teacher with Gender */
    "INSERT INTO hollihop.ed_units (id, status, created, updated, source_updated_at, raw,"
    " content_hash) VALUES (1600, 'Working', '2021-01-01 10:00+00', '2024-05-01 10:00+00',"
    " '2024-05-01 10:00+00', '{\"Id\":1600,\"Status\":\"Working\"}', 1);"
    "INSERT INTO hollihop.ed_unit_days (ed_unit_id, idx, date, accepted)"
    " VALUES (1600, 0, '2024-01-01', true);"
    "INSERT INTO hollihop.teachers (id, gender, raw, content_hash)"
    " VALUES (88, true, '{\"Id\":88}', 1);";

static void
test_dropped_columns_stay_harmless(void **state)
{
	(void)state;
	/* The rewrite of the legacy ed unit went through: no version any more; its dropped
	 * columns keep the old values (nothing writes them); child rows were replaced, so the
	 * dropped child columns are NULL everywhere. */
	assert_string_equal(h_sql(ct.db, "SELECT coalesce(source_updated_at::text, 'NULL') || ' ' || "
	    "updated::text FROM hollihop.ed_units WHERE id = 1600"), "NULL 2024-05-01 10:00:00+00");
	assert_int_equal(h_sql_int(ct.db, "SELECT count(*) FROM hollihop.ed_unit_days WHERE accepted IS NOT NULL "
	    "OR accepted_description IS NOT NULL"), 0);
	assert_int_equal(h_sql_int(ct.db, "SELECT count(*) FROM hollihop.ed_unit_student_days "
	    "WHERE payable IS NOT NULL OR schedule_item_ids IS NOT NULL "
	    "OR working_off_to_ed_unit_id IS NOT NULL"), 0);
	assert_int_equal(h_sql_int(ct.db, "SELECT count(*) FROM hollihop.ed_unit_student_days"), 2);
	assert_int_equal(h_sql_int(ct.db, "SELECT count(*) FROM hollihop.ed_unit_student_payers WHERE contract_number "
	    "IS NOT NULL"), 0);
	assert_string_equal(h_sql(ct.db, "SELECT gender::text FROM hollihop.teachers WHERE id = 88"), "true");
	assert_int_equal(h_sql_int(ct.db, "SELECT count(*) FROM hollihop.teachers WHERE gender IS NOT NULL"), 1);
}

/* docs/api/hollihop.md: a section per table, a row per typed column with its evidence. */
static void
test_every_typed_column_is_documented(void **state)
{
	const char *const tags[] = { "REAL", "PROFILE", "FIELDS", "DOCS", "ASSUMPTION" };

	(void)state;
	ct_check_docs("hollihop.md", tags, sizeof(tags) / sizeof(tags[0]));
}

static int
setup(void **state)
{
	(void)state;
	if (normalise_set_timezone(TZ_NAME) != 0 || ct_start(CAT_HOLLIHOP, "hollihop", 0) != 0)
		return -1;
	return h_sql_exec(ct.db, legacy_sql) != 0 ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	return ct_stop();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_shapes_land_field_by_field),
		cmocka_unit_test(test_dropped_columns_stay_harmless),
		cmocka_unit_test(test_every_typed_column_is_documented),
	};
	return h_done(cmocka_run_group_tests(tests, setup, teardown));
}
