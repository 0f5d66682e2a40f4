/*
 * bus.c - protobuf Envelopes over NNG REQ/REP (see bus.h).
 *
 * One pack and one unpack function serve every message type: the Envelope's oneof names
 * the body. REQ sockets are set to reconnect quickly (20 ms .. 1 s) so a restarted peer is
 * found again within a second; NNG's own resend timer is pushed out of the way because
 * bus_call_retry() owns the retry policy.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "bus.h"
#include "clock.h"
#include "errors.h"
#include "log.h"

int64_t
bus_now_ms(void)
{
	return clock_mono_ms();
}

static int
bus_nng_err(int rv)
{
	switch (rv) {
	case 0:			return 0;
	case NNG_ETIMEDOUT:	return CS_ETIMEDOUT;
	case NNG_ENOMEM:	return CS_ENOMEM;
	case NNG_ECLOSED:	return CS_ECLOSED;
	case NNG_EMSGSIZE:	return CS_ETOOBIG;
	case NNG_EADDRINVAL:
	case NNG_EINVAL:	return CS_EINVAL;
	default:		return CS_ENNG;
	}
}

int
bus_listen(nng_socket *s, const char *url, size_t recvmax)
{
	int rv;

	if ((rv = nng_rep0_open(s)) != 0) {
		log_warnx("bus.open_failed", "url=%s err=%s", lq(url), lq(nng_strerror(rv)));
		return bus_nng_err(rv);
	}
	nng_socket_set_size(*s, NNG_OPT_RECVMAXSZ, recvmax);
	if ((rv = nng_listen(*s, url, NULL, 0)) != 0) {
		log_warnx("bus.listen_failed", "url=%s err=%s", lq(url), lq(nng_strerror(rv)));
		nng_close(*s);
		return bus_nng_err(rv);
	}
	return 0;
}

int
bus_dial(nng_socket *s, const char *url, size_t recvmax)
{
	int rv;

	if ((rv = nng_req0_open(s)) != 0)
		return bus_nng_err(rv);
	nng_socket_set_size(*s, NNG_OPT_RECVMAXSZ, recvmax);
	nng_socket_set_ms(*s, NNG_OPT_RECONNMINT, 20);
	nng_socket_set_ms(*s, NNG_OPT_RECONNMAXT, 1000);
	nng_socket_set_ms(*s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	/* Non-blocking dial: the peer may start later; NNG keeps trying in the background. */
	if ((rv = nng_dial(*s, url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
		log_warnx("bus.dial_failed", "url=%s err=%s", lq(url), lq(nng_strerror(rv)));
		nng_close(*s);
		return bus_nng_err(rv);
	}
	return 0;
}

void
bus_close(nng_socket s)
{
	nng_close(s);
}

int
bus_pack(const Crmsync__Envelope *env, nng_msg **out)
{
	size_t len = crmsync__envelope__get_packed_size(env);
	int rv;

	if ((rv = nng_msg_alloc(out, len)) != 0) {
		*out = NULL;
		return bus_nng_err(rv);
	}
	crmsync__envelope__pack(env, nng_msg_body(*out));
	return 0;
}

int
bus_send(nng_socket s, const Crmsync__Envelope *env)
{
	nng_msg *msg;
	int rv;

	if ((rv = bus_pack(env, &msg)) != 0)
		return rv;
	if ((rv = nng_sendmsg(s, msg, 0)) != 0) {
		nng_msg_free(msg);
		return bus_nng_err(rv);
	}
	return 0;
}

int
bus_recv_msg(nng_socket s, nng_msg **msgp, Crmsync__Envelope **out, int timeout_ms)
{
	nng_msg *msg;
	int rv;

	*out = NULL;
	*msgp = NULL;
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, timeout_ms < 0 ? NNG_DURATION_INFINITE : timeout_ms);
	if ((rv = nng_recvmsg(s, &msg, 0)) != 0)
		return bus_nng_err(rv);
	*msgp = msg;
	*out = crmsync__envelope__unpack(NULL, nng_msg_len(msg), nng_msg_body(msg));
	if (*out == NULL)
		return CS_EPROTO;
	if ((*out)->body_case == CRMSYNC__ENVELOPE__BODY__NOT_SET) {
		bus_free(*out);
		*out = NULL;
		return CS_EPROTO;
	}
	return 0;
}

int
bus_recv(nng_socket s, Crmsync__Envelope **out, int timeout_ms)
{
	nng_msg *msg;
	int rv = bus_recv_msg(s, &msg, out, timeout_ms);

	if (msg != NULL)
		nng_msg_free(msg);
	return rv;
}

int
bus_call(nng_socket s, const Crmsync__Envelope *req, Crmsync__Envelope **out, int timeout_ms)
{
	int rv;

	*out = NULL;
	/* A REQ send blocks while no peer is connected: bound it by the same timeout, so
	 * callers that retry (bus_call_ack) see their stop flag while the peer is down. */
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, timeout_ms < 0 ? NNG_DURATION_INFINITE : timeout_ms);
	if ((rv = bus_send(s, req)) != 0)
		return rv;
	return bus_recv(s, out, timeout_ms);
}

