/*
 * null_store.c - a stand-in for crmsync-store that acknowledges everything at once and
 * writes nothing: the Hollihop benchmark runs hollihop-sync against it to separate the
 * sync service's own cost (download, parse, normalise, pack, NNG) from the store's and
 * PostgreSQL's. It counts what it received and prints the totals on SIGTERM.
 *   CS_STORE_URL=ipc:///tmp/x.sock hollihop_null_store
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "bus.h"
#include "errors.h"

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int
main(void)
{
	const char *url = getenv("CS_STORE_URL");
	unsigned long long batches = 0, records = 0, children = 0;
	nng_socket s;

	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	if (url == NULL || bus_listen(&s, url, BUS_RECVMAX_DEFAULT) != 0) {
		fprintf(stderr, "null_store: cannot listen on CS_STORE_URL\n");
		return 1;
	}
	fprintf(stderr, "null_store: ready\n");
	while (!stop) {
		Crmsync__Envelope *env = NULL;
		int rv = bus_recv(s, &env, 200);
		int64_t run_id = 0;

		if (rv == CS_ETIMEDOUT)
			continue;
		if (rv == 0 && env->body_case == CRMSYNC__ENVELOPE__BODY_BATCH) {
			batches++;
			records += env->batch->n_records;
			for (size_t i = 0; i < env->batch->n_records; i++)
				children += env->batch->records[i]->n_children;
		} else if (rv == 0 && env->body_case == CRMSYNC__ENVELOPE__BODY_RUN_BEGIN) {
			run_id = 1;
		}
		(void)bus_reply_ack(s, rv == 0 ? CRMSYNC__ACK_STATUS__ACK_OK : CRMSYNC__ACK_STATUS__ACK_REJECTED,
		    NULL, rv == 0 && env->body_case == CRMSYNC__ENVELOPE__BODY_BATCH ? env->batch->batch_id : 0,
		    0, 0, run_id);
		bus_free(env);
	}
	printf("null_store: batches=%llu records=%llu child_rows=%llu\n", batches, records, children);
	bus_close(s);
	return 0;
}
