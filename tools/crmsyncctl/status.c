/*
 * status.c - `crmsyncctl status`: one table of the four services (asked at once over
 * their NNG health responders), then, when a DSN is configured, what PostgreSQL says:
 * the last successful sync per CRM and entity, the latest runs, the deletions complete runs
 * refused (and why), recent dead letters.
 * Exit 0 when every service answers healthy (and the database, if asked, answers).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "errors.h"

#define NSVC	(sizeof(ctl_services) / sizeof(ctl_services[0]))

/* Stats worth a column: how much work is waiting. */
static int
backlog_stat(const char *name)
{
	static const char *const pat[] = { "queue", "backlog", "pending", "inflight", "running" };

	for (size_t i = 0; i < sizeof(pat) / sizeof(pat[0]); i++)
		if (strstr(name, pat[i]) != NULL)
			return 1;
	return 0;
}

static void
backlog_text(const Crmsync__HealthResponse *h, char *dst, size_t cap)
{
	size_t n = 0;

	dst[0] = '\0';
	for (size_t i = 0; i < h->n_stats && n + 1 < cap; i++) {
		const Crmsync__Stat *s = h->stats[i];
		int w;

		if (s->name == NULL || !backlog_stat(s->name))
			continue;
		w = snprintf(dst + n, cap - n, "%s%s=%lld", n ? " " : "", s->name, (long long)s->value);
		if (w < 0 || (size_t)w >= cap - n) {
			dst[n] = '\0';
			break;
		}
		n += (size_t)w;
	}
	if (n == 0)
		snprintf(dst, cap, "-");
}

static void
print_services(struct ctl_probe *p, size_t n, int verbose, int *healthy)
{
	printf("%-14s %-9s %-8s %-8s %-34s %s\n", "SERVICE", "STATE", "VERSION", "UPTIME", "BACKLOG",
	    "STATUS");
	for (size_t i = 0; i < n; i++) {
		const Crmsync__HealthResponse *h = p[i].env != NULL ? p[i].env->health_response : NULL;
		char up[32], backlog[256];

		if (p[i].rv != 0 || h == NULL) {
			*healthy = 0;
			printf("%-14s %-9s %-8s %-8s %-34s %s [%s]\n", p[i].name, "down", "-", "-", "-",
			    ctl_probe_error(p[i].rv, (int)ctl.timeout_ms), p[i].url);
			continue;
		}
		if (!h->ok)
			*healthy = 0;
		ctl_duration(up, sizeof(up), h->uptime_s);
		backlog_text(h, backlog, sizeof(backlog));
		printf("%-14s %-9s %-8s %-8s %-34s %s\n", p[i].name, h->ok ? "up" : "degraded",
		    h->version != NULL && h->version[0] ? h->version : "?", up, backlog,
		    h->status != NULL && h->status[0] ? h->status : (h->ok ? "ok" : "degraded"));
		if (h->last_error != NULL && h->last_error[0] != '\0')
			printf("%-14s   last error: %s\n", "", h->last_error);
		if (verbose) {
			for (size_t k = 0; k < h->n_stats; k++)
				printf("%-14s   %-28s %lld\n", "", h->stats[k]->name,
				    (long long)h->stats[k]->value);
		}
	}
}

/* What the services themselves report about their syncs (used without a DSN). */
static void
print_service_syncs(struct ctl_probe *p, size_t n)
{
	int header = 0;

	for (size_t i = 0; i < n; i++) {
		const Crmsync__HealthResponse *h = p[i].env != NULL ? p[i].env->health_response : NULL;

		for (size_t k = 0; h != NULL && k < h->n_syncs; k++) {
			const Crmsync__SyncState *s = h->syncs[k];
			char ago[32] = "never";

			if (!header) {
				printf("\nLast successful sync (reported by the services)\n%-9s %-28s %-10s %s\n",
				    "CRM", "ENTITY", "AGO", "LAST ERROR");
				header = 1;
			}
			if (s->last_ok_unix > 0)
				ctl_duration(ago, sizeof(ago), (int64_t)time(NULL) - s->last_ok_unix);
			printf("%-9s %-28s %-10s %s\n", s->crm, s->entity, ago,
			    s->last_error != NULL && s->last_error[0] ? s->last_error : "-");
		}
	}
}

/* A section's title, and its "none" line when r has no rows; the number of rows. */
static int
section_start(const char *title, PGresult *r, const char *none)
{
	printf("\n%s\n", title);
	if (PQntuples(r) == 0)
		printf("  %s\n", none);
	return PQntuples(r);
}

/* Last successful sync per CRM and entity. 0 when the query failed. */
static int
print_entity_state(PGconn *c)
{
	PGresult *r = ctl_db_query(c, "crmsync.entity_state",
	    "SELECT crm, entity, coalesce(to_char(last_ok_at, 'YYYY-MM-DD HH24:MI:SS TZ'), 'never'), "
	    "coalesce(extract(epoch FROM now() - last_ok_at)::bigint, -1), "
	    "coalesce(last_rows::text, '-'), coalesce(last_run_id::text, '-'), "
	    "coalesce(to_char(last_error_at, 'YYYY-MM-DD HH24:MI ') || last_error, '-') "
	    "FROM crmsync.entity_state ORDER BY crm, entity", 0, NULL);

	if (r == NULL)
		return 0;
	if (section_start("Last successful sync per CRM and entity (crmsync.entity_state)", r,
	    "(none yet)") > 0)
		printf("%-9s %-28s %-27s %-8s %-9s %-6s %s\n", "CRM", "ENTITY", "LAST OK", "AGO",
		    "ROWS", "RUN", "LAST ERROR");
	for (int i = 0; i < PQntuples(r); i++) {
		char ago[32];

		ctl_duration(ago, sizeof(ago), strtoll(PQgetvalue(r, i, 3), NULL, 10));
		printf("%-9s %-28s %-27s %-8s %-9s %-6s %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
		    PQgetvalue(r, i, 2), ago, PQgetvalue(r, i, 4), PQgetvalue(r, i, 5),
		    PQgetvalue(r, i, 6));
	}
	PQclear(r);
	return 1;
}

