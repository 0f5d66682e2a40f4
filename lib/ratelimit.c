/* ratelimit.c - token bucket and jittered backoff (see ratelimit.h). */
#include <stdlib.h>
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
}

void
rl_destroy(struct ratelimit *rl)
{
	pthread_mutex_destroy(&rl->mtx);
}

static void
sleep_us(int64_t us)
{
	struct timespec ts = { (time_t)(us / 1000000), (long)(us % 1000000) * 1000 };

	nanosleep(&ts, NULL);
}

int
rl_acquire(struct ratelimit *rl, volatile _Atomic int *stop)
{
	for (;;) {
		int64_t wait_us = 0, now;

		if (stop != NULL && *stop)
			return CS_ECANCELED;
		pthread_mutex_lock(&rl->mtx);
		now = rl_now_us();
		if (rl->rate <= 0 && now >= rl->paused_until_us) {
			pthread_mutex_unlock(&rl->mtx);
			return 0;
		}
		if (now < rl->paused_until_us) {
			wait_us = rl->paused_until_us - now;
		} else {
			rl->tokens += (double)(now - rl->last_us) * rl->rate / 1e6;
			if (rl->tokens > rl->burst)
				rl->tokens = rl->burst;
			rl->last_us = now;
			if (rl->tokens >= 1) {
				rl->tokens -= 1;
				pthread_mutex_unlock(&rl->mtx);
				return 0;
			}
			wait_us = (int64_t)((1 - rl->tokens) * 1e6 / rl->rate) + 1;
		}
		pthread_mutex_unlock(&rl->mtx);
		sleep_us(wait_us > 100000 ? 100000 : wait_us);
	}
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
