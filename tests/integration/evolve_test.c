/*
 * evolve_test.c - schema evolution and re-derivation from raw, with the real crmsync-store
 * against a real throwaway PostgreSQL.
 *
 * Rows are loaded the way the sync services load them: raw JSON through the normaliser
 * (lib/normalise.c) into batches over NNG. Their tables are then copied aside (schema
 * snap), and each test makes the database look as an older release left it - a column
 * missing, of another type, left over, a child table missing or keyed differently, an
 * entity table keyed differently, a derivation recorded differently, the stored values
 * stale - and restarts the store: every table must come back equal to the copy (what the
 * sync path produced), with the steps recorded. Also: the store serves batches during a
 * re-derivation and a fresh row is never overwritten by it; a store killed halfway
 * resumes; `crmsyncctl rederive` runs the same re-derivation on demand as a run.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <cmocka.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "arena.h"
#include "batch.h"
#include "bus.h"
#include "errors.h"
#include "harness.h"
#include "health.h"
#include "json.h"
#include "normalise.h"

#define NSTUDENTS	300
#define NUNITS		40
#define NHISTORY	60
#define NLEADS		120
#define LINK_FIELD	"Ссылка на amoCRM"
#define TZ_NAME		"Europe/Moscow"
/* Student keys of 1 to 5 digits: key order is numeric order, not text order. */
#define CLIENT_ID(i)	(5 + (i) * 37)

static struct h_pg pg;
static struct h_proc store;
static char store_url[512], health_url[512], dsn_env[700], url_env[600], health_env[600];
static PGconn *db;
static nng_socket sock;
static uint64_t batch_seq = 1000000;

static int
start_store_env(const char *name, char *const extra[])
{
	char *env[16] = { url_env, health_env, dsn_env, "CS_STORE_RECONNECT_MAX=500ms",
	    "CS_HOLLIHOP_TIMEZONE=" TZ_NAME };
	size_t n = 5;

	for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 15; i++)
		env[n++] = extra[i];
	env[n] = NULL;
	if (h_spawn(&store, name, "services/store/crmsync-store", env, NULL) != 0 ||
	    h_wait_ready(health_url, 30000) != 0) {
		h_dump_log(&store);
		return -1;
	}
	return 0;
}

static void
stop_store(void)
{
	int rv = h_kill(&store, SIGTERM);

	if (rv != 0)
		h_dump_log(&store);
	assert_int_equal(rv, 0);
}

/* No job pending any more (the store re-derives in the background). */
static void
wait_rederived(void)
{
	if (h_wait_sql(db, "SELECT count(*) FROM crmsync.rederive_jobs WHERE status = 'pending'", "0",
	    60000) != 0) {
		h_dump_log(&store);
		fail();
	}
}

/* Normalise raw JSON rows of one entity as a sync service does, and send them as a batch. */
static uint32_t
load(enum cat_crm crm, const char *entity, char **rows, size_t n, const char *ctx_name,
    const char *ctx_value)
{
	uint32_t applied;
	const struct cat_entity *e = catalog_find(crm, entity);
	Crmsync__RecordBatch b = CRMSYNC__RECORD_BATCH__INIT;
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT, *ack = NULL;
	struct json *js = calloc(n, sizeof(*js));
	struct norm_ctx ctx = { 0 };
	struct arena a;
	char err[256];

	assert_non_null(e);
	arena_init(&a, 256u << 20);
	norm_ctx_set(&ctx, NORM_CTX_AMO_LEAD_FIELD, LINK_FIELD);
	if (ctx_name != NULL)
		norm_ctx_set(&ctx, ctx_name, ctx_value);
	b.crm = (Crmsync__Crm)crm;
	b.entity = (char *)entity;
	b.batch_id = batch_seq++;
	b.replace_children = 1;
	b.records = calloc(n, sizeof(*b.records));
	for (size_t i = 0; i < n; i++) {
		b.records[i] = arena_alloc(&a, sizeof(Crmsync__Record));
		assert_int_equal(json_parse(&js[i], rows[i], strlen(rows[i]), 100000), 0);
		if (normalise_row(e, &js[i], 0, &ctx, &a, b.records[i], NULL, err, sizeof(err)) != 0) {
			fprintf(stderr, "normalise %s: %s\n", rows[i], err);
			fail();
		}
	}
	b.n_records = n;
	env.body_case = CRMSYNC__ENVELOPE__BODY_BATCH;
	env.batch = &b;
	assert_int_equal(bus_call_ack(sock, &env, &ack, 10000, h_now_ms() + 30000, NULL), 0);
	if (ack->ack->status != CRMSYNC__ACK_STATUS__ACK_OK) {
		fprintf(stderr, "batch %s: %s\n", entity, ack->ack->error);
		fail();
	}
	applied = ack->ack->applied;
	bus_free(ack);
	for (size_t i = 0; i < n; i++)
		json_free(&js[i]);
	free(js);
	free(b.records);
	arena_free(&a);
	return applied;
}

