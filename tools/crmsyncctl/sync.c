/*
 * sync.c - `crmsyncctl sync hollihop|amo [--full] [--entities a,b] [--no-wait]`: send a
 * SyncCommand to the sync service, then follow the run until it ends.
 *
 * Progress comes from crmsync.sync_runs when a DSN is configured (status, the per-entity
 * progress the sync service reports, rows written); otherwise from the service's own
 * health stats (`running`, `last_run_id`, `runs_complete`, `runs_failed`, `rows_sent`,
 * `pages`, where the service has them). Ctrl-C stops watching, not the run.
 * PostgreSQL restarting while we watch does not end the watch: the run goes on (its
 * service retries), so we reconnect and keep following it.
 * Exit: 0 = the run completed, 1 = it did not (or could not be started), 2 = usage.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>

#include "bus.h"
#include "catalog.h"
#include "ctl.h"
#include "errors.h"
#include "svc.h"
#include "strlist.h"

#define SYNC_MAX_ENTITIES	64
#define SYNC_DOWN_LIMIT_MS	30000	/* service silent this long while its run "runs": give up */
#define SYNC_DB_DOWN_LIMIT_MS	300000	/* PostgreSQL unreachable this long: give up watching */

static volatile sig_atomic_t sync_interrupted;

/* The sync service's counters before the command. */
struct sync_before {
	int64_t	run, ok, failed, pages, rows;
};

static void
sync_onsignal(int sig)
{
	(void)sig;
	sync_interrupted = 1;
}

/* SIGINT and SIGTERM stop the watching, not the run. */
static void
sync_catch_signals(void)
{
	svc_on_stop_signals(sync_onsignal);
}

struct sync_target {
	const char		*crm;		/* "hollihop" */
	const char		*service;	/* "hollihop-sync" */
	Crmsync__Crm		 crm_id;
	const char		*url;
	const char		*health_url;
};

/* One health answer; 0 and *h (free with bus_free on *env) or an error. */
static int
sync_health(const struct sync_target *t, Crmsync__Envelope **env)
{
	struct ctl_probe p = { .name = t->service, .url = t->health_url };

	ctl_probe_all(&p, 1, (int)ctl.timeout_ms);
	*env = p.env;
	return p.rv;
}

/* Send the command (trigger NULL: the service's default, "command"); returns 0 with *run_id
 * (0 = not known yet), or 1 after saying why. A busy service's run is followed instead,
 * except for a resync (it must be a run of its own). */
static int
sync_send(const struct sync_target *t, int full, char **entities, size_t nentities,
    const char *trigger, int64_t *run_id)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT, *rep = NULL;
	Crmsync__SyncCommand cmd = CRMSYNC__SYNC_COMMAND__INIT;
	nng_socket s;
	int rv, ret = 1;

	*run_id = 0;
	cmd.crm = t->crm_id;
	cmd.kind = full ? CRMSYNC__SYNC_KIND__SYNC_FULL : CRMSYNC__SYNC_KIND__SYNC_INCREMENTAL;
	cmd.n_entities = nentities;
	cmd.entities = entities;
	cmd.trigger = (char *)(trigger != NULL ? trigger : "");
	env.body_case = CRMSYNC__ENVELOPE__BODY_SYNC;
	env.sync = &cmd;
	if ((rv = bus_dial(&s, t->url, 1 << 20)) != 0) {
		fprintf(stderr, "crmsyncctl: cannot dial %s: %s\n", t->url, cs_strerror(rv));
		return 1;
	}
	/* The service answers once the store has opened the run: that can take a while. */
	rv = bus_call(s, &env, &rep, (int)ctl.command_timeout_ms);
	bus_close(s);
	if (rv != 0) {
		fprintf(stderr, "crmsyncctl: %s did not answer the sync command on %s: %s\n", t->service,
		    t->url, cs_strerror(rv));
		return 1;
	}
	if (rep->body_case != CRMSYNC__ENVELOPE__BODY_ACK) {
		fprintf(stderr, "crmsyncctl: %s answered something other than an Ack\n", t->service);
		goto out;
	}
	*run_id = rep->ack->run_id;
	switch (rep->ack->status) {
	case CRMSYNC__ACK_STATUS__ACK_OK:
		if (*run_id > 0)
			printf("%s accepted: run %lld\n", t->service, (long long)*run_id);
		else
			printf("%s accepted; its run number is pending (%s opens the run with the store)\n",
			    t->service, t->service);
		ret = 0;
		break;
	case CRMSYNC__ACK_STATUS__ACK_RETRY:
		/* Started, but the store has not opened the run yet: follow it all the same. */
		printf("%s accepted; the run is not open yet (%s)\n", t->service,
		    rep->ack->error != NULL ? rep->ack->error : "");
		ret = 0;
		break;
	default:
		if (*run_id > 0 && rep->ack->error != NULL && strncmp(rep->ack->error, "busy", 4) == 0 &&
		    trigger == NULL) {
			printf("%s is busy: %s; following run %lld instead\n", t->service, rep->ack->error,
			    (long long)*run_id);
			ret = 0;
			break;
		}
		fprintf(stderr, "crmsyncctl: %s refused: %s\n", t->service,
		    rep->ack->error != NULL && rep->ack->error[0] ? rep->ack->error : "rejected");
		break;
	}
