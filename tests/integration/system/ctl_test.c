/*
 * ctl_test.c - crmsyncctl against a real store and a real throwaway PostgreSQL.
 *
 * The store runs as a process; the other three services are absent, except in the sync
 * tests, where this file plays hollihop-sync: a REP socket that takes SyncCommand and
 * drives a real run through the real store (RunBegin, RunProgress, RunEnd), and a real
 * health responder (lib/health) with the stats a sync service reports. crmsyncctl runs as
 * a process with only the environment a container would give it.
 * Covered: status (store up, others down, exit code, the PostgreSQL section, no secret in
 * the output), probe exit codes (healthy, down, degraded store while PostgreSQL is away,
 * --live, by service name, usage), sync followed through the database and through health
 * stats, sync to a service that is not running, catalog ddl applied to a fresh database,
 * a sync followed through the database while PostgreSQL restarts (exit 0 all the same).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "batch.h"
#include "bus.h"
#include "errors.h"
#include "harness.h"
#include "health.h"

static struct h_pg pg;
static struct h_proc store;
static PGconn *db;
static char store_url[512], store_health[512];
static char env_store_url[600], env_store_health[600], env_dsn[700], env_ctl_dsn[700];
static char env_gw[600], env_amo[600], env_amo_url[600], env_hh[600], env_hh_url[600];
static char out[1 << 16];

/* Run crmsyncctl with env (NULL-terminated) and args; its stdout+stderr land in out. */
static int
ctl(char **env, ...)
{
	static int seq;
	char *args[16], name[32];
	struct h_proc p;
	va_list ap;
	int n = 0, st;
	FILE *f;

	va_start(ap, env);
	while (n < 15 && (args[n] = va_arg(ap, char *)) != NULL)
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
	fprintf(stderr, "--- crmsyncctl %s%s%s -> %d\n%s", args[0] ? args[0] : "", args[0] && args[1] ? " " : "",
	    args[0] && args[1] ? args[1] : "", st, out);
	return st;
}

/* The environment of a crmsyncctl next to the store only. Absent services get private
 * addresses nobody listens on, so nothing else on this machine can answer for them. */
static char **
base_env(int with_dsn)
{
	static char *env[16];
	int n = 0;

	env[n++] = env_store_url;
	env[n++] = env_store_health;
	env[n++] = env_gw;
	env[n++] = env_amo;
	env[n++] = env_amo_url;
	env[n++] = env_hh;
	env[n++] = env_hh_url;
	env[n++] = "CS_CTL_TIMEOUT=2s";
	env[n++] = "CS_CTL_COMMAND_TIMEOUT=20s";
	env[n++] = with_dsn ? env_ctl_dsn : "CS_CTL_PG_DSN=";
	env[n++] = "CS_PG_DSN=";
	env[n] = NULL;
	return env;
}

