/*
 * main.c - crmsync-hollihop-sync: wiring only.
 *
 * Exports the whole Hollihop account into the store: nightly at CS_HOLLIHOP_SCHEDULE
 * (local time in CS_HOLLIHOP_TIMEZONE), on a SyncCommand received on CS_HOLLIHOP_URL
 * (REP; answered with the new run's id), or once with --run-now (exit status 0 when the
 * run completed, 1 otherwise). One run at a time, in a thread of its own, so commands and
 * the schedule are answered while it runs. Peers: the store (REQ, record batches and
 * runs), whoever sends commands (REP), health probes (own REP socket, lib/health).
 */
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "errors.h"
#include "health.h"
#include "hh.h"
#include "log.h"
#include "metrics.h"
#include "strlist.h"
#include "svc.h"

struct stat_counter hh_stats[HS__N + HS_AGE_MAX] = {
	[HS_RUNS_STARTED]	= { "runs_started", "export runs opened", 0, 0 },
	[HS_RUNS_COMPLETE]	= { "runs_complete", "export runs that read every entity", 0, 0 },
	[HS_RUNS_FAILED]	= { "runs_failed", "export runs that failed or were stopped", 0, 0 },
	[HS_RUNNING]		= { "running", "1 while a run is in progress", 1, 0 },
	[HS_LAST_RUN_ID]	= { "last_run_id", "id of the latest run", 1, 0 },
	[HS_LAST_OK_UNIX]	= { "last_complete_unix", "end of the latest complete run", 1, 0 },
	[HS_REQUESTS]		= { "api_requests", "Hollihop API requests sent", 0, 0 },
	[HS_RETRIES]		= { "api_retries", "requests retried (network, 5xx, limit, bad JSON)", 0, 0 },
	[HS_RATE_LIMITED]	= { "api_rate_limited", "rate-limit answers received", 0, 0 },
	[HS_BYTES_IN]		= { "api_bytes", "response bytes received", 0, 0 },
	[HS_PAGES]		= { "pages", "pages processed", 0, 0 },
	[HS_ROWS_SENT]		= { "rows_sent", "rows acknowledged by the store", 0, 0 },
	[HS_ROWS_BAD]		= { "rows_skipped", "rows that could not be read (dead-lettered with their batch)", 0, 0 },
	[HS_BAD_VALUES]		= { "bad_values", "unreadable values stored as NULL (raw keeps them)", 0, 0 },
	[HS_BATCHES_SENT]	= { "batches_sent", "record batches acknowledged", 0, 0 },
	[HS_BATCHES_REJECTED]	= { "batches_rejected", "record batches the store dead-lettered", 0, 0 },
};

static struct hh_conf conf;

