/*
 * amo.h - crmsync-amo-sync: mirrors one amoCRM account into the store.
 *
 * This header is the service state (amo.c owns it: counters, the API state, the last
 * error, the wake-up); each role has its own header, and calls go one way only:
 *   main.c   -> sync.h, tasks.h, oauth.h              wiring, the REP socket, threads
 *   sync.c   -> fetch.h, tasks.h, oauth.h, account.h, webhook.h, storecli   runs and the worker loop; it hands
 *                                                     tasks.c the fetch and delete calls and
 *                                                     fetch.c the "between pages" call
 *   fetch.c  -> api.h, events.h, storecli             the one paging loop
 *   events.c -> storecli                              *_deleted events -> soft deletes
 *   account.c -> api.h                                the account's UTC offset -> normaliser
 *   tasks.c  -> (callbacks only)                      the hook task queue
 *   webhook.c -> api.h                                the account's webhook subscription
 *   api.c    -> oauth.h, request.h                    authorised GETs and their status policy
 *   oauth.c  -> request.h                             the token pair
 *   request.c -> lib/http, lib/ratelimit              one rate-limited, counted request
 * Everything reports counters and errors through amo_count() and amo_set_error() below.
 *
 * Threads: main (the REP socket for hooks and commands), the worker (sync.c: every API
 * request, so they are strictly one at a time, and every message to the store), the store
 * client's sender (lib/storecli: owns the store socket), the health responder.
 */
#ifndef AMO_H
#define AMO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <nng/nng.h>

#include "catalog.h"
#include "crmsync.pb-c.h"
#include "http.h"
#include "ratelimit.h"
#include "stats.h"

/* Read-only once the threads start. */
struct amo_conf {
	char	*url;			/* REP: hook deliveries and sync commands */
	char	*health_url;
	char	*store_url;
	char	*base_url;		/* https://<subdomain>.amocrm.ru */
	char	*client_id;
	char	*client_secret;
	char	*redirect_uri;
	char	*token_file;
	char	*long_lived_token;
	char	*entities;		/* comma list to sync; empty = the whole catalogue */
	char	*metrics_addr;		/* Prometheus GET /metrics; empty = off */
	char	*webhook_url;		/* the gateway's public hook URL (holds its secret); empty = off */
	char	*webhook_events;	/* amoCRM settings codes a subscription must have */
	int64_t	 webhook_check_ms;	/* how often the subscription is checked */
	int	 webhook_repair;	/* register / re-enable it when missing / disabled */
	int64_t	 account_id;		/* 0 = accept hooks of any account */
	int64_t	 refresh_before_ms;
	int64_t	 rps;
	int64_t	 rate_margin_pct;
	int64_t	 incremental_ms;
	int64_t	 reference_ms;
	int64_t	 lookback_ms;
	int64_t	 hook_quiet_ms;
	int64_t	 hook_delay_ms;
	int64_t	 queue_max;
	int64_t	 page_size;
	int64_t	 http_timeout_ms;
	int64_t	 max_body;
	int64_t	 retry_max;
	int64_t	 backoff_max_ms;
	int64_t	 recv_max;
	int64_t	 progress_pages;
	int64_t	 max_growth;		/* readguard: rows past growth x the last complete read */
};

enum amo_stat {
	AS_REQUESTS, AS_HTTP_429, AS_HTTP_401, AS_HTTP_5XX, AS_NET_ERRORS, AS_ROWS, AS_BATCHES,
	AS_DELETES, AS_BAD_ROWS, AS_REJECTED, AS_HOOK_DELIVERIES, AS_HOOK_EVENTS, AS_HOOK_FETCHES,
	AS_QUEUE_DEPTH, AS_DONE_SEQ, AS_RUNS_OK, AS_RUNS_FAILED, AS_TOKEN_REFRESHES, AS_API_STATE,
	AS_TOKEN_FAILURES, AS_WEBHOOK_OK, AS_WEBHOOK_CHECKED, AS_WEBHOOK_REPAIRS, AS__N
};
/* After AS__N in amo.stats: main.c's sync_max_age_seconds{crm,entity}, one per entity synced
 * on a schedule (metrics only, not in the health answer). */
#define AS_AGE_MAX	64

/* Why the worker is not talking to the API (AS_API_STATE). */
enum api_state {
	API_OK = 0,
	API_REVOKED = 1,	/* no usable token: re-authorise (--auth-code) */
	API_BANNED = 2,		/* 403: the account is blocked; needs a human */
};

struct oauth;
struct tasks;
struct fetch_memo;
struct storecli;

struct amo {
	struct amo_conf		 conf;		/* read-only once the threads start */
	struct stat_counter	 stats[AS__N + AS_AGE_MAX];	/* atomic: any thread, through amo_count() */
	volatile _Atomic int	 stop;		/* any thread sets it; everyone polls it */
	atomic_int		 api_state;	/* enum api_state: set by the worker (api, oauth),
						   cleared by a SyncCommand; read by health */
	atomic_int		 want_full;	/* set by main (SyncCommand, --full), taken by the worker */
	atomic_int		 want_incremental;
	/* Entities the commands asked for, a comma list ("" = the configured selection); set
	 * with want_* under mtx by main, taken by the worker. */
	char			 want_entities[2048];
	int			 want_resync;	/* every waiting request was a resync (trigger) */
	int			 once;		/* exit after the first run; set before the threads */
	pthread_mutex_t		 mtx;		/* guards wake, want_entities, last_error, webhook_note */
	pthread_cond_t		 wake;		/* hooks arrived, a command, stop */
	char			 last_error[256];
	atomic_int		 webhook_state;	/* enum webhook_state: set by the worker, read by health */
	char			 webhook_note[320];	/* what health says about it */
	struct ratelimit	 rl;		/* locked inside */
	struct http		*http;		/* worker thread only */
	struct oauth		*oauth;		/* worker thread only (main before it starts) */
	struct tasks		*tasks;		/* locked inside: main queues, the worker executes */
	struct fetch_memo	*memo;		/* worker thread only */
	nng_socket		 store_sock;	/* REQ to the store: used only by store's sender thread */
	struct storecli		*store;		/* worker thread only (sync.c opens and closes it) */
};

/* amo.c: the state's life and the one way to report into it. */
void	amo_init(struct amo *a);
void	amo_destroy(struct amo *a);
static inline void
amo_count(struct amo *a, enum amo_stat s, int64_t n)
{
	stat_add(&a->stats[s], n);
}
static inline void
amo_gauge(struct amo *a, enum amo_stat s, int64_t v)
{
	stat_set(&a->stats[s], v);
}
static inline int64_t
amo_stat(struct amo *a, enum amo_stat s)
{
	return stat_get(&a->stats[s]);
}
/* The text health shows when syncing has stopped (any thread). */
void	amo_set_error(struct amo *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Stop (API_REVOKED, API_BANNED) or resume (API_OK) talking to the API. */
void	amo_set_api_state(struct amo *a, enum api_state st);
enum api_state amo_api_state(struct amo *a);
/* Wake the worker (hooks queued, a command, stop). */
void	amo_wake(struct amo *a);
/* Worker: sleep until woken, a run is asked for, or ms pass. */
void	amo_wait(struct amo *a, int64_t ms);
/* Health status callback: 1 = healthy; buf says why not. */
int	amo_status(void *arg, char *buf, size_t len);

#endif
