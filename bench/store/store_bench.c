/*
 * store_bench.c - how fast the real store applies record batches, next to PostgreSQL's
 * own ceiling, measured in one run on one throwaway cluster:
 *   1. store: N realistic amoCRM lead rows (~700 bytes of JSON each, custom fields,
 *      tags), normalised by the catalogue exactly as amo-sync does, sent over NNG in
 *      batches to crmsync-store, each acknowledged after COMMIT; then the same rows
 *      again (a nightly resend of unchanged data);
 *   2. plain COPY of the same typed rows (and child rows) into tables of the same shape;
 *   3. a one-row-per-statement upsert loop (prepared INSERT ... ON CONFLICT, autocommit),
 *      on a sample of the rows.
 * Usage: store_bench [rows=200000] [batch=2000] [loop_rows=20000]  (CS_BUILD_DIR = build dir)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "batch.h"
#include "buf.h"
#include "bus.h"
#include "clock.h"
#include "harness.h"
#include "normalise.h"

static double
now_s(void)
{
	return (double)clock_mono_us() / 1e6;
}

/* Send every record to the store in batches; seconds taken, or -1. */
static double
send_all(nng_socket sock, Crmsync__Record *recs, long rows, long batch)
{
	Crmsync__Record **ptrs = malloc((size_t)batch * sizeof(*ptrs));
	double t0 = now_s();

	for (long off = 0; off < rows; off += batch) {
		Crmsync__Envelope env_msg = CRMSYNC__ENVELOPE__INIT;
		Crmsync__RecordBatch rb = CRMSYNC__RECORD_BATCH__INIT;
		long n = rows - off < batch ? rows - off : batch;
		for (long k = 0; k < n; k++)
			ptrs[k] = &recs[off + k];
		rb.crm = CRMSYNC__CRM__CRM_AMO;
		rb.entity = (char *)"leads";
		rb.batch_id = (uint64_t)off + 1;
		rb.records = ptrs;
		rb.n_records = (size_t)n;
		rb.replace_children = 1;
		env_msg.body_case = CRMSYNC__ENVELOPE__BODY_BATCH;
		env_msg.batch = &rb;
		if (bus_call_ack(sock, &env_msg, NULL, 60000, 600000, NULL) != 0) {
			fprintf(stderr, "batch at %ld failed\n", off);
			free(ptrs);
			return -1;
		}
	}
	free(ptrs);
	return now_s() - t0;
}

static const char *const first[] = { "Иван", "Мария", "Алексей", "Ольга", "Дмитрий", "Анна", "Сергей", "Елена" };
static const char *const last[] = { "Иванов", "Смирнова", "Кузнецов", "Попова", "Соколов", "Лебедева" };

/* One realistic lead as amoCRM's list API returns it (~700 bytes). */
static int
gen_lead(char *dst, size_t cap, long i, long version)
{
	return snprintf(dst, cap,
	    "{\"id\":%ld,\"name\":\"Сделка: курс английского для %s %s\",\"price\":%ld,"
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
	    i, first[i % 8], last[i % 6], 10000 + (i % 50) * 1000, 1000 + i % 20, 142 + i % 30,
	    5000 + i % 5, 1000 + i % 20, 1700000000 + i, 1700000000 + i + version, 1710000000 + i,
	    300 + (int)(i % 3), 500 + (int)(i % 7), 301, i, 7000 + i % 40);
}


