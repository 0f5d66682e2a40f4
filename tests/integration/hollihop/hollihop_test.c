/*
 * hollihop_test.c - crmsync-hollihop-sync end to end: the fake Hollihop (Python, real
 * HTTP), the real store, a throwaway PostgreSQL, and hollihop-sync as a process.
 *
 * One cluster, one store and one fake (tiny scale) for the file; the tests run in order
 * and build on each other's data: a full export lands every method (counts vs the fake,
 * every typed column vs the raw JSON, raw vs the fake's record, spot values); edits and
 * deletions in the fake are mirrored by the next run (started by a SyncCommand); a run
 * killed with -9 deletes nothing and the next one completes; injected faults and a real
 * rate limit are retried; a bad authkey and an {"Error"} answer fail the run clearly.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
#include "harness.h"
#include "health.h"
#include "http.h"
#include "json.h"

#define KEY		"fAkE/hollihop+Key=="
#define DATE_FROM	"2025-03-01"
#define DATE_TO		"2025-07-31"
#define TZ_NAME		"Europe/Moscow"

static struct h_pg pg;
static struct h_proc store, fake;
static PGconn *db;
static struct http *http;
static int fake_port;
static char store_url[512], store_health[512], hh_url[512], hh_health[512];
static char e_store[600], e_store_health[600], e_dsn[1024], e_base[256], e_hh_url[600],
    e_hh_health[600];

/* ---------------------------------------------------------------- the fake's control API */

/* One request to the fake; returns the body (caller frees) and the status. */
static char *
fake_req(const char *verb, const char *path, const char *body, long *status)
{
	struct http_response r;
	char url[1024];
	static const char *const hdr[] = { "Content-Type: application/json", NULL };
	char *out;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", fake_port, path);
	if (http_request(http, verb, url, hdr, body, body ? strlen(body) : 0, &r) != 0) {
		fprintf(stderr, "fake %s %s: %s\n", verb, path, r.error);
		http_response_free(&r);
		if (status)
			*status = 0;
		return strdup("");
	}
	if (status)
		*status = r.status;
	out = strndup(r.body.data ? r.body.data : "", r.body.len);
	http_response_free(&r);
	return out;
}

static void
fake_post_ok(const char *path, const char *body)
{
	long st;
	char *b = fake_req("POST", path, body, &st);

	if (st != 200)
		fprintf(stderr, "POST %s %s -> %ld %s\n", path, body, st, b);
	assert_int_equal(st, 200);
	free(b);
}

/* rows (child == NULL) or the element count of a nested list from /_fake/count. */
static int64_t
fake_count(const char *method, const char *params, const char *child)
{
	char path[1024];
	struct json j;
	int64_t v = -1;
	long st;

	snprintf(path, sizeof(path), "/_fake/count?method=%s%s%s", method, params ? "&" : "",
	    params ? params : "");
	char *b = fake_req("GET", path, NULL, &st);
	if (st == 200 && json_parse(&j, b, strlen(b), 100000) == 0) {
		int t = child == NULL ? json_get(&j, 0, "rows") :
		    json_get(&j, json_get(&j, 0, "children"), child);
		if (t < 0)
			v = 0;
		else if (json_int64(&j, t, &v) != 0)
			v = -1;
		json_free(&j);
	}
	free(b);
	return v;
}

static int64_t
fake_stat(const char *name, const char *sub)
{
	struct json j;
	int64_t v = 0;
	char *b = fake_req("GET", "/_fake/stats", NULL, NULL);

	if (json_parse(&j, b, strlen(b), 100000) == 0) {
		int t = json_get(&j, 0, name);
		if (sub != NULL)
			t = json_get(&j, t, sub);
		if (t >= 0)
			json_int64(&j, t, &v);
		json_free(&j);
	}
	free(b);
	return v;
}

/* ---------------------------------------------------------------- processes */

static int
start_fake(void)
{
	char *argv[] = { "--scale", "tiny", "--seed", "1", "--authkey", KEY, "--rate-limit", "0",
	    "--no-warmup", NULL };
	char base[128];

	fake_port = h_fake_start(&fake, "fake-hollihop", "hollihop", argv, base, sizeof(base));
	return fake_port > 0 ? 0 : -1;
}

static int
start_store(void)
{
	char *env[] = { e_store, e_store_health, e_dsn, "CS_STORE_RECONNECT_MAX=500ms", NULL };

	/* Ready means migrated: every catalogue table exists. */
	if (h_spawn(&store, "store", "services/store/crmsync-store", env, NULL) != 0 ||
	    h_wait_ready(store_health, 20000) != 0) {
		h_dump_log(&store);
		return -1;
	}
	return 0;
}

/* The environment of hollihop-sync: the common part plus extra (NULL-terminated). */
static void
sync_env(char **env, size_t cap, char *const *extra)
{
	static char *common[] = { e_store, e_base, e_hh_url, e_hh_health,
	    "CS_HOLLIHOP_AUTHKEY=" KEY, "CS_HOLLIHOP_TIMEZONE=" TZ_NAME,
	    "CS_HOLLIHOP_DATE_FROM=" DATE_FROM, "CS_HOLLIHOP_DATE_TO=" DATE_TO,
	    "CS_HOLLIHOP_RATE=0", "CS_HOLLIHOP_SCHEDULE=off", "CS_HOLLIHOP_TIMEOUT=5s",
	    "CS_HOLLIHOP_BACKOFF_BASE=20ms", "CS_HOLLIHOP_BACKOFF_MAX=300ms",
	    "CS_HOLLIHOP_STORE_DEADLINE=30s", NULL };
	size_t n = 0;

	for (size_t i = 0; common[i] != NULL && n + 1 < cap; i++)
		env[n++] = common[i];
	for (size_t i = 0; extra != NULL && extra[i] != NULL && n + 1 < cap; i++)
		env[n++] = extra[i];
	env[n] = NULL;
}

/* Wait for a process to exit; its exit status, or -1 after timeout_ms (then killed). */
static int
wait_exit(struct h_proc *p, int timeout_ms)
{
	int rv = h_wait_exit(p, timeout_ms);

	if (rv < 0) {
		fprintf(stderr, "%s did not exit within %d ms\n", p->name, timeout_ms);
		h_kill(p, SIGKILL);
	}
	return rv;
}

/* hollihop-sync --run-now with extra environment; returns its exit status. */
static int
run_once(const char *name, char *const *extra, struct h_proc *p)
{
	char *env[48];
	char *argv[] = { "--run-now", NULL };
	int rv;

	sync_env(env, 48, extra);
	if (h_spawn(p, name, "services/hollihop-sync/crmsync-hollihop-sync", env, argv) != 0)
		return -1;
	rv = wait_exit(p, 60000);
	if (rv != 0)
		h_dump_log(p);
	return rv;
}

static int64_t
last_run(void)
{
	return h_sql_int(db, "SELECT max(id) FROM crmsync.sync_runs WHERE crm = 'hollihop'");
}

static const char *
run_field(int64_t run, const char *field)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "SELECT %s FROM crmsync.sync_runs WHERE id = %lld", field, (long long)run);
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

/* ---------------------------------------------------------------- catalogue-driven checks */

/* "Utm.Source" -> '{Utm,Source}' (a PostgreSQL text[] literal for #>). */
static void
pg_path(const char *json, char *dst, size_t cap)
{
	size_t o = 0;

	dst[o++] = '\'';
	dst[o++] = '{';
	for (const char *p = json; *p && o + 4 < cap; p++)
		dst[o++] = *p == '.' ? ',' : *p;
	dst[o++] = '}';
	dst[o++] = '\'';
	dst[o] = '\0';
}

/* A plain "a.b.c" path (checked against raw here); context values, alternatives, element
 * picks and extractions have tests of their own. */
static int
plain_path(const char *json)
{
	return json[0] != '$' && strpbrk(json, "|[~") == NULL;
}

/*
 * SQL that is true when column `col` (of alias a) holds exactly what its JSON value `J`
 * says, converted independently of the C normaliser.
 */
