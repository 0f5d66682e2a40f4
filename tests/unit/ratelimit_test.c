/*
 * ratelimit_test.c - the token bucket every API client shares and the retry backoff: the
 * rate is never exceeded (from one thread or several), a pause holds everyone back, a stop
 * ends a wait, an unlimited bucket never waits, and backoff stays inside its jitter window.
 * The sliding window: a paced start, never n requests within a window from four threads
 * with slow and fast responses while keeping to the allowance, no burst after an idle
 * spell, a slot held until its response, bounds.
 *
 * Only lower bounds on elapsed time are asserted (a loaded machine can be slower, never
 * faster than the bucket allows); upper bounds are generous and guard against hangs only.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "errors.h"
#include "ratelimit.h"

/* Acquire n tokens; the time it took in microseconds. */
static int64_t
acquire_n(struct ratelimit *rl, int n)
{
	int64_t t0 = rl_now_us();

	for (int i = 0; i < n; i++)
		assert_int_equal(rl_acquire(rl, NULL), 0);
	return rl_now_us() - t0;
}

static void
test_unlimited_never_waits(void **state)
{
	struct ratelimit rl;

	(void)state;
	rl_init(&rl, 0, 1);
	assert_true(acquire_n(&rl, 10000) < 2 * 1000000);
	rl_destroy(&rl);
}

/* One token at start, then `rate` a second: n tokens cannot come faster than (n-1)/rate. */
static void
test_rate_is_never_exceeded(void **state)
{
	struct ratelimit rl;

	(void)state;
	rl_init(&rl, 50, 1);
	int64_t us = acquire_n(&rl, 11);
	assert_true(us >= 10 * 1000000 / 50 - 2000);	/* 200 ms, less clock granularity */
	assert_true(us < 10 * 1000000);
	rl_destroy(&rl);
}

/* A new bucket starts with one token, not a full burst: a restart must not burst. */
static void
test_new_bucket_does_not_burst(void **state)
{
	struct ratelimit rl;

	(void)state;
	rl_init(&rl, 20, 10);
	assert_true(acquire_n(&rl, 3) >= 2 * 1000000 / 20 - 2000);
	rl_destroy(&rl);
}

/* After a quiet spell the burst is there at once, and no more than the burst. */
static void
test_burst_after_idle_is_bounded(void **state)
{
	struct ratelimit rl;

	(void)state;
	rl_init(&rl, 100, 5);
	struct timespec ts = { 0, 200 * 1000000L };	/* refills 20 tokens' worth, capped at 5 */
	nanosleep(&ts, NULL);
	/* 5 from the burst, then 5 more at 100/s: at least 4 intervals of 10 ms. */
	assert_true(acquire_n(&rl, 10) >= 4 * 10000 - 2000);
	rl_destroy(&rl);
}

struct worker {
	struct ratelimit	*rl;
	int			 n;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < w->n; i++)
		if (rl_acquire(w->rl, NULL) != 0)
			return (void *)1;
	return NULL;
}

/* Four threads share one account's allowance: together they get the rate, not 4x. */
static void
test_threads_share_the_rate(void **state)
{
	struct ratelimit rl;
	pthread_t t[4];
	struct worker w = { &rl, 10 };

	(void)state;
	rl_init(&rl, 100, 1);
	int64_t t0 = rl_now_us();
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w), 0);
	for (int i = 0; i < 4; i++) {
		void *rv;
		pthread_join(t[i], &rv);
		assert_null(rv);
	}
	assert_true(rl_now_us() - t0 >= 39 * 1000000 / 100 - 2000);
	rl_destroy(&rl);
}

/* A pause (a 429's Retry-After) holds the next request back for at least its length. */
static void
test_pause_holds_everyone(void **state)
{
	struct ratelimit rl;

	(void)state;
	rl_init(&rl, 1000, 10);
	rl_pause(&rl, 150);
	assert_true(acquire_n(&rl, 1) >= 150 * 1000 - 2000);
	/* A shorter pause never shortens a longer one. */
	rl_pause(&rl, 300);
	rl_pause(&rl, 10);
	assert_true(acquire_n(&rl, 1) >= 300 * 1000 - 2000);
	rl_destroy(&rl);
}

struct stopper {
	volatile _Atomic int	*stop;
	int			 after_ms;
};

