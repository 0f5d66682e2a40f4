/*
 * amo_test.c - crmsync-amo-sync end to end: a throwaway PostgreSQL, the real store, the
 * real amo-sync and the fake amoCRM (tests/fake/amocrm) over real HTTP.
 *
 * One cluster, one store and one fake for the file; amo-sync is restarted where a test
 * needs other settings or a crash. Tests run in order and build on each other's data:
 * full sync (every entity group, every field of chosen records, custom field values),
 * a resync of one entity (trigger resync, its vanished rows deleted),
 * incremental (edits, pipeline moves, deletions), a hook burst coalesced into <= 2 list
 * requests, a lone hook fetched at once, a crash with undone hook deliveries re-sent by a simulated gateway, at most
 * 7 requests a second at the real 7 rps as the API saw them, an account without API filtering, 429/5xx retries and a 403 ban, a
 * long-lived token, a refresh token rotated and then kill -9, and a revoked grant (last:
 * the fake cannot un-revoke). Hooks are sent over NNG exactly as hook-gateway sends them.
 * The fake runs without a rate limit except in the test about the limit.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "buf.h"
#include "bus.h"
#include "catalog.h"
#include "errors.h"
#include "form.h"
#include "harness.h"
#include "health.h"
#include "http.h"
#include "json.h"

#define LLT	"test-llt"	/* a long-lived token the test itself uses to read the fake's API */

static struct h_pg pg;
static struct h_proc store, fake, amo;
static PGconn *db;
static nng_socket asock;
static struct http *hc;
static int fake_port;
static char fake_base[128];
static char e_store_url[600], e_store_health[600], e_dsn[700];
static char e_amo_url[600], e_amo_health[600], e_amo_store[600], e_base[200], e_token[600];
static char amo_url[512], amo_health[512], store_health[512], token_file[512];
static uint64_t gw_seq = 1;	/* the simulated gateway's journal sequence */

/* ---- helpers: processes ------------------------------------------------------------------ */

static int
start_fake(void)
{
	/* 137 elements a list, served as amoCRM does (issue 10 item 2, amocrm-api-php#528):
	 * 100 a page whatever the limit, and no _links.next. */
	char *argv[] = { "--scale", "tiny", "--seed", "7", "--rps", "0",
	    "--elements", "137", "--long-lived-token", LLT, "-v", NULL };

	fake_port = h_fake_start(&fake, "fake", "amocrm", argv, fake_base, sizeof(fake_base));
	return fake_port > 0 ? 0 : -1;
}

/* Start amo-sync with the common environment plus `extra` ("K=V", NULL-terminated). */
static int
start_amo(char *const extra[])
{
	char *env[40];
	int n = 0;

	env[n++] = e_amo_url;
	env[n++] = e_amo_health;
	env[n++] = e_amo_store;
	env[n++] = e_base;
	env[n++] = e_token;
	env[n++] = "CS_AMO_CLIENT_ID=fake-client-id";
	env[n++] = "CS_AMO_CLIENT_SECRET=fake-client-secret";
	env[n++] = "CS_AMO_REDIRECT_URI=https://example.com/oauth";
	env[n++] = "CS_AMO_INCREMENTAL_INTERVAL=0";
	env[n++] = "CS_AMO_RPS=500";
	env[n++] = "CS_AMO_HOOK_DELAY=300ms";
	env[n++] = "CS_AMO_RETRY_MAX=2";
	env[n++] = "CS_AMO_BACKOFF_MAX=1s";
	for (int i = 0; extra != NULL && extra[i] != NULL && n < 38; i++)
		env[n++] = extra[i];
	env[n] = NULL;
	char *argv[] = { "-v", NULL };
	if (h_spawn(&amo, "amo-sync", "services/amo-sync/crmsync-amo-sync", env, argv) != 0)
		return -1;
	if (h_wait_health(amo_health, 20000) != 0) {
		h_dump_log(&amo);
		return -1;
	}
	return 0;
}

static void
stop_amo(void)
{
	int rv = h_kill(&amo, SIGTERM);

	if (rv != 0) {
		fprintf(stderr, "amo-sync exited with %d\n", rv);
		h_dump_log(&amo);
	}
	assert_int_equal(rv, 0);	/* clean exit: no leak or UB report either */
}

/* ---- helpers: the fake's HTTP API ---------------------------------------------------------- */

/* One request to the fake; returns the status, body in *out (caller frees with buf_free). */
static long
fake_call(const char *method, const char *path, const char *body, struct buf *out, int llt)
{
	char url[1024];
	const char *hdrs[] = { "Content-Type: application/json",
	    llt ? "Authorization: Bearer " LLT : NULL, NULL };
	struct http_response r;
	long st;

	snprintf(url, sizeof(url), "%s%s", fake_base, path);
	if (http_request(hc, method, url, hdrs, body, body ? strlen(body) : 0, &r) != 0) {
		fprintf(stderr, "fake %s %s: %s\n", method, path, r.error);
		http_response_free(&r);
		return -1;
	}
	st = r.status;
	if (out != NULL)
		*out = r.body;
	else
		http_response_free(&r);
	return st;
}

static void
fake_post(const char *path, const char *body)
{
	struct buf b;
	long st = fake_call("POST", path, body, &b, 0);

	if (st != 200)
		fprintf(stderr, "POST %s %s -> %ld %s\n", path, body, st, b.data ? b.data : "");
	assert_int_equal(st, 200);
	buf_free(&b);
}

/* An integer at `path` in the JSON answer of GET `url` (e.g. stats "429"). */
static int64_t
fake_int(const char *url, const char *path)
{
	struct buf b;
	struct json j;
	int64_t v = -1;

	assert_int_equal(fake_call("GET", url, NULL, &b, 0), 200);
	assert_int_equal(json_parse(&j, b.data, b.len, 1 << 20), 0);
	if (json_int64(&j, json_path(&j, 0, path), &v) != 0)
		v = 0;	/* absent counter = 0 */
	json_free(&j);
	buf_free(&b);
	return v;
}

/* Wait until every API request that reached the fake has been answered (a killed
 * client's slowed-down request must not land in a later test's counters). */
static void
fake_quiet(void)
{
	int64_t end = h_now_ms() + 20000;

	while (h_now_ms() < end) {
		struct buf b;
		struct json j;
		int64_t arrived = -1, answered = 0, v;

		assert_int_equal(fake_call("GET", "/_fake/stats", NULL, &b, 0), 200);
		assert_int_equal(json_parse(&j, b.data, b.len, 1 << 20), 0);
		(void)json_int64(&j, json_get(&j, 0, "requests"), &arrived);
		int st = json_get(&j, 0, "status");
		for (int i = 0, k = json_first(&j, st); i < json_size(&j, st); i++) {
			int val = json_skip(&j, k);
			if (json_int64(&j, val, &v) == 0)
				answered += v;
			k = json_skip(&j, val);
		}
		json_free(&j);
		buf_free(&b);
		if (answered >= arrived)
			return;
		nng_msleep(20);
	}
	fail_msg("the fake still has requests in flight");
}

static int64_t
fake_count(const char *entity)
{
	char url[256];

	snprintf(url, sizeof(url), "/_fake/count?entity=%s", entity);
	return fake_int(url, "count");
}

/* Rows a list endpoint of the fake serves (all pages), read with the test's own token. */
static int64_t
api_count(const char *path, const char *key, int limit)
{
	int64_t n = 0;

	for (int page = 1; page < 1000; page++) {
		char url[512], listkey[64];
		struct buf b;
		struct json j;
		long st;

		snprintf(url, sizeof(url), "%s%slimit=%d&page=%d", path, strchr(path, '?') ? "&" : "?",
		    limit, page);
		st = fake_call("GET", url, NULL, &b, 1);
		if (st == 204) {
			buf_free(&b);
			break;
		}
		assert_int_equal(st, 200);
		assert_int_equal(json_parse(&j, b.data, b.len, 1 << 20), 0);
		snprintf(listkey, sizeof(listkey), "_embedded.%s", key);
		int list = json_path(&j, 0, listkey);
		int rows = json_size(&j, list);
		n += rows;
		int more = json_kind(&j, json_path(&j, 0, "_links.next")) == JK_OBJECT;
		json_free(&j);
		buf_free(&b);
		if (!more)
			break;
	}
	return n;
}

