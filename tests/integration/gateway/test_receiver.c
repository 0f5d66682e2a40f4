/*
 * test_receiver.c - a stand-in for amo-sync in the hook gateway's tests and benchmark.
 *
 * Listens REP on URL and answers HookDeliveries the way amo-sync does (its README,
 * "Webhooks"): Ack{ACK_OK, batch_id=seq, done_seq, boot_id} as soon as a delivery is
 * queued; boot_id is random per start; seq 0 is a probe; a seq at or below the highest
 * seen from the same journal (journal_id) is a duplicate (answered, not queued); another
 * journal starts the count again, and what is pending counts as its seq 1 (done_seq 0 until
 * it is processed). A queued delivery is "processed" --lag-ms
 * later: only then is it appended to OUT, one line each,
 *   <seq> <n events> <entity>/<action>/<id>/<uid>/<type> ...
 * and only then does done_seq pass it. Killed, it loses what it had not processed, as
 * amo-sync loses its in-memory queue. --mode picks another answer (twophase = the default
 * ack, kept for older scripts): retry (ACK_RETRY),
 * reject (ACK_REJECTED) or silent (never answer). --ready FILE is created once listening.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "bus.h"
#include "errors.h"
#include "log.h"

struct pending {
	uint64_t	 seq;
	int64_t		 due_ms;
	char		*line;
};

static volatile sig_atomic_t stop;
static struct pending *q;
static size_t qhead, qtail, qcap;
static uint64_t max_seq;
static uint64_t journal_id;	/* the journal max_seq counts in */

static void
onsig(int sig)
{
	(void)sig;
	stop = 1;
}

static uint64_t
done_seq(void)
{
	return qhead == qtail ? max_seq : q[qhead].seq - 1;
}

/* Process (write out) what is due. */
static void
flush_due(FILE *f)
{
	int64_t now = bus_now_ms();
	int wrote = 0;

	while (qhead != qtail && q[qhead].due_ms <= now) {
		fputs(q[qhead].line, f);
		free(q[qhead].line);
		qhead++;
		wrote = 1;
	}
	if (qhead == qtail)
		qhead = qtail = 0;
	if (wrote)
		fflush(f);
}

static char *
render(const Crmsync__HookDelivery *d)
{
	size_t cap = 64, len = 0;
	char *s = malloc(cap);

	len += (size_t)snprintf(s, cap, "%llu %zu", (unsigned long long)d->seq, d->n_events);
	for (size_t i = 0; i < d->n_events; i++) {
		const Crmsync__HookEvent *e = d->events[i];
		size_t need = strlen(e->entity) + strlen(e->action) + strlen(e->uid) + strlen(e->type) + 48;
		if (len + need + 2 > cap) {
			cap = (len + need + 2) * 2;
			s = realloc(s, cap);
		}
		len += (size_t)snprintf(s + len, cap - len, " %s/%s/%lld/%s/%s", e->entity, e->action,
		    (long long)e->id, e->uid[0] ? e->uid : "-", e->type[0] ? e->type : "-");
	}
	if (len + 2 > cap)
		s = realloc(s, len + 2);
	s[len++] = '\n';
	s[len] = '\0';
	return s;
}

static void
reply(nng_socket s, Crmsync__AckStatus st, uint64_t seq, uint64_t boot, uint64_t jid)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT;
	Crmsync__Ack ack = CRMSYNC__ACK__INIT;

	ack.status = st;
	ack.error = (char *)(st == CRMSYNC__ACK_STATUS__ACK_OK ? "" : "test mode");
	ack.batch_id = seq;
	ack.done_seq = done_seq();
	ack.boot_id = boot;
	ack.journal_id = jid;
	env.body_case = CRMSYNC__ENVELOPE__BODY_ACK;
	env.ack = &ack;
	(void)bus_send(s, &env);
}