static void *
stopper_main(void *arg)
{
	struct stopper *s = arg;
	struct timespec ts = { s->after_ms / 1000, (long)(s->after_ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
	atomic_store(s->stop, 1);
	return NULL;
}

/* A stop ends a long wait promptly, and a stopped caller gets CS_ECANCELED at once. */
static void
test_stop_ends_a_wait(void **state)
{
	struct ratelimit rl;
	volatile _Atomic int stop = 0;
	struct stopper s = { &stop, 100 };
	pthread_t t;

	(void)state;
	rl_init(&rl, 1, 1);
	rl_pause(&rl, 60 * 1000);
	assert_int_equal(pthread_create(&t, NULL, stopper_main, &s), 0);
	int64_t t0 = rl_now_us();
	assert_int_equal(rl_acquire(&rl, &stop), CS_ECANCELED);
	assert_true(rl_now_us() - t0 < 10 * 1000000);	/* not the minute of the pause */
	pthread_join(t, NULL);
	assert_int_equal(rl_acquire(&rl, &stop), CS_ECANCELED);
	rl_destroy(&rl);
}

/* ---- the sliding window ------------------------------------------------------------------ */

/* A new window does not burst: its first n requests go at n per window. */
static void
test_window_paced_start(void **state)
{
	struct ratelimit rl;

	(void)state;
	assert_int_equal(rl_init_window(&rl, 10, 300), 0);
	/* The 10th comes free 10/10 of a window from the start, the 1st after 1/10. */
	assert_true(acquire_n(&rl, 10) >= 300 * 1000 - 2000);
	rl_destroy(&rl);
}

#define WIN_N		8
#define WIN_MS		200
#define WIN_REQS	48

struct wclient {
	struct ratelimit	*rl;
	pthread_mutex_t		*order;		/* rl_take and the record together: slot order */
	int64_t			*taken;		/* per slot order: when rl_take returned */
	int			*count;
	int			 n;
	int			 slow_every;	/* every so many requests, a response of 60 ms */
};

static void *
wclient_main(void *arg)
{
	struct wclient *w = arg;

	for (int i = 0; i < w->n; i++) {
		long ticket;
		pthread_mutex_lock(w->order);
		if (rl_take(w->rl, NULL, &ticket) != 0) {
			pthread_mutex_unlock(w->order);
			return (void *)1;
		}
		w->taken[(*w->count)++] = rl_now_us();
		pthread_mutex_unlock(w->order);
		struct timespec ts = { 0, (i % w->slow_every == 0 ? 60 : 2) * 1000000L };
		nanosleep(&ts, NULL);		/* the request in flight */
		rl_done(w->rl, ticket);
	}
	return NULL;
}

/*
 * Four threads with slow and fast responses: no WIN_N requests start within one window (the
 * server's count of arrivals is never over), and together they keep to the allowance, not
 * below it: WIN_REQS requests take about WIN_REQS / WIN_N windows.
 */
static void
test_window_never_exceeded(void **state)
{
	struct ratelimit rl;
	int64_t taken[WIN_REQS];
	int count = 0;
	pthread_mutex_t order = PTHREAD_MUTEX_INITIALIZER;
	struct wclient w = { &rl, &order, taken, &count, WIN_REQS / 4, 5 };
	pthread_t t[4];

	(void)state;
	assert_int_equal(rl_init_window(&rl, WIN_N, WIN_MS), 0);
	int64_t t0 = rl_now_us();
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, wclient_main, &w), 0);
	for (int i = 0; i < 4; i++) {
		void *rv;
		pthread_join(t[i], &rv);
		assert_null(rv);
	}
	int64_t took = rl_now_us() - t0;
	assert_int_equal(count, WIN_REQS);
	/* Each taken[k] is after its rl_take returned and before its rl_done: exact bounds. */
	for (int k = WIN_N; k < WIN_REQS; k++)
		assert_true(taken[k] - taken[k - WIN_N] >= WIN_MS * 1000 - 2000);
	assert_true(took >= (WIN_REQS / WIN_N) * WIN_MS * 1000 - 2000);
	assert_true(took < 20 * (WIN_REQS / WIN_N) * WIN_MS * 1000);	/* a guard against hangs */
	rl_destroy(&rl);
}

