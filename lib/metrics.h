/*
 * metrics.h - a service's stat_counter array (lib/stats.h) as Prometheus text, served over
 * plain HTTP: GET /metrics on a configured address ("127.0.0.1:9101"; empty = off).
 *
 * NNG's HTTP server runs the endpoint on NNG's own threads: a scrape only reads the
 * atomic counters and formats a bounded buffer, so it never blocks and is never blocked by
 * the service's work. Every stat becomes one metric family:
 *
 *   # HELP crmsync_rows_written_total rows inserted, changed or deleted
 *   # TYPE crmsync_rows_written_total counter
 *   crmsync_rows_written_total{service="store"} 1234
 *   # HELP crmsync_db_up 1 when connected to PostgreSQL
 *   # TYPE crmsync_db_up gauge
 *   crmsync_db_up{service="store"} 1
 *
 * Counters get the conventional `_total` suffix (unless the name already ends in it),
 * gauges keep their name. A stat named `family{crm="amo",entity="users"}` is one labelled
 * sample: consecutive stats of one family with labels share one HELP/TYPE, e.g.
 * crmsync_deletions_refused_total{service="store",crm="amo",entity="users"} 1. Two families are always present: crmsync_up (1) and
 * crmsync_uptime_seconds, plus crmsync_build_info{service,version} 1. Histograms are a run
 * of STAT_HISTOGRAM stats (`family_bucket{le="1"}` …, `family_sum`, `family_count`; see
 * stats.h and metrics_observe).
 *
 * How a service uses it (two calls; the config key is per service so that four services
 * on one host do not collide, e.g. CS_STORE_METRICS_ADDR, CS_GATEWAY_METRICS_ADDR...):
 *
 *	{ "CS_STORE_METRICS_ADDR", CFG_STR, offsetof(struct store_conf, metrics_addr), "", 0, 0,
 *	  "host:port for Prometheus GET /metrics (plain HTTP; empty = off)" },
 *	...
 *	struct metrics *metrics = NULL;
 *	if ((rv = metrics_start(&metrics, conf.metrics_addr, "store", stats, nstats)) != 0)
 *		fatalx("metrics.listen_failed", "addr=%s err=%s", lq(conf.metrics_addr), lq(cs_strerror(rv)));
 *	...
 *	metrics_stop(metrics);	// before the stats array goes away; NULL is fine
 */
#ifndef CS_METRICS_H
#define CS_METRICS_H

#include <stddef.h>

#include "stats.h"

struct buf;
struct metrics;

/* Largest exposition served; a bigger one answers 500 (and is logged once). */
#define METRICS_MAX_BYTES	(1u << 20)

/*
 * Start serving GET /metrics on addr: "host:port", "[v6]:port", ":port" (all interfaces)
 * or "http://host:port". NULL or "" leaves *out NULL and returns 0 (metrics off).
 * Port 0 picks a free port (see metrics_port). service and stats are borrowed, not
 * copied: they must outlive metrics_stop(). Returns 0, CS_EINVAL (bad address),
 * CS_ENNG (cannot listen, e.g. port in use) or CS_ENOMEM. Call from the main thread.
 */
int	metrics_start(struct metrics **out, const char *addr, const char *service,
	    struct stat_counter *stats, size_t nstats);
/* Stop listening and free; waits for a scrape in progress. NULL is a no-op. */
void	metrics_stop(struct metrics *m);
/*
 * Call fn(arg) at the start of every scrape, on NNG's thread, before the stats are read:
 * for gauges that mirror state the service keeps elsewhere (e.g. an atomic enum). fn must
 * be quick and thread-safe. NULL m is a no-op.
 */
void	metrics_on_scrape(struct metrics *m, void (*fn)(void *), void *arg);
/*
 * Count v into the histogram h (STAT_HISTOGRAM, see stats.h): h[0..nbounds-1] are the
 * buckets le=bounds[i] (ascending), h[nbounds] le="+Inf", h[nbounds+1] the sum (kept in
 * thousandths), h[nbounds+2] the count. Thread-safe.
 */
void	metrics_observe(struct stat_counter *h, const double *bounds, size_t nbounds, double v);
/* The TCP port actually bound (useful after port 0), or -1. */
int	metrics_port(const struct metrics *m);

/*
 * Append the exposition text for these stats to b (what GET /metrics returns; uptime_s < 0
 * leaves out crmsync_uptime_seconds). Names are sanitised to [a-zA-Z0-9_], HELP text and
 * label values escaped, a repeated name is emitted once. Returns 0 or CS_ETOOBIG.
 * Thread-safe (reads the counters atomically).
 */
int	metrics_render(struct buf *b, const char *service, struct stat_counter *stats,
	    size_t nstats, long long uptime_s);

#endif
