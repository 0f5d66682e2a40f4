/*
 * store_test.c - the real crmsync-store binary against a real throwaway PostgreSQL.
 *
 * One cluster and one store for the file; each test uses its own keys. Batches go over
 * NNG exactly as the sync services send them. Covered: migrations (twice, and two stores
 * at once), idempotency, stale updates, unchanged rows not rewritten, duplicates inside a
 * batch, child rows replaced, soft delete after a complete full run and none after a
 * partial one, the delete guard, a complete run's deletions in the analytic tables at its
 * ack (the full rebuild after it), dead letters (unknown entity, bad value, garbage bytes)
 * with the store still serving, PostgreSQL going away and coming back, and kill -9 of the
 * store in the middle of a stream.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "batch.h"
#include "bus.h"
#include "errors.h"
#include "harness.h"

static struct h_pg pg;
static struct h_proc store;
static char store_url[512], health_url[512], dsn_env[700], url_env[600], health_env[600];
static PGconn *db;
static nng_socket sock;

static int
start_store(struct h_proc *p, const char *name)
{
	char *env[] = { url_env, health_env, dsn_env, "CS_STORE_RECONNECT_MAX=500ms", NULL };

	if (h_spawn(p, name, "services/store/crmsync-store", env, NULL) != 0)
		return -1;
	if (h_wait_ready(health_url, 20000) != 0) {
		h_dump_log(p);
		return -1;
	}
	return 0;
}

static int
setup(void **state)
{
	(void)state;
	if (h_pg_start(&pg) != 0)
		return -1;
	snprintf(store_url, sizeof(store_url), "%s", h_url("store"));
	snprintf(health_url, sizeof(health_url), "%s", h_url("store-health"));
	snprintf(url_env, sizeof(url_env), "CS_STORE_URL=%s", store_url);
	snprintf(health_env, sizeof(health_env), "CS_STORE_HEALTH_URL=%s", health_url);
	snprintf(dsn_env, sizeof(dsn_env), "CS_PG_DSN=%s", pg.dsn);
	if ((db = h_connect(&pg)) == NULL || start_store(&store, "store") != 0)
		return -1;
	return bus_dial(&sock, store_url, BUS_RECVMAX_DEFAULT);
}

static int
teardown(void **state)
{
	(void)state;
	int rv;

	bus_close(sock);
	/* A clean exit status also means no leak or UB report from the sanitizers. */
	if ((rv = h_kill(&store, SIGTERM)) != 0) {
		fprintf(stderr, "store exited with %d\n", rv);
		h_dump_log(&store);
	}
	PQfinish(db);
	return h_pg_stop(&pg, 0) != 0 || rv != 0 ? -1 : 0;
}

static void
send_ok(struct h_batch *b, uint32_t want_applied, uint32_t want_unchanged)
{
	Crmsync__Envelope *ack = NULL;
	int rv = h_batch_send(sock, b, &ack);

	if (rv != 0) {
		fprintf(stderr, "send: rv=%d %s\n", rv, ack ? ack->ack->error : "");
		h_dump_log(&store);
	}
	assert_int_equal(rv, 0);
	assert_int_equal(ack->ack->applied, want_applied);
	assert_int_equal(ack->ack->unchanged, want_unchanged);
	bus_free(ack);
}

#define S(v) ((v) * 1000000LL)

static void
test_migrations_recorded_once(void **state)
{
	struct h_proc second;

	(void)state;
	int64_t nmig = h_sql_int(db, "SELECT count(*) FROM crmsync.schema_migrations");
	assert_true(nmig >= 2);
	assert_int_equal(h_sql_int(db, "SELECT count(DISTINCT version) FROM crmsync.schema_migrations"), nmig);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM information_schema.tables "
	    "WHERE table_schema = 'hollihop' AND table_name = 'students'"), 1);
	/* raw is lz4-compressed (Debian's PostgreSQL has it), on every entity table. */
	assert_true(h_sql_int(db, "SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
	    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('amo', 'hollihop') "
	    "AND a.attname = 'raw' AND a.attcompression = 'l'") >= 50);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
	    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('amo', 'hollihop') "
	    "AND a.attname = 'raw' AND a.attcompression IS DISTINCT FROM 'l'"), 0);
	/* A second store on the same database migrates nothing and breaks nothing. */
	char *env[] = { "CS_STORE_URL=ipc:///tmp/crmsync-unused-store.sock",
	    "CS_STORE_HEALTH_URL=ipc:///tmp/crmsync-unused-health.sock", dsn_env, NULL };
	assert_int_equal(h_spawn(&second, "store2", "services/store/crmsync-store", env, NULL), 0);
	assert_int_equal(h_wait_ready("ipc:///tmp/crmsync-unused-health.sock", 20000), 0);
	assert_int_equal(h_kill(&second, SIGTERM), 0);	/* clean exit, no sanitizer report */
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM crmsync.schema_migrations"), nmig);
}

