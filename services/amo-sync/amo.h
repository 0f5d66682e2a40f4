/*
 * amo.h - crmsync-amo-sync: mirrors one amoCRM account into the store.
 *
 * Files by role: main.c wires config, sockets and threads and answers the hook gateway;
 * oauth.c owns the tokens (exchange, refresh, atomic persistence, the refresh lock);
 * api.c makes every HTTP request under the shared rate limit and maps statuses to errors;
 * fetch.c is the one generic paging loop over catalogue entities; events.c turns
 * *_deleted events into soft deletes; tasks.c is the hook task queue (coalescing,
 * batching by id, done_seq); sink.c talks to the store; sync.c runs full and
 * incremental syncs and is the worker thread's loop.
 *
 * Threads: main (REP socket for hooks and commands), one worker (all API and store
 * traffic, so requests are strictly one at a time), the health responder.
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
	int64_t	 account_id;		/* 0 = accept hooks of any account */
	int64_t	 refresh_before_ms;
	int64_t	 rps;
	int64_t	 rate_margin_pct;
	int64_t	 incremental_ms;
	int64_t	 reference_ms;
	int64_t	 lookback_ms;
	int64_t	 hook_delay_ms;
	int64_t	 queue_max;
	int64_t	 page_size;
	int64_t	 http_timeout_ms;
	int64_t	 max_body;
	int64_t	 retry_max;
	int64_t	 backoff_max_ms;
	int64_t	 recv_max;
	int64_t	 progress_pages;
};

enum amo_stat {
	AS_REQUESTS, AS_HTTP_429, AS_HTTP_401, AS_HTTP_5XX, AS_NET_ERRORS, AS_ROWS, AS_BATCHES,
	AS_DELETES, AS_BAD_ROWS, AS_REJECTED, AS_HOOK_DELIVERIES, AS_HOOK_EVENTS, AS_HOOK_FETCHES,
	AS_QUEUE_DEPTH, AS_DONE_SEQ, AS_RUNS_OK, AS_RUNS_FAILED, AS_TOKEN_REFRESHES, AS_API_STATE,
	AS__N
};
extern struct stat_counter amo_stats[AS__N];

/* Why the worker is not talking to the API (AS_API_STATE). */
enum api_state {
	API_OK = 0,
	API_REVOKED = 1,	/* no usable token: re-authorise (--auth-code) */
	API_BANNED = 2,		/* 403: the account is blocked; needs a human */
};

struct oauth;
struct tasks;
struct fetch_memo;

struct amo {
	struct amo_conf		 conf;
	volatile _Atomic int		 stop;
	atomic_int		 state;		/* enum api_state */
	atomic_int		 want_full;	/* set by SyncCommand / --full */
	atomic_int		 want_incremental;
	pthread_mutex_t		 mtx;		/* guards the wake-up below */
	pthread_cond_t		 wake;		/* hooks arrived, a command, stop */
	struct ratelimit	 rl;
	struct http		*http;		/* worker thread only */
	struct oauth		*oauth;		/* worker thread only (and main before it starts) */
	struct tasks		*tasks;		/* locked inside */
	struct fetch_memo	*memo;		/* worker thread only */
	nng_socket		 store;		/* REQ, worker thread only */
	uint64_t		 batch_seq;
	int			 once;		/* exit after the first run */
	char			 last_error[256];	/* under mtx */
};