static void
col_check(struct buf *b, const struct cat_col *c, const char *a, const char *J)
{
	char S[512];

	snprintf(S, sizeof(S), "(%s #>> '{}')", J);
	buf_printf(b, "(CASE WHEN %s IS NULL OR jsonb_typeof(%s) = 'null' THEN %s.%s IS NULL ELSE %s.%s IS NOT DISTINCT FROM ",
	    J, J, a, c->column, a, c->column);
	switch (c->type) {
	case CT_INT8:		buf_printf(b, "%s::bigint", S); break;
	case CT_NUMERIC:	buf_printf(b, "%s::numeric", S); break;
	case CT_MONEY_TEXT:
		buf_printf(b, "(CASE WHEN jsonb_typeof(%s) = 'number' THEN %s::numeric ELSE "
		    "replace(regexp_replace(%s, '[^0-9,-]', '', 'g'), ',', '.')::numeric END)", J, S, S);
		break;
	case CT_BOOL:		buf_printf(b, "%s::boolean", S); break;
	case CT_TS_LOCAL:	buf_printf(b, "(%s::timestamp AT TIME ZONE '%s')", S, TZ_NAME); break;
	case CT_TS_UNIX:	buf_printf(b, "to_timestamp(%s::bigint)", S); break;
	case CT_DATE:		buf_printf(b, "%s::date", S); break;
	case CT_TIME:		buf_printf(b, "%s::time", S); break;
	case CT_JSONB:		buf_printf(b, "%s", J); break;
	case CT_INT8_ARRAY:	buf_printf(b, "ARRAY(SELECT x::bigint FROM jsonb_array_elements_text(%s) x)", J); break;
	case CT_TEXT_ARRAY:	buf_printf(b, "ARRAY(SELECT jsonb_array_elements_text(%s))", J); break;
	default:		buf_printf(b, "%s", S); break;
	}
	buf_printf(b, " END)");
}

/* Check every typed column of table (entity or child) against raw; fails with the column. */
static void
check_table_columns(const struct cat_entity *e, const struct cat_child *ch)
{
	const struct cat_col *cols = ch ? ch->cols : e->cols;
	size_t ncols = ch ? ch->ncols : e->ncols;
	struct buf b;
	char path[256], J[1024], pcol[64];
	size_t nchk = 0;

	buf_init(&b, 1 << 20);
	buf_printf(&b, "SELECT count(*)");
	for (size_t i = 0; i < ncols; i++) {
		const struct cat_col *c = &cols[i];
		if (!plain_path(c->json))
			continue;
		pg_path(c->json, path, sizeof(path));
		if (ch != NULL) {
			char cpath[256];
			pg_path(ch->json, cpath, sizeof(cpath));
			snprintf(J, sizeof(J), "((p.raw #> %s) -> c.idx) #> %s", cpath, path);
		} else {
			snprintf(J, sizeof(J), "t.raw #> %s", path);
		}
		buf_printf(&b, ", count(*) FILTER (WHERE NOT ");
		col_check(&b, c, ch ? "c" : "t", J);
		buf_printf(&b, ")");
		nchk++;
	}
	if (ch == NULL) {
		buf_printf(&b, " FROM hollihop.%s t", e->name);
	} else {
		buf_printf(&b, " FROM hollihop.%s c JOIN hollihop.%s p ON ", ch->table, e->name);
		for (size_t k = 0, n = 0; k < e->ncols; k++) {
			if (!(e->cols[k].flags & CF_KEY))
				continue;
			catalog_child_parent_col(e, ch, n, pcol, sizeof(pcol));
			buf_printf(&b, "%sc.%s = p.%s", n ? " AND " : "", pcol, e->cols[k].column);
			n++;
		}
	}
	PGresult *r = PQexec(db, b.data);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "%s\n%s", b.data, PQresultErrorMessage(r));
		fail_msg("column check of %s failed", ch ? ch->table : e->name);
	}
	for (size_t i = 0, f = 1; i < ncols; i++) {
		const struct cat_col *c = &cols[i];
		if (!plain_path(c->json))
			continue;
		long bad = strtol(PQgetvalue(r, 0, (int)f++), NULL, 10);
		if (bad != 0)
			fail_msg("%s.%s: %ld of %s rows differ from raw %s", ch ? ch->table : e->name,
			    c->column, bad, PQgetvalue(r, 0, 0), c->json);
	}
	PQclear(r);
	buf_free(&b);
	(void)nchk;
}

/* The fake's parameters equivalent to the entity's: date range, query flags. */
static void
entity_params(const struct cat_entity *e, char *dst, size_t cap)
{
	size_t o = 0;

	dst[0] = '\0';
	if (e->params == NULL)
		return;
	for (const char *p = e->params; *p;) {
		size_t n = strcspn(p, "&");
		char kv[256];
		snprintf(kv, sizeof(kv), "%.*s", (int)n, p);
		char *eq = strchr(kv, '=');
		if (eq != NULL && strcmp(eq + 1, "{$date_from}") == 0)
			strcpy(eq + 1, DATE_FROM);
		else if (eq != NULL && strcmp(eq + 1, "{$date_to}") == 0)
			strcpy(eq + 1, DATE_TO);
		else if (eq != NULL && eq[1] == '{' && eq[2] != '$')
			/* one pass per alternative = all of them at once (a comma list) */
			for (char *c = eq + 1; *c; c++)
				*c = *c == '|' ? ',' : *c;
		if (eq != NULL && eq[1] == '{' && eq[2] != '$') {
			memmove(eq + 1, eq + 2, strlen(eq + 2) + 1);
			eq[strlen(eq) - 1] = '\0';
		}
		if (eq != NULL && eq[1] != '{')
			o += (size_t)snprintf(dst + o, o < cap ? cap - o : 0, "%s%s", o ? "&" : "", kv);
		p += n;
		if (*p == '&')
			p++;
	}
}

static int
is_per_parent(const struct cat_entity *e)
{
	return e->paging == PAGE_PER_PARENT;
}

/* ---------------------------------------------------------------- setup */

static int
setup(void **state)
{
	(void)state;
	if (h_pg_start(&pg) != 0)
		return -1;
	snprintf(store_url, sizeof(store_url), "%s", h_url("store"));
	snprintf(store_health, sizeof(store_health), "%s", h_url("store-health"));
	snprintf(hh_url, sizeof(hh_url), "%s", h_url("hollihop"));
	snprintf(hh_health, sizeof(hh_health), "%s", h_url("hollihop-health"));
	snprintf(e_store, sizeof(e_store), "CS_STORE_URL=%s", store_url);
	snprintf(e_store_health, sizeof(e_store_health), "CS_STORE_HEALTH_URL=%s", store_health);
	snprintf(e_dsn, sizeof(e_dsn), "CS_PG_DSN=%s", pg.dsn);
	snprintf(e_hh_url, sizeof(e_hh_url), "CS_HOLLIHOP_URL=%s", hh_url);
	snprintf(e_hh_health, sizeof(e_hh_health), "CS_HOLLIHOP_HEALTH_URL=%s", hh_health);
	if ((db = h_connect(&pg)) == NULL || h_sql_exec(db, "SET timezone = 'UTC'") != 0)
		return -1;
	if (http_new(&http, NULL) != 0 || start_fake() != 0 || start_store() != 0)
		return -1;
	snprintf(e_base, sizeof(e_base), "CS_HOLLIHOP_BASE_URL=http://127.0.0.1:%d/Api/V2", fake_port);
	return 0;
}

static int
teardown(void **state)
{
	int rv;

	(void)state;
	h_kill(&fake, SIGTERM);
	if ((rv = h_kill(&store, SIGTERM)) != 0) {
		fprintf(stderr, "store exited with %d\n", rv);
		h_dump_log(&store);
	}
	http_free(http);
	PQfinish(db);
	return h_pg_stop(&pg, 0) != 0 || rv != 0 ? -1 : 0;
}

/* ---------------------------------------------------------------- tests */

