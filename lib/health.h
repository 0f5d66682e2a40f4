/*
 * health.h - the health responder every service runs, and the probe that asks it.
 *
 * health_start() opens a REP socket on its own address (separate from the data plane, so a
 * busy service still answers) and serves HealthRequest from a thread of its own, replying
 * with service name, version, uptime, the service's stats and a status line from the
 * status callback. health_probe() is the client side (crmsyncctl, container probes, tests).
 */
#ifndef CS_HEALTH_H
#define CS_HEALTH_H

#include <stddef.h>

#include "crmsync.pb-c.h"
#include "stats.h"

struct health;

/*
 * status(arg, buf, len) writes a one-line status into buf and returns 1 when healthy,
 * 0 when degraded. Called from the health thread: it must be thread-safe.
 */
typedef int (*health_status_fn)(void *arg, char *buf, size_t len);

int	health_start(struct health **out, const char *url, const char *service,
	    struct stat_counter *stats, size_t nstats, health_status_fn status, void *arg);
void	health_stop(struct health *h);

/* Ask url for its health. *out is freed by the caller with bus_free-style
 * crmsync__envelope__free_unpacked (use health_response_free). */
int	health_probe(const char *url, int timeout_ms, Crmsync__Envelope **out);

#endif