static char *
student(int i, const char *updated, const char *first)
{
	char *s = malloc(1024);

	snprintf(s, 1024, "{\"ClientId\":%d,\"Id\":%d,\"FirstName\":\"%s %d\",\"LastName\":\"Петров\","
	    "\"Updated\":\"%s\",\"Created\":\"2023-01-0%dT09:30:00\",\"Gender\":%s,\"Birthday\":\"2010-05-%02d\","
	    "\"StatusId\":2,\"Status\":\"Занимается\",\"LearningTypes\":[\"Групповые\",\"Онлайн\"],"
	    "\"ExtraFields\":[{\"Name\":\"Другое\",\"Value\":\"x\"},{\"Name\":\"" LINK_FIELD "\",\"Value\":"
	    "\"https://school.amocrm.ru/leads/detail/%d\"},{\"Name\":\"Ссылка на Мой класс\",\"Value\":"
	    "\"https://x/leads/detail/%d\"}],\"Agents\":[{\"FirstName\":\"Мама\",\"WhoIs\":\"мать\","
	    "\"Mobile\":\"+7900%07d\"},{\"FirstName\":\"Папа\",\"WhoIs\":\"отец\"}],"
	    "\"OfficesAndCompanies\":[{\"Id\":%d,\"Name\":\"Офис %d\"}]}", CLIENT_ID(i), 50000 + i, first, i,
	    updated, 1 + i % 9, i % 2 ? "true" : "false", 1 + i % 28, 700000 + i, 900000 + i, i, 1 + i % 3,
	    1 + i % 3);
	return s;
}

static uint32_t
load_students(int from, int to, const char *updated, const char *first)
{
	uint32_t applied;
	size_t n = (size_t)(to - from);
	char **rows = calloc(n, sizeof(char *));

	for (int i = from; i < to; i++)
		rows[i - from] = student(i, updated, first);
	applied = load(CAT_HOLLIHOP, "students", rows, n, NULL, NULL);
	for (size_t i = 0; i < n; i++)
		free(rows[i]);
	free(rows);
	return applied;
}