out:
	bus_free(rep);
	return ret;
}

static void
sync_show(int tty, const char *line, int final)
{
	if (tty) {
		printf("\r\033[K%s%s", line, final ? "\n" : "");
		fflush(stdout);
	} else {
		printf("%s\n", line);
		fflush(stdout);
	}
}

/*
 * A query of the watch failed. If the connection is gone (PostgreSQL restarting), try to
 * get it back and say so: 1 = keep watching, 0 = give up (another error, or down too long).
 */
static int
sync_db_lost(PGconn *c, const struct sync_target *t, int64_t run_id, int64_t *down_since, int tty)
{
	if (*down_since == 0 && PQstatus(c) == CONNECTION_OK) {
		/* libpq may still say OK right after the server went away: ask once more */
		PGresult *r = PQexec(c, "SELECT 1");
		int alive = PQresultStatus(r) == PGRES_TUPLES_OK;

		PQclear(r);
		if (alive)
			return 0;	/* a real error (permissions, a missing table): said already */
	}
	if (*down_since == 0) {
		*down_since = bus_now_ms();
		fprintf(stderr, "%scrmsyncctl: lost the PostgreSQL connection; reconnecting (the %s run goes on)\n",
		    tty ? "\n" : "", t->crm);
	} else if (bus_now_ms() - *down_since > SYNC_DB_DOWN_LIMIT_MS) {
		fprintf(stderr, "crmsyncctl: PostgreSQL unreachable for %d s; giving up watching (run %lld goes on: "
		    "crmsyncctl status shows it)\n", SYNC_DB_DOWN_LIMIT_MS / 1000, (long long)run_id);
		return 0;
	}
	PQreset(c);
	if (PQstatus(c) == CONNECTION_OK) {
		fprintf(stderr, "crmsyncctl: PostgreSQL is back after %lld s\n",
		    (long long)(bus_now_ms() - *down_since) / 1000);
		*down_since = 0;
	}
	return 1;
}

/* Following one run through crmsync.sync_runs. */
struct follow {
	PGconn			*c;
	const struct sync_target *t;
	const char		*entity;	/* the run to find reads it whole (NULL: any run) */
	int64_t			 run_id, max_id;
	int64_t			 down_since, db_down_since, last_print, t0;
	int			 tty;
	char			 last[512];	/* the last line shown, from its first comma */
};

/* Steps' answers: keep following, the database is away (reconnecting), or stop with ret. */
enum { FOLLOW_ON, FOLLOW_DB_AWAY, FOLLOW_END_OK, FOLLOW_END_FAIL };

/* The run an accepted command opened: the first of this CRM after max_id (with an entity:
 * the first full run that reads it; amo-sync may join a resync to another full run). */