/* A full export lands every method: counts, every typed column, raw = the fake's record. */
static void
test_full_export_lands_every_method(void **state)
{
	const struct cat_crm_desc *d = catalog_crm(CAT_HOLLIHOP);
	struct h_proc p;
	char params[512], key[512], path[2048];

	(void)state;
	assert_int_equal(run_once("sync-full", NULL, &p), 0);
	int64_t run = last_run();
	assert_string_equal(run_field(run, "status"), "complete");
	assert_string_equal(run_field(run, "error"), "(null)");
	assert_int_equal(sqlf_int("SELECT count(*) FROM crmsync.sync_runs WHERE id = %lld AND "
	    "cardinality(entities) = %zu", (long long)run, d->nentities), 1);
	int64_t students = fake_count("GetStudents", NULL, NULL);
	assert_true(students >= 10);

	for (size_t i = 0; i < d->nentities; i++) {
		const struct cat_entity *e = &d->entities[i];
		int64_t want, got;

		entity_params(e, params, sizeof(params));
		want = is_per_parent(e) && e->list_key == NULL ? students :
		    fake_count(e->endpoint, params[0] ? params : NULL, NULL);
		if (strcmp(e->name, "student_personal_office_settings") == 0)
			want = students;
		got = sqlf_int("SELECT count(*) FROM hollihop.%s WHERE deleted_at IS NULL", e->name);
		if (want != got)
			fail_msg("%s: %lld rows in PostgreSQL, the fake has %lld", e->name, (long long)got,
			    (long long)want);
		assert_true(got > 0);
		/* Child tables hold every element of every nested list. */
		for (size_t c = 0; c < e->nchildren; c++) {
			const struct cat_child *ch = &e->children[c];
			int64_t wc = fake_count(e->endpoint, params[0] ? params : NULL, ch->json);
			int64_t gc = sqlf_int("SELECT count(*) FROM hollihop.%s", ch->table);
			if (wc != gc)
				fail_msg("%s (%s.%s): %lld rows, the fake has %lld", ch->table, e->endpoint,
				    ch->json, (long long)gc, (long long)wc);
			check_table_columns(e, ch);
		}
		check_table_columns(e, NULL);

		/* Chosen records (first, middle, last by key): raw is the fake's record, byte-equal JSON. */
		for (int pick = 0; pick < 3; pick++) {
			const char *order = pick == 0 ? "ASC" : "DESC";
			int64_t off = pick == 1 ? got / 2 : 0;
			const char *k;
			if (e->paging == PAGE_PER_PARENT || strcmp(e->name, "history_modify_lead_status") == 0 ||
			    strcmp(e->name, "disciplines") == 0 || strcmp(e->name, "learning_types") == 0 ||
			    strcmp(e->name, "announcements") == 0 || strcmp(e->name, "ed_unit_students") == 0 ||
			    strcmp(e->name, "ed_unit_leads") == 0) {
				/* Keys the fake wants in another form: built from raw (or the ctx column). */
				k = sqlf("SELECT coalesce(%s, '') FROM hollihop.%s ORDER BY raw::text %s OFFSET %lld LIMIT 1",
				    strcmp(e->name, "history_modify_lead_status") == 0 ?
				    "json_build_array(raw->'LeadId', raw->'DateTime', raw->'AfterId')::text" :
				    strcmp(e->name, "ed_unit_students") == 0 ?
				    "json_build_array(raw->'EdUnitId', raw->'StudentClientId')::text" :
				    strcmp(e->name, "ed_unit_leads") == 0 ?
				    "json_build_array(raw->'EdUnitId', raw->'LeadId')::text" :
				    strcmp(e->name, "disciplines") == 0 || strcmp(e->name, "learning_types") == 0 ?
				    "name" : strcmp(e->name, "announcements") == 0 || strcmp(e->name, "client_files") == 0 ?
				    "id::text" : "client_id::text", e->name, order, (long long)off);
			} else {
				const struct cat_col *kc = NULL;
				for (size_t x = 0; x < e->ncols; x++)
					if (e->cols[x].flags & CF_KEY)
						kc = &e->cols[x];
				k = sqlf("SELECT %s::text FROM hollihop.%s ORDER BY %s %s OFFSET %lld LIMIT 1",
				    kc->column, e->name, kc->column, order, (long long)off);
			}
			assert_non_null(k);
			struct buf kb;
			buf_init(&kb, 4096);
			http_urlencode(&kb, k);
			snprintf(key, sizeof(key), "%s", kb.data);
			buf_free(&kb);
			snprintf(path, sizeof(path), "/_fake/record?method=%s&key=%s%s%s", e->endpoint, key,
			    params[0] ? "&" : "", params);
			long st;
			char *rec = fake_req("GET", path, NULL, &st);
			if (st != 200)
				fail_msg("%s: no fake record for key %s: %s", e->name, k, rec);
			const char *vals[1] = { rec };
			char sql[512];
			snprintf(sql, sizeof(sql), "SELECT count(*) FROM hollihop.%s WHERE raw = $1::jsonb", e->name);
			PGresult *r = PQexecParams(db, sql, 1, NULL, vals, NULL, NULL, 0);
			if (PQresultStatus(r) != PGRES_TUPLES_OK || strcmp(PQgetvalue(r, 0, 0), "1") != 0)
				fail_msg("%s: key %s: raw differs from the fake's record %s (%s)", e->name, k, rec,
				    PQresultErrorMessage(r));
			PQclear(r);
			free(rec);
		}
	}

	/* Spot values, checked independently of the normaliser and of PostgreSQL's zone rules. */
	const char *cid = h_sql(db, "SELECT client_id FROM hollihop.students ORDER BY client_id LIMIT 1");
	char cidbuf[32];
	snprintf(cidbuf, sizeof(cidbuf), "%s", cid);
	snprintf(path, sizeof(path), "/_fake/record?method=GetStudents&key=%s", cidbuf);
	char *rec = fake_req("GET", path, NULL, NULL);
	struct json j;
	char first[128], created[32];
	size_t n;
	assert_int_equal(json_parse(&j, rec, strlen(rec), 10000), 0);
	assert_int_equal(json_str(&j, json_get(&j, 0, "FirstName"), first, sizeof(first), &n), 0);
	assert_int_equal(json_str(&j, json_get(&j, 0, "Created"), created, sizeof(created), &n), 0);
	json_free(&j);
	free(rec);
	assert_true((unsigned char)first[0] >= 0xD0);	/* Cyrillic, UTF-8 */
	assert_string_equal(sqlf("SELECT first_name FROM hollihop.students WHERE client_id = %s", cidbuf), first);
	/* Moscow is UTC+3 all year since 2014: 14:27:04 local is 11:27:04Z. */
	struct tm tm = { 0 };
	tm.tm_year = (int)strtol(created, NULL, 10) - 1900;
	tm.tm_mon = (int)strtol(created + 5, NULL, 10) - 1;
	tm.tm_mday = (int)strtol(created + 8, NULL, 10);
	tm.tm_hour = (int)strtol(created + 11, NULL, 10) - 3;
	tm.tm_min = (int)strtol(created + 14, NULL, 10);
	tm.tm_sec = (int)strtol(created + 17, NULL, 10);
	time_t utc = timegm(&tm);
	char want[64];
	strftime(want, sizeof(want), "%Y-%m-%d %H:%M:%S+00", gmtime_r(&utc, &tm));
	assert_string_equal(sqlf("SELECT created::text FROM hollihop.students WHERE client_id = %s", cidbuf), want);
	/* Money: a refund's formatted string and its number agree, sign included. */
	assert_true(h_sql_int(db, "SELECT count(*) FROM hollihop.payments WHERE value_quantity < 0") > 0);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.payments WHERE value <> value_quantity"), 0);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.payments WHERE raw->>'Value' LIKE '%\u00a0%' "
	    "AND abs(value) < 1000"), 0);
	/* Child rows keep their order and parent. */
	assert_true(h_sql_int(db, "SELECT count(*) FROM hollihop.ed_unit_student_days d JOIN hollihop.ed_unit_students s "
	    "USING (ed_unit_id, student_client_id) WHERE d.date BETWEEN '" DATE_FROM "' AND '" DATE_TO "'") > 0);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.ed_unit_days WHERE date NOT BETWEEN '"
	    DATE_FROM "' AND '" DATE_TO "'"), 0);
	/* Ed units: every status read (the fake, like an unknown real default, serves only the
	 * active ones without statuses=), each unit's status the pass that read it. */
	const char *statuses[] = { "Reserve", "Forming", "Working", "Stopped", "Finished" };
	int64_t all_units = 0;
	for (size_t i = 0; i < nitems(statuses); i++) {
		char q[64];
		snprintf(q, sizeof(q), "statuses=%s", statuses[i]);
		int64_t in_pass = fake_count("GetEdUnits", q, NULL);
		all_units += in_pass;
		assert_int_equal(sqlf_int("SELECT count(*) FROM hollihop.ed_units WHERE status = '%s'", statuses[i]),
		    in_pass);
	}
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.ed_units"), all_units);
	assert_true(fake_count("GetEdUnits", NULL, NULL) < all_units);
	assert_true(h_sql_int(db, "SELECT count(*) FROM hollihop.ed_units WHERE status IN ('Stopped', 'Finished')") > 0);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.ed_units WHERE source_updated_at IS NOT NULL "
	    "OR raw ? 'Status' OR raw ? 'Updated'"), 0);
	/* Per-student lesson days carry the student's minutes. */
	assert_true(h_sql_int(db, "SELECT count(*) FROM hollihop.ed_unit_student_days WHERE minutes > 0") > 0);
	assert_true(h_sql_int(db, "SELECT count(*) FROM hollihop.ed_unit_student_days d "
	    "WHERE d.minutes < d.teacher_payable_minutes") > 0);	/* late arrivals */
	/* students.amo_lead_id: the id in the "Ссылка на amoCRM" link, NULL for a bare "https://". */
	const char *link = "(SELECT e->>'Value' FROM jsonb_array_elements(s.raw->'ExtraFields') e "
	    "WHERE e->>'Name' = 'Ссылка на amoCRM' LIMIT 1)";
	assert_int_equal(sqlf_int("SELECT count(*) FROM hollihop.students s WHERE amo_lead_id IS DISTINCT FROM "
	    "substring(%s from '/leads/detail/([0-9]+)')::bigint", link), 0);
	assert_true(h_sql_int(db, "SELECT count(*) FROM hollihop.students WHERE amo_lead_id > 0") > 0);
	assert_true(sqlf_int("SELECT count(*) FROM hollihop.students s WHERE %s = 'https://' AND amo_lead_id IS NULL",
	    link) > 0);
	/* Nothing rejected, nothing dead-lettered. */
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM crmsync.dead_letters"), 0);
}