static void
test_idempotent_batch(void **state)
{
	struct h_batch *b = h_batch_new(CAT_HOLLIHOP, "students", 0);

	(void)state;
	h_rec(b, "{\"ClientId\":101,\"FirstName\":\"Иван\"}", S(1000), 0,
	    "client_id", "101", "first_name", "Иван", NULL);
	h_rec(b, "{\"ClientId\":102,\"FirstName\":\"Мария\"}", S(1000), 0,
	    "client_id", "102", "first_name", "Мария", NULL);
	send_ok(b, 2, 0);
	int64_t xmin1 = h_sql_int(db, "SELECT xmin::text::bigint FROM hollihop.students WHERE client_id = 101");
	/* The same batch again changes nothing, and rewrites nothing. */
	send_ok(b, 0, 2);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.students WHERE client_id IN (101,102)"), 2);
	assert_int_equal(h_sql_int(db, "SELECT xmin::text::bigint FROM hollihop.students WHERE client_id = 101"), xmin1);
	assert_string_equal(h_sql(db, "SELECT first_name FROM hollihop.students WHERE client_id = 102"), "Мария");
	assert_string_equal(h_sql(db, "SELECT raw->>'FirstName' FROM hollihop.students WHERE client_id = 101"), "Иван");
	/* Unchanged rows are filtered out before ON CONFLICT: not even locked (xmax stays 0). */
	assert_int_equal(h_sql_int(db, "SELECT xmax::text::bigint FROM hollihop.students WHERE client_id = 101"), 0);
	h_batch_free(b);
}

/*
 * content_hash covers the typed and child values too, not only the source JSON: the same
 * raw JSON mapped differently (a new catalogue mapping, another time zone) is rewritten.
 * A row stored before content_hash existed (NULL) is rewritten once, then left alone.
 */
static void
test_hash_covers_typed_values(void **state)
{
	struct h_batch *b;

	(void)state;
	b = h_batch_new(CAT_HOLLIHOP, "students", 0);
	h_rec(b, "{\"ClientId\":111}", S(1000), 0, "client_id", "111", "first_name", "a", NULL);
	send_ok(b, 1, 0);
	h_batch_free(b);
	b = h_batch_new(CAT_HOLLIHOP, "students", 0);
	h_rec(b, "{\"ClientId\":111}", S(1000), 0, "client_id", "111", "first_name", "b", NULL);
	send_ok(b, 1, 0);
	assert_string_equal(h_sql(db, "SELECT first_name FROM hollihop.students WHERE client_id = 111"), "b");
	send_ok(b, 0, 1);
	h_batch_free(b);
	/* NULL and "" are different values. */
	b = h_batch_new(CAT_HOLLIHOP, "students", 0);
	h_rec(b, "{\"ClientId\":111}", S(1000), 0, "client_id", "111", "first_name", "", NULL);
	send_ok(b, 1, 0);
	h_batch_free(b);
	b = h_batch_new(CAT_HOLLIHOP, "students", 0);
	h_rec(b, "{\"ClientId\":111}", S(1000), 0, "client_id", "111", NULL);
	send_ok(b, 1, 0);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.students WHERE client_id = 111 "
	    "AND first_name IS NULL"), 1);
	/* A child row alone changing also rewrites the parent and its children. */
	h_child(b, 0, "first_name", "Мама", NULL);
	send_ok(b, 1, 0);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.student_agents WHERE client_id = 111"), 1);
	send_ok(b, 0, 1);
	/* A row from before content_hash: rewritten once, then unchanged. */
	assert_int_equal(h_sql_int(db, "WITH u AS (UPDATE hollihop.students SET content_hash = NULL "
	    "WHERE client_id = 111 RETURNING 1) SELECT count(*) FROM u"), 1);
	send_ok(b, 1, 0);
	send_ok(b, 0, 1);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.students WHERE client_id = 111 "
	    "AND content_hash IS NOT NULL"), 1);
	h_batch_free(b);
}

