/*
 * amo_misread_test.c - an amoCRM run that misread its CRM deletes nothing, and says so
 * (issue 16 items 4-7 and 10, issue 10 "deletion that cannot lie"): the fake amoCRM breaks
 * one thing at a time through its fault API (a 200 {"Error"} body, a key written twice,
 * rows without their key, next links that loop, a _total_items the rows do not match), and
 * `crmsyncctl sync amo --entities leads` runs the leads alone.
 *
 * One cluster, store, fake (tiny) and amo-sync (users, pipelines, leads; 10 rows a page) for
 * the file; tests build on each other in order.
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
#include "bus.h"
#include "harness.h"
#include "http.h"
#include "json.h"

#define LLT	"test-llt"

static struct h_pg pg;
static struct h_proc store, fake, amo;
static PGconn *db;
static nng_socket asock;
static struct http *hc;
static int fake_port;
static char amo_url[512], amo_health[512], store_health[512];
static char e_store[600], e_store_health[600], e_dsn[1024], e_amo_url[600], e_amo_health[600],
    e_base[200];

static long
fake_call(const char *method, const char *path, const char *body, char **out)
{
	char url[1024];
	static const char *const hdrs[] = { "Content-Type: application/json",
	    "Authorization: Bearer " LLT, NULL };
	struct http_response r;
	long st;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", fake_port, path);
	if (http_request(hc, method, url, hdrs, body, body ? strlen(body) : 0, &r) != 0) {
		http_response_free(&r);
		return -1;
	}
	st = r.status;
	if (out != NULL)
		*out = strndup(r.body.data ? r.body.data : "", r.body.len);
	http_response_free(&r);
	return st;
}

static void
faults(const char *list)
{
	char body[40000];

	snprintf(body, sizeof(body), "{\"replace\":true,\"faults\":[%s]}", list);
	assert_int_equal(fake_call("POST", "/_fake/faults", body, NULL), 200);
}

/* Requests the fake has had for one path ("/api/v4/leads"). */
static int64_t
fake_lists(const char *entity)
{
	char *b = NULL, path[128];
	struct json j;
	int64_t v = 0;

	assert_int_equal(fake_call("GET", "/_fake/stats", NULL, &b), 200);
	snprintf(path, sizeof(path), "paths.%s", entity);
	if (json_parse(&j, b, strlen(b), 1 << 20) == 0) {
		(void)json_int64(&j, json_path(&j, 0, path), &v);
		json_free(&j);
	}
	free(b);
	return v;
}

/* Ask amo-sync for a full run and wait until it has finished; its status. */
static const char *
full_run(int timeout_ms)
{
	static char status[32];
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT, *rep = NULL;
	Crmsync__SyncCommand c = CRMSYNC__SYNC_COMMAND__INIT;
	int64_t before = h_sql_int(db, "SELECT coalesce(max(id), 0) FROM crmsync.sync_runs");
	char sql[256];

	c.crm = CRMSYNC__CRM__CRM_AMO;
	c.kind = CRMSYNC__SYNC_KIND__SYNC_FULL;
	env.body_case = CRMSYNC__ENVELOPE__BODY_SYNC;
	env.sync = &c;
	assert_int_equal(bus_call_ack(asock, &env, &rep, 2000, 20000, NULL), 0);
	bus_free(rep);
	snprintf(sql, sizeof(sql), "SELECT status FROM crmsync.sync_runs WHERE id > %lld AND status "
	    "<> 'running' ORDER BY id DESC LIMIT 1", (long long)before);
	for (int64_t end = h_now_ms() + timeout_ms; h_now_ms() < end; nng_msleep(50)) {
		const char *s = h_sql(db, sql);
		if (s != NULL && strcmp(s, "(none)") != 0) {
			snprintf(status, sizeof(status), "%s", s);
			return status;
		}
	}
	h_dump_log(&amo);
	fail_msg("no run finished within %d ms", timeout_ms);
	return NULL;
}

static const char *
last_run(const char *field)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "SELECT %s FROM crmsync.sync_runs ORDER BY id DESC LIMIT 1", field);
	return h_sql(db, sql);
}

static int64_t
users(void)
{
	return h_sql_int(db, "SELECT count(*) FROM amo.users WHERE deleted_at IS NULL");
}

