/*
 * deadletters.c - `crmsyncctl deadletters list|show|resubmit|discard`: what crmsync kept
 * because it could not apply it (crmsync.dead_letters), and what to do about it.
 *
 * list and show read PostgreSQL (a read-only role is enough). A batch dead letter's payload
 * is the Envelope the store received: show unpacks it and prints each record's source JSON;
 * a row dead letter's payload is the source row itself. Payloads hold CRM data only (no
 * token, authkey or hook secret travels in a batch); bytes that are not printable UTF-8 text
 * are shown as \xNN. resubmit and discard are requests to the store (the only writer):
 * DeadLetterRequest over CS_STORE_URL, one result per id; see services/store/deadletter.c
 * for what a resubmission does. Exit: 0 = done for every id, 1 = not (said why), 2 = usage.
 */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "catalog.h"
#include "ctl.h"
#include "errors.h"

#define DL_LIST_MAX	200	/* lines of a list (the LIMIT of its query) */
#define DL_SHOW_RECORDS	20	/* records of a batch printed by show */
#define DL_MAX_IDS	1000

static void
dl_usage(void)
{
	fprintf(stderr, "usage: crmsyncctl deadletters list [--crm C] [--entity E] [--all]\n"
	    "       crmsyncctl deadletters show ID\n"
	    "       crmsyncctl deadletters resubmit ID...\n"
	    "       crmsyncctl deadletters discard ID... --reason TEXT\n");
}

/* Print s (len bytes) as text: control bytes other than \n and \t, and invalid UTF-8, as \xNN. */
static void
dl_print_text(const unsigned char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		size_t n = s[i] < 0x80 ? 1 : (s[i] & 0xe0) == 0xc0 ? 2 : (s[i] & 0xf0) == 0xe0 ? 3 :
		    (s[i] & 0xf8) == 0xf0 ? 4 : 0;
		int ok = n > 0 && i + n <= len && (n > 1 || s[i] >= 0x20 || s[i] == '\n' || s[i] == '\t') &&
		    s[i] != 0x7f;

		for (size_t k = 1; ok && k < n; k++)
			ok = (s[i + k] & 0xc0) == 0x80;
		if (!ok) {
			printf("\\x%02x", s[i]);
			i++;
			continue;
		}
		fwrite(s + i, 1, n, stdout);
		i += n;
	}
}

static PGconn *
dl_db(void)
{
	if (ctl_dsn() == NULL) {
		fprintf(stderr, "crmsyncctl: deadletters: set CS_CTL_PG_DSN (or CS_PG_DSN): dead letters are "
		    "in crmsync.dead_letters\n");
		return NULL;
	}
	return ctl_db_connect();
}

static int
dl_list(int argc, char **argv)
{
	const char *crm = "", *entity = "", *all = "f";
	PGconn *c;
	PGresult *r;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--all") == 0) {
			all = "t";
		} else if ((strcmp(argv[i], "--crm") == 0 || strcmp(argv[i], "--entity") == 0) && i + 1 < argc) {
			*(argv[i][2] == 'c' ? &crm : &entity) = argv[i + 1];
			i++;
		} else {
			fprintf(stderr, "crmsyncctl: deadletters list: unexpected argument \"%s\"\n", argv[i]);
			dl_usage();
			return 2;
		}
	}
	if ((c = dl_db()) == NULL)
		return 1;
	const char *vals[3] = { crm, entity, all };
	r = ctl_db_query(c, "crmsync.dead_letters", "SELECT id, to_char(received_at, 'YYYY-MM-DD HH24:MI:SS'), "
	    "coalesce(crm, '-'), coalesce(entity, '-'), coalesce(run_id::text, '-'), "
	    "CASE WHEN reason LIKE 'row: %' THEN 'row' ELSE 'batch' END, coalesce(length(payload), 0), "
	    "coalesce(resolution, 'open'), left(split_part(reason, E'\\n', 1), 90), "
	    "count(*) OVER () FROM crmsync.dead_letters WHERE ($1 = '' OR crm = $1) AND ($2 = '' OR entity = $2) "
	    "AND ($3::bool OR resolved_at IS NULL) ORDER BY id DESC LIMIT 200", 3, vals);
	if (r == NULL) {
		PQfinish(c);
		return 1;
	}
	if (PQntuples(r) == 0)
		printf("no %sdead letters%s\n", all[0] == 't' ? "" : "open ", all[0] == 't' ? "" :
		    " (--all lists the resubmitted and discarded ones too)");
	else
		printf("%-6s %-19s %-8s %-26s %-6s %-5s %8s %-11s %s\n", "ID", "RECEIVED", "CRM", "ENTITY", "RUN",
		    "KIND", "BYTES", "STATE", "REASON");
	for (int i = 0; i < PQntuples(r); i++)
		printf("%-6s %-19s %-8s %-26s %-6s %-5s %8s %-11s %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
		    PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 5),
		    PQgetvalue(r, i, 6), PQgetvalue(r, i, 7), PQgetvalue(r, i, 8));
	if (PQntuples(r) > 0 && strtol(PQgetvalue(r, 0, 9), NULL, 10) > PQntuples(r))
		printf("(the newest %d of %s)\n", PQntuples(r), PQgetvalue(r, 0, 9));
	PQclear(r);
	PQfinish(c);
	return 0;
}

