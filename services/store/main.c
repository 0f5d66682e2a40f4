/*
 * main.c - crmsync-store: wiring only.
 *
 * Listens REP on CS_STORE_URL for Envelopes from the sync services, answers health probes
 * on CS_STORE_HEALTH_URL, owns the PostgreSQL connection. Every request gets exactly one
 * reply: ACK_OK only after COMMIT; ACK_RETRY while the database is unreachable (the sender
 * keeps the batch and re-sends); ACK_REJECTED for a batch that can never apply (it is
 * stored in crmsync.dead_letters with the reason first). crmsyncctl's requests (rederive,
 * dead letters resubmitted or discarded) come the same way.
 */
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "bus.h"
#include "errors.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "normalise.h"
#include "store.h"
#include "svc.h"

struct stat_counter store_stats[ST__N + ST_REFUSED_MAX + ST_RUNSTATS_MAX] = {
	[ST_BATCHES]		= { "batches_applied", "record batches committed", 0, 0 },
	[ST_ROWS_APPLIED]	= { "rows_written", "rows inserted, changed or deleted", 0, 0 },
	[ST_ROWS_UNCHANGED]	= { "rows_unchanged", "rows skipped: same content or older", 0, 0 },
	[ST_ROWS_DELETED]	= { "rows_deleted", "rows soft-deleted by delete records", 0, 0 },
	[ST_REJECTED]		= { "batches_rejected", "batches dead-lettered", 0, 0 },
	[ST_RETRIES]		= { "batches_retry", "batches answered retry (database down)", 0, 0 },
	[ST_DB_RECONNECTS]	= { "db_reconnects", "PostgreSQL reconnections", 0, 0 },
	[ST_RUNS_STARTED]	= { "runs_started", "sync runs opened", 0, 0 },
	[ST_RUNS_FINISHED]	= { "runs_finished", "sync runs closed", 0, 0 },
	[ST_DB_UP]		= { "db_up", "1 when connected to PostgreSQL", 1, 0 },
	[ST_REDONE]		= { "batches_redone", "batches redone staged after a concurrent insert", 0, 0 },
	[ST_RD_READ]		= { "rederive_rows_read", "rows re-derived from raw (read)", 0, 0 },
	[ST_RD_WRITTEN]		= { "rederive_rows_written", "rows whose re-derived values were written", 0, 0 },
	[ST_RD_UNREADABLE]	= { "rederive_rows_unreadable", "rows whose raw could not be re-derived", 0, 0 },
	[ST_RD_PENDING]		= { "rederive_pending_rows", "rows left to re-derive (upgrade, crmsyncctl rederive)", 1, 0 },
};

