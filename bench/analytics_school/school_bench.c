/*
 * school_bench.c - how long the people, revenue and school-operations tables
 * (services/store/analytics_school.c) take at bench scale: a full rebuild of each, and the
 * refresh (with its cascade) a hook-sized batch causes, beside the time a plain read of the
 * same source rows takes.
 *
 * The mirror's tables are made by the real store (started once, then stopped); the rows are
 * generated in SQL (not sent through the store: this measures the analytic SQL only).
 *   school_bench [leads=50000] [students=100000] [payments=500000] [units=20000]
 * Build: cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release; CS_BUILD_DIR=build-bench.
 * CS_BENCH_EXPLAIN=1 prints each rebuild's and refresh's plan (EXPLAIN ANALYZE, rolled back);
 * CS_BENCH_KEEP_PG=1 leaves the cluster running at the end (its DSN printed) to query by hand.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics.h"
#include "harness.h"

static PGconn *db;

static double
run(const char *sql, int nparams, const char *const *params, int *nrows)
{
	int64_t t0 = h_now_ms();
	/* Without parameters as the store runs a rebuild: PQexec, which takes several statements. */
	PGresult *r = nparams > 0 ? PQexecParams(db, sql, nparams, NULL, params, NULL, NULL, 0) :
	    PQexec(db, sql);

	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "SQL failed: %s\n%.300s\n", PQerrorMessage(db), sql);
		exit(1);
	}
	if (nrows != NULL)
		*nrows = PQntuples(r);
	PQclear(r);
	return (double)(h_now_ms() - t0);
}

static void
exec(const char *sql)
{
	PGresult *r = PQexec(db, sql);

	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "SQL failed: %s\n%.300s\n", PQerrorMessage(db), sql);
		exit(1);
	}
	PQclear(r);
}

/*
 * Print the plan of sql with what it did (EXPLAIN ANALYZE), then undo it. A rebuild may be
 * several statements (settings, a temporary table, then the INSERT): all but the last run
 * as they are, the last is explained.
 */
static void
explain(const char *sql, const char *table, const char *what, int nparams, const char *const *params)
{
	const char *last = sql, *p;
	char *head, *q;
	PGresult *x;
	int own = PQtransactionStatus(db) == PQTRANS_IDLE;

	for (p = sql; (p = strstr(p, ";\n")) != NULL; p += 2)
		if (p[2] != '\0')
			last = p + 2;
	head = strndup(sql, (size_t)(last - sql));
	q = malloc(strlen(last) + 64);
	sprintf(q, "EXPLAIN (ANALYZE, COSTS OFF) %s", last);
	if (own)
		exec("BEGIN");
	exec("SAVEPOINT x");
	if (head[0] != '\0')
		exec(head);
	x = PQexecParams(db, q, nparams, NULL, params, NULL, NULL, 0);
	printf("---- %s for %s\n", table, what);
	if (PQresultStatus(x) != PGRES_TUPLES_OK)
		printf("EXPLAIN failed: %s", PQerrorMessage(db));
	for (int l = 0; l < PQntuples(x); l++)
		printf("%s\n", PQgetvalue(x, l, 0));
	PQclear(x);
	exec("ROLLBACK TO SAVEPOINT x");
	if (own)
		exec("COMMIT");
	free(q);
	free(head);
}

static int
lists(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; p != NULL && *p != '\0';) {
		const char *c = strchr(p, ',');
		size_t len = c != NULL ? (size_t)(c - p) : strlen(p);

		if (len == n && strncmp(p, name, n) == 0)
			return 1;
		p = c != NULL ? c + 1 : NULL;
	}
	return 0;
}