/* A batch dead letter's payload: the Envelope, unpacked, each record's JSON. */
static void
dl_show_envelope(const unsigned char *p, size_t len)
{
	Crmsync__Envelope *env = crmsync__envelope__unpack(NULL, len, p);

	if (env == NULL) {
		printf("payload: %zu bytes that are not a crmsync message (shown as text)\n", len);
		dl_print_text(p, len > 4096 ? 4096 : len);
		printf("%s\n", len > 4096 ? "..." : "");
		return;
	}
	if (env->body_case != CRMSYNC__ENVELOPE__BODY_BATCH) {
		printf("payload: a crmsync message that is not a record batch (body %d)\n", (int)env->body_case);
		crmsync__envelope__free_unpacked(env, NULL);
		return;
	}
	const Crmsync__RecordBatch *b = env->batch;
	printf("payload: record batch %llu of run %lld, %s %s, %zu records%s%s%s\n",
	    (unsigned long long)b->batch_id, (long long)b->run_id,
	    b->crm == CRMSYNC__CRM__CRM_AMO ? "amo" : b->crm == CRMSYNC__CRM__CRM_HOLLIHOP ? "hollihop" : "?",
	    b->entity, b->n_records, b->cursor != NULL ? ", cursor " : "",
	    b->cursor != NULL ? b->cursor->name : "", b->cursor != NULL ? " (not re-applied on resubmit)" : "");
	for (size_t i = 0; i < b->n_records && i < DL_SHOW_RECORDS; i++) {
		printf("record %zu%s: ", i + 1, b->records[i]->deleted ? " (deleted)" : "");
		dl_print_text(b->records[i]->raw_json.data, b->records[i]->raw_json.len);
		printf("\n");
	}
	if (b->n_records > DL_SHOW_RECORDS)
		printf("... %zu more records\n", b->n_records - DL_SHOW_RECORDS);
	crmsync__envelope__free_unpacked(env, NULL);
}

static int
dl_show(int argc, char **argv)
{
	PGconn *c;
	PGresult *r;
	char *end;

	if (argc != 2 || strtoll(argv[1], &end, 10) <= 0 || *end != '\0') {
		dl_usage();
		return 2;
	}
	if ((c = dl_db()) == NULL)
		return 1;
	const char *vals[1] = { argv[1] };
	/* Binary results: the payload as its bytes (text columns arrive as text all the same). */
	r = PQexecParams(c, "SELECT coalesce(crm, '-'), coalesce(entity, '-'), "
	    "to_char(received_at, 'YYYY-MM-DD HH24:MI:SS TZ'), coalesce(run_id::text, '-'), "
	    "coalesce(batch_id::text, '-'), reason, coalesce(payload, ''::bytea), "
	    "coalesce(resolution || ' at ' || to_char(resolved_at, 'YYYY-MM-DD HH24:MI:SS TZ') || ' by ' || "
	    "coalesce(resolved_by, '?') || ': ' || coalesce(resolution_reason, ''), 'open'), "
	    "coalesce(to_char(resubmit_at, 'YYYY-MM-DD HH24:MI:SS TZ') || ': ' || resubmit_error, '') "
	    "FROM crmsync.dead_letters WHERE id = $1::text::bigint", 1, NULL, vals, NULL, NULL, 1);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "crmsyncctl: crmsync.dead_letters: %s", PQresultErrorMessage(r));
		PQclear(r);
		PQfinish(c);
		return 1;
	}
	if (PQntuples(r) != 1) {
		fprintf(stderr, "crmsyncctl: deadletters: no dead letter %s\n", argv[1]);
		PQclear(r);
		PQfinish(c);
		return 1;
	}
	const char *reason = PQgetvalue(r, 0, 5);
	const unsigned char *p = (const unsigned char *)PQgetvalue(r, 0, 6);
	size_t len = (size_t)PQgetlength(r, 0, 6);
	printf("dead letter %s: %s %s, received %s, run %s, batch %s\nstate: %s\n", argv[1], PQgetvalue(r, 0, 0),
	    PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3), PQgetvalue(r, 0, 4),
	    PQgetvalue(r, 0, 7));
	if (PQgetvalue(r, 0, 8)[0])
		printf("last resubmission: %s\n", PQgetvalue(r, 0, 8));
	printf("reason: ");
	dl_print_text((const unsigned char *)reason, strlen(reason));
	printf("\n");
	if (strncmp(reason, "row: ", 5) == 0) {
		printf("payload: the source row (%zu bytes) the sync service could not read:\n", len);
		dl_print_text(p, len);
		printf("\n");
	} else {
		dl_show_envelope(p, len);
	}
	PQclear(r);
	PQfinish(c);
	return 0;
}