static int
setup(void **state)
{
	(void)state;
	if (h_pg_start(&pg) != 0 || http_new(&hc, NULL) != 0 || (db = h_connect(&pg)) == NULL)
		return -1;
	snprintf(store_health, sizeof(store_health), "%s", h_url("store-health"));
	snprintf(e_store, sizeof(e_store), "CS_STORE_URL=%s", h_url("store"));
	snprintf(e_store_health, sizeof(e_store_health), "CS_STORE_HEALTH_URL=%s", store_health);
	snprintf(e_dsn, sizeof(e_dsn), "CS_PG_DSN=%s", pg.dsn);
	snprintf(amo_url, sizeof(amo_url), "%s", h_url("amo"));
	snprintf(amo_health, sizeof(amo_health), "%s", h_url("amo-health"));
	snprintf(e_amo_url, sizeof(e_amo_url), "CS_AMO_URL=%s", amo_url);
	snprintf(e_amo_health, sizeof(e_amo_health), "CS_AMO_HEALTH_URL=%s", amo_health);
	char *senv[] = { e_store, e_store_health, e_dsn, NULL };
	if (h_spawn(&store, "store", "services/store/crmsync-store", senv, NULL) != 0 ||
	    h_wait_ready(store_health, 30000) != 0) {
		h_dump_log(&store);
		return -1;
	}
	char *fargv[] = { "--scale", "tiny", "--seed", "5", "--rps", "0", "--long-lived-token", LLT, NULL };
	char fake_base[128];
	if ((fake_port = h_fake_start(&fake, "fake", "amocrm", fargv, fake_base, sizeof(fake_base))) <= 0)
		return -1;
	snprintf(e_base, sizeof(e_base), "CS_AMO_BASE_URL=http://127.0.0.1:%d", fake_port);
	char *aenv[] = { e_amo_url, e_amo_health, e_store, e_base, "CS_AMO_LONG_LIVED_TOKEN=" LLT,
	    "CS_AMO_ENTITIES=users,pipelines,leads", "CS_AMO_PAGE_SIZE=10", "CS_AMO_RPS=500",
	    "CS_AMO_INCREMENTAL_INTERVAL=0", "CS_AMO_RETRY_MAX=1", "CS_AMO_BACKOFF_MAX=200ms",
	    /* every incremental run would read users and pipelines too */
	    "CS_AMO_REFERENCE_INTERVAL=0", NULL };
	char *argv[] = { "-v", NULL };
	if (h_spawn(&amo, "amo-sync", "services/amo-sync/crmsync-amo-sync", aenv, argv) != 0 ||
	    h_wait_health(amo_health, 20000) != 0) {
		h_dump_log(&amo);
		return -1;
	}
	return bus_dial(&asock, amo_url, BUS_RECVMAX_DEFAULT);
}

static int
teardown(void **state)
{
	int rv;

	(void)state;
	bus_close(asock);
	if ((rv = h_kill(&amo, SIGTERM)) != 0)
		h_dump_log(&amo);
	h_kill(&fake, SIGTERM);
	if (h_kill(&store, SIGTERM) != 0)
		h_dump_log(&store);
	http_free(hc);
	PQfinish(db);
	h_pg_stop(&pg, 0);
	return rv != 0 ? -1 : 0;
}

static void
test_baseline_full_run(void **state)
{
	(void)state;
	assert_string_equal(full_run(60000), "complete");
	assert_int_equal(users(), 5);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM amo.leads WHERE deleted_at IS NULL"), 30);
	assert_int_equal(h_sql_int(db, "SELECT last_full_rows FROM crmsync.entity_state WHERE crm = 'amo' "
	    "AND entity = 'users'"), 5);
}

/* Item 4: a 200 {"Error": ...} for the users was an empty page: a complete run that
 * deleted every user. Now the run fails and deletes nothing. */
static void
test_error_body_with_200_fails_the_run(void **state)
{
	(void)state;
	faults("{\"path\":\"/api/v4/users\",\"kind\":\"body\",\"count\":1,"
	    "\"body\":\"{\\\"Error\\\":\\\"Доступ временно ограничен\\\"}\"}");
	assert_string_equal(full_run(60000), "failed");
	assert_non_null(strstr(last_run("error"), "users: "));
	assert_int_equal(users(), 5);
	assert_int_equal(h_sql_int(db, "SELECT rows_deleted FROM crmsync.sync_runs ORDER BY id DESC LIMIT 1"), 0);
}

/* Item 5: a user with "id" twice: the id column took the first, raw the last. Now the row is
 * dead-lettered, every id agrees with raw, and no user is deleted. */
static void
test_key_written_twice_is_one_reading(void **state)
{
	(void)state;
	faults("{\"path\":\"/api/v4/users\",\"kind\":\"dup_key\",\"count\":1}");
	assert_string_equal(full_run(60000), "complete");
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM amo.users WHERE id::text IS DISTINCT FROM raw->>'id'"), 0);
	assert_int_equal(users(), 5);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM crmsync.dead_letters WHERE crm = 'amo' AND "
	    "entity = 'users' AND reason LIKE 'row: duplicate key \"id\"%'"), 1);
	assert_non_null(strstr(last_run("deletions_refused->'users'->>'reason'"), "1 rows could not be read"));
}

/* Item 6: the first rows of two lead pages without "id": they were skipped and the second
 * page then looked like a repeat of the first (both "first keys" empty): the run failed.
 * Now both rows are dead-lettered and every other lead lands. */