/* A SyncCommand starts a run; edits, additions and deletions in the fake land exactly. */
static void
test_second_export_mirrors_edits_and_deletions(void **state)
{
	const struct cat_crm_desc *d = catalog_crm(CAT_HOLLIHOP);
	struct h_proc p;
	char *env[48], body[2048];
	int64_t before[64];

	(void)state;
	/* Two students to delete, one to edit (name and agents), one payment deleted, one added,
	 * one membership gone, one unit renamed. */
	char s1[32], s2[32], s3[32], pay[32], eu[32], mem[64], eu_w[32], eu_f[32], eu_gone[32];
	snprintf(s1, sizeof(s1), "%s", h_sql(db, "SELECT client_id FROM hollihop.students ORDER BY client_id OFFSET 2 LIMIT 1"));
	snprintf(s2, sizeof(s2), "%s", h_sql(db, "SELECT client_id FROM hollihop.students ORDER BY client_id OFFSET 5 LIMIT 1"));
	snprintf(s3, sizeof(s3), "%s", h_sql(db, "SELECT client_id FROM hollihop.students ORDER BY client_id OFFSET 7 LIMIT 1"));
	snprintf(pay, sizeof(pay), "%s", h_sql(db, "SELECT id FROM hollihop.payments ORDER BY id OFFSET 3 LIMIT 1"));
	snprintf(eu, sizeof(eu), "%s", h_sql(db, "SELECT id FROM hollihop.ed_units ORDER BY id OFFSET 4 LIMIT 1"));
	snprintf(mem, sizeof(mem), "%s", h_sql(db, "SELECT '[' || ed_unit_id || ',' || student_client_id || ']' "
	    "FROM hollihop.ed_unit_students ORDER BY 1 LIMIT 1"));
	/* Units whose status changes between runs move between the per-status passes: the
	 * union of the passes is what deletion compares with, so they must stay live. */
	snprintf(eu_w, sizeof(eu_w), "%s", h_sql(db, "SELECT id FROM hollihop.ed_units WHERE status = 'Working' "
	    "ORDER BY id LIMIT 1"));
	snprintf(eu_f, sizeof(eu_f), "%s", h_sql(db, "SELECT id FROM hollihop.ed_units WHERE status = 'Finished' "
	    "ORDER BY id LIMIT 1"));
	snprintf(eu_gone, sizeof(eu_gone), "%s", h_sql(db, "SELECT id FROM hollihop.ed_units WHERE status = 'Stopped' "
	    "ORDER BY id LIMIT 1"));
	assert_true(eu_w[0] != '(' && eu_f[0] != '(' && eu_gone[0] != '(');
	int64_t files_of_deleted = sqlf_int("SELECT count(*) FROM hollihop.client_files WHERE client_id IN (%s, %s)", s1, s2);
	char *old_updated = strdup(sqlf("SELECT updated::text FROM hollihop.students WHERE client_id = %s", s3));
	snprintf(body, sizeof(body), "{\"ops\":["
	    "{\"op\":\"delete\",\"method\":\"GetStudents\",\"keys\":[%s,%s]},"
	    "{\"op\":\"edit\",\"method\":\"GetStudents\",\"key\":%s,\"set\":{\"FirstName\":\"Ёжик\","
	    "\"Agents\":[{\"FirstName\":\"Бабушка Зина\",\"WhoIs\":\"Бабушка\",\"IsCustomer\":true,"
	    "\"UseMobileBySystem\":false,\"UseEMailBySystem\":false}]}},"
	    "{\"op\":\"delete\",\"method\":\"GetPayments\",\"key\":%s},"
	    "{\"op\":\"add\",\"method\":\"GetPayments\",\"count\":1,\"set\":{\"ClientId\":%s,"
	    "\"Value\":\"1\u00a0234,50 руб.\",\"ValueQuantity\":1234.5,\"Type\":\"Обучение\"}},"
	    "{\"op\":\"delete\",\"method\":\"GetEdUnitStudents\",\"key\":%s},"
	    "{\"op\":\"edit\",\"method\":\"GetEdUnits\",\"key\":%s,\"set\":{\"Name\":\"Переименованная группа\"}},"
	    "{\"op\":\"edit\",\"method\":\"GetEdUnits\",\"key\":%s,\"set\":{\"_Status\":\"Finished\"}},"
	    "{\"op\":\"edit\",\"method\":\"GetEdUnits\",\"key\":%s,\"set\":{\"_Status\":\"Reserve\"}},"
	    "{\"op\":\"delete\",\"method\":\"GetEdUnits\",\"key\":%s}"
	    "]}", s1, s2, s3, pay, s3, mem, eu, eu_w, eu_f, eu_gone);
	fake_post_ok("/_fake/mutate", body);
	for (size_t i = 0; i < d->nentities; i++)
		before[i] = sqlf_int("SELECT count(*) FROM hollihop.%s WHERE deleted_at IS NOT NULL",
		    d->entities[i].name);

	/* The daemon: a command starts the run and is answered with its id. A sweep, so the
	 * per-client methods see the deleted students too. */
	char *sweep[] = { "CS_HOLLIHOP_SWEEP_EVERY=0", NULL };
	sync_env(env, 48, sweep);
	assert_int_equal(h_spawn(&p, "sync-daemon", "services/hollihop-sync/crmsync-hollihop-sync", env, NULL), 0);
	assert_int_equal(h_wait_health(hh_health, 20000), 0);
	nng_socket s;
	Crmsync__Envelope env_cmd = CRMSYNC__ENVELOPE__INIT, *ack = NULL;
	Crmsync__SyncCommand cmd = CRMSYNC__SYNC_COMMAND__INIT;
	char *bad[] = { "students", "no_such_entity" };
	assert_int_equal(bus_dial(&s, hh_url, BUS_RECVMAX_DEFAULT), 0);
	cmd.crm = CRMSYNC__CRM__CRM_HOLLIHOP;
	cmd.kind = CRMSYNC__SYNC_KIND__SYNC_FULL;
	cmd.entities = bad;
	cmd.n_entities = 2;
	env_cmd.body_case = CRMSYNC__ENVELOPE__BODY_SYNC;
	env_cmd.sync = &cmd;
	assert_int_equal(bus_call_ack(s, &env_cmd, &ack, 10000, 20000, NULL), CS_EREJECTED);
	assert_non_null(strstr(ack->ack->error, "no_such_entity"));
	bus_free(ack);
	cmd.n_entities = 0;
	assert_int_equal(bus_call_ack(s, &env_cmd, &ack, 10000, 20000, NULL), 0);
	int64_t run = ack->ack->run_id;
	bus_free(ack);
	assert_true(run > 0);
	/* One run at a time: a second command while it runs is refused (or finds it done). */
	if (bus_call_ack(s, &env_cmd, &ack, 10000, 20000, NULL) == CS_EREJECTED)
		assert_non_null(strstr(ack->ack->error, "busy"));
	else
		run = ack->ack->run_id;	/* the first was already over: wait for this one */
	bus_free(ack);
	bus_close(s);
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT status FROM crmsync.sync_runs WHERE id = %lld", (long long)run);
	if (h_wait_sql(db, sql, "complete", 60000) != 0)
		h_dump_log(&p);
	assert_string_equal(run_field(run, "trigger"), "command");
	assert_int_equal(h_kill(&p, SIGTERM), 0);

	/* Exactly the deleted rows are marked, everything else is live. */
	assert_string_equal(sqlf("SELECT string_agg(client_id::text, ',' ORDER BY client_id) FROM hollihop.students "
	    "WHERE deleted_at IS NOT NULL"), sqlf("SELECT '%s,%s'", s1, s2));
	assert_string_equal(sqlf("SELECT string_agg(id::text, ',') FROM hollihop.payments WHERE deleted_at IS NOT NULL"), pay);
	assert_int_equal(sqlf_int("SELECT count(*) FROM hollihop.ed_unit_students WHERE deleted_at IS NOT NULL "
	    "AND '[' || ed_unit_id || ',' || student_client_id || ']' = '%s'", mem), 1);
	for (size_t i = 0; i < d->nentities; i++) {
		const struct cat_entity *e = &d->entities[i];
		int64_t now = sqlf_int("SELECT count(*) FROM hollihop.%s WHERE deleted_at IS NOT NULL", e->name);
		int64_t want = 0;
		if (strcmp(e->name, "students") == 0 || (is_per_parent(e) && strcmp(e->name, "client_files") != 0))
			want = 2;	/* per-client methods follow the students */
		else if (strcmp(e->name, "client_files") == 0)
			want = files_of_deleted;
		else if (strcmp(e->name, "payments") == 0 || strcmp(e->name, "ed_unit_students") == 0 ||
		    strcmp(e->name, "ed_units") == 0)
			want = 1;
		if (now - before[i] != want)
			fail_msg("%s: %lld rows newly deleted, want %lld", e->name, (long long)(now - before[i]),
			    (long long)want);
	}
	/* The edit and the addition. */
	assert_string_equal(sqlf("SELECT first_name FROM hollihop.students WHERE client_id = %s", s3), "Ёжик");
	assert_true(strcmp(sqlf("SELECT updated::text FROM hollihop.students WHERE client_id = %s", s3), old_updated) > 0);
	free(old_updated);
	assert_string_equal(sqlf("SELECT string_agg(first_name || '/' || who_is, ',') FROM hollihop.student_agents "
	    "WHERE client_id = %s", s3), "Бабушка Зина/Бабушка");
	assert_string_equal(sqlf("SELECT value_quantity || ' ' || value || ' ' || client_id FROM hollihop.payments "
	    "WHERE id = (SELECT max(id) FROM hollihop.payments)"), sqlf("SELECT '1234.5 1234.50 %s'", s3));
	assert_string_equal(sqlf("SELECT name FROM hollihop.ed_units WHERE id = %s", eu), "Переименованная группа");
	assert_string_equal(sqlf("SELECT status || ' ' || (deleted_at IS NULL) FROM hollihop.ed_units WHERE id = %s",
	    eu_w), "Finished true");
	assert_string_equal(sqlf("SELECT status || ' ' || (deleted_at IS NULL) FROM hollihop.ed_units WHERE id = %s",
	    eu_f), "Reserve true");
	assert_string_equal(sqlf("SELECT (deleted_at IS NOT NULL)::text FROM hollihop.ed_units WHERE id = %s",
	    eu_gone), "true");
	assert_int_equal(sqlf_int("SELECT count(*) FROM hollihop.ed_unit_schedule_items WHERE ed_unit_id = %s", eu),
	    sqlf_int("SELECT jsonb_array_length(raw->'ScheduleItems') FROM hollihop.ed_units WHERE id = %s", eu));
	assert_string_equal(run_field(run, "status"), "complete");
}