static const struct cfg_key store_keys[] = {
	{ "CS_STORE_URL", CFG_STR, offsetof(struct store_conf, url), "tcp://127.0.0.1:7701", 0, 0,
	  "NNG address the store listens on for record batches (REP)" },
	{ "CS_STORE_HEALTH_URL", CFG_STR, offsetof(struct store_conf, health_url), "tcp://127.0.0.1:7711", 0, 0,
	  "NNG address of the health responder" },
	{ "CS_PG_DSN", CFG_SECRET, offsetof(struct store_conf, dsn), "dbname=crmsync", 0, 0,
	  "libpq connection string (use sslmode=verify-full across hosts)" },
	{ "CS_STORE_RECV_MAX", CFG_BYTES, offsetof(struct store_conf, recv_max), "64MiB", 1024, 1LL << 30,
	  "largest message accepted" },
	{ "CS_STORE_BATCH_MAX_ROWS", CFG_INT, offsetof(struct store_conf, batch_max_rows), "50000", 1, 10000000,
	  "most records in one batch" },
	{ "CS_STORE_RECONNECT_MAX", CFG_DURATION, offsetof(struct store_conf, reconnect_max_ms), "5s", 100, 3600000,
	  "longest wait between PostgreSQL reconnect attempts" },
	{ "CS_STORE_DELETE_GUARD", CFG_INT, offsetof(struct store_conf, delete_guard_pct), "50", 1, 100,
	  "a full run may soft-delete at most this percent of an entity's rows, and deletes nothing "
	  "when its rows fell more than this percent below its last complete run (100 = no guard)" },
	{ "CS_STORE_STATEMENT_TIMEOUT", CFG_DURATION, offsetof(struct store_conf, statement_timeout_ms), "5m", 1000, 86400000,
	  "PostgreSQL statement_timeout for the store's session" },
	{ "CS_STORE_METRICS_ADDR", CFG_STR, offsetof(struct store_conf, metrics_addr), "", 0, 0,
	  "host:port serving Prometheus GET /metrics over plain HTTP (e.g. 127.0.0.1:9101; empty = off)" },
	{ "CS_HOLLIHOP_TIMEZONE", CFG_STR, offsetof(struct store_conf, hh_timezone), "Europe/Moscow", 0, 0,
	  "time zone of Hollihop's naive local timestamps: set it as for hollihop-sync (the store re-derives rows with it)" },
	{ "CS_HOLLIHOP_AMO_LEAD_FIELD", CFG_STR, offsetof(struct store_conf, hh_amo_lead_field), "Ссылка на amoCRM", 0, 0,
	  "student extra field holding the amoCRM lead link -> students.amo_lead_id: set it as for hollihop-sync (the store re-derives rows with it)" },
	{ "CS_STORE_REDERIVE_ROWS", CFG_INT, offsetof(struct store_conf, rederive_rows), "5000", 1, 100000,
	  "rows per step when re-deriving from raw (after an upgrade; crmsyncctl rederive)" },
	{ "CS_STORE_ANALYTICS", CFG_STR, offsetof(struct store_conf, analytics), "on", 0, 0,
	  "the analytics schema: on = refreshed in each batch's transaction and rebuilt after complete "
	  "full runs; rebuild = only rebuilt (at start, after runs); off = created, left as it is "
	  "(rebuild and off are for benchmarks and trouble-shooting)" },
	{ "CS_STORE_REDERIVE_PAUSE", CFG_DURATION, offsetof(struct store_conf, rederive_pause_ms), "0", 0, 60000,
	  "wait between re-derivation steps while no batch comes (0 = none; spares a busy database)" },
};

static struct store store;

static int
zone_exists(const char *tz)
{
	char path[512];

	snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", tz[0] == ':' ? tz + 1 : tz);
	return access(path, R_OK) == 0;
}

static int
store_status(void *arg, char *buf, size_t len)
{
	struct store *st = arg;
	int up = stat_get(&store_stats[ST_DB_UP]) != 0;

	char rd[256];

	if (!st->ready) {
		snprintf(buf, len, "starting: %s", up ? "migrating the schema" : "connecting to PostgreSQL");
		return 0;
	}
	rederive_status(st, rd, sizeof(rd));
	snprintf(buf, len, "%s%s%s", up ? "ok" : "degraded: PostgreSQL unreachable", rd[0] ? "; " : "", rd);
	return up;
}

/*
 * After the connection died: one reconnect attempt when the backoff allows, and the session
 * state (temp tables) re-created. Never blocks for long, so requests keep getting prompt
 * ACK_RETRY answers while PostgreSQL is away.
 */
static void
store_reconnect(struct store *st)
{
	if (st->pg_ok && st->pg != NULL && PQstatus(st->pg) == CONNECTION_OK)
		return;
	if (st->pg_ok) {
		stat_add(&store_stats[ST_DB_RECONNECTS], 1);
		log_warnx("db.lost", "reconnecting");
		db_close(st);
	}
	if (db_try_connect(st) == 0) {
		apply_reset_conn(st);
		rederive_reset_conn(st);
		analytics_reset_conn(st);
	}
}

