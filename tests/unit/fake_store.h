/*
 * fake_store.h - an in-process stand-in for the store, for the sender's unit tests: a REP
 * socket on an inproc:// address served by a thread, answering each message as the test
 * decides (OK, RETRY, REJECTED, a CursorValue, or nothing), and recording every message
 * it received, in order, with the answer it gave.
 */
#ifndef FAKE_STORE_H
#define FAKE_STORE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <nng/nng.h>

#include "crmsync.pb-c.h"

enum fake_answer { FAKE_OK, FAKE_RETRY, FAKE_REJECT, FAKE_SILENT, FAKE_CURSOR };

#define FAKE_MAX_SEEN	1024

/* One message as the store saw it. */
struct fake_seen {
	int		 body;		/* Crmsync__Envelope body_case */
	uint64_t	 batch_id;
	char		 entity[64];	/* batch entity, progress entity, cursor name */
	int64_t		 run_id;
	size_t		 n;		/* records / entities */
	int		 answer;	/* enum fake_answer given */
	Crmsync__Envelope *env;		/* the whole message (freed by fake_store_stop) */
};

struct fake_store;
/* Decide the answer to env (attempt: how often this same batch/message was seen before). */
typedef enum fake_answer (*fake_decide_fn)(void *arg, const Crmsync__Envelope *env, int attempt);

/* Listen on url and serve until fake_store_stop. decide NULL = always FAKE_OK. */
struct fake_store *fake_store_start(const char *url, fake_decide_fn decide, void *arg);
void	fake_store_stop(struct fake_store *f);
/* Change the answers from now on. */
void	fake_store_set(struct fake_store *f, fake_decide_fn decide, void *arg);
/* Wait (up to ms) until at least n messages were seen; returns the count seen. */
size_t	fake_store_wait(struct fake_store *f, size_t n, int ms);
/* Copy of the i-th message seen (i < count). */
struct fake_seen fake_store_seen(struct fake_store *f, size_t i);
size_t	fake_store_count(struct fake_store *f);
/* The run id the store hands out for every RunBegin. */
#define FAKE_RUN_ID	4242

#endif