static void
test_stale_update_ignored(void **state)
{
	struct h_batch *b;

	(void)state;
	b = h_batch_new(CAT_HOLLIHOP, "students", 0);
	h_rec(b, "{\"v\":2}", S(2000), 0, "client_id", "201", "first_name", "new", NULL);
	send_ok(b, 1, 0);
	h_batch_free(b);
	b = h_batch_new(CAT_HOLLIHOP, "students", 0);
	h_rec(b, "{\"v\":1}", S(1000), 0, "client_id", "201", "first_name", "old", NULL);
	send_ok(b, 0, 1);
	h_batch_free(b);
	assert_string_equal(h_sql(db, "SELECT first_name FROM hollihop.students WHERE client_id = 201"), "new");
	/* A newer version with new content does apply. */
	b = h_batch_new(CAT_HOLLIHOP, "students", 0);
	h_rec(b, "{\"v\":3}", S(3000), 0, "client_id", "201", "first_name", "newer", NULL);
	send_ok(b, 1, 0);
	h_batch_free(b);
	assert_string_equal(h_sql(db, "SELECT first_name FROM hollihop.students WHERE client_id = 201"), "newer");
}

static void
test_duplicates_in_batch(void **state)
{
	struct h_batch *b = h_batch_new(CAT_HOLLIHOP, "students", 0);

	(void)state;
	h_rec(b, "{\"v\":5}", S(5000), 0, "client_id", "301", "first_name", "five", NULL);
	h_rec(b, "{\"v\":4}", S(4000), 0, "client_id", "301", "first_name", "four", NULL);
	h_rec(b, "{\"v\":6}", S(6000), 0, "client_id", "302", "first_name", "a", NULL);
	h_rec(b, "{\"v\":7}", S(6000), 0, "client_id", "302", "first_name", "b", NULL);
	send_ok(b, 2, 0);
	h_batch_free(b);
	assert_string_equal(h_sql(db, "SELECT first_name FROM hollihop.students WHERE client_id = 301"), "five");
	assert_string_equal(h_sql(db, "SELECT first_name FROM hollihop.students WHERE client_id = 302"), "b");
}

static void
test_children_replaced(void **state)
{
	struct h_batch *b = h_batch_new(CAT_HOLLIHOP, "students", 0);

	(void)state;
	h_rec(b, "{\"v\":1}", S(1000), 0, "client_id", "401", "first_name", "x", NULL);
	h_child(b, 0, "first_name", "Мама", NULL);
	h_child(b, 0, "first_name", "Папа", NULL);
	send_ok(b, 1, 0);
	h_batch_free(b);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.student_agents WHERE client_id = 401"), 2);
	assert_string_equal(h_sql(db, "SELECT first_name FROM hollihop.student_agents WHERE client_id = 401 AND idx = 1"), "Папа");
	b = h_batch_new(CAT_HOLLIHOP, "students", 0);
	h_rec(b, "{\"v\":2}", S(2000), 0, "client_id", "401", "first_name", "x", NULL);
	h_child(b, 0, "first_name", "Бабушка", NULL);
	send_ok(b, 1, 0);
	h_batch_free(b);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.student_agents WHERE client_id = 401"), 1);
	assert_string_equal(h_sql(db, "SELECT first_name FROM hollihop.student_agents WHERE client_id = 401"), "Бабушка");
}

static void
test_delete_record(void **state)
{
	struct h_batch *b = h_batch_new(CAT_AMO, "leads", 0);

	(void)state;
	h_rec(b, "{\"id\":9001}", S(100), 0, "id", "9001", "name", "Сделка", "price", "1500.50", NULL);
	send_ok(b, 1, 0);
	h_batch_free(b);
	assert_string_equal(h_sql(db, "SELECT price::text FROM amo.leads WHERE id = 9001"), "1500.50");
	/* An older delete does not hide the newer row; a newer one does. */
	b = h_batch_new(CAT_AMO, "leads", 0);
	h_rec(b, NULL, S(50), 1, "id", "9001", NULL);
	send_ok(b, 0, 1);
	h_batch_free(b);
	assert_string_equal(h_sql(db, "SELECT deleted_at IS NULL FROM amo.leads WHERE id = 9001"), "t");
	b = h_batch_new(CAT_AMO, "leads", 0);
	h_rec(b, NULL, S(200), 1, "id", "9001", NULL);
	send_ok(b, 1, 0);
	h_batch_free(b);
	assert_string_equal(h_sql(db, "SELECT deleted_at IS NOT NULL FROM amo.leads WHERE id = 9001"), "t");
}