static void
reject(struct store *st, nng_socket s, nng_msg *msg, int crm, const char *entity,
    uint64_t batch_id, int64_t run_id, const char *reason)
{
	int rv;

	stat_add(&store_stats[ST_REJECTED], 1);
	log_warnx("batch.rejected", "crm=%s entity=%s batch=%llu run=%lld reason=%s", runs_crm_name(crm),
	    entity ? entity : "-", (unsigned long long)batch_id, (long long)run_id, lq(reason));
	rv = runs_dead_letter(st, runs_crm_name(crm), entity, batch_id, run_id, reason,
	    msg ? nng_msg_body(msg) : NULL, msg ? nng_msg_len(msg) : 0);
	if (rv == CS_EDBCONN) {
		/* Cannot even record it: let the sender retry later rather than lose it. */
		stat_add(&store_stats[ST_RETRIES], 1);
		(void)bus_reply_ack(s, CRMSYNC__ACK_STATUS__ACK_RETRY, "database unavailable", batch_id, 0, 0, 0);
		store_reconnect(st);
		return;
	}
	(void)bus_reply_ack(s, CRMSYNC__ACK_STATUS__ACK_REJECTED, reason, batch_id, 0, 0, 0);
}

static void
on_batch(struct store *st, nng_socket s, nng_msg *msg, const Crmsync__RecordBatch *b)
{
	uint32_t applied = 0, unchanged = 0;
	char err[1024];
	int rv;

	if (rederive_blocks(st, b->crm, b->entity, err, sizeof(err))) {
		/* Its table is being rebuilt: the sender keeps the batch and re-sends. */
		stat_add(&store_stats[ST_RETRIES], 1);
		log_debug("batch.retry", "crm=%s entity=%s batch=%llu err=%s", runs_crm_name(b->crm),
		    b->entity, (unsigned long long)b->batch_id, lq(err));
		(void)bus_reply_ack(s, CRMSYNC__ACK_STATUS__ACK_RETRY, err, b->batch_id, 0, 0, 0);
		return;
	}
	rv = apply_batch(st, b, &applied, &unchanged, err, sizeof(err));

	if (rv == 0) {
		stat_add(&store_stats[ST_BATCHES], 1);
		stat_add(&store_stats[ST_ROWS_APPLIED], applied);
		stat_add(&store_stats[ST_ROWS_UNCHANGED], unchanged);
		runstats_rows(b->crm, b->entity, applied);
		log_debug("batch.applied", "crm=%s entity=%s batch=%llu run=%lld n=%zu applied=%u unchanged=%u",
		    runs_crm_name(b->crm), b->entity, (unsigned long long)b->batch_id, (long long)b->run_id,
		    b->n_records, applied, unchanged);
		(void)bus_reply_ack(s, CRMSYNC__ACK_STATUS__ACK_OK, NULL, b->batch_id, applied, unchanged, 0);
	} else if (rv == CS_EDBCONN || rv == CS_ENOMEM) {
		stat_add(&store_stats[ST_RETRIES], 1);
		log_warnx("batch.retry", "crm=%s entity=%s batch=%llu err=%s", runs_crm_name(b->crm),
		    b->entity, (unsigned long long)b->batch_id, lq(err[0] ? err : cs_strerror(rv)));
		(void)bus_reply_ack(s, CRMSYNC__ACK_STATUS__ACK_RETRY, err, b->batch_id, 0, 0, 0);
		if (rv == CS_EDBCONN)
			store_reconnect(st);
	} else {
		reject(st, s, msg, b->crm, b->entity, b->batch_id, b->run_id, err[0] ? err : cs_strerror(rv));
	}
}

