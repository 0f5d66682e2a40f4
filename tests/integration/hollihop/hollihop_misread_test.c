/*
 * hollihop_misread_test.c - a Hollihop export that misread its CRM deletes nothing, and says
 * so (issue 16 items 4-7, issue 10 "deletion that cannot lie"): the fake Hollihop breaks
 * one thing at a time through its fault API (a 200 of another shape, a key written twice, a
 * row without its key, pages that wrap around, a table that shrank), and the test checks
 * the rows, crmsync.dead_letters, sync_runs.deletions_refused, the store's metric and
 * `crmsyncctl status`.
 *
 * One cluster, one store (metrics on), one fake (60 students) for the file; hollihop-sync
 * runs once per test (--run-now) over the students only, 10 rows a page. Tests build on
 * each other in order: the first complete run is the measure of the later ones.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "buf.h"
#include "harness.h"
#include "http.h"
#include "json.h"

#define KEY		"fAkE/hollihop+Key=="
#define STUDENTS	60

static struct h_pg pg;
static struct h_proc store, fake;
static PGconn *db;
static struct http *http;
static int fake_port, metrics_port;
static char store_health[512], e_store[600], e_store_health[600], e_dsn[1024], e_base[256],
    e_metrics[128];

static char *
get(const char *url, long *status)
{
	struct http_response r;
	char *out;

	if (http_request(http, "GET", url, NULL, NULL, 0, &r) != 0) {
		http_response_free(&r);
		*status = 0;
		return strdup("");
	}
	*status = r.status;
	out = strndup(r.body.data ? r.body.data : "", r.body.len);
	http_response_free(&r);
	return out;
}

static void
fake_post(const char *path, const char *body)
{
	struct http_response r;
	char url[512];
	static const char *const hdr[] = { "Content-Type: application/json", NULL };

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", fake_port, path);
	assert_int_equal(http_request(http, "POST", url, hdr, body, strlen(body), &r), 0);
	if (r.status != 200)
		fprintf(stderr, "POST %s %s -> %ld %.*s\n", path, body, r.status, (int)r.body.len,
		    r.body.data ? r.body.data : "");
	assert_int_equal(r.status, 200);
	http_response_free(&r);
}

static void
faults(const char *list)
{
	char body[1024];

	snprintf(body, sizeof(body), "{\"replace\":true,\"faults\":[%s]}", list);
	fake_post("/_fake/faults", body);
}

/* GetStudents requests the fake has answered so far. */
static int64_t
student_requests(void)
{
	char url[256];
	long st;
	struct json j;
	int64_t v = 0;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/_fake/stats", fake_port);
	char *b = get(url, &st);
	if (st == 200 && json_parse(&j, b, strlen(b), 100000) == 0) {
		(void)json_int64(&j, json_path(&j, 0, "requests.GetStudents"), &v);
		json_free(&j);
	}
	free(b);
	return v;
}

static int
start_fake(void)
{
	char *argv[] = { "--scale", "tiny", "--students", "60", "--seed", "3", "--authkey", KEY,
	    "--rate-limit", "0", "--no-warmup", NULL };
	char base[128];

	fake_port = h_fake_start(&fake, "fake-hollihop", "hollihop", argv, base, sizeof(base));
	return fake_port > 0 ? 0 : -1;
}

/* hollihop-sync --run-now over the students; its exit status (0 = complete run). */
/* Pages the fetcher may hold ahead of the store (CS_HOLLIHOP_QUEUE_PAGES). */
#define QUEUE_PAGES	2
#define STR_(x)		#x
#define STR(x)		STR_(x)