static void
load_all(void)
{
	char *rows[NLEADS];

	load_students(0, NSTUDENTS, "2024-03-01T10:00:00", "Имя");
	for (int pass = 0; pass < 2; pass++) {
		int n = 0;
		for (int i = pass; i < NUNITS; i += 2) {
			rows[n] = malloc(1024);
			snprintf(rows[n++], 1024, "{\"Id\":%d,\"Type\":\"Group\",\"Name\":\"Группа %d\","
			    "\"OfficeOrCompanyId\":1,\"Days\":[{\"Date\":\"2024-03-0%d\",\"Minutes\":90,\"Pass\":false},"
			    "{\"Date\":\"2024-03-1%d\",\"Minutes\":45,\"Pass\":true}],\"ScheduleItems\":[{\"Id\":%d,"
			    "\"BeginDate\":\"2024-01-01\",\"BeginTime\":\"10:00\",\"EndTime\":\"11:30\",\"Weekdays\":5,"
			    "\"TeacherIds\":[7,8]}]}", 200 + i, i, 1 + i % 9, i % 10, 9000 + i);
		}
		load(CAT_HOLLIHOP, "ed_units", rows, (size_t)n, "statuses", pass ? "Stopped" : "Working");
		for (int i = 0; i < n; i++)
			free(rows[i]);
	}
	for (int i = 0; i < NHISTORY; i++) {
		rows[i] = malloc(512);
		/* (LeadId, DateTime) is unique: an older key of this table could be just that. */
		snprintf(rows[i], 512, "{\"LeadId\":%d,\"DateTime\":\"2024-02-%02dT1%d:00:00\",\"AfterId\":%d,"
		    "\"AfterName\":\"Этап %d\"}", 300 + i / 3, 1 + i % 3, i % 10, 1 + i % 5, 1 + i % 5);
	}
	load(CAT_HOLLIHOP, "history_modify_lead_status", rows, NHISTORY, NULL, NULL);
	for (int i = 0; i < NHISTORY; i++)
		free(rows[i]);
	for (int i = 0; i < NLEADS; i++) {
		rows[i] = malloc(1024);
		snprintf(rows[i], 1024, "{\"id\":%d,\"name\":\"Сделка %d\",\"price\":%d,\"status_id\":142,"
		    "\"pipeline_id\":7,\"updated_at\":%d,\"created_at\":1700000000,\"custom_fields_values\":["
		    "{\"field_id\":11,\"field_name\":\"Источник\",\"field_code\":null,\"field_type\":\"select\","
		    "\"values\":[{\"value\":\"Сайт\",\"enum_id\":5}]},{\"field_id\":12,\"field_name\":\"Бюджет\","
		    "\"field_code\":null,\"field_type\":\"numeric\",\"values\":[{\"value\":\"%d.50\"}]}],"
		    "\"_embedded\":{\"tags\":[{\"id\":3,\"name\":\"vip\"}],\"contacts\":[{\"id\":%d,\"is_main\":true}]}}",
		    700000 + i, i, 1000 * i, 1700000100 + i, i, 80000 + i);
	}
	load(CAT_AMO, "leads", rows, NLEADS, NULL, NULL);
	for (int i = 0; i < NLEADS; i++)
		free(rows[i]);
}

/* The tables the tests change, copied aside as the sync path wrote them. */
static const char *const tables[] = {
	"hollihop.students", "hollihop.student_agents", "hollihop.student_offices",
	"hollihop.student_extra_fields", "hollihop.ed_units", "hollihop.ed_unit_days",
	"hollihop.ed_unit_schedule_items", "hollihop.history_modify_lead_status", "amo.leads",
	"amo.custom_field_values", "amo.entity_tags", "amo.lead_contacts",
};

/* Rows of t that differ from its copy, either way (columns both have; not the hash, synced_at). */
static int64_t
diff(const char *t)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "SELECT snap.diff('%s')", t);
	return h_sql_int(db, sql);
}

static void
assert_all_equal(void)
{
	for (size_t i = 0; i < nitems(tables); i++) {
		int64_t d = diff(tables[i]);
		if (d != 0) {
			fprintf(stderr, "%s: %lld rows differ from what the sync path wrote\n", tables[i],
			    (long long)d);
			h_dump_log(&store);
		}
		assert_int_equal(d, 0);
	}
}

/* Wait until the store's health status line holds want (and says ok); 0 or -1. */
static int
wait_status(const char *want)
{
	int64_t end = h_now_ms() + 15000;
	char last[512] = "";

	while (h_now_ms() < end) {
		Crmsync__Envelope *h = NULL;
		if (health_probe(health_url, 2000, &h) == 0) {
			int ok = h->health_response->ok && strstr(h->health_response->status, want) != NULL;
			snprintf(last, sizeof(last), "%s", h->health_response->status);
			bus_free(h);
			if (ok)
				return 0;
		}
		nng_msleep(20);
	}
	fprintf(stderr, "store status never held \"%s\"; last \"%s\"\n", want, last);
	return -1;
}

static int64_t
steps(const char *tbl, const char *action)
{
	char sql[512];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM crmsync.schema_steps WHERE tbl = '%s' AND action = '%s'",
	    tbl, action);
	return h_sql_int(db, sql);
}

