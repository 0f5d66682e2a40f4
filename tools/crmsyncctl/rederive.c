/*
 * rederive.c - `crmsyncctl rederive amo|hollihop [ENTITY...] [--no-wait]`: ask the store to
 * re-derive typed columns and child rows from the raw JSON it holds (e.g. after a fix in
 * the normaliser), then follow the run until it ends. No CRM is asked for anything.
 *
 * The store answers with the run's id (kind 'rederive' in crmsync.sync_runs); while one
 * re-derivation of the CRM is pending it refuses a second and names the run, which is
 * followed instead. Progress comes from crmsync.sync_runs when a DSN is configured, else
 * from the store's health answer (its status line and `rederive_pending_rows`).
 * Exit: 0 = the run completed, 1 = it did not (or was refused), 2 = usage.
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

#define RD_MAX_ENTITIES	64
#define RD_DOWN_LIMIT_MS 30000

static volatile sig_atomic_t rd_interrupted;

static void
rd_onsignal(int sig)
{
	(void)sig;
	rd_interrupted = 1;
}

static void
rd_show(int tty, const char *line, int final)
{
	printf(tty ? "\r\033[K%s%s" : "%s\n", line, tty && final ? "\n" : "");
	fflush(stdout);
}

/* Send the request; 0 with *run_id (a busy store names the run it is working on). */
static int
rd_send(Crmsync__Crm crm, char **entities, size_t n, int64_t *run_id)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT, *rep = NULL;
	Crmsync__RederiveRequest rq = CRMSYNC__REDERIVE_REQUEST__INIT;
	nng_socket s;
	int rv, ret = 1;

	rq.crm = crm;
	rq.entities = entities;
	rq.n_entities = n;
	env.body_case = CRMSYNC__ENVELOPE__BODY_REDERIVE;
	env.rederive = &rq;
	if ((rv = bus_dial(&s, ctl.store_url, 1 << 20)) != 0) {
		fprintf(stderr, "crmsyncctl: cannot dial the store at %s: %s\n", ctl.store_url, cs_strerror(rv));
		return 1;
	}
	rv = bus_call(s, &env, &rep, (int)ctl.command_timeout_ms);
	bus_close(s);
	if (rv != 0) {
		fprintf(stderr, "crmsyncctl: the store did not answer on %s: %s\n", ctl.store_url, cs_strerror(rv));
		return 1;
	}
	if (rep->body_case != CRMSYNC__ENVELOPE__BODY_ACK) {
		fprintf(stderr, "crmsyncctl: the store answered something other than an Ack\n");
		goto out;
	}
	*run_id = rep->ack->run_id;
	if (rep->ack->status == CRMSYNC__ACK_STATUS__ACK_OK) {
		printf("store accepted: run %lld\n", (long long)*run_id);
		ret = 0;
	} else if (*run_id > 0 && rep->ack->error != NULL && strncmp(rep->ack->error, "busy", 4) == 0) {
		printf("store is busy: %s; following run %lld instead\n", rep->ack->error, (long long)*run_id);
		ret = 0;
	} else {
		fprintf(stderr, "crmsyncctl: the store refused: %s\n",
		    rep->ack->error != NULL && rep->ack->error[0] ? rep->ack->error : "rejected");
	}
out:
	bus_free(rep);
	return ret;
}

/* The store's health answer: status line and pending rows; -1 when it does not answer. */
static int
rd_health(char *status, size_t cap, int64_t *pending)
{
	struct ctl_probe p = { .name = "store", .url = ctl.store_health };
	const Crmsync__HealthResponse *h;

	ctl_probe_all(&p, 1, (int)ctl.timeout_ms);
	if (p.rv != 0) {
		ctl_probe_free(&p, 1);
		return -1;
	}
	h = p.env->health_response;
	snprintf(status, cap, "%s", h->status != NULL ? h->status : "");
	*pending = ctl_stat(h, "rederive_pending_rows", 0);
	ctl_probe_free(&p, 1);
	return 0;
}

