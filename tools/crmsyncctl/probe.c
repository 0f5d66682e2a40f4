/*
 * probe.c - ask several NNG health responders at once (lib/health's health_probe), one
 * thread per address, and stop waiting at a deadline. A refused connection answers at
 * once; only a silent peer costs the timeout, and it costs it once, not once per service.
 * The results live in a heap block the threads share: a thread still stuck in a dial at
 * the deadline finishes (or not) on its own and the last one out frees the block.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus.h"
#include "ctl.h"
#include "errors.h"
#include "health.h"

struct probe_group;

struct probe_job {
	struct probe_group	*g;
	char			*url;
	int			 timeout_ms;
	int			 done;
	int			 rv;
	Crmsync__Envelope	*env;
};

struct probe_group {
	pthread_mutex_t		 mtx;
	pthread_cond_t		 cv;
	size_t			 n, ndone, refs;
	struct probe_job	 jobs[];
};

static void
probe_group_unref(struct probe_group *g)
{
	size_t left;

	pthread_mutex_lock(&g->mtx);
	left = --g->refs;
	pthread_mutex_unlock(&g->mtx);
	if (left > 0)
		return;
	for (size_t i = 0; i < g->n; i++) {
		bus_free(g->jobs[i].env);	/* only results nobody collected */
		free(g->jobs[i].url);
	}
	pthread_mutex_destroy(&g->mtx);
	pthread_cond_destroy(&g->cv);
	free(g);
}

static void *
probe_main(void *arg)
{
	struct probe_job *j = arg;
	struct probe_group *g = j->g;
	Crmsync__Envelope *env = NULL;
	int rv = health_probe(j->url, j->timeout_ms, &env);

	pthread_mutex_lock(&g->mtx);
	j->rv = rv;
	j->env = env;
	j->done = 1;
	g->ndone++;
	pthread_cond_signal(&g->cv);
	pthread_mutex_unlock(&g->mtx);
	probe_group_unref(g);
	return NULL;
}

void
ctl_probe_all(struct ctl_probe *p, size_t n, int timeout_ms)
{
	struct probe_group *g;
	struct timespec until;
	pthread_attr_t attr;

	for (size_t i = 0; i < n; i++) {
		p[i].rv = CS_ENOMEM;
		p[i].env = NULL;
	}
	if ((g = calloc(1, sizeof(*g) + n * sizeof(g->jobs[0]))) == NULL)
		return;
	pthread_mutex_init(&g->mtx, NULL);
	pthread_cond_init(&g->cv, NULL);
	g->n = n;
	g->refs = 1;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (size_t i = 0; i < n; i++) {
		struct probe_job *j = &g->jobs[i];
		pthread_t t;
		int started = 0;

		j->g = g;
		j->timeout_ms = timeout_ms;
		j->rv = CS_ENOMEM;
		if ((j->url = strdup(p[i].url)) != NULL) {
			pthread_mutex_lock(&g->mtx);
			g->refs++;	/* before the thread can drop it */
			pthread_mutex_unlock(&g->mtx);
			if (pthread_create(&t, &attr, probe_main, j) == 0) {
				started = 1;
			} else {
				pthread_mutex_lock(&g->mtx);
				g->refs--;
				pthread_mutex_unlock(&g->mtx);
			}
		}
		if (!started) {
			pthread_mutex_lock(&g->mtx);
			j->done = 1;
			g->ndone++;
			pthread_mutex_unlock(&g->mtx);
		}
	}
	pthread_attr_destroy(&attr);

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (timeout_ms + 1000) / 1000;
	until.tv_nsec += (long)((timeout_ms + 1000) % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&g->mtx);
	while (g->ndone < g->n)
		if (pthread_cond_timedwait(&g->cv, &g->mtx, &until) != 0)
			break;
	for (size_t i = 0; i < n; i++) {
		struct probe_job *j = &g->jobs[i];

		if (!j->done) {
			p[i].rv = CS_ETIMEDOUT;
			continue;
		}
		p[i].rv = j->rv;
		p[i].env = j->env;	/* ownership moves to the caller */
		j->env = NULL;
	}
	pthread_mutex_unlock(&g->mtx);
	probe_group_unref(g);
}

void
ctl_probe_free(struct ctl_probe *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		bus_free(p[i].env);
		p[i].env = NULL;
	}
}

int64_t
ctl_stat(const Crmsync__HealthResponse *h, const char *name, int64_t def)
{
	for (size_t i = 0; h != NULL && i < h->n_stats; i++)
		if (h->stats[i]->name != NULL && strcmp(h->stats[i]->name, name) == 0)
			return h->stats[i]->value;
	return def;
}

const char *
ctl_probe_error(int rv, int timeout_ms)
{
	static char buf[64];

	switch (rv) {
	case CS_ECLOSED:
		return "connection refused (not running)";
	case CS_ETIMEDOUT:
		snprintf(buf, sizeof(buf), "no answer in %d ms", timeout_ms);
		return buf;
	case CS_EPROTO:
		return "answered, but not with a health response";
	case CS_ENNG:
		return "cannot connect (bad address, or host unreachable)";
	default:
		return cs_strerror(rv);
	}
}

void
ctl_duration(char *dst, size_t cap, int64_t s)
{
	if (s < 0)
		snprintf(dst, cap, "-");
	else if (s >= 86400)
		snprintf(dst, cap, "%lldd%02lldh", (long long)(s / 86400), (long long)(s % 86400 / 3600));
	else if (s >= 3600)
		snprintf(dst, cap, "%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
	else if (s >= 60)
		snprintf(dst, cap, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
	else
		snprintf(dst, cap, "%llds", (long long)s);
}