#define CFG_STRUCT struct hh_conf
static const struct cfg_key hh_keys[] = {
	CFG_KEY("CS_HOLLIHOP_BASE_URL", CFG_STR, base_url, NULL, 0, 0,
	    "API base, e.g. https://school.t8s.ru/Api/V2 (methods are appended)"),
	CFG_KEY("CS_HOLLIHOP_AUTHKEY", CFG_SECRET, authkey, NULL, 0, 0,
	    "API key (Настройки > Интеграция > API); sent urlencoded in the POST body, never logged"),
	CFG_KEY("CS_HOLLIHOP_URL", CFG_STR, url, "tcp://127.0.0.1:7703", 0, 0,
	    "NNG address for SyncCommand requests (REP)"),
	CFG_KEY("CS_HOLLIHOP_HEALTH_URL", CFG_STR, health_url, "tcp://127.0.0.1:7713", 0, 0,
	    "NNG address of the health responder"),
	CFG_KEY("CS_STORE_URL", CFG_STR, store_url, "tcp://127.0.0.1:7701", 0, 0,
	    "NNG address of the store"),
	CFG_KEY("CS_HOLLIHOP_SCHEDULE", CFG_STR, schedule, "03:30", 0, 0,
	    "local time of the nightly full export, HH:MM, or off"),
	CFG_KEY("CS_HOLLIHOP_TIMEZONE", CFG_STR, timezone, "Europe/Moscow", 0, 0,
	    "time zone of the schedule and of Hollihop's naive local timestamps"),
	CFG_KEY("CS_HOLLIHOP_CULTURE", CFG_STR, culture, "ru-RU", 0, 0,
	    "culture= sent with every call (fixes the money-string format); empty = none"),
	CFG_KEY("CS_HOLLIHOP_ENTITIES", CFG_STR, entities, "", 0, 0,
	    "comma-separated entities a run exports (empty = the whole catalogue)"),
	CFG_KEY("CS_HOLLIHOP_SKIP", CFG_STR, skip, "", 0, 0,
	    "comma-separated entities to leave out, e.g. client_files"),
	CFG_KEY("CS_HOLLIHOP_DATE_FROM", CFG_STR, date_from, "-365d", 0, 0,
	    "start of the date range for lesson days (YYYY-MM-DD or -Nd from today)"),
	CFG_KEY("CS_HOLLIHOP_DATE_TO", CFG_STR, date_to, "+90d", 0, 0,
	    "end of the date range for lesson days (YYYY-MM-DD or +Nd from today)"),
	CFG_KEY("CS_HOLLIHOP_AMO_LEAD_FIELD", CFG_STR, amo_lead_field, "Ссылка на amoCRM", 0, 0,
	    "name of the student extra field holding the amoCRM lead link "
	    "(https://<sub>.amocrm.ru/leads/detail/<id>) -> students.amo_lead_id; empty = off"),
	CFG_KEY("CS_HOLLIHOP_RATE", CFG_INT, rate, "600", 0, 1000000,
	    "requests allowed per CS_HOLLIHOP_RATE_WINDOW (0 = no limit)"),
	CFG_KEY("CS_HOLLIHOP_RATE_WINDOW", CFG_DURATION, rate_window_ms, "30s", 1000, 3600000,
	    "window of the rate limit"),
	CFG_KEY("CS_HOLLIHOP_PAGE_SIZE", CFG_INT, page_size, "1000", 1, 100000,
	    "take= of paged methods (the catalogue may set a smaller one per method)"),
	CFG_KEY("CS_HOLLIHOP_TIMEOUT", CFG_DURATION, timeout_ms, "120s", 1000, 3600000,
	    "longest a single API call may take"),
	CFG_KEY("CS_HOLLIHOP_CONNECT_TIMEOUT", CFG_DURATION, connect_timeout_ms, "10s", 100, 600000,
	    "TCP/TLS connect timeout"),
	CFG_KEY("CS_HOLLIHOP_RETRIES", CFG_INT, retries, "8", 0, 100,
	    "retries of one call on network errors, 5xx, rate-limit answers, bad JSON"),
	CFG_KEY("CS_HOLLIHOP_BACKOFF_BASE", CFG_DURATION, backoff_base_ms, "1s", 1, 600000,
	    "first retry delay (doubles per attempt, with jitter)"),
	CFG_KEY("CS_HOLLIHOP_BACKOFF_MAX", CFG_DURATION, backoff_max_ms, "60s", 1, 3600000,
	    "longest retry delay"),
	CFG_KEY("CS_HOLLIHOP_MAX_BODY", CFG_BYTES, max_body, "64MiB", 1024, 1LL << 31,
	    "largest response accepted"),
	CFG_KEY("CS_HOLLIHOP_MAX_TOKENS", CFG_INT, max_tokens, "4000000", 16, 100000000,
	    "most JSON tokens in one response"),
	CFG_KEY("CS_HOLLIHOP_MAX_PAGES", CFG_INT, max_pages, "100000", 1, 100000000,
	    "most pages per method in one run (beyond: the method counts as incomplete)"),
	CFG_KEY("CS_HOLLIHOP_MAX_GROWTH", CFG_INT, max_growth, "4", 0, 1000,
	    "an entity reading more than this many times the rows of its last complete full read "
	    "(+10000) in one run is stopped as a page sequence that does not end (0 = no bound)"),
	CFG_KEY("CS_HOLLIHOP_PER_CLIENT_LIMIT", CFG_INT, per_client_limit, "0", 0, 100000000,
	    "most clients per per-client method (GetIncomesAndOutgoes...) per run; 0 = all"),
	CFG_KEY("CS_HOLLIHOP_SWEEP_EVERY", CFG_DURATION, sweep_every_ms, "7d", 0, 366LL * 86400000,
	    "per-client methods with changed_by call every client this often (their deletions only "
	    "then), and in between only clients changed since their last pass; 0 = every run"),
	CFG_KEY("CS_HOLLIHOP_CHANGED_LOOKBACK", CFG_DURATION, changed_lookback_ms, "1h", 0, 30LL * 86400000,
	    "a client counts as changed when its Updated/Created (or a changed_via row's stamp: a "
	    "new payment's Created) is at most this much older than the newest one the last "
	    "complete pass saw (longer than a listing takes)"),
	CFG_KEY("CS_HOLLIHOP_BATCH_ROWS", CFG_INT, batch_rows, "1000", 1, 50000,
	    "rows per record batch when small answers are gathered"),
	CFG_KEY("CS_HOLLIHOP_QUEUE_PAGES", CFG_INT, queue_pages, "2", 1, 64,
	    "pages downloaded ahead of the store (per entity being read)"),
	CFG_KEY("CS_HOLLIHOP_CONCURRENCY", CFG_INT, concurrency, "4", 1, EXPORT_CONCURRENCY_MAX,
	    "entities read at once, each with its own connection and one request in flight, all "
	    "within the one rate limit (1 = one at a time, in catalogue order)"),
	CFG_KEY("CS_HOLLIHOP_STORE_TIMEOUT", CFG_DURATION, store_timeout_ms, "60s", 100, 3600000,
	    "wait for one store acknowledgement before re-sending"),
	CFG_KEY("CS_HOLLIHOP_STORE_DEADLINE", CFG_DURATION, store_deadline_ms, "10m", 1000, 86400000,
	    "give the run up when the store has not acknowledged for this long"),
	CFG_KEY("CS_HOLLIHOP_METRICS_ADDR", CFG_STR, metrics_addr, "", 0, 0,
	    "host:port serving Prometheus GET /metrics over plain HTTP (e.g. 127.0.0.1:9104; empty = off)"),
};

