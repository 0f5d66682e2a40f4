/*
 * main.c - crmsync-amo-sync: wiring only.
 *
 * Peers: the hook gateway and operators send Envelopes to CS_AMO_URL (REP): a
 * HookDelivery is queued (Ack = received, with done_seq and this process's boot_id; the
 * gateway drops its journal only up to done_seq and re-sends the rest when boot_id
 * changes), a SyncCommand starts a run. The worker thread (sync.c) makes every amoCRM
 * request and sends to the store on CS_STORE_URL. Health answers on CS_AMO_HEALTH_URL.
 *   crmsync-amo-sync                   serve: hooks, incremental timer, commands
 *   crmsync-amo-sync --full [--once]   start with a full sync (and exit after it)
 *   crmsync-amo-sync --auth-code CODE  exchange an authorization code, save the tokens, exit
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "amo.h"
#include "bus.h"
#include "errors.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "oauth.h"
#include "strlist.h"
#include "svc.h"
#include "sync.h"
#include "tasks.h"
#include "webhook.h"

#define CFG_STRUCT struct amo_conf

static const struct cfg_key amo_keys[] = {
	CFG_KEY("CS_AMO_URL", CFG_STR, url, "tcp://127.0.0.1:7702", 0, 0,
	  "NNG address (REP) for hook deliveries from hook-gateway and sync commands"),
	CFG_KEY("CS_AMO_HEALTH_URL", CFG_STR, health_url, "tcp://127.0.0.1:7712", 0, 0,
	  "NNG address of the health responder"),
	CFG_KEY("CS_STORE_URL", CFG_STR, store_url, "tcp://127.0.0.1:7701", 0, 0,
	  "NNG address of the store"),
	CFG_KEY("CS_AMO_BASE_URL", CFG_STR, base_url, NULL, 0, 0,
	  "the account's API host, e.g. https://example.amocrm.ru (never www.)"),
	CFG_KEY("CS_AMO_CLIENT_ID", CFG_STR, client_id, "", 0, 0,
	  "OAuth integration id (Settings -> Integrations -> Keys)"),
	CFG_KEY("CS_AMO_CLIENT_SECRET", CFG_SECRET, client_secret, "", 0, 0,
	  "OAuth integration secret key"),
	CFG_KEY("CS_AMO_REDIRECT_URI", CFG_STR, redirect_uri, "", 0, 0,
	  "OAuth redirect URI registered with the integration"),
	CFG_KEY("CS_AMO_TOKEN_FILE", CFG_STR, token_file, "/var/lib/crmsync/amo-token.json", 0, 0,
	  "where the OAuth token pair lives (rewritten atomically on every rotation)"),
	CFG_KEY("CS_AMO_LONG_LIVED_TOKEN", CFG_SECRET, long_lived_token, "", 0, 0,
	  "a long-lived token instead of OAuth (private integrations; never refreshed)"),
	CFG_KEY("CS_AMO_ACCOUNT_ID", CFG_INT, account_id, "0", 0, INT64_MAX,
	  "accept hook deliveries only for this account id (0 = any)"),
	CFG_KEY("CS_AMO_REFRESH_BEFORE", CFG_DURATION, refresh_before_ms, "1h", 0, 30LL * 86400000,
	  "refresh the access token this long before it expires"),
	CFG_KEY("CS_AMO_RPS", CFG_INT, rps, "7", 1, 1000,
	  "API requests per second for this integration (amoCRM: 7; extended plans more)"),
	CFG_KEY("CS_AMO_RATE_MARGIN", CFG_INT, rate_margin_pct, "3", 0, 50,
	  "percent kept below CS_AMO_RPS so network jitter never crosses the limit"),
	CFG_KEY("CS_AMO_INCREMENTAL_INTERVAL", CFG_DURATION, incremental_ms, "5m", 0, 7LL * 86400000,
	  "time between incremental syncs (0 = only on command)"),
	CFG_KEY("CS_AMO_REFERENCE_INTERVAL", CFG_DURATION, reference_ms, "1h", 0, 7LL * 86400000,
	  "how often incremental runs also re-read reference data (users, pipelines, fields...)"),
	CFG_KEY("CS_AMO_LOOKBACK", CFG_DURATION, lookback_ms, "10m", 0, 7LL * 86400000,
	  "incremental passes start this long before the cursor (updated_at has 1 s resolution)"),
	CFG_KEY("CS_AMO_HOOK_QUIET", CFG_DURATION, hook_quiet_ms, "100ms", 0, 3600000,
	  "a hook fetch runs once no hook for its entity came for this long (a burst coalesces)"),
	CFG_KEY("CS_AMO_HOOK_DELAY", CFG_DURATION, hook_delay_ms, "2s", 0, 3600000,
	  "the longest a hook fetch waits for a burst to end (CS_AMO_HOOK_QUIET >= this: fixed delay)"),
	CFG_KEY("CS_AMO_QUEUE_MAX", CFG_INT, queue_max, "200000", 100, 100000000,
	  "most pending hook task keys; beyond it deliveries are answered retry"),
	CFG_KEY("CS_AMO_PAGE_SIZE", CFG_INT, page_size, "250", 1, 250,
	  "rows per list request (amoCRM maximum 250)"),
	CFG_KEY("CS_AMO_HTTP_TIMEOUT", CFG_DURATION, http_timeout_ms, "60s", 1000, 600000,
	  "timeout of one HTTP request"),
	CFG_KEY("CS_AMO_MAX_BODY", CFG_BYTES, max_body, "32MiB", 65536, 1LL << 30,
	  "largest response body accepted"),
	CFG_KEY("CS_AMO_RETRY_MAX", CFG_INT, retry_max, "6", 0, 100,
	  "retries of a request after 5xx or network errors"),
	CFG_KEY("CS_AMO_BACKOFF_MAX", CFG_DURATION, backoff_max_ms, "60s", 100, 3600000,
	  "longest wait between retries"),
	CFG_KEY("CS_AMO_RECV_MAX", CFG_BYTES, recv_max, "16MiB", 4096, 1LL << 30,
	  "largest NNG message accepted"),
	CFG_KEY("CS_AMO_PROGRESS_PAGES", CFG_INT, progress_pages, "20", 0, 1000000,
	  "log and record progress every this many pages (0 = only per entity)"),
	CFG_KEY("CS_AMO_ENTITIES", CFG_STR, entities, "", 0, 0,
	  "comma-separated catalogue entities to sync (empty = all)"),
	CFG_KEY("CS_AMO_MAX_GROWTH", CFG_INT, max_growth, "4", 0, 1000,
	  "an entity reading more than this many times the rows of its last complete full read "
	  "(+10000) in one run is stopped as a page sequence that does not end (0 = no bound)"),
	CFG_KEY("CS_AMO_METRICS_ADDR", CFG_STR, metrics_addr, "", 0, 0,
	  "host:port serving Prometheus GET /metrics over plain HTTP (e.g. 127.0.0.1:9103; empty = off)"),
	CFG_KEY("CS_AMO_WEBHOOK_URL", CFG_SECRET, webhook_url, "", 0, 0,
	  "the gateway's public hook URL as amoCRM calls it, https://<host>:8443/hooks/amo/<CS_GATEWAY_SECRET> "
	  "(secret: it holds the gateway's secret); its subscription is checked (empty = no check)"),
	CFG_KEY("CS_AMO_WEBHOOK_CHECK_INTERVAL", CFG_DURATION, webhook_check_ms, "15m", 0, 7LL * 86400000,
	  "how often the webhook subscription is checked (GET /api/v4/webhooks; 0 = never)"),
	CFG_KEY("CS_AMO_WEBHOOK_REPAIR", CFG_BOOL, webhook_repair, "off", 0, 0,
	  "register the subscription when it is missing, re-enable it when amoCRM disabled it, add "
	  "the events it lacks (needs an account admin's token)"),
	CFG_KEY("CS_AMO_WEBHOOK_EVENTS", CFG_STR, webhook_events, webhook_default_events, 0, 0,
	  "amoCRM webhook events (settings codes) the subscription must send, comma-separated"),
};

static struct amo amo;
static uint64_t boot_id;

/* Ack with the two-phase fields the gateway needs; done counts in the delivery's journal. */
static void
reply_hooks(nng_socket s, Crmsync__AckStatus st, const char *err, const Crmsync__HookDelivery *d,
    uint64_t done)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT;
	Crmsync__Ack ack = CRMSYNC__ACK__INIT;

	ack.status = st;
	ack.error = (char *)(err != NULL ? err : "");
	ack.batch_id = d->seq;
	ack.done_seq = done;
	ack.boot_id = boot_id;
	ack.journal_id = d->journal_id;
	env.body_case = CRMSYNC__ENVELOPE__BODY_ACK;
	env.ack = &ack;
	(void)bus_send(s, &env);
}