/* ---- helpers: NNG to amo-sync -------------------------------------------------------------- */

static Crmsync__Envelope *
send_delivery(uint64_t seq, Crmsync__HookEvent **ev, size_t n)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT, *rep = NULL;
	Crmsync__HookDelivery d = CRMSYNC__HOOK_DELIVERY__INIT;

	d.seq = seq;
	d.received_at_us = (int64_t)time(NULL) * 1000000;
	d.subdomain = "crmsync-test";
	d.account_id = 31234567;
	d.events = ev;
	d.n_events = n;
	env.body_case = CRMSYNC__ENVELOPE__BODY_HOOKS;
	env.hooks = &d;
	for (int i = 0; i < 50; i++) {
		if (bus_call(asock, &env, &rep, 2000) == 0)
			break;
		rep = NULL;
	}
	assert_non_null(rep);
	assert_int_equal(rep->body_case, CRMSYNC__ENVELOPE__BODY_ACK);
	return rep;
}

/* What the gateway asks when it only wants done_seq: an empty delivery. */
static void
probe(uint64_t *done, uint64_t *boot)
{
	Crmsync__Envelope *rep = send_delivery(0, NULL, 0);

	assert_int_equal(rep->ack->status, CRMSYNC__ACK_STATUS__ACK_OK);
	*done = rep->ack->done_seq;
	if (boot != NULL)
		*boot = rep->ack->boot_id;
	bus_free(rep);
}

static int
wait_done(uint64_t seq, int timeout_ms)
{
	int64_t end = h_now_ms() + timeout_ms;
	uint64_t done = 0;

	while (h_now_ms() < end) {
		probe(&done, NULL);
		if (done >= seq)
			return 0;
		nng_msleep(50);
	}
	fprintf(stderr, "done_seq %llu, waited for %llu\n", (unsigned long long)done,
	    (unsigned long long)seq);
	h_dump_log(&amo);
	return -1;
}

/*
 * Deliver tests/integration/gateway/samples/<name>.form (a hook body the fake amoCRM's encoder
 * wrote) as the gateway does: parsed by its form parser, as delivery gw_seq. Waits until done.
 */
static void
deliver_sample(const char *name)
{
	const struct form_limits lim = FORM_LIMITS_DEFAULT;
	Crmsync__HookDelivery d = CRMSYNC__HOOK_DELIVERY__INIT;
	const char *src = getenv("CS_SOURCE_DIR");
	char path[1024], err[160], body[65536];
	struct arena a;
	size_t len;
	FILE *f;

	snprintf(path, sizeof(path), "%s/tests/integration/gateway/samples/%s.form", src ? src : ".", name);
	assert_non_null(f = fopen(path, "rb"));
	len = fread(body, 1, sizeof(body), f);
	fclose(f);
	arena_init(&a, form_arena_size(len, &lim));
	if (form_parse(body, len, &lim, &a, &d, err, sizeof(err)) != 0)
		fail_msg("%s: %s", name, err);
	bus_free(send_delivery(gw_seq, d.events, d.n_events));
	arena_free(&a);
	assert_int_equal(wait_done(gw_seq++, 10000), 0);
}

static void
command(Crmsync__SyncKind kind)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT, *rep = NULL;
	Crmsync__SyncCommand c = CRMSYNC__SYNC_COMMAND__INIT;

	c.crm = CRMSYNC__CRM__CRM_AMO;
	c.kind = kind;
	env.body_case = CRMSYNC__ENVELOPE__BODY_SYNC;
	env.sync = &c;
	assert_int_equal(bus_call_ack(asock, &env, &rep, 2000, 20000, NULL), 0);
	bus_free(rep);
}

/* Ask for a run and wait for it to finish; returns its status ("complete", "failed"...). */
static const char *
run_and_wait(Crmsync__SyncKind kind, int timeout_ms)
{
	static char status[32];
	int64_t before = h_sql_int(db, "SELECT coalesce(max(id), 0) FROM crmsync.sync_runs");
	int64_t end = h_now_ms() + timeout_ms;
	char sql[256];

	command(kind);
	snprintf(sql, sizeof(sql), "SELECT status FROM crmsync.sync_runs WHERE id > %lld "
	    "AND status <> 'running' ORDER BY id DESC LIMIT 1", (long long)before);
	while (h_now_ms() < end) {
		const char *s = h_sql(db, sql);
		if (s != NULL && strcmp(s, "(none)") != 0) {
			snprintf(status, sizeof(status), "%s", s);
			return status;
		}
		nng_msleep(50);
	}
	h_dump_log(&amo);
	fail_msg("no run finished within %d ms", timeout_ms);
	return NULL;
}

static Crmsync__HookEvent *
hook_event(const char *entity, const char *action, int64_t id)
{
	Crmsync__HookEvent *e = calloc(1, sizeof(*e));

	crmsync__hook_event__init(e);
	e->entity = (char *)entity;
	e->action = (char *)action;
	e->id = id;
	e->account_id = 31234567;
	return e;
}

static void
free_events(Crmsync__HookEvent **ev, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ev[i]);
}

/* One SQL boolean with parameters. */
static int
sql_true(const char *sql, int n, const char *const *vals)
{
	PGresult *r = PQexecParams(db, sql, n, NULL, vals, NULL, NULL, 0);
	int ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
	    strcmp(PQgetvalue(r, 0, 0), "t") == 0;

	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		fprintf(stderr, "SQL %s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	return ok;
}

/*
 * Every typed column of one row of amo.<entity> against the record the fake serves
 * (GET /_fake/record, with the same with= the service asks for), plus raw = the record.
 */
static void
check_record(const char *entity, const char *fake_entity, const char *id)
{
	const struct cat_entity *e = catalog_find(CAT_AMO, entity);
	const char *with = e->params != NULL && strncmp(e->params, "with=", 5) == 0 ? e->params + 5 : "";
	const char *keycol = NULL;
	char url[512], sql[1024];
	struct buf b;
	struct json j;

	assert_non_null(e);
	for (size_t i = 0; i < e->ncols; i++)
		if ((e->cols[i].flags & CF_KEY) && e->cols[i].json[0] != '$')
			keycol = e->cols[i].column;
	snprintf(url, sizeof(url), "/_fake/record?entity=%s&id=%s&with=%s", fake_entity, id, with);
	assert_int_equal(fake_call("GET", url, NULL, &b, 0), 200);
	assert_int_equal(json_parse(&j, b.data, b.len, 1 << 20), 0);
	const char *kv[2] = { id, b.data };
	snprintf(sql, sizeof(sql), "SELECT raw = $2::jsonb AND deleted_at IS NULL FROM amo.%s WHERE %s::text = $1",
	    entity, keycol);
	if (!sql_true(sql, 2, kv))
		fail_msg("%s %s: raw differs from the fake's record %s", entity, id, b.data);
	for (size_t i = 0; i < e->ncols; i++) {
		const struct cat_col *c = &e->cols[i];
		char val[4096];
		const char *v = NULL, *cast = "";
		int t;

		if (c->json[0] == '$')
			continue;
		t = json_path(&j, 0, c->json);
		if (json_kind(&j, t) != JK_ABSENT && json_kind(&j, t) != JK_NULL) {
			if (c->type == CT_JSONB) {
				size_t n;
				const char *s = json_text(&j, t, &n);
				snprintf(val, sizeof(val), "%.*s", (int)n, s);
			} else {
				assert_int_equal(json_str(&j, t, val, sizeof(val), NULL), 0);
			}
			v = val;
		}
		switch (c->type) {
		case CT_INT8:		cast = "$2::bigint"; break;
		case CT_NUMERIC:	cast = "$2::numeric"; break;
		case CT_BOOL:		cast = "$2::boolean"; break;
		case CT_TS_UNIX:	cast = "to_timestamp($2::bigint)"; break;
		case CT_JSONB:		cast = "$2::jsonb"; break;
		default:		cast = "$2::text"; break;
		}
		snprintf(sql, sizeof(sql), "SELECT %s IS NOT DISTINCT FROM %s FROM amo.%s WHERE %s::text = $1",
		    c->column, cast, entity, keycol);
		const char *pv[2] = { id, v };
		if (!sql_true(sql, 2, pv))
			fail_msg("%s %s: column %s (%s) is not %s", entity, id, c->column, c->json, v ? v : "NULL");
	}
	/* Custom field values: one row per value, in order. */
	int cfv = json_path(&j, 0, "custom_fields_values"), nvals = 0;
	for (int k = 0, f = json_first(&j, cfv); k < json_size(&j, cfv); k++, f = json_skip(&j, f))
		nvals += json_size(&j, json_get(&j, f, "values"));
	for (size_t c = 0; c < e->nchildren; c++) {
		if (strcmp(e->children[c].table, "custom_field_values") != 0)
			continue;
		snprintf(sql, sizeof(sql), "SELECT count(*) = %d FROM amo.custom_field_values WHERE "
		    "entity_type = '%s' AND entity_id::text = $1", nvals, entity);
		if (!sql_true(sql, 1, kv))
			fail_msg("%s %s: expected %d custom field value rows", entity, id, nvals);
	}
	json_free(&j);
	buf_free(&b);
}

static int64_t
live(const char *table, const char *where)
{
	char sql[512];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM amo.%s WHERE deleted_at IS NULL%s%s", table,
	    where ? " AND " : "", where ? where : "");
	return h_sql_int(db, sql);
}