/*
 * Per-client methods with changed_by (catalogue): between sweeps a nightly run calls them
 * only for students changed since their last complete pass, and never soft-deletes their
 * rows; a sweep calls every client and deletes what vanished. GetIncomesAndOutgoes also
 * for a client with a payment created since (changed_via payments), whose new ledger
 * item lands.
 */
static void
test_nightly_per_client_calls_changed_students_only(void **state)
{
	char *sweep[] = { "CS_HOLLIHOP_SWEEP_EVERY=0", NULL };
	char *nightly[] = { "CS_HOLLIHOP_SWEEP_EVERY=30d", "CS_HOLLIHOP_CHANGED_LOOKBACK=0", NULL };
	struct h_proc p;
	char s[32], t[32], u[32], v[32], tfile[32], body[1536];

	(void)state;
	assert_int_equal(run_once("pc-sweep", sweep, &p), 0);
	assert_string_equal(run_field(last_run(), "status"), "complete");
	/* s changes and gets a file; t loses a file and u is deleted, both unchanged otherwise. */
	snprintf(s, sizeof(s), "%s", h_sql(db, "SELECT client_id FROM hollihop.students WHERE deleted_at IS NULL "
	    "ORDER BY client_id OFFSET 10 LIMIT 1"));
	snprintf(u, sizeof(u), "%s", h_sql(db, "SELECT client_id FROM hollihop.students WHERE deleted_at IS NULL "
	    "AND client_id IN (SELECT client_id FROM hollihop.student_personal_office_settings WHERE deleted_at IS NULL) "
	    "ORDER BY client_id OFFSET 12 LIMIT 1"));
	snprintf(t, sizeof(t), "%s", sqlf("SELECT min(client_id) FROM hollihop.client_files WHERE deleted_at IS NULL "
	    "AND client_id NOT IN (%s, %s)", s, u));
	snprintf(tfile, sizeof(tfile), "%s", sqlf("SELECT min(id) FROM hollihop.client_files WHERE client_id = %s", t));
	/* v, unchanged itself, pays. */
	snprintf(v, sizeof(v), "%s", sqlf("SELECT client_id FROM hollihop.students WHERE deleted_at IS NULL "
	    "AND client_id NOT IN (%s, %s, %s) ORDER BY client_id OFFSET 3 LIMIT 1", s, u, t));
	int64_t v_items = sqlf_int("SELECT count(*) FROM hollihop.incomes_and_outgoes_study WHERE client_id = %s", v);
	snprintf(body, sizeof(body), "{\"ops\":["
	    "{\"op\":\"add\",\"method\":\"GetPayments\",\"count\":1,\"set\":{\"ClientId\":%s,"
	    "\"Description\":\"Оплата за декабрь\"}},", v);
	snprintf(body + strlen(body), sizeof(body) - strlen(body), 
	    "{\"op\":\"edit\",\"method\":\"GetStudents\",\"key\":%s,\"set\":{\"FirstName\":\"Изменён\"}},"
	    "{\"op\":\"add\",\"method\":\"GetClientFiles\",\"count\":1,\"set\":{\"ClientId\":%s,"
	    "\"Name\":\"new-file.pdf\"}},"
	    "{\"op\":\"delete\",\"method\":\"GetClientFiles\",\"key\":%s},"
	    "{\"op\":\"delete\",\"method\":\"GetStudents\",\"key\":%s}]}", s, s, tfile, u);
	fake_post_ok("/_fake/mutate", body);
	int64_t live = sqlf_int("SELECT count(*) FROM hollihop.students WHERE deleted_at IS NULL") - 1;

	/* The nightly run: one call per changed-by method, for s; the ledger for s and v. */
	fake_post_ok("/_fake/reset_stats", "{}");
	assert_int_equal(run_once("pc-nightly", nightly, &p), 0);
	assert_string_equal(run_field(last_run(), "status"), "complete");
	assert_int_equal(fake_stat("requests", "GetClientFiles"), 1);
	assert_int_equal(fake_stat("requests", "GetStudentPersonalOfficeSettings"), 1);
	assert_int_equal(fake_stat("requests", "GetIncomesAndOutgoes"), 2);
	assert_int_equal(sqlf_int("SELECT count(*) FROM hollihop.incomes_and_outgoes_study WHERE client_id = %s",
	    v), v_items + 1);
	assert_int_equal(sqlf_int("SELECT count(*) FROM hollihop.incomes_and_outgoes_study WHERE client_id = %s "
	    "AND description = 'Оплата за декабрь'", v), 1);
	assert_int_equal(sqlf_int("SELECT count(*) FROM hollihop.incomes_and_outgoes WHERE client_id = %s "
	    "AND deleted_at IS NULL", u), 1);
	assert_int_equal(sqlf_int("SELECT count(*) FROM hollihop.client_files WHERE client_id = %s AND "
	    "name = 'new-file.pdf' AND deleted_at IS NULL", s), 1);
	assert_string_equal(sqlf("SELECT (deleted_at IS NOT NULL)::text FROM hollihop.students WHERE client_id = %s", u),
	    "true");
	/* ...and no per-client row of another client is deleted: not t's file, not u's rows. */
	assert_int_equal(sqlf_int("SELECT count(*) FROM hollihop.client_files WHERE id = %s AND deleted_at IS NULL",
	    tfile), 1);
	assert_int_equal(sqlf_int("SELECT count(*) FROM hollihop.student_personal_office_settings WHERE client_id = %s "
	    "AND deleted_at IS NULL", u), 1);

	/* The sweep: every client, and what vanished is deleted. */
	fake_post_ok("/_fake/reset_stats", "{}");
	assert_int_equal(run_once("pc-sweep2", sweep, &p), 0);
	assert_string_equal(run_field(last_run(), "status"), "complete");
	assert_int_equal(fake_stat("requests", "GetClientFiles"), live);
	assert_int_equal(fake_stat("requests", "GetStudentPersonalOfficeSettings"), live);
	assert_int_equal(fake_stat("requests", "GetIncomesAndOutgoes"), live);
	assert_int_equal(sqlf_int("SELECT count(*) FROM hollihop.client_files WHERE id = %s AND deleted_at IS NOT NULL",
	    tfile), 1);
	assert_int_equal(sqlf_int("SELECT count(*) FROM hollihop.incomes_and_outgoes WHERE client_id = %s "
	    "AND deleted_at IS NOT NULL", u), 1);
	assert_int_equal(sqlf_int("SELECT count(*) FROM hollihop.student_personal_office_settings WHERE client_id = %s "
	    "AND deleted_at IS NOT NULL", u), 1);
}