static void
on_hooks(struct amo *a, nng_socket s, const Crmsync__HookDelivery *d)
{
	uint64_t done = 0;
	char err[256] = "";
	Crmsync__AckStatus st;

	if (a->conf.account_id != 0 && d->account_id != 0 && d->account_id != a->conf.account_id) {
		log_warnx("hook.foreign_account", "seq=%llu account=%lld expected=%lld",
		    (unsigned long long)d->seq, (long long)d->account_id, (long long)a->conf.account_id);
		/* done_seq 0: nothing said about progress (it may count in another journal) */
		reply_hooks(s, CRMSYNC__ACK_STATUS__ACK_REJECTED, "hook delivery for another account",
		    d, 0);
		return;
	}
	st = tasks_receive(a->tasks, d, &done, err, sizeof(err));
	if (st != CRMSYNC__ACK_STATUS__ACK_OK)
		log_warnx("hook.not_queued", "seq=%llu status=%d reason=%s", (unsigned long long)d->seq,
		    (int)st, lq(err));
	reply_hooks(s, st, err, d, done);
	if (d->n_events > 0)
		amo_wake(a);
}

static void
on_sync(struct amo *a, nng_socket s, const Crmsync__SyncCommand *c)
{
	if (c->crm != CRMSYNC__CRM__CRM_AMO && c->crm != CRMSYNC__CRM__CRM_UNSPECIFIED) {
		(void)bus_reply_ack(s, CRMSYNC__ACK_STATUS__ACK_REJECTED, "this is the amoCRM sync", 0, 0, 0, 0);
		return;
	}
	for (size_t i = 0; i < c->n_entities; i++) {
		if (catalog_find(CAT_AMO, c->entities[i]) == NULL) {
			char err[256];
			snprintf(err, sizeof(err), "unknown entity %s (crmsyncctl catalog list amo)",
			    c->entities[i]);
			(void)bus_reply_ack(s, CRMSYNC__ACK_STATUS__ACK_REJECTED, err, 0, 0, 0, 0);
			return;
		}
	}
	/* An operator asking for a run also means "try the API again" after a ban or revoke. */
	if (atomic_exchange(&a->api_state, API_OK) != API_OK)
		log_info("sync.resume", "a sync command cleared the stopped state");
	sync_request(a, c->kind, (const char *const *)c->entities, c->n_entities,
	    c->trigger != NULL && strcmp(c->trigger, "resync") == 0);
	log_info("sync.requested", "kind=%s entities=%zu", c->kind == CRMSYNC__SYNC_KIND__SYNC_FULL ?
	    "full" : "incremental", c->n_entities);
	(void)bus_reply_ack(s, CRMSYNC__ACK_STATUS__ACK_OK, NULL, 0, 0, 0, 0);
	amo_wake(a);
}

