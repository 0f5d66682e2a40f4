/*
 * analytics_bench.c - what the analytics schema costs the store, measured in one run on one
 * throwaway cluster:
 *   1. full rebuild of every analytic table at bench scale (default 50,000 amoCRM leads in
 *      3 pipelines, 500,000 events of which 300,000 lead_status_changed), after a complete
 *      full run, as the store does it (its own figures from crmsync.analytics_state);
 *   2. a hook-sized batch pair (10 leads moved + 30 lead_status_changed events, sent as
 *      amo-sync sends them) with the refresh (CS_STORE_ANALYTICS=on) and without it
 *      (=rebuild), in alternating blocks of a fresh store each, same data, side by side; and
 *      from the store's own debug timings, the refresh's share of each batch's time.
 * The mirror is loaded with SQL (the store's own write path is bench/store's subject).
 * Usage: analytics_bench [leads=50000] [other_events=200000] [pairs=40 per mode]  (CS_BUILD_DIR = build dir;
 * CS_BENCH_VERBOSE=1 prints the store's debug log of each block: its own per-step timings;
 * CS_BENCH_HOLD=<file>: at the end the cluster stays up, its DSN printed, until <file>, created
 * then, is removed: for EXPLAIN on the bench's data)
 */
#include <unistd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch.h"
#include "bus.h"
#include "clock.h"
#include "harness.h"

static struct h_pg pg;
static char url[512], health[512], dsn_env[700], url_env[600], health_env[600];

#define T0	1767258000LL	/* 2026-01-01 09:00 UTC */

static double
now_ms(void)
{
	return (double)clock_mono_us() / 1000.0;
}

/* The mirror at scale: pipelines p (6 stages + won/lost), leads, six moves each, other events. */
static int
load(PGconn *c, long leads, long other)
{
	char sql[4096];

	snprintf(sql, sizeof(sql),
	    "INSERT INTO amo.account (id, name, timezone, raw) VALUES (1, 'bench', 'Europe/Moscow', '{}');"
	    "INSERT INTO amo.pipelines (id, name, sort, raw) SELECT p, 'pipeline ' || p, p, '{}' FROM generate_series(1, 3) p;"
	    "INSERT INTO amo.pipeline_statuses (pipeline_id, idx, status_id, name, sort) SELECT p, j, "
	    "  CASE j WHEN 6 THEN 142 WHEN 7 THEN 143 ELSE p * 10 + j END, 'stage ' || j, "
	    "  CASE j WHEN 6 THEN 10000 WHEN 7 THEN 11000 ELSE 10 * (j + 1) END "
	    "  FROM generate_series(1, 3) p, generate_series(0, 7) j;"
	    "INSERT INTO amo.leads (id, name, pipeline_id, status_id, created_by, updated_by, created_at, updated_at, "
	    "  source_updated_at, raw) SELECT g, 'lead ' || g, 1 + g %% 3, CASE WHEN g %% 2 = 0 THEN 142 ELSE 143 END, "
	    "  7, 8, to_timestamp(%lld + g * 600), to_timestamp(%lld + g * 600 + 6 * 3600), "
	    "  to_timestamp(%lld + g * 600 + 6 * 3600), '{}' FROM generate_series(1, %ld) g;"
	    "INSERT INTO amo.events (id, type, entity_id, entity_type, created_by, created_at, value_before, "
	    "  value_after, source_updated_at, raw) SELECT 'b' || g || '_' || k, 'lead_status_changed', g, 'lead', "
	    "  8, to_timestamp(%lld + g * 600 + k * 3600), "
	    "  jsonb_build_array(jsonb_build_object('lead_status', jsonb_build_object('id', (1 + g %% 3) * 10 + k - 1, "
	    "    'pipeline_id', 1 + g %% 3))), "
	    "  jsonb_build_array(jsonb_build_object('lead_status', jsonb_build_object('id', CASE WHEN k < 6 THEN "
	    "    (1 + g %% 3) * 10 + k WHEN g %% 2 = 0 THEN 142 ELSE 143 END, 'pipeline_id', 1 + g %% 3))), "
	    "  to_timestamp(%lld + g * 600 + k * 3600), '{}' FROM generate_series(1, %ld) g, generate_series(1, 6) k;"
	    "INSERT INTO amo.events (id, type, entity_id, entity_type, created_by, created_at, value_before, "
	    "  value_after, source_updated_at, raw) SELECT 'n' || g, 'common_note_added', 1 + g %% %ld, 'lead', 8, "
	    "  to_timestamp(%lld + g * 60), '[]', '[{\"note\": {\"id\": 1}}]', to_timestamp(%lld + g * 60), '{}' "
	    "  FROM generate_series(1, %ld) g;",
	    T0, T0, T0, leads, T0, T0, leads, leads, T0, T0, other);
	if (h_sql_exec(c, sql) != 0)
		return -1;
	return h_sql_exec(c, "VACUUM ANALYZE amo.leads") | h_sql_exec(c, "VACUUM ANALYZE amo.events") |
	    h_sql_exec(c, "ANALYZE amo.pipeline_statuses");
}

