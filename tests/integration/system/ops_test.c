/*
 * ops_test.c - the operator's repair commands end to end: crmsyncctl resync, runs and
 * deadletters against the real store, the real hollihop-sync (a daemon taking commands),
 * the fake Hollihop (Python, real HTTP) and a throwaway PostgreSQL.
 *
 * One cluster, store, fake and daemon for the file; a first full run of a few entities
 * lands the data, then each test changes the fake and checks the rows:
 * a resync of one entity mirrors its edits and deletions and touches no other entity,
 * its rows readable while it runs; a resync that fails mid-way or whose sync service is
 * killed deletes nothing and rewrites nothing; runs lists the runs each filter selects;
 * a rejected batch is listed, shown, resubmitted in vain, fixed, resubmitted for good;
 * garbage is discarded with a reason; an unreadable row is shown and pointed to resync.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "harness.h"
#include "http.h"

#define KEY	"fAkE/ops+Key=="

static struct h_pg pg;
static struct h_proc store, fake, hh;
static PGconn *db;
static struct http *http;
static int fake_port;
static char store_url[512], store_health[512], hh_url[512], hh_health[512];
static char e_store[600], e_store_health[600], e_dsn[1024], e_ctl_dsn[1024], e_base[256],
    e_hh_url[600], e_hh_health[600], e_amo[600], e_amo_url[600], e_gw[600];
static char out[1 << 16];

/* ---------------------------------------------------------------- the fake's control API */

static void
fake_post(const char *path, const char *body)
{
	static const char *const hdr[] = { "Content-Type: application/json", NULL };
	struct http_response r;
	char url[1024];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", fake_port, path);
	assert_int_equal(http_request(http, body ? "POST" : "DELETE", url, hdr, body,
	    body ? strlen(body) : 0, &r), 0);
	if (r.status != 200)
		fprintf(stderr, "%s %s -> %ld\n", path, body ? body : "", r.status);
	assert_int_equal(r.status, 200);
	http_response_free(&r);
}

/* ---------------------------------------------------------------- processes */

static int
start_fake(void)
{
	char *argv[] = { "--scale", "tiny", "--seed", "3", "--authkey", KEY, "--rate-limit", "0",
	    "--no-warmup", NULL };
	char base[128];

	fake_port = h_fake_start(&fake, "fake-hollihop", "hollihop", argv, base, sizeof(base));
	return fake_port > 0 ? 0 : -1;
}

/* The hollihop-sync daemon: no schedule, pages of 5 rows, one retry. */
static int
start_hh(void)
{
	char *env[] = { e_store, e_base, e_hh_url, e_hh_health, "CS_HOLLIHOP_AUTHKEY=" KEY,
	    "CS_HOLLIHOP_TIMEZONE=Europe/Moscow", "CS_HOLLIHOP_DATE_FROM=2025-03-01",
	    "CS_HOLLIHOP_DATE_TO=2025-07-31", "CS_HOLLIHOP_RATE=0", "CS_HOLLIHOP_SCHEDULE=off",
	    "CS_HOLLIHOP_TIMEOUT=5s", "CS_HOLLIHOP_RETRIES=1", "CS_HOLLIHOP_BACKOFF_BASE=20ms",
	    "CS_HOLLIHOP_BACKOFF_MAX=100ms", "CS_HOLLIHOP_PAGE_SIZE=5",
	    "CS_HOLLIHOP_STORE_DEADLINE=30s", NULL };

	if (h_spawn(&hh, "hollihop-sync", "services/hollihop-sync/crmsync-hollihop-sync", env, NULL) != 0 ||
	    h_wait_health(hh_health, 20000) != 0) {
		h_dump_log(&hh);
		return -1;
	}
	return 0;
}

