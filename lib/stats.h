/*
 * stats.h - named counters and gauges a service keeps, reported by the health
 * responder (lib/health) and as Prometheus text. Each service declares one array
 * `struct stat_counter stats[]` and updates entries with stat_add()/stat_set();
 * updates are atomic and may come from any thread.
 */
#ifndef CS_STATS_H
#define CS_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define STAT_COUNTER	0
#define STAT_GAUGE	1
/*
 * One sample of a Prometheus histogram: a run of stats named `family_bucket{…,le="…"}`
 * (cumulative), `family_sum{…}` (kept in thousandths, shown divided by 1000, so a sum of
 * seconds keeps milliseconds) and `family_count{…}`; metrics_observe() updates them.
 */
#define STAT_HISTOGRAM	2

struct stat_counter {
	const char	*name;	/* snake_case, e.g. "rows_written" */
	const char	*help;
	int		 gauge;	/* STAT_COUNTER (only grows), STAT_GAUGE or STAT_HISTOGRAM */
	_Atomic int64_t	 value;
};

static inline void
stat_add(struct stat_counter *s, int64_t n)
{
	atomic_fetch_add_explicit(&s->value, n, memory_order_relaxed);
}

static inline void
stat_set(struct stat_counter *s, int64_t v)
{
	atomic_store_explicit(&s->value, v, memory_order_relaxed);
}

static inline int64_t
stat_get(struct stat_counter *s)
{
	return atomic_load_explicit(&s->value, memory_order_relaxed);
}

#endif
