/*
 * runstats.c - what the store sees of sync runs, as metrics for alerts and dashboards: per
 * CRM and entity the time of the last successful sync (crmsync.entity_state.last_ok_at),
 * per CRM the failed runs since its last complete one, run durations as a histogram per
 * CRM and kind, and runs ended per CRM and status. The store sees every RunEnd, so it is
 * the one place these are known; they are read back from the database after migration
 * (a restarted store serves the same values) and updated after every RunEnd's COMMIT.
 * The stats live in store_stats after the refused-deletion counters (runstats_init).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "store.h"

#define RS_NAME_MAX	160

static const char *const rs_crms[] = { "amo", "hollihop" };
static const char *const rs_kinds[] = { "full", "incremental", "hooks" };
static const char *const rs_statuses[] = { "complete", "partial", "failed" };
/* Seconds: an amoCRM hook run takes about a second, a nightly export up to hours. */
static const double rs_bounds[] = { 1, 5, 15, 60, 300, 900, 3600, 10800 };
#define RS_NB		(sizeof(rs_bounds) / sizeof(rs_bounds[0]))
#define RS_HIST		(RS_NB + 3)	/* buckets, +Inf, sum, count */
#define NCRM		(sizeof(rs_crms) / sizeof(rs_crms[0]))
#define NKIND		(sizeof(rs_kinds) / sizeof(rs_kinds[0]))
#define NSTATUS		(sizeof(rs_statuses) / sizeof(rs_statuses[0]))

static char rs_names[ST_RUNSTATS_MAX][RS_NAME_MAX];
static struct stat_counter *rs_stats;	/* first of ours in store_stats */
static size_t rs_n, rs_nentity;		/* stats named; of them, last-success gauges first */
static size_t rs_rows;			/* rows written per entity: same order as the gauges */
static size_t rs_failed, rs_ended, rs_hist;	/* offsets of the per-CRM families */

static int
crm_index(const char *crm)
{
	for (size_t i = 0; i < NCRM; i++)
		if (strcmp(rs_crms[i], crm) == 0)
			return (int)i;
	return -1;
}

static int
name_index(const char *const *names, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], s) == 0)
			return (int)i;
	return -1;
}

/* Name the next stat (printf format); 0, or -1 when ST_RUNSTATS_MAX is reached. */
static int __attribute__((format(printf, 3, 4)))
rs_add(int kind, const char *help, const char *fmt, ...)
{
	va_list ap;

	if (rs_n >= ST_RUNSTATS_MAX)
		return -1;
	va_start(ap, fmt);
	vsnprintf(rs_names[rs_n], RS_NAME_MAX, fmt, ap);
	va_end(ap);
	rs_stats[rs_n].name = rs_names[rs_n];
	rs_stats[rs_n].help = help;
	rs_stats[rs_n].gauge = kind;
	stat_set(&rs_stats[rs_n], 0);
	rs_n++;
	return 0;
}

static void
rs_add_histograms(void)
{
	static const char help[] = "sync run durations (RunBegin to RunEnd) per CRM and kind";
	char le[32];

	rs_hist = rs_n;
	for (size_t c = 0; c < NCRM; c++)
		for (size_t k = 0; k < NKIND; k++) {
			for (size_t i = 0; i <= RS_NB; i++) {
				if (i < RS_NB)
					snprintf(le, sizeof(le), "%g", rs_bounds[i]);
				else
					snprintf(le, sizeof(le), "+Inf");
				(void)rs_add(STAT_HISTOGRAM, help, "run_duration_seconds_bucket{crm=\"%s\","
				    "kind=\"%s\",le=\"%s\"}", rs_crms[c], rs_kinds[k], le);
			}
			(void)rs_add(STAT_HISTOGRAM, help, "run_duration_seconds_sum{crm=\"%s\",kind=\"%s\"}",
			    rs_crms[c], rs_kinds[k]);
			(void)rs_add(STAT_HISTOGRAM, help, "run_duration_seconds_count{crm=\"%s\",kind=\"%s\"}",
			    rs_crms[c], rs_kinds[k]);
		}
}

/* One stat family{crm,entity} per catalogue entity, amoCRM's first (runstats_rows' order). */
static void
rs_add_entities(int kind, const char *family, const char *help)
{
	for (size_t c = 0; c < NCRM; c++) {
		const struct cat_crm_desc *d = catalog_crm(c == 0 ? CAT_AMO : CAT_HOLLIHOP);
		for (size_t i = 0; i < d->nentities; i++)
			(void)rs_add(kind, help, "%s{crm=\"%s\",entity=\"%s\"}", family, rs_crms[c],
			    d->entities[i].name);
	}
}

size_t
runstats_init(size_t first)
{
	rs_stats = &store_stats[first];
	rs_n = 0;
	rs_add_entities(STAT_GAUGE, "last_success_timestamp_seconds", "unix time of the last "
	    "successful sync of this entity (crmsync.entity_state.last_ok_at; 0 = none yet)");
	rs_nentity = rs_rows = rs_n;
	rs_add_entities(STAT_COUNTER, "entity_rows_written",
	    "rows inserted, changed or deleted in this entity's table");
	rs_failed = rs_n;
	for (size_t c = 0; c < NCRM; c++)
		(void)rs_add(STAT_GAUGE, "failed sync runs of this CRM since its last complete one",
		    "consecutive_failed_runs{crm=\"%s\"}", rs_crms[c]);
	rs_ended = rs_n;
	for (size_t c = 0; c < NCRM; c++)
		for (size_t s = 0; s < NSTATUS; s++)
			(void)rs_add(STAT_COUNTER, "sync runs ended, by CRM and status",
			    "runs_ended{crm=\"%s\",status=\"%s\"}", rs_crms[c], rs_statuses[s]);
	rs_add_histograms();
	if (rs_n == ST_RUNSTATS_MAX)
		log_warnx("metrics.runstats_truncated", "more than %d run stats: raise ST_RUNSTATS_MAX",
		    ST_RUNSTATS_MAX);
	return rs_n;
}