int
main(int argc, char **argv)
{
	const char *url, *out, *mode = "ack", *ready = NULL;
	int64_t lag_ms = 0;
	uint64_t boot = 0;
	nng_socket s;
	FILE *f;
	int rv;

	if (argc < 3) {
		fprintf(stderr, "usage: gw_test_receiver URL OUT [--mode ack|retry|reject|silent]"
		    " [--lag-ms N] [--ready FILE]\n");
		return 2;
	}
	url = argv[1];
	out = argv[2];
	for (int i = 3; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--mode") == 0)
			mode = strcmp(argv[i + 1], "twophase") == 0 ? "ack" : argv[i + 1];
		else if (strcmp(argv[i], "--ready") == 0)
			ready = argv[i + 1];
		else if (strcmp(argv[i], "--lag-ms") == 0)
			lag_ms = atoll(argv[i + 1]);
	}
	log_init("test-receiver", 0);
	signal(SIGTERM, onsig);
	signal(SIGINT, onsig);
	while (boot == 0)
		if (getrandom(&boot, sizeof(boot), 0) != sizeof(boot))
			boot = (uint64_t)bus_now_ms();
	if ((f = fopen(out, "a")) == NULL) {
		perror(out);
		return 1;
	}
	if ((rv = bus_listen(&s, url, 64u << 20)) != 0) {
		fprintf(stderr, "listen %s: %s\n", url, cs_strerror(rv));
		return 1;
	}
	if (ready != NULL) {
		FILE *r = fopen(ready, "w");
		if (r != NULL)
			fclose(r);
	}
	while (!stop) {
		Crmsync__Envelope *env = NULL;
		Crmsync__HookDelivery *d;

		flush_due(f);
		rv = bus_recv(s, &env, 20);
		if (rv == CS_ETIMEDOUT)
			continue;
		if (rv != 0) {
			if (rv == CS_EPROTO)
				(void)bus_reply_ack(s, CRMSYNC__ACK_STATUS__ACK_REJECTED, "undecodable", 0, 0, 0, 0);
			continue;
		}
		if (env->body_case != CRMSYNC__ENVELOPE__BODY_HOOKS) {
			(void)bus_reply_ack(s, CRMSYNC__ACK_STATUS__ACK_REJECTED, "hooks only", 0, 0, 0, 0);
			bus_free(env);
			continue;
		}
		d = env->hooks;
		if (strcmp(mode, "silent") == 0) {
			bus_free(env);
			continue;
		}
		if (d->journal_id != journal_id) {
			fprintf(stderr, "journal changed: %016llx -> %016llx, max_seq %llu, %zu pending\n",
			    (unsigned long long)journal_id, (unsigned long long)d->journal_id,
			    (unsigned long long)max_seq, qtail - qhead);
			for (size_t i = qhead; i < qtail; i++)
				q[i].seq = 1;
			journal_id = d->journal_id;
			max_seq = 0;
		}
		if (d->seq == 0 || d->seq <= max_seq) {
			/* a probe, or a re-send of something already queued */
			reply(s, CRMSYNC__ACK_STATUS__ACK_OK, d->seq, boot, journal_id);
		} else if (strcmp(mode, "retry") == 0) {
			reply(s, CRMSYNC__ACK_STATUS__ACK_RETRY, d->seq, boot, journal_id);
		} else if (strcmp(mode, "reject") == 0) {
			reply(s, CRMSYNC__ACK_STATUS__ACK_REJECTED, d->seq, boot, journal_id);
		} else {
			if (qtail == qcap) {
				qcap = qcap ? qcap * 2 : 1024;
				q = realloc(q, qcap * sizeof(*q));
			}
			q[qtail].seq = d->seq;
			q[qtail].due_ms = bus_now_ms() + lag_ms;
			q[qtail].line = render(d);
			qtail++;
			max_seq = d->seq;
			if (lag_ms == 0)
				flush_due(f);
			reply(s, CRMSYNC__ACK_STATUS__ACK_OK, d->seq, boot, journal_id);
		}
		bus_free(env);
	}
	fclose(f);	/* what was not processed is lost, as in amo-sync */
	bus_close(s);
	return 0;
}