static int
store_start(struct h_proc *p, const char *mode, int blk)
{
	char an[64], name[32];

	snprintf(an, sizeof(an), "CS_STORE_ANALYTICS=%s", mode);
	char *env[] = { url_env, health_env, dsn_env, an, NULL };
	char *av[] = { "-v", NULL };	/* batch.timing: the store's own time per batch */
	snprintf(name, sizeof(name), "store-%s-%d", mode, blk);	/* one log per block */
	if (h_spawn(p, name, "services/store/crmsync-store", env, av) != 0 ||
	    h_wait_ready(health, 600000) != 0) {
		h_dump_log(p);
		return -1;
	}
	return 0;
}

static const char *
num(long long v)
{
	static char ring[64][24];
	static unsigned slot;
	char *o = ring[slot++ % 64];

	snprintf(o, 24, "%lld", v);
	return o;
}

static const char *
ts(long long t)
{
	static char ring[64][40];
	static unsigned slot;
	char *o = ring[slot++ % 64];
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(o, 40, "%Y-%m-%d %H:%M:%S+00", &tm);
	return o;
}

/* Hook pair i: 10 leads moved (newer version) and their 30 moves as events. ms of each. */
static int
hook_pair(nng_socket s, long leads, int i, double *ms_leads, double *ms_events)
{
	struct h_batch *bl = h_batch_new(CAT_AMO, "leads", 0);
	struct h_batch *be = h_batch_new(CAT_AMO, "events", 0);
	char id[48], before[128], after[128];
	int rv;

	for (int k = 0; k < 10; k++) {
		long g = 1 + (long)((i * 7919L + k * 104729L) % leads);
		long long base = T0 + g * 600 + 86400LL * (10 + i);
		int p = 1 + (int)(g % 3);
		h_rec(bl, "{}", (base + 3 * 3600) * 1000000LL, 0, "id", num(g), "name", "lead", "pipeline_id", num(p),
		    "status_id", num(p * 10 + 3), "created_by", "7", "updated_by", "9",
		    "created_at", ts(T0 + g * 600), "updated_at", ts(base + 3 * 3600), NULL);
		for (int m = 0; m < 3; m++) {
			snprintf(id, sizeof(id), "h%d_%d_%d", i, k, m);
			snprintf(before, sizeof(before), "[{\"lead_status\":{\"id\":%d,\"pipeline_id\":%d}}]", p * 10 + m, p);
			snprintf(after, sizeof(after), "[{\"lead_status\":{\"id\":%d,\"pipeline_id\":%d}}]", p * 10 + m + 1, p);
			h_rec(be, "{}", (base + m * 3600) * 1000000LL, 0, "id", id, "type", "lead_status_changed",
			    "entity_id", num(g), "entity_type", "lead", "created_by", "9",
			    "created_at", ts(base + m * 3600), "value_before", before,
			    "value_after", after, NULL);
		}
	}
	double t0 = now_ms();
	rv = h_batch_send(s, bl, NULL);
	*ms_leads = now_ms() - t0;
	t0 = now_ms();
	rv |= h_batch_send(s, be, NULL);
	*ms_events = now_ms() - t0;
	h_batch_free(bl);
	h_batch_free(be);
	return rv;
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/*
 * The median of v[0..n), v left as it is: the store's figures are parallel arrays (total,
 * refresh, kind of batch), and sorting one in place paired each batch's refresh with
 * another batch's total in the per-kind medians after it.
 */
static double
median(const double *v, int n)
{
	double *c = malloc(((size_t)n + 1) * sizeof(*c)), m;

	if (c == NULL || n <= 0) {
		free(c);
		return 0;
	}
	memcpy(c, v, (size_t)n * sizeof(*c));
	qsort(c, (size_t)n, sizeof(*c), cmp_d);
	m = n % 2 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2;
	free(c);
	return m;
}

static double *st_total, *st_an;
static int *st_kind;	/* 0 leads, 1 events batch */
static int *nst, st_cap;

/*
 * The store's own figures from its debug log: for each batch after the first skip ones,
 * total_us and the part of it spent refreshing (analytics_us), appended to tot[] / an[],
 * its entity (leads 0, events 1) to kind[].
 */
static int
store_times(const struct h_proc *p, int skip, double *tot, double *an, int *kind, int *n)
{
	FILE *f = fopen(p->log, "r");
	char line[2048];
	int seen = 0;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		const char *a = strstr(line, " analytics_us="), *t = strstr(line, " total_us=");
		if (strstr(line, "ev=batch.timing") == NULL || a == NULL || t == NULL || seen++ < skip ||
		    *n >= st_cap)
			continue;
		kind[*n] = strstr(line, " entity=events ") != NULL;
		an[*n] = strtod(a + 14, NULL) / 1000;
		tot[(*n)++] = strtod(t + 10, NULL) / 1000;
	}
	fclose(f);
	return 0;
}