void	amo_wake(struct amo *a);
void	amo_set_error(struct amo *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* oauth.c */
int	oauth_open(struct amo *a);
void	oauth_close(struct amo *a);
/* Exchange an authorization code for the first token pair and persist it. */
int	oauth_exchange_code(struct amo *a, const char *code);
/* The access token to send now (refreshed first when close to expiry). CS_EREVOKED when
 * there is none usable; CS_ENET/CS_ERETRY when a refresh failed for a temporary reason. */
int	oauth_token(struct amo *a, char *dst, size_t cap);
/* A request with token `used` got 401: refresh once unless another refresh happened. */
int	oauth_after_401(struct amo *a, const char *used);
/* Re-read the token file if it changed since it was read (an operator re-authorised);
 * 0 and state API_OK when it now holds a pair, CS_ENOENT when unchanged. */
int	oauth_reload(struct amo *a);

/* api.c */
/*
 * GET base_url + path_query with the bearer token, under the rate limit. 429 pauses everyone
 * (Retry-After or backoff) and retries; 5xx and network errors retry with jittered backoff
 * up to retry_max; 401 refreshes once and retries. Returns 0 with resp->status 200..204
 * (204 = empty), CS_EREVOKED, CS_EBANNED (403: state set, loud alert), CS_ENOENT (404),
 * CS_EREMOTE (other 4xx; resp kept for the caller), CS_ENET, CS_ECANCELED.
 * resp is always initialised; free it with http_response_free().
 */
int	api_get(struct amo *a, const char *path_query, struct http_response *resp);
/* POST a JSON body to base_url + path without a token, under the rate limit (OAuth). */
int	api_post_json(struct amo *a, const char *path, const char *body, struct http_response *resp);

/* fetch.c */
enum fetch_mode { FETCH_FULL, FETCH_INCREMENTAL, FETCH_IDS };

struct fetch_result {
	int64_t	rows;
	int64_t	pages;
	int	complete;	/* every page was read and every batch committed */
};

int	fetch_memo_new(struct amo *a);
void	fetch_memo_free(struct amo *a);
/* Fetch entity e (every parent value) in mode FULL or INCREMENTAL, sending a batch per page. */
int	fetch_entity(struct amo *a, const struct cat_entity *e, enum fetch_mode mode,
	    int64_t run_id, struct fetch_result *res);
/* Fetch the rows with these keys (<= 250) of e, for parent value param (may be NULL). */
int	fetch_ids(struct amo *a, const struct cat_entity *e, const char *param,
	    char *const *keys, size_t n, struct fetch_result *res);
/* The value list an entity's {param} takes ("leads,contacts" or a parent's keys). */
int	fetch_param_known(struct amo *a, const struct cat_entity *e, const char *value);

/* events.c */
struct json;
struct arena;
/* Soft deletes implied by the *_deleted events of one page; sent before the page itself. */
int	events_deletes(struct amo *a, const struct cat_entity *events, const struct json *j,
	    int list, int64_t run_id);

/* sink.c */
int	sink_open(struct amo *a);
void	sink_close(struct amo *a);
/* Send until committed. CS_EREJECTED: dead-lettered by the store (logged, counted). */
int	sink_batch(struct amo *a, Crmsync__RecordBatch *b);
/* Queue a batch (packed now: b's memory may be freed on return) without waiting for it. */
int	sink_batch_async(struct amo *a, Crmsync__RecordBatch *b);
/* Wait until every queued batch is answered; returns the count of rejected batches so far. */
uint64_t sink_flush(struct amo *a);
/* Soft-delete keys[i] (version ver_us[i]) of e in one batch. */
int	sink_deletes(struct amo *a, const struct cat_entity *e, const char *param,
	    char *const *keys, const int64_t *ver_us, size_t n, int64_t run_id);
int	sink_run_begin(struct amo *a, Crmsync__SyncKind kind, const char *trigger,
	    const struct cat_entity *const *ents, size_t n, int64_t *run_id);
int	sink_run_end(struct amo *a, int64_t run_id, Crmsync__RunStatus status, const char *error,
	    const struct cat_entity *const *ents, const struct fetch_result *res, size_t n);
int	sink_progress(struct amo *a, int64_t run_id, const char *entity, int64_t rows, int64_t pages);
/* Read cursor `name`; *found = 0 when the store has none. */
int	sink_cursor_get(struct amo *a, const char *name, char *dst, size_t cap, int *found);

/* tasks.c */
int	tasks_new(struct tasks **out, size_t max_items, int64_t delay_ms);
void	tasks_free(struct tasks *t);
/* Main thread: queue a delivery. Returns the Ack status; *done_seq is the current done_seq. */
Crmsync__AckStatus tasks_receive(struct tasks *t, const Crmsync__HookDelivery *d,
	    uint64_t *done_seq, char *err, size_t errlen);
uint64_t tasks_done_seq(struct tasks *t);
/* Worker: execute what is due (at most max fetch requests; all due deletes). */
int	tasks_run_ready(struct amo *a, int max);
/* Milliseconds until the next task is due (0 = now), or -1 when the queue is empty. */
int64_t	tasks_due_in_ms(struct tasks *t);
size_t	tasks_depth(struct tasks *t);

/* sync.c */
/* One run over the catalogue (SYNC_FULL or SYNC_INCREMENTAL). */
int	sync_run(struct amo *a, Crmsync__SyncKind kind, const char *trigger);
/* The worker thread: hook tasks, the incremental timer, requested runs. */
void	*sync_worker(void *arg);

#endif
