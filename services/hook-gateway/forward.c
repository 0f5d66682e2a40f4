/*
 * forward.c - journal -> amo-sync, in seq order, under amo-sync's two-phase acknowledgement
 * (proto Ack: status, done_seq, boot_id; see forward.h and services/amo-sync/README.md).
 *
 * amo-sync answers each HookDelivery with ACK_OK as soon as it is queued in memory, plus
 * done_seq (everything it received up to there is fully processed) and boot_id (random per
 * process start). So:
 *  - the journal's cursor moves only to min(done_seq, highest seq sent to this boot):
 *    done_seq says nothing about seqs a process never received;
 *  - before the first delivery, and after any call that failed or timed out, we probe
 *    (an empty delivery, seq 0): a new boot_id means the old process is gone with its
 *    queue, and everything after our trusted position is sent again (rewind);
 *  - if a new boot_id shows up in the reply to a real delivery X (amo-sync restarted
 *    between two of our sends), that process saw X first and would drop re-sends below X
 *    as duplicates: the unfinished records before X are appended to the journal again
 *    under new seqs, and the originals count as covered. Order across that recovery is
 *    not kept; amo-sync's writes compare versions, so it does not matter.
 * A peer that sends no boot_id (a simple receiver) is taken to have processed a delivery
 * when it acknowledges it.
 * Every delivery and probe carries the journal's id (journal_id): amo-sync compares seqs
 * only within one journal, so a gateway on a new, empty journal is not taken for one
 * re-sending old seqs. A done_seq is trusted only for our journal (the Ack echoes the id)
 * and within what the journal ever committed; anything else is logged and counted
 * (forward_bad_done_seq), never acknowledged.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "bus.h"
#include "deadletter.h"
#include "errors.h"
#include "forward.h"
#include "gateway.h"
#include "journal.h"
#include "log.h"

#define FORWARD_READ_WAIT_MS	200
#define FORWARD_POLL_MS		500	/* ask for done_seq this often while it lags */
#define FORWARD_WARN_EVERY_MS	10000

struct forward {
	struct forward_opts	 o;
	char			*url;
	nng_socket		 sock;
	pthread_t		 thr;
	volatile _Atomic int		 stop;
	uint64_t		 boot;		/* amo-sync's boot_id; 0 = none seen yet */
	int			 known;		/* a probe has answered */
	uint64_t		 trusted;	/* everything up to here is processed: the cursor */
	uint64_t		 maxsent;	/* highest seq the current boot received */
	int64_t			 last_probe_ms;
};

static int
forward_stopped(struct forward *f)
{
	return __atomic_load_n(&f->stop, __ATOMIC_ACQUIRE);
}

/* Sleep ms in short slices; 1 if stopped meanwhile. */
static int
forward_sleep(struct forward *f, int ms)
{
	for (int slept = 0; slept < ms; slept += 50) {
		if (forward_stopped(f))
			return 1;
		nng_msleep(50);
	}
	return forward_stopped(f);
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

/* One round trip; on 0, *ack is an Ack envelope the caller frees with bus_free(). */
static int
forward_call(struct forward *f, Crmsync__HookDelivery *d, Crmsync__Envelope **ack)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT;
	int rv;

	env.body_case = CRMSYNC__ENVELOPE__BODY_HOOKS;
	env.hooks = d;
	rv = bus_call(f->sock, &env, ack, f->o.timeout_ms);
	if (rv == 0 && (*ack)->body_case != CRMSYNC__ENVELOPE__BODY_ACK) {
		log_warnx("forward.unexpected_reply", "body=%d", (int)(*ack)->body_case);
		bus_free(*ack);
		*ack = NULL;
		rv = CS_EPROTO;
	}
	return rv;
}

/*
 * Is a's done_seq about our journal and within its range? A peer that counts in another
 * journal's seqs (a new journal while amo-sync kept running, without ids on its side)
 * would otherwise make us drop what it never processed.
 */
static int
forward_done_ok(struct forward *f, const Crmsync__Ack *a)
{
	struct journal_stats st;
	uint64_t id = journal_id(f->o.journal);
	const char *why = NULL;

	journal_get_stats(f->o.journal, &st);
	if (a->journal_id != 0 && a->journal_id != id)
		why = "another_journal";
	else if (a->done_seq > st.committed)
		why = "beyond_journal";
	if (why == NULL)
		return 1;
	stat_add(&gw_stats[GW_FORWARD_BAD_DONE], 1);
	log_warnx("forward.done_seq_refused", "url=%s reason=%s done_seq=%" PRIu64 " committed=%"
	    PRIu64 " journal=%016" PRIx64 " peer_journal=%016" PRIx64 " action=not_acknowledged",
	    lq(f->url), why, (uint64_t)a->done_seq, st.committed, id, (uint64_t)a->journal_id);
	return 0;
}