/* Full runs: entity students, keys 1000..1019. */
static void
full_run(int first, int count, Crmsync__RunStatus status, int complete)
{
	struct h_batch *b;
	int64_t run = 0;
	char key[16];

	assert_int_equal(h_run_begin(sock, CAT_HOLLIHOP, 1, &run), 0);
	assert_true(run > 0);
	b = h_batch_new(CAT_HOLLIHOP, "students", run);
	for (int i = first; i < first + count; i++) {
		snprintf(key, sizeof(key), "%d", i);
		h_rec(b, "{}", 0, 0, "client_id", key, NULL);
	}
	assert_int_equal(h_batch_send(sock, b, NULL), 0);
	h_batch_free(b);
	assert_int_equal(h_run_end(sock, run, status, "students", complete), 0);
}

static void
test_soft_delete_after_complete_run_only(void **state)
{
	(void)state;
	h_sql_exec(db, "UPDATE hollihop.students SET deleted_at = now()");	/* earlier tests' rows */
	full_run(1000, 20, CRMSYNC__RUN_STATUS__RUN_COMPLETE, 1);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.students WHERE deleted_at IS NULL"), 20);
	/* A partial run that saw only 1000..1016 deletes nothing... */
	full_run(1000, 17, CRMSYNC__RUN_STATUS__RUN_PARTIAL, 0);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.students WHERE deleted_at IS NULL"), 20);
	/* ...nor a failed one... */
	full_run(1000, 17, CRMSYNC__RUN_STATUS__RUN_FAILED, 1);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.students WHERE deleted_at IS NULL"), 20);
	/* ...a complete one deletes exactly the three it did not see. */
	full_run(1000, 17, CRMSYNC__RUN_STATUS__RUN_COMPLETE, 1);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.students WHERE deleted_at IS NULL"), 17);
	assert_string_equal(h_sql(db, "SELECT string_agg(client_id::text, ',' ORDER BY client_id) FROM "
	    "hollihop.students WHERE client_id >= 1000 AND deleted_at IS NOT NULL"), "1017,1018,1019");
	assert_string_equal(h_sql(db, "SELECT status || ':' || rows_deleted FROM crmsync.sync_runs "
	    "ORDER BY id DESC LIMIT 1"), "complete:3");
	/* A row that comes back is undeleted. */
	full_run(1000, 20, CRMSYNC__RUN_STATUS__RUN_COMPLETE, 1);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.students WHERE deleted_at IS NULL"), 20);
	/* The guard: a "complete" run that saw only 2 of 20 deletes nothing and says why. */
	full_run(1000, 2, CRMSYNC__RUN_STATUS__RUN_COMPLETE, 1);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.students WHERE deleted_at IS NULL"), 20);
	assert_non_null(strstr(h_sql(db, "SELECT error FROM crmsync.sync_runs ORDER BY id DESC LIMIT 1"),
	    "refusing to delete 18 of 20"));
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM crmsync.run_seen"), 0);
}

/* Students first..first+count-1 with a phone each, in a complete full run; the ack's rv. */
static int
full_run_phones(int first, int count)
{
	struct h_batch *b;
	int64_t run = 0;
	char key[16], phone[48];

	assert_int_equal(h_run_begin(sock, CAT_HOLLIHOP, 1, &run), 0);
	b = h_batch_new(CAT_HOLLIHOP, "students", run);
	for (int i = first; i < first + count; i++) {
		snprintf(key, sizeof(key), "%d", i);
		snprintf(phone, sizeof(phone), "8 (912) 30%d-%02d-%02d", i / 10000, (i / 100) % 100, i % 100);
		h_rec(b, "{}", 0, 0, "client_id", key, "mobile", phone, NULL);
	}
	assert_int_equal(h_batch_send(sock, b, NULL), 0);
	h_batch_free(b);
	return h_run_end(sock, run, CRMSYNC__RUN_STATUS__RUN_COMPLETE, "students", 1);
}

