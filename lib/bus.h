/*
 * bus.h - NNG request/reply carrying one protobuf Envelope per message.
 *
 * Every service that receives work listens on a REP socket; senders dial it with REQ.
 * bus_call() sends one Envelope and waits for the reply; bus_call_ack() adds the
 * at-least-once rule: re-send on timeout or ACK_RETRY with capped backoff until the peer
 * says ACK_OK or ACK_REJECTED. Receivers must therefore be idempotent.
 * Sizes are bounded by the recvmax given when the socket is opened.
 * Ownership: Envelopes returned through out-parameters belong to the caller, who frees
 * them with bus_free(); envelopes passed in are only read.
 */
#ifndef CS_BUS_H
#define CS_BUS_H

#include <stddef.h>
#include <stdint.h>
#include <nng/nng.h>

#include "crmsync.pb-c.h"

#define BUS_RECVMAX_DEFAULT	(64u << 20)

int	bus_listen(nng_socket *s, const char *url, size_t recvmax);
int	bus_dial(nng_socket *s, const char *url, size_t recvmax);
void	bus_close(nng_socket s);

/* Pack env into a new message (the caller owns it: nng_msg_free or send it). */
int	bus_pack(const Crmsync__Envelope *env, nng_msg **out);
/* Send env; returns 0 or CS_ENNG/CS_ENOMEM/CS_ECLOSED. */
int	bus_send(nng_socket s, const Crmsync__Envelope *env);
/*
 * Receive one Envelope (timeout_ms < 0: wait forever). CS_ETIMEDOUT on timeout,
 * CS_EPROTO if the bytes do not decode (the caller should still reply, with a rejection).
 */
int	bus_recv(nng_socket s, Crmsync__Envelope **out, int timeout_ms);
/* Like bus_recv, but also hands back the received message (caller frees it with
 * nng_msg_free) so undecodable bytes can be dead-lettered. *msg is set even on CS_EPROTO. */
int	bus_recv_msg(nng_socket s, nng_msg **msg, Crmsync__Envelope **out, int timeout_ms);
/* One request/reply round trip. */
int	bus_call(nng_socket s, const Crmsync__Envelope *req, Crmsync__Envelope **out, int timeout_ms);

/*
 * Send until acknowledged: returns 0 when the reply is an Ack with ACK_OK (*ack_out, if
 * not NULL, receives the reply), CS_EREJECTED for ACK_REJECTED (error text in *ack_out),
 * CS_ECANCELED when *stop becomes non-zero, CS_ETIMEDOUT when deadline_ms (> 0) passes.
 * Timeouts and ACK_RETRY are retried with backoff from 50 ms to 2 s.
 */
int	bus_call_ack(nng_socket s, const Crmsync__Envelope *req, Crmsync__Envelope **ack_out,
	    int timeout_ms, int64_t deadline_ms, volatile _Atomic int *stop);
/* The same for an already packed request (not consumed: each attempt sends a copy). */
int	bus_call_ack_msg(nng_socket s, nng_msg *req, Crmsync__Envelope **ack_out,
	    int timeout_ms, int64_t deadline_ms, volatile _Atomic int *stop);

/* How bus_call_retry() keeps trying. */
struct bus_retry {
	int			 timeout_ms;	/* one round trip (< 0: wait forever) */
	int64_t			 deadline_ms;	/* give up after this long (<= 0: never) */
	volatile _Atomic int	*stop;		/* set: give up with CS_ECANCELED (NULL: never) */
	int64_t			 grace_ms;	/* once *stop is set, keep trying this long (0: stop at once) */
	int64_t			*stop_seen_ms;	/* when the stop was first seen (bus_now_ms; 0 = not yet),
						   so calls in a row share one grace window; may be NULL */
	int			 data_reply;	/* a reply that is not an Ack (a CursorValue) answers */
};

/*
 * bus_call_ack_msg with every knob: returns 0 with the answer in *reply (an Ack with
 * ACK_OK, or with data_reply any other message), CS_EREJECTED for ACK_REJECTED (the Ack in
 * *reply), CS_ECANCELED once stopped and the grace is over, CS_ETIMEDOUT past the
 * deadline. ACK_RETRY, timeouts and transport errors are retried with backoff (50 ms to
 * 2 s); while stopping, a round trip waits at most what is left of the grace.
 * *reply (may be NULL) belongs to the caller.
 */
int	bus_call_retry(nng_socket s, nng_msg *req, Crmsync__Envelope **reply,
	    const struct bus_retry *r);

/* Reply with an Ack. */
int	bus_reply_ack(nng_socket s, Crmsync__AckStatus status, const char *error,
	    uint64_t batch_id, uint32_t applied, uint32_t unchanged, int64_t run_id);

void	bus_free(Crmsync__Envelope *env);

/* Monotonic milliseconds, for deadlines. */
int64_t	bus_now_ms(void);

#endif