int
bus_call_ack(nng_socket s, const Crmsync__Envelope *req, Crmsync__Envelope **ack_out,
    int timeout_ms, int64_t deadline_ms, volatile _Atomic int *stop)
{
	nng_msg *msg;
	int rv;

	if (ack_out != NULL)
		*ack_out = NULL;
	if ((rv = bus_pack(req, &msg)) != 0)
		return rv;
	rv = bus_call_ack_msg(s, msg, ack_out, timeout_ms, deadline_ms, stop);
	nng_msg_free(msg);
	return rv;
}

int
bus_call_ack_msg(nng_socket s, nng_msg *req, Crmsync__Envelope **ack_out,
    int timeout_ms, int64_t deadline_ms, volatile _Atomic int *stop)
{
	const struct bus_retry r = { .timeout_ms = timeout_ms, .deadline_ms = deadline_ms,
	    .stop = stop };

	return bus_call_retry(s, req, ack_out, &r);
}

/*
 * 0 while the caller may go on, CS_ECANCELED once stopped and out of grace. *left is what
 * remains of the grace, or -1 when not stopping.
 */
static int
retry_stopping(const struct bus_retry *r, int64_t *seen_local, int64_t *left)
{
	int64_t *seen = r->stop_seen_ms != NULL ? r->stop_seen_ms : seen_local;

	*left = -1;
	if (r->stop == NULL || !*r->stop)
		return 0;
	if (*seen == 0)
		*seen = bus_now_ms();
	*left = r->grace_ms - (bus_now_ms() - *seen);
	return *left > 0 ? 0 : CS_ECANCELED;
}

/* One attempt: send m (consumed), wait for the reply. */
static int
retry_attempt(nng_socket s, nng_msg *m, int timeout_ms, Crmsync__Envelope **rep)
{
	int rv;

	*rep = NULL;
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, timeout_ms < 0 ? NNG_DURATION_INFINITE : timeout_ms);
	if ((rv = nng_sendmsg(s, m, 0)) != 0) {
		nng_msg_free(m);
		return bus_nng_err(rv);
	}
	return bus_recv(s, rep, timeout_ms);
}

int
bus_call_retry(nng_socket s, nng_msg *req, Crmsync__Envelope **reply, const struct bus_retry *r)
{
	int64_t start = bus_now_ms(), seen = 0, left;
	Crmsync__Envelope *rep = NULL;
	int backoff = 50;
	int rv;

	if (reply != NULL)
		*reply = NULL;
	for (;;) {
		int timeout = r->timeout_ms;
		nng_msg *m;

		if ((rv = retry_stopping(r, &seen, &left)) != 0)
			return rv;
		if (left >= 0 && (timeout < 0 || timeout > left))
			timeout = (int)left;
		/* Each attempt sends a copy: NNG takes the message it is given. */
		if (nng_msg_dup(&m, req) != 0)
			return CS_ENOMEM;
		rv = retry_attempt(s, m, timeout, &rep);
		if (rv == 0 && rep->body_case == CRMSYNC__ENVELOPE__BODY_ACK) {
			Crmsync__AckStatus st = rep->ack->status;
			if (st == CRMSYNC__ACK_STATUS__ACK_OK || st == CRMSYNC__ACK_STATUS__ACK_REJECTED) {
				rv = st == CRMSYNC__ACK_STATUS__ACK_OK ? 0 : CS_EREJECTED;
				break;
			}
			log_debug("bus.retry", "reason=%s", lq(rep->ack->error));
		} else if (rv == 0 && r->data_reply) {
			break;
		} else if (rv == 0) {
			log_warnx("bus.unexpected_reply", "body=%d", (int)rep->body_case);
		} else if (rv != CS_ETIMEDOUT) {
			log_debug("bus.call_failed", "err=%s", lq(cs_strerror(rv)));
		}
		bus_free(rep);
		rep = NULL;
		if (r->deadline_ms > 0 && bus_now_ms() - start >= r->deadline_ms)
			return CS_ETIMEDOUT;
		/* Sleep in short slices so a stop request is seen quickly. */
		for (int slept = 0; slept < backoff; slept += 50) {
			if ((rv = retry_stopping(r, &seen, &left)) != 0)
				return rv;
			nng_msleep(50);
		}
		if (backoff < 2000)
			backoff *= 2;
	}
	if (reply != NULL)
		*reply = rep;
	else
		bus_free(rep);
	return rv;
}

int
bus_reply_ack(nng_socket s, Crmsync__AckStatus status, const char *error,
    uint64_t batch_id, uint32_t applied, uint32_t unchanged, int64_t run_id)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT;
	Crmsync__Ack ack = CRMSYNC__ACK__INIT;

	ack.status = status;
	ack.error = (char *)(error != NULL ? error : "");
	ack.batch_id = batch_id;
	ack.applied = applied;
	ack.unchanged = unchanged;
	ack.run_id = run_id;
	env.body_case = CRMSYNC__ENVELOPE__BODY_ACK;
	env.ack = &ack;
	return bus_send(s, &env);
}

void
bus_free(Crmsync__Envelope *env)
{
	if (env != NULL)
		crmsync__envelope__free_unpacked(env, NULL);
}
