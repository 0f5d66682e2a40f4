/*
 * hh.h - crmsync-hollihop-sync: the Hollihop API client that exports a whole account.
 *
 * Data flow of one run (export.c): for each catalogue entity, a fetcher thread (fetch.c)
 * pages through the API method (api.c: one call = rate limit + POST form + retries +
 * error classification) and queues parsed pages; the run thread normalises each page's
 * rows with the catalogue (lib/normalise) and sends them to the store as RecordBatches.
 * params.c expands the catalogue's parameter templates; schedule.c finds the next nightly
 * start; main.c wires config, sockets, health and the command loop.
 */
#ifndef HH_H
#define HH_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include <nng/nng.h>

#include "buf.h"
#include "catalog.h"
#include "http.h"
#include "json.h"
#include "normalise.h"
#include "ratelimit.h"
#include "stats.h"

struct hh_conf {
	char	*base_url;
	char	*authkey;
	char	*url;
	char	*health_url;
	char	*store_url;
	char	*schedule;
	char	*timezone;
	char	*culture;
	char	*entities;
	char	*skip;
	char	*date_from;
	char	*date_to;
	char	*amo_lead_field;
	int64_t	 rate;
	int64_t	 rate_window_ms;
	int64_t	 page_size;
	int64_t	 timeout_ms;
	int64_t	 connect_timeout_ms;
	int64_t	 retries;
	int64_t	 backoff_base_ms;
	int64_t	 backoff_max_ms;
	int64_t	 max_body;
	int64_t	 max_tokens;
	int64_t	 max_pages;
	int64_t	 per_client_limit;
	int64_t	 sweep_every_ms;	/* per-client methods: all clients this often */
	int64_t	 changed_lookback_ms;	/* changed since: the last pass's newest stamp less this */
	int64_t	 batch_rows;
	int64_t	 queue_pages;
	int64_t	 concurrency;		/* entities read at once */
	int64_t	 store_timeout_ms;
	int64_t	 store_deadline_ms;
	int64_t	 max_growth;
	char	*metrics_addr;
};

enum {
	HS_RUNS_STARTED, HS_RUNS_COMPLETE, HS_RUNS_FAILED, HS_RUNNING, HS_LAST_RUN_ID,
	HS_LAST_OK_UNIX, HS_REQUESTS, HS_RETRIES, HS_RATE_LIMITED, HS_BYTES_IN, HS_PAGES,
	HS_ROWS_SENT, HS_ROWS_BAD, HS_BAD_VALUES, HS_BATCHES_SENT, HS_BATCHES_REJECTED, HS__N
};
/* After HS__N: main.c's sync_max_age_seconds{crm,entity} (metrics only). */
#define HS_AGE_MAX	64
extern struct stat_counter hh_stats[HS__N + HS_AGE_MAX];

/* Longest CS_HOLLIHOP_AMO_LEAD_FIELD (extra field names are short UI labels). */
#define HH_FIELD_NAME_MAX	255

/* ---- params.c: the catalogue's parameter templates ----
 * A template is "k=v&k=v". A value may be "{$name}" (a run variable: today, date_from,
 * date_to, parent) or "{a|b|c}" (one pass per alternative). Every parameter is also a
 * context value "$k" for the catalogue's columns (e.g. "$clientId", "$targets"). */
#define PARAMS_MAX_ALTS	16

struct hh_vars {
	char	today[16];
	char	date_from[16];
	char	date_to[16];
	const char *parent;	/* per-parent calls: the parent's key; NULL otherwise */
};

/* Alternatives of the template's "{a|b}" value into alts (at most max); 0 when none. */
int	params_alternatives(const char *tmpl, char alts[][64], int max);
/*
 * Append the expanded, urlencoded form of tmpl to form ("&k=v" per parameter) and record
 * every parameter as a context value. alt is the pass's alternative (or NULL). Values are
 * copied into store (cap bytes), which must live as long as ctx. CS_EINVAL + err for an
 * unknown variable.
 */
int	params_expand(const char *tmpl, const char *alt, const struct hh_vars *v, struct buf *form,
	    struct norm_ctx *ctx, char *store, size_t cap, char *err, size_t errlen);
/* "2024-01-31", or "-365d"/"+90d"/"0d" relative to today (local time) -> YYYY-MM-DD. */
int	params_date(const char *spec, time_t now, char out[16]);
/* Context values every call's rows see, from the config: "$amo_lead_field". */
void	params_context(struct norm_ctx *ctx, const struct hh_conf *c);
int	params_vars(struct hh_vars *v, const struct hh_conf *c, time_t now);

/* ---- api.c: one Hollihop call ---- */
struct api;