static void
reply_result(struct store *st, nng_socket s, int rv, const char *err, int64_t run_id)
{
	if (rv == 0) {
		(void)bus_reply_ack(s, CRMSYNC__ACK_STATUS__ACK_OK, NULL, 0, 0, 0, run_id);
	} else if (rv == CS_EDBCONN) {
		stat_add(&store_stats[ST_RETRIES], 1);
		(void)bus_reply_ack(s, CRMSYNC__ACK_STATUS__ACK_RETRY, err, 0, 0, 0, 0);
		store_reconnect(st);
	} else {
		log_warnx("request.rejected", "err=%s", lq(err));
		(void)bus_reply_ack(s, CRMSYNC__ACK_STATUS__ACK_REJECTED, err, 0, 0, 0, 0);
	}
}

/* RunBegin: the run's id, and what each entity read last time (the sender's bound). */
static void
on_run_begin(struct store *st, nng_socket s, const Crmsync__RunBegin *rb)
{
	Crmsync__Envelope rep = CRMSYNC__ENVELOPE__INIT;
	Crmsync__Ack ack = CRMSYNC__ACK__INIT;
	char err[1024] = "";
	int64_t run_id = 0, *last = calloc(rb->n_entities + 1, sizeof(*last));
	int rv;

	rv = last == NULL ? CS_ENOMEM : runs_begin(st, rb, &run_id, last, err, sizeof(err));
	if (rv != 0) {
		reply_result(st, s, rv, rv == CS_ENOMEM ? "out of memory" : err, run_id);
		goto out;
	}
	stat_add(&store_stats[ST_RUNS_STARTED], 1);
	log_info("run.started", "run=%lld crm=%s kind=%s trigger=%s", (long long)run_id,
	    runs_crm_name(rb->crm), runs_kind_name(rb->kind), lq(rb->trigger));
	ack.status = CRMSYNC__ACK_STATUS__ACK_OK;
	ack.error = (char *)"";
	ack.run_id = run_id;
	ack.last_rows = last;
	ack.n_last_rows = rb->n_entities;
	rep.body_case = CRMSYNC__ENVELOPE__BODY_ACK;
	rep.ack = &ack;
	(void)bus_send(s, &rep);
out:
	free(last);
}

static void
on_run_end(struct store *st, nng_socket s, const Crmsync__RunEnd *re)
{
	char err[1024] = "";
	int rv = runs_end(st, re, err, sizeof(err));

	if (rv == 0)
		stat_add(&store_stats[ST_RUNS_FINISHED], 1);
	reply_result(st, s, rv, err, re->run_id);
	analytics_rebuild_due(st);	/* the sender need not wait for it */
}

static void
on_rederive(struct store *st, nng_socket s, const Crmsync__RederiveRequest *rq)
{
	char err[1024] = "";
	int64_t run_id = 0;
	int rv = rederive_request(st, rq, &run_id, err, sizeof(err));

	if (rv == CS_EBUSY)
		(void)bus_reply_ack(s, CRMSYNC__ACK_STATUS__ACK_REJECTED, err, 0, 0, 0, run_id);
	else
		reply_result(st, s, rv, err, run_id);
}

static void
on_dead_letter(struct store *st, nng_socket s, const Crmsync__DeadLetterRequest *rq)
{
	Crmsync__Envelope rep = CRMSYNC__ENVELOPE__INIT;
	Crmsync__DeadLetterReply dl = CRMSYNC__DEAD_LETTER_REPLY__INIT;
	char err[1024] = "";
	int rv = deadletter_request(st, rq, &dl, err, sizeof(err));

	if (rv != 0) {
		reply_result(st, s, rv, err, 0);
	} else {
		rep.body_case = CRMSYNC__ENVELOPE__BODY_DEAD_LETTER_REPLY;
		rep.dead_letter_reply = &dl;
		(void)bus_send(s, &rep);
	}
	deadletter_reply_free(&dl);
}