/* user@host of whoever runs this, for the record (who resubmitted or discarded). */
static void
dl_who(char *dst, size_t cap)
{
	const char *u = getenv("SUDO_USER");
	struct passwd *pw;
	char host[128] = "?";

	if (u == NULL || u[0] == '\0')
		u = (pw = getpwuid(getuid())) != NULL ? pw->pw_name : getenv("USER");
	(void)gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	snprintf(dst, cap, "%s@%s", u != NULL ? u : "?", host);
}

/* resubmit|discard ID... [--reason TEXT]: a DeadLetterRequest to the store. */
static int
dl_act(int argc, char **argv, Crmsync__DeadLetterAction action)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT, *rep = NULL;
	Crmsync__DeadLetterRequest rq = CRMSYNC__DEAD_LETTER_REQUEST__INIT;
	int64_t ids[DL_MAX_IDS];
	char who[256], *reason = NULL;
	nng_socket s;
	int rv, ret = 1;

	for (int i = 1; i < argc; i++) {
		char *end;
		long long id;

		if (strcmp(argv[i], "--reason") == 0 && i + 1 < argc && argv[i + 1][0] != '\0') {
			reason = argv[++i];
			continue;
		}
		id = strtoll(argv[i], &end, 10);
		if (id <= 0 || *end != '\0' || rq.n_ids == DL_MAX_IDS) {
			fprintf(stderr, "crmsyncctl: deadletters %s: \"%s\" is not a dead letter id\n", argv[0], argv[i]);
			dl_usage();
			return 2;
		}
		ids[rq.n_ids++] = id;
	}
	if (rq.n_ids == 0 || (action == CRMSYNC__DEAD_LETTER_ACTION__DL_DISCARD && reason == NULL)) {
		fprintf(stderr, "crmsyncctl: deadletters %s: %s\n", argv[0], rq.n_ids == 0 ? "which ids?" :
		    "say why with --reason TEXT (kept with the dead letter)");
		dl_usage();
		return 2;
	}
	dl_who(who, sizeof(who));
	rq.action = action;
	if (reason != NULL)
		rq.reason = reason;
	rq.ids = ids;
	rq.who = who;
	env.body_case = CRMSYNC__ENVELOPE__BODY_DEAD_LETTER;
	env.dead_letter = &rq;
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
	if (rep->body_case == CRMSYNC__ENVELOPE__BODY_ACK) {
		fprintf(stderr, "crmsyncctl: the store %s: %s\n", rep->ack->status == CRMSYNC__ACK_STATUS__ACK_RETRY ?
		    "cannot now (try again)" : "refused", rep->ack->error != NULL ? rep->ack->error : "");
	} else if (rep->body_case == CRMSYNC__ENVELOPE__BODY_DEAD_LETTER_REPLY) {
		const Crmsync__DeadLetterReply *d = rep->dead_letter_reply;

		ret = d->n_results == rq.n_ids ? 0 : 1;
		for (size_t i = 0; i < d->n_results; i++) {
			printf("dead letter %lld: %s%s\n", (long long)d->results[i]->id, d->results[i]->ok ? "" :
			    "not done: ", d->results[i]->detail != NULL ? d->results[i]->detail : "");
			if (!d->results[i]->ok)
				ret = 1;
		}
	} else {
		fprintf(stderr, "crmsyncctl: the store answered something other than a DeadLetterReply\n");
	}
	bus_free(rep);
	return ret;
}

int
ctl_deadletters(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";

	if (strcmp(sub, "list") == 0)
		return dl_list(argc - 1, argv + 1);
	if (strcmp(sub, "show") == 0)
		return dl_show(argc - 1, argv + 1);
	if (strcmp(sub, "resubmit") == 0)
		return dl_act(argc - 1, argv + 1, CRMSYNC__DEAD_LETTER_ACTION__DL_RESUBMIT);
	if (strcmp(sub, "discard") == 0)
		return dl_act(argc - 1, argv + 1, CRMSYNC__DEAD_LETTER_ACTION__DL_DISCARD);
	dl_usage();
	return 2;
}