static int
setup(void **state)
{
	(void)state;
	if (normalise_set_timezone(TZ_NAME) != 0 || h_pg_start(&pg) != 0)
		return -1;
	snprintf(store_url, sizeof(store_url), "%s", h_url("store"));
	snprintf(health_url, sizeof(health_url), "%s", h_url("store-health"));
	snprintf(url_env, sizeof(url_env), "CS_STORE_URL=%s", store_url);
	snprintf(health_env, sizeof(health_env), "CS_STORE_HEALTH_URL=%s", health_url);
	snprintf(dsn_env, sizeof(dsn_env), "CS_PG_DSN=%s", pg.dsn);
	if ((db = h_connect(&pg)) == NULL || start_store_env("store", NULL) != 0 ||
	    bus_dial(&sock, store_url, BUS_RECVMAX_DEFAULT) != 0)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	int rv;

	bus_close(sock);
	if ((rv = h_kill(&store, SIGTERM)) != 0) {
		fprintf(stderr, "store exited with %d\n", rv);
		h_dump_log(&store);
	}
	PQfinish(db);
	return h_pg_stop(&pg, 0) != 0 || rv != 0 ? -1 : 0;
}

static void
test_fresh_database_records_derivations(void **state)
{
	(void)state;
	/* Every entity's derivation is recorded; an empty database has nothing to re-derive. */
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM crmsync.catalog_state"),
	    (int64_t)(catalog_crm(CAT_AMO)->nentities + catalog_crm(CAT_HOLLIHOP)->nentities));
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM crmsync.rederive_jobs"), 0);
	assert_string_equal(h_sql(db, "SELECT descriptor->'ctx'->>'amo_lead_field' FROM crmsync.catalog_state "
	    "WHERE entity = 'students'"), LINK_FIELD);
	load_all();
	/* A soft-deleted row: it must stay deleted whatever is re-derived. */
	assert_int_equal(h_sql_exec(db, "UPDATE hollihop.students SET deleted_at = now() WHERE client_id = 264; "
	    "UPDATE hollihop.history_modify_lead_status SET deleted_at = now() WHERE lead_id = 301"), 0);
	assert_true(h_sql_int(db, "SELECT count(amo_lead_id) FROM hollihop.students") == NSTUDENTS);
	assert_int_equal(h_sql_exec(db, "CREATE SCHEMA snap; "
	    "CREATE FUNCTION snap.diff(t text) RETURNS bigint LANGUAGE plpgsql AS $$ DECLARE cols text; n bigint; "
	    "s text := split_part(t, '.', 1); b text := split_part(t, '.', 2); BEGIN "
	    "SELECT string_agg(quote_ident(c.column_name), ', ') INTO cols FROM information_schema.columns c "
	    "WHERE c.table_schema = s AND c.table_name = b AND c.column_name NOT IN ('content_hash', 'synced_at') "
	    "AND EXISTS (SELECT 1 FROM information_schema.columns x WHERE x.table_schema = 'snap' "
	    "AND x.table_name = s || '_' || b AND x.column_name = c.column_name); "
	    "EXECUTE format('SELECT count(*) FROM ((SELECT %1$s FROM %2$s EXCEPT ALL SELECT %1$s FROM snap.%3$I) "
	    "UNION ALL (SELECT %1$s FROM snap.%3$I EXCEPT ALL SELECT %1$s FROM %2$s)) d', cols, t, s || '_' || b) "
	    "INTO n; RETURN n; END $$"), 0);
	for (size_t i = 0; i < nitems(tables); i++) {
		char sql[256];
		snprintf(sql, sizeof(sql), "CREATE TABLE snap.%.*s_%s AS SELECT * FROM %s",
		    (int)(strchr(tables[i], '.') - tables[i]), tables[i], strchr(tables[i], '.') + 1, tables[i]);
		assert_int_equal(h_sql_exec(db, sql), 0);
		assert_int_equal(diff(tables[i]), 0);
	}
}