/* Every refresh one batch of `keys` (a text[] literal) of `source` causes, as the engine would. */
static double
refresh(const char *source, const char *keys)
{
	char src[16][64], *ks[16];
	size_t nev = 1;
	double ms = 0;

	snprintf(src[0], sizeof(src[0]), "%s", source);
	ks[0] = strdup(keys);
	exec("BEGIN");
	for (size_t t = 0; t < an_school_ntables; t++) {
		size_t upto = nev;

		for (size_t e = 0; e < upto; e++) {
			const char *params[2] = { src[e], ks[e] };
			int64_t t0;
			PGresult *r;

			if (!lists(an_school_tables[t].sources, src[e]))
				continue;
			if (getenv("CS_BENCH_EXPLAIN") != NULL)
				explain(an_school_tables[t].refresh_sql, an_school_tables[t].name, src[e], 2, params);
			t0 = h_now_ms();
			r = PQexecParams(db, an_school_tables[t].refresh_sql, 2, NULL, params, NULL, NULL, 0);
			ms += (double)(h_now_ms() - t0);
			if (PQresultStatus(r) != PGRES_TUPLES_OK) {
				fprintf(stderr, "refresh %s: %s\n", an_school_tables[t].name, PQerrorMessage(db));
				exit(1);
			}
			if (PQntuples(r) > 0 && nev < 16) {
				size_t cap = 64 + (size_t)PQntuples(r) * 48, o = 0;

				ks[nev] = malloc(cap);
				o += (size_t)snprintf(ks[nev] + o, cap - o, "{");
				for (int i = 0; i < PQntuples(r); i++)
					o += (size_t)snprintf(ks[nev] + o, cap - o, "%s\"%s\"", i ? "," : "",
					    PQgetvalue(r, i, 0));
				snprintf(ks[nev] + o, cap - o, "}");
				snprintf(src[nev], sizeof(src[nev]), "analytics.%s", an_school_tables[t].name);
				nev++;
			}
			PQclear(r);
		}
	}
	exec("COMMIT");
	for (size_t e = 0; e < nev; e++)
		free(ks[e]);
	return ms;
}

/* "{first,first+step,...}" of n keys (suffix appended to each, e.g. "|7"). */
static char *
keyset(long first, long step, int n, const char *suffix)
{
	char *b = malloc((size_t)n * 40 + 8);
	size_t o = 0;

	o += (size_t)sprintf(b, "{");
	for (int i = 0; i < n; i++)
		o += (size_t)sprintf(b + o, "%s\"%ld%s\"", i ? "," : "", first + i * step, suffix);
	sprintf(b + o, "}");
	return b;
}