/* Follow the run in crmsync.sync_runs until it ends. */
static int
rd_follow_db(PGconn *c, int64_t run_id)
{
	char id[32], line[512], status[256];
	const char *v[1] = { id };
	int tty = isatty(STDOUT_FILENO);
	int64_t down_since = 0, pending;

	snprintf(id, sizeof(id), "%lld", (long long)run_id);
	while (!rd_interrupted) {
		PGresult *r = ctl_db_query(c, "reading the run", "SELECT status, "
		    "extract(epoch FROM coalesce(finished_at, now()) - started_at)::bigint, "
		    "(SELECT coalesce(sum((v->>'rows')::bigint), 0) FROM jsonb_each(progress) AS e(k, v)), "
		    "(SELECT coalesce(sum((v->>'total')::bigint), 0) FROM jsonb_each(progress) AS e(k, v)), "
		    "rows_written, coalesce(cardinality(entities), 0), coalesce(error, '') "
		    "FROM crmsync.sync_runs WHERE id = $1::bigint", 1, v);
		if (r == NULL)
			return 1;
		if (PQntuples(r) != 1) {
			PQclear(r);
			fprintf(stderr, "crmsyncctl: run %s is not in crmsync.sync_runs\n", id);
			return 1;
		}
		char took[32];
		int done = strcmp(PQgetvalue(r, 0, 0), "running") != 0;
		ctl_duration(took, sizeof(took), strtoll(PQgetvalue(r, 0, 1), NULL, 10));
		snprintf(line, sizeof(line), "run %s rederive: %s %s, entities %s, rows read %s (of %s begun), "
		    "written %s%s%s", id, PQgetvalue(r, 0, 0), took, PQgetvalue(r, 0, 5), PQgetvalue(r, 0, 2),
		    PQgetvalue(r, 0, 3), PQgetvalue(r, 0, 4), PQgetvalue(r, 0, 6)[0] ? ", error: " : "",
		    PQgetvalue(r, 0, 6));
		rd_show(tty, line, done);
		if (done) {
			int ok = strcmp(PQgetvalue(r, 0, 0), "complete") == 0;
			PQclear(r);
			return ok ? 0 : 1;
		}
		PQclear(r);
		/* The run moves only while the store is up. */
		if (rd_health(status, sizeof(status), &pending) != 0) {
			if (down_since == 0)
				down_since = bus_now_ms();
			else if (bus_now_ms() - down_since > RD_DOWN_LIMIT_MS) {
				fprintf(stderr, "%scrmsyncctl: the store has been down for %d s; run %s resumes when "
				    "it is back\n", tty ? "\n" : "", RD_DOWN_LIMIT_MS / 1000, id);
				return 1;
			}
		} else {
			down_since = 0;
		}
		for (int i = 0; i < 10 && !rd_interrupted; i++)
			usleep(100000);
	}
	printf("%sstopped watching; run %s goes on (crmsyncctl status shows it)\n", tty ? "\n" : "", id);
	return 1;
}

/* Without a database: the store's status line until nothing is pending. */
static int
rd_follow_health(int64_t run_id)
{
	char status[256], line[512];
	int tty = isatty(STDOUT_FILENO), misses = 0;
	int64_t pending;

	while (!rd_interrupted) {
		if (rd_health(status, sizeof(status), &pending) != 0) {
			if (++misses * 1000 > RD_DOWN_LIMIT_MS) {
				fprintf(stderr, "%scrmsyncctl: the store stopped answering\n", tty ? "\n" : "");
				return 1;
			}
		} else {
			misses = 0;
			int done = strstr(status, "upgrading") == NULL && pending == 0;
			snprintf(line, sizeof(line), "run %lld rederive: %s; rows pending %lld", (long long)run_id,
			    done ? "done" : status, (long long)pending);
			rd_show(tty, line, done);
			if (done) {
				printf("(set CS_CTL_PG_DSN to see the run's outcome in crmsync.sync_runs)\n");
				return 0;
			}
		}
		for (int i = 0; i < 10 && !rd_interrupted; i++)
			usleep(100000);
	}
	printf("%sstopped watching; run %lld goes on\n", tty ? "\n" : "", (long long)run_id);
	return 1;
}

int
ctl_rederive(int argc, char **argv)
{
	char *entities[RD_MAX_ENTITIES];
	size_t n = 0;
	int nowait = 0;
	const struct cat_crm_desc *d = NULL;
	int64_t run_id = 0;
	PGconn *c;
	int ret;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--no-wait") == 0)
			nowait = 1;
		else if (argv[i][0] == '-')
			goto usage;
		else if (d == NULL) {
			if (strcmp(argv[i], "amo") != 0 && strcmp(argv[i], "hollihop") != 0)
				goto usage;
			d = catalog_crm(strcmp(argv[i], "amo") == 0 ? CAT_AMO : CAT_HOLLIHOP);
		} else if (n >= RD_MAX_ENTITIES) {
			fprintf(stderr, "crmsyncctl: rederive: at most %d entities\n", RD_MAX_ENTITIES);
			return 2;
		} else if (catalog_find(d->crm, argv[i]) == NULL) {
			fprintf(stderr, "crmsyncctl: rederive: %s has no entity \"%s\" (crmsyncctl catalog list %s)\n",
			    d->schema, argv[i], d->schema);
			return 2;
		} else {
			entities[n++] = argv[i];
		}
	}
	if (d == NULL)
		goto usage;
	if (rd_send((Crmsync__Crm)d->crm, entities, n, &run_id) != 0)
		return 1;
	if (nowait)
		return 0;
	signal(SIGINT, rd_onsignal);
	signal(SIGTERM, rd_onsignal);
	if ((c = ctl_db_connect()) != NULL) {
		ret = rd_follow_db(c, run_id);
		PQfinish(c);
		return ret;
	}
	if (ctl_dsn() != NULL && ctl_dsn()[0] != '\0')
		return 1;	/* a DSN that does not work: said why already */
	return rd_follow_health(run_id);
usage:
	fprintf(stderr, "usage: crmsyncctl rederive amo|hollihop [ENTITY...] [--no-wait]\n");
	return 2;
}