/* ---- fixture ------------------------------------------------------------------------------- */

static int
setup(void **state)
{
	char *senv[] = { e_store_url, e_store_health, e_dsn, "CS_STORE_RECONNECT_MAX=500ms", NULL };
	char auth_argv0[] = "--auth-code", code[] = "fake-auth-code";
	char *aargv[] = { auth_argv0, code, NULL };
	struct h_proc auth;

	(void)state;
	if (h_pg_start(&pg) != 0 || http_new(&hc, NULL) != 0)
		return -1;
	snprintf(store_health, sizeof(store_health), "%s", h_url("store-health"));
	snprintf(e_store_url, sizeof(e_store_url), "CS_STORE_URL=%s", h_url("store"));
	snprintf(e_amo_store, sizeof(e_amo_store), "CS_STORE_URL=%s", h_url("store"));
	snprintf(e_store_health, sizeof(e_store_health), "CS_STORE_HEALTH_URL=%s", store_health);
	snprintf(e_dsn, sizeof(e_dsn), "CS_PG_DSN=%s", pg.dsn);
	snprintf(amo_url, sizeof(amo_url), "%s", h_url("amo"));
	snprintf(amo_health, sizeof(amo_health), "%s", h_url("amo-health"));
	snprintf(e_amo_url, sizeof(e_amo_url), "CS_AMO_URL=%s", amo_url);
	snprintf(e_amo_health, sizeof(e_amo_health), "CS_AMO_HEALTH_URL=%s", amo_health);
	snprintf(token_file, sizeof(token_file), "%s/amo-token.json", h_tmpdir());
	snprintf(e_token, sizeof(e_token), "CS_AMO_TOKEN_FILE=%s", token_file);
	if ((db = h_connect(&pg)) == NULL)
		return -1;
	if (h_spawn(&store, "store", "services/store/crmsync-store", senv, NULL) != 0 ||
	    h_wait_ready(store_health, 30000) != 0) {
		h_dump_log(&store);
		return -1;
	}
	if (start_fake() != 0)
		return -1;
	snprintf(e_base, sizeof(e_base), "CS_AMO_BASE_URL=%s", fake_base);
	/* Authorise once, as an operator would: --auth-code exchanges and saves the pair. */
	char *aenv[] = { e_amo_url, e_amo_health, e_amo_store, e_base, e_token,
	    "CS_AMO_CLIENT_ID=fake-client-id", "CS_AMO_CLIENT_SECRET=fake-client-secret",
	    "CS_AMO_REDIRECT_URI=https://example.com/oauth", NULL };
	if (h_spawn(&auth, "amo-auth", "services/amo-sync/crmsync-amo-sync", aenv, aargv) != 0 ||
	    h_wait_exit(&auth, 20000) != 0) {
		h_dump_log(&auth);
		return -1;
	}
	if (start_amo(NULL) != 0)
		return -1;
	return bus_dial(&asock, amo_url, BUS_RECVMAX_DEFAULT);
}