static int
pg_copy(PGconn *c, const char *sql, struct buf *b)
{
	PGresult *r = PQexec(c, sql);

	if (PQresultStatus(r) != PGRES_COPY_IN) {
		fprintf(stderr, "COPY: %s", PQerrorMessage(c));
		return -1;
	}
	PQclear(r);
	for (size_t off = 0; off < b->len; off += 1 << 20) {
		size_t n = b->len - off < (1u << 20) ? b->len - off : 1u << 20;
		PQputCopyData(c, b->data + off, (int)n);
	}
	PQputCopyEnd(c, NULL);
	while ((r = PQgetResult(c)) != NULL) {
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			fprintf(stderr, "COPY: %s", PQresultErrorMessage(r));
			return -1;
		}
		PQclear(r);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	long rows = argc > 1 ? atol(argv[1]) : 200000;
	long batch = argc > 2 ? atol(argv[2]) : 2000;
	long loop_rows = argc > 3 ? atol(argv[3]) : 20000;
	const struct cat_entity *e = catalog_find(CAT_AMO, "leads");
	struct h_pg pg;
	struct h_proc store;
	char url[512], hurl[512], env_url[600], env_h[600], env_dsn[800];
	Crmsync__Record *recs;
	struct arena a;
	char *json;
	size_t json_bytes = 0, nchild = 0;
	nng_socket sock;

	if (h_pg_start(&pg) != 0)
		return 1;
	snprintf(url, sizeof(url), "%s", h_url("bench-store"));
	snprintf(hurl, sizeof(hurl), "%s", h_url("bench-store-health"));
	snprintf(env_url, sizeof(env_url), "CS_STORE_URL=%s", url);
	snprintf(env_h, sizeof(env_h), "CS_STORE_HEALTH_URL=%s", hurl);
	snprintf(env_dsn, sizeof(env_dsn), "CS_PG_DSN=%s", pg.dsn);
	char *env[] = { env_url, env_h, env_dsn, NULL };
	if (h_spawn(&store, "store", "services/store/crmsync-store", env, NULL) != 0 ||
	    h_wait_ready(hurl, 30000) != 0)
		return 1;
	PGconn *db = h_connect(&pg);	/* the store is ready: migrated */
	if (db == NULL)
		return 1;

	/* Generate and normalise every row up front (not timed): the store is what we measure. */
	fprintf(stderr, "generating %ld rows...\n", rows);
	arena_init(&a, (size_t)rows * 8192);
	json = malloc((size_t)rows * 1024);
	recs = calloc((size_t)rows, sizeof(*recs));
	for (long i = 0; i < rows; i++) {
		char *row = json + i * 1024;
		int n = gen_lead(row, 1024, i + 1, 0);
		struct json j;
		char err[256];
		json_bytes += (size_t)n;
		if (json_parse(&j, row, (size_t)n, 4096) != 0 ||
		    normalise_row(e, &j, 0, NULL, &a, &recs[i], NULL, err, sizeof(err)) != 0) {
			fprintf(stderr, "row %ld: %s\n", i, err);
			return 1;
		}
		nchild += recs[i].n_children;
		json_free(&j);
	}

	/* 1. The store over NNG: new rows, then the very same rows again (all unchanged). */
	bus_dial(&sock, url, BUS_RECVMAX_DEFAULT);
	double t_store = send_all(sock, recs, rows, batch);
	double t_again = t_store > 0 ? send_all(sock, recs, rows, batch) : -1;
	if (t_store < 0 || t_again < 0) {
		h_dump_log(&store);
		return 1;
	}
	long landed = h_sql_int(db, "SELECT count(*) FROM amo.leads");

	/* 2. Plain COPY of the same typed rows into tables of the same shape. */
	struct buf b;
	char sql[4096];
	buf_init(&b, (size_t)2 << 30);
	h_sql_exec(db, "CREATE SCHEMA bench");
	snprintf(sql, sizeof(sql), "CREATE TABLE bench.%s (LIKE amo.%s INCLUDING ALL)", e->name, e->name);
	h_sql_exec(db, sql);
	for (size_t c = 0; c < e->nchildren; c++) {
		snprintf(sql, sizeof(sql), "CREATE TABLE IF NOT EXISTS bench.%s (LIKE amo.%s INCLUDING ALL)",
		    e->children[c].table, e->children[c].table);
		h_sql_exec(db, sql);
	}
	/* The COPY data is built before the clock starts: the baseline is PostgreSQL alone. */
	double t_copy = 0;
	for (long i = 0; i < rows; i++) {
		for (size_t c = 0; c < recs[i].n_values; c++) {
			if (norm_isnull(&recs[i].null_mask, c))
				buf_add_copy_null(&b);
			else
				buf_add_copytext(&b, recs[i].values[c], strlen(recs[i].values[c]));
			buf_addc(&b, '\t');
		}
		buf_addstr(&b, "2024-01-01 00:00:00+00\t");
		buf_add_copytext(&b, (const char *)recs[i].raw_json.data, recs[i].raw_json.len);
		buf_addc(&b, '\n');
	}
	size_t o = (size_t)snprintf(sql, sizeof(sql), "COPY bench.%s (", e->name);
	for (size_t c = 0; c < e->ncols; c++)
		o += (size_t)snprintf(sql + o, sizeof(sql) - o, "%s, ", e->cols[c].column);
	snprintf(sql + o, sizeof(sql) - o, "source_updated_at, raw) FROM STDIN");
	double t0 = now_s();
	if (pg_copy(db, sql, &b) != 0)
		return 1;
	t_copy += now_s() - t0;
	/* Child rows (custom field values, tags...) of every lead, as the store writes them. */
	for (size_t c = 0; c < e->nchildren; c++) {
		const struct cat_child *ch = &e->children[c];
		char dcol[64], pcol[64];
		const char *dval = catalog_discriminator(ch, dcol, sizeof(dcol));
		buf_reset(&b);
		for (long i = 0; i < rows; i++) {
			int idx = 0;
			for (size_t k = 0; k < recs[i].n_children; k++) {
				const Crmsync__ChildRow *cr = recs[i].children[k];
				if (cr->child != c)
					continue;
				if (dval != NULL)
					buf_printf(&b, "%s\t", dval);
				buf_printf(&b, "%s\t%d", recs[i].values[0], idx++);
				for (size_t v = 0; v < cr->n_values; v++) {
					buf_addc(&b, '\t');
					if (norm_isnull(&cr->null_mask, v))
						buf_add_copy_null(&b);
					else
						buf_add_copytext(&b, cr->values[v], strlen(cr->values[v]));
				}
				buf_addc(&b, '\n');
			}
		}
		catalog_child_parent_col(e, ch, 0, pcol, sizeof(pcol));
		o = (size_t)snprintf(sql, sizeof(sql), "COPY bench.%s (%s%s%s, idx", ch->table,
		    dval ? dcol : "", dval ? ", " : "", pcol);
		for (size_t v = 0; v < ch->ncols; v++)
			o += (size_t)snprintf(sql + o, sizeof(sql) - o, ", %s", ch->cols[v].column);
		snprintf(sql + o, sizeof(sql) - o, ") FROM STDIN");
		t0 = now_s();
		if (b.len > 0 && pg_copy(db, sql, &b) != 0)
			return 1;
		t_copy += now_s() - t0;
	}

	/* 3. One row per statement: prepared upsert, autocommit (parent rows only: generous to it). */
	h_sql_exec(db, "CREATE TABLE bench.loop (LIKE amo.leads INCLUDING ALL)");
	o = (size_t)snprintf(sql, sizeof(sql), "INSERT INTO bench.loop (");
	for (size_t c = 0; c < e->ncols; c++)
		o += (size_t)snprintf(sql + o, sizeof(sql) - o, "%s, ", e->cols[c].column);
	o += (size_t)snprintf(sql + o, sizeof(sql) - o, "source_updated_at, raw) VALUES (");
	for (size_t c = 0; c < e->ncols + 2; c++)
		o += (size_t)snprintf(sql + o, sizeof(sql) - o, "%s$%zu", c ? ", " : "", c + 1);
	snprintf(sql + o, sizeof(sql) - o, ") ON CONFLICT (id) DO UPDATE SET raw = excluded.raw "
	    "WHERE bench.loop.raw IS DISTINCT FROM excluded.raw");
	PQclear(PQprepare(db, "up", sql, 0, NULL));
	if (loop_rows > rows)
		loop_rows = rows;
	const char **vals = calloc(e->ncols + 2, sizeof(char *));
	t0 = now_s();
	for (long i = 0; i < loop_rows; i++) {
		for (size_t c = 0; c < e->ncols; c++)
			vals[c] = norm_isnull(&recs[i].null_mask, c) ? NULL : recs[i].values[c];
		vals[e->ncols] = "2024-01-01 00:00:00+00";
		vals[e->ncols + 1] = (const char *)recs[i].raw_json.data;	/* NUL follows: the row buffer */
		((char *)recs[i].raw_json.data)[recs[i].raw_json.len] = '\0';
		PGresult *r = PQexecPrepared(db, "up", (int)e->ncols + 2, vals, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			fprintf(stderr, "loop: %s", PQresultErrorMessage(r));
			return 1;
		}
		PQclear(r);
	}
	double t_loop = now_s() - t0;

	double r_store = rows / t_store, r_copy = rows / t_copy, r_loop = loop_rows / t_loop;
	printf("store benchmark: %ld rows (%.0f bytes of JSON each, %zu child rows), batches of %ld\n",
	    rows, (double)json_bytes / rows, nchild, batch);
	printf("  %-44s %9.0f rows/s  (%.2f s)\n", "crmsync-store over NNG (1 tx per batch)", r_store, t_store);
	printf("  %-44s %9.0f rows/s  (%.2f s)\n", "crmsync-store, the same rows again (unchanged)",
	    rows / t_again, t_again);
	printf("  %-44s %9.0f rows/s  (%.2f s)\n", "plain COPY, same rows and table shape", r_copy, t_copy);
	printf("  %-44s %9.0f rows/s  (%.2f s, %ld rows)\n", "one-row-per-statement upsert loop", r_loop, t_loop, loop_rows);
	printf("  store / COPY = %.0f%%   store / row loop = %.1fx   rows landed = %ld\n",
	    100 * r_store / r_copy, r_store / r_loop, landed);

	bus_close(sock);
	h_kill(&store, SIGTERM);
	PQfinish(db);
	h_pg_stop(&pg, 0);
	return landed == rows ? 0 : 1;
}