int	api_new(struct api **out, const struct hh_conf *c, struct ratelimit *rl);
void	api_free(struct api *a);
/*
 * POST <base>/<method> with "authkey=…" + form. Waits for the rate limit, retries network
 * errors, 5xx, rate-limit answers and unparsable bodies with jittered exponential backoff.
 * On success resp holds the body and j its parse (the caller frees both: json_free,
 * http_response_free). On failure returns CS_EAUTH (authkey refused), CS_EREMOTE (an
 * {"Error": …} answer or a 4xx), CS_EJSON/CS_ENET/CS_ETIMEDOUT (retries exhausted),
 * CS_ETOOBIG or CS_ECANCELED, with a message in err; resp/j are then already freed.
 */
int	api_call(struct api *a, const char *method, const char *form, volatile _Atomic int *stop,
	    struct http_response *resp, struct json *j, char *err, size_t errlen);

/* ---- fetch.c: a fetcher thread that pages one entity and queues parsed pages ---- */
struct page {
	struct page		*next;
	struct http_response	 resp;
	struct json		 j;
	int			 rows;		/* token of the rows array, or of the one row */
	int			 one_row;	/* the response itself is the row */
	int			 nrows;
	int64_t			 skip;
	int			 pass;		/* which page sequence (alternative, parent) it is of */
	struct norm_ctx		 ctx;
	char			 ctxstore[1024];
};

/* Parent keys collected while exporting a parent entity: NUL-separated strings. */
struct keys {
	struct buf	 b;
	size_t		 n;
};

struct fetch;

/* Pages a per-client fetch may queue (each one client's answer: small). */
#define FETCH_PER_PARENT_QUEUE	64

/* What one consumer of several fetches waits on: every fetch rings it when it queues a
 * page and when it ends, and the store client when the store answered something (an
 * entity may wait for its batches' answers), so the consumer sleeps until one of them
 * has something. */
struct fetch_bell {
	pthread_mutex_t	 mtx;
	pthread_cond_t	 cv;
	uint64_t	 rings;
};

void	bell_init(struct fetch_bell *b);
void	bell_destroy(struct fetch_bell *b);
uint64_t bell_rings(struct fetch_bell *b);
/* Ring it (arg: the bell; a storecli wake callback). */
void	bell_ring(void *arg);
/* Wait until the bell has rung after `seen` (bell_rings' value), at most ms. */
void	bell_wait(struct fetch_bell *b, uint64_t seen, int ms);

/*
 * Start fetching entity e (all passes). The thread stops early on *stop. keys: the parent's
 * keys for PAGE_PER_PARENT (read only while the fetch runs). api: this fetch's own (one
 * connection per thread; the rate limit behind it is shared). Pages come out of
 * fetch_next() or fetch_poll() in order; the caller frees each with page_free(). bell
 * (may be NULL) is rung on every page and at the end.
 */
int	fetch_start(struct fetch **out, const struct cat_entity *e, const struct hh_conf *c,
	    struct api *api, const struct hh_vars *vars, const struct keys *parents,
	    volatile _Atomic int *stop, struct fetch_bell *bell);
/*
 * The next page, or NULL at the end: then fetch_finish() tells why (0 = the entity was
 * read to its end; *truncated = 1 when a configured cap cut it short).
 */
struct page *fetch_next(struct fetch *f);
/* Without waiting: 1 and *out = the next page, 0 none yet, -1 the end (fetch_finish). */
int	fetch_poll(struct fetch *f, struct page **out);
int	fetch_finish(struct fetch *f, int *truncated, int64_t *pages, char *err, size_t errlen);
void	page_free(struct page *p);

/* ---- export.c: one run ---- */
#define EXPORT_CONCURRENCY_MAX	16	/* CS_HOLLIHOP_CONCURRENCY's bound */

struct run_req {
	const char	*trigger;		/* "schedule", "cli", "command", "resync" */
	char		 entities[64][64];	/* empty = all */
	int		 nentities;
	int		 sweep_all;		/* per-client methods call every client (resync) */
};

struct run_result {
	int64_t		 run_id;
	int		 status;		/* Crmsync__RunStatus */
	char		 error[1024];
};

struct exporter;

/* The exporter sends to the store over s (still the caller's to close) until *stop. */
int	export_new(struct exporter **out, const struct hh_conf *c, nng_socket store,
	    volatile _Atomic int *stop);
void	export_free(struct exporter *x);
/* Check the catalogue and a run request (entity names); CS_EUNKNOWN_ENTITY + err. */
int	export_check(const struct run_req *rq, char *err, size_t errlen);
/*
 * Run one export. on_begin(arg, run_id) is called once the store has opened the run (so a
 * command can be answered with its id). Returns 0 when the run was recorded (whatever its
 * status, see res), else the error that kept it from being opened.
 */
int	export_run(struct exporter *x, const struct run_req *rq, void (*on_begin)(void *, int64_t),
	    void *arg, struct run_result *res);
/* One line about what the current run is doing, for the health status (thread-safe). */
void	export_status(struct exporter *x, char *buf, size_t len);

/* ---- schedule.c ---- */
/* Parse "HH:MM" (or "off"); *minute = -1 for off. */
int	schedule_parse(const char *s, int *minute);
/* The next time after now when the local clock shows minute-of-day m. */
time_t	schedule_next(time_t now, int minute);

#endif