/* The last ten sync runs. 0 when the query failed. */
static int
print_recent_runs(PGconn *c)
{
	PGresult *r = ctl_db_query(c, "crmsync.sync_runs",
	    "SELECT id, crm, kind, coalesce(trigger, '-'), status, "
	    "to_char(started_at, 'YYYY-MM-DD HH24:MI:SS'), "
	    "extract(epoch FROM coalesce(finished_at, now()) - started_at)::bigint, "
	    "rows_written, rows_deleted, coalesce(error, '') "
	    "FROM crmsync.sync_runs ORDER BY id DESC LIMIT 10", 0, NULL);

	if (r == NULL)
		return 0;
	if (section_start("Recent sync runs (crmsync.sync_runs)", r, "(none yet)") > 0)
		printf("%-6s %-9s %-12s %-9s %-9s %-20s %-8s %-9s %-8s %s\n", "RUN", "CRM", "KIND",
		    "TRIGGER", "STATUS", "STARTED", "TOOK", "WRITTEN", "DELETED", "ERROR");
	for (int i = 0; i < PQntuples(r); i++) {
		char took[32];

		ctl_duration(took, sizeof(took), strtoll(PQgetvalue(r, i, 6), NULL, 10));
		printf("%-6s %-9s %-12s %-9s %-9s %-20s %-8s %-9s %-8s %s\n", PQgetvalue(r, i, 0),
		    PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4),
		    PQgetvalue(r, i, 5), took, PQgetvalue(r, i, 7), PQgetvalue(r, i, 8),
		    PQgetvalue(r, i, 9));
	}
	PQclear(r);
	return 1;
}

/* Deletion that cannot lie: what complete runs refused to delete, and why. */
static int
print_refused(PGconn *c)
{
	PGresult *r = ctl_db_query(c, "crmsync.sync_runs",
	    "SELECT r.id, r.crm, d.key, to_char(r.finished_at, 'YYYY-MM-DD HH24:MI'), "
	    "coalesce(d.value->>'would_delete', '-'), coalesce(d.value->>'live', '-'), "
	    "coalesce(d.value->>'reason', '-') FROM crmsync.sync_runs r, "
	    "jsonb_each(r.deletions_refused) d WHERE r.finished_at > now() - interval '7 days' "
	    "ORDER BY r.id DESC, d.key LIMIT 20", 0, NULL);

	if (r == NULL)
		return 0;
	if (section_start("Deletions refused in the last 7 days (crmsync.sync_runs.deletions_refused)",
	    r, "(none)") > 0)
		printf("%-6s %-9s %-28s %-17s %-8s %-8s %s\n", "RUN", "CRM", "ENTITY", "AT",
		    "WOULD", "LIVE", "REASON");
	for (int i = 0; i < PQntuples(r); i++)
		printf("%-6s %-9s %-28s %-17s %-8s %-8s %s\n", PQgetvalue(r, i, 0),
		    PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
		    PQgetvalue(r, i, 4), PQgetvalue(r, i, 5), PQgetvalue(r, i, 6));
	PQclear(r);
	return 1;
}

static int
print_dead_letters(PGconn *c)
{
	PGresult *r = ctl_db_query(c, "crmsync.dead_letters",
	    "SELECT count(*), coalesce(max(to_char(received_at, 'YYYY-MM-DD HH24:MI:SS')), '-') "
	    "FROM crmsync.dead_letters WHERE received_at > now() - interval '24 hours'", 0, NULL);

	if (r == NULL)
		return 0;
	printf("\nDead letters in the last 24 h: %s (latest %s)\n", PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
	PQclear(r);
	return 1;
}

static int
print_db(void)
{
	PGconn *c = ctl_db_connect();
	int ok;

	if (c == NULL)
		return 0;
	/* Every section, even after one failed. */
	ok = print_entity_state(c);
	ok &= print_recent_runs(c);
	ok &= print_refused(c);
	ok &= print_dead_letters(c);
	PQfinish(c);
	return ok;
}

int
ctl_status(int verbose)
{
	struct ctl_probe p[NSVC];
	int healthy = 1;

	for (size_t i = 0; i < NSVC; i++) {
		p[i].name = ctl_services[i].name;
		p[i].url = *ctl_services[i].health_url;
	}
	ctl_probe_all(p, NSVC, (int)ctl.timeout_ms);
	print_services(p, NSVC, verbose, &healthy);
	if (ctl_dsn() != NULL) {
		if (!print_db())
			healthy = 0;
	} else {
		print_service_syncs(p, NSVC);
		printf("\n(set CS_CTL_PG_DSN or CS_PG_DSN to see the last sync per entity and recent runs)\n");
	}
	ctl_probe_free(p, NSVC);
	return healthy ? 0 : 1;
}