/* Run crmsyncctl (with a DSN) and args; its stdout+stderr land in out. */
static int
ctl(const char *first, ...)
{
	static int seq;
	char *args[24], name[32];
	char *env[] = { e_store, e_store_health, e_hh_url, e_hh_health, e_amo, e_amo_url, e_gw,
	    e_ctl_dsn, "CS_PG_DSN=", "CS_CTL_TIMEOUT=2s", "CS_CTL_COMMAND_TIMEOUT=20s", NULL };
	struct h_proc p;
	va_list ap;
	int n = 0, st;
	FILE *f;

	args[n++] = (char *)first;
	va_start(ap, first);
	while (n < 23 && (args[n] = va_arg(ap, char *)) != NULL)
		n++;
	va_end(ap);
	args[n] = NULL;
	snprintf(name, sizeof(name), "ctl-%d", ++seq);
	out[0] = '\0';
	if (h_spawn(&p, name, "tools/crmsyncctl/crmsyncctl", env, args) != 0)
		return -1;
	/* crmsyncctl is the launcher's child: its status comes from svc's rc file */
	if ((st = h_wait_exit(&p, 600000)) < 0)
		return -1;
	if ((f = fopen(p.log, "r")) != NULL) {
		size_t len = fread(out, 1, sizeof(out) - 1, f);
		out[len] = '\0';
		fclose(f);
	}
	fprintf(stderr, "--- crmsyncctl %s %s -> %d\n%s", first, args[1] ? args[1] : "",
	    st, out);
	return st;
}