/* The full rebuild that follows the last run's ack has committed analytics.people. */
static int
wait_people_rebuilt(void)
{
	return h_wait_sql(db, "SELECT count(*) FROM crmsync.analytics_state WHERE name = 'people' "
	    "AND rebuilt_at > (SELECT max(finished_at) FROM crmsync.sync_runs)", "1", 20000);
}

/*
 * A complete run's deletions reach the analytic tables in the RunEnd's own transaction, and
 * its ack does not wait for the full rebuild that follows: a row lock held on another
 * student's analytics.people row blocks that rebuild (DELETE of every row), not the
 * refresh of the deleted student's rows.
 */
static void
test_run_end_acks_before_rebuild(void **state)
{
	PGconn *hold = h_connect(&pg);
	int rv;
	int64_t left;

	(void)state;
	assert_non_null(hold);
	h_sql_exec(db, "UPDATE hollihop.students SET deleted_at = now()");	/* earlier tests' rows */
	assert_int_equal(full_run_phones(3000, 20), 0);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM analytics.people WHERE entity = "
	    "'students' AND id BETWEEN 3000 AND 3019"), 20);
	assert_int_equal(wait_people_rebuilt(), 0);	/* the lock is for the next run's */
	assert_int_equal(h_sql_exec(hold, "BEGIN"), 0);
	assert_int_equal(h_sql_int(hold, "SELECT count(*) FROM (SELECT 1 FROM analytics.people "
	    "WHERE entity = 'students' AND id = 3000 FOR UPDATE) l"), 1);
	rv = full_run_phones(3000, 19);		/* 3019 is gone */
	left = h_sql_int(db, "SELECT count(*) FROM analytics.people WHERE entity = 'students' "
	    "AND id = 3019");
	(void)h_sql_exec(hold, "ROLLBACK");	/* before asserting: the rebuild must not hang */
	PQfinish(hold);
	if (rv != 0)
		h_dump_log(&store);
	assert_int_equal(rv, 0);
	assert_int_equal(left, 0);
	/* ...and the rebuild, now free to run, comes to the same rows. */
	assert_int_equal(wait_people_rebuilt(), 0);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM analytics.people WHERE entity = "
	    "'students' AND id BETWEEN 3000 AND 3019"), 19);
	/* The next tests expect the live students the soft-delete test left. */
	h_sql_exec(db, "UPDATE hollihop.students SET deleted_at = CASE WHEN client_id < 3000 "
	    "THEN NULL ELSE now() END WHERE client_id BETWEEN 1000 AND 1019 OR client_id >= 3000");
}

/* A run whose sender died (no RunEnd) is closed as abandoned by the next one; nothing deleted. */
static void
test_interrupted_run_is_abandoned(void **state)
{
	struct h_batch *b;
	int64_t run = 0, run2 = 0;

	(void)state;
	int64_t live = h_sql_int(db, "SELECT count(*) FROM hollihop.students WHERE deleted_at IS NULL");
	assert_int_equal(h_run_begin(sock, CAT_HOLLIHOP, 1, &run), 0);
	b = h_batch_new(CAT_HOLLIHOP, "students", run);
	h_rec(b, "{}", 0, 0, "client_id", "1000", NULL);
	assert_int_equal(h_batch_send(sock, b, NULL), 0);
	h_batch_free(b);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM crmsync.run_seen"), 1);
	/* ...the sender is killed here; a new run begins. */
	assert_int_equal(h_run_begin(sock, CAT_HOLLIHOP, 1, &run2), 0);
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT status FROM crmsync.sync_runs WHERE id = %lld", (long long)run);
	assert_string_equal(h_sql(db, sql), "abandoned");
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM crmsync.run_seen"), 0);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.students WHERE deleted_at IS NULL"), live);
	assert_int_equal(h_run_end(sock, run2, CRMSYNC__RUN_STATUS__RUN_FAILED, "students", 0), 0);
}