/*
 * Medians of the refresh and of the rest of the batch (total - refresh) over the batches
 * of one kind (-1: all): a figure a few stalls of the shared VM (an fsync, a checkpoint)
 * move less than the ratio of sums.
 */
static void
kind_medians(const double *tot, const double *an, const int *kind, int n, int want, double *m_an,
    double *m_rest, int *cnt)
{
	double *a = calloc((size_t)n + 1, sizeof(double)), *r = calloc((size_t)n + 1, sizeof(double));
	int k = 0;

	for (int i = 0; i < n; i++)
		if (want < 0 || kind[i] == want) {
			a[k] = an[i];
			r[k++] = tot[i] - an[i];
		}
	*cnt = k;
	*m_an = k > 0 ? median(a, k) : 0;
	*m_rest = k > 0 ? median(r, k) : 0;
	free(a);
	free(r);
}

/* One block of pairs with a fresh store in mode; per-pair ms appended to out[]. */
static int
block(const char *mode, long leads, int first, int n, double *out_l, double *out_e, int *nout)
{
	struct h_proc p;
	nng_socket s;
	double l, e;

	if (store_start(&p, mode, first) != 0 || bus_dial(&s, url, BUS_RECVMAX_DEFAULT) != 0)
		return -1;
	/*
	 * Warm: prepared statements, caches. Pair numbers after the block's own: other leads
	 * (pair i moves leads chosen by i), so every measured pair's leads are newer than what
	 * the store holds and are written (warm pairs numbered 100000 + i used to pick the same
	 * leads as pairs i = 0..2 with newer versions: those leads batches wrote nothing).
	 */
	for (int w = 0; w < 3; w++)
		if (hook_pair(s, leads, first + n + w, &l, &e) != 0)
			return -1;
	for (int i = 0; i < n; i++) {
		if (hook_pair(s, leads, first + i, &l, &e) != 0)
			return -1;
		out_l[*nout] = l;
		out_e[(*nout)++] = e;
	}
	bus_close(s);
	if (getenv("CS_BENCH_VERBOSE") != NULL)
		h_dump_log(&p);
	if (h_kill(&p, SIGTERM) != 0)
		return -1;
	return store_times(&p, 6, st_total, st_an, st_kind, nst);
}

