/*
 * ctl.h - crmsyncctl, the operator's one command: what its files share.
 *
 *   main.c    argv, configuration (the services' own CS_* variables), probe, catalog
 *   probe.c   ask several health responders at once, each with a deadline
 *   status.c  the status table, and the sync state read from PostgreSQL
 *   sync.c    SyncCommand to a sync service (sync, resync), then progress until the run ends
 *   rederive.c RederiveRequest to the store, then progress until the run ends
 *   db.c      a read-only libpq session for status, sync and report
 *   report*.c the analytics schema as one HTML page (or text); report.h
 *   runs.c    the history of sync runs, filtered
 *   deadletters.c what could not be applied: list, show, resubmit (via the store), discard
 */
#ifndef CTL_H
#define CTL_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "crmsync.pb-c.h"

struct ctl_conf {
	char	*store_health;
	char	*gateway_health;
	char	*amo_health;
	char	*hollihop_health;
	char	*amo_url;
	char	*hollihop_url;
	char	*store_url;	/* CS_STORE_URL: rederive */
	char	*pg_dsn;	/* CS_PG_DSN */
	char	*ctl_dsn;	/* CS_CTL_PG_DSN: wins over CS_PG_DSN */
	int64_t	 timeout_ms;	/* per probe */
	int64_t	 command_timeout_ms;
};

extern struct ctl_conf ctl;

/* The four services, in data-flow order; url points into ctl. */
struct ctl_service {
	const char	*name;
	char		**health_url;
};
extern const struct ctl_service ctl_services[4];

/* probe.c */
struct ctl_probe {
	const char		*name;	/* borrowed */
	const char		*url;	/* borrowed */
	int			 rv;	/* 0 = answered; else CS_E* (CS_ETIMEDOUT: no answer in time) */
	Crmsync__Envelope	*env;	/* the HealthResponse envelope when rv == 0; caller frees */
};
/*
 * Probe every p[i].url at once, each with timeout_ms; returns after all answered or after
 * timeout_ms plus a second of grace (a dial that hangs, e.g. to a host that drops
 * packets, is abandoned, not waited for). Fills rv/env. Free with ctl_probe_free.
 */
void	ctl_probe_all(struct ctl_probe *p, size_t n, int timeout_ms);
void	ctl_probe_free(struct ctl_probe *p, size_t n);
/* The named stat of a health answer, or def. */
int64_t	ctl_stat(const Crmsync__HealthResponse *h, const char *name, int64_t def);
/* Human text for a probe that did not answer ("connection refused", "no answer in 1000 ms"). */
const char *ctl_probe_error(int rv, int timeout_ms);

/* status.c */
int	ctl_status(int verbose);

/* sync.c */
int	ctl_sync(int argc, char **argv);
int	ctl_resync(int argc, char **argv);	/* resync <crm> <entity>: a full run of one entity */

/* runs.c: the history of crmsync.sync_runs, with filters */
int	ctl_runs(int argc, char **argv);

/* deadletters.c: list, show, resubmit, discard crmsync.dead_letters */
int	ctl_deadletters(int argc, char **argv);

/* rederive.c */
int	ctl_rederive(int argc, char **argv);

/* report.c */
int	ctl_report(int argc, char **argv);

/* db.c: NULL when no DSN is configured (says nothing) or on error (says why on stderr). */
PGconn	*ctl_db_connect(void);
const char *ctl_dsn(void);
/* Run a read-only query; NULL on error (printed, prefixed with what). Caller PQclear()s. */
PGresult *ctl_db_query(PGconn *c, const char *what, const char *sql, int n, const char *const *vals);

/* "3d04h", "2h03m", "5m12s", "42s" */
void	ctl_duration(char *dst, size_t cap, int64_t seconds);

#endif