static void
test_dead_letters_and_keeps_serving(void **state)
{
	Crmsync__Envelope *ack = NULL;
	struct h_batch *b;
	int64_t before = h_sql_int(db, "SELECT count(*) FROM crmsync.dead_letters");
	nng_msg *m;

	(void)state;
	/* A value PostgreSQL refuses for the column type (a date column): the whole batch. */
	b = h_batch_new(CAT_AMO, "leads", 0);
	h_rec(b, "{}", S(1), 0, "id", "9100", "price", "not-a-number", NULL);
	assert_int_equal(h_batch_send(sock, b, &ack), CS_EREJECTED);
	assert_non_null(strstr(ack->ack->error, "numeric"));
	bus_free(ack);
	h_batch_free(b);
	/* A record with a NULL key. */
	b = h_batch_new(CAT_AMO, "leads", 0);
	h_rec(b, "{}", S(1), 0, "name", "no id", NULL);
	assert_int_equal(h_batch_send(sock, b, NULL), CS_EREJECTED);
	h_batch_free(b);
	/* Garbage bytes that are not an Envelope. */
	nng_msg_alloc(&m, 0);
	nng_msg_append(m, "\xff\xff\xff\xff garbage", 12);
	assert_int_equal(nng_sendmsg(sock, m, 0), 0);
	assert_int_equal(bus_recv(sock, &ack, 5000), 0);
	assert_int_equal(ack->ack->status, CRMSYNC__ACK_STATUS__ACK_REJECTED);
	bus_free(ack);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM crmsync.dead_letters"), before + 3);
	assert_string_equal(h_sql(db, "SELECT entity FROM crmsync.dead_letters WHERE reason LIKE '%numeric%'"), "leads");
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM amo.leads WHERE id = 9100"), 0);
	/* Still serving. */
	b = h_batch_new(CAT_AMO, "leads", 0);
	h_rec(b, "{}", S(1), 0, "id", "9101", NULL);
	send_ok(b, 1, 0);
	h_batch_free(b);
}

static void
test_postgres_down_then_back(void **state)
{
	struct h_batch *b = h_batch_new(CAT_AMO, "leads", 0);
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT, *rep = NULL;

	(void)state;
	h_rec(b, "{}", S(1), 0, "id", "9200", NULL);
	PQfinish(db);
	assert_int_equal(h_pg_stop(&pg, 1), 0);
	/* While PostgreSQL is gone, the store never acks OK: it says retry. */
	env.body_case = CRMSYNC__ENVELOPE__BODY_BATCH;
	env.batch = h_batch_msg(b);
	assert_int_equal(bus_call(sock, &env, &rep, 10000), 0);
	assert_int_equal(rep->ack->status, CRMSYNC__ACK_STATUS__ACK_RETRY);
	bus_free(rep);
	/* Run bookkeeping too: retry, never a rejection. */
	Crmsync__RunBegin rb = CRMSYNC__RUN_BEGIN__INIT;
	rb.crm = CRMSYNC__CRM__CRM_AMO;
	rb.trigger = (char *)"test";
	env.body_case = CRMSYNC__ENVELOPE__BODY_RUN_BEGIN;
	env.run_begin = &rb;
	assert_int_equal(bus_call(sock, &env, &rep, 10000), 0);
	assert_int_equal(rep->ack->status, CRMSYNC__ACK_STATUS__ACK_RETRY);
	bus_free(rep);
	env.body_case = CRMSYNC__ENVELOPE__BODY_BATCH;
	env.batch = h_batch_msg(b);
	assert_int_equal(h_pg_restart(&pg), 0);
	/* The sender retries until the store is back on its feet. */
	send_ok(b, 1, 0);
	h_batch_free(b);
	assert_non_null(db = h_connect(&pg));
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM amo.leads WHERE id = 9200"), 1);
}

/* kill -9 of the store during a stream: every acked row is there, the rest re-sent once. */
#define STREAM_BATCHES	60
#define STREAM_ROWS	200
static _Atomic int acked_batches;	/* written by the streaming thread */

static void *
stream(void *arg)
{
	nng_socket s;
	char key[24], raw[64];

	(void)arg;
	bus_dial(&s, store_url, BUS_RECVMAX_DEFAULT);
	for (int n = 0; n < STREAM_BATCHES; n++) {
		struct h_batch *b = h_batch_new(CAT_AMO, "leads", 0);
		for (int i = 0; i < STREAM_ROWS; i++) {
			snprintf(key, sizeof(key), "%d", 100000 + n * STREAM_ROWS + i);
			snprintf(raw, sizeof(raw), "{\"id\":%s}", key);
			h_rec(b, raw, S(10), 0, "id", key, "name", "stream", NULL);
		}
		/* bus_call_ack retries through the restart; 60 s is the test's patience. */
		if (h_batch_send(s, b, NULL) != 0) {
			h_batch_free(b);
			break;
		}
		h_batch_free(b);
		acked_batches = n + 1;
	}
	bus_close(s);
	return NULL;
}