/* The one run at a time. */
struct runner {
	struct exporter		*x;
	pthread_mutex_t		 mtx;
	pthread_cond_t		 cv;
	pthread_t		 thr;
	int			 active;	/* a thread exists (maybe finished, not joined) */
	int			 finished;
	int			 began;
	int64_t			 run_id;
	struct run_req		 rq;
	struct run_result	 res;
};

static void
runner_on_begin(void *arg, int64_t run_id)
{
	struct runner *r = arg;

	pthread_mutex_lock(&r->mtx);
	r->began = 1;
	r->run_id = run_id;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mtx);
}

static void *
runner_main(void *arg)
{
	struct runner *r = arg;
	int rv = export_run(r->x, &r->rq, runner_on_begin, r, &r->res);

	if (rv != 0)
		log_warnx("run.not_started", "trigger=%s err=%s", r->rq.trigger, lq(r->res.error));
	pthread_mutex_lock(&r->mtx);
	r->finished = 1;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mtx);
	return NULL;
}

/* Join a finished run thread. */
static void
runner_reap(struct runner *r, int wait)
{
	pthread_mutex_lock(&r->mtx);
	int join = r->active && (r->finished || wait);
	pthread_mutex_unlock(&r->mtx);
	if (join) {
		pthread_join(r->thr, NULL);
		r->active = 0;
	}
}

/* Start a run unless one is going; 0, CS_EBUSY, or a thread error. */
static int
runner_start(struct runner *r, const struct run_req *rq)
{
	runner_reap(r, 0);
	if (r->active)
		return CS_EBUSY;
	r->rq = *rq;
	r->began = r->finished = 0;
	r->run_id = 0;
	memset(&r->res, 0, sizeof(r->res));
	if (pthread_create(&r->thr, NULL, runner_main, r) != 0)
		return CS_ENOMEM;
	r->active = 1;
	return 0;
}

