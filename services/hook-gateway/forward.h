/*
 * forward.h - the thread that hands journal entries to amo-sync, in order.
 *
 * It reads the next committed journal record, sends it as Envelope{hooks=HookDelivery}
 * (seq = the record's seq) over NNG REQ to amo-sync, and waits for Ack{ACK_OK, batch_id=seq}
 * (lib/bus bus_call_ack: resend on timeout with backoff). Only then does the journal's
 * acknowledged position move past it. amo-sync down = the thread keeps retrying the same
 * record while the journal (and its backlog) grows; when it returns, the backlog drains in
 * seq order. ACK_REJECTED (a permanent refusal) sends the record to the dead-letter
 * directory and moves on.
 */
#ifndef GW_FORWARD_H
#define GW_FORWARD_H

struct journal;
struct deadletter;
struct forward;

struct forward_opts {
	const char		*url;		/* amo-sync's REP address (CS_AMO_URL) */
	int			 timeout_ms;	/* per attempt */
	struct journal		*journal;
	struct deadletter	*deadletter;	/* may be NULL */
};

/* Dial (non-blocking: amo-sync may start later) and start the thread. 0, CS_ENNG, CS_ENOMEM. */
int	forward_start(struct forward **out, const struct forward_opts *o);
/* Stop the thread (an unacknowledged record stays in the journal) and free. NULL is fine. */
void	forward_stop(struct forward *f);

#endif