/*
 * Upgrade from a database of migration 1 (per-key run_seen, no content_hash) with a full
 * run in flight: the new store abandons that run (its seen-keys are in the old format, so
 * it must not end with deletions), converts run_seen, adds content_hash, and serves on.
 */
/* Two stores on one database race to insert the same new keys. */
#define RACE_ROWS	2000

struct racer {
	nng_socket		 s;
	struct h_batch		*b;
	pthread_barrier_t	*go;
	int			 rv;
};

static void *
race_send(void *arg)
{
	struct racer *r = arg;

	pthread_barrier_wait(r->go);
	r->rv = h_batch_send(r->s, r->b, NULL);
	return NULL;
}

static int
count_in_log(const struct h_proc *p, const char *needle)
{
	FILE *f = fopen(p->log, "r");
	char line[4096];
	int n = 0;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

/*
 * Both look the keys up before either commits, both COPY them as new; the second COPY
 * meets a unique violation and its batch is redone through the staged path. Every round
 * must end with both batches acknowledged and every row and child row exactly once; the
 * rounds go on until the redo path has been taken at least once.
 */
static void
test_concurrent_stores_race(void **state)
{
	struct h_proc second;
	struct racer r[2];
	pthread_barrier_t go;
	char url2[512], env_url2[600], env_health2[600], sql[256];
	int redone = 0, round;

	(void)state;
	snprintf(url2, sizeof(url2), "%s", h_url("store-race"));
	snprintf(env_url2, sizeof(env_url2), "CS_STORE_URL=%s", url2);
	snprintf(env_health2, sizeof(env_health2), "CS_STORE_HEALTH_URL=%s", h_url("store-race-health"));
	char *env[] = { env_url2, env_health2, dsn_env, NULL };
	assert_int_equal(h_spawn(&second, "store-race", "services/store/crmsync-store", env, NULL), 0);
	assert_int_equal(h_wait_ready(h_url("store-race-health"), 20000), 0);
	r[0].s = sock;
	assert_int_equal(bus_dial(&r[1].s, url2, BUS_RECVMAX_DEFAULT), 0);
	for (round = 0; round < 60 && redone == 0; round++) {
		struct h_batch *b = h_batch_new(CAT_HOLLIHOP, "students", 0);
		pthread_t thr[2];
		for (int i = 0; i < RACE_ROWS; i++) {
			char id[32];
			snprintf(id, sizeof(id), "%d", 5000000 + round * RACE_ROWS + i);
			h_rec(b, "{\"race\":1}", S(1000), 0, "client_id", id, "first_name", "race", NULL);
			h_child(b, 0, "first_name", "agent", NULL);
		}
		pthread_barrier_init(&go, NULL, 2);
		for (int k = 0; k < 2; k++) {
			r[k].b = b;
			r[k].go = &go;
			pthread_create(&thr[k], NULL, race_send, &r[k]);
		}
		for (int k = 0; k < 2; k++)
			pthread_join(thr[k], NULL);
		pthread_barrier_destroy(&go);
		h_batch_free(b);
		assert_int_equal(r[0].rv, 0);
		assert_int_equal(r[1].rv, 0);
		redone = count_in_log(&store, "ev=batch.redo") + count_in_log(&second, "ev=batch.redo");
	}
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM hollihop.students WHERE first_name = 'race'");
	assert_int_equal(h_sql_int(db, sql), (int64_t)round * RACE_ROWS);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.student_agents a JOIN hollihop.students s "
	    "USING (client_id) WHERE s.first_name = 'race'"), (int64_t)round * RACE_ROWS);
	fprintf(stderr, "race: %d round(s) until a batch was redone\n", round);
	assert_true(redone > 0);
	bus_close(r[1].s);
	assert_int_equal(h_kill(&second, SIGTERM), 0);
}