static const char *
sqlf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *
sqlf(const char *fmt, ...)
{
	char sql[8192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	return h_sql(db, sql);
}

static int64_t
sqlf_int(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int64_t
sqlf_int(const char *fmt, ...)
{
	char sql[8192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	return h_sql_int(db, sql);
}

/* Everything of a table that a run may change, as one digest. */
static char *
table_digest(const char *table)
{
	return strdup(sqlf("SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM hollihop.%s t",
	    table));
}

static int
setup(void **state)
{
	(void)state;
	if (h_pg_start(&pg) != 0 || (db = h_connect(&pg)) == NULL)
		return -1;
	snprintf(store_url, sizeof(store_url), "%s", h_url("store"));
	snprintf(store_health, sizeof(store_health), "%s", h_url("store-health"));
	snprintf(hh_url, sizeof(hh_url), "%s", h_url("hh"));
	snprintf(hh_health, sizeof(hh_health), "%s", h_url("hh-health"));
	snprintf(e_store, sizeof(e_store), "CS_STORE_URL=%s", store_url);
	snprintf(e_store_health, sizeof(e_store_health), "CS_STORE_HEALTH_URL=%s", store_health);
	snprintf(e_dsn, sizeof(e_dsn), "CS_PG_DSN=%s", pg.dsn);
	snprintf(e_ctl_dsn, sizeof(e_ctl_dsn), "CS_CTL_PG_DSN=%s", pg.dsn);
	snprintf(e_hh_url, sizeof(e_hh_url), "CS_HOLLIHOP_URL=%s", hh_url);
	snprintf(e_hh_health, sizeof(e_hh_health), "CS_HOLLIHOP_HEALTH_URL=%s", hh_health);
	snprintf(e_amo, sizeof(e_amo), "CS_AMO_HEALTH_URL=%s", h_url("amo-health"));
	snprintf(e_amo_url, sizeof(e_amo_url), "CS_AMO_URL=%s", h_url("amo"));
	snprintf(e_gw, sizeof(e_gw), "CS_GATEWAY_HEALTH_URL=%s", h_url("gw-health"));
	if (http_new(&http, NULL) != 0 || start_fake() != 0)
		return -1;
	snprintf(e_base, sizeof(e_base), "CS_HOLLIHOP_BASE_URL=http://127.0.0.1:%d/Api/V2", fake_port);
	char *env[] = { e_store, e_store_health, e_dsn, "CS_STORE_RECONNECT_MAX=300ms", NULL };
	if (h_spawn(&store, "store", "services/store/crmsync-store", env, NULL) != 0 ||
	    h_wait_ready(store_health, 20000) != 0) {
		h_dump_log(&store);
		return -1;
	}
	if (start_hh() != 0)
		return -1;
	/* The first full read of the entities the tests use. */
	if (ctl("sync", "hollihop", "--full", "--entities", "offices,students,payments", NULL) != 0) {
		h_dump_log(&hh);
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	int rv_hh, rv_store;

	(void)state;
	/* Both exit 0 on SIGTERM; not 0 is a crash or (under ASan) a leak. */
	if ((rv_hh = h_kill(&hh, SIGTERM)) != 0)
		h_dump_log(&hh);
	if ((rv_store = h_kill(&store, SIGTERM)) != 0)
		h_dump_log(&store);
	h_kill(&fake, SIGTERM);
	http_free(http);
	PQfinish(db);
	return h_pg_stop(&pg, 0) != 0 || rv_hh != 0 || rv_store != 0 ? -1 : 0;
}

/* ---------------------------------------------------------------- resync */

/*
 * resync hollihop payments: its own run (kind full, trigger resync, one entity); the
 * payments deleted in the fake are soft-deleted, the edited one rewritten, every other row
 * untouched; the student deleted in the fake stays live (another entity); payments stay
 * readable while the run goes on.
 */
static void
test_resync_one_entity(void **state)
{
	char p1[32], p2[32], p3[32], s1[32], body[1024];

	(void)state;
	snprintf(p1, sizeof(p1), "%s", h_sql(db, "SELECT id FROM hollihop.payments ORDER BY id OFFSET 1 LIMIT 1"));
	snprintf(p2, sizeof(p2), "%s", h_sql(db, "SELECT id FROM hollihop.payments ORDER BY id OFFSET 6 LIMIT 1"));
	snprintf(p3, sizeof(p3), "%s", h_sql(db, "SELECT id FROM hollihop.payments ORDER BY id OFFSET 9 LIMIT 1"));
	snprintf(s1, sizeof(s1), "%s", h_sql(db, "SELECT client_id FROM hollihop.students ORDER BY client_id LIMIT 1"));
	snprintf(body, sizeof(body), "{\"ops\":["
	    "{\"op\":\"delete\",\"method\":\"GetPayments\",\"keys\":[%s,%s]},"
	    "{\"op\":\"edit\",\"method\":\"GetPayments\",\"key\":%s,\"set\":{\"Type\":\"Пересчёт\"}},"
	    "{\"op\":\"delete\",\"method\":\"GetStudents\",\"key\":%s}]}", p1, p2, p3, s1);
	fake_post("/_fake/mutate", body);
	char *students = table_digest("students");
	int64_t live = h_sql_int(db, "SELECT count(*) FROM hollihop.payments WHERE deleted_at IS NULL");
	int64_t unchanged_synced = sqlf_int("SELECT count(*) FROM hollihop.payments WHERE id NOT IN (%s, %s, %s) "
	    "AND synced_at = (SELECT max(synced_at) FROM hollihop.payments)", p1, p2, p3);
	char *old_max = strdup(h_sql(db, "SELECT max(synced_at)::text FROM hollihop.payments"));
	/* Slow pages, so the run is seen running while its rows are read. */
	fake_post("/_fake/faults", "{\"replace\":true,\"faults\":[{\"method\":\"GetPayments\",\"kind\":\"slow\","
	    "\"delay_ms\":700,\"count\":3}]}");

	char *args[] = { "resync", "hollihop", "payments", NULL };
	char *env[] = { e_store, e_store_health, e_hh_url, e_hh_health, e_amo, e_amo_url, e_gw,
	    e_ctl_dsn, "CS_PG_DSN=", "CS_CTL_TIMEOUT=2s", "CS_CTL_COMMAND_TIMEOUT=20s", NULL };
	struct h_proc p;
	int st = -1, seen_running = 0;
	assert_int_equal(h_spawn(&p, "ctl-resync", "tools/crmsyncctl/crmsyncctl", env, args), 0);
	for (int64_t end = h_now_ms() + 30000; st < 0 && h_now_ms() < end;) {
		if (h_sql_int(db, "SELECT count(*) FROM crmsync.sync_runs WHERE trigger = 'resync' "
		    "AND status = 'running'") == 1) {
			seen_running = 1;
			/* the rows are all there, none hidden, none deleted yet */
			assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.payments WHERE deleted_at IS NULL"),
			    live);
		}
		st = h_wait_exit(&p, 100);
	}
	fake_post("/_fake/faults", NULL);
	FILE *f = fopen(p.log, "r");
	size_t n = f ? fread(out, 1, sizeof(out) - 1, f) : 0;
	out[n] = '\0';
	if (f)
		fclose(f);
	fprintf(stderr, "--- crmsyncctl resync hollihop payments -> %d\n%s", st, out);
	assert_true(seen_running);
	assert_int_equal(st, 0);

	int64_t run = h_sql_int(db, "SELECT max(id) FROM crmsync.sync_runs");
	char want[128];
	snprintf(want, sizeof(want), "resync hollihop payments: run %lld complete in ", (long long)run);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, ", deleted 2\n"));
	assert_string_equal(sqlf("SELECT kind || ' ' || trigger || ' ' || entities::text || ' ' || status || ' ' || "
	    "rows_deleted FROM crmsync.sync_runs WHERE id = %lld", (long long)run),
	    "full resync {payments} complete 2");
	/* exactly the two deleted, the edit in, nothing else rewritten */
	assert_string_equal(h_sql(db, "SELECT string_agg(id::text, ',' ORDER BY id) FROM hollihop.payments "
	    "WHERE deleted_at IS NOT NULL"), sqlf("SELECT '%s,%s'", p1, p2));
	assert_string_equal(sqlf("SELECT raw->>'Type' FROM hollihop.payments WHERE id = %s", p3), "Пересчёт");
	assert_int_equal(sqlf_int("SELECT count(*) FROM hollihop.payments WHERE synced_at > '%s' AND id <> %s",
	    old_max, p3), 0);
	(void)unchanged_synced;
	/* another entity untouched: the student deleted in the fake is still live */
	char *after = table_digest("students");
	assert_string_equal(after, students);
	assert_int_equal(sqlf_int("SELECT count(*) FROM hollihop.students WHERE client_id = %s AND deleted_at IS NULL",
	    s1), 1);
	free(after);
	free(students);
	free(old_max);
}

/* Unknown CRM or entity: exit 2 and the valid ones listed from the catalogue. */
static void
test_resync_usage_lists_valid_names(void **state)
{
	(void)state;
	assert_int_equal(ctl("resync", "nocrm", "x", NULL), 2);
	assert_non_null(strstr(out, "CRMs: amo, hollihop"));
	assert_int_equal(ctl("resync", "hollihop", "groups", NULL), 2);
	assert_non_null(strstr(out, "hollihop has no entity \"groups\""));
	assert_non_null(strstr(out, " payments"));
	assert_non_null(strstr(out, " ed_units"));
	assert_int_equal(ctl("resync", "amo", NULL), 2);
	assert_non_null(strstr(out, " leads"));
	assert_int_equal(ctl("resync", "hollihop", "payments", "--bogus", NULL), 2);
}

/*
 * A resync that fails mid-way (the fake answers 500 from the third page on): the run is
 * failed, nothing is deleted (a payment deleted in the fake stays live), nothing rewritten.
 * Then one cut by kill -9 of hollihop-sync: the same. The next complete resync deletes it.
 */
static void
test_resync_interrupted_changes_nothing(void **state)
{
	char pay[32], body[256];

	(void)state;
	snprintf(pay, sizeof(pay), "%s", h_sql(db, "SELECT id FROM hollihop.payments WHERE deleted_at IS NULL "
	    "ORDER BY id DESC LIMIT 1"));
	snprintf(body, sizeof(body), "{\"ops\":[{\"op\":\"delete\",\"method\":\"GetPayments\",\"key\":%s}]}", pay);
	fake_post("/_fake/mutate", body);
	char *before = table_digest("payments");

	fake_post("/_fake/faults", "{\"replace\":true,\"faults\":[{\"method\":\"GetPayments\",\"kind\":\"http500\","
	    "\"after\":2,\"count\":100}]}");
	assert_int_equal(ctl("resync", "hollihop", "payments", NULL), 1);
	fake_post("/_fake/faults", NULL);
	int64_t run = h_sql_int(db, "SELECT max(id) FROM crmsync.sync_runs");
	assert_string_equal(sqlf("SELECT trigger || ' ' || status || ' ' || rows_deleted FROM crmsync.sync_runs "
	    "WHERE id = %lld", (long long)run), "resync failed 0");
	assert_non_null(strstr(out, "the re-sync did not read payments completely: nothing of it was deleted"));
	char *after = table_digest("payments");
	assert_string_equal(after, before);
	free(after);

	/* Killed mid-way: the second page hangs, kill -9 once the run is reading. It hangs past
	 * CS_HOLLIHOP_TIMEOUT (5 s) on both attempts, so the run cannot go on before the kill
	 * however slowly the crmsyncctl call below runs: a 3-s page let a loaded machine finish
	 * the run first (the digest changed; reproduced with a 3.5-s pause before the kill). */
	fake_post("/_fake/faults", "{\"replace\":true,\"faults\":[{\"method\":\"GetPayments\",\"kind\":\"slow\","
	    "\"delay_ms\":30000,\"after\":1,\"count\":2}]}");
	assert_int_equal(ctl("resync", "hollihop", "payments", "--no-wait", NULL), 0);
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM crmsync.sync_runs WHERE id > %lld AND trigger = 'resync' "
	    "AND status = 'running' AND batches > 0", (long long)run);
	assert_int_equal(h_wait_sql(db, sql, "1", 20000), 0);
	/* a second resync meanwhile is refused (it would not be a run of its own) */
	assert_int_equal(ctl("resync", "hollihop", "payments", NULL), 1);
	assert_non_null(strstr(out, "busy: run "));
	h_kill(&hh, SIGKILL);
	fake_post("/_fake/faults", NULL);
	after = table_digest("payments");
	assert_string_equal(after, before);
	free(after);
	free(before);

	/* Back up: a complete resync now deletes the payment (and closes the cut run). */
	assert_int_equal(start_hh(), 0);
	assert_int_equal(ctl("resync", "hollihop", "payments", NULL), 0);
	assert_int_equal(sqlf_int("SELECT count(*) FROM hollihop.payments WHERE id = %s AND deleted_at IS NOT NULL",
	    pay), 1);
	assert_int_equal(sqlf_int("SELECT count(*) FROM crmsync.sync_runs WHERE id > %lld AND status = 'abandoned'",
	    (long long)run), 1);
}