/* What an older release left: columns missing, retyped, left over; stale typed values. */
static void
test_columns_added_retyped_dropped(void **state)
{
	(void)state;
	stop_store();
	assert_int_equal(h_sql_exec(db,
	    "ALTER TABLE hollihop.students DROP COLUMN amo_lead_id, DROP COLUMN middle_name; "
	    "ALTER TABLE hollihop.student_agents DROP COLUMN mobile; "
	    /* converted by a cast */
	    "ALTER TABLE hollihop.students ALTER COLUMN status_id TYPE text; "
	    /* no cast fits: emptied, then refilled from raw */
	    "ALTER TABLE hollihop.students ALTER COLUMN birthday TYPE text USING 'garbage'; "
	    /* left over from an older catalogue; one is held by an analyst's view */
	    "ALTER TABLE hollihop.students ADD COLUMN legacy_flag boolean DEFAULT true; "
	    "ALTER TABLE hollihop.ed_units ADD COLUMN updated timestamptz DEFAULT now(); "
	    "CREATE VIEW public.analyst_view AS SELECT id, updated FROM hollihop.ed_units; "
	    /* stale values a re-derivation must not leave behind */
	    "UPDATE hollihop.students SET first_name = 'stale', updated = NULL WHERE client_id < 3705"), 0);
	assert_int_equal(start_store_env("store-columns", NULL), 0);
	wait_rederived();
	assert_all_equal();
	assert_int_equal(steps("hollihop.students", "add_column"), 2);
	assert_int_equal(steps("hollihop.student_agents", "add_column"), 1);
	assert_int_equal(steps("hollihop.students", "retype_column"), 2);
	assert_string_equal(h_sql(db, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE "
	    "attrelid = 'hollihop.students'::regclass AND attname = 'birthday'"), "date");
	assert_int_equal(h_sql_int(db, "SELECT rows FROM crmsync.schema_steps WHERE action = 'drop_column' "
	    "AND detail LIKE 'legacy_flag%'"), NSTUDENTS);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM information_schema.columns WHERE "
	    "table_schema = 'hollihop' AND table_name = 'students' AND column_name = 'legacy_flag'"), 0);
	/* Kept for the view, emptied, commented. */
	assert_int_equal(steps("hollihop.ed_units", "keep_column"), 1);
	assert_int_equal(h_sql_int(db, "SELECT count(updated) FROM hollihop.ed_units"), 0);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM public.analyst_view"), NUNITS);
	/* Deleted stays deleted; every added column holds values. */
	assert_string_equal(h_sql(db, "SELECT deleted_at IS NOT NULL FROM hollihop.students WHERE client_id = 264"), "t");
	assert_int_equal(h_sql_int(db, "SELECT count(amo_lead_id) FROM hollihop.students"), NSTUDENTS);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM crmsync.sync_runs WHERE kind = 'rederive' "
	    "AND trigger = 'upgrade' AND status = 'complete' AND context->>'tz' = '" TZ_NAME "'"), 1);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM crmsync.schema_steps WHERE action = 'rederive' "
	    "AND tbl = 'hollihop.students' AND rows = " "300"), 1);
	/* A restart with nothing changed does nothing. */
	int64_t nsteps = h_sql_int(db, "SELECT count(*) FROM crmsync.schema_steps");
	stop_store();
	assert_int_equal(start_store_env("store-again", NULL), 0);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM crmsync.schema_steps"), nsteps);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM crmsync.rederive_jobs WHERE status = 'pending'"), 0);
}

/* Child tables missing or keyed differently; a shared child table changed for every parent. */
static void
test_child_tables(void **state)
{
	(void)state;
	stop_store();
	assert_int_equal(h_sql_exec(db, "DROP TABLE hollihop.student_offices; "
	    "ALTER TABLE hollihop.ed_unit_days DROP CONSTRAINT ed_unit_days_pkey, ADD PRIMARY KEY (ed_unit_id, date, idx); "
	    "ALTER TABLE amo.custom_field_values DROP COLUMN enum_code; "
	    "DELETE FROM amo.custom_field_values WHERE entity_id % 2 = 0"), 0);
	assert_int_equal(start_store_env("store-children", NULL), 0);
	wait_rederived();
	assert_all_equal();
	assert_int_equal(steps("hollihop.student_offices", "create_table"), 1);
	assert_int_equal(steps("hollihop.ed_unit_days", "recreate_table"), 1);
	assert_non_null(strstr(h_sql(db, "SELECT reason FROM crmsync.rederive_jobs WHERE entity = 'leads' "
	    "ORDER BY id DESC LIMIT 1"), "custom_field_values"));
}