static void
dispatch(struct amo *a, nng_socket s, Crmsync__Envelope *env)
{
	switch (env->body_case) {
	case CRMSYNC__ENVELOPE__BODY_HOOKS:
		on_hooks(a, s, env->hooks);
		return;
	case CRMSYNC__ENVELOPE__BODY_SYNC:
		on_sync(a, s, env->sync);
		return;
	default:
		log_warnx("msg.unexpected", "body=%d", (int)env->body_case);
		(void)bus_reply_ack(s, CRMSYNC__ACK_STATUS__ACK_REJECTED,
		    "amo-sync accepts HookDelivery and SyncCommand", 0, 0, 0, 0);
		return;
	}
}

static void
check_config(struct amo *a)
{
	struct amo_conf *c = &a->conf;

	const char *cur = c->entities, *item;
	size_t k;
	while (strlist_next(&cur, &item, &k)) {
		char name[128];
		snprintf(name, sizeof(name), "%.*s", (int)k, item);
		if (catalog_find(CAT_AMO, name) == NULL)
			fatalx("config.bad_entity", "CS_AMO_ENTITIES names %s, which is not in the catalogue",
			    lq(name));
	}
	if (c->long_lived_token[0] == '\0' && (c->client_id[0] == '\0' || c->client_secret[0] == '\0' ||
	    c->redirect_uri[0] == '\0'))
		fatalx("config.no_auth", "set CS_AMO_CLIENT_ID, CS_AMO_CLIENT_SECRET and "
		    "CS_AMO_REDIRECT_URI (OAuth) or CS_AMO_LONG_LIVED_TOKEN");
	if (strncmp(c->base_url, "https://", 8) != 0 && strncmp(c->base_url, "http://", 7) != 0)
		fatalx("config.bad_base_url", "CS_AMO_BASE_URL must start with https:// (got %s)",
		    lq(c->base_url));
	size_t n = strlen(c->base_url);
	if (n > 0 && c->base_url[n - 1] == '/')
		c->base_url[n - 1] = '\0';
	if (c->webhook_url[0] != '\0' && strncmp(c->webhook_url, "https://", 8) != 0 &&
	    strncmp(c->webhook_url, "http://", 7) != 0)
		fatalx("config.bad_webhook_url", "CS_AMO_WEBHOOK_URL must be the URL amoCRM calls, "
		    "https://<host>:<port>/hooks/amo/<secret>");
	if (c->webhook_url[0] != '\0' && c->webhook_events[0] == '\0')
		fatalx("config.no_webhook_events", "CS_AMO_WEBHOOK_EVENTS is empty");
	if (c->webhook_url[0] != '\0' && c->webhook_check_ms > 0)
		atomic_store(&a->webhook_state, WH_UNKNOWN);
}