/* kill -9 halfway: nothing is deleted; the next run closes the old one and completes. */
static void
test_kill9_halfway_deletes_nothing(void **state)
{
	struct h_proc p;
	char *env[48], body[512];
	char *argv[] = { "--run-now", NULL };
	char lead[32];

	(void)state;
	snprintf(lead, sizeof(lead), "%s", h_sql(db, "SELECT id FROM hollihop.leads WHERE deleted_at IS NULL "
	    "ORDER BY id DESC LIMIT 1"));
	snprintf(body, sizeof(body), "{\"ops\":[{\"op\":\"delete\",\"method\":\"GetLeads\",\"key\":%s}]}", lead);
	fake_post_ok("/_fake/mutate", body);
	/* Slow down a method late in the order so the kill lands mid-run. */
	fake_post_ok("/_fake/faults", "{\"replace\":true,\"faults\":[{\"method\":\"GetEdUnits\",\"kind\":\"slow\","
	    "\"delay_ms\":4000,\"count\":1}]}");
	int64_t deleted_before = h_sql_int(db, "SELECT count(*) FROM hollihop.leads WHERE deleted_at IS NOT NULL");
	int64_t prev = last_run();

	sync_env(env, 48, NULL);
	assert_int_equal(h_spawn(&p, "sync-killed", "services/hollihop-sync/crmsync-hollihop-sync", env, argv), 0);
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM crmsync.sync_runs WHERE id > %lld AND status = 'running' "
	    "AND progress ? 'leads' AND progress ? 'history_modify_lead_status'", (long long)prev);
	if (h_wait_sql(db, sql, "1", 30000) != 0)
		h_dump_log(&p);
	int64_t killed = last_run();
	assert_true(killed > prev);
	h_kill(&p, SIGKILL);
	assert_string_equal(run_field(killed, "status"), "running");
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.leads WHERE deleted_at IS NOT NULL"),
	    deleted_before);
	assert_int_equal(sqlf_int("SELECT count(*) FROM hollihop.leads WHERE id = %s AND deleted_at IS NULL", lead), 1);

	/* The next run completes, closes the killed one as abandoned, and deletes the lead now. */
	free(fake_req("DELETE", "/_fake/faults", NULL, NULL));
	assert_int_equal(run_once("sync-after-kill", NULL, &p), 0);
	assert_string_equal(run_field(last_run(), "status"), "complete");
	assert_string_equal(run_field(killed, "status"), "abandoned");
	assert_int_equal(sqlf_int("SELECT count(*) FROM hollihop.leads WHERE id = %s AND deleted_at IS NOT NULL", lead), 1);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.leads WHERE deleted_at IS NOT NULL"),
	    deleted_before + 1);
}

/*
 * The store killed (-9) in the middle of a run and started again: hollihop-sync's queued
 * batches wait and are re-sent, the run completes, and nothing is lost (new payments and
 * an edit made in the fake before the run are all there).
 * Then a batch the store rejects (a constraint PostgreSQL enforces) makes its entity
 * incomplete: the run says so, and the entity's deletions wait for a run that completes it.
 */
static void
test_store_killed_then_rejecting(void **state)
{
	struct h_proc p;
	char *env[48], body[1024], sql[512];
	char *argv[] = { "--run-now", NULL };

	(void)state;
	char stu[32];
	snprintf(stu, sizeof(stu), "%s", h_sql(db, "SELECT client_id FROM hollihop.students WHERE "
	    "deleted_at IS NULL ORDER BY client_id DESC LIMIT 1"));
	snprintf(body, sizeof(body), "{\"ops\":[{\"op\":\"add\",\"method\":\"GetPayments\",\"count\":25},"
	    "{\"op\":\"edit\",\"method\":\"GetStudents\",\"key\":%s,\"set\":{\"FirstName\":\"Пережил\"}}]}", stu);
	fake_post_ok("/_fake/mutate", body);
	fake_post_ok("/_fake/faults", "{\"replace\":true,\"faults\":[{\"method\":\"GetEdUnits\",\"kind\":\"slow\","
	    "\"delay_ms\":2000,\"count\":1}]}");
	int64_t prev = last_run();
	sync_env(env, 48, NULL);
	assert_int_equal(h_spawn(&p, "sync-store-killed", "services/hollihop-sync/crmsync-hollihop-sync", env, argv), 0);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM crmsync.sync_runs WHERE id > %lld AND status = 'running' "
	    "AND progress ? 'leads'", (long long)prev);
	if (h_wait_sql(db, sql, "1", 30000) != 0)
		h_dump_log(&p);
	int64_t run = last_run();
	h_kill(&store, SIGKILL);
	int64_t batches_at_kill = atoll(run_field(run, "batches"));
	nng_msleep(1500);	/* the export goes on; what it sends meanwhile is retried */
	assert_true(h_alive(&p));
	assert_int_equal(start_store(), 0);
	assert_int_equal(wait_exit(&p, 60000), 0);
	free(fake_req("DELETE", "/_fake/faults", NULL, NULL));
	assert_string_equal(run_field(run, "status"), "complete");
	/* The same run went on into the restarted store. */
	assert_true(atoll(run_field(run, "batches")) > batches_at_kill);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.payments WHERE deleted_at IS NULL"),
	    fake_count("GetPayments", NULL, NULL));
	assert_string_equal(sqlf("SELECT first_name FROM hollihop.students WHERE client_id = %s", stu), "Пережил");

	/* A rejected batch: offices gets a rule no office can meet; one office edited, one deleted. */
	char o1[32], o2[32];
	snprintf(o1, sizeof(o1), "%s", h_sql(db, "SELECT id FROM hollihop.offices WHERE deleted_at IS NULL ORDER BY id LIMIT 1"));
	snprintf(o2, sizeof(o2), "%s", h_sql(db, "SELECT id FROM hollihop.offices WHERE deleted_at IS NULL ORDER BY id DESC LIMIT 1"));
	assert_int_equal(h_sql_exec(db, "ALTER TABLE hollihop.offices ADD CONSTRAINT test_reject CHECK (id < 0) NOT VALID"), 0);
	snprintf(body, sizeof(body), "{\"ops\":[{\"op\":\"edit\",\"method\":\"GetOffices\",\"key\":%s,"
	    "\"set\":{\"Name\":\"Новый филиал\"}},{\"op\":\"delete\",\"method\":\"GetOffices\",\"key\":%s}]}", o1, o2);
	fake_post_ok("/_fake/mutate", body);
	char *only[] = { "CS_HOLLIHOP_ENTITIES=offices,locations", NULL };
	assert_int_equal(run_once("sync-rejected", only, &p), 0);
	assert_non_null(strstr(run_field(last_run(), "error"), "the store rejected batch"));
	assert_int_equal(sqlf_int("SELECT count(*) FROM hollihop.offices WHERE id = %s AND deleted_at IS NULL", o2), 1);
	assert_true(h_sql_int(db, "SELECT count(*) FROM crmsync.dead_letters WHERE entity = 'offices'") > 0);
	/* Fixed: the next run applies the edit and the deletion. */
	assert_int_equal(h_sql_exec(db, "ALTER TABLE hollihop.offices DROP CONSTRAINT test_reject"), 0);
	assert_int_equal(run_once("sync-unrejected", only, &p), 0);
	assert_string_equal(run_field(last_run(), "status"), "complete");
	assert_int_equal(sqlf_int("SELECT count(*) FROM hollihop.offices WHERE id = %s AND deleted_at IS NOT NULL", o2), 1);
	assert_string_equal(sqlf("SELECT name FROM hollihop.offices WHERE id = %s", o1), "Новый филиал");
}