static void
test_upgrade_from_v1(void **state)
{
	struct h_batch *b;
	char sql[512];

	(void)state;
	assert_int_equal(h_kill(&store, SIGTERM), 0);
	assert_int_equal(h_sql_exec(db, "BEGIN; DELETE FROM crmsync.schema_migrations WHERE version = 2; "
	    "DROP TABLE crmsync.run_seen; CREATE TABLE crmsync.run_seen (run_id bigint NOT NULL, "
	    "entity text NOT NULL, key text NOT NULL, PRIMARY KEY (run_id, entity, key)); "
	    "ALTER TABLE hollihop.students DROP COLUMN content_hash; "
	    "UPDATE crmsync.sync_runs SET status = 'abandoned' WHERE status = 'running'; "
	    "INSERT INTO crmsync.sync_runs (crm, kind, trigger) VALUES ('hollihop', 'full', 'v1'); "
	    "INSERT INTO crmsync.run_seen SELECT max(id), 'students', '1' FROM crmsync.sync_runs; COMMIT"), 0);
	int64_t run = h_sql_int(db, "SELECT max(id) FROM crmsync.sync_runs");
	assert_int_equal(start_store(&store, "store-upgraded"), 0);
	snprintf(sql, sizeof(sql), "SELECT status FROM crmsync.sync_runs WHERE id = %lld", (long long)run);
	assert_string_equal(h_sql(db, sql), "abandoned");
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM information_schema.columns WHERE "
	    "table_schema = 'crmsync' AND table_name = 'run_seen' AND column_name = 'keys'"), 1);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM crmsync.run_seen"), 0);
	/* Rows from before have no hash: the store adds the column and re-derives them from raw
	 * (those whose raw holds their key; this file's other tests store raw without it). */
	if (h_wait_sql(db, "SELECT count(*) FROM crmsync.rederive_jobs WHERE status = 'pending'", "0", 20000) != 0 ||
	    h_sql_int(db, "SELECT count(*) FROM hollihop.students WHERE content_hash IS NULL AND raw ? 'ClientId'") != 0 ||
	    h_sql_int(db, "SELECT count(*) FROM hollihop.students WHERE raw ? 'ClientId'") == 0) {
		h_dump_log(&store);
		fail();
	}
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM crmsync.schema_steps WHERE tbl = "
	    "'hollihop.students' AND action = 'add_column' AND detail = 'content_hash'"), 1);
	b = h_batch_new(CAT_HOLLIHOP, "students", 0);
	h_rec(b, "{\"ClientId\":101,\"FirstName\":\"Иван\"}", S(1000), 0,
	    "client_id", "101", "first_name", "Иван", NULL);
	send_ok(b, 1, 0);
	send_ok(b, 0, 1);
	h_batch_free(b);
}

static void
test_kill9_mid_stream(void **state)
{
	pthread_t thr;
	int64_t end;

	(void)state;
	pthread_create(&thr, NULL, stream, NULL);
	end = h_now_ms() + 30000;
	while (acked_batches < 10 && h_now_ms() < end)
		nng_msleep(5);
	assert_true(acked_batches >= 10);
	h_kill(&store, SIGKILL);
	int acked_at_kill = acked_batches;
	/* Every batch acknowledged before the kill is committed. */
	assert_true(h_sql_int(db, "SELECT count(*) FROM amo.leads WHERE name = 'stream'") >=
	    (int64_t)acked_at_kill * STREAM_ROWS);
	assert_int_equal(start_store(&store, "store-restarted"), 0);
	pthread_join(thr, NULL);
	assert_int_equal(acked_batches, STREAM_BATCHES);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM amo.leads WHERE name = 'stream'"),
	    STREAM_BATCHES * STREAM_ROWS);
	assert_int_equal(h_sql_int(db, "SELECT count(DISTINCT id) FROM amo.leads WHERE name = 'stream'"),
	    STREAM_BATCHES * STREAM_ROWS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_migrations_recorded_once),
		cmocka_unit_test(test_idempotent_batch),
		cmocka_unit_test(test_hash_covers_typed_values),
		cmocka_unit_test(test_stale_update_ignored),
		cmocka_unit_test(test_duplicates_in_batch),
		cmocka_unit_test(test_children_replaced),
		cmocka_unit_test(test_delete_record),
		cmocka_unit_test(test_soft_delete_after_complete_run_only),
		cmocka_unit_test(test_run_end_acks_before_rebuild),
		cmocka_unit_test(test_interrupted_run_is_abandoned),
		cmocka_unit_test(test_dead_letters_and_keeps_serving),
		cmocka_unit_test(test_postgres_down_then_back),
		cmocka_unit_test(test_concurrent_stores_race),
		cmocka_unit_test(test_upgrade_from_v1),
		cmocka_unit_test(test_kill9_mid_stream),
	};
	return h_done(cmocka_run_group_tests(tests, setup, teardown));
}
