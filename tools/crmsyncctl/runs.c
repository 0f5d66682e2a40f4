/*
 * runs.c - `crmsyncctl runs [--crm C] [--entity E] [--status S] [--since T] [--limit N]`:
 * the history of sync runs from crmsync.sync_runs, newest first, one line each (id, CRM,
 * kind, trigger, entities, start, duration, status, rows written/unchanged/deleted, the
 * error's first line). Filters are query parameters, checked here first (names against
 * the catalogue, statuses against the table's own set). Needs CS_CTL_PG_DSN or CS_PG_DSN.
 * Exit: 0 = listed (even none), 1 = no database, 2 = usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "ctl.h"

#define RUNS_DEFAULT_LIMIT	20
#define RUNS_MAX_LIMIT		10000

struct runs_args {
	const char	*crm, *entity, *status, *since;
	char		 since_s[24];	/* --since as seconds ago, or "" when a timestamp */
	char		 limit[16];
};

static void
runs_usage(void)
{
	fprintf(stderr, "usage: crmsyncctl runs [--crm amo|hollihop] [--entity ENTITY] "
	    "[--status running|complete|partial|failed|abandoned] [--since 2h|3d|2026-12-01] [--limit N]\n");
}

/* "90s", "30m", "2h", "3d" -> seconds; -1 when it is not such a duration. */
static long long
runs_ago(const char *t)
{
	char *end;
	long long n = strtoll(t, &end, 10);

	if (end == t || n < 0 || n > 100000000 || end[0] == '\0' || end[1] != '\0')
		return -1;
	switch (end[0]) {
	case 's':	return n;
	case 'm':	return n * 60;
	case 'h':	return n * 3600;
	case 'd':	return n * 86400;
	default:	return -1;
	}
}

/* Check each filter; 0 or 2 (said why). */
static int
runs_check(struct runs_args *a)
{
	static const char *const statuses[] = { "running", "complete", "partial", "failed", "abandoned" };
	int ok = a->status == NULL;

	if (a->crm != NULL && strcmp(a->crm, "amo") != 0 && strcmp(a->crm, "hollihop") != 0) {
		fprintf(stderr, "crmsyncctl: runs: unknown CRM \"%s\" (amo or hollihop)\n", a->crm);
		return 2;
	}
	if (a->entity != NULL && catalog_find(CAT_AMO, a->entity) == NULL &&
	    catalog_find(CAT_HOLLIHOP, a->entity) == NULL) {
		fprintf(stderr, "crmsyncctl: runs: no CRM has an entity \"%.64s\" (crmsyncctl catalog list)\n",
		    a->entity);
		return 2;
	}
	for (size_t i = 0; a->status != NULL && i < sizeof(statuses) / sizeof(statuses[0]); i++)
		ok |= strcmp(a->status, statuses[i]) == 0;
	if (!ok) {
		fprintf(stderr, "crmsyncctl: runs: unknown status \"%s\" (running, complete, partial, "
		    "failed, abandoned)\n", a->status);
		return 2;
	}
	if (a->since != NULL && runs_ago(a->since) >= 0)
		snprintf(a->since_s, sizeof(a->since_s), "%lld", runs_ago(a->since));
	return 0;
}

static int
runs_parse(int argc, char **argv, struct runs_args *a)
{
	memset(a, 0, sizeof(*a));
	snprintf(a->limit, sizeof(a->limit), "%d", RUNS_DEFAULT_LIMIT);
	for (int i = 1; i < argc; i++) {
		const char **slot = NULL;

		if (strcmp(argv[i], "--crm") == 0)
			slot = &a->crm;
		else if (strcmp(argv[i], "--entity") == 0)
			slot = &a->entity;
		else if (strcmp(argv[i], "--status") == 0)
			slot = &a->status;
		else if (strcmp(argv[i], "--since") == 0)
			slot = &a->since;
		else if (strcmp(argv[i], "--limit") != 0) {
			fprintf(stderr, "crmsyncctl: runs: unknown argument \"%s\"\n", argv[i]);
			runs_usage();
			return 2;
		}
		if (i + 1 >= argc || argv[i + 1][0] == '\0') {
			fprintf(stderr, "crmsyncctl: runs: %s needs a value\n", argv[i]);
			runs_usage();
			return 2;
		}
		if (slot != NULL) {
			*slot = argv[++i];
			continue;
		}
		char *end;
		long n = strtol(argv[++i], &end, 10);
		if (*end != '\0' || n < 1 || n > RUNS_MAX_LIMIT) {
			fprintf(stderr, "crmsyncctl: runs: --limit takes 1 to %d\n", RUNS_MAX_LIMIT);
			return 2;
		}
		snprintf(a->limit, sizeof(a->limit), "%ld", n);
	}
	return runs_check(a);
}