static int
run_once(const char *name)
{
	static char e_url[600], e_health[600];
	struct h_proc p;
	char *env[] = { e_store, e_base, e_url, e_health, "CS_HOLLIHOP_AUTHKEY=" KEY,
	    "CS_HOLLIHOP_ENTITIES=students", "CS_HOLLIHOP_PAGE_SIZE=10", "CS_HOLLIHOP_RATE=0",
	    "CS_HOLLIHOP_SCHEDULE=off", "CS_HOLLIHOP_TIMEOUT=5s", "CS_HOLLIHOP_BACKOFF_BASE=20ms",
	    "CS_HOLLIHOP_BACKOFF_MAX=200ms", "CS_HOLLIHOP_RETRIES=1",
	    "CS_HOLLIHOP_QUEUE_PAGES=" STR(QUEUE_PAGES),
	    /* before the fix, pages that wrap around ran to this cap */
	    "CS_HOLLIHOP_MAX_PAGES=300", NULL };
	char *argv[] = { "--run-now", NULL };
	int rv;

	snprintf(e_url, sizeof(e_url), "CS_HOLLIHOP_URL=%s", h_url("hollihop"));
	snprintf(e_health, sizeof(e_health), "CS_HOLLIHOP_HEALTH_URL=%s", h_url("hollihop-health"));
	assert_int_equal(h_spawn(&p, name, "services/hollihop-sync/crmsync-hollihop-sync", env, argv), 0);
	if ((rv = h_wait_exit(&p, 60000)) < 0) {
		h_kill(&p, SIGKILL);
		h_dump_log(&p);
		fail_msg("%s did not finish within 60 s", name);
	}
	return rv;
}

static const char *
last_run(const char *field)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "SELECT %s FROM crmsync.sync_runs WHERE crm = 'hollihop' "
	    "ORDER BY id DESC LIMIT 1", field);
	return h_sql(db, sql);
}

static int64_t
live(void)
{
	return h_sql_int(db, "SELECT count(*) FROM hollihop.students WHERE deleted_at IS NULL");
}

static int
setup(void **state)
{
	(void)state;
	if (h_pg_start(&pg) != 0 || (db = h_connect(&pg)) == NULL)
		return -1;
	snprintf(store_health, sizeof(store_health), "%s", h_url("store-health"));
	snprintf(e_store, sizeof(e_store), "CS_STORE_URL=%s", h_url("store"));
	snprintf(e_store_health, sizeof(e_store_health), "CS_STORE_HEALTH_URL=%s", store_health);
	snprintf(e_dsn, sizeof(e_dsn), "CS_PG_DSN=%s", pg.dsn);
	metrics_port = h_free_port();
	snprintf(e_metrics, sizeof(e_metrics), "CS_STORE_METRICS_ADDR=127.0.0.1:%d", metrics_port);
	char *senv[] = { e_store, e_store_health, e_dsn, e_metrics, NULL };
	if (http_new(&http, NULL) != 0 || start_fake() != 0)
		return -1;
	if (h_spawn(&store, "store", "services/store/crmsync-store", senv, NULL) != 0 ||
	    h_wait_ready(store_health, 20000) != 0) {
		h_dump_log(&store);
		return -1;
	}
	snprintf(e_base, sizeof(e_base), "CS_HOLLIHOP_BASE_URL=http://127.0.0.1:%d/Api/V2", fake_port);
	return 0;
}

static int
teardown(void **state)
{
	int rv;

	(void)state;
	h_kill(&fake, SIGTERM);
	if ((rv = h_kill(&store, SIGTERM)) != 0)
		h_dump_log(&store);
	http_free(http);
	PQfinish(db);
	return h_pg_stop(&pg, 0) != 0 || rv != 0 ? -1 : 0;
}

/* The measure: a complete run of all 60, remembered as the last complete full read. */
static void
test_baseline_complete_run(void **state)
{
	(void)state;
	assert_int_equal(run_once("sync-baseline"), 0);
	assert_string_equal(last_run("status"), "complete");
	assert_int_equal(live(), STUDENTS);
	assert_int_equal(h_sql_int(db, "SELECT last_full_rows FROM crmsync.entity_state WHERE crm = "
	    "'hollihop' AND entity = 'students'"), STUDENTS);
}

