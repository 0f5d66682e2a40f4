/*
 * forward.c - journal -> amo-sync, one delivery at a time, in seq order (see forward.h).
 *
 * Acknowledgement has two phases (proto/crmsync.proto, Ack): amo-sync's Ack says it has
 * received delivery `batch_id`, and `done_seq` says everything up to there is fully
 * processed (fetched and committed). Journal entries are released only up to done_seq.
 * When amo-sync's `boot_id` changes it has restarted and lost what it had not finished:
 * the reader is rewound to done_seq and the rest is sent again (duplicates are harmless;
 * amo-sync's fetches are idempotent). While idle with unfinished deliveries, an empty
 * HookDelivery (seq 0) asks for the current done_seq. A peer that sends no boot_id (an
 * older or simpler receiver) is taken to finish each delivery when it acknowledges it.
 *
 * The journal stores each HookDelivery without its seq (the seq lives in the record
 * header, assigned when the record was queued); it is filled in here before sending, so
 * amo-sync sees the journal's seq and echoes it as Ack.batch_id.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "deadletter.h"
#include "errors.h"
#include "forward.h"
#include "gateway.h"
#include "journal.h"
#include "log.h"

#define FORWARD_READ_WAIT_MS	200
#define FORWARD_WARN_EVERY_MS	10000

struct forward {
	struct forward_opts	 o;
	char			*url;
	nng_socket		 sock;
	pthread_t		 thr;
	volatile int		 stop;
	uint64_t		 boot_id;	/* amo-sync's, from its last Ack; 0 = not seen yet */
	uint64_t		 sent;		/* highest seq amo-sync has received */
	uint64_t		 done;		/* highest seq released from the journal */
};

/* Apply the second phase of an Ack: release finished entries, rewind after a restart. */
static void
forward_progress(struct forward *f, const Crmsync__Ack *ack, uint64_t seq)
{
	uint64_t done = ack->done_seq;

	if (ack->boot_id == 0) {
		done = seq != 0 ? seq : f->sent;	/* one-phase peer */
	} else if (f->boot_id != 0 && ack->boot_id != f->boot_id && f->sent > f->done) {
		log_warnx("forward.peer_restarted", "url=%s done_seq=%" PRIu64 " resend_from=%" PRIu64
		    " resend_to=%" PRIu64, lq(f->url), f->done, f->done + 1, f->sent);
		stat_add(&gw_stats[GW_FORWARD_REWINDS], 1);
		f->boot_id = ack->boot_id;
		if (done < f->done)
			done = f->done;
		f->sent = done;
		journal_rewind(f->o.journal, done);
	}
	f->boot_id = ack->boot_id;
	if (done > f->sent)
		done = f->sent;
	if (done > f->done) {
		f->done = done;
		(void)journal_ack(f->o.journal, done);
	}
}

/* Idle with unfinished deliveries: ask amo-sync how far it got. */
static void
forward_poll(struct forward *f)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT, *rep = NULL;
	Crmsync__HookDelivery d = CRMSYNC__HOOK_DELIVERY__INIT;

	env.body_case = CRMSYNC__ENVELOPE__BODY_HOOKS;
	env.hooks = &d;
	if (bus_call(f->sock, &env, &rep, f->o.timeout_ms) == 0 &&
	    rep->body_case == CRMSYNC__ENVELOPE__BODY_ACK &&
	    rep->ack->status == CRMSYNC__ACK_STATUS__ACK_OK)
		forward_progress(f, rep->ack, 0);
	bus_free(rep);
}

static void
forward_deadletter(struct forward *f, const char *kind, uint64_t seq, const void *p, size_t len)
{
	char path[4200] = "";

	if (f->o.deadletter != NULL &&
	    deadletter_write(f->o.deadletter, kind, "pb", p, len, path, sizeof(path)) == 0)
		stat_add(&gw_stats[GW_DEADLETTERS], 1);
	log_warnx("forward.deadlettered", "seq=%" PRIu64 " kind=%s bytes=%zu deadletter=%s",
	    seq, kind, len, lq(path));
}

