/*
 * backfill_bench.c - how fast the store re-derives a column from stored raw JSON after an
 * upgrade, next to how fast the same rows went in through its apply path, in one run on
 * one throwaway cluster:
 *   1. apply: N Hollihop payments and M amoCRM leads (with custom fields and tags),
 *      normalised by the catalogue as the sync services do, sent over NNG in batches to
 *      crmsync-store (new rows: the first full sync's store side);
 *   2. upgrade: the store is stopped, one typed column of each table dropped (payments.value,
 *      leads.price: what a database from a release without that column looks like), and
 *      the store started again: it adds the columns and re-derives both tables from raw in
 *      the background (rederive_jobs.started_at .. finished_at per table);
 *   3. on demand: `crmsyncctl rederive amo leads` - every column and child row of the
 *      leads re-derived (RederiveRequest over NNG), timed the same way.
 * Usage: backfill_bench [payments=500000] [leads=200000] [batch=2000]  (CS_BUILD_DIR = build dir)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "bus.h"
#include "clock.h"
#include "harness.h"
#include "normalise.h"

static double
now_s(void)
{
	return (double)clock_mono_us() / 1e6;
}

/* Normalise rows[0..n) of entity e; the records, or NULL. */
static Crmsync__Record *
derive(const struct cat_entity *e, char **rows, long n, struct arena *a)
{
	Crmsync__Record *recs = calloc((size_t)n, sizeof(*recs));

	for (long i = 0; i < n; i++) {
		struct json j;
		char err[256];
		if (json_parse(&j, rows[i], strlen(rows[i]), 4096) != 0 ||
		    normalise_row(e, &j, 0, NULL, a, &recs[i], NULL, err, sizeof(err)) != 0) {
			fprintf(stderr, "%s row %ld: %s\n", e->name, i, err);
			return NULL;
		}
		json_free(&j);
	}
	return recs;
}

/* Send every record to the store in batches; seconds taken, or -1. */
static double
send_all(nng_socket sock, enum cat_crm crm, const char *entity, Crmsync__Record *recs, long rows,
    long batch)
{
	Crmsync__Record **ptrs = malloc((size_t)batch * sizeof(*ptrs));
	static uint64_t id = 1;
	double t0 = now_s();

	for (long off = 0; off < rows; off += batch) {
		Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT;
		Crmsync__RecordBatch rb = CRMSYNC__RECORD_BATCH__INIT;
		long n = rows - off < batch ? rows - off : batch;
		for (long k = 0; k < n; k++)
			ptrs[k] = &recs[off + k];
		rb.crm = (Crmsync__Crm)crm;
		rb.entity = (char *)entity;
		rb.batch_id = id++;
		rb.records = ptrs;
		rb.n_records = (size_t)n;
		rb.replace_children = 1;
		env.body_case = CRMSYNC__ENVELOPE__BODY_BATCH;
		env.batch = &rb;
		if (bus_call_ack(sock, &env, NULL, 60000, 600000, NULL) != 0) {
			fprintf(stderr, "batch at %ld failed\n", off);
			free(ptrs);
			return -1;
		}
	}
	free(ptrs);
	return now_s() - t0;
}

static const char *const names[] = { "Иван Петров", "Мария Смирнова", "Алексей Кузнецов", "Ольга Попова" };

static char *
gen_payment(long i)
{
	char *s = malloc(768);

	snprintf(s, 768, "{\"Id\":%ld,\"Created\":\"2024-%02ld-%02ldT1%ld:45:12\",\"Type\":\"%s\","
	    "\"Date\":\"2024-%02ld-%02ld\",\"PaidDate\":\"2024-%02ld-%02ld\",\"State\":\"Paid\","
	    "\"OfficeOrCompanyId\":%ld,\"OfficeOrCompanyName\":\"Филиал %ld\",\"ClientId\":%ld,"
	    "\"ClientName\":\"%s\",\"Value\":\"%s%ld\u00a0%03ld,%02ld руб.\",\"ValueQuantity\":%s%ld%03ld.%02ld,"
	    "\"ValueCurrency\":\"Рубли\",\"PaymentMethodId\":%ld,\"PaymentMethodName\":\"Безналичные\","
	    "\"Description\":\"Абонемент, месяц %ld\"}",
	    i, 1 + i % 12, 1 + i % 28, i % 10, i % 17 ? "Обучение" : "Возврат", 1 + i % 12, 1 + i % 28,
	    1 + i % 12, 1 + (i + 2) % 28, 1 + i % 9, 1 + i % 9, 10000 + i % 100000, names[i % 4],
	    i % 17 ? "" : "-", 1 + i % 90, i % 1000, i % 100, i % 17 ? "" : "-", 1 + i % 90, i % 1000,
	    i % 100, 1 + i % 3, i % 12);
	return s;
}