/* amo-sync says everything up to done is processed: the journal may drop what we sent. */
static void
forward_done(struct forward *f, uint64_t done)
{
	uint64_t t = done < f->maxsent ? done : f->maxsent;

	if (t > f->trusted) {
		f->trusted = t;
		(void)journal_ack(f->o.journal, t);
	}
}

/* Ask amo-sync who it is and how far it got, until it answers. 0 or CS_ECANCELED. */
static int
forward_probe(struct forward *f)
{
	Crmsync__HookDelivery d = CRMSYNC__HOOK_DELIVERY__INIT;
	int64_t start = bus_now_ms(), warned = start;
	int backoff = 50, rv;

	d.journal_id = journal_id(f->o.journal);
	for (;;) {
		Crmsync__Envelope *ack = NULL;

		if (forward_stopped(f))
			return CS_ECANCELED;
		if ((rv = forward_call(f, &d, &ack)) == 0) {
			Crmsync__Ack *a = ack->ack;
			f->last_probe_ms = bus_now_ms();
			if (!f->known || a->boot_id != f->boot) {
				if (f->known)
					log_warnx("forward.peer_restarted", "url=%s boot=%" PRIu64
					    " resend_after=%" PRIu64 " lost_in_peer=%" PRIu64,
					    lq(f->url), (uint64_t)a->boot_id, f->trusted,
					    f->maxsent - f->trusted);
				else
					log_info("forward.peer_found", "url=%s boot=%" PRIu64 " done_seq=%"
					    PRIu64 " resend_after=%" PRIu64, lq(f->url),
					    (uint64_t)a->boot_id, (uint64_t)a->done_seq, f->trusted);
				if (f->known)
					stat_add(&gw_stats[GW_FORWARD_REWINDS], 1);
				f->boot = a->boot_id;
				f->known = 1;
				/* Its done_seq covers only what it received from us, which is
				 * nothing yet as far as we know: start again after `trusted`. */
				journal_rewind(f->o.journal, f->trusted);
				f->maxsent = f->trusted;
			} else if (a->boot_id != 0 && forward_done_ok(f, a)) {
				forward_done(f, a->done_seq);
			}
			if (bus_now_ms() - start >= FORWARD_WARN_EVERY_MS)
				log_info("forward.resumed", "url=%s down_s=%" PRId64, lq(f->url),
				    (bus_now_ms() - start) / 1000);
			bus_free(ack);
			return 0;
		}
		if (bus_now_ms() - warned >= FORWARD_WARN_EVERY_MS) {
			struct journal_stats st;
			journal_get_stats(f->o.journal, &st);
			log_warnx("forward.peer_unavailable", "url=%s down_s=%" PRId64 " backlog=%"
			    PRIu64 " action=retrying", lq(f->url), (bus_now_ms() - start) / 1000,
			    st.backlog);
			warned = bus_now_ms();
		}
		if (forward_sleep(f, backoff))
			return CS_ECANCELED;
		if (backoff < 2000)
			backoff *= 2;
	}
}

/*
 * A new amo-sync answered our real delivery x before any probe: it saw x first and will
 * take re-sends below x for duplicates. Re-journal what it has not processed before x under
 * new seqs (they come after everything), then count the originals as covered.
 */
static void
forward_recover(struct forward *f, uint64_t x, uint64_t boot)
{
	uint64_t from = f->trusted, copied = 0, seq;
	void *p;
	size_t len;
	int rv = 0;

	stat_add(&gw_stats[GW_FORWARD_REWINDS], 1);
	f->boot = boot;
	if (x > from + 1) {
		journal_rewind(f->o.journal, from);
		while (journal_read(f->o.journal, 0, &seq, &p, &len) == 0) {
			if (seq >= x) {
				free(p);
				break;	/* x itself: the reader is where the caller left it */
			}
			rv = journal_append_wait(f->o.journal, p, len, NULL);
			free(p);
			if (rv != 0)
				break;
			copied++;
		}
	}
	if (rv != 0) {
		/* Cannot copy (journal full?): re-send them as they are, amo-sync will likely
		 * drop them as duplicates, and the next incremental sync picks the changes up. */
		log_warnx("forward.recovery_incomplete", "seq=%" PRIu64 " from=%" PRIu64 " err=%s"
		    " action=resending_originals", x, from, lq(cs_strerror(rv)));
		journal_rewind(f->o.journal, from);
		f->maxsent = from;
		return;
	}
	log_warnx("forward.peer_restarted_mid_stream", "url=%s boot=%" PRIu64 " seq=%" PRIu64
	    " recopied=%" PRIu64 " after=%" PRIu64, lq(f->url), boot, x, copied, from);
	f->maxsent = x - 1;
	forward_done(f, x - 1);
}