void
runstats_rows(int crm, const char *entity, uint32_t n)
{
	const struct cat_entity *e = catalog_find((enum cat_crm)crm, entity);
	size_t i;

	if (e == NULL || n == 0)
		return;
	i = (size_t)(e - catalog_crm((enum cat_crm)crm)->entities);
	if ((enum cat_crm)crm == CAT_HOLLIHOP)
		i += catalog_crm(CAT_AMO)->nentities;
	if (i < rs_nentity)
		stat_add(&rs_stats[rs_rows + i], n);
}

/* The last-success gauges of one CRM (NULL: all) from crmsync.entity_state. */
static int
load_last_ok(struct store *st, const char *crm)
{
	const char *v[1] = { crm };
	PGresult *r = NULL;
	char want[RS_NAME_MAX];
	int rv;

	rv = db_execp(st, "SELECT crm, entity, extract(epoch FROM last_ok_at)::bigint "
	    "FROM crmsync.entity_state WHERE last_ok_at IS NOT NULL AND ($1::text IS NULL OR crm = $1)",
	    1, v, &r);
	if (rv != 0) {
		log_warnx("metrics.runstats_failed", "what=last_ok err=%s", lq(db_errmsg(st, r)));
		PQclear(r);
		return rv;
	}
	for (int row = 0; row < PQntuples(r); row++) {
		snprintf(want, sizeof(want), "last_success_timestamp_seconds{crm=\"%s\",entity=\"%s\"}",
		    PQgetvalue(r, row, 0), PQgetvalue(r, row, 1));
		for (size_t i = 0; i < rs_nentity; i++)
			if (strcmp(rs_names[i], want) == 0)
				stat_set(&rs_stats[i], strtoll(PQgetvalue(r, row, 2), NULL, 10));
	}
	PQclear(r);
	return 0;
}

/* Failed runs since the last complete one, per CRM (a store restart keeps the count). */
static int
load_failed(struct store *st)
{
	PGresult *r = NULL;
	int rv;

	rv = db_execp(st, "SELECT crm, count(*) FROM crmsync.sync_runs r WHERE status = 'failed' "
	    "AND id > coalesce((SELECT max(id) FROM crmsync.sync_runs k WHERE k.crm = r.crm "
	    "AND k.status = 'complete'), 0) GROUP BY crm", 0, NULL, &r);
	if (rv != 0) {
		log_warnx("metrics.runstats_failed", "what=failed_runs err=%s", lq(db_errmsg(st, r)));
		PQclear(r);
		return rv;
	}
	for (int row = 0; row < PQntuples(r); row++) {
		int c = crm_index(PQgetvalue(r, row, 0));
		if (c >= 0)
			stat_set(&rs_stats[rs_failed + (size_t)c], strtoll(PQgetvalue(r, row, 1), NULL, 10));
	}
	PQclear(r);
	return 0;
}

int
runstats_load(struct store *st)
{
	int rv = load_last_ok(st, NULL);

	return rv != 0 ? rv : load_failed(st);
}

/* The run's duration into its histogram. */
static void
observe_duration(struct store *st, const char *run, int c)
{
	const char *v[1] = { run };
	PGresult *r = NULL;
	int k;

	if (db_execp(st, "SELECT kind, extract(epoch FROM finished_at - started_at)::float8 "
	    "FROM crmsync.sync_runs WHERE id = $1", 1, v, &r) != 0 || PQntuples(r) != 1) {
		log_warnx("metrics.runstats_failed", "what=duration run=%s err=%s", run, lq(db_errmsg(st, r)));
		PQclear(r);
		return;
	}
	if ((k = name_index(rs_kinds, NKIND, PQgetvalue(r, 0, 0))) >= 0)
		metrics_observe(&rs_stats[rs_hist + ((size_t)c * NKIND + (size_t)k) * RS_HIST],
		    rs_bounds, RS_NB, strtod(PQgetvalue(r, 0, 1), NULL));
	PQclear(r);
}

void
runstats_run_ended(struct store *st, const char *run, const char *crm, const char *status)
{
	int c = crm_index(crm), s = name_index(rs_statuses, NSTATUS, status);

	if (c < 0)
		return;
	if (s >= 0)
		stat_add(&rs_stats[rs_ended + (size_t)c * NSTATUS + (size_t)s], 1);
	/* Only a failure counts, only a complete run resets: a run cut short by a stop is neither. */
	if (strcmp(status, "complete") == 0)
		stat_set(&rs_stats[rs_failed + (size_t)c], 0);
	else if (strcmp(status, "failed") == 0)
		stat_add(&rs_stats[rs_failed + (size_t)c], 1);
	observe_duration(st, run, c);
	(void)load_last_ok(st, crm);
}