/* CS_BENCH_HOLD: keep the cluster up until the file it names is removed. */
static void
hold(void)
{
	const char *f = getenv("CS_BENCH_HOLD");
	FILE *h;

	if (f == NULL || (h = fopen(f, "w")) == NULL)
		return;
	fclose(h);
	printf("holding the cluster until %s is removed: psql '%s'\n", f, pg.dsn);
	fflush(stdout);
	while (access(f, F_OK) == 0)
		sleep(1);
}

int
main(int argc, char **argv)
{
	long leads = argc > 1 ? atol(argv[1]) : 50000;
	long other = argc > 2 ? atol(argv[2]) : 200000;
	int pairs = argc > 3 ? atoi(argv[3]) : 40;
	double *on_l = calloc((size_t)pairs + 1, sizeof(double)), *on_e = calloc((size_t)pairs + 1, sizeof(double));
	double *off_l = calloc((size_t)pairs + 1, sizeof(double)), *off_e = calloc((size_t)pairs + 1, sizeof(double));
	int non = 0, noff = 0, rv = 1;
	struct h_proc p;
	nng_socket s;
	PGconn *c = NULL;

	if (h_pg_start(&pg) != 0)
		return 1;
	snprintf(url, sizeof(url), "%s", h_url("store"));
	snprintf(health, sizeof(health), "%s", h_url("store-health"));
	snprintf(url_env, sizeof(url_env), "CS_STORE_URL=%s", url);
	snprintf(health_env, sizeof(health_env), "CS_STORE_HEALTH_URL=%s", health);
	snprintf(dsn_env, sizeof(dsn_env), "CS_PG_DSN=%s", pg.dsn);
	if ((c = h_connect(&pg)) == NULL || store_start(&p, "on", -1) != 0)
		goto out;
	double t0 = now_ms();
	if (load(c, leads, other) != 0)
		goto out;
	printf("mirror: %ld leads, %ld events (%ld lead_status_changed), loaded in %.1f s\n", leads,
	    leads * 6 + other, leads * 6, (now_ms() - t0) / 1000);

	/* 1. A complete full run: the store rebuilds every amoCRM analytic table. */
	int64_t run_id = 0;
	if (bus_dial(&s, url, BUS_RECVMAX_DEFAULT) != 0 || h_run_begin(s, CAT_AMO, 1, &run_id) != 0)
		goto out;
	t0 = now_ms();
	if (h_run_end(s, run_id, CRMSYNC__RUN_STATUS__RUN_COMPLETE, "events", 1) != 0)
		goto out;
	double ack_wall = now_ms() - t0;
	bus_close(s);
	/*
	 * The store acknowledges the RunEnd at its commit and rebuilds after it: wait for the
	 * rebuild (its tables' state rows, written in its one transaction), polled every 50 ms.
	 */
	char done[256];
	snprintf(done, sizeof(done), "SELECT count(*) > 0 FROM crmsync.analytics_state WHERE name = "
	    "'amo_stage_history' AND rebuilt_at > (SELECT started_at FROM crmsync.sync_runs WHERE id = %lld)",
	    (long long)run_id);
	if (h_wait_sql(c, done, "t", 600000) != 0)
		goto out;
	double rebuild_wall = now_ms() - t0;
	printf("full rebuild after a complete run: %.2f s wall (RunEnd acknowledged after %.0f ms); per table: %s\n",
	    rebuild_wall / 1000, ack_wall, h_sql(c, "SELECT string_agg(name || ' ' || rebuild_ms || "
	    "' ms, ' || rebuild_rows || ' rows', '; ' ORDER BY name) FROM crmsync.analytics_state"));
	printf("stage history rows: %s\n", h_sql(c, "SELECT count(*) FROM analytics.amo_stage_history"));
	t0 = now_ms();
	h_sql(c, "SELECT count(*) FROM analytics.amo_funnel");
	printf("analytics.amo_funnel (a view) read whole: %.0f ms\n", now_ms() - t0);
	if (h_kill(&p, SIGTERM) != 0)
		goto out;

	/* 2. Hook pairs, alternating blocks of a fresh store: refresh on, refresh off. */
	h_sql(c, "SELECT pg_stat_reset()");
	double *tot[2], *an[2];
	int *kind[2], ntot[2] = { 0, 0 };
	for (int m = 0; m < 2; m++) {
		tot[m] = calloc((size_t)pairs * 2 + 16, sizeof(double));
		an[m] = calloc((size_t)pairs * 2 + 16, sizeof(double));
		kind[m] = calloc((size_t)pairs * 2 + 16, sizeof(int));
	}
	st_cap = pairs * 2 + 16;
	for (int b = 0; b < 8; b++) {
		int n = pairs / 4, on = b % 2 == 0;
		st_total = tot[on], st_an = an[on], st_kind = kind[on], nst = &ntot[on];
		if (block(on ? "on" : "rebuild", leads, b * 1000, n, on ? on_l : off_l, on ? on_e : off_e,
		    on ? &non : &noff) != 0)
			goto out;
	}
	/* What the refreshes wrote (the stores have exited: their statistics are flushed). */
	printf("analytic tables' rows written by the hook pairs (inserted / updated, of them HOT / deleted): %s\n",
	    h_sql(c, "SELECT string_agg(relname || ' ' || n_tup_ins || ' / ' || n_tup_upd || ', ' || n_tup_hot_upd "
	    "|| ' / ' || n_tup_del, '; ' ORDER BY relname) FROM pg_stat_user_tables WHERE schemaname = 'analytics' "
	    "AND n_tup_ins + n_tup_upd + n_tup_del > 0"));
	double ml_on = median(on_l, non), me_on = median(on_e, non);
	double ml_off = median(off_l, noff), me_off = median(off_e, noff);
	printf("hook batch pair (10 leads + 30 events), median of %d pairs each, ms, as the sender sees it:\n", non);
	printf("  %-28s %10s %10s %10s\n", "", "leads", "events", "pair");
	printf("  %-28s %10.2f %10.2f %10.2f\n", "without analytics refresh", ml_off, me_off, ml_off + me_off);
	printf("  %-28s %10.2f %10.2f %10.2f\n", "with analytics refresh", ml_on, me_on, ml_on + me_on);
	printf("  refresh adds %.0f%% to the pair\n", 100.0 * ((ml_on + me_on) - (ml_off + me_off)) / (ml_off + me_off));
	double sum_an = 0, sum_rest = 0;
	for (int i = 0; i < ntot[1]; i++)
		sum_an += an[1][i], sum_rest += tot[1][i] - an[1][i];
	printf("the store's own time per batch (its batch.timing), %d batches each: median %.2f ms without, "
	    "%.2f ms with the refresh;\n  in the batches with it, the refresh took %.1f%% of the rest of the "
	    "batch's time (goal: at most 20%%)\n", ntot[0], median(tot[0], ntot[0]), median(tot[1], ntot[1]),
	    100.0 * sum_an / sum_rest);
	printf("  per batch with the refresh, medians (ms): %-7s %8s %8s %7s\n", "batch", "refresh", "rest", "share");
	for (int k = -1; k < 2; k++) {
		double m_an, m_rest;
		int cnt;
		kind_medians(tot[1], an[1], kind[1], ntot[1], k, &m_an, &m_rest, &cnt);
		printf("  %-41s %-7s %8.2f %8.2f %6.1f%%\n", "", k < 0 ? "all" : k ? "events" : "leads",
		    m_an, m_rest, m_rest > 0 ? 100.0 * m_an / m_rest : 0);
	}
	rv = 0;
	hold();
out:
	PQfinish(c);
	h_pg_stop(&pg, 0);
	free(on_l), free(on_e), free(off_l), free(off_e);
	return rv;
}