/*
 * Deliver one journal record. 0 when it is through (received or refused for good),
 * CS_ERETRY when the peer restarted and the reader was rewound (drop this one, the reader
 * gives it again), CS_ECANCELED when stopped.
 */
static int
forward_one(struct forward *f, uint64_t seq, const void *payload, size_t len)
{
	Crmsync__HookDelivery *d;
	int backoff = 50, rv = 0;

	if ((d = crmsync__hook_delivery__unpack(NULL, len, payload)) == NULL) {
		/* The CRC matched, so it was written like this: keep it, skip it. */
		forward_deadletter(f, "undecodable", seq, payload, len);
		f->maxsent = seq;
		return 0;
	}
	d->seq = seq;
	d->journal_id = journal_id(f->o.journal);
	for (;;) {
		Crmsync__Envelope *ack = NULL;
		Crmsync__Ack *a;
		uint64_t boot = f->boot;

		if (forward_stopped(f)) {
			rv = CS_ECANCELED;
			break;
		}
		if (forward_call(f, d, &ack) != 0) {
			/* Lost, or nobody there: maybe a new amo-sync. Ask before sending again. */
			if ((rv = forward_probe(f)) != 0)
				break;
			if (f->boot != boot) {
				rv = CS_ERETRY;
				break;
			}
			continue;
		}
		a = ack->ack;
		if (a->boot_id != f->boot)
			forward_recover(f, seq, a->boot_id);
		if (a->status == CRMSYNC__ACK_STATUS__ACK_RETRY) {
			log_debug("forward.retry", "seq=%" PRIu64 " reason=%s", seq, lq(a->error));
			bus_free(ack);
			if (forward_sleep(f, backoff)) {
				rv = CS_ECANCELED;
				break;
			}
			if (backoff < 2000)
				backoff *= 2;
			continue;
		}
		if (a->batch_id != seq)
			log_warnx("forward.ack_mismatch", "seq=%" PRIu64 " batch_id=%" PRIu64, seq,
			    (uint64_t)a->batch_id);
		if (a->status == CRMSYNC__ACK_STATUS__ACK_REJECTED) {
			log_warnx("forward.rejected", "seq=%" PRIu64 " error=%s", seq, lq(a->error));
			stat_add(&gw_stats[GW_FORWARD_REJECTED], 1);
			forward_deadletter(f, "rejected", seq, payload, len);
		} else {
			stat_add(&gw_stats[GW_FORWARDED], 1);
		}
		if (seq > f->maxsent)
			f->maxsent = seq;
		if (a->boot_id == 0)
			forward_done(f, seq);
		else if (forward_done_ok(f, a))
			forward_done(f, a->done_seq);
		bus_free(ack);
		rv = 0;
		break;
	}
	crmsync__hook_delivery__free_unpacked(d, NULL);
	return rv;
}

static void *
forward_main(void *arg)
{
	struct forward *f = arg;
	struct journal_stats st;

	journal_get_stats(f->o.journal, &st);
	f->trusted = f->maxsent = st.acked;
	while (!forward_stopped(f)) {
		uint64_t seq;
		void *payload;
		size_t len;
		int rv;

		if (!f->known || (f->maxsent > f->trusted &&
		    bus_now_ms() - f->last_probe_ms >= FORWARD_POLL_MS)) {
			if (forward_probe(f) != 0)
				break;
		}
		rv = journal_read(f->o.journal, FORWARD_READ_WAIT_MS, &seq, &payload, &len);
		if (rv == CS_ETIMEDOUT)
			continue;
		if (rv != 0)
			break;
		rv = forward_one(f, seq, payload, len);
		free(payload);
		if (rv == CS_ECANCELED)
			break;	/* unacknowledged records stay in the journal: sent again next start */
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
	 * amo-sync is down, deaf to forward_stop(). */
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
	__atomic_store_n(&f->stop, 1, __ATOMIC_RELEASE);
	pthread_join(f->thr, NULL);
	bus_close(f->sock);
	free(f->url);
	free(f);
}