static void
on_cursor_get(struct store *st, nng_socket s, const Crmsync__CursorGet *cg)
{
	Crmsync__Envelope rep = CRMSYNC__ENVELOPE__INIT;
	Crmsync__CursorValue cv = CRMSYNC__CURSOR_VALUE__INIT;
	char *value = NULL;
	int found, rv;

	if ((rv = runs_cursor_get(st, cg, &found, &value)) != 0) {
		reply_result(st, s, rv, db_errmsg(st, NULL), 0);
		return;
	}
	cv.found = found;
	cv.value = value != NULL ? value : (char *)"";
	rep.body_case = CRMSYNC__ENVELOPE__BODY_CURSOR_VALUE;
	rep.cursor_value = &cv;
	(void)bus_send(s, &rep);
	free(value);
}

static void
dispatch(struct store *st, nng_socket s, nng_msg *msg, Crmsync__Envelope *env)
{
	int rv;

	if (!st->pg_ok && env->body_case != CRMSYNC__ENVELOPE__BODY_HEALTH_REQUEST) {
		stat_add(&store_stats[ST_RETRIES], 1);
		(void)bus_reply_ack(s, CRMSYNC__ACK_STATUS__ACK_RETRY, "database unavailable", 0, 0, 0, 0);
		store_reconnect(st);
		return;
	}
	switch (env->body_case) {
	case CRMSYNC__ENVELOPE__BODY_BATCH:
		on_batch(st, s, msg, env->batch);
		return;
	case CRMSYNC__ENVELOPE__BODY_RUN_BEGIN:
		on_run_begin(st, s, env->run_begin);
		return;
	case CRMSYNC__ENVELOPE__BODY_RUN_END:
		on_run_end(st, s, env->run_end);
		return;
	case CRMSYNC__ENVELOPE__BODY_RUN_PROGRESS:
		rv = runs_progress(st, env->run_progress);
		reply_result(st, s, rv, rv ? db_errmsg(st, NULL) : "", 0);
		return;
	case CRMSYNC__ENVELOPE__BODY_REDERIVE:
		on_rederive(st, s, env->rederive);
		return;
	case CRMSYNC__ENVELOPE__BODY_DEAD_LETTER:
		on_dead_letter(st, s, env->dead_letter);
		return;
	case CRMSYNC__ENVELOPE__BODY_CURSOR_GET:
		on_cursor_get(st, s, env->cursor_get);
		return;
	default:
		reject(st, s, msg, 0, NULL, 0, 0, "unexpected message type for the store");
		return;
	}
}

/* What the config loader cannot check: the Hollihop zone, CS_STORE_ANALYTICS. Fatal if bad. */
static void
store_check_conf(struct store_conf *c)
{
	/* Hollihop's naive local times are read in its zone, as hollihop-sync reads them. */
	if ((strchr(c->hh_timezone, '/') != NULL && !zone_exists(c->hh_timezone)) ||
	    normalise_set_timezone(c->hh_timezone) != 0)
		fatalx("config.bad_timezone", "CS_HOLLIHOP_TIMEZONE=%s is not a known zone", lq(c->hh_timezone));
	c->an_rebuild = strcmp(c->analytics, "off") != 0;
	c->an_refresh = strcmp(c->analytics, "on") == 0;
	if (c->an_rebuild && !c->an_refresh && strcmp(c->analytics, "rebuild") != 0)
		fatalx("config.bad_analytics", "CS_STORE_ANALYTICS=%s is not on, rebuild or off",
		    lq(c->analytics));
}

/* The statements, the health responder and the metrics endpoint. Fatal on failure. */
static void
store_start(struct store *st, struct health **health, struct metrics **metrics)
{
	size_t nstats;
	int rv;

	if ((rv = apply_init(st)) != 0 || (rv = rederive_init(st)) != 0)
		fatalx("store.init_failed", "err=%s", lq(cs_strerror(rv)));
	if ((rv = health_start(health, st->conf.health_url, "store", store_stats, ST__N,
	    store_status, st)) != 0)
		fatalx("health.listen_failed", "url=%s err=%s", lq(st->conf.health_url), lq(cs_strerror(rv)));
	nstats = ST__N + runs_metrics_init();
	nstats += runstats_init(nstats);
	if ((rv = metrics_start(metrics, st->conf.metrics_addr, "store", store_stats, nstats)) != 0)
		fatalx("metrics.listen_failed", "addr=%s err=%s", lq(st->conf.metrics_addr), lq(cs_strerror(rv)));
}