/* What every mode needs: the rate limit, the HTTP client, the token state. */
static void
client_open(struct amo *a)
{
	struct http_opts ho = { 0 };
	int rv;

	rl_init(&a->rl, (double)a->conf.rps * (100 - (double)a->conf.rate_margin_pct) / 100.0, 1);
	/* The limit is a sliding second: a process started right after another one (a restart,
	 * --auth-code) must not add its first requests to the other's last second. */
	rl_pause(&a->rl, 1000);
	ho.timeout_ms = a->conf.http_timeout_ms;
	ho.max_body = (size_t)a->conf.max_body;
	if ((rv = http_new(&a->http, &ho)) != 0)
		fatalx("http.init_failed", "err=%s", lq(cs_strerror(rv)));
	if ((rv = oauth_open(a)) != 0)
		fatalx("oauth.init_failed", "file=%s err=%s", lq(a->conf.token_file), lq(cs_strerror(rv)));
}

static void
client_close(struct amo *a)
{
	oauth_close(a);
	http_free(a->http);
	rl_destroy(&a->rl);
}

/* --auth-code: exchange the code for the first token pair; the exit status. */
static int
auth_code_run(struct amo *a, const char *code)
{
	int rv = oauth_exchange_code(a, code);

	if (rv != 0)
		log_warnx("oauth.exchange_failed", "err=%s", lq(cs_strerror(rv)));
	else
		log_info("oauth.authorised", "file=%s", lq(a->conf.token_file));
	return rv == 0 ? 0 : 1;
}