static char *
gen_lead(long i)
{
	char *s = malloc(1024);

	snprintf(s, 1024, "{\"id\":%ld,\"name\":\"Сделка: курс английского для %s\",\"price\":%ld,"
	    "\"responsible_user_id\":%ld,\"group_id\":0,\"status_id\":%ld,\"pipeline_id\":%ld,"
	    "\"loss_reason_id\":null,\"created_by\":%ld,\"updated_by\":0,\"created_at\":%ld,"
	    "\"updated_at\":%ld,\"closed_at\":null,\"closest_task_at\":%ld,\"is_deleted\":false,"
	    "\"custom_fields_values\":[{\"field_id\":%d,\"field_name\":\"Источник\",\"field_code\":null,"
	    "\"field_type\":\"select\",\"values\":[{\"value\":\"Сайт\",\"enum_id\":%d}]},"
	    "{\"field_id\":%d,\"field_name\":\"Уровень\",\"field_code\":null,\"field_type\":\"text\","
	    "\"values\":[{\"value\":\"Intermediate B1\"}]}],\"score\":null,\"account_id\":28888888,"
	    "\"_links\":{\"self\":{\"href\":\"https://school.amocrm.ru/api/v4/leads/%ld\"}},"
	    "\"_embedded\":{\"tags\":[{\"id\":%ld,\"name\":\"весна-2024\",\"color\":null}],"
	    "\"companies\":[]}}",
	    i, names[i % 4], 10000 + (i % 50) * 1000, 1000 + i % 20, 142 + i % 30, 5000 + i % 5,
	    1000 + i % 20, 1700000000 + i, 1700000000 + i, 1710000000 + i, 300 + (int)(i % 3),
	    500 + (int)(i % 7), 301, i, 7000 + i % 40);
	return s;
}

/* Seconds between started_at and finished_at of the newest job of entity, once it is done. */
static double
job_secs(PGconn *db, const char *entity, long *rows)
{
	char sql[512];
	const char *v;

	snprintf(sql, sizeof(sql), "SELECT extract(epoch FROM finished_at - started_at) || ' ' || rows_written "
	    "FROM crmsync.rederive_jobs WHERE entity = '%s' AND status = 'done' ORDER BY id DESC LIMIT 1", entity);
	if ((v = h_sql(db, sql)) == NULL || *v == '\0')
		return -1;
	*rows = atol(strchr(v, ' ') + 1);
	return atof(v);
}