/* ---------------------------------------------------------------- runs */

/* Number of data lines (after the header) in out. */
static int
lines(void)
{
	int n = 0;

	for (const char *p = strchr(out, '\n'); p != NULL && p[1] != '\0'; p = strchr(p + 1, '\n'))
		n++;
	return n;
}

/* The runs so far: the first full (command, 3 entities), then resyncs of payments:
 * complete, failed, abandoned (killed), complete. Each filter narrows to them. */
static void
test_runs_filters(void **state)
{
	char want[64];

	(void)state;
	int64_t total = h_sql_int(db, "SELECT count(*) FROM crmsync.sync_runs");
	assert_true(total >= 5);
	assert_int_equal(ctl("runs", NULL), 0);
	assert_non_null(strstr(out, "ID     CRM      KIND        TRIGGER  ENTITIES"));
	assert_int_equal(lines(), (int)total);
	/* --entity, --status: the one failed resync, with its error's first line */
	assert_int_equal(ctl("runs", "--entity", "payments", "--status", "failed", NULL), 0);
	assert_int_equal(lines(), 1);
	assert_non_null(strstr(out, " resync   payments "));
	assert_non_null(strstr(out, " failed "));
	assert_non_null(strstr(out, "GetPayments"));
	assert_int_equal(ctl("runs", "--status", "abandoned", NULL), 0);
	assert_int_equal(lines(), 1);
	/* --entity offices: only the first run read it */
	assert_int_equal(ctl("runs", "--entity", "offices", NULL), 0);
	assert_int_equal(lines(), 1);
	assert_non_null(strstr(out, " command  offices,students,payments "));
	/* --limit: the newest only */
	assert_int_equal(ctl("runs", "--limit", "1", NULL), 0);
	assert_int_equal(lines(), 1);
	snprintf(want, sizeof(want), "\n%-6lld hollihop", (long long)h_sql_int(db, "SELECT max(id) FROM crmsync.sync_runs"));
	assert_non_null(strstr(out, want));
	/* --crm, --since (a duration, a timestamp) */
	assert_int_equal(ctl("runs", "--crm", "amo", NULL), 0);
	assert_non_null(strstr(out, "no runs match"));
	assert_int_equal(ctl("runs", "--crm", "hollihop", "--since", "1h", NULL), 0);
	assert_int_equal(lines(), (int)total);
	assert_int_equal(ctl("runs", "--since", "2099-01-01", NULL), 0);
	assert_non_null(strstr(out, "no runs match"));
	/* bad filters are usage errors, never SQL */
	assert_int_equal(ctl("runs", "--status", "done'; DROP TABLE x; --", NULL), 2);
	assert_int_equal(ctl("runs", "--crm", "bitrix", NULL), 2);
	assert_int_equal(ctl("runs", "--entity", "nothing", NULL), 2);
	assert_int_equal(ctl("runs", "--limit", "0", NULL), 2);
	assert_int_equal(ctl("runs", "--since", NULL), 2);
}