static int
follow_find_run(struct follow *f)
{
	char maxbuf[32];
	const char *vals[3] = { f->t->crm, maxbuf, f->entity != NULL ? f->entity : "" };
	PGresult *r;

	snprintf(maxbuf, sizeof(maxbuf), "%lld", (long long)f->max_id);
	if ((r = ctl_db_query(f->c, "finding the run", "SELECT id FROM crmsync.sync_runs "
	    "WHERE crm = $1 AND id > $2::bigint AND ($3 = '' OR (kind = 'full' AND $3 = ANY(entities))) "
	    "ORDER BY id LIMIT 1",
	    3, vals)) == NULL)
		return FOLLOW_DB_AWAY;
	if (PQntuples(r) == 1) {
		f->run_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		printf("%s%s opened run %lld\n", f->tty ? "\r\033[K" : "", f->t->service,
		    (long long)f->run_id);
	}
	PQclear(r);
	if (f->run_id == 0 && bus_now_ms() - f->t0 > ctl.command_timeout_ms) {
		fprintf(stderr, "crmsyncctl: %s accepted, but no run appeared in crmsync.sync_runs "
		    "within %lld s\n", f->t->service, (long long)ctl.command_timeout_ms / 1000);
		return FOLLOW_END_FAIL;
	}
	return FOLLOW_ON;
}

/* Show the run's progress (a pipe gets a line on change, elapsed time aside, or every
 * 10 s); its end ends the following. */
static int
follow_show_run(struct follow *f)
{
	char idbuf[32], line[512], took[32], total[32] = "";
	const char *vals[1] = { idbuf };
	PGresult *r;

	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)f->run_id);
	r = ctl_db_query(f->c, "reading the run",
	    "SELECT status, kind, extract(epoch FROM coalesce(finished_at, now()) - started_at)::bigint, "
	    "coalesce(cardinality(entities), 0), "
	    "(SELECT count(*) FROM jsonb_object_keys(progress)), "
	    "(SELECT coalesce(sum((v->>'rows')::bigint), 0) FROM jsonb_each(progress) AS e(k, v)), "
	    "rows_written, rows_deleted, coalesce(error, '') "
	    "FROM crmsync.sync_runs WHERE id = $1::bigint", 1, vals);
	if (r == NULL)
		return FOLLOW_DB_AWAY;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return FOLLOW_ON;
	}
	const char *status = PQgetvalue(r, 0, 0);
	int done = strcmp(status, "running") != 0;
	ctl_duration(took, sizeof(took), strtoll(PQgetvalue(r, 0, 2), NULL, 10));
	if (strcmp(PQgetvalue(r, 0, 3), "0") != 0)
		snprintf(total, sizeof(total), "/%s", PQgetvalue(r, 0, 3));
	snprintf(line, sizeof(line), "run %lld %s %s: %s %s, entities %s%s, rows read %s, "
	    "written %s, deleted %s%s%s", (long long)f->run_id, f->t->crm, PQgetvalue(r, 0, 1),
	    status, took, PQgetvalue(r, 0, 4), total, PQgetvalue(r, 0, 5),
	    PQgetvalue(r, 0, 6), PQgetvalue(r, 0, 7),
	    PQgetvalue(r, 0, 8)[0] ? ", error: " : "", PQgetvalue(r, 0, 8));
	const char *tail = strchr(line, ',') ? strchr(line, ',') : line;
	if (f->tty || done || bus_now_ms() - f->last_print >= 10000 || strcmp(tail, f->last) != 0) {
		sync_show(f->tty, line, done);
		f->last_print = bus_now_ms();
		snprintf(f->last, sizeof(f->last), "%s", tail);
	}
	int rv = !done ? FOLLOW_ON : strcmp(status, "complete") == 0 ? FOLLOW_END_OK : FOLLOW_END_FAIL;
	PQclear(r);
	return rv;
}