/* After an idle spell every slot is free, yet requests still start window/n apart. */
static void
test_window_no_burst_after_idle(void **state)
{
	struct ratelimit rl;

	(void)state;
	assert_int_equal(rl_init_window(&rl, 10, 200), 0);
	struct timespec ts = { 0, 450 * 1000000L };	/* two windows and more */
	nanosleep(&ts, NULL);
	assert_true(acquire_n(&rl, 10) >= 9 * 20 * 1000 - 2000);
	rl_destroy(&rl);
}

struct taker {
	struct ratelimit	*rl;
	_Atomic int		 done;
	int64_t			 at;
};

static void *
taker_main(void *arg)
{
	struct taker *t = arg;
	long ticket;

	if (rl_take(t->rl, NULL, &ticket) != 0)
		return (void *)1;
	t->at = rl_now_us();
	rl_done(t->rl, ticket);
	atomic_store(&t->done, 1);
	return NULL;
}

/* A request in flight holds its slot: the one n later waits for its response and a window. */
static void
test_window_slot_held_until_done(void **state)
{
	struct ratelimit rl;
	struct taker tk = { &rl, 0, 0 };
	long first, other;
	pthread_t t;

	(void)state;
	assert_int_equal(rl_init_window(&rl, 2, 100), 0);
	assert_int_equal(rl_take(&rl, NULL, &first), 0);
	assert_int_equal(rl_take(&rl, NULL, &other), 0);
	rl_done(&rl, other);
	assert_int_equal(pthread_create(&t, NULL, taker_main, &tk), 0);
	struct timespec ts = { 0, 400 * 1000000L };	/* four windows */
	nanosleep(&ts, NULL);
	assert_int_equal(atomic_load(&tk.done), 0);
	int64_t released = rl_now_us();
	rl_done(&rl, first);
	pthread_join(t, NULL);
	assert_int_equal(atomic_load(&tk.done), 1);
	assert_true(tk.at - released >= 100 * 1000 - 2000);
	rl_destroy(&rl);
}

/* Out-of-range windows are refused; a pause holds a window's requests too. */
static void
test_window_bounds_and_pause(void **state)
{
	struct ratelimit rl;

	(void)state;
	assert_int_equal(rl_init_window(&rl, 0, 1000), CS_EINVAL);
	assert_int_equal(rl_init_window(&rl, RL_WINDOW_MAX + 1, 1000), CS_EINVAL);
	assert_int_equal(rl_init_window(&rl, 5, 0), CS_EINVAL);
	assert_int_equal(rl_init_window(&rl, 1000, 1000), 0);
	rl_pause(&rl, 150);
	assert_true(acquire_n(&rl, 1) >= 150 * 1000 - 2000);
	rl_destroy(&rl);
}

/* Full jitter in [d/2, d] with d = base * 2^attempt capped; no overflow for huge attempts. */
static void
test_backoff_window(void **state)
{
	(void)state;
	for (int attempt = 0; attempt < 70; attempt++) {
		int64_t d = 100;
		for (int i = 0; i < attempt && d < 5000; i++)
			d *= 2;
		if (d > 5000)
			d = 5000;
		for (int k = 0; k < 200; k++) {
			int64_t v = backoff_ms(attempt, 100, 5000);
			assert_true(v >= d / 2);
			assert_true(v <= d);
		}
	}
	/* It does jitter: 200 draws at the cap are not all equal. */
	int64_t first = backoff_ms(10, 100, 5000), differ = 0;
	for (int k = 0; k < 200; k++)
		differ |= backoff_ms(10, 100, 5000) != first;
	assert_true(differ);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unlimited_never_waits),
		cmocka_unit_test(test_rate_is_never_exceeded),
		cmocka_unit_test(test_new_bucket_does_not_burst),
		cmocka_unit_test(test_burst_after_idle_is_bounded),
		cmocka_unit_test(test_threads_share_the_rate),
		cmocka_unit_test(test_pause_holds_everyone),
		cmocka_unit_test(test_stop_ends_a_wait),
		cmocka_unit_test(test_window_paced_start),
		cmocka_unit_test(test_window_never_exceeded),
		cmocka_unit_test(test_window_no_burst_after_idle),
		cmocka_unit_test(test_window_slot_held_until_done),
		cmocka_unit_test(test_window_bounds_and_pause),
		cmocka_unit_test(test_backoff_window),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