/* Item 4: a 200 that is neither the list nor {"Error"} on page 5 was an empty last page:
 * the run ended complete and deleted the 20 rows of pages 5 and 6. */
static void
test_page_of_another_shape_fails_the_run(void **state)
{
	(void)state;
	faults("{\"method\":\"GetStudents\",\"kind\":\"body\",\"after\":4,\"count\":1,"
	    "\"body\":\"{\\\"Message\\\":\\\"Технические работы\\\"}\"}");
	assert_int_equal(run_once("sync-shape"), 1);
	assert_string_equal(last_run("status"), "failed");
	assert_non_null(strstr(last_run("error"), "not the shape asked for"));
	assert_int_equal(live(), STUDENTS);
}

/* Item 5: a row with ClientId twice. Before: client_id took the first, raw (jsonb) the last:
 * the row's columns and raw disagreed, a phantom key showed up in raw. Now the row is
 * dead-lettered, nothing disagrees, and the students delete nothing. */
static void
test_key_written_twice_is_one_reading(void **state)
{
	(void)state;
	int64_t dl = h_sql_int(db, "SELECT count(*) FROM crmsync.dead_letters");
	faults("{\"method\":\"GetStudents\",\"kind\":\"dup_key\",\"key\":\"ClientId\",\"count\":1}");
	assert_int_equal(run_once("sync-dup"), 0);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.students WHERE "
	    "client_id::text IS DISTINCT FROM raw->>'ClientId'"), 0);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.students WHERE client_id >= 1000000"), 0);
	assert_int_equal(live(), STUDENTS);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM crmsync.dead_letters WHERE entity = 'students' "
	    "AND reason LIKE 'row: duplicate key \"ClientId\"%'"), 1);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM crmsync.dead_letters"), dl + 1);
	assert_non_null(strstr(last_run("deletions_refused->'students'->>'reason'"), "1 rows could not be read"));
}

/* Item 6: a row without ClientId was skipped with a log line, the run ended complete and
 * the real row was soft-deleted. Now it is dead-lettered and the refusal is visible. */
static void
test_row_without_key_deletes_nothing(void **state)
{
	char url[256], *b;
	long st;

	(void)state;
	faults("{\"method\":\"GetStudents\",\"kind\":\"no_key\",\"key\":\"ClientId\",\"row\":3,\"count\":1}");
	assert_int_equal(run_once("sync-nokey"), 0);
	assert_string_equal(last_run("status"), "complete");
	assert_int_equal(live(), STUDENTS);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM crmsync.dead_letters WHERE entity = 'students' "
	    "AND reason LIKE 'row: column client_id (ClientId) is missing%' AND payload IS NOT NULL"), 1);
	assert_string_equal(last_run("deletions_refused->'students'->>'would_delete'"), "1");
	assert_non_null(strstr(last_run("error"), "students: refusing to delete 1 of 60 rows: 1 rows "
	    "could not be read"));
	assert_string_equal(h_sql(db, "SELECT last_error LIKE 'students: refusing%' FROM crmsync.entity_state "
	    "WHERE crm = 'hollihop' AND entity = 'students'"), "t");
	/* The metric an alert can watch, per CRM and entity. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", metrics_port);
	b = get(url, &st);
	assert_int_equal(st, 200);
	if (strstr(b, "crmsync_deletions_refused_total{service=\"store\",crm=\"hollihop\",entity=\"students\"} 2\n") == NULL)
		fail_msg("metrics: %s", b);
	assert_non_null(strstr(b, "crmsync_deletions_refused_total{service=\"store\",crm=\"amo\",entity=\"users\"} 0\n"));
	free(b);
	/* And crmsyncctl status shows it. */
	struct h_proc ctl;
	char e_ctl[1100], line[1024];
	snprintf(e_ctl, sizeof(e_ctl), "CS_CTL_PG_DSN=%s", pg.dsn);
	char *env[] = { e_ctl, e_store_health, NULL };
	char *argv[] = { "status", NULL };
	int seen = 0;
	assert_int_equal(h_spawn(&ctl, "ctl-status", "tools/crmsyncctl/crmsyncctl", env, argv), 0);
	assert_true(h_wait_exit(&ctl, 20000) >= 0);
	FILE *f = fopen(ctl.log, "r");
	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		if (strstr(line, "Deletions refused in the last 7 days") != NULL)
			seen |= 1;
		if (strstr(line, "hollihop") && strstr(line, "students") &&
		    strstr(line, "1 rows could not be read (kept in crmsync.dead_letters)"))
			seen |= 2;
	}
	if (f != NULL)
		fclose(f);
	if (seen != 3)
		h_dump_log(&ctl);
	assert_int_equal(seen, 3);
}