/* The entity's key changed: the table is rebuilt from its rows, deleted ones stay deleted. */
static void
test_key_change_rebuilds(void **state)
{
	(void)state;
	stop_store();
	assert_int_equal(h_sql_exec(db, "ALTER TABLE hollihop.history_modify_lead_status "
	    "DROP CONSTRAINT history_modify_lead_status_pkey, ADD PRIMARY KEY (lead_id, date_time)"), 0);
	/* Slowly, so that a batch for it arrives while it is rebuilt: that batch must wait. */
	assert_int_equal(start_store_env("store-rebuild", (char *[]){ "CS_STORE_REDERIVE_ROWS=5",
	    "CS_STORE_REDERIVE_PAUSE=150ms", NULL }), 0);
	struct h_batch *b = h_batch_new(CAT_HOLLIHOP, "history_modify_lead_status", 0);
	h_rec(b, "{\"LeadId\":1,\"DateTime\":\"2024-01-01T10:00:00\",\"AfterId\":1}", 0, 0, "lead_id", "1",
	    "date_time", "2024-01-01 07:00:00+00", "after_id", "1", NULL);
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT, *rep = NULL;
	env.body_case = CRMSYNC__ENVELOPE__BODY_BATCH;
	env.batch = h_batch_msg(b);
	assert_int_equal(bus_call(sock, &env, &rep, 10000), 0);
	assert_int_equal(rep->ack->status, CRMSYNC__ACK_STATUS__ACK_RETRY);
	assert_non_null(strstr(rep->ack->error, "rebuilt"));
	bus_free(rep);
	h_batch_free(b);
	assert_int_equal(wait_status("upgrading: rebuilding hollihop.history_modify_lead_status"), 0);
	wait_rederived();
	assert_all_equal();
	assert_string_equal(h_sql(db, "SELECT string_agg(a.attname, ',' ORDER BY k.ord) FROM pg_index i "
	    "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord) JOIN pg_attribute a "
	    "ON a.attrelid = i.indrelid AND a.attnum = k.attnum WHERE i.indrelid = "
	    "'hollihop.history_modify_lead_status'::regclass AND i.indisprimary"), "lead_id,date_time,after_id");
	assert_int_equal(steps("hollihop.history_modify_lead_status", "rebuild_table"), 1);
	assert_int_equal(steps("hollihop.history_modify_lead_status__rebuild", "drop_table"), 1);
	assert_string_equal(h_sql(db, "SELECT to_regclass('hollihop.history_modify_lead_status__rebuild') IS NULL"), "t");
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.history_modify_lead_status "
	    "WHERE deleted_at IS NOT NULL"), 3);
}

/* A derivation recorded differently (a mapping, the normaliser, a context value changed). */
static void
test_derivation_change(void **state)
{
	(void)state;
	stop_store();
	assert_int_equal(h_sql_exec(db, "UPDATE crmsync.catalog_state SET descriptor = jsonb_set(descriptor, "
	    "'{cols,name}', '\"Title text 0 t3\"') WHERE crm = 'hollihop' AND entity = 'ed_units'; "
	    "UPDATE crmsync.catalog_state SET descriptor = jsonb_set(descriptor, '{nv}', '0') WHERE entity = 'leads'; "
	    "UPDATE hollihop.ed_units SET name = 'stale', source_updated_at = now(); "
	    "UPDATE amo.leads SET name = 'stale', updated_at = NULL WHERE id % 3 = 0"), 0);
	assert_int_equal(start_store_env("store-derivation", NULL), 0);
	wait_rederived();
	/* The call's own value (the statuses= pass) is not in raw: kept as stored. */
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.ed_units WHERE status = 'Stopped'"), NUNITS / 2);
	assert_all_equal();
	assert_string_equal(h_sql(db, "SELECT reason FROM crmsync.rederive_jobs WHERE entity = 'ed_units' "
	    "ORDER BY id DESC LIMIT 1"), "columns: name");

	/* Another link field: students are re-derived with it, and with the old one again. */
	stop_store();
	assert_int_equal(start_store_env("store-context", (char *[]){
	    "CS_HOLLIHOP_AMO_LEAD_FIELD=Ссылка на Мой класс", NULL }), 0);
	wait_rederived();
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.students WHERE amo_lead_id = 900000 + (client_id - 5) / 37"),
	    NSTUDENTS);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM crmsync.sync_runs WHERE kind = 'rederive' AND "
	    "context->>'amo_lead_field' = 'Ссылка на Мой класс'"), 1);
	stop_store();
	assert_int_equal(start_store_env("store-context-back", NULL), 0);
	wait_rederived();
	assert_all_equal();
}