static int
teardown(void **state)
{
	int rv = 0;

	(void)state;
	bus_close(asock);
	if (amo.pid > 0 && (rv = h_kill(&amo, SIGTERM)) != 0) {
		fprintf(stderr, "amo-sync exited with %d\n", rv);
		h_dump_log(&amo);
	}
	h_kill(&fake, SIGTERM);
	if (h_kill(&store, SIGTERM) != 0)
		h_dump_log(&store);
	http_free(hc);
	PQfinish(db);
	h_pg_stop(&pg, 0);
	return rv != 0 ? -1 : 0;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void
test_full_sync_lands_every_entity_group(void **state)
{
	static const struct { const char *table, *fake, *where; } bulk[] = {
		{ "leads", "leads", NULL }, { "contacts", "contacts", NULL },
		{ "companies", "companies", NULL }, { "customers", "customers", NULL },
		{ "tasks", "tasks", NULL }, { "talks", "talks", NULL },
		{ "customer_transactions", "transactions", NULL }, { "unsorted", "unsorted", NULL },
		{ "events", "events", NULL },
		{ "notes", "leads/notes", "entity_type = 'leads'" },
		{ "notes", "contacts/notes", "entity_type = 'contacts'" },
		{ "notes", "companies/notes", "entity_type = 'companies'" },
		{ "notes", "customers/notes", "entity_type = 'customers'" },
		{ "catalog_elements", "catalogs/1001/elements", "catalog_id = 1001" },
		{ "catalog_elements", "catalogs/1003/elements", "catalog_id = 1003" },
		{ "catalog_elements", "catalogs/1005/elements", "catalog_id = 1005" },
	};
	static const struct { const char *table, *path, *key, *where; int limit; } ref[] = {
		{ "users", "/api/v4/users", "users", NULL, 250 },
		{ "roles", "/api/v4/roles", "roles", NULL, 250 },
		{ "pipelines", "/api/v4/leads/pipelines", "pipelines", NULL, 250 },
		{ "loss_reasons", "/api/v4/leads/loss_reasons", "loss_reasons", NULL, 250 },
		{ "sources", "/api/v4/sources", "sources", NULL, 250 },
		{ "catalogs", "/api/v4/catalogs", "catalogs", NULL, 250 },
		{ "customer_statuses", "/api/v4/customers/statuses", "statuses", NULL, 250 },
		{ "customer_segments", "/api/v4/customers/segments", "segments", NULL, 250 },
		{ "custom_fields", "/api/v4/leads/custom_fields", "custom_fields", "entity_type = 'leads'", 50 },
		{ "custom_fields", "/api/v4/contacts/custom_fields", "custom_fields", "entity_type = 'contacts'", 50 },
		{ "custom_fields", "/api/v4/companies/custom_fields", "custom_fields", "entity_type = 'companies'", 50 },
		{ "custom_fields", "/api/v4/customers/custom_fields", "custom_fields", "entity_type = 'customers'", 50 },
		{ "custom_fields", "/api/v4/customers/segments/custom_fields", "custom_fields",
		  "entity_type = 'customers/segments'", 50 },
		{ "catalog_custom_fields", "/api/v4/catalogs/1001/custom_fields", "custom_fields", "catalog_id = 1001", 50 },
		{ "custom_field_groups", "/api/v4/leads/custom_fields/groups", "custom_field_groups",
		  "entity_type = 'leads'", 250 },
		{ "tags", "/api/v4/leads/tags", "tags", "entity_type = 'leads'", 250 },
		{ "tags", "/api/v4/contacts/tags", "tags", "entity_type = 'contacts'", 250 },
		{ "tags", "/api/v4/customers/tags", "tags", "entity_type = 'customers'", 250 },
	};
	char sql[256];

	(void)state;
	assert_string_equal(run_and_wait(CRMSYNC__SYNC_KIND__SYNC_FULL, 60000), "complete");
	for (size_t i = 0; i < nitems(bulk); i++) {
		int64_t want = fake_count(bulk[i].fake), got = live(bulk[i].table, bulk[i].where);
		if (want != got || want <= 0)
			fail_msg("%s (%s): %lld rows, the fake has %lld", bulk[i].table,
			    bulk[i].where ? bulk[i].where : "all", (long long)got, (long long)want);
	}
	for (size_t i = 0; i < nitems(ref); i++) {
		int64_t want = api_count(ref[i].path, ref[i].key, ref[i].limit);
		int64_t got = live(ref[i].table, ref[i].where);
		if (want != got || want <= 0)
			fail_msg("%s (%s): %lld rows, the API lists %lld", ref[i].table,
			    ref[i].where ? ref[i].where : "all", (long long)got, (long long)want);
	}
	/* Child tables of reference data. */
	assert_int_equal(live("account", NULL), 1);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM amo.task_types"), 4);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM amo.user_groups"), 3);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM amo.pipeline_statuses WHERE status_id IN (142, 143)"),
	    2 * live("pipelines", NULL));
	assert_true(h_sql_int(db, "SELECT count(*) FROM amo.custom_field_enums") > 0);
	assert_string_equal(h_sql(db, "SELECT timezone FROM amo.account"), "Europe/Moscow");

	/* Every field of chosen records, and their custom field values. */
	check_record("leads", "leads", "6");	/* two contacts, a company, products */
	check_record("leads", "leads", "7");
	check_record("contacts", "contacts", "3");
	check_record("companies", "companies", "2");
	check_record("customers", "customers", "2");
	check_record("tasks", "tasks", "4");
	check_record("notes", "leads/notes", "5");
	check_record("talks", "talks", "2");
	check_record("customer_transactions", "transactions", "3");
	check_record("catalog_elements", "catalogs/1001/elements", "1000002");
	/* Links from _embedded. */
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM amo.lead_contacts WHERE lead_id = 6"), 2);
	assert_string_equal(h_sql(db, "SELECT is_main FROM amo.lead_contacts WHERE lead_id = 6 AND idx = 0"), "t");
	assert_int_equal(h_sql_int(db, "SELECT company_id FROM amo.leads WHERE id = 6"),
	    h_sql_int(db, "SELECT company_id FROM amo.lead_companies WHERE lead_id = 6"));
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM amo.lead_catalog_elements WHERE lead_id = 6"), 1);
	/* Typed custom field values: a multiselect has several enum rows, phones have codes. */
	assert_true(h_sql_int(db, "SELECT count(*) FROM amo.custom_field_values WHERE field_type = 'multiselect' "
	    "AND enum_id IS NOT NULL") > 0);
	assert_true(h_sql_int(db, "SELECT count(*) FROM amo.custom_field_values WHERE entity_type = 'contacts' "
	    "AND field_code = 'PHONE' AND enum_code IS NOT NULL") > 0);
	/* Date fields: unix seconds of a midnight in the account's zone (+03:00) -> that day,
	 * not the UTC day before; numeric fields (strings) -> value_number. */
	assert_true(h_sql_int(db, "SELECT count(value_date) FROM amo.custom_field_values "
	    "WHERE field_type = 'date' AND value ~ '^[0-9]+$'") > 0);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM amo.custom_field_values WHERE field_type = 'date' "
	    "AND value ~ '^[0-9]+$' AND value_date IS DISTINCT FROM "
	    "(to_timestamp(value::bigint) AT TIME ZONE 'Europe/Moscow')::date"), 0);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM amo.custom_field_values WHERE field_type = 'date' "
	    "AND value_date = (to_timestamp(value::bigint) AT TIME ZONE 'UTC')::date"), 0);
	assert_true(h_sql_int(db, "SELECT count(*) FROM amo.custom_field_values WHERE field_type = 'numeric' "
	    "AND value_number = value::numeric") > 0);
	assert_int_equal(h_sql_int(db, "SELECT count(value_number) + count(value_date) FROM amo.custom_field_values "
	    "WHERE field_type IN ('text', 'select', 'multiselect', 'checkbox')"), 0);
	/* The cursors of the incremental entities moved with the data. */
	snprintf(sql, sizeof(sql), "SELECT value FROM crmsync.cursors WHERE crm = 'amo' AND name = 'leads.updated_at'");
	assert_int_equal(h_sql_int(db, sql), h_sql_int(db, "SELECT max(extract(epoch FROM updated_at))::bigint FROM amo.leads"));
}

static void
test_incremental_sees_edits_moves_and_deletions(void **state)
{
	(void)state;
	fake_post("/_fake/mutate", "{\"ops\":["
	    "{\"op\":\"edit\",\"entity\":\"leads\",\"id\":5,\"set\":{\"name\":\"Изменено\",\"price\":777}},"
	    "{\"op\":\"move\",\"entity\":\"leads\",\"id\":10,\"pipeline_id\":1000002,\"status_id\":142},"
	    "{\"op\":\"delete\",\"entity\":\"leads\",\"id\":9},"
	    "{\"op\":\"delete\",\"entity\":\"contacts\",\"id\":4},"
	    "{\"op\":\"delete\",\"entity\":\"leads/notes\",\"id\":3},"
	    "{\"op\":\"edit\",\"entity\":\"tasks\",\"id\":2,\"set\":{\"text\":\"Позвонить ещё раз\"}},"
	    "{\"op\":\"add\",\"entity\":\"leads\",\"count\":2}]}");
	fake_post("/_fake/reset_stats", "{}");
	assert_string_equal(run_and_wait(CRMSYNC__SYNC_KIND__SYNC_INCREMENTAL, 60000), "complete");
	assert_string_equal(h_sql(db, "SELECT name || ' ' || price FROM amo.leads WHERE id = 5"), "Изменено 777");
	assert_string_equal(h_sql(db, "SELECT pipeline_id || ' ' || status_id || ' ' || (closed_at IS NOT NULL) "
	    "FROM amo.leads WHERE id = 10"), "1000002 142 true");
	assert_string_equal(h_sql(db, "SELECT deleted_at IS NOT NULL FROM amo.leads WHERE id = 9"), "t");
	assert_string_equal(h_sql(db, "SELECT deleted_at IS NOT NULL FROM amo.contacts WHERE id = 4"), "t");
	assert_string_equal(h_sql(db, "SELECT deleted_at IS NOT NULL FROM amo.notes WHERE id = 3"), "t");
	assert_string_equal(h_sql(db, "SELECT text FROM amo.tasks WHERE id = 2"), "Позвонить ещё раз");
	assert_int_equal(live("leads", NULL), fake_count("leads"));
	check_record("leads", "leads", "5");
	check_record("leads", "leads", "10");
	/* Incremental means filtered: far fewer rows than a full pass read. */
	assert_true(h_sql_int(db, "SELECT rows_written FROM crmsync.sync_runs ORDER BY id DESC LIMIT 1") <
	    h_sql_int(db, "SELECT rows_written FROM crmsync.sync_runs WHERE kind = 'full' ORDER BY id LIMIT 1") / 2);
	assert_true(fake_int("/_fake/stats", "filter_id_requests") == 0);
}

/*
 * A resync (crmsyncctl resync amo catalog_elements sends this command): a full read of that
 * one entity as its own run (trigger resync), which soft-deletes what vanished from it
 * (catalog elements are deleted by full reads) and no row of any other entity.
 */