int
main(int argc, char **argv)
{
	long leads = argc > 1 ? atol(argv[1]) : 50000, students = argc > 2 ? atol(argv[2]) : 100000;
	long payments = argc > 3 ? atol(argv[3]) : 500000, units = argc > 4 ? atol(argv[4]) : 20000;
	struct h_pg pg;
	struct h_proc store;
	char dsn_env[700], url_env[600], health_env[600], health[512], sql[8192];

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (h_pg_start(&pg) != 0)
		return 1;
	snprintf(url_env, sizeof(url_env), "CS_STORE_URL=%s", h_url("store"));
	snprintf(health, sizeof(health), "%s", h_url("store-health"));
	snprintf(health_env, sizeof(health_env), "CS_STORE_HEALTH_URL=%s", health);
	snprintf(dsn_env, sizeof(dsn_env), "CS_PG_DSN=%s", pg.dsn);
	char *env[] = { url_env, health_env, dsn_env, NULL };
	if (h_spawn(&store, "store", "services/store/crmsync-store", env, NULL) != 0 ||
	    h_wait_ready(health, 30000) != 0 || h_kill(&store, SIGTERM) != 0) {
		h_dump_log(&store);
		return 1;
	}
	if ((db = h_connect(&pg)) == NULL)
		return 1;
	exec("SET client_min_messages = warning");
	int64_t t_gen = h_now_ms();
	fprintf(stderr, "generating %ld leads/contacts, %ld students, %ld payments, %ld units...\n",
	    leads, students, payments, units);
	snprintf(sql, sizeof(sql),
	    "INSERT INTO amo.users (id, name, raw) SELECT i, 'user ' || i, '{}' FROM generate_series(1, 20) i;"
	    "INSERT INTO amo.sources (id, name, raw) SELECT i, 'source ' || i, '{}' FROM generate_series(1, 5) i;"
	    "INSERT INTO amo.contacts (id, name, raw) SELECT i, 'c' || i, '{}' FROM generate_series(1, %ld) i;"
	    "INSERT INTO amo.custom_field_values (entity_type, entity_id, idx, field_code, value) "
	    "SELECT 'contacts', i, 0, 'PHONE', '8 (9' || lpad(i::text, 9, '0') || ')' FROM generate_series(1, %ld) i "
	    "UNION ALL SELECT 'contacts', i, 1, 'EMAIL', 'p' || i || '@mail.ru' FROM generate_series(1, %ld) i "
	    "UNION ALL SELECT 'leads', i, 0, 'UTM_SOURCE', 'utm' || i %% 7 FROM generate_series(1, %ld, 2) i;"
	    "INSERT INTO amo.leads (id, name, status_id, pipeline_id, responsible_user_id, source_id, created_at, "
	    "closed_at, raw) SELECT i, 'l' || i, CASE WHEN i %% 3 = 0 THEN 142 ELSE 143 END, 1, 1 + i %% 20, "
	    "1 + i %% 5, now(), now(), '{}' FROM generate_series(1, %ld) i;"
	    "INSERT INTO amo.lead_contacts (lead_id, idx, contact_id, is_main) SELECT i, 0, i, true "
	    "FROM generate_series(1, %ld) i;",
	    leads, leads, leads, leads, leads, leads);
	exec(sql);
	/* Student j's parent has the phone of contact (j + 1) / 2: two children per parent. */
	snprintf(sql, sizeof(sql),
	    "INSERT INTO hollihop.students (client_id, first_name, mobile, email, amo_lead_id, raw) "
	    "SELECT j, 's' || j, '+7 8' || lpad(j::text, 9, '0'), NULL, CASE WHEN j %% 10 = 0 THEN (j + 1) / 2 END, "
	    "'{}' FROM generate_series(1, %ld) j;"
	    "INSERT INTO hollihop.student_agents (client_id, idx, first_name, mobile) "
	    "SELECT j, 0, 'p', '9' || lpad(((j + 1) / 2 %% %ld)::text, 9, '0') FROM generate_series(1, %ld) j;"
	    "INSERT INTO hollihop.leads (id, first_name, mobile, student_client_id, raw) "
	    "SELECT i, 'hl', '8 7' || lpad(i::text, 9, '0'), i * 5, '{}' FROM generate_series(1, %ld / 5) i;"
	    "INSERT INTO hollihop.payments (id, client_id, state, value_quantity, paid_date, created, raw) "
	    "SELECT i, 1 + i %% %ld, 'Paid', CASE WHEN i %% 20 = 0 THEN -500 ELSE 3000 END, "
	    "date '2024-01-01' + i %% 300, now(), '{}' FROM generate_series(1, %ld) i;"
	    "INSERT INTO hollihop.teachers (id, first_name, last_name, raw) SELECT i, 't', 'T' || i, '{}' "
	    "FROM generate_series(1, 200) i;",
	    students, leads, students, students, students, payments);
	exec(sql);
	snprintf(sql, sizeof(sql),
	    "INSERT INTO hollihop.ed_units (id, type, name, status, vacancies, raw) SELECT u, "
	    "CASE WHEN u %% 4 = 0 THEN 'Individual' ELSE 'Group' END, 'u' || u, "
	    "(ARRAY['Working','Forming','Finished'])[1 + u %% 3], CASE WHEN u %% 5 > 0 THEN 8 END, '{}' "
	    "FROM generate_series(1, %ld) u;"
	    "INSERT INTO hollihop.ed_unit_schedule_items (ed_unit_id, idx, schedule_item_id, teacher_ids) "
	    "SELECT u, 0, u, ARRAY[1 + u %% 200] FROM generate_series(1, %ld) u;"
	    "INSERT INTO hollihop.ed_unit_days (ed_unit_id, idx, date, minutes, pass, schedule_item_ids) "
	    "SELECT u, d, date '2024-03-01' + d * 9, 90, d %% 5 = 4, ARRAY[u::bigint] "
	    "FROM generate_series(1, %ld) u, generate_series(0, 8) d;"
	    "INSERT INTO hollihop.ed_unit_students (ed_unit_id, student_client_id, status, raw) "
	    "SELECT u, 1 + (u * 5 + s) %% %ld, 'Normal', '{}' FROM generate_series(1, %ld) u, generate_series(0, 4) s;"
	    "INSERT INTO hollihop.ed_unit_student_days (ed_unit_id, student_client_id, idx, date, minutes, pass) "
	    "SELECT m.ed_unit_id, m.student_client_id, d, date '2024-03-01' + d * 9, 90, (d + m.student_client_id) %% 6 = 0 "
	    "FROM hollihop.ed_unit_students m, generate_series(0, 8) d;"
	    "ANALYZE;",
	    units, units, units, students, units);
	exec(sql);
	printf("generated in %.1f s\n", (double)(h_now_ms() - t_gen) / 1000);
	exec("CREATE SCHEMA IF NOT EXISTS analytics");
	for (size_t t = 0; t < an_school_ntables; t++)
		exec(an_school_tables[t].create_sql);
	printf("full rebuild (ms, rows):\n");
	double total = 0;
	/* One transaction for all, as the store rebuilds after a complete run. */
	exec("BEGIN");
	for (size_t t = 0; t < an_school_ntables; t++) {
		char q[128];
		double ms;

		if (getenv("CS_BENCH_EXPLAIN") != NULL)
			explain(an_school_tables[t].rebuild_sql, an_school_tables[t].name, "rebuild", 0, NULL);
		ms = run(an_school_tables[t].rebuild_sql, 0, NULL, NULL);

		total += ms;
		snprintf(q, sizeof(q), "SELECT count(*) FROM analytics.%s", an_school_tables[t].name);
		printf("  %-18s %9.0f  %lld\n", an_school_tables[t].name, ms, (long long)h_sql_int(db, q));
	}
	total += run("COMMIT", 0, NULL, NULL);
	printf("  %-18s %9.0f\n", "all (with COMMIT)", total);
	exec("ANALYZE");

	struct { const char *source, *what; char *keys; } cases[] = {
		{ "amo.contacts", "1 contact", keyset(leads / 2, 1, 1, "") },
		{ "amo.contacts", "250 contacts", keyset(1000, 7, 250, "") },
		{ "amo.leads", "1 lead", keyset(leads / 3, 1, 1, "") },
		{ "amo.leads", "250 leads", keyset(2000, 7, 250, "") },
		{ "hollihop.students", "1 student", keyset(students / 2, 1, 1, "") },
		{ "hollihop.students", "1000 students", keyset(3000, 3, 1000, "") },
		{ "hollihop.payments", "1 payment", keyset(payments / 2, 1, 1, "") },
		{ "hollihop.payments", "1000 payments", keyset(5000, 11, 1000, "") },
		{ "hollihop.ed_units", "250 ed units", keyset(100, 3, 250, "") },
		{ "amo.users", "1 user (all its leads)", keyset(3, 1, 1, "") },
	};
	printf("refresh of one batch, with its cascade (ms; the same keys' source rows read: ms):\n");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char base[256];
		const char *entity = strchr(cases[i].source, '.') + 1;
		const char *key = strcmp(entity, "students") == 0 ? "client_id" : "id";
		const char *params[1] = { cases[i].keys };
		double ms = refresh(cases[i].source, cases[i].keys);

		snprintf(base, sizeof(base), "SELECT * FROM %s WHERE %s = ANY ($1::bigint[])", cases[i].source, key);
		printf("  %-18s %-24s %7.1f   read %5.1f\n", cases[i].source, cases[i].what, ms,
		    run(base, 1, params, NULL));
		free(cases[i].keys);
	}
	PQfinish(db);
	if (getenv("CS_BENCH_KEEP_PG") != NULL) {
		printf("cluster kept: psql \"%s\"; stop: tests/harness/testpg stop %s\n", pg.dsn, pg.dir);
		pg.running = 0;	/* not stopped at exit either */
		return 0;
	}
	h_pg_stop(&pg, 0);
	return 0;
}