static void
on_command(struct runner *r, nng_socket s, const Crmsync__SyncCommand *cmd)
{
	struct run_req rq;
	char err[512];
	int rv;

	memset(&rq, 0, sizeof(rq));
	rq.trigger = "command";
	if (cmd->trigger != NULL && strcmp(cmd->trigger, "resync") == 0) {
		rq.trigger = "resync";
		rq.sweep_all = 1;
	}
	if (cmd->crm != CRMSYNC__CRM__CRM_HOLLIHOP && cmd->crm != CRMSYNC__CRM__CRM_UNSPECIFIED) {
		(void)bus_reply_ack(s, CRMSYNC__ACK_STATUS__ACK_REJECTED, "this service exports Hollihop only",
		    0, 0, 0, 0);
		return;
	}
	if (cmd->n_entities > nitems(rq.entities)) {
		(void)bus_reply_ack(s, CRMSYNC__ACK_STATUS__ACK_REJECTED, "too many entities", 0, 0, 0, 0);
		return;
	}
	for (size_t i = 0; i < cmd->n_entities; i++)
		snprintf(rq.entities[rq.nentities++], sizeof(rq.entities[0]), "%s", cmd->entities[i]);
	if ((rv = export_check(&rq, err, sizeof(err))) != 0) {
		log_warnx("command.rejected", "err=%s", lq(err));
		(void)bus_reply_ack(s, CRMSYNC__ACK_STATUS__ACK_REJECTED, err, 0, 0, 0, 0);
		return;
	}
	if ((rv = runner_start(r, &rq)) != 0) {
		snprintf(err, sizeof(err), "busy: run %lld is in progress", (long long)r->run_id);
		log_info("command.busy", "run=%lld", (long long)r->run_id);
		(void)bus_reply_ack(s, CRMSYNC__ACK_STATUS__ACK_REJECTED,
		    rv == CS_EBUSY ? err : cs_strerror(rv), 0, 0, 0, r->run_id);
		return;
	}
	/* Answer with the run id once the store has opened the run. */
	int64_t end = bus_now_ms() + conf.store_timeout_ms + 5000;
	pthread_mutex_lock(&r->mtx);
	while (!r->began && !r->finished && bus_now_ms() < end) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&r->cv, &r->mtx, &ts);
	}
	int began = r->began;
	int64_t run_id = r->run_id;
	pthread_mutex_unlock(&r->mtx);
	log_info("command.accepted", "run=%lld entities=%d", (long long)run_id, rq.nentities);
	if (began)
		(void)bus_reply_ack(s, CRMSYNC__ACK_STATUS__ACK_OK, NULL, 0, 0, 0, run_id);
	else
		(void)bus_reply_ack(s, CRMSYNC__ACK_STATUS__ACK_RETRY,
		    r->res.error[0] ? r->res.error : "the store has not opened the run yet", 0, 0, 0, 0);
}

static int
hh_status(void *arg, char *buf, size_t len)
{
	export_status(arg, buf, len);
	return 1;
}

static int
check_timezone(const char *tz)
{
	char path[512];

	if (strchr(tz, '/') == NULL)
		return 0;	/* "UTC", or a POSIX rule like "MSK-3" */
	snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", tz[0] == ':' ? tz + 1 : tz);
	return access(path, R_OK) == 0 ? 0 : CS_EINVAL;
}

/*
 * Name hh_stats[HS__N..] sync_max_age_seconds{crm="hollihop",entity}: for each entity the
 * nightly export reads, the age its last successful sync (the store's
 * last_success_timestamp_seconds) may reach before its data counts as stale: a day plus
 * 6 hours, so a night without a complete export is noticed the next morning. None when
 * the schedule is off. Returns how many.
 */
static size_t
max_age_stats(int minute)
{
	static char names[HS_AGE_MAX][128];
	const struct cat_crm_desc *d = catalog_crm(CAT_HOLLIHOP);
	size_t n = 0;

	for (size_t i = 0; i < d->nentities && n < HS_AGE_MAX && minute >= 0; i++) {
		const char *name = d->entities[i].name;
		struct stat_counter *sc = &hh_stats[HS__N + n];

		if ((conf.entities[0] != '\0' && !strlist_has_str(conf.entities, name)) ||
		    strlist_has_str(conf.skip, name))
			continue;
		snprintf(names[n], sizeof(names[0]), "sync_max_age_seconds{crm=\"hollihop\",entity=\"%s\"}", name);
		sc->name = names[n];
		sc->help = "age the last successful sync of this entity may reach before its data is "
		    "stale (the nightly schedule: 30 h)";
		sc->gauge = STAT_GAUGE;
		stat_set(sc, 30 * 3600);
		n++;
	}
	return n;
}