static void
test_resync_of_one_entity_deletes_what_vanished(void **state)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT, *rep = NULL;
	Crmsync__SyncCommand c = CRMSYNC__SYNC_COMMAND__INIT;
	char *only[] = { "catalog_elements" };
	char sql[256], el[32], body[256];

	(void)state;
	snprintf(el, sizeof(el), "%s", h_sql(db, "SELECT max(id) FROM amo.catalog_elements WHERE catalog_id = 1003"));
	snprintf(body, sizeof(body), "{\"ops\":[{\"op\":\"delete\",\"entity\":\"catalogs/1003/elements\","
	    "\"id\":%s}]}", el);
	fake_post("/_fake/mutate", body);
	int64_t before = h_sql_int(db, "SELECT coalesce(max(id), 0) FROM crmsync.sync_runs");
	int64_t other_deleted = h_sql_int(db, "SELECT count(*) FROM amo.leads WHERE deleted_at IS NOT NULL");
	snprintf(sql, sizeof(sql), "SELECT (deleted_at IS NULL)::text FROM amo.catalog_elements WHERE id = %s", el);
	assert_string_equal(h_sql(db, sql), "true");
	c.crm = CRMSYNC__CRM__CRM_AMO;
	c.kind = CRMSYNC__SYNC_KIND__SYNC_FULL;
	c.entities = only;
	c.n_entities = 1;
	c.trigger = "resync";
	env.body_case = CRMSYNC__ENVELOPE__BODY_SYNC;
	env.sync = &c;
	assert_int_equal(bus_call_ack(asock, &env, &rep, 2000, 20000, NULL), 0);
	bus_free(rep);
	snprintf(sql, sizeof(sql), "SELECT status FROM crmsync.sync_runs WHERE id > %lld", (long long)before);
	if (h_wait_sql(db, sql, "complete", 60000) != 0)
		h_dump_log(&amo);
	snprintf(sql, sizeof(sql), "SELECT kind || ' ' || trigger || ' ' || entities::text || ' ' || rows_deleted "
	    "FROM crmsync.sync_runs WHERE id > %lld", (long long)before);
	assert_string_equal(h_sql(db, sql), "full resync {catalog_elements} 1");
	snprintf(sql, sizeof(sql), "SELECT (deleted_at IS NOT NULL)::text FROM amo.catalog_elements WHERE id = %s", el);
	assert_string_equal(h_sql(db, sql), "true");
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM amo.leads WHERE deleted_at IS NOT NULL"), other_deleted);
	assert_int_equal(live("catalog_elements", NULL), fake_count("catalogs/1001/elements") +
	    fake_count("catalogs/1003/elements") + fake_count("catalogs/1005/elements"));
}

static void
test_hook_burst_coalesces_into_two_list_requests(void **state)
{
	Crmsync__HookEvent *ev[100];
	char ops[64 * 1024];
	size_t o = 0;
	uint64_t last = 0;

	(void)state;
	/* 300 leads exist, and each one changes, as a bulk edit in the UI would. */
	fake_post("/_fake/mutate", "{\"ops\":[{\"op\":\"add\",\"entity\":\"leads\",\"count\":280}]}");
	o += (size_t)snprintf(ops + o, sizeof(ops) - o, "{\"ops\":[");
	for (int id = 1; id <= 300; id++)
		o += (size_t)snprintf(ops + o, sizeof(ops) - o, "%s{\"op\":\"edit\",\"entity\":\"leads\",\"id\":%d,"
		    "\"set\":{\"name\":\"hook %d\"}}", id > 1 ? "," : "", id == 9 ? 301 : id, id);
	snprintf(ops + o, sizeof(ops) - o, "]}");
	fake_post("/_fake/mutate", ops);
	fake_post("/_fake/reset_stats", "{}");
	/* 1,000 events in 10 deliveries: lead k gets 3 or 4 events, across deliveries. */
	for (int d = 0; d < 10; d++) {
		for (int i = 0; i < 100; i++) {
			int n = d * 100 + i, id = n % 300 + 1;
			ev[i] = hook_event("leads", n % 3 == 0 ? "status" : "update", id == 9 ? 301 : id);
		}
		Crmsync__Envelope *ack = send_delivery(gw_seq, ev, 100);
		assert_int_equal(ack->ack->status, CRMSYNC__ACK_STATUS__ACK_OK);
		assert_int_equal(ack->ack->batch_id, gw_seq);
		assert_true(ack->ack->done_seq < gw_seq);	/* received, not yet done */
		bus_free(ack);
		last = gw_seq++;
		free_events(ev, 100);
	}
	assert_int_equal(wait_done(last, 30000), 0);
	int64_t lists = fake_int("/_fake/stats", "lists.leads");
	if (lists > 2)
		fail_msg("%lld list requests for leads, want <= 2", (long long)lists);
	assert_int_equal(fake_int("/_fake/stats", "filter_id_requests"), lists);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM amo.leads WHERE name LIKE 'hook %' AND deleted_at IS NULL"), 300);
	/* Deletes need no fetch: they are soft deletes at once. */
	fake_post("/_fake/reset_stats", "{}");
	ev[0] = hook_event("leads", "delete", 300);
	ev[1] = hook_event("contacts", "delete", 5);
	Crmsync__Envelope *ack = send_delivery(gw_seq, ev, 2);
	bus_free(ack);
	free_events(ev, 2);
	assert_int_equal(wait_done(gw_seq++, 10000), 0);
	assert_string_equal(h_sql(db, "SELECT deleted_at IS NOT NULL FROM amo.leads WHERE id = 300"), "t");
	assert_string_equal(h_sql(db, "SELECT deleted_at IS NOT NULL FROM amo.contacts WHERE id = 5"), "t");
	assert_int_equal(fake_int("/_fake/stats", "requests"), 0);
	/* A note hook fetches that note from its parent type's notes. */
	ev[0] = hook_event("leads", "note", 7);
	ev[0]->element_id = 1;
	ack = send_delivery(gw_seq, ev, 1);
	bus_free(ack);
	free_events(ev, 1);
	assert_int_equal(wait_done(gw_seq++, 10000), 0);
	assert_int_equal(fake_int("/_fake/stats", "paths./api/v4/leads/notes"), 1);

	/* Companies arrive as contacts[...] with [type]=company (every captured hook, 2016-2022):
	 * the fake's company hooks, through the gateway's form parser, reach amo.companies. */
	fake_post("/_fake/mutate", "{\"ops\":[{\"op\":\"edit\",\"entity\":\"companies\",\"id\":1,"
	    "\"set\":{\"name\":\"Школа по хуку\"}}]}");
	fake_post("/_fake/reset_stats", "{}");
	deliver_sample("companies_update");
	assert_string_equal(h_sql(db, "SELECT name FROM amo.companies WHERE id = 1"), "Школа по хуку");
	assert_int_equal(fake_int("/_fake/stats", "lists.companies"), 1);
	assert_int_equal(fake_int("/_fake/stats", "lists.contacts"), 0);
	deliver_sample("companies_note");	/* a company's note: from the companies' notes */
	assert_int_equal(fake_int("/_fake/stats", "paths./api/v4/companies/notes"), 1);
	assert_int_equal(fake_int("/_fake/stats", "paths./api/v4/contacts/notes"), 0);
	deliver_sample("companies_delete");	/* contacts[delete][0][id]=1, [type]=company */
	assert_string_equal(h_sql(db, "SELECT deleted_at IS NOT NULL FROM amo.companies WHERE id = 1"), "t");
	assert_string_equal(h_sql(db, "SELECT deleted_at IS NULL FROM amo.contacts WHERE id = 1"), "t");
}

/*
 * On a quiet queue a hook is fetched almost at once (CS_AMO_HOOK_QUIET), not after the
 * coalescing bound: with the bound at 5 s the row still lands well before it. The bound
 * is generous for ASan on a loaded machine; bench/gateway/hook_to_row.sh measures.
 */