/* A run can only end if its service is alive: give up after SYNC_DOWN_LIMIT_MS without it. */
static int
follow_check_service(struct follow *f)
{
	Crmsync__Envelope *env = NULL;
	int rv = FOLLOW_ON;

	if (sync_health(f->t, &env) != 0) {
		if (f->down_since == 0) {
			f->down_since = bus_now_ms();
			fprintf(stderr, "%scrmsyncctl: %s stopped answering on %s\n", f->tty ? "\n" : "",
			    f->t->service, f->t->health_url);
		} else if (bus_now_ms() - f->down_since > SYNC_DOWN_LIMIT_MS) {
			fprintf(stderr, "crmsyncctl: %s has been down for %d s; giving up (run %lld "
			    "stays 'running' until the service restarts)\n", f->t->service,
			    SYNC_DOWN_LIMIT_MS / 1000, (long long)f->run_id);
			rv = FOLLOW_END_FAIL;
		}
	} else {
		f->down_since = 0;
	}
	bus_free(env);
	return rv;
}

/* Poll the run until it ends (0 = complete, 1 = not, or stopped watching). */
static int
sync_follow_loop(struct follow *f)
{
	while (!sync_interrupted) {
		int st = FOLLOW_ON;

		/* While PostgreSQL is away, sync_db_lost reconnects (and says when it gives up). */
		if (f->db_down_since != 0 && !sync_db_lost(f->c, f->t, f->run_id, &f->db_down_since, f->tty))
			return 1;
		if (f->db_down_since == 0 && f->run_id == 0)
			st = follow_find_run(f);
		if (st == FOLLOW_ON && f->db_down_since == 0 && f->run_id > 0)
			st = follow_show_run(f);
		if (st == FOLLOW_DB_AWAY && !sync_db_lost(f->c, f->t, f->run_id, &f->db_down_since, f->tty))
			return 1;
		if (st == FOLLOW_END_OK || st == FOLLOW_END_FAIL)
			return st == FOLLOW_END_OK ? 0 : 1;
		if (follow_check_service(f) == FOLLOW_END_FAIL)
			return 1;
		for (int i = 0; i < 10 && !sync_interrupted; i++)
			usleep(100000);
	}
	if (f->tty)
		printf("\n");
	printf("stopped watching; run %lld goes on (crmsyncctl status shows it)\n", (long long)f->run_id);
	return 1;
}

/* Follow run_id (or the first run of this CRM, reading entity if any, after max_id) in crmsync.sync_runs;
 * *followed gets the run's id. */
static int
sync_follow_db(PGconn *c, const struct sync_target *t, const char *entity, int64_t run_id,
    int64_t max_id, int64_t *followed)
{
	struct follow f = { .c = c, .t = t, .entity = entity, .run_id = run_id, .max_id = max_id,
	    .t0 = bus_now_ms(), .tty = isatty(STDOUT_FILENO) };
	int rv = sync_follow_loop(&f);

	*followed = f.run_id;
	return rv;
}

/* Following a run on the service's health responder. */
struct hfollow {
	const struct sync_target	*t;
	const struct sync_before	*b;
	int64_t				 run_id, t0, last_print;
	int				 tty, started, misses;
};

/* "run N crm: running 1m 5s, pages P, rows sent R[, status]" into line. */
static void
hfollow_line(const struct hfollow *f, const Crmsync__HealthResponse *h, int64_t running,
    char *line, size_t cap)
{
	char took[32], runlabel[32] = "pending";

	if (f->run_id > 0)
		snprintf(runlabel, sizeof(runlabel), "%lld", (long long)f->run_id);
	ctl_duration(took, sizeof(took), (bus_now_ms() - f->t0) / 1000);
	snprintf(line, cap, "run %s %s: %s %s, pages %lld, rows sent %lld%s%s",
	    runlabel, f->t->crm, running > 0 ? "running" : f->started ? "finished" : "starting",
	    took, (long long)(ctl_stat(h, "pages", 0) - f->b->pages),
	    (long long)(ctl_stat(h, "rows_sent", 0) - f->b->rows),
	    h->status != NULL && h->status[0] ? ", " : "", h->status != NULL ? h->status : "");
}

