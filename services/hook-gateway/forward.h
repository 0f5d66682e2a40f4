/*
 * forward.h - the thread that hands journal entries to amo-sync, in order.
 *
 * Each committed journal record goes out as Envelope{hooks=HookDelivery} (seq = the
 * record's seq) over NNG REQ. amo-sync acknowledges in two phases (proto Ack): ACK_OK =
 * received, done_seq = processed up to there, boot_id = which process. The journal's
 * cursor follows done_seq, never just ACK_OK, and a restart of amo-sync (new boot_id)
 * sends again whatever it had not processed. amo-sync down = the thread keeps probing
 * while the journal (and its backlog) grows; when it returns, the backlog drains in seq
 * order. ACK_REJECTED (a permanent refusal) sends the record to the dead-letter directory.
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