/* Item 7: pages that wrap around after two (skip ignored past 20 rows) ran until
 * CS_HOLLIHOP_MAX_PAGES; now the third page, a repeat of the first, stops the entity. */
static void
test_pages_that_wrap_around_stop_at_once(void **state)
{
	(void)state;
	int64_t before = student_requests();
	faults("{\"method\":\"GetStudents\",\"kind\":\"loop\",\"period\":2,\"count\":-1}");
	assert_int_equal(run_once("sync-loop"), 1);
	faults("");
	assert_string_equal(last_run("status"), "failed");
	assert_non_null(strstr(last_run("error"), "repeats an earlier page"));
	/* The three pages read, plus what the fetcher had read ahead when the third was found
	 * to repeat: a full queue and the one request in flight (the cap was 300 before). */
	int64_t asked = student_requests() - before;
	if (asked > 3 + QUEUE_PAGES + 1)
		fail_msg("%lld GetStudents requests for a listing that repeats after two pages",
		    (long long)asked);
	assert_int_equal(live(), STUDENTS);
}

/* Issue 10: rows far below the last complete read (45 of 60 gone in one night) are not
 * taken as deletions; the last complete read stays the measure. */
static void
test_drop_below_last_complete_read_deletes_nothing(void **state)
{
	char ops[4096];
	size_t n = 0;

	(void)state;
	n += (size_t)snprintf(ops + n, sizeof(ops) - n, "{\"ops\":[{\"op\":\"delete\",\"method\":\"GetStudents\",\"keys\":[");
	char *keys = strdup(h_sql(db, "SELECT string_agg(client_id::text, ',' ORDER BY client_id) FROM "
	    "(SELECT client_id FROM hollihop.students ORDER BY client_id LIMIT 45) s"));
	n += (size_t)snprintf(ops + n, sizeof(ops) - n, "%s]}]}", keys);
	free(keys);
	fake_post("/_fake/mutate", ops);
	assert_int_equal(run_once("sync-drop"), 0);
	assert_string_equal(last_run("status"), "complete");
	assert_int_equal(live(), STUDENTS);
	assert_non_null(strstr(last_run("deletions_refused->'students'->>'reason'"),
	    "read 15 rows, 75% fewer than the 60 of its last complete run"));
	assert_int_equal(h_sql_int(db, "SELECT last_full_rows FROM crmsync.entity_state WHERE crm = "
	    "'hollihop' AND entity = 'students'"), STUDENTS);
	fake_post("/_fake/reset", "{}");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_baseline_complete_run),
		cmocka_unit_test(test_page_of_another_shape_fails_the_run),
		cmocka_unit_test(test_key_written_twice_is_one_reading),
		cmocka_unit_test(test_row_without_key_deletes_nothing),
		cmocka_unit_test(test_pages_that_wrap_around_stop_at_once),
		cmocka_unit_test(test_drop_below_last_complete_read_deletes_nothing),
	};
	return h_done(cmocka_run_group_tests(tests, setup, teardown));
}