int
main(int argc, char **argv)
{
	long npay = argc > 1 ? atol(argv[1]) : 500000;
	long nlead = argc > 2 ? atol(argv[2]) : 200000;
	long batch = argc > 3 ? atol(argv[3]) : 2000;
	const struct cat_entity *pe = catalog_find(CAT_HOLLIHOP, "payments"), *le = catalog_find(CAT_AMO, "leads");
	static struct h_pg pg;
	struct h_proc store;
	char url[512], hurl[512], env_url[600], env_h[600], env_dsn[800];
	struct arena a;
	nng_socket sock;

	if (npay < 1 || nlead < 1 || batch < 1 || normalise_set_timezone("Europe/Moscow") != 0 || h_pg_start(&pg) != 0)
		return 1;
	snprintf(url, sizeof(url), "%s", h_url("bench-store"));
	snprintf(hurl, sizeof(hurl), "%s", h_url("bench-store-health"));
	snprintf(env_url, sizeof(env_url), "CS_STORE_URL=%s", url);
	snprintf(env_h, sizeof(env_h), "CS_STORE_HEALTH_URL=%s", hurl);
	snprintf(env_dsn, sizeof(env_dsn), "CS_PG_DSN=%s", pg.dsn);
	char *env[] = { env_url, env_h, env_dsn, "CS_HOLLIHOP_TIMEZONE=Europe/Moscow", NULL };
	if (h_spawn(&store, "store", "services/store/crmsync-store", env, NULL) != 0 ||
	    h_wait_ready(hurl, 30000) != 0)
		return 1;
	PGconn *db = h_connect(&pg);
	if (db == NULL)
		return 1;

	/* Generated and normalised up front (not timed): the store is what is measured. */
	fprintf(stderr, "generating %ld payments and %ld leads...\n", npay, nlead);
	arena_init(&a, (size_t)(npay + nlead) * 8192);
	char **prow = malloc((size_t)npay * sizeof(char *)), **lrow = malloc((size_t)nlead * sizeof(char *));
	for (long i = 0; i < npay; i++)
		prow[i] = gen_payment(i + 1);
	for (long i = 0; i < nlead; i++)
		lrow[i] = gen_lead(i + 1);
	Crmsync__Record *precs = derive(pe, prow, npay, &a), *lrecs = derive(le, lrow, nlead, &a);
	if (precs == NULL || lrecs == NULL)
		return 1;

	/* 1. The apply path: new rows into an empty database. */
	bus_dial(&sock, url, BUS_RECVMAX_DEFAULT);
	double t_pay = send_all(sock, CAT_HOLLIHOP, "payments", precs, npay, batch);
	double t_lead = send_all(sock, CAT_AMO, "leads", lrecs, nlead, batch);
	if (t_pay < 0 || t_lead < 0) {
		h_dump_log(&store);
		return 1;
	}
	bus_close(sock);

	/* 2. A database from a release without payments.value and leads.price. */
	if (h_kill(&store, SIGTERM) != 0 ||
	    h_sql_exec(db, "ALTER TABLE hollihop.payments DROP COLUMN value") != 0 ||
	    h_sql_exec(db, "ALTER TABLE amo.leads DROP COLUMN price") != 0 ||
	    h_sql_exec(db, "VACUUM ANALYZE hollihop.payments") != 0 || h_sql_exec(db, "VACUUM ANALYZE amo.leads") != 0)
		return 1;
	double t0 = now_s();
	if (h_spawn(&store, "store-upgraded", "services/store/crmsync-store", env, NULL) != 0 ||
	    h_wait_ready(hurl, 600000) != 0)
		return 1;
	double t_ready = now_s() - t0;
	if (h_wait_sql(db, "SELECT count(*) FROM crmsync.rederive_jobs WHERE status <> 'done'", "0", 3600000) != 0) {
		h_dump_log(&store);
		return 1;
	}
	double t_all = now_s() - t0;
	fprintf(stderr, "jobs: %s\n", h_sql(db, "SELECT string_agg(entity || ' read=' || rows_read || ' written=' || "
	    "rows_written || ' skipped=' || rows_skipped || ' unreadable=' || rows_unreadable, '; ') FROM crmsync.rederive_jobs"));
	long wpay = 0, wlead = 0, wlead2 = 0;
	double b_pay = job_secs(db, "payments", &wpay), b_lead = job_secs(db, "leads", &wlead);
	long filled = h_sql_int(db, "SELECT (SELECT count(value) FROM hollihop.payments) + "
	    "(SELECT count(price) FROM amo.leads)");

	/* 3. On demand: every column and child row of the leads (crmsyncctl rederive amo leads). */
	Crmsync__Envelope renv = CRMSYNC__ENVELOPE__INIT, *ack = NULL;
	Crmsync__RederiveRequest rq = CRMSYNC__REDERIVE_REQUEST__INIT;
	char *ents[] = { "leads" };
	rq.crm = CRMSYNC__CRM__CRM_AMO;
	rq.entities = ents;
	rq.n_entities = 1;
	renv.body_case = CRMSYNC__ENVELOPE__BODY_REDERIVE;
	renv.rederive = &rq;
	bus_dial(&sock, url, BUS_RECVMAX_DEFAULT);
	if (bus_call(sock, &renv, &ack, 60000) != 0 || ack->ack->status != CRMSYNC__ACK_STATUS__ACK_OK)
		return 1;
	bus_free(ack);
	if (h_wait_sql(db, "SELECT count(*) FROM crmsync.rederive_jobs WHERE status <> 'done'", "0", 3600000) != 0)
		return 1;
	double b_lead2 = job_secs(db, "leads", &wlead2);
	long nchild = h_sql_int(db, "SELECT count(*) FROM amo.custom_field_values") +
	    h_sql_int(db, "SELECT count(*) FROM amo.entity_tags");

	printf("backfill benchmark: %ld Hollihop payments, %ld amoCRM leads (%ld child rows), batches of %ld\n",
	    npay, nlead, nchild, batch);
	printf("  %-58s %9.0f rows/s  (%.2f s)\n", "payments through the store's apply path (new rows)", npay / t_pay, t_pay);
	printf("  %-58s %9.0f rows/s  (%.2f s, %ld written)\n", "payments: one added column re-derived from raw",
	    npay / b_pay, b_pay, wpay);
	printf("  %-58s %9.0f rows/s  (%.2f s)\n", "leads through the store's apply path (new rows)", nlead / t_lead, t_lead);
	printf("  %-58s %9.0f rows/s  (%.2f s, %ld written)\n", "leads: one added column re-derived from raw",
	    nlead / b_lead, b_lead, wlead);
	printf("  %-58s %9.0f rows/s  (%.2f s, %ld written)\n", "leads: everything incl. child rows (rederive)",
	    nlead / b_lead2, b_lead2, wlead2);
	printf("  store start-up with the schema changes: %.2f s; upgrade done after %.2f s; "
	    "column values filled: %ld of %ld\n", t_ready, t_all, filled, npay + nlead);
	printf("  re-derivation / apply path: payments %.0f%%, leads %.0f%%\n", 100 * t_pay / b_pay,
	    100 * t_lead / b_lead);

	bus_close(sock);
	h_kill(&store, SIGTERM);
	PQfinish(db);
	h_pg_stop(&pg, 0);
	return filled == npay + nlead ? 0 : 1;
}
