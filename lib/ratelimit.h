/*
 * ratelimit.h - a token bucket shared by every thread that talks to one API account, and
 * the backoff schedule for retries.
 *
 * rl_acquire() blocks until a token is available (or *stop is set), so the request rate
 * never exceeds `rate` per second on average with at most `burst` at once. rl_pause()
 * makes everyone wait, e.g. after a 429 with Retry-After. Thread-safe.
 */
#ifndef CS_RATELIMIT_H
#define CS_RATELIMIT_H

#include <pthread.h>
#include <stdint.h>

struct ratelimit {
	pthread_mutex_t	 mtx;
	double		 rate;		/* tokens per second; <= 0 = unlimited */
	double		 burst;
	double		 tokens;
	int64_t		 last_us;
	int64_t		 paused_until_us;
};

void	rl_init(struct ratelimit *rl, double rate, double burst);
/* 0, or CS_ECANCELED when *stop became non-zero while waiting. */
int	rl_acquire(struct ratelimit *rl, volatile _Atomic int *stop);
void	rl_pause(struct ratelimit *rl, int64_t ms);
void	rl_destroy(struct ratelimit *rl);

/* Exponential backoff with full jitter: random in [base*2^attempt/2, base*2^attempt], capped. */
int64_t	backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms);

int64_t	rl_now_us(void);

#endif