/* "students,ed_units" or "12 entities" (a run of many), at most cap-1 bytes. */
static void
runs_entities(const char *list, const char *count, char *dst, size_t cap)
{
	if (strtol(count, NULL, 10) > 3 || strlen(list) >= cap)
		snprintf(dst, cap, "%s entities", count);
	else
		snprintf(dst, cap, "%s", list[0] ? list : "-");
}

int
ctl_runs(int argc, char **argv)
{
	struct runs_args a;
	PGconn *c;
	PGresult *r;
	int rv;

	if ((rv = runs_parse(argc, argv, &a)) != 0)
		return rv;
	if (ctl_dsn() == NULL) {
		fprintf(stderr, "crmsyncctl: runs: set CS_CTL_PG_DSN (or CS_PG_DSN): the history is in "
		    "crmsync.sync_runs\n");
		return 1;
	}
	if ((c = ctl_db_connect()) == NULL)
		return 1;
	const char *vals[6] = { a.crm ? a.crm : "", a.entity ? a.entity : "", a.status ? a.status : "",
	    a.since && !a.since_s[0] ? a.since : NULL, a.since_s[0] ? a.since_s : NULL, a.limit };
	r = ctl_db_query(c, "crmsync.sync_runs", "SELECT id, crm, kind, coalesce(trigger, '-'), "
	    "coalesce(array_to_string(entities, ','), ''), coalesce(cardinality(entities), 0), "
	    "to_char(started_at, 'YYYY-MM-DD HH24:MI:SS'), "
	    "extract(epoch FROM coalesce(finished_at, now()) - started_at)::bigint, status, "
	    "rows_written, rows_unchanged, rows_deleted, coalesce(split_part(error, E'\\n', 1), '') "
	    "FROM crmsync.sync_runs WHERE ($1 = '' OR crm = $1) AND ($2 = '' OR $2 = ANY(entities)) "
	    "AND ($3 = '' OR status = $3) AND ($4::timestamptz IS NULL OR started_at >= $4::timestamptz) "
	    "AND ($5::bigint IS NULL OR started_at >= now() - $5::bigint * interval '1 second') "
	    "ORDER BY id DESC LIMIT $6::int", 6, vals);
	if (r == NULL) {
		PQfinish(c);
		return 1;
	}
	if (PQntuples(r) == 0)
		printf("no runs match\n");
	else
		printf("%-6s %-8s %-11s %-8s %-26s %-19s %7s %-9s %8s %9s %7s %s\n", "ID", "CRM", "KIND",
		    "TRIGGER", "ENTITIES", "STARTED", "TOOK", "STATUS", "WRITTEN", "UNCHANGED", "DELETED",
		    "ERROR");
	for (int i = 0; i < PQntuples(r); i++) {
		char ents[27], took[32];

		runs_entities(PQgetvalue(r, i, 4), PQgetvalue(r, i, 5), ents, sizeof(ents));
		ctl_duration(took, sizeof(took), strtoll(PQgetvalue(r, i, 7), NULL, 10));
		printf("%-6s %-8s %-11s %-8s %-26s %-19s %7s %-9s %8s %9s %7s %.100s\n", PQgetvalue(r, i, 0),
		    PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), ents, PQgetvalue(r, i, 6),
		    took, PQgetvalue(r, i, 8), PQgetvalue(r, i, 9), PQgetvalue(r, i, 10), PQgetvalue(r, i, 11),
		    PQgetvalue(r, i, 12));
	}
	PQclear(r);
	PQfinish(c);
	return 0;
}
