/*
 * test_receiver.c - a stand-in for amo-sync in the hook gateway's tests.
 *
 * Listens REP on URL, and for every Envelope{hooks} appends one line to OUT:
 *   <seq> <n events> <entity>/<action>/<id>/<uid> ...
 * then answers Ack{status, batch_id=seq}. --mode picks the answer: ack (ACK_OK), retry
 * (ACK_RETRY), reject (ACK_REJECTED), silent (record nothing, never answer) or twophase
 * (ACK_OK with amo-sync's two-phase fields: a boot_id fixed per process and done_seq =
 * the highest seq received minus --lag, so up to --lag deliveries stay "unfinished" and a
 * kill -9 must make the gateway send them again). --ready FILE is created once listening.
 * Stops on SIGTERM/SIGINT.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "bus.h"
#include "errors.h"
#include "log.h"

static volatile sig_atomic_t stop;

static void
onsig(int sig)
{
	(void)sig;
	stop = 1;
}

int
main(int argc, char **argv)
{
	const char *url, *out, *mode = "ack", *ready = NULL;
	int delay_ms = 0;
	long lag = 0;
	uint64_t boot_id, highest = 0;
	nng_socket s;
	FILE *f;
	int rv;

	if (argc < 3) {
		fprintf(stderr, "usage: gw_test_receiver URL OUT [--mode ack|retry|reject|silent]"
		    " [--ready FILE] [--delay-ms N]\n");
		return 2;
	}
	url = argv[1];
	out = argv[2];
	for (int i = 3; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--mode") == 0)
			mode = argv[i + 1];
		else if (strcmp(argv[i], "--ready") == 0)
			ready = argv[i + 1];
		else if (strcmp(argv[i], "--delay-ms") == 0)
			delay_ms = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--lag") == 0)
			lag = atol(argv[i + 1]);
	}
	boot_id = ((uint64_t)getpid() << 20) ^ (uint64_t)bus_now_ms();
	log_init("test-receiver", 0);
	signal(SIGTERM, onsig);
	signal(SIGINT, onsig);
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
		Crmsync__AckStatus st;

		rv = bus_recv(s, &env, 100);
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
		if (strcmp(mode, "twophase") == 0 && d->seq == 0) {
			/* A poll for done_seq: nothing to record. */
			Crmsync__Envelope rep = CRMSYNC__ENVELOPE__INIT;
			Crmsync__Ack ack = CRMSYNC__ACK__INIT;
			ack.done_seq = highest > (uint64_t)lag ? highest - (uint64_t)lag : 0;
			ack.boot_id = boot_id;
			ack.error = (char *)"";
			rep.body_case = CRMSYNC__ENVELOPE__BODY_ACK;
			rep.ack = &ack;
			(void)bus_send(s, &rep);
			bus_free(env);
			continue;
		}
		if (strcmp(mode, "silent") == 0) {
			bus_free(env);
			continue;
		}
		fprintf(f, "%llu %zu", (unsigned long long)d->seq, d->n_events);
		for (size_t i = 0; i < d->n_events; i++)
			fprintf(f, " %s/%s/%lld/%s", d->events[i]->entity, d->events[i]->action,
			    (long long)d->events[i]->id, d->events[i]->uid[0] ? d->events[i]->uid : "-");
		fputc('\n', f);
		fflush(f);
		if (delay_ms > 0)
			nng_msleep((nng_duration)delay_ms);
		if (strcmp(mode, "twophase") == 0) {
			Crmsync__Envelope rep = CRMSYNC__ENVELOPE__INIT;
			Crmsync__Ack ack = CRMSYNC__ACK__INIT;
			if (d->seq > highest)
				highest = d->seq;
			ack.batch_id = d->seq;
			ack.done_seq = highest > (uint64_t)lag ? highest - (uint64_t)lag : 0;
			ack.boot_id = boot_id;
			ack.error = (char *)"";
			rep.body_case = CRMSYNC__ENVELOPE__BODY_ACK;
			rep.ack = &ack;
			(void)bus_send(s, &rep);
			bus_free(env);
			continue;
		}
		st = strcmp(mode, "retry") == 0 ? CRMSYNC__ACK_STATUS__ACK_RETRY :
		    strcmp(mode, "reject") == 0 ? CRMSYNC__ACK_STATUS__ACK_REJECTED :
		    CRMSYNC__ACK_STATUS__ACK_OK;
		(void)bus_reply_ack(s, st, st == CRMSYNC__ACK_STATUS__ACK_OK ? "" : "test mode", d->seq,
		    (uint32_t)d->n_events, 0, 0);
		bus_free(env);
	}
	fclose(f);
	bus_close(s);
	return 0;
}
