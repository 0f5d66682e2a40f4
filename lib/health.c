/*
 * health.c - health responder thread and probe client (see health.h).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "bus.h"
#include "errors.h"
#include "health.h"
#include "log.h"
#include "version.h"

struct health {
	nng_socket		 sock;
	pthread_t		 thr;
	atomic_int		 stop;
	const char		*service;
	struct stat_counter	*stats;
	size_t			 nstats;
	health_status_fn	 status;
	void			*arg;
	int64_t			 started_ms;
};

static void
health_answer(struct health *h)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT;
	Crmsync__HealthResponse resp = CRMSYNC__HEALTH_RESPONSE__INIT;
	Crmsync__Stat *stats = NULL, **statp = NULL;
	char status[256] = "ok";

	resp.service = (char *)h->service;
	resp.version = (char *)CRMSYNC_VERSION;
	resp.uptime_s = (bus_now_ms() - h->started_ms) / 1000;
	resp.ok = h->status != NULL ? h->status(h->arg, status, sizeof(status)) : 1;
	resp.status = status;
	resp.last_error = (char *)"";
	if (h->nstats > 0) {
		stats = calloc(h->nstats, sizeof(*stats));
		statp = calloc(h->nstats, sizeof(*statp));
		if (stats != NULL && statp != NULL) {
			for (size_t i = 0; i < h->nstats; i++) {
				crmsync__stat__init(&stats[i]);
				stats[i].name = (char *)h->stats[i].name;
				stats[i].value = stat_get(&h->stats[i]);
				statp[i] = &stats[i];
			}
			resp.n_stats = h->nstats;
			resp.stats = statp;
		}
	}
	env.body_case = CRMSYNC__ENVELOPE__BODY_HEALTH_RESPONSE;
	env.health_response = &resp;
	(void)bus_send(h->sock, &env);
	free(stats);
	free(statp);
}

static void *
health_main(void *arg)
{
	struct health *h = arg;

	while (!atomic_load(&h->stop)) {
		Crmsync__Envelope *req = NULL;
		int rv = bus_recv(h->sock, &req, 200);

		if (rv == CS_ETIMEDOUT)
			continue;
		if (rv == CS_ECLOSED)
			break;
		if (rv == 0 && req->body_case == CRMSYNC__ENVELOPE__BODY_HEALTH_REQUEST)
			health_answer(h);
		else
			(void)bus_reply_ack(h->sock, CRMSYNC__ACK_STATUS__ACK_REJECTED,
			    "health socket answers HealthRequest only", 0, 0, 0, 0);
		bus_free(req);
	}
	return NULL;
}

int
health_start(struct health **out, const char *url, const char *service,
    struct stat_counter *stats, size_t nstats, health_status_fn status, void *arg)
{
	struct health *h;
	int rv;

	*out = NULL;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return CS_ENOMEM;
	h->service = service;
	h->stats = stats;
	h->nstats = nstats;
	h->status = status;
	h->arg = arg;
	h->started_ms = bus_now_ms();
	if ((rv = bus_listen(&h->sock, url, 4096)) != 0) {
		free(h);
		return rv;
	}
	if (pthread_create(&h->thr, NULL, health_main, h) != 0) {
		bus_close(h->sock);
		free(h);
		return CS_ENOMEM;
	}
	*out = h;
	return 0;
}

void
health_stop(struct health *h)
{
	if (h == NULL)
		return;
	atomic_store(&h->stop, 1);
	pthread_join(h->thr, NULL);
	bus_close(h->sock);
	free(h);
}

int
health_probe(const char *url, int timeout_ms, Crmsync__Envelope **out)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT;
	Crmsync__HealthRequest req = CRMSYNC__HEALTH_REQUEST__INIT;
	nng_socket s;
	int rv;

	*out = NULL;
	if ((rv = nng_req0_open(&s)) != 0)
		return CS_ENNG;
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 1 << 20);
	/* A blocking dial fails at once if nobody listens: that is the answer "down". */
	if ((rv = nng_dial(s, url, NULL, 0)) != 0) {
		nng_close(s);
		return rv == NNG_ECONNREFUSED || rv == NNG_ENOENT ? CS_ECLOSED : CS_ENNG;
	}
	env.body_case = CRMSYNC__ENVELOPE__BODY_HEALTH_REQUEST;
	env.health_request = &req;
	rv = bus_call(s, &env, out, timeout_ms);
	nng_close(s);
	if (rv == 0 && (*out)->body_case != CRMSYNC__ENVELOPE__BODY_HEALTH_RESPONSE) {
		bus_free(*out);
		*out = NULL;
		rv = CS_EPROTO;
	}
	return rv;
}