/* A scrape reads the API state as it is now (a SyncCommand clears it without a stat). */
static void
on_scrape(void *arg)
{
	struct amo *a = arg;

	amo_gauge(a, AS_API_STATE, amo_api_state(a));
}

/*
 * Name a->stats[AS__N..] sync_max_age_seconds{crm="amo",entity}: for each entity of the
 * selection, the age its last successful sync (the store's last_success_timestamp_seconds)
 * may reach before its data counts as stale: two periods of its schedule plus 10 minutes
 * (one missed run is not yet stale). The period is CS_AMO_INCREMENTAL_INTERVAL, or the
 * reference interval for entities an incremental run re-reads whole (no updated_at
 * filter). None when the incremental timer is off. Returns how many.
 */
static size_t
max_age_stats(struct amo *a)
{
	static char names[AS_AGE_MAX][128];
	size_t n = 0;

	for (size_t i = 0; i < catalog_amo.nentities && n < AS_AGE_MAX && a->conf.incremental_ms > 0; i++) {
		const struct cat_entity *e = &catalog_amo.entities[i];
		int64_t period = a->conf.incremental_ms;
		struct stat_counter *sc = &a->stats[AS__N + n];

		if (a->conf.entities[0] != '\0' && !strlist_has_str(a->conf.entities, e->name))
			continue;
		if (!(e->flags & CE_INCREMENTAL) && a->conf.reference_ms > period)
			period = a->conf.reference_ms;
		snprintf(names[n], sizeof(names[0]), "sync_max_age_seconds{crm=\"amo\",entity=\"%s\"}", e->name);
		sc->name = names[n];
		sc->help = "age the last successful sync of this entity may reach before its data is "
		    "stale (2 x its schedule's period + 10 min)";
		sc->gauge = STAT_GAUGE;
		stat_set(sc, (2 * period) / 1000 + 600);
		n++;
	}
	return n;
}

/* Serving: the task queue, the store client, health, metrics, the REP socket, the worker. */
static void
serve_start(struct amo *a, nng_socket *sock, struct health **health, struct metrics **metrics,
    pthread_t *worker)
{
	int rv;

	if (getrandom(&boot_id, sizeof(boot_id), 0) != sizeof(boot_id) || boot_id == 0)
		boot_id = (uint64_t)bus_now_ms() * 2654435761u + 1;
	if ((rv = tasks_new(&a->tasks, (size_t)a->conf.queue_max, a->conf.hook_quiet_ms,
	    a->conf.hook_delay_ms, a->stats)) != 0)
		fatalx("amo.init_failed", "err=%s", lq(cs_strerror(rv)));
	if ((rv = sync_open(a)) != 0)
		fatalx("store.dial_failed", "url=%s err=%s", lq(a->conf.store_url), lq(cs_strerror(rv)));
	if ((rv = health_start(health, a->conf.health_url, "amo-sync", a->stats, AS__N,
	    amo_status, a)) != 0)
		fatalx("health.listen_failed", "url=%s err=%s", lq(a->conf.health_url), lq(cs_strerror(rv)));
	if ((rv = metrics_start(metrics, a->conf.metrics_addr, "amo-sync", a->stats,
	    AS__N + max_age_stats(a))) != 0)
		fatalx("metrics.listen_failed", "addr=%s err=%s", lq(a->conf.metrics_addr), lq(cs_strerror(rv)));
	metrics_on_scrape(*metrics, on_scrape, a);
	if ((rv = bus_listen(sock, a->conf.url, (size_t)a->conf.recv_max)) != 0)
		fatalx("amo.listen_failed", "url=%s err=%s", lq(a->conf.url), lq(cs_strerror(rv)));
	if (pthread_create(worker, NULL, sync_worker, a) != 0)
		fatalx("amo.thread_failed", "worker");
	log_info("amo.ready", "url=%s health=%s store=%s api=%s rps=%lld boot_id=%llu", lq(a->conf.url),
	    lq(a->conf.health_url), lq(a->conf.store_url), lq(a->conf.base_url),
	    (long long)a->conf.rps, (unsigned long long)boot_id);
}

