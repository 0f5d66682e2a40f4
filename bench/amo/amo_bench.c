/*
 * amo_bench.c - full sync of a generated amoCRM account at the real rate limit.
 *
 * Starts a throwaway PostgreSQL, the store and the fake amoCRM (tests/fake/amocrm) at
 * `--scale bench` with its real 7 requests/s sliding window, authorises, then runs
 * `crmsync-amo-sync --full --once` under /usr/bin/time and prints: rows per table, requests
 * made, 429s, wall time, rows/s, the theoretical floor (rows / 250 / 7 s) and the peak RSS
 * of amo-sync. The default entity set is the five bulk entities of issue 4 (50,000 leads,
 * 50,000 contacts, 10,000 companies, 100,000 notes, 50,000 tasks); AMO_BENCH_ENTITIES=all
 * syncs the whole catalogue (events are paged by 100, so their floor is rows / 100 / 7).
 * Not part of ctest: it takes about 2.5 minutes by design. Run it with bench/amo/run.sh.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "buf.h"
#include "catalog.h"
#include "harness.h"
#include "http.h"
#include "json.h"

static char fake_base[128];
static struct http *hc;

static int64_t
fake_int(const char *path, const char *key)
{
	char url[512];
	struct http_response r;
	struct json j;
	int64_t v = -1;

	snprintf(url, sizeof(url), "%s%s", fake_base, path);
	if (http_request(hc, "GET", url, NULL, NULL, 0, &r) == 0 && r.status == 200 &&
	    json_parse(&j, r.body.data, r.body.len, 1 << 20) == 0) {
		if (json_int64(&j, json_path(&j, 0, key), &v) != 0)
			v = 0;
		json_free(&j);
	}
	http_response_free(&r);
	return v;
}

static int
fake_post(const char *path)
{
	char url[512];
	struct http_response r;
	int ok;

	snprintf(url, sizeof(url), "%s%s", fake_base, path);
	ok = http_request(hc, "POST", url, NULL, "{}", 2, &r) == 0 && r.status == 200;
	http_response_free(&r);
	return ok ? 0 : -1;
}

static int
page_size(const char *table)
{
	const struct cat_entity *e = catalog_find(CAT_AMO, table);

	return e != NULL && e->page_size > 0 ? e->page_size : 250;
}

int
main(void)
{
	const char *ents = getenv("AMO_BENCH_ENTITIES");
	char e_store[600], e_health[600], e_dsn[700], e_amo[600], e_amoh[600];
	char e_amostore[600], e_base[200], e_tok[600], e_ents[700], rssfile[600], bin[800];
	struct h_proc store, fake, auth, amo;
	struct h_pg pg;
	PGconn *db;

	if (ents == NULL || ents[0] == '\0')
		ents = "leads,contacts,companies,tasks,notes";
	if (strcmp(ents, "all") == 0)
		ents = "";
	if (h_pg_start(&pg) != 0 || (db = h_connect(&pg)) == NULL || http_new(&hc, NULL) != 0)
		return 1;
	snprintf(e_store, sizeof(e_store), "CS_STORE_URL=%s", h_url("store"));
	snprintf(e_amostore, sizeof(e_amostore), "CS_STORE_URL=%s", h_url("store"));
	snprintf(e_health, sizeof(e_health), "CS_STORE_HEALTH_URL=%s", h_url("store-health"));
	snprintf(e_dsn, sizeof(e_dsn), "CS_PG_DSN=%s", pg.dsn);
	char *senv[] = { e_store, e_health, e_dsn, NULL };
	if (h_spawn(&store, "store", "services/store/crmsync-store", senv, NULL) != 0 ||
	    h_wait_ready(h_url("store-health"), 60000) != 0) {
		h_dump_log(&store);
		return 1;
	}
	char *fargv[] = { "--scale", "bench", "--rps", "7", NULL };
	if (h_fake_start(&fake, "fake", "amocrm", fargv, fake_base, sizeof(fake_base)) <= 0)
		return 1;
	/* The fake builds its per-table timestamp arrays in a background thread for ~2 s of
	 * CPU after start; wait for it to say so, so the run measures the sync, not the fake
	 * warming. */
	for (int64_t end = h_now_ms() + 60000; fake_int("/_fake/stats", "warm") != 1; nng_msleep(100))
		if (h_now_ms() > end) {
			fprintf(stderr, "amo_bench: the fake did not finish warming up in 60 s\n");
			return 1;
		}

	snprintf(e_amo, sizeof(e_amo), "CS_AMO_URL=%s", h_url("amo"));
	snprintf(e_amoh, sizeof(e_amoh), "CS_AMO_HEALTH_URL=%s", h_url("amo-health"));
	snprintf(e_base, sizeof(e_base), "CS_AMO_BASE_URL=%s", fake_base);
	snprintf(e_tok, sizeof(e_tok), "CS_AMO_TOKEN_FILE=%s/amo-token.json", h_tmpdir());
	snprintf(e_ents, sizeof(e_ents), "CS_AMO_ENTITIES=%s", ents);
	char *aenv[] = { e_amo, e_amoh, e_amostore, e_base, e_tok, e_ents,
	    "CS_AMO_CLIENT_ID=fake-client-id", "CS_AMO_CLIENT_SECRET=fake-client-secret",
	    "CS_AMO_REDIRECT_URI=https://example.com/oauth", "CS_AMO_RPS=7",
	    "CS_AMO_INCREMENTAL_INTERVAL=0", NULL };
	char *authargv[] = { "--auth-code", "fake-auth-code", NULL };
	if (h_spawn(&auth, "amo-auth", "services/amo-sync/crmsync-amo-sync", aenv, authargv) != 0 ||
	    h_wait_exit(&auth, 30000) != 0) {
		h_dump_log(&auth);
		return 1;
	}
	nng_msleep(1100);	/* the token call's second has passed */
	fake_post("/_fake/reset_stats");

	snprintf(rssfile, sizeof(rssfile), "%s/amo.rss", h_tmpdir());
	snprintf(bin, sizeof(bin), "%s/services/amo-sync/crmsync-amo-sync", getenv("CS_BUILD_DIR"));
	char *targv[] = { "-f", "%M", "-o", rssfile, bin, "--full", "--once", NULL };
	int64_t t0 = h_now_ms();
	if (h_spawn(&amo, "amo-sync", "/usr/bin/time", aenv, targv) != 0)
		return 1;
	int rc = h_wait_exit(&amo, 3600 * 1000);
	double wall = (double)(h_now_ms() - t0) / 1000.0;
	if (rc != 0) {
		fprintf(stderr, "amo-sync exited with %d\n", rc);
		h_dump_log(&amo);
	}

	int64_t reqs = fake_int("/_fake/stats", "requests"), n429 = fake_int("/_fake/stats", "429");
	int64_t maxw = fake_int("/_fake/stats", "max_requests_in_1s");
	long rss_kb = 0;
	FILE *f = fopen(rssfile, "r");
	if (f != NULL) {
		if (fscanf(f, "%ld", &rss_kb) != 1)
			rss_kb = 0;
		fclose(f);
	}
	const char *status = h_sql(db, "SELECT status FROM crmsync.sync_runs ORDER BY id DESC LIMIT 1");
	printf("\namoCRM full sync against the fake at 7 requests/s (scale bench)\n");
	printf("run status                 %s\n", status ? status : "?");
	int64_t rows = 0;
	double floor_reqs = 0;
	PGresult *r = PQexec(db, "SELECT p.key, (p.value->>'rows')::bigint FROM crmsync.sync_runs r, "
	    "jsonb_each(r.progress) p WHERE r.id = (SELECT max(id) FROM crmsync.sync_runs) ORDER BY 1");
	for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++) {
		int64_t n = strtoll(PQgetvalue(r, i, 1), NULL, 10);
		int ps = page_size(PQgetvalue(r, i, 0));
		printf("  %-24s %9lld rows\n", PQgetvalue(r, i, 0), (long long)n);
		rows += n;
		floor_reqs += (double)n / ps;
	}
	PQclear(r);
	double floor_s = (double)rows / 250.0 / 7.0;
	printf("rows                       %lld\n", (long long)rows);
	printf("requests made              %lld (429: %lld, most in any 1 s: %lld)\n", (long long)reqs,
	    (long long)n429, (long long)maxw);
	printf("wall time                  %.1f s (process start to exit)\n", wall);
	printf("rows/s                     %.0f\n", wall > 0 ? (double)rows / wall : 0.0);
	printf("floor rows/250/7           %.1f s  -> wall is %.1f%% above it\n", floor_s,
	    floor_s > 0 ? (wall / floor_s - 1) * 100 : 0);
	printf("floor by page sizes        %.1f s (%.0f requests at 7/s)\n", floor_reqs / 7.0, floor_reqs);
	printf("peak RSS of amo-sync       %.1f MB\n", (double)rss_kb / 1024.0);

	h_kill(&fake, SIGTERM);
	h_kill(&store, SIGTERM);
	http_free(hc);
	PQfinish(db);
	h_pg_stop(&pg, 0);
	return rc == 0 && status != NULL && strcmp(status, "complete") == 0 ? 0 : 1;
}
