/*
 * ratelimit.h - the request allowance shared by every thread that talks to one API account,
 * and the backoff schedule for retries. Two kinds:
 *   - a token bucket (rl_init): `rate` a second on average, at most `burst` at once;
 *   - a sliding window (rl_init_window): at most n requests in any window, the way an API
 *     that states "600 requests per 30 s" counts. A request holds its slot from rl_take()
 *     until rl_done() (its response), and the slot comes free one window after that: the
 *     server saw the request before its response ended, so however long requests travel,
 *     no n arrive within one window. Requests also start at least window/n apart, so it
 *     never bursts (not even after an idle spell, when every slot is free: a process that
 *     restarts then cannot add its first requests to a burst of its predecessor's). Long
 *     windows use nearly all of the allowance this way (n per window plus a response time),
 *     where a bucket that must never exceed it over any window keeps a margin (burst +
 *     refill over one window <= n).
 * rl_acquire() / rl_take() block until allowed (or *stop is set). rl_pause() makes everyone
 * wait, e.g. after a 429 with Retry-After. Thread-safe.
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
	int64_t		 last_us;	/* bucket: last refill; window: last request's start */
	int64_t		 paused_until_us;
	/* Window kind only (ring != NULL): */
	int64_t		*ring;		/* per slot: when it comes free; RL_BUSY while in flight */
	size_t		 n, next;	/* slots, and the one the next request takes */
	int64_t		 window_us;
};

#define RL_BUSY		INT64_MAX
#define RL_WINDOW_MAX	1000000		/* slots: requests per window */

void	rl_init(struct ratelimit *rl, double rate, double burst);
/*
 * At most n requests in any window_ms. A new window starts as if the window before it had
 * been used evenly up to now (a restart must not burst on top of what the previous process
 * sent): the first n requests go at n per window, later ones as their slots come free.
 * CS_EINVAL for n or window_ms out of range, CS_ENOMEM.
 */
int	rl_init_window(struct ratelimit *rl, size_t n, int64_t window_ms);
/* 0, or CS_ECANCELED when *stop became non-zero while waiting. The request counts as done
 * at once (a window's slot comes free one window after the call). */
int	rl_acquire(struct ratelimit *rl, volatile _Atomic int *stop);
/* The same, holding the slot until rl_done(rl, *ticket): call it when the response has
 * ended or the request failed, always exactly once after a 0. */
int	rl_take(struct ratelimit *rl, volatile _Atomic int *stop, long *ticket);
void	rl_done(struct ratelimit *rl, long ticket);
void	rl_pause(struct ratelimit *rl, int64_t ms);
void	rl_destroy(struct ratelimit *rl);

/* Exponential backoff with full jitter: random in [base*2^attempt/2, base*2^attempt], capped. */
int64_t	backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms);

int64_t	rl_now_us(void);

#endif