static void
test_a_lone_hook_lands_long_before_the_delay_bound(void **state)
{
	char *bound[] = { "CS_AMO_HOOK_DELAY=5s", NULL };
	Crmsync__HookEvent *ev[1];

	(void)state;
	stop_amo();
	assert_int_equal(start_amo(bound), 0);
	fake_post("/_fake/mutate", "{\"ops\":[{\"op\":\"edit\",\"entity\":\"leads\",\"id\":13,"
	    "\"set\":{\"name\":\"lone hook 13\"}}]}");
	ev[0] = hook_event("leads", "update", 13);
	int64_t t0 = h_now_ms();
	Crmsync__Envelope *ack = send_delivery(gw_seq, ev, 1);
	assert_int_equal(ack->ack->status, CRMSYNC__ACK_STATUS__ACK_OK);
	bus_free(ack);
	free_events(ev, 1);
	assert_int_equal(wait_done(gw_seq++, 2500), 0);
	fprintf(stderr, "lone hook done after %lld ms (bound 5 s)\n", (long long)(h_now_ms() - t0));
	assert_string_equal(h_sql(db, "SELECT name FROM amo.leads WHERE id = 13"), "lone hook 13");
	ev[0] = hook_event("leads", "update", 14);
	t0 = h_now_ms();
	ack = send_delivery(gw_seq, ev, 1);
	bus_free(ack);
	free_events(ev, 1);
	assert_int_equal(wait_done(gw_seq++, 2500), 0);
	fprintf(stderr, "lone hook 2 done after %lld ms (bound 5 s)\n", (long long)(h_now_ms() - t0));
}

static void
test_crash_with_undone_hooks_loses_nothing(void **state)
{
	char *slow[] = { "CS_AMO_HOOK_QUIET=60s", "CS_AMO_HOOK_DELAY=60s", NULL };
	Crmsync__HookEvent *ev[10];
	uint64_t done = 0, boot1 = 0, boot2 = 0, first = gw_seq, last = 0;

	(void)state;
	stop_amo();
	assert_int_equal(start_amo(slow), 0);
	fake_post("/_fake/mutate", "{\"ops\":["
	    "{\"op\":\"edit\",\"entity\":\"leads\",\"id\":11,\"set\":{\"name\":\"crash 11\"}},"
	    "{\"op\":\"edit\",\"entity\":\"leads\",\"id\":12,\"set\":{\"name\":\"crash 12\"}},"
	    "{\"op\":\"edit\",\"entity\":\"contacts\",\"id\":6,\"set\":{\"name\":\"crash c6\"}}]}");
	/* The gateway's journal: three deliveries, received but (hook delay 60 s) not done. */
	uint64_t seqs[3];
	for (int d = 0; d < 3; d++) {
		ev[0] = hook_event(d == 2 ? "contacts" : "leads", "update", d == 2 ? 6 : 11 + d);
		Crmsync__Envelope *ack = send_delivery(gw_seq, ev, 1);
		assert_int_equal(ack->ack->status, CRMSYNC__ACK_STATUS__ACK_OK);
		boot1 = ack->ack->boot_id;
		done = ack->ack->done_seq;
		bus_free(ack);
		free_events(ev, 1);
		seqs[d] = last = gw_seq++;
	}
	assert_true(done < first);
	h_kill(&amo, SIGKILL);
	assert_int_equal(start_amo(NULL), 0);
	/* The gateway notices the new boot_id and re-sends everything after its done_seq. */
	probe(&done, &boot2);
	assert_true(boot2 != boot1);
	for (int d = 0; d < 3; d++) {
		if (seqs[d] <= done)
			continue;
		ev[0] = hook_event(d == 2 ? "contacts" : "leads", "update", d == 2 ? 6 : 11 + d);
		Crmsync__Envelope *ack = send_delivery(seqs[d], ev, 1);
		assert_int_equal(ack->ack->status, CRMSYNC__ACK_STATUS__ACK_OK);
		bus_free(ack);
		free_events(ev, 1);
	}
	assert_int_equal(wait_done(last, 20000), 0);
	assert_string_equal(h_sql(db, "SELECT name FROM amo.leads WHERE id = 11"), "crash 11");
	assert_string_equal(h_sql(db, "SELECT name FROM amo.leads WHERE id = 12"), "crash 12");
	assert_string_equal(h_sql(db, "SELECT name FROM amo.contacts WHERE id = 6"), "crash c6");
	/* A re-sent duplicate is acknowledged and changes nothing. */
	ev[0] = hook_event("leads", "update", 11);
	Crmsync__Envelope *ack = send_delivery(last, ev, 1);
	assert_int_equal(ack->ack->status, CRMSYNC__ACK_STATUS__ACK_OK);
	assert_int_equal(ack->ack->done_seq, last);
	bus_free(ack);
	free_events(ev, 1);
}

static void
test_the_real_rate_stays_under_the_limit(void **state)
{
	char *real[] = { "CS_AMO_RPS=7", NULL };

	(void)state;
	stop_amo();
	assert_int_equal(start_amo(real), 0);
	fake_post("/_fake/reset_stats", "{}");
	assert_string_equal(run_and_wait(CRMSYNC__SYNC_KIND__SYNC_FULL, 120000), "complete");
	int64_t n429 = fake_int("/_fake/stats", "429"), maxw = fake_int("/_fake/stats", "max_requests_in_1s");
	int64_t reqs = fake_int("/_fake/stats", "requests"), maxw10 = fake_int("/_fake/stats", "max_requests_in_10s");
	fprintf(stderr, "full sync at 7 rps: %lld requests, max %lld in 1 s, %lld in 10 s, %lld 429s\n",
	    (long long)reqs, (long long)maxw, (long long)maxw10, (long long)n429);
	/*
	 * The rate as the fake saw it, against what amo-sync promises: a bucket of 7/s less
	 * CS_AMO_RATE_MARGIN (3 %: 6.79/s, burst 1) lets at most 1 + 6.79 * (W + J) requests
	 * arrive in any W seconds when arrivals are late by up to J s relative to each other
	 * (an amo-sync thread descheduled between its token and its send, the fake's Python
	 * thread between accept and its timestamp, a new connection's set-up). Over W = 1 s the
	 * margin covers J < 31 ms, which a loaded 2-core CI machine exceeds (and even an idle
	 * one, now and then): a strict 1-s limit then sees 8 and answers a 429. So the fake
	 * runs without its limit here (a 429's Retry-After pause would also hide a client that
	 * is too fast), the 1-s figure is only printed, and the bound is 7/s over W = 10 s,
	 * where the margin covers J < 310 ms; with no margin the 76-odd requests of this sync
	 * make 71 in 10 s at full pace. Bursts are ratelimit_test's; 429 handling is below.
	 */
	assert_true(maxw10 <= 7 * 10);
	assert_int_equal(n429, 0);	/* the fake's limit is off: none can come */
	assert_true(reqs > 7 * 10);	/* the sync lasts longer than the window */
	stop_amo();
	assert_int_equal(start_amo(NULL), 0);
}

/* Log lines of amo-sync containing `needle`. */
static int
log_has(const char *needle)
{
	FILE *f = fopen(amo.log, "r");
	char line[8192];
	int n = 0;

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		n += strstr(line, needle) != NULL;
	if (f != NULL)
		fclose(f);
	return n;
}

/*
 * Hook events amo-sync cannot fetch are dropped visibly, with the reason (issue 10 item 6):
 * a chat message (no message entity: texts are not reachable over REST) and a 2017 note hook,
 * which has no [note][id]. Neither costs an API request.
 */
static void
test_unfetchable_hooks_say_why(void **state)
{
	Crmsync__HookEvent *ev[1];

	(void)state;
	fake_post("/_fake/reset_stats", "{}");
	deliver_sample("message_add");
	assert_true(log_has("ev=hook.ignored") >= 1);
	assert_true(log_has("entity=\"message\" action=\"add\" type=\"incoming\"") == 1);
	ev[0] = hook_event("contacts", "note", 0);	/* contacts[note][0][type]=company, no id */
	ev[0]->element_id = 2;
	ev[0]->element_type = "3";
	ev[0]->type = "company";
	bus_free(send_delivery(gw_seq, ev, 1));
	free_events(ev, 1);
	assert_int_equal(wait_done(gw_seq++, 10000), 0);
	assert_true(log_has("entity=\"contacts\" action=\"note\" type=\"company\" id=0 "
	    "reason=\"no id (old note hooks") == 1);
	assert_int_equal(fake_int("/_fake/stats", "requests"), 0);
}