/* The run ended: complete (0), failed (1) or just ended (0), by the service's run counters. */
static int
hfollow_outcome(const struct hfollow *f, const Crmsync__HealthResponse *h)
{
	int64_t ok = ctl_stat(h, "runs_complete", -1), failed = ctl_stat(h, "runs_failed", -1);

	if (ok >= 0 && ok > f->b->ok) {
		printf("run %lld complete\n", (long long)f->run_id);
		return 0;
	}
	if (failed >= 0 && failed > f->b->failed) {
		printf("run %lld did not complete (see crmsyncctl status, and the service's log)\n",
		    (long long)f->run_id);
		return 1;
	}
	printf("run %lld ended\n", (long long)f->run_id);
	return 0;
}

/* One health probe: -1 to go on watching, else the command's exit code. */
static int
hfollow_step(struct hfollow *f)
{
	Crmsync__Envelope *env = NULL;
	const Crmsync__HealthResponse *h;
	int64_t running, last_run;
	char line[512];
	int rv = -1;

	if (sync_health(f->t, &env) != 0) {
		if (++f->misses * 1000 > SYNC_DOWN_LIMIT_MS) {
			fprintf(stderr, "%scrmsyncctl: %s has stopped answering on %s\n", f->tty ? "\n" : "",
			    f->t->service, f->t->health_url);
			rv = 1;
		}
		goto out;
	}
	f->misses = 0;
	h = env->health_response;
	running = ctl_stat(h, "running", -1);
	last_run = ctl_stat(h, "last_run_id", 0);
	if (running < 0) {
		printf("%s does not report a `running` stat: set CS_CTL_PG_DSN (or CS_PG_DSN) to "
		    "follow run %lld\n", f->t->service, (long long)f->run_id);
		rv = 0;
		goto out;
	}
	if (running > 0 || last_run != f->b->run)
		f->started = 1;
	if (f->run_id == 0 && last_run != f->b->run) {
		f->run_id = last_run;
		printf("%s%s opened run %lld\n", f->tty ? "\r\033[K" : "", f->t->service,
		    (long long)f->run_id);
	}
	hfollow_line(f, h, running, line, sizeof(line));
	if (f->started && running == 0) {
		sync_show(f->tty, line, 1);
		rv = hfollow_outcome(f, h);
		goto out;
	}
	if (f->tty || bus_now_ms() - f->last_print >= 10000) {
		sync_show(f->tty, line, 0);
		f->last_print = bus_now_ms();
	}
	if (!f->started && bus_now_ms() - f->t0 > ctl.command_timeout_ms) {
		fprintf(stderr, "%scrmsyncctl: the run never started\n", f->tty ? "\n" : "");
		rv = 1;
	}
out:
	bus_free(env);
	return rv;
}

/* Without a database: follow the service's health stats (counters since it started, so
 * this run's share is the difference from *b, read before the command). */
static int
sync_follow_health(const struct sync_target *t, int64_t run_id, const struct sync_before *b)
{
	struct hfollow f = { .t = t, .b = b, .run_id = run_id, .t0 = bus_now_ms(),
	    .tty = isatty(STDOUT_FILENO) };
	int rv;

	while (!sync_interrupted) {
		if ((rv = hfollow_step(&f)) >= 0)
			return rv;
		for (int i = 0; i < 10 && !sync_interrupted; i++)
			usleep(100000);
	}
	if (f.tty)
		printf("\n");
	printf("stopped watching; run %lld goes on (crmsyncctl status shows it)\n", (long long)f.run_id);
	return 1;
}

/* What `crmsyncctl sync` was asked. */
struct sync_args {
	struct sync_target	 t;
	char			*entities[SYNC_MAX_ENTITIES];	/* the catalogue's names */
	size_t			 nentities;
	int			 full, nowait;
};