/* Every configured value that start-up can check, or stop with one clear line. */
static void
check_config(int *minute)
{
	char err[512];
	struct hh_vars v;

	if (check_timezone(conf.timezone) != 0 || normalise_set_timezone(conf.timezone) != 0)
		fatalx("config.bad_timezone", "CS_HOLLIHOP_TIMEZONE=%s is not a known zone", lq(conf.timezone));
	if (schedule_parse(conf.schedule, minute) != 0)
		fatalx("config.bad_schedule", "CS_HOLLIHOP_SCHEDULE=%s: expected HH:MM or off", lq(conf.schedule));
	if (strlen(conf.amo_lead_field) > HH_FIELD_NAME_MAX)
		fatalx("config.bad_amo_lead_field", "CS_HOLLIHOP_AMO_LEAD_FIELD is longer than %d bytes",
		    HH_FIELD_NAME_MAX);
	if (export_check(NULL, err, sizeof(err)) != 0)
		fatalx("config.bad_catalogue", "err=%s", lq(err));
	if (params_vars(&v, &conf, time(NULL)) != 0)
		fatalx("config.bad_dates", "CS_HOLLIHOP_DATE_FROM=%s CS_HOLLIHOP_DATE_TO=%s: expected "
		    "YYYY-MM-DD or +-Nd", lq(conf.date_from), lq(conf.date_to));
	if (conf.entities[0] != '\0' || conf.skip[0] != '\0') {
		struct run_req rq;
		memset(&rq, 0, sizeof(rq));
		for (const char *lists[2] = { conf.entities, conf.skip }, **l = lists; l < lists + 2; l++) {
			const char *cur = *l, *item;
			size_t n;
			while (strlist_next(&cur, &item, &n))
				if (rq.nentities < (int)nitems(rq.entities))
					snprintf(rq.entities[rq.nentities++], sizeof(rq.entities[0]), "%.*s", (int)n, item);
		}
		if (export_check(&rq, err, sizeof(err)) != 0)
			fatalx("config.bad_entities", "CS_HOLLIHOP_ENTITIES/CS_HOLLIHOP_SKIP: %s", lq(err));
	}
}

/* --run-now: one export, then the exit status (0 = complete). */
static int
run_once(struct runner *r)
{
	struct run_req rq;
	struct run_result res;
	int rv;

	memset(&rq, 0, sizeof(rq));
	rq.trigger = "cli";
	rv = export_run(r->x, &rq, NULL, NULL, &res);
	if (rv != 0)
		log_warnx("run.not_started", "err=%s", lq(res.error));
	return rv == 0 && res.status == CRMSYNC__RUN_STATUS__RUN_COMPLETE ? 0 : 1;
}