static void
test_account_without_filters_gets_a_full_pass(void **state)
{
	(void)state;
	fake_post("/_fake/config", "{\"ignore_filters\":true}");
	/* (Contacts: most leads changed within the look-back window by now, so for them an
	 * ignored filter and an honoured one return the same rows.) */
	fake_post("/_fake/mutate", "{\"ops\":[{\"op\":\"edit\",\"entity\":\"contacts\",\"id\":7,"
	    "\"set\":{\"name\":\"без фильтров\"}},{\"op\":\"delete\",\"entity\":\"tasks\",\"id\":3}]}");
	assert_string_equal(run_and_wait(CRMSYNC__SYNC_KIND__SYNC_INCREMENTAL, 60000), "complete");
	fake_post("/_fake/config", "{\"ignore_filters\":false}");
	assert_string_equal(h_sql(db, "SELECT name FROM amo.contacts WHERE id = 7"), "без фильтров");
	assert_string_equal(h_sql(db, "SELECT deleted_at IS NOT NULL FROM amo.tasks WHERE id = 3"), "t");
	assert_true(log_has("ev=sync.filter_ignored entity=contacts") == 1);
	assert_true(log_has("ev=sync.skipped_unchanged entity=contacts") >= 1);
	/* Rows unchanged since the cursor were read but not sent to the store. */
	FILE *f = fopen(amo.log, "r");
	char line[8192];
	long long sent = -1;
	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		const char *p = strstr(line, "entity=contacts mode=incremental rows=");
		if (p != NULL && strstr(line, "ev=sync.entity") != NULL)
			sent = strtoll(p + strlen("entity=contacts mode=incremental rows="), NULL, 10);
	}
	if (f != NULL)
		fclose(f);
	assert_true(sent >= 1 && sent < live("contacts", NULL));
}

static void
test_429_5xx_are_retried_and_a_ban_stops_everything(void **state)
{
	Crmsync__Envelope *rep = NULL;

	(void)state;
	fake_post("/_fake/config", "{\"retry_after\":1}");
	fake_post("/_fake/faults", "{\"replace\":true,\"faults\":["
	    "{\"path\":\"/api/v4/leads\",\"kind\":\"ratelimit\",\"count\":1},"
	    "{\"path\":\"/api/v4/contacts\",\"kind\":\"http502\",\"count\":2}]}");
	fake_post("/_fake/reset_stats", "{}");
	int64_t t0 = h_now_ms();
	assert_string_equal(run_and_wait(CRMSYNC__SYNC_KIND__SYNC_INCREMENTAL, 60000), "complete");
	assert_true(h_now_ms() - t0 >= 1000);	/* Retry-After: 1 was honoured */
	assert_int_equal(fake_int("/_fake/stats", "429"), 1);
	assert_int_equal(fake_int("/_fake/stats", "status.502"), 2);
	assert_int_equal(fake_call("DELETE", "/_fake/faults", NULL, NULL, 0), 200);

	/* Retry-After as an HTTP-date 3 s ahead, with an nginx HTML body (issue 10 item 7): it
	 * was read as absent (-1) and the pause was a backoff of at most CS_AMO_BACKOFF_MAX=1s. */
	fake_post("/_fake/config", "{\"retry_after\":3,\"retry_after_form\":\"date\"}");
	fake_post("/_fake/faults", "{\"replace\":true,\"faults\":["
	    "{\"path\":\"/api/v4/leads\",\"kind\":\"ratelimit\",\"count\":1}]}");
	int dated = log_has("retry_after=2 ") + log_has("retry_after=3 ");
	t0 = h_now_ms();
	assert_string_equal(run_and_wait(CRMSYNC__SYNC_KIND__SYNC_INCREMENTAL, 60000), "complete");
	assert_true(h_now_ms() - t0 >= 2000);
	assert_int_equal(log_has("retry_after=2 ") + log_has("retry_after=3 "), dated + 1);
	assert_int_equal(fake_call("DELETE", "/_fake/faults", NULL, NULL, 0), 200);
	fake_post("/_fake/config", "{\"retry_after\":0,\"retry_after_form\":\"seconds\"}");

	/* 403 on everything: the account is banned. Stop, say so, never retry on our own. */
	fake_post("/_fake/faults", "{\"replace\":true,\"faults\":[{\"path\":\"*\",\"kind\":\"forbidden\",\"count\":-1}]}");
	fake_post("/_fake/reset_stats", "{}");
	assert_string_equal(run_and_wait(CRMSYNC__SYNC_KIND__SYNC_INCREMENTAL, 30000), "failed");
	assert_int_equal(health_probe(amo_health, 2000, &rep), 0);
	assert_false(rep->health_response->ok);
	assert_non_null(strstr(rep->health_response->status, "403"));
	bus_free(rep);
	assert_true(log_has("ev=api.banned") == 1);
	int64_t n = fake_int("/_fake/stats", "requests");
	assert_int_equal(n, 2);		/* the refused call and one check of /api/v4/account */
	nng_msleep(1500);		/* quiet on purpose: nothing may happen meanwhile */
	assert_int_equal(fake_int("/_fake/stats", "requests"), n);
	/* Support lifted the ban; an operator asks for a run. */
	assert_int_equal(fake_call("DELETE", "/_fake/faults", NULL, NULL, 0), 200);
	assert_string_equal(run_and_wait(CRMSYNC__SYNC_KIND__SYNC_INCREMENTAL, 30000), "complete");
	assert_int_equal(health_probe(amo_health, 2000, &rep), 0);
	assert_true(rep->health_response->ok);
	bus_free(rep);
}

/*
 * A banned account answers 403 to the token endpoint too (an nginx page; amocrm-api-php#563).
 * That was taken as a refused grant: "revoked, re-authorise", which cannot help. It is the
 * ban: stop and alert as for any 403 everywhere; the refresh token was not used, so once
 * the block is lifted an operator's command resumes without re-authorising.
 */
static void
test_403_from_the_token_endpoint_is_a_ban(void **state)
{
	Crmsync__Envelope *rep = NULL;
	int revoked = log_has("ev=oauth.revoked"), banned = log_has("ev=api.banned");

	(void)state;
	fake_post("/_fake/faults", "{\"replace\":true,\"faults\":[{\"path\":\"/oauth2/access_token\","
	    "\"kind\":\"forbidden\",\"count\":-1}]}");
	fake_post("/_fake/expire_tokens", "{}");	/* the next API call is a 401: refresh */
	assert_string_equal(run_and_wait(CRMSYNC__SYNC_KIND__SYNC_INCREMENTAL, 30000), "failed");
	assert_int_equal(log_has("ev=oauth.revoked"), revoked);
	assert_int_equal(log_has("ev=api.banned"), banned + 1);
	assert_int_equal(health_probe(amo_health, 2000, &rep), 0);
	assert_false(rep->health_response->ok);
	assert_non_null(strstr(rep->health_response->status, "403"));
	bus_free(rep);
	/* Lifted: the operator's command is enough (the token pair on disk still works). */
	assert_int_equal(fake_call("DELETE", "/_fake/faults", NULL, NULL, 0), 200);
	assert_string_equal(run_and_wait(CRMSYNC__SYNC_KIND__SYNC_INCREMENTAL, 30000), "complete");
	assert_int_equal(health_probe(amo_health, 2000, &rep), 0);
	assert_true(rep->health_response->ok);
	bus_free(rep);
}