/* ---------------------------------------------------------------- deadletters */

/* The newest dead letter's id matching where (SQL), as text. */
static const char *
newest_dl(const char *where)
{
	static char id[32];

	snprintf(id, sizeof(id), "%s", sqlf("SELECT coalesce(max(id), 0) FROM crmsync.dead_letters WHERE %s", where));
	return id;
}

/*
 * A batch the store rejects (a constraint no office meets) is a dead letter: listed, shown
 * with its reason and its records' JSON; resubmitted while the cause is there it stays
 * open with the new error; after the fix it applies through the normal path and is closed
 * as resubmitted (no longer listed by default). Garbage sent to the store is a dead letter
 * that cannot be resubmitted: discarded with a reason, kept with who and why. A row the
 * CRM sent without its key is shown as JSON and pointed to resync.
 */
static void
test_deadletters_round_trip(void **state)
{
	char o1[32], id[32], gid[32], want[128], body[512];

	(void)state;
	snprintf(o1, sizeof(o1), "%s", h_sql(db, "SELECT id FROM hollihop.offices ORDER BY id LIMIT 1"));
	assert_int_equal(h_sql_exec(db, "ALTER TABLE hollihop.offices ADD CONSTRAINT test_reject CHECK (id < 0) NOT VALID"), 0);
	snprintf(body, sizeof(body), "{\"ops\":[{\"op\":\"edit\",\"method\":\"GetOffices\",\"key\":%s,"
	    "\"set\":{\"Name\":\"Филиал после ремонта\"}}]}", o1);
	fake_post("/_fake/mutate", body);
	/* the run completes, but not for offices: exit 1, said so */
	assert_int_equal(ctl("resync", "hollihop", "offices", NULL), 1);
	assert_non_null(strstr(out, "complete, but not for this entity"));
	assert_non_null(strstr(out, "the re-sync did not read offices completely"));
	snprintf(id, sizeof(id), "%s", newest_dl("entity = 'offices'"));
	assert_true(atoll(id) > 0);

	assert_int_equal(ctl("deadletters", "list", NULL), 0);
	snprintf(want, sizeof(want), "\n%-6s ", id);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, " offices "));
	assert_non_null(strstr(out, " batch "));
	assert_int_equal(ctl("deadletters", "list", "--entity", "students", NULL), 0);
	assert_null(strstr(out, " offices "));
	assert_int_equal(ctl("deadletters", "show", id, NULL), 0);
	assert_non_null(strstr(out, "test_reject"));
	assert_non_null(strstr(out, "payload: record batch "));
	assert_non_null(strstr(out, "Филиал после ремонта"));
	assert_null(strstr(out, pg.dir));

	/* not fixed yet: still rejected, stays open with the new error */
	assert_int_equal(ctl("deadletters", "resubmit", id, NULL), 1);
	assert_non_null(strstr(out, "still rejected"));
	assert_string_equal(sqlf("SELECT (resolved_at IS NULL)::text || ' ' || (resubmit_error LIKE '%%test_reject%%')::text "
	    "FROM crmsync.dead_letters WHERE id = %s", id), "true true");
	/* fixed: applied through the normal path, closed, no longer listed */
	assert_int_equal(h_sql_exec(db, "ALTER TABLE hollihop.offices DROP CONSTRAINT test_reject"), 0);
	assert_int_equal(ctl("deadletters", "resubmit", id, NULL), 0);
	assert_non_null(strstr(out, "applied: "));
	assert_string_equal(sqlf("SELECT name FROM hollihop.offices WHERE id = %s", o1), "Филиал после ремонта");
	assert_string_equal(sqlf("SELECT resolution || ' ' || (resolved_by LIKE '%%@%%')::text FROM crmsync.dead_letters "
	    "WHERE id = %s", id), "resubmitted true");
	assert_int_equal(ctl("deadletters", "list", NULL), 0);
	assert_null(strstr(out, want));
	assert_int_equal(ctl("deadletters", "list", "--all", NULL), 0);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, " resubmitted "));
	assert_int_equal(ctl("deadletters", "resubmit", id, NULL), 1);
	assert_non_null(strstr(out, "already resubmitted"));

	/* garbage: nothing to resubmit; discard needs a reason and keeps it */
	nng_socket s;
	assert_int_equal(nng_req0_open(&s), 0);
	assert_int_equal(nng_dial(s, store_url, NULL, 0), 0);
	assert_int_equal(nng_send(s, "\x0a\xffnot a message", 15, 0), 0);
	char *reply = NULL;
	size_t rlen = 0;
	assert_int_equal(nng_recv(s, &reply, &rlen, NNG_FLAG_ALLOC), 0);
	nng_free(reply, rlen);
	nng_close(s);
	snprintf(gid, sizeof(gid), "%s", newest_dl("reason = 'undecodable message'"));
	assert_true(atoll(gid) > atoll(id));
	assert_int_equal(ctl("deadletters", "show", gid, NULL), 0);
	assert_non_null(strstr(out, "not a crmsync message"));
	assert_non_null(strstr(out, "\\xff"));
	assert_int_equal(ctl("deadletters", "resubmit", gid, NULL), 1);
	assert_non_null(strstr(out, "not a record batch"));
	assert_int_equal(ctl("deadletters", "discard", gid, NULL), 2);
	assert_int_equal(ctl("deadletters", "discard", gid, "--reason", "test garbage, not from a sync service", NULL), 0);
	assert_string_equal(sqlf("SELECT resolution || ': ' || resolution_reason FROM crmsync.dead_letters WHERE id = %s",
	    gid), "discarded: test garbage, not from a sync service");
	assert_int_equal(ctl("deadletters", "list", NULL), 0);
	assert_non_null(strstr(out, "no open dead letters"));
	assert_int_equal(ctl("deadletters", "show", gid, NULL), 0);
	assert_non_null(strstr(out, "state: discarded at "));

	/* a row without its key: shown as the source JSON, resubmit points to resync */
	fake_post("/_fake/faults", "{\"replace\":true,\"faults\":[{\"method\":\"GetOffices\",\"kind\":\"no_key\","
	    "\"key\":\"Id\",\"row\":1,\"count\":1}]}");
	assert_int_equal(ctl("resync", "hollihop", "offices", NULL), 1);
	assert_non_null(strstr(out, "deletions refused: 1 rows could not be read"));
	fake_post("/_fake/faults", NULL);
	snprintf(id, sizeof(id), "%s", newest_dl("reason LIKE 'row: %%'"));
	assert_true(atoll(id) > atoll(gid));
	assert_int_equal(ctl("deadletters", "show", id, NULL), 0);
	assert_non_null(strstr(out, "payload: the source row"));
	assert_non_null(strstr(out, "\"Name\""));
	assert_int_equal(ctl("deadletters", "resubmit", id, NULL), 1);
	assert_non_null(strstr(out, "crmsyncctl resync hollihop offices"));
	assert_int_equal(ctl("deadletters", "bogus", NULL), 2);
	assert_int_equal(ctl("deadletters", "show", "abc", NULL), 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resync_one_entity),
		cmocka_unit_test(test_resync_usage_lists_valid_names),
		cmocka_unit_test(test_resync_interrupted_changes_nothing),
		cmocka_unit_test(test_runs_filters),
		cmocka_unit_test(test_deadletters_round_trip),
	};
	return h_done(cmocka_run_group_tests(tests, setup, teardown));
}