/* Batches keep flowing during a re-derivation; a row a sync wrote meanwhile is not overwritten. */
static void
test_serves_and_keeps_fresh_rows(void **state)
{
	(void)state;
	stop_store();
	assert_int_equal(h_sql_exec(db, "ALTER TABLE hollihop.students DROP COLUMN amo_lead_id"), 0);
	assert_int_equal(start_store_env("store-serving", (char *[]){ "CS_STORE_REDERIVE_ROWS=10",
	    "CS_STORE_REDERIVE_PAUSE=100ms", NULL }), 0);
	/* The last students (last in key order, re-derived last) change in the CRM now. */
	assert_int_equal(load_students(NSTUDENTS - 20, NSTUDENTS, "2024-04-01T12:00:00", "Новое"), 20);
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM crmsync.rederive_jobs WHERE status = 'pending'"), 1);
	assert_int_equal(wait_status("upgrading: re-deriving hollihop.students"), 0);
	wait_rederived();
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM hollihop.students WHERE first_name LIKE 'Новое %'"), 20);
	assert_int_equal(h_sql_int(db, "SELECT count(amo_lead_id) FROM hollihop.students"), NSTUDENTS);
	/* Only the 20 changed students differ from before (both ways), their children not. */
	assert_int_equal(diff("hollihop.students"), 40);
	assert_int_equal(diff("hollihop.student_agents"), 0);
	assert_int_equal(h_sql_int(db, "SELECT rows_skipped + rows_read FROM crmsync.rederive_jobs ORDER BY id DESC "
	    "LIMIT 1"), NSTUDENTS - 20);
	/* The fresh rows kept the hash of what the CRM sent: sending it again changes nothing. */
	assert_int_equal(load_students(NSTUDENTS - 20, NSTUDENTS, "2024-04-01T12:00:00", "Новое"), 0);
	assert_int_equal(h_sql_exec(db, "DROP TABLE snap.hollihop_students; "
	    "CREATE TABLE snap.hollihop_students AS SELECT * FROM hollihop.students"), 0);
}

/* kill -9 halfway: the job resumes where it stopped and finishes. */
static void
test_killed_store_resumes(void **state)
{
	(void)state;
	stop_store();
	assert_int_equal(h_sql_exec(db, "ALTER TABLE hollihop.students DROP COLUMN amo_lead_id; "
	    "UPDATE hollihop.students SET first_name = 'stale'"), 0);
	assert_int_equal(start_store_env("store-killed", (char *[]){ "CS_STORE_REDERIVE_ROWS=7",
	    "CS_STORE_REDERIVE_PAUSE=20ms", NULL }), 0);
	assert_int_equal(h_wait_sql(db, "SELECT rows_read > 50 FROM crmsync.rederive_jobs WHERE status = 'pending'",
	    "t", 30000), 0);
	h_kill(&store, SIGKILL);
	int64_t read = h_sql_int(db, "SELECT rows_read FROM crmsync.rederive_jobs WHERE status = 'pending'");
	assert_true(read > 50 && read < NSTUDENTS);
	assert_true(h_sql_int(db, "SELECT count(*) FROM hollihop.students WHERE first_name = 'stale'") > 0);
	assert_int_equal(start_store_env("store-resumed", NULL), 0);
	wait_rederived();
	assert_all_equal();
	/* It went on from its position: rows read once in all, not twice. */
	assert_int_equal(h_sql_int(db, "SELECT rows_read FROM crmsync.rederive_jobs ORDER BY id DESC LIMIT 1"), NSTUDENTS);
	assert_string_equal(h_sql(db, "SELECT status FROM crmsync.sync_runs WHERE kind = 'rederive' ORDER BY id DESC LIMIT 1"),
	    "complete");
}

