/*
 * sendq.h - an ordered, bounded queue of Envelopes to one REQ peer (the store), sent by a
 * thread of its own.
 *
 * A producer packs a message and queues it (sendq_submit) and goes on with its next page
 * while the peer commits the previous one; at most `depth` messages wait or are in flight,
 * so memory stays bounded and a slow peer slows the producer down. Messages reach the
 * peer strictly in queue order, each re-sent with bus_call_retry's rules (ACK_RETRY and
 * timeouts retried with backoff, until ACK_OK or ACK_REJECTED, or the deadline). A message
 * marked data_reply is answered by whatever the peer sends back (a CursorValue), an Ack
 * only when it is a retry or a rejection.
 * sendq_call() queues one message and waits for its own answer (hence for all before it);
 * sendq_drain() waits until everything queued has been answered; sendq_mark() and
 * sendq_reached() tell, without waiting, whether everything queued up to a point has
 * (what one producer's part needs while others keep queueing behind it).
 * A done callback, run on the sender thread, sees every answer (for logs and counters).
 * Stopping: once *stop is set, what is queued gets grace_ms more, in all (one window from
 * the moment the sender first sees the stop), then fails with CS_ECANCELED; with no grace
 * it fails at once. An unstoppable message ignores the stop (bounded by its deadline).
 * The first failure that is not a rejection (deadline, stop, no memory) is sticky: later
 * submits and drains return it until sendq_clear_error(); best-effort messages never set it.
 * Threads: any thread may submit; the sender thread owns the REQ socket, which no one else
 * may use while the queue is open.
 */
#ifndef CS_SENDQ_H
#define CS_SENDQ_H

#include <stddef.h>
#include <stdint.h>
#include <nng/nng.h>

#include "crmsync.pb-c.h"

struct sendq;

struct sendq_meta {
	uint64_t	 tag;		/* the caller's id (a batch id) */
	size_t		 n;		/* rows, for the callback */
	const char	*label;		/* an entity name, for the callback (copied) */
	int64_t		 deadline_ms;	/* give up after this long (<= 0: the queue's default) */
	int		 best_effort;	/* a failure is not sticky (progress notes) */
	int		 unstoppable;	/* ignore the stop flag (the record of a run's end) */
	int		 data_reply;	/* the answer is a message of its own, not an Ack */
};

/* Called on the sender thread once per message; reply is NULL unless the peer answered. */
typedef void (*sendq_done_fn)(void *arg, const struct sendq_meta *m, int rv,
    const Crmsync__Envelope *reply, int64_t ms);

struct sendq_opts {
	int		 timeout_ms;	/* one round trip */
	int64_t		 deadline_ms;	/* default per message (<= 0: until answered or stopped) */
	int64_t		 grace_ms;	/* after *stop: what is queued still gets this long, in all */
	size_t		 depth;		/* messages queued or in flight, >= 1 */
	volatile _Atomic int	*stop;		/* non-zero: give up (CS_ECANCELED), after the grace */
	sendq_done_fn	 done;		/* may be NULL */
	/* May be NULL: called on the sender thread after each answer counts for
	 * sendq_reached (to wake a caller that polls); no lock held. */
	void		(*answered)(void *arg);
	void		*arg;		/* of both */
};

int	sendq_open(struct sendq **out, nng_socket s, const struct sendq_opts *o);
/* Pack env and queue it; waits for room. Returns 0 or the sticky error. */
int	sendq_submit(struct sendq *q, const Crmsync__Envelope *env, const struct sendq_meta *m);
/* Queue env and wait for its answer: 0 or CS_EREJECTED (*reply, if asked, owned by the
 * caller: the Ack, or the data reply), or an error (*reply NULL). */
int	sendq_call(struct sendq *q, const Crmsync__Envelope *env, const struct sendq_meta *m,
	    Crmsync__Envelope **reply);
/* Wait until every queued message is answered; returns the sticky error or 0. */
int	sendq_drain(struct sendq *q);
/* A mark after every message queued so far. */
uint64_t sendq_mark(struct sendq *q);
/* 1 when every message queued before mark was answered (or failed), then *err (may be
 * NULL) the sticky error as sendq_drain returns it; 0 while one still waits or is in
 * flight. Never waits. */
int	sendq_reached(struct sendq *q, uint64_t mark, int *err);
void	sendq_clear_error(struct sendq *q);
/* Drains (bounded by the messages' deadlines and the stop flag), stops the thread, frees.
 * The caller sets *stop first when nothing queued may wait for long. */
void	sendq_close(struct sendq *q);

#endif