/* The entity list of --entities, each checked against the catalogue. 0 or 2 (usage). */
static int
sync_entities(struct sync_args *a, const char *list)
{
	enum cat_crm crm = a->t.crm_id == CRMSYNC__CRM__CRM_AMO ? CAT_AMO : CAT_HOLLIHOP;
	const char *cur = list, *item;
	size_t len;
	char name[128];

	while (strlist_next(&cur, &item, &len)) {
		const struct cat_entity *e = NULL;

		if (a->nentities == SYNC_MAX_ENTITIES) {
			fprintf(stderr, "crmsyncctl: sync: at most %d entities\n", SYNC_MAX_ENTITIES);
			return 2;
		}
		if (len < sizeof(name)) {
			memcpy(name, item, len);
			name[len] = '\0';
			e = catalog_find(crm, name);
		}
		if (e == NULL) {
			fprintf(stderr, "crmsyncctl: sync: %s has no entity \"%.*s\" (crmsyncctl catalog list %s "
			    "shows them all)\n", a->t.crm, (int)(len > 64 ? 64 : len), item, a->t.crm);
			return 2;
		}
		a->entities[a->nentities++] = (char *)e->name;
	}
	return 0;
}

/* The command line: the CRM, --full, --no-wait, --entities. 0 or 2 (usage, said why). */
static int
sync_parse(int argc, char **argv, struct sync_args *a)
{
	const char *list = NULL;

	memset(a, 0, sizeof(*a));
	if (argc < 2) {
		fprintf(stderr, "usage: crmsyncctl sync hollihop|amo [--full] [--entities a,b,...] [--no-wait]\n");
		return 2;
	}
	if (strcmp(argv[1], "hollihop") == 0) {
		a->t = (struct sync_target){ "hollihop", "hollihop-sync", CRMSYNC__CRM__CRM_HOLLIHOP,
		    ctl.hollihop_url, ctl.hollihop_health };
	} else if (strcmp(argv[1], "amo") == 0) {
		a->t = (struct sync_target){ "amo", "amo-sync", CRMSYNC__CRM__CRM_AMO, ctl.amo_url, ctl.amo_health };
	} else {
		fprintf(stderr, "crmsyncctl: sync: unknown CRM \"%s\" (hollihop or amo)\n", argv[1]);
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--full") == 0) {
			a->full = 1;
		} else if (strcmp(argv[i], "--no-wait") == 0) {
			a->nowait = 1;
		} else if (strcmp(argv[i], "--entities") == 0) {
			if (i + 1 >= argc || argv[i + 1][0] == '-' || argv[i + 1][0] == '\0') {
				fprintf(stderr, "crmsyncctl: sync: --entities needs a comma-separated list, e.g. "
				    "--entities %s (crmsyncctl catalog list %s shows them all)\n",
				    a->t.crm_id == CRMSYNC__CRM__CRM_AMO ? "leads,contacts" : "students,ed_units",
				    a->t.crm);
				return 2;
			}
			list = argv[++i];
		} else {
			fprintf(stderr, "crmsyncctl: sync: unknown argument \"%s\"\n", argv[i]);
			return 2;
		}
	}
	return sync_entities(a, list);
}

/*
 * Before asking: is the service there at all (a refused dial answers at once), its counters
 * now, and the newest run in crmsync.sync_runs (with a database: *c is connected). 0 or 1.
 */