/* crmsyncctl rederive: on demand, as a run; a second request while one is pending is refused. */
static void
test_rederive_on_demand(void **state)
{
	char out[512], cmd[2048];

	(void)state;
	assert_int_equal(h_sql_exec(db, "UPDATE hollihop.students SET first_name = 'stale', amo_lead_id = NULL; "
	    "DELETE FROM hollihop.student_agents"), 0);
	snprintf(cmd, sizeof(cmd), "CS_STORE_URL=%s CS_STORE_HEALTH_URL=%s CS_CTL_PG_DSN='%s' %s/tools/crmsyncctl/crmsyncctl "
	    "rederive hollihop students 2>&1", store_url, health_url, pg.dsn, getenv("CS_BUILD_DIR"));
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	size_t n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	int rc = pclose(f);
	if (rc != 0)
		fprintf(stderr, "%s\n", out);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "complete"));
	assert_all_equal();
	assert_int_equal(h_sql_int(db, "SELECT count(*) FROM crmsync.sync_runs WHERE kind = 'rederive' AND "
	    "trigger = 'crmsyncctl' AND status = 'complete' AND entities = '{students}'"), 1);
	assert_string_equal(h_sql(db, "SELECT rows_read || '/' || rows_written FROM crmsync.rederive_jobs "
	    "ORDER BY id DESC LIMIT 1"), "300/300");
	/* Unknown entities are refused before anything is sent. */
	snprintf(cmd, sizeof(cmd), "CS_STORE_URL=%s %s/tools/crmsyncctl/crmsyncctl rederive hollihop nosuch "
	    ">/dev/null 2>&1", store_url, getenv("CS_BUILD_DIR"));
	assert_int_equal(WEXITSTATUS(system(cmd)), 2);
}

/* A value PostgreSQL refuses (an analyst's CHECK) costs that row only, not the job. */
static void
test_refused_row_skipped(void **state)
{
	char cmd[2048];

	(void)state;
	assert_int_equal(h_sql_exec(db, "ALTER TABLE hollihop.students ADD CONSTRAINT not_three "
	    "CHECK (first_name <> 'Имя 3') NOT VALID"), 0);
	snprintf(cmd, sizeof(cmd), "CS_STORE_URL=%s CS_STORE_HEALTH_URL=%s CS_CTL_PG_DSN='%s' %s/tools/crmsyncctl/crmsyncctl "
	    "rederive hollihop students >/dev/null 2>&1", store_url, health_url, pg.dsn, getenv("CS_BUILD_DIR"));
	assert_int_equal(system(cmd), 0);
	assert_string_equal(h_sql(db, "SELECT rows_read || '/' || rows_written || '/' || rows_unreadable "
	    "FROM crmsync.rederive_jobs ORDER BY id DESC LIMIT 1"), "300/299/1");
	assert_int_equal(h_sql_exec(db, "ALTER TABLE hollihop.students DROP CONSTRAINT not_three"), 0);
	assert_all_equal();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fresh_database_records_derivations),
		cmocka_unit_test(test_columns_added_retyped_dropped),
		cmocka_unit_test(test_child_tables),
		cmocka_unit_test(test_key_change_rebuilds),
		cmocka_unit_test(test_derivation_change),
		cmocka_unit_test(test_serves_and_keeps_fresh_rows),
		cmocka_unit_test(test_killed_store_resumes),
		cmocka_unit_test(test_rederive_on_demand),
		cmocka_unit_test(test_refused_row_skipped),
	};
	return h_done(cmocka_run_group_tests(tests, setup, teardown));
}