static void
test_rows_without_key_are_dead_lettered(void **state)
{
	(void)state;
	faults("{\"path\":\"/api/v4/leads\",\"kind\":\"no_key\",\"count\":2}");
	assert_string_equal(full_run(60000), "complete");
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM crmsync.dead_letters WHERE crm = 'amo' AND "
	    "entity = 'leads' AND reason LIKE 'row: column id (id) is missing%'"), 2);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM amo.leads WHERE deleted_at IS NULL"), 30);
	assert_string_equal(h_sql(db, "SELECT last_error FROM crmsync.entity_state WHERE crm = 'amo' "
	    "AND entity = 'leads'"), "leads: 2 rows could not be read (kept in crmsync.dead_letters)");
}

/* Item 7: next pages that loop 1,2,1,2 were read until 200,000 pages; now the third page, a
 * repeat of the first, stops the pass. */
static void
test_pages_that_loop_stop_at_once(void **state)
{
	(void)state;
	int64_t before = fake_lists("/api/v4/leads");
	faults("{\"path\":\"/api/v4/leads\",\"kind\":\"loop\",\"period\":2,\"count\":-1}");
	assert_string_equal(full_run(30000), "failed");
	faults("");
	assert_non_null(strstr(last_run("error"), "leads: "));
	assert_true(fake_lists("/api/v4/leads") - before <= 3);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM amo.leads WHERE deleted_at IS NULL"), 30);
}

/* Issue 10: rows that disagree with the total amoCRM reports (_total_items) delete nothing. */
static void
test_rows_not_matching_the_api_total_delete_nothing(void **state)
{
	char list[32768];

	(void)state;
	char *ids = strdup(h_sql(db, "SELECT string_agg(raw::text, ',' ORDER BY id) FROM (SELECT raw, id "
	    "FROM amo.users ORDER BY id LIMIT 2) u"));
	char *esc = malloc(strlen(ids) * 2 + 1), *o = esc;
	for (const char *p = ids; *p; p++) {
		if (*p == '"' || *p == '\\')
			*o++ = '\\';
		*o++ = *p;
	}
	*o = '\0';
	snprintf(list, sizeof(list), "{\"path\":\"/api/v4/users\",\"kind\":\"body\",\"count\":1,\"body\":"
	    "\"{\\\"_total_items\\\":5,\\\"_page\\\":1,\\\"_links\\\":{},\\\"_embedded\\\":{\\\"users\\\":[%s]}}\"}", esc);
	free(ids);
	free(esc);
	faults(list);
	assert_string_equal(full_run(60000), "complete");
	assert_int_equal(users(), 5);
	assert_non_null(strstr(last_run("deletions_refused->'users'->>'reason'"),
	    "read 2 rows, but the API reports a total of 5"));
	assert_string_equal(last_run("deletions_refused->'users'->>'would_delete'"), "3");
}

/* Item 10: crmsyncctl sync amo --entities leads ran every configured entity; now only leads. */
static void
test_sync_command_runs_only_the_entities_named(void **state)
{
	struct h_proc ctl;
	char e_ctl[700], e_dsnc[1100];

	(void)state;
	int64_t users0 = fake_lists("/api/v4/users"), pipelines0 = fake_lists("/api/v4/leads/pipelines");
	int64_t leads0 = fake_lists("/api/v4/leads");
	snprintf(e_ctl, sizeof(e_ctl), "CS_AMO_URL=%s", amo_url);
	snprintf(e_dsnc, sizeof(e_dsnc), "CS_CTL_PG_DSN=%s", pg.dsn);
	char *env[] = { e_ctl, e_amo_health, e_dsnc, NULL };
	char *argv[] = { "sync", "amo", "--entities", "leads", NULL };
	assert_int_equal(h_spawn(&ctl, "ctl-sync", "tools/crmsyncctl/crmsyncctl", env, argv), 0);
	int rv = h_wait_exit(&ctl, 60000);
	if (rv != 0) {
		h_dump_log(&ctl);
		h_dump_log(&amo);
	}
	assert_int_equal(rv, 0);
	assert_string_equal(last_run("entities::text"), "{leads}");
	assert_string_equal(last_run("status"), "complete");
	assert_int_equal(fake_lists("/api/v4/users"), users0);
	assert_int_equal(fake_lists("/api/v4/leads/pipelines"), pipelines0);
	assert_true(fake_lists("/api/v4/leads") > leads0);
	/* An entity amo-sync does not know is refused, not ignored. */
	char *bad[] = { "sync", "amo", "--entities", "no_such_thing", "--no-wait", NULL };
	assert_int_equal(h_spawn(&ctl, "ctl-sync-bad", "tools/crmsyncctl/crmsyncctl", env, bad), 0);
	assert_int_not_equal(h_wait_exit(&ctl, 30000), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_baseline_full_run),
		cmocka_unit_test(test_error_body_with_200_fails_the_run),
		cmocka_unit_test(test_key_written_twice_is_one_reading),
		cmocka_unit_test(test_rows_without_key_are_dead_lettered),
		cmocka_unit_test(test_pages_that_loop_stop_at_once),
		cmocka_unit_test(test_rows_not_matching_the_api_total_delete_nothing),
		cmocka_unit_test(test_sync_command_runs_only_the_entities_named),
	};
	return h_done(cmocka_run_group_tests(tests, setup, teardown));
}