static int
sync_baseline(const struct sync_target *t, struct sync_before *before, PGconn **c, int64_t *max_id)
{
	Crmsync__Envelope *env = NULL;
	PGresult *r;
	int rv;

	if ((rv = sync_health(t, &env)) != 0) {
		fprintf(stderr, "crmsyncctl: %s is not answering on %s: %s\n", t->service, t->health_url,
		    ctl_probe_error(rv, (int)ctl.timeout_ms));
		return 1;
	}
	before->run = ctl_stat(env->health_response, "last_run_id", 0);
	before->ok = ctl_stat(env->health_response, "runs_complete", 0);
	before->failed = ctl_stat(env->health_response, "runs_failed", 0);
	before->pages = ctl_stat(env->health_response, "pages", 0);
	before->rows = ctl_stat(env->health_response, "rows_sent", 0);
	bus_free(env);
	*c = NULL;
	*max_id = 0;
	if (ctl_dsn() == NULL)
		return 0;
	if ((*c = ctl_db_connect()) == NULL)
		return 1;
	if ((r = ctl_db_query(*c, "crmsync.sync_runs", "SELECT coalesce(max(id), 0) FROM crmsync.sync_runs",
	    0, NULL)) == NULL) {
		PQfinish(*c);
		*c = NULL;
		return 1;
	}
	*max_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return 0;
}

static int	resync_summary(PGconn *c, const struct sync_target *t, const char *entity,
		    int64_t run_id);

/*
 * Ask a's service for the run, then follow it (unless --no-wait): on the database when a DSN
 * is set, else on the service's health stats. entity: a resync's one entity, whose summary
 * then decides the exit code.
 */
static int
sync_request(struct sync_args *a, const char *trigger, const char *entity)
{
	struct sync_before before;
	int64_t run_id = 0, max_id = 0;
	PGconn *c = NULL;
	int rv;

	if (sync_baseline(&a->t, &before, &c, &max_id) != 0)
		return 1;
	if (entity == NULL)
		printf("asking %s for a%s %s sync%s (%s)\n", a->t.service, a->full ? "" : "n",
		    a->full ? "full" : "incremental", a->nentities ? " of some entities" : "", a->t.url);
	else
		printf("asking %s for a full read of %s (a run with trigger resync; rows stay readable, "
		    "deletions only if it completes) (%s)\n", a->t.service, entity, a->t.url);
	if (sync_send(&a->t, a->full, a->entities, a->nentities, trigger, &run_id) != 0) {
		PQfinish(c);
		return 1;
	}
	if (a->nowait) {
		PQfinish(c);
		return 0;
	}
	sync_catch_signals();
	if (c == NULL)
		return sync_follow_health(&a->t, run_id, &before);
	rv = sync_follow_db(c, &a->t, entity, run_id, max_id, &run_id);
	if (entity != NULL && run_id > 0 && !sync_interrupted &&
	    resync_summary(c, &a->t, entity, run_id) != 0)
		rv = 1;
	PQfinish(c);
	return rv;
}

int
ctl_sync(int argc, char **argv)
{
	struct sync_args a;
	int rv;

	if ((rv = sync_parse(argc, argv, &a)) != 0)
		return rv;
	return sync_request(&a, NULL, NULL);
}

/* ---- crmsyncctl resync <crm> <entity> ---- */

/* The valid CRMs, or the entities of one, on stderr (from the catalogue). */
static void
resync_list(const struct cat_crm_desc *d)
{
	if (d == NULL) {
		fprintf(stderr, "CRMs: amo, hollihop\n");
		return;
	}
	fprintf(stderr, "%s entities:", d->schema);
	for (size_t i = 0; i < d->nentities; i++)
		fprintf(stderr, "%s%s", i % 8 ? " " : "\n  ", d->entities[i].name);
	fprintf(stderr, "\n");
}

/*
 * The run's summary from crmsync.sync_runs (a DSN is there). A complete run may still have
 * read its entity incompletely (a batch the store rejected, deletions refused): the entity
 * is done only when crmsync.entity_state says this run succeeded for it. 0 = done, else 1.
 */