/* The REP loop: hook deliveries and sync commands, until a signal or the worker stops. */
static void
serve(struct amo *a, nng_socket sock)
{
	while (!svc_stop && !a->stop) {
		Crmsync__Envelope *env = NULL;
		nng_msg *msg = NULL;
		int rv;

		rv = bus_recv_msg(sock, &msg, &env, 250);
		if (rv == CS_ETIMEDOUT)
			continue;
		if (rv == CS_ECLOSED)
			break;
		if (rv == CS_EPROTO) {
			log_warnx("msg.undecodable", "len=%zu", msg != NULL ? nng_msg_len(msg) : 0);
			(void)bus_reply_ack(sock, CRMSYNC__ACK_STATUS__ACK_REJECTED, "undecodable message",
			    0, 0, 0, 0);
		} else if (rv == 0) {
			dispatch(a, sock, env);
		} else {
			log_warnx("amo.recv_failed", "err=%s", lq(cs_strerror(rv)));
		}
		bus_free(env);
		if (msg != NULL)
			nng_msg_free(msg);
	}
}

/* Stop the worker, then everything serve_start started, in reverse. */
static void
serve_stop(struct amo *a, nng_socket sock, struct health *health, struct metrics *metrics,
    pthread_t worker)
{
	log_info("amo.stopping", "done_seq=%llu queue=%zu", (unsigned long long)tasks_done_seq(a->tasks),
	    tasks_depth(a->tasks));
	a->stop = 1;
	amo_wake(a);
	pthread_join(worker, NULL);
	bus_close(sock);
	metrics_stop(metrics);
	health_stop(health);
	sync_close(a);
	tasks_free(a->tasks);
}

int
main(int argc, char **argv)
{
	int full = 0, once = 0, rv = 0;
	const char *auth_code = NULL;
	const struct svc_flag flags[] = {
		{ "--full", NULL, "start with a full sync of every entity", &full, NULL },
		{ "--once", NULL, "exit after the first sync run", &once, NULL },
		{ "--auth-code", "CODE", "exchange an OAuth authorization code, save the tokens, exit",
		  NULL, &auth_code },
	};
	const struct svc_desc desc = {
		.name = "amo-sync",
		.summary = "crmsync-amo-sync: mirrors an amoCRM account into PostgreSQL through the store:\n"
		    "webhook-driven fetches, incremental syncs by updated_at, deletions from events,\n"
		    "full syncs on demand; every request under the account's rate limit.",
		.keys = amo_keys, .nkeys = CFG_NKEYS(amo_keys), .conf = &amo.conf,
		.flags = flags, .nflags = nitems(flags),
	};
	struct health *health = NULL;
	struct metrics *metrics = NULL;
	pthread_t worker;
	nng_socket sock;

	svc_init(argc, argv, &desc);
	svc_signals();
	amo_init(&amo);
	check_config(&amo);
	client_open(&amo);
	if (auth_code != NULL) {
		rv = auth_code_run(&amo, auth_code);
		goto out;
	}
	amo.once = once;
	if (full)
		atomic_store(&amo.want_full, 1);
	else if (once)
		atomic_store(&amo.want_incremental, 1);
	serve_start(&amo, &sock, &health, &metrics, &worker);
	serve(&amo, sock);
	serve_stop(&amo, sock, health, metrics, worker);
out:
	client_close(&amo);
	amo_destroy(&amo);
	cfg_free(amo_keys, CFG_NKEYS(amo_keys), &amo.conf);
	return rv;
}