/* 5xx, slow, dropped, malformed and rate-limit answers are retried; the run completes. */
static void
test_faults_are_retried(void **state)
{
	struct h_proc p;
	char *extra[] = { "CS_HOLLIHOP_TIMEOUT=1s", NULL };

	(void)state;
	fake_post_ok("/_fake/reset_stats", "{}");
	fake_post_ok("/_fake/faults", "{\"replace\":true,\"faults\":["
	    "{\"method\":\"GetStudents\",\"kind\":\"http500\",\"count\":2},"
	    "{\"method\":\"GetOffices\",\"kind\":\"slow\",\"delay_ms\":2500,\"count\":1},"
	    "{\"method\":\"GetLeads\",\"kind\":\"drop\",\"count\":1},"
	    "{\"method\":\"GetPayments\",\"kind\":\"malformed\",\"count\":2},"
	    "{\"method\":\"GetEdUnits\",\"kind\":\"ratelimit\",\"count\":2},"
	    "{\"method\":\"GetIncomesAndOutgoes\",\"kind\":\"http500\",\"count\":1,\"status\":503,\"after\":3}"
	    "]}");
	int64_t rows_before = h_sql_int(db, "SELECT count(*) FROM hollihop.payments WHERE deleted_at IS NULL");
	assert_int_equal(run_once("sync-faults", extra, &p), 0);
	assert_string_equal(run_field(last_run(), "status"), "complete");
	assert_int_equal(fake_stat("faults_served", NULL), 9);
	assert_int_equal(fake_stat("faults_by_kind", "malformed"), 2);
	assert_int_equal(fake_stat("faults_by_kind", "ratelimit"), 2);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.payments WHERE deleted_at IS NULL"), rows_before);
	free(fake_req("DELETE", "/_fake/faults", NULL, NULL));

	/* A real rate limit (both answer shapes): the client backs off and still completes. */
	fake_post_ok("/_fake/config", "{\"rate_limit\":12,\"rate_window\":1.0,\"rate_limit_status\":200}");
	fake_post_ok("/_fake/reset_stats", "{}");
	char *fast[] = { "CS_HOLLIHOP_RATE=100", "CS_HOLLIHOP_RATE_WINDOW=1s", "CS_HOLLIHOP_RETRIES=30",
	    "CS_HOLLIHOP_ENTITIES=locations,offices,lead_statuses,disciplines,levels,students,"
	    "incomes_and_outgoes", NULL };
	assert_int_equal(run_once("sync-ratelimited", fast, &p), 0);
	assert_string_equal(run_field(last_run(), "status"), "complete");
	assert_true(fake_stat("rate_limited", NULL) > 0);
	/*
	 * Our own window keeps to the account's limit, all of it and no more: configured at the
	 * server's own 30 per 3 s, the server never has to refuse.
	 */
	fake_post_ok("/_fake/config", "{\"rate_limit\":30,\"rate_window\":3.0,\"rate_limit_status\":429}");
	fake_post_ok("/_fake/reset_stats", "{}");
	char *polite[] = { "CS_HOLLIHOP_RATE=30", "CS_HOLLIHOP_RATE_WINDOW=3s", "CS_HOLLIHOP_SWEEP_EVERY=0",
	    "CS_HOLLIHOP_ENTITIES=students,incomes_and_outgoes,student_personal_office_settings", NULL };
	int64_t t0 = h_now_ms();
	assert_int_equal(run_once("sync-polite", polite, &p), 0);
	assert_string_equal(run_field(last_run(), "status"), "complete");
	int64_t n = fake_stat("requests_total", NULL);
	assert_true(n >= 30);
	assert_int_equal(fake_stat("rate_limited", NULL), 0);
	/* no burst at the start (a paced first window), then 30 per 3 s */
	assert_true(h_now_ms() - t0 >= n * 3000 / 30 - 500);
	fake_post_ok("/_fake/config", "{\"rate_limit\":0,\"rate_limit_status\":429}");
}

/* A server that clamps take below ours is still read to the end (no false deletions). */
static void
test_clamped_take_is_read_to_the_end(void **state)
{
	struct h_proc p;
	char *extra[] = { "CS_HOLLIHOP_ENTITIES=students,payments,history_modify_lead_status", NULL };

	(void)state;
	int64_t deleted = h_sql_int(db, "SELECT count(*) FROM hollihop.payments WHERE deleted_at IS NOT NULL");
	fake_post_ok("/_fake/config", "{\"max_take\":7}");
	fake_post_ok("/_fake/reset_stats", "{}");
	assert_int_equal(run_once("sync-clamped", extra, &p), 0);
	fake_post_ok("/_fake/config", "{\"max_take\":10000}");
	assert_string_equal(run_field(last_run(), "status"), "complete");
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.payments WHERE deleted_at IS NULL"),
	    fake_count("GetPayments", NULL, NULL));
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.payments WHERE deleted_at IS NOT NULL"), deleted);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.history_modify_lead_status WHERE deleted_at IS NULL"),
	    fake_count("GetHistoryModifyLeadStatus", NULL, NULL));
	/* ceil(rows / 7) pages, plus the empty one that proves the end. */
	int64_t rows = fake_count("GetPayments", NULL, NULL);
	assert_int_equal(fake_stat("requests", "GetPayments"), rows / 7 + 1 + (rows % 7 != 0));
}