static int
resync_summary(PGconn *c, const struct sync_target *t, const char *entity, int64_t run_id)
{
	char idbuf[32], took[32];
	const char *vals[3] = { idbuf, entity, t->crm };
	PGresult *r;
	int ok;

	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)run_id);
	r = ctl_db_query(c, "reading the run", "SELECT r.status, "
	    "extract(epoch FROM coalesce(r.finished_at, now()) - r.started_at)::bigint, "
	    "coalesce((r.progress -> $2 ->> 'rows')::bigint, 0), r.rows_written, r.rows_unchanged, "
	    "r.rows_deleted, coalesce(r.deletions_refused -> $2 ->> 'reason', ''), coalesce(r.error, ''), "
	    "coalesce(s.last_run_id = r.id AND s.last_ok_at >= r.started_at, false) "
	    "FROM crmsync.sync_runs r LEFT JOIN crmsync.entity_state s ON s.crm = $3 AND s.entity = $2 "
	    "WHERE r.id = $1::bigint", 3, vals);
	if (r == NULL || PQntuples(r) != 1) {
		PQclear(r);
		return 1;
	}
	const char *status = PQgetvalue(r, 0, 0), *error = PQgetvalue(r, 0, 7);
	ok = strcmp(status, "complete") == 0 && strcmp(PQgetvalue(r, 0, 8), "t") == 0;
	ctl_duration(took, sizeof(took), strtoll(PQgetvalue(r, 0, 1), NULL, 10));
	printf("resync %s %s: run %lld %s in %s: rows read %s, written %s, unchanged %s, deleted %s\n",
	    t->crm, entity, (long long)run_id, ok || strcmp(status, "complete") != 0 ? status :
	    "complete, but not for this entity", took, PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3),
	    PQgetvalue(r, 0, 4), PQgetvalue(r, 0, 5));
	if (PQgetvalue(r, 0, 6)[0] != '\0')
		printf("deletions refused: %s\n", PQgetvalue(r, 0, 6));
	else if (!ok)
		printf("the re-sync did not read %s completely: nothing of it was deleted, rows it read are "
		    "kept%s%s\n", entity, error[0] ? "; error: " : "", error);
	PQclear(r);
	return ok ? 0 : 1;
}

/* <crm> <entity> [--no-wait]: 0, or 2 after saying what is valid. */
static int
resync_parse(int argc, char **argv, struct sync_args *a)
{
	const struct cat_entity *e;
	enum cat_crm crm;

	memset(a, 0, sizeof(*a));
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--no-wait") == 0) {
			a->nowait = 1;
			continue;
		}
		fprintf(stderr, "crmsyncctl: resync: unknown argument \"%s\"\n", argv[i]);
		return 2;
	}
	if (argc < 3) {
		fprintf(stderr, "usage: crmsyncctl resync amo|hollihop ENTITY [--no-wait]\n");
		resync_list(argc == 2 && strcmp(argv[1], "amo") == 0 ? catalog_crm(CAT_AMO) :
		    argc == 2 && strcmp(argv[1], "hollihop") == 0 ? catalog_crm(CAT_HOLLIHOP) : NULL);
		return 2;
	}
	if (strcmp(argv[1], "hollihop") == 0) {
		a->t = (struct sync_target){ "hollihop", "hollihop-sync", CRMSYNC__CRM__CRM_HOLLIHOP,
		    ctl.hollihop_url, ctl.hollihop_health };
		crm = CAT_HOLLIHOP;
	} else if (strcmp(argv[1], "amo") == 0) {
		a->t = (struct sync_target){ "amo", "amo-sync", CRMSYNC__CRM__CRM_AMO, ctl.amo_url, ctl.amo_health };
		crm = CAT_AMO;
	} else {
		fprintf(stderr, "crmsyncctl: resync: unknown CRM \"%s\"\n", argv[1]);
		resync_list(NULL);
		return 2;
	}
	if ((e = catalog_find(crm, argv[2])) == NULL) {
		fprintf(stderr, "crmsyncctl: resync: %s has no entity \"%.64s\"\n", a->t.crm, argv[2]);
		resync_list(catalog_crm(crm));
		return 2;
	}
	a->entities[a->nentities++] = (char *)e->name;
	a->full = 1;
	return 0;
}

int
ctl_resync(int argc, char **argv)
{
	struct sync_args a;
	int rv;

	if ((rv = resync_parse(argc, argv, &a)) != 0)
		return rv;
	return sync_request(&a, "resync", a.entities[0]);
}