/* Serve sync commands and the nightly schedule until a signal. */
static void
serve(struct runner *r, int minute)
{
	time_t next = schedule_next(time(NULL), minute);
	char when[32] = "off";
	nng_socket sock;
	int rv;

	if ((rv = bus_listen(&sock, conf.url, 1u << 20)) != 0)
		fatalx("command.listen_failed", "url=%s err=%s", lq(conf.url), lq(cs_strerror(rv)));
	if (next != (time_t)-1) {
		struct tm tm;
		localtime_r(&next, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M%z", &tm);
	}
	log_info("hollihop.ready", "url=%s health=%s store=%s next_run=%s tz=%s", lq(conf.url),
	    lq(conf.health_url), lq(conf.store_url), when, lq(conf.timezone));
	while (!svc_stop) {
		Crmsync__Envelope *env = NULL;

		rv = bus_recv(sock, &env, 250);
		if (rv == 0 && env->body_case == CRMSYNC__ENVELOPE__BODY_SYNC) {
			on_command(r, sock, env->sync);
		} else if (rv == 0 || rv == CS_EPROTO) {
			log_warnx("command.unexpected", "body=%d", env != NULL ? (int)env->body_case : -1);
			(void)bus_reply_ack(sock, CRMSYNC__ACK_STATUS__ACK_REJECTED,
			    "hollihop-sync takes SyncCommand only (health: CS_HOLLIHOP_HEALTH_URL)", 0, 0, 0, 0);
		} else if (rv != CS_ETIMEDOUT) {
			log_warnx("command.recv_failed", "err=%s", lq(cs_strerror(rv)));
		}
		bus_free(env);
		runner_reap(r, 0);
		if (next != (time_t)-1 && time(NULL) >= next) {
			struct run_req rq;
			memset(&rq, 0, sizeof(rq));
			rq.trigger = "schedule";
			if (runner_start(r, &rq) != 0)
				log_warnx("schedule.skipped", "reason=%s", lq("a run is still in progress"));
			next = schedule_next(time(NULL), minute);
		}
	}
	bus_close(sock);
}

int
main(int argc, char **argv)
{
	static int run_now;
	static const struct svc_flag flags[] = {
		{ "--run-now", NULL, "run one export now and exit (0 = complete, 1 = not)", &run_now, NULL },
	};
	static const struct svc_desc desc = {
		.name = "hollihop-sync",
		.summary = "crmsync-hollihop-sync: exports every Hollihop API method into the store,\n"
		    "nightly at CS_HOLLIHOP_SCHEDULE, on a SyncCommand, or once with --run-now.",
		.keys = hh_keys, .nkeys = CFG_NKEYS(hh_keys), .conf = &conf,
		.flags = flags, .nflags = nitems(flags),
	};
	static struct runner runner;
	struct health *health = NULL;
	struct metrics *metrics = NULL;
	nng_socket store;
	int rv, minute, exit_code = 0;

	/*
	 * Pages change hands between the fetchers and the run thread, a few hundred KB each
	 * (a body, its tokens, the packed batch). Buffers up to 1 MiB come from malloc's
	 * heap and are reused as they are freed: mapped fresh from the system and unmapped on
	 * free (the 256 KiB threshold this had), every one of their pages was faulted in
	 * anew, 750,000 faults and about a third of the service's CPU for a bench-scale
	 * export (bench/hollihop/sync_path.py). The heap is trimmed only past 1 MiB free at
	 * its top, and two arenas keep what the threads hold together. The price is memory:
	 * at bench scale peak RSS went from 46 to 52 MB against the null store and from 51
	 * to 63 MB through the store (goal: under 64 MB); a lower threshold trades faults
	 * back for it.
	 */
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
	mallopt(M_TRIM_THRESHOLD, 1 << 20);
	mallopt(M_ARENA_MAX, 2);
	svc_init(argc, argv, &desc);
	svc_signals();
	check_config(&minute);
	if ((rv = bus_dial(&store, conf.store_url, BUS_RECVMAX_DEFAULT)) != 0)
		fatalx("store.dial_failed", "url=%s err=%s", lq(conf.store_url), lq(cs_strerror(rv)));
	if ((rv = export_new(&runner.x, &conf, store, &svc_stop)) != 0)
		fatalx("export.init_failed", "err=%s", lq(cs_strerror(rv)));
	pthread_mutex_init(&runner.mtx, NULL);
	pthread_cond_init(&runner.cv, NULL);
	if ((rv = health_start(&health, conf.health_url, "hollihop-sync", hh_stats, HS__N, hh_status,
	    runner.x)) != 0)
		fatalx("health.listen_failed", "url=%s err=%s", lq(conf.health_url), lq(cs_strerror(rv)));
	if ((rv = metrics_start(&metrics, conf.metrics_addr, "hollihop-sync", hh_stats,
	    HS__N + max_age_stats(minute))) != 0)
		fatalx("metrics.listen_failed", "addr=%s err=%s", lq(conf.metrics_addr), lq(cs_strerror(rv)));
	if (run_now)
		exit_code = run_once(&runner);
	else
		serve(&runner, minute);
	runner_reap(&runner, 1);
	log_info("hollihop.stopping", "runs=%lld", (long long)stat_get(&hh_stats[HS_RUNS_STARTED]));
	metrics_stop(metrics);
	health_stop(health);
	export_free(runner.x);
	bus_close(store);
	cfg_free(hh_keys, CFG_NKEYS(hh_keys), &conf);
	return exit_code;
}