/* A bad authkey fails the run with a clear error; an {"Error"} answer too; nothing deleted. */
static void
test_bad_authkey_and_error_answer_fail_the_run(void **state)
{
	struct h_proc p;
	char *badkey[] = { "CS_HOLLIHOP_AUTHKEY=wrong-key", NULL };

	(void)state;
	int64_t deleted = h_sql_int(db, "SELECT count(*) FROM hollihop.students WHERE deleted_at IS NOT NULL");
	assert_int_equal(run_once("sync-badkey", badkey, &p), 1);
	int64_t run = last_run();
	assert_string_equal(run_field(run, "status"), "failed");
	assert_non_null(strstr(run_field(run, "error"), "authkey refused"));
	assert_non_null(strstr(run_field(run, "error"), "GetLocations"));
	/* The key itself never reaches the logs, under any spelling. */
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "grep -c -e 'fAkE/hollihop' -e 'fAkE%%2Fhollihop' %s/*.log", h_tmpdir());
	FILE *f = popen(cmd, "r");
	char line[512];
	int leaks = 0;
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, "sync-") != NULL && strtol(strrchr(line, ':') + 1, NULL, 10) > 0)
			leaks++;
	if (f != NULL)
		pclose(f);
	assert_int_equal(leaks, 0);

	/* An {"Error": ...} answer of a required method stops the run; optional ones only skip. */
	fake_post_ok("/_fake/faults", "{\"replace\":true,\"faults\":["
	    "{\"method\":\"GetLessonPlans\",\"kind\":\"error_body\",\"message\":\"Метод недоступен\",\"count\":1},"
	    "{\"method\":\"GetPayments\",\"kind\":\"error_body\",\"message\":\"Внутренняя ошибка\",\"count\":1}]}");
	/* One entity at a time, in catalogue order, so the optional method is read before the
	 * required one fails the run (with more in flight, payments goes early: the ledger
	 * waits for it). */
	char *one[] = { "CS_HOLLIHOP_CONCURRENCY=1", NULL };
	assert_int_equal(run_once("sync-error", one, &p), 1);
	run = last_run();
	assert_string_equal(run_field(run, "status"), "failed");
	assert_non_null(strstr(run_field(run, "error"), "GetPayments: Hollihop error (HTTP 200): Внутренняя ошибка"));
	assert_non_null(strstr(run_field(run, "error"), "Метод недоступен"));
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.students WHERE deleted_at IS NOT NULL"), deleted);
	assert_string_equal(sqlf("SELECT last_error IS NOT NULL FROM crmsync.entity_state WHERE crm = 'hollihop' "
	    "AND entity = 'lesson_plans'"), "t");
	free(fake_req("DELETE", "/_fake/faults", NULL, NULL));

	/* And the health responder reports the runs. */
	Crmsync__Envelope *h = NULL;
	char *env[48];
	sync_env(env, 48, NULL);
	assert_int_equal(h_spawn(&p, "sync-health", "services/hollihop-sync/crmsync-hollihop-sync", env, NULL), 0);
	assert_int_equal(h_wait_health(hh_health, 20000), 0);
	assert_int_equal(health_probe(hh_health, 2000, &h), 0);
	assert_string_equal(h->health_response->service, "hollihop-sync");
	assert_true(h->health_response->n_stats > 5);
	bus_free(h);
	assert_int_equal(h_kill(&p, SIGTERM), 0);
}

/* The other spelling of every UNSURE shape (root keys, {Name} objects, {} for empty lists). */
static void
test_alternative_shapes(void **state)
{
	struct h_proc alt, p;
	char url[128], base[256];
	int port;

	(void)state;
	char *argv[] = { "--scale", "tiny", "--seed", "1", "--authkey", KEY, "--rate-limit", "0",
	    "--no-warmup", "--alt-shapes", NULL };
	port = h_fake_start(&alt, "fake-alt", "hollihop", argv, url, sizeof(url));
	assert_true(port > 0);
	snprintf(base, sizeof(base), "CS_HOLLIHOP_BASE_URL=http://127.0.0.1:%d/Api/V2", port);
	char *extra[] = { base, "CS_HOLLIHOP_ENTITIES=client_statuses,employee_statuses,learning_types,"
	    "client_files,student_personal_office_settings", "CS_HOLLIHOP_SWEEP_EVERY=0", NULL };
	char *names = strdup(h_sql(db, "SELECT string_agg(name, ',' ORDER BY name) FROM hollihop.learning_types"));
	int64_t statuses = h_sql_int(db, "SELECT count(*) FROM hollihop.client_statuses WHERE deleted_at IS NULL");
	assert_int_equal(run_once("sync-alt", extra, &p), 0);
	h_kill(&alt, SIGTERM);
	assert_string_equal(run_field(last_run(), "status"), "complete");
	/* Same rows, read from the other shapes; nothing vanished. */
	assert_string_equal(h_sql(db, "SELECT string_agg(name, ',' ORDER BY name) FROM hollihop.learning_types "
	    "WHERE deleted_at IS NULL"), names);
	free(names);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.learning_types WHERE jsonb_typeof(raw) = 'object'"), 5);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.client_statuses WHERE deleted_at IS NULL"), statuses);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.employee_statuses WHERE deleted_at IS NULL"), 3);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.students WHERE deleted_at IS NULL"), 20);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.student_personal_office_settings "
	    "WHERE deleted_at IS NULL"), 20);
	assert_true(h_sql_int(db, "SELECT count(*) FROM hollihop.client_files WHERE deleted_at IS NULL") > 0);
}

/*
 * CS_HOLLIHOP_CONCURRENCY: several entities in flight at once (more than one call at the
 * server at a time, their batches interleaved at the store), and still each entity's pages
 * reach the store in the order they were read: (pass, skip) never goes back.
 */
static void
test_entities_read_concurrently_in_order(void **state)
{
	char *extra[] = { "CS_HOLLIHOP_CONCURRENCY=4", "CS_HOLLIHOP_PAGE_SIZE=4",
	    "CS_HOLLIHOP_SWEEP_EVERY=0", NULL };
	char *env[48], *argv[] = { "--run-now", "-v", NULL };
	struct { char name[64]; int pass; long long skip; } seen[64];
	int nseen = 0, switches = 0, batches = 0, backwards = 0;
	char line[2048], prev[64] = "";
	struct h_proc p;

	(void)state;
	/* Every answer takes 20 ms, as a real server's would: time for the others to ask. */
	fake_post_ok("/_fake/faults", "{\"replace\":true,\"faults\":[{\"method\":\"*\",\"kind\":\"slow\","
	    "\"delay_ms\":20,\"count\":-1}]}");
	free(fake_req("POST", "/_fake/reset_stats", "{}", NULL));
	sync_env(env, 48, extra);
	assert_int_equal(h_spawn(&p, "sync-concurrent", "services/hollihop-sync/crmsync-hollihop-sync",
	    env, argv), 0);
	int rv = wait_exit(&p, 60000);
	free(fake_req("DELETE", "/_fake/faults", NULL, NULL));
	if (rv != 0)
		h_dump_log(&p);
	assert_int_equal(rv, 0);
	assert_string_equal(run_field(last_run(), "status"), "complete");
	assert_true(fake_stat("in_flight_max", NULL) >= 2);

	FILE *f = fopen(p.log, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		char ent[64];
		int pass;
		long long skip;
		const char *b = strstr(line, "ev=export.batch ");
		if (b == NULL || (b = strstr(b, " entity=")) == NULL ||
		    sscanf(b, " entity=%63s pass=%d skip=%lld", ent, &pass, &skip) != 3)
			continue;
		batches++;
		if (prev[0] != '\0' && strcmp(prev, ent) != 0)
			switches++;
		snprintf(prev, sizeof(prev), "%s", ent);
		int k = 0;
		while (k < nseen && strcmp(seen[k].name, ent) != 0)
			k++;
		if (k == nseen && nseen < 64) {
			snprintf(seen[nseen].name, sizeof(seen[nseen].name), "%s", ent);
			seen[nseen].pass = pass;
			seen[nseen++].skip = skip;
			continue;
		}
		if (k < nseen) {
			if (pass < seen[k].pass || (pass == seen[k].pass && skip <= seen[k].skip &&
			    skip != 0)) {
				fprintf(stderr, "%s: batch of pass %d skip %lld after pass %d skip %lld\n", ent,
				    pass, skip, seen[k].pass, seen[k].skip);
				backwards++;
			}
			seen[k].pass = pass;
			seen[k].skip = skip;
		}
	}
	fclose(f);
	/* Pages of one entity in order; entities interleaved (one at a time would switch
	 * exactly once per entity). */
	assert_true(batches > 40);
	assert_int_equal(backwards, 0);
	assert_true(switches > nseen);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.payments WHERE deleted_at IS NULL"),
	    fake_count("GetPayments", NULL, NULL));
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.students WHERE deleted_at IS NULL"),
	    fake_count("GetStudents", NULL, NULL));
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.student_personal_office_settings "
	    "WHERE deleted_at IS NULL"), fake_count("GetStudents", NULL, NULL));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_export_lands_every_method),
		cmocka_unit_test(test_second_export_mirrors_edits_and_deletions),
		cmocka_unit_test(test_nightly_per_client_calls_changed_students_only),
		cmocka_unit_test(test_kill9_halfway_deletes_nothing),
		cmocka_unit_test(test_store_killed_then_rejecting),
		cmocka_unit_test(test_faults_are_retried),
		cmocka_unit_test(test_clamped_take_is_read_to_the_end),
		cmocka_unit_test(test_bad_authkey_and_error_answer_fail_the_run),
		cmocka_unit_test(test_alternative_shapes),
		cmocka_unit_test(test_entities_read_concurrently_in_order),
	};
	return h_done(cmocka_run_group_tests(tests, setup, teardown));
}