static void
test_long_lived_token_needs_no_oauth(void **state)
{
	char *llt[] = { "CS_AMO_LONG_LIVED_TOKEN=" LLT, "CS_AMO_CLIENT_ID=", NULL };
	int64_t gen = fake_int("/_fake/tokens", "generation");

	(void)state;
	stop_amo();
	assert_int_equal(start_amo(llt), 0);
	fake_post("/_fake/mutate", "{\"ops\":[{\"op\":\"edit\",\"entity\":\"leads\",\"id\":21,\"set\":{\"name\":\"llt\"}}]}");
	assert_string_equal(run_and_wait(CRMSYNC__SYNC_KIND__SYNC_INCREMENTAL, 60000), "complete");
	assert_string_equal(h_sql(db, "SELECT name FROM amo.leads WHERE id = 21"), "llt");
	assert_int_equal(fake_int("/_fake/tokens", "generation"), gen);
	stop_amo();
	assert_int_equal(start_amo(NULL), 0);
}

static void
test_rotated_refresh_token_survives_kill(void **state)
{
	char before[4096] = "", after[4096] = "";
	FILE *f;

	(void)state;
	if ((f = fopen(token_file, "r")) != NULL) {
		size_t n = fread(before, 1, sizeof(before) - 1, f);
		before[n] = '\0';
		fclose(f);
	}
	int64_t gen = fake_int("/_fake/tokens", "generation");
	/* The access token expires; the next call gets 401, refreshes, and is retried slowly: the
	 * retry is in flight (the new pair already in use) when amo-sync dies. */
	fake_post("/_fake/expire_tokens", "{}");
	fake_post("/_fake/faults", "{\"faults\":[{\"path\":\"/api/v4/*\",\"kind\":\"slow\",\"after\":1,"
	    "\"count\":1,\"delay_ms\":2000}]}");
	command(CRMSYNC__SYNC_KIND__SYNC_INCREMENTAL);
	int64_t end = h_now_ms() + 20000;
	while (h_now_ms() < end && fake_int("/_fake/faults", "faults.0.fired") < 1)
		nng_msleep(5);
	assert_int_equal(fake_int("/_fake/faults", "faults.0.fired"), 1);
	assert_int_equal(fake_int("/_fake/tokens", "generation"), gen + 1);
	h_kill(&amo, SIGKILL);
	assert_int_equal(fake_call("DELETE", "/_fake/faults", NULL, NULL, 0), 200);
	fake_quiet();
	if ((f = fopen(token_file, "r")) != NULL) {
		size_t n = fread(after, 1, sizeof(after) - 1, f);
		after[n] = '\0';
		fclose(f);
	}
	assert_string_not_equal(before, after);
	/* The file holds the refresh token the fake considers current. */
	struct buf b;
	assert_int_equal(fake_call("GET", "/_fake/tokens", NULL, &b, 0), 200);
	struct json j;
	char cur[512];
	assert_int_equal(json_parse(&j, b.data, b.len, 4096), 0);
	assert_int_equal(json_str(&j, json_get(&j, 0, "refresh_token"), cur, sizeof(cur), NULL), 0);
	assert_non_null(strstr(after, cur));
	json_free(&j);
	buf_free(&b);
	/* Restart without re-authorising: it syncs, and can refresh again later. */
	assert_int_equal(start_amo(NULL), 0);
	assert_string_equal(run_and_wait(CRMSYNC__SYNC_KIND__SYNC_INCREMENTAL, 60000), "complete");
	fake_post("/_fake/expire_tokens", "{}");
	assert_string_equal(run_and_wait(CRMSYNC__SYNC_KIND__SYNC_INCREMENTAL, 60000), "complete");
	assert_int_equal(fake_int("/_fake/tokens", "generation"), gen + 2);
	assert_int_equal(fake_int("/_fake/tokens", "grants.authorization_code"), 1);

	/* Ahead of expiry: a token that lives 4 s is refreshed once half of it is gone, before
	 * any request is refused (and not on every request although CS_AMO_REFRESH_BEFORE is 1h). */
	fake_post("/_fake/config", "{\"token_ttl\":4}");
	fake_post("/_fake/expire_tokens", "{}");
	assert_string_equal(run_and_wait(CRMSYNC__SYNC_KIND__SYNC_INCREMENTAL, 60000), "complete");
	int64_t g1 = fake_int("/_fake/tokens", "generation");
	assert_true(g1 >= gen + 3);
	fake_post("/_fake/reset_stats", "{}");
	nng_msleep(3200);	/* the token's age is the condition here */
	const char *st = run_and_wait(CRMSYNC__SYNC_KIND__SYNC_INCREMENTAL, 60000);
	if (strcmp(st, "complete") != 0)	/* seen once under CI-like load: say why next time */
		h_dump_log(&amo);
	assert_string_equal(st, "complete");
	assert_true(fake_int("/_fake/tokens", "generation") > g1);
	assert_int_equal(fake_int("/_fake/stats", "401"), 0);
	fake_post("/_fake/config", "{\"token_ttl\":86400}");
}

static void
test_revoked_token_stops_cleanly(void **state)
{
	Crmsync__Envelope *rep = NULL;
	Crmsync__HookEvent *ev[1];

	(void)state;
	fake_post("/_fake/revoke", "{}");
	fake_post("/_fake/reset_stats", "{}");
	assert_string_equal(run_and_wait(CRMSYNC__SYNC_KIND__SYNC_INCREMENTAL, 30000), "failed");
	assert_int_equal(health_probe(amo_health, 2000, &rep), 0);
	assert_false(rep->health_response->ok);
	assert_non_null(strstr(rep->health_response->status, "revoked"));
	bus_free(rep);
	/* No retry storm: a 401, one refresh attempt, then silence. */
	int64_t n = fake_int("/_fake/stats", "requests");
	nng_msleep(2000);
	ev[0] = hook_event("leads", "update", 1);
	Crmsync__Envelope *ack = send_delivery(gw_seq, ev, 1);
	assert_int_equal(ack->ack->status, CRMSYNC__ACK_STATUS__ACK_OK);
	bus_free(ack);
	free_events(ev, 1);
	nng_msleep(1000);
	uint64_t done = 0;
	probe(&done, NULL);
	assert_true(done < gw_seq);	/* queued, not dropped: the gateway keeps it */
	gw_seq++;
	assert_int_equal(fake_int("/_fake/stats", "requests"), n);
	if (n > 3) {	/* seen once under CI-like load: say which requests next time */
		struct buf sb;
		long sst = fake_call("GET", "/_fake/stats", NULL, &sb, 0);
		if (sst > 0) {	/* -1 leaves sb unset */
			fprintf(stderr, "requests after the revocation: %s\n", sb.data);
			buf_free(&sb);
		}
		h_dump_log(&amo);
	}
	assert_true(n <= 3);
	/* amo-sync may already have met the revocation just before the stats were reset
	 * (a request of its own in flight), so this window holds at most one of each. */
	assert_true(fake_int("/_fake/stats", "401") <= 1);
	assert_true(fake_int("/_fake/stats", "paths./oauth2/access_token") <= 1);
	assert_true(log_has("ev=oauth.revoked") >= 1);
	stop_amo();	/* still exits cleanly */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_sync_lands_every_entity_group),
		cmocka_unit_test(test_incremental_sees_edits_moves_and_deletions),
		cmocka_unit_test(test_resync_of_one_entity_deletes_what_vanished),
		cmocka_unit_test(test_hook_burst_coalesces_into_two_list_requests),
		cmocka_unit_test(test_a_lone_hook_lands_long_before_the_delay_bound),
		cmocka_unit_test(test_crash_with_undone_hooks_loses_nothing),
		cmocka_unit_test(test_the_real_rate_stays_under_the_limit),
		cmocka_unit_test(test_account_without_filters_gets_a_full_pass),
		cmocka_unit_test(test_unfetchable_hooks_say_why),
		cmocka_unit_test(test_429_5xx_are_retried_and_a_ban_stops_everything),
		cmocka_unit_test(test_403_from_the_token_endpoint_is_a_ban),
		cmocka_unit_test(test_long_lived_token_needs_no_oauth),
		cmocka_unit_test(test_rotated_refresh_token_survives_kill),
		cmocka_unit_test(test_revoked_token_stops_cleanly),
	};
	return h_done(cmocka_run_group_tests(tests, setup, teardown));
}