static int
setup(void **state)
{
	(void)state;
	if (h_pg_start(&pg) != 0)
		return -1;
	snprintf(store_url, sizeof(store_url), "%s", h_url("store"));
	snprintf(store_health, sizeof(store_health), "%s", h_url("store-health"));
	snprintf(env_store_url, sizeof(env_store_url), "CS_STORE_URL=%s", store_url);
	snprintf(env_store_health, sizeof(env_store_health), "CS_STORE_HEALTH_URL=%s", store_health);
	snprintf(env_dsn, sizeof(env_dsn), "CS_PG_DSN=%s", pg.dsn);
	snprintf(env_ctl_dsn, sizeof(env_ctl_dsn), "CS_CTL_PG_DSN=%s", pg.dsn);
	snprintf(env_gw, sizeof(env_gw), "CS_GATEWAY_HEALTH_URL=%s", h_url("gw-health"));
	snprintf(env_amo, sizeof(env_amo), "CS_AMO_HEALTH_URL=%s", h_url("amo-health"));
	snprintf(env_amo_url, sizeof(env_amo_url), "CS_AMO_URL=%s", h_url("amo"));
	snprintf(env_hh, sizeof(env_hh), "CS_HOLLIHOP_HEALTH_URL=%s", h_url("hh-health"));
	snprintf(env_hh_url, sizeof(env_hh_url), "CS_HOLLIHOP_URL=%s", h_url("hh"));

	char *env[] = { env_store_url, env_store_health, env_dsn, "CS_STORE_RECONNECT_MAX=300ms", NULL };
	if ((db = h_connect(&pg)) == NULL ||
	    h_spawn(&store, "store", "services/store/crmsync-store", env, NULL) != 0 ||
	    h_wait_ready(store_health, 20000) != 0 ||
	    h_wait_sql(db, "SELECT count(*) > 0 FROM information_schema.tables WHERE table_schema = 'amo'",
	    "t", 20000) != 0) {
		h_dump_log(&store);
		return -1;
	}
	/* Ready (health says so once migrated) and alive: listening for batches. */
	if (!h_alive(&store)) {
		h_dump_log(&store);
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	int rv;

	(void)state;
	if ((rv = h_kill(&store, SIGTERM)) != 0) {
		fprintf(stderr, "store exited with %d\n", rv);
		h_dump_log(&store);
	}
	PQfinish(db);
	return h_pg_stop(&pg, 0) != 0 || rv != 0 ? -1 : 0;
}

static void
test_status_store_up_others_down(void **state)
{
	(void)state;
	/* Three services down: exit 1, and each named with its state. */
	assert_int_equal(ctl(base_env(1), "status", NULL), 1);
	assert_non_null(strstr(out, "\nstore          up "));
	assert_non_null(strstr(out, "\nhook-gateway   down "));
	assert_non_null(strstr(out, "\namo-sync       down "));
	assert_non_null(strstr(out, "\nhollihop-sync  down "));
	assert_non_null(strstr(out, "connection refused"));
	assert_non_null(strstr(out, "Recent sync runs (crmsync.sync_runs)"));
	assert_non_null(strstr(out, "Last successful sync per CRM and entity"));
	assert_non_null(strstr(out, "Dead letters in the last 24 h: 0"));
	assert_null(strstr(out, pg.dir));	/* the DSN never shows */
	/* -v lists the store's stats. */
	assert_int_equal(ctl(base_env(0), "status", "-v", NULL), 1);
	assert_non_null(strstr(out, "db_up"));
	assert_non_null(strstr(out, "(set CS_CTL_PG_DSN or CS_PG_DSN"));
	assert_int_equal(ctl(base_env(0), "status", "extra", NULL), 2);
}

static void
test_probe_exit_codes(void **state)
{
	char missing[512];

	(void)state;
	snprintf(missing, sizeof(missing), "%s", h_url("nobody"));
	assert_int_equal(ctl(base_env(0), "probe", store_health, NULL), 0);
	assert_non_null(strstr(out, "ok: store "));
	assert_int_equal(ctl(base_env(0), "probe", "store", NULL), 0);	/* by name, via CS_STORE_HEALTH_URL */
	assert_int_equal(ctl(base_env(0), "probe", "crmsync-store", NULL), 0);
	assert_int_equal(ctl(base_env(0), "probe", missing, NULL), 1);
	assert_non_null(strstr(out, "down: "));
	assert_int_equal(ctl(base_env(0), "probe", "--live", missing, NULL), 1);
	assert_int_equal(ctl(base_env(0), "probe", "-q", "hook-gateway", NULL), 1);
	assert_string_equal(out, "");
	assert_int_equal(ctl(base_env(0), "probe", NULL), 2);
	assert_int_equal(ctl(base_env(0), "probe", "no-such-service", NULL), 2);
	assert_int_equal(ctl(base_env(0), "nonsense", NULL), 2);
	assert_int_equal(ctl(base_env(0), "--help", NULL), 0);
	assert_non_null(strstr(out, "CS_STORE_HEALTH_URL"));
	/* A bad configuration value is a usage error, said clearly. */
	char *bad[] = { "CS_CTL_TIMEOUT=soon", NULL };
	assert_int_equal(ctl(bad, "probe", "store", NULL), 2);
	assert_non_null(strstr(out, "CS_CTL_TIMEOUT"));
}

/* --- a stand-in hollihop-sync: real health responder, real runs through the real store --- */

enum { FK_RUNNING, FK_LAST_RUN, FK_COMPLETE, FK_FAILED, FK_ROWS, FK_PAGES, FK__N };
static struct stat_counter fk_stats[FK__N] = {
	[FK_RUNNING]	= { "running", "1 while a run is in progress", 1, 0 },
	[FK_LAST_RUN]	= { "last_run_id", "id of the latest run", 1, 0 },
	[FK_COMPLETE]	= { "runs_complete", "complete runs", 0, 0 },
	[FK_FAILED]	= { "runs_failed", "failed runs", 0, 0 },
	[FK_ROWS]	= { "rows_sent", "rows", 0, 0 },
	[FK_PAGES]	= { "pages", "pages", 0, 0 },
};

struct fake {
	pthread_t		 thr;
	nng_socket		 rep, store;
	struct health		*health;
	volatile _Atomic int		 stop;
	volatile _Atomic int		 hold;		/* keep the run going until cleared */
	int			 late;		/* accept first, open the run after (as amo-sync) */
	int			 commands, last_kind;
};

static void *
fake_main(void *arg)
{
	struct fake *f = arg;

	while (!f->stop) {
		Crmsync__Envelope *req = NULL, rp = CRMSYNC__ENVELOPE__INIT;
		Crmsync__RunProgress prog = CRMSYNC__RUN_PROGRESS__INIT;
		int64_t run_id = 0;
		int rv = bus_recv(f->rep, &req, 100);

		if (rv == CS_ETIMEDOUT)
			continue;
		if (rv != 0)
			break;
		if (req->body_case != CRMSYNC__ENVELOPE__BODY_SYNC || req->sync->crm != CRMSYNC__CRM__CRM_HOLLIHOP) {
			(void)bus_reply_ack(f->rep, CRMSYNC__ACK_STATUS__ACK_REJECTED, "SyncCommand for hollihop only",
			    0, 0, 0, 0);
			bus_free(req);
			continue;
		}
		f->commands++;
		f->last_kind = req->sync->kind;
		if (f->late) {
			/* amo-sync's way: accepted at once, the run opened with the store after */
			(void)bus_reply_ack(f->rep, CRMSYNC__ACK_STATUS__ACK_OK, NULL, 0, 0, 0, 0);
			nng_msleep(300);
		}
		if (h_run_begin(f->store, CAT_HOLLIHOP, req->sync->kind == CRMSYNC__SYNC_KIND__SYNC_FULL,
		    &run_id) != 0) {
			(void)bus_reply_ack(f->rep, CRMSYNC__ACK_STATUS__ACK_RETRY, "store unavailable", 0, 0, 0, 0);
			bus_free(req);
			continue;
		}
		stat_set(&fk_stats[FK_RUNNING], 1);
		stat_set(&fk_stats[FK_LAST_RUN], run_id);
		if (!f->late)
			(void)bus_reply_ack(f->rep, CRMSYNC__ACK_STATUS__ACK_OK, NULL, 0, 0, 0, run_id);
		bus_free(req);
		/* Some visible progress, long enough for crmsyncctl to poll it at least once. */
		prog.run_id = run_id;
		prog.entity = "students";
		prog.rows = 1000;
		prog.pages = 1;
		rp.body_case = CRMSYNC__ENVELOPE__BODY_RUN_PROGRESS;
		rp.run_progress = &prog;
		(void)bus_call_ack(f->store, &rp, NULL, 5000, 30000, NULL);
		stat_add(&fk_stats[FK_ROWS], 1000);
		stat_add(&fk_stats[FK_PAGES], 1);
		nng_msleep(1500);
		while (f->hold && !f->stop)
			nng_msleep(50);
		(void)h_run_end(f->store, run_id, CRMSYNC__RUN_STATUS__RUN_COMPLETE, "students", 1);
		stat_add(&fk_stats[FK_COMPLETE], 1);
		stat_set(&fk_stats[FK_RUNNING], 0);
	}
	return NULL;
}

static void
fake_start(struct fake *f)
{
	memset(f, 0, sizeof(*f));
	assert_int_equal(bus_listen(&f->rep, h_url("hh"), 1 << 20), 0);
	assert_int_equal(bus_dial(&f->store, store_url, 1 << 20), 0);
	assert_int_equal(health_start(&f->health, h_url("hh-health"), "hollihop-sync", fk_stats, FK__N,
	    NULL, NULL), 0);
	assert_int_equal(pthread_create(&f->thr, NULL, fake_main, f), 0);
}

static void
fake_stop(struct fake *f)
{
	f->stop = 1;
	pthread_join(f->thr, NULL);
	health_stop(f->health);
	bus_close(f->rep);
	bus_close(f->store);
}

static void
test_sync_followed_through_db(void **state)
{
	struct fake f;
	char want[64];
	int rv;

	(void)state;
	fake_start(&f);
	rv = ctl(base_env(1), "sync", "hollihop", "--full", NULL);
	fake_stop(&f);
	assert_int_equal(rv, 0);
	assert_int_equal(f.commands, 1);
	assert_int_equal(f.last_kind, CRMSYNC__SYNC_KIND__SYNC_FULL);
	int64_t run = h_sql_int(db, "SELECT max(id) FROM crmsync.sync_runs");
	snprintf(want, sizeof(want), "run %lld hollihop full: complete", (long long)run);
	assert_non_null(strstr(out, "hollihop-sync accepted"));
	assert_non_null(strstr(out, want));
	assert_string_equal(h_sql(db, "SELECT status FROM crmsync.sync_runs ORDER BY id DESC LIMIT 1"), "complete");

	/* status now shows the run and the entity's last successful sync. */
	assert_int_equal(ctl(base_env(1), "status", NULL), 1);
	assert_non_null(strstr(out, "hollihop  students"));
	assert_non_null(strstr(out, "complete"));
}

static void
test_sync_followed_through_health(void **state)
{
	struct fake f;
	int rv;

	(void)state;
	fake_start(&f);
	rv = ctl(base_env(0), "sync", "hollihop", NULL);
	fake_stop(&f);
	assert_int_equal(rv, 0);
	assert_int_equal(f.commands, 1);
	assert_int_equal(f.last_kind, CRMSYNC__SYNC_KIND__SYNC_INCREMENTAL);
	assert_non_null(strstr(out, "complete"));
	/* The service answers on health, and --no-wait returns once it accepted. */
	int64_t done = stat_get(&fk_stats[FK_COMPLETE]);
	fake_start(&f);
	rv = ctl(base_env(1), "sync", "hollihop", "--no-wait", NULL);
	/* The stand-in finishes its run before it stops. */
	for (int64_t end = h_now_ms() + 20000; stat_get(&fk_stats[FK_COMPLETE]) == done && h_now_ms() < end;)
		nng_msleep(20);
	assert_int_equal(stat_get(&fk_stats[FK_COMPLETE]), done + 1);
	fake_stop(&f);
	assert_int_equal(rv, 0);
	assert_non_null(strstr(out, "accepted: run "));
}

/*
 * A service that accepts before it has a run id (amo-sync) must not make crmsyncctl print
 * "run 0" and then follow another number: it says the number is pending, then which run.
 */
static void
test_sync_run_id_pending(void **state)
{
	char want[64];
	int64_t run;

	(void)state;
	for (int with_db = 1; with_db >= 0; with_db--) {
		struct fake f;
		int rv;

		fake_start(&f);
		f.late = 1;
		rv = ctl(base_env(with_db), "sync", "hollihop", "--full", NULL);
		fake_stop(&f);
		assert_int_equal(rv, 0);
		run = h_sql_int(db, "SELECT max(id) FROM crmsync.sync_runs");
		assert_null(strstr(out, "run 0"));
		assert_non_null(strstr(out, "its run number is pending"));
		snprintf(want, sizeof(want), "hollihop-sync opened run %lld\n", (long long)run);
		assert_non_null(strstr(out, want));
		snprintf(want, sizeof(want), "run %lld ", (long long)run);
		assert_non_null(strstr(out, want));
	}
}

static void
test_sync_service_down(void **state)
{
	(void)state;
	assert_int_equal(ctl(base_env(1), "sync", "amo", NULL), 1);
	assert_non_null(strstr(out, "amo-sync is not answering"));
	assert_int_equal(ctl(base_env(1), "sync", "nocrm", NULL), 2);
	assert_int_equal(ctl(base_env(1), "sync", "amo", "--bogus", NULL), 2);
	/* a missing or unknown entity list is said as such, with where to look */
	assert_int_equal(ctl(base_env(1), "sync", "amo", "--entities", NULL), 2);
	assert_non_null(strstr(out, "--entities needs a comma-separated list"));
	assert_int_equal(ctl(base_env(1), "sync", "hollihop", "--entities", "students,groups", NULL), 2);
	assert_non_null(strstr(out, "hollihop has no entity \"groups\" (crmsyncctl catalog list hollihop"));
}

static void
test_catalog_ddl_applies(void **state)
{
	char dsn[700];
	PGconn *c;

	(void)state;
	assert_int_equal(ctl(base_env(0), "catalog", "ddl", NULL), 0);
	assert_non_null(strstr(out, "CREATE SCHEMA IF NOT EXISTS amo;"));
	assert_non_null(strstr(out, "CREATE SCHEMA IF NOT EXISTS hollihop;"));
	/* The generated DDL is valid PostgreSQL: apply it to an empty database. */
	assert_int_equal(h_sql_exec(db, "CREATE DATABASE ddlcheck"), 0);
	snprintf(dsn, sizeof(dsn), "host=%s port=5432 dbname=ddlcheck user=postgres", pg.dir);
	c = PQconnectdb(dsn);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	assert_int_equal(h_sql_exec(c, out), 0);
	assert_true(h_sql_int(c, "SELECT count(*) FROM information_schema.tables "
	    "WHERE table_schema IN ('amo', 'hollihop')") > 40);
	/* Same table set as the store's own migrations created. */
	assert_int_equal(h_sql_int(c, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'hollihop'"),
	    h_sql_int(db, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'hollihop'"));
	PQfinish(c);
	assert_int_equal(ctl(base_env(0), "catalog", "ddl", "hollihop", NULL), 0);
	assert_null(strstr(out, "amo."));
	assert_int_equal(ctl(base_env(0), "catalog", "list", "amo", NULL), 0);
	assert_non_null(strstr(out, "leads"));
	assert_int_equal(ctl(base_env(0), "catalog", "ddl", "nope", NULL), 2);
}

/* Poll crmsyncctl's log (p) until it contains s, or the process ended; 1 if found. */
static int
log_has(const struct h_proc *p, const char *s, int timeout_ms)
{
	for (int64_t end = h_now_ms() + timeout_ms;; nng_msleep(50)) {
		FILE *f = fopen(p->log, "r");
		size_t n = 0;

		if (f != NULL) {
			n = fread(out, 1, sizeof(out) - 1, f);
			fclose(f);
		}
		out[n] = '\0';
		if (strstr(out, s) != NULL)
			return 1;
		if (!h_alive((struct h_proc *)p) || h_now_ms() >= end)
			return 0;
	}
}

/*
 * PostgreSQL restarts while crmsyncctl follows a run through it: the run goes on (the
 * service retries against the store) and completes; crmsyncctl must follow it to the end
 * and exit 0 (it exited 1 at the first failed query).
 */
static void
test_sync_survives_pg_restart(void **state)
{
	char *args[] = { "sync", "hollihop", "--full", NULL };
	struct h_proc p;
	struct fake f;
	int st;

	(void)state;
	fake_start(&f);
	f.hold = 1;
	assert_int_equal(h_spawn(&p, "ctl-pg-restart", "tools/crmsyncctl/crmsyncctl", base_env(1), args), 0);
	assert_true(log_has(&p, "hollihop full: running", 20000));
	PQfinish(db);
	db = NULL;
	assert_int_equal(h_pg_stop(&pg, 1), 0);
	/* crmsyncctl notices at its next poll (once a second); it must not give up */
	if (!log_has(&p, "lost the PostgreSQL connection", 10000))
		fail_msg("crmsyncctl (%s) did not say it reconnects:\n%s", h_alive(&p) ? "running" : "exited", out);
	nng_msleep(1500);
	assert_true(h_alive(&p));
	assert_int_equal(h_pg_restart(&pg), 0);
	assert_non_null(db = h_connect(&pg));
	f.hold = 0;
	assert_true((st = h_wait_exit(&p, 600000)) >= 0);
	fake_stop(&f);
	(void)log_has(&p, "", 0);	/* read the whole log */
	fprintf(stderr, "--- crmsyncctl sync across a PostgreSQL restart -> %d\n%s", st, out);
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, "PostgreSQL is back"));
	assert_non_null(strstr(out, "hollihop full: complete"));
}

/* Last: PostgreSQL goes away, the store says it is degraded, probe says 1 (--live: 0). */
static void
test_probe_degraded_store(void **state)
{
	nng_socket s;

	(void)state;
	assert_int_equal(h_pg_stop(&pg, 1), 0);
	/* The store notices on its next batch (it only learns of a lost connection by using it). */
	assert_int_equal(bus_dial(&s, store_url, 1 << 20), 0);
	struct h_batch *b = h_batch_new(CAT_HOLLIHOP, "students", 0);
	h_rec(b, "{\"ClientId\":901}", 1000000, 0, "client_id", "901", NULL);
	int rv = 1;
	for (int i = 0; i < 50 && rv != 0; i++) {
		Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT, *rep = NULL;

		env.body_case = CRMSYNC__ENVELOPE__BODY_BATCH;
		env.batch = h_batch_msg(b);
		(void)bus_call(s, &env, &rep, 5000);
		bus_free(rep);
		if (ctl(base_env(0), "probe", "-q", "store", NULL) == 1)
			rv = 0;
		else
			nng_msleep(200);
	}
	h_batch_free(b);
	bus_close(s);
	assert_int_equal(rv, 0);
	assert_int_equal(ctl(base_env(0), "probe", "--live", "store", NULL), 0);
	assert_non_null(strstr(out, "degraded: store"));
	assert_int_equal(ctl(base_env(0), "status", NULL), 1);
	assert_non_null(strstr(out, "\nstore          degraded "));
	/* Back again: healthy once the store has reconnected. */
	PQfinish(db);
	assert_int_equal(h_pg_restart(&pg), 0);
	assert_non_null(db = h_connect(&pg));
	rv = 1;
	for (int i = 0; i < 100 && rv != 0; i++) {
		if (ctl(base_env(0), "probe", "-q", "store", NULL) == 0)
			rv = 0;
		else
			nng_msleep(200);
	}
	assert_int_equal(rv, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_store_up_others_down),
		cmocka_unit_test(test_probe_exit_codes),
		cmocka_unit_test(test_sync_followed_through_db),
		cmocka_unit_test(test_sync_followed_through_health),
		cmocka_unit_test(test_sync_run_id_pending),
		cmocka_unit_test(test_sync_service_down),
		cmocka_unit_test(test_catalog_ddl_applies),
		cmocka_unit_test(test_sync_survives_pg_restart),
		cmocka_unit_test(test_probe_degraded_store),
	};
	return h_done(cmocka_run_group_tests(tests, setup, teardown));
}