/* Connect and migrate the schema, retrying while PostgreSQL is away; -1 when stopped first. */
static int
store_prepare(struct store *st)
{
	int rv;

	if (db_connect(st) != 0)
		return -1;
	while (!svc_stop && (rv = migrate_run(st)) != 0) {
		if (rv != CS_EDBCONN)
			fatalx("migrate.failed", "err=%s", lq(cs_strerror(rv)));
		store_reconnect(st);
	}
	if (svc_stop)
		return -1;
	(void)runstats_load(st);	/* logged; the gauges fill in at the next RunEnd */
	return 0;
}

/* No request came: reconnect, or take a re-derivation step when one is pending. */
static void
store_idle(struct store *st, int busy)
{
	int rv;

	if (!st->pg_ok)
		store_reconnect(st);
	else if (busy && (rv = rederive_step(st)) != 0) {
		log_warnx("rederive.retry", "err=%s", lq(cs_strerror(rv)));
		if (rv == CS_EDBCONN)
			store_reconnect(st);
		else
			nng_msleep(1000);	/* e.g. out of memory: not in a tight loop */
	}
}

/* Requests until stopped or the socket closes. */
static void
store_serve(struct store *st, nng_socket sock)
{
	int rv;

	while (!svc_stop) {
		Crmsync__Envelope *env = NULL;
		nng_msg *msg = NULL;
		/* Batches first; a re-derivation step whenever none is waiting. */
		int busy = st->pg_ok && rederive_pending(st);

		rv = bus_recv_msg(sock, &msg, &env, busy ? (int)st->conf.rederive_pause_ms : 250);
		if (rv == CS_ETIMEDOUT) {
			store_idle(st, busy);
			continue;
		}
		if (rv == CS_ECLOSED)
			break;
		if (rv == CS_EPROTO)
			reject(st, sock, msg, 0, NULL, 0, 0, "undecodable message");
		else if (rv == 0)
			dispatch(st, sock, msg, env);
		else
			log_warnx("store.recv_failed", "err=%s", lq(cs_strerror(rv)));
		bus_free(env);
		if (msg != NULL)
			nng_msg_free(msg);
	}
}

int
main(int argc, char **argv)
{
	static const struct svc_desc desc = {
		.name = "store",
		.summary = "crmsync-store: the only writer of the crmsync PostgreSQL database. Applies record\n"
		    "batches from the sync services in one transaction each and acknowledges after COMMIT.",
		.keys = store_keys, .nkeys = CFG_NKEYS(store_keys), .conf = &store.conf,
	};
	struct health *health = NULL;
	struct metrics *metrics = NULL;
	nng_socket sock;
	int rv;

	svc_init(argc, argv, &desc);
	svc_signals();
	store_check_conf(&store.conf);
	store_start(&store, &health, &metrics);
	if (store_prepare(&store) != 0)
		goto out;
	if ((rv = bus_listen(&sock, store.conf.url, (size_t)store.conf.recv_max)) != 0)
		fatalx("store.listen_failed", "url=%s err=%s", lq(store.conf.url), lq(cs_strerror(rv)));
	store.ready = 1;
	log_info("store.ready", "url=%s health=%s entities=%zu", lq(store.conf.url),
	    lq(store.conf.health_url), store.nesql);
	store_serve(&store, sock);
	bus_close(sock);
out:
	log_info("store.stopping", "batches=%lld", (long long)stat_get(&store_stats[ST_BATCHES]));
	metrics_stop(metrics);
	health_stop(health);
	db_close(&store);
	rederive_free(&store);
	apply_free(&store);
	cfg_free(store_keys, CFG_NKEYS(store_keys), &store.conf);
	return 0;
}
