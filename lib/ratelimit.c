/* ratelimit.c - token bucket, sliding window and jittered backoff (see ratelimit.h). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errors.h"
#include "ratelimit.h"

int64_t
rl_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
rl_init(struct ratelimit *rl, double rate, double burst)
{
	pthread_mutex_init(&rl->mtx, NULL);
	rl->rate = rate;
	rl->burst = burst < 1 ? 1 : burst;
	/* Start empty-ish: a restart must not burst on top of what the previous process sent. */
	rl->tokens = 1;
	rl->last_us = rl_now_us();
	rl->paused_until_us = 0;
	rl->ring = NULL;
	rl->n = rl->next = 0;
	rl->window_us = 0;
}

int
rl_init_window(struct ratelimit *rl, size_t n, int64_t window_ms)
{
	int64_t now = rl_now_us();

	if (n < 1 || n > RL_WINDOW_MAX || window_ms < 1 || window_ms > 24 * 3600 * 1000LL)
		return CS_EINVAL;
	rl_init(rl, (double)n * 1000.0 / (double)window_ms, 1);
	if ((rl->ring = calloc(n, sizeof(*rl->ring))) == NULL) {
		pthread_mutex_destroy(&rl->mtx);
		return CS_ENOMEM;
	}
	rl->n = n;
	rl->window_us = window_ms * 1000;
	rl->last_us = now - rl->window_us;	/* the last request's start: none in the window */
	/* Slot i comes free (i + 1) / n of a window from now: n per window from the start. */
	for (size_t i = 0; i < n; i++)
		rl->ring[i] = now - rl->window_us + (int64_t)((double)(i + 1) * (double)rl->window_us / (double)n);
	return 0;
}

void
rl_destroy(struct ratelimit *rl)
{
	free(rl->ring);
	rl->ring = NULL;
	pthread_mutex_destroy(&rl->mtx);
}

static void
sleep_us(int64_t us)
{
	struct timespec ts = { (time_t)(us / 1000000), (long)(us % 1000000) * 1000 };

	nanosleep(&ts, NULL);
}

/* Under the lock: 0 and the bucket's token taken, or how long to wait (us). */
static int64_t
bucket_try(struct ratelimit *rl, int64_t now)
{
	rl->tokens += (double)(now - rl->last_us) * rl->rate / 1e6;
	if (rl->tokens > rl->burst)
		rl->tokens = rl->burst;
	rl->last_us = now;
	if (rl->tokens >= 1) {
		rl->tokens -= 1;
		return 0;
	}
	return (int64_t)((1 - rl->tokens) * 1e6 / rl->rate) + 1;
}

/* Under the lock: 0 and the window's next slot taken (*ticket), or how long to wait (us). */
static int64_t
window_try(struct ratelimit *rl, int64_t now, long *ticket)
{
	int64_t at = rl->ring[rl->next];

	if (at == RL_BUSY)
		return 10000;		/* the request n ago is still in flight */
	if (now < at + rl->window_us)
		return at + rl->window_us - now;
	if (now < rl->last_us + rl->window_us / (int64_t)rl->n)	/* evenly, even after idling */
		return rl->last_us + rl->window_us / (int64_t)rl->n - now;
	rl->last_us = now;
	rl->ring[rl->next] = RL_BUSY;
	*ticket = (long)rl->next;
	rl->next = (rl->next + 1) % rl->n;
	return 0;
}

int
rl_take(struct ratelimit *rl, volatile _Atomic int *stop, long *ticket)
{
	*ticket = -1;
	for (;;) {
		int64_t wait_us = 0, now;

		if (stop != NULL && *stop)
			return CS_ECANCELED;
		pthread_mutex_lock(&rl->mtx);
		now = rl_now_us();
		if (now < rl->paused_until_us)
			wait_us = rl->paused_until_us - now;
		else if (rl->ring != NULL)
			wait_us = window_try(rl, now, ticket);
		else if (rl->rate > 0)
			wait_us = bucket_try(rl, now);
		pthread_mutex_unlock(&rl->mtx);
		if (wait_us == 0)
			return 0;
		sleep_us(wait_us > 100000 ? 100000 : wait_us);
	}
}

void
rl_done(struct ratelimit *rl, long ticket)
{
	if (ticket < 0 || rl->ring == NULL)
		return;
	pthread_mutex_lock(&rl->mtx);
	if ((size_t)ticket < rl->n)
		rl->ring[ticket] = rl_now_us();
	pthread_mutex_unlock(&rl->mtx);
}

int
rl_acquire(struct ratelimit *rl, volatile _Atomic int *stop)
{
	long ticket;
	int rv = rl_take(rl, stop, &ticket);

	if (rv == 0)
		rl_done(rl, ticket);
	return rv;
}

void
rl_pause(struct ratelimit *rl, int64_t ms)
{
	pthread_mutex_lock(&rl->mtx);
	int64_t until = rl_now_us() + ms * 1000;
	if (until > rl->paused_until_us)
		rl->paused_until_us = until;
	rl->tokens = 0;
	rl->last_us = until;
	pthread_mutex_unlock(&rl->mtx);
}

int64_t
backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms)
{
	int64_t d = base_ms;

	for (int i = 0; i < attempt && d < cap_ms; i++)
		d *= 2;
	if (d > cap_ms)
		d = cap_ms;
	return d / 2 + (int64_t)(random() % (d / 2 + 1));
}