/* Send one record until amo-sync answers for good (or we are stopped). */
static int
forward_one(struct forward *f, uint64_t seq, const void *payload, size_t len)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT;
	Crmsync__HookDelivery *d;
	Crmsync__Envelope *ack = NULL;
	int64_t down_since = 0;
	int rv;

	if ((d = crmsync__hook_delivery__unpack(NULL, len, payload)) == NULL) {
		/* The CRC matched, so this was written like this: keep it, skip it. */
		forward_deadletter(f, "undecodable", seq, payload, len);
		return 0;
	}
	d->seq = seq;
	env.body_case = CRMSYNC__ENVELOPE__BODY_HOOKS;
	env.hooks = d;
	for (;;) {
		rv = bus_call_ack(f->sock, &env, &ack, f->o.timeout_ms, FORWARD_WARN_EVERY_MS, &f->stop);
		if (rv != CS_ETIMEDOUT)
			break;
		if (down_since == 0)
			down_since = bus_now_ms() - FORWARD_WARN_EVERY_MS;
		log_warnx("forward.peer_unavailable", "url=%s seq=%" PRIu64 " down_s=%" PRId64
		    " backlog=%" PRId64 " action=retrying", lq(f->url), seq,
		    (bus_now_ms() - down_since) / 1000, stat_get(&gw_stats[GW_JOURNAL_BACKLOG]));
	}
	if (rv == 0) {
		if (ack->ack->batch_id != seq)
			log_warnx("forward.ack_mismatch", "seq=%" PRIu64 " batch_id=%" PRIu64,
			    seq, (uint64_t)ack->ack->batch_id);
		if (down_since != 0)
			log_info("forward.resumed", "url=%s seq=%" PRIu64, lq(f->url), seq);
		stat_add(&gw_stats[GW_FORWARDED], 1);
		if (seq > f->sent)
			f->sent = seq;
		forward_progress(f, ack->ack, seq);
	} else if (rv == CS_EREJECTED) {
		log_warnx("forward.rejected", "seq=%" PRIu64 " error=%s", seq,
		    lq(ack != NULL ? ack->ack->error : ""));
		stat_add(&gw_stats[GW_FORWARD_REJECTED], 1);
		forward_deadletter(f, "rejected", seq, payload, len);
		/* Kept in the dead-letter dir: as far as the journal goes, it is finished. */
		if (seq > f->sent)
			f->sent = seq;
		if (f->done == seq - 1 || f->boot_id == 0) {
			f->done = seq;
			(void)journal_ack(f->o.journal, seq);
		}
		rv = 0;
	}
	bus_free(ack);
	crmsync__hook_delivery__free_unpacked(d, NULL);
	return rv;
}

static void *
forward_main(void *arg)
{
	struct forward *f = arg;

	while (!__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE)) {
		uint64_t seq;
		void *payload;
		size_t len;
		int rv = journal_read(f->o.journal, FORWARD_READ_WAIT_MS, &seq, &payload, &len);

		if (rv == CS_ETIMEDOUT) {
			if (f->sent > f->done)
				forward_poll(f);
			continue;
		}
		if (rv != 0)
			break;
		rv = forward_one(f, seq, payload, len);
		free(payload);
		if (rv != 0)
			break;	/* stopped: the record stays unacknowledged, resent next start */
	}
	return NULL;
}

int
forward_start(struct forward **out, const struct forward_opts *o)
{
	struct forward *f;
	int rv;

	*out = NULL;
	if ((f = calloc(1, sizeof(*f))) == NULL || (f->url = strdup(o->url)) == NULL) {
		free(f);
		return CS_ENOMEM;
	}
	f->o = *o;
	f->o.url = f->url;
	if ((rv = bus_dial(&f->sock, f->url, 1 << 20)) != 0) {
		free(f->url);
		free(f);
		return rv;
	}
	/* A REQ send waits for a connected peer; without a limit it would wait forever while
	 * amo-sync is down, deaf to forward_stop(). Timed out sends are retried by bus_call_ack. */
	nng_socket_set_ms(f->sock, NNG_OPT_SENDTIMEO, o->timeout_ms < 250 ? o->timeout_ms : 250);
	if (pthread_create(&f->thr, NULL, forward_main, f) != 0) {
		bus_close(f->sock);
		free(f->url);
		free(f);
		return CS_ENOMEM;
	}
	log_info("forward.started", "url=%s timeout_ms=%d", lq(f->url), o->timeout_ms);
	*out = f;
	return 0;
}

void
forward_stop(struct forward *f)
{
	if (f == NULL)
		return;
	/* bus_call_ack() polls the same flag through a volatile pointer (lib/bus's API). */
	__atomic_store_n(&f->stop, 1, __ATOMIC_RELEASE);
	pthread_join(f->thr, NULL);
	bus_close(f->sock);
	free(f->url);
	free(f);
}
