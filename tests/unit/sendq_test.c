/*
 * sendq_test.c - the one ordered, acknowledged sender to the store (lib/sendq over
 * bus_call_retry), against an in-process fake store (fake_store.c): order kept through
 * retries, a store that answers RETRY, a REJECTED batch that does not stop the queue,
 * deadlines that stick until cleared, replies that carry data, and shutdown with batches
 * still unsent (with and without a grace window).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "bus.h"
#include "errors.h"
#include "fake_store.h"
#include "sendq.h"

#define MAX_DONE	256

/* What the done callback saw, in order. */
struct done_log {
	pthread_mutex_t	 mtx;
	uint64_t	 tag[MAX_DONE];
	int		 rv[MAX_DONE];
	int		 reply_body[MAX_DONE];
	size_t		 n;
};

static struct done_log dl;
static volatile _Atomic int stop_flag;
static char url[64];
static int url_seq;

static void
on_done(void *arg, const struct sendq_meta *m, int rv, const Crmsync__Envelope *reply, int64_t ms)
{
	struct done_log *d = arg;

	(void)ms;
	pthread_mutex_lock(&d->mtx);
	if (d->n < MAX_DONE) {
		d->tag[d->n] = m->tag;
		d->rv[d->n] = rv;
		d->reply_body[d->n] = reply != NULL ? (int)reply->body_case : -1;
		d->n++;
	}
	pthread_mutex_unlock(&d->mtx);
}

static int
setup(void **state)
{
	(void)state;
	memset(&dl, 0, sizeof(dl));
	pthread_mutex_init(&dl.mtx, NULL);
	stop_flag = 0;
	snprintf(url, sizeof(url), "inproc://sendq_test_%d", ++url_seq);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	pthread_mutex_destroy(&dl.mtx);
	return 0;
}

static struct sendq *
open_q(nng_socket *s, int timeout_ms, int64_t deadline_ms, int64_t grace_ms, size_t depth)
{
	struct sendq_opts o = { .timeout_ms = timeout_ms, .deadline_ms = deadline_ms,
	    .grace_ms = grace_ms, .depth = depth, .stop = &stop_flag, .done = on_done, .arg = &dl };
	struct sendq *q = NULL;

	assert_int_equal(bus_dial(s, url, BUS_RECVMAX_DEFAULT), 0);
	assert_int_equal(sendq_open(&q, *s, &o), 0);
	return q;
}

/* A batch envelope with this id (the meta's tag is the id too). */
static int
submit_batch(struct sendq *q, uint64_t id)
{
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT;
	Crmsync__RecordBatch b = CRMSYNC__RECORD_BATCH__INIT;
	struct sendq_meta m = { .tag = id, .n = 0, .label = "leads" };

	b.entity = "leads";
	b.batch_id = id;
	env.body_case = CRMSYNC__ENVELOPE__BODY_BATCH;
	env.batch = &b;
	return sendq_submit(q, &env, &m);
}

/* Queue batches 1..n. */
static void
submit_n(struct sendq *q, uint64_t n)
{
	for (uint64_t i = 1; i <= n; i++)
		assert_int_equal(submit_batch(q, i), 0);
}

/* Close the queue; how long it took (ms). */
static int64_t
close_timed(struct sendq *q)
{
	int64_t t0 = bus_now_ms();

	sendq_close(q);
	return bus_now_ms() - t0;
}

static size_t
done_count(void)
{
	size_t n;

	pthread_mutex_lock(&dl.mtx);
	n = dl.n;
	pthread_mutex_unlock(&dl.mtx);
	return n;
}

/* The done callback saw batches 1..n, in order, each with result rv. */
static void
expect_done(size_t n, int rv)
{
	assert_int_equal(done_count(), n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(dl.tag[i], i + 1);
		assert_int_equal(dl.rv[i], rv);
	}
}

/* The batches the store answered for good (OK or REJECTED), in the order it saw them. */
static size_t
final_batches(struct fake_store *f, uint64_t *ids, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < fake_store_count(f) && n < cap; i++) {
		struct fake_seen s = fake_store_seen(f, i);
		if (s.body == CRMSYNC__ENVELOPE__BODY_BATCH &&
		    (s.answer == FAKE_OK || s.answer == FAKE_REJECT))
			ids[n++] = s.batch_id;
	}
	return n;
}

/* The store answered batches 1..n for good, in order. */
static void
expect_delivered(struct fake_store *f, uint64_t n)
{
	uint64_t ids[128];

	assert_int_equal(final_batches(f, ids, 128), n);
	for (uint64_t i = 0; i < n; i++)
		assert_int_equal(ids[i], i + 1);
}

static enum fake_answer
retry_twice(void *arg, const Crmsync__Envelope *env, int attempt)
{
	(void)arg;
	(void)env;
	return attempt < 2 ? FAKE_RETRY : FAKE_OK;
}

static enum fake_answer
reject_batch_3(void *arg, const Crmsync__Envelope *env, int attempt)
{
	(void)arg;
	(void)attempt;
	return env->batch->batch_id == 3 ? FAKE_REJECT : FAKE_OK;
}

/* Constant answers; switched with fake_store_set (under the fake's lock). */
static enum fake_answer fa_ok = FAKE_OK, fa_retry = FAKE_RETRY, fa_reject = FAKE_REJECT,
    fa_silent = FAKE_SILENT, fa_cursor = FAKE_CURSOR;

static enum fake_answer
always(void *arg, const Crmsync__Envelope *env, int attempt)
{
	(void)env;
	(void)attempt;
	return *(const enum fake_answer *)arg;
}

static void
test_sendq_keeps_order_of_many_batches(void **state)
{
	struct fake_store *f = fake_store_start(url, NULL, NULL);
	nng_socket s;
	struct sendq *q;

	(void)state;
	assert_non_null(f);
	q = open_q(&s, 2000, 0, 0, 2);
	submit_n(q, 60);
	assert_int_equal(sendq_drain(q), 0);
	expect_delivered(f, 60);
	expect_done(60, 0);
	sendq_close(q);
	bus_close(s);
	fake_store_stop(f);
}

/* ACK_RETRY (the store's database is away): re-sent until OK, and nothing overtakes it. */
static void
test_sendq_resends_while_the_store_answers_retry(void **state)
{
	struct fake_store *f = fake_store_start(url, retry_twice, NULL);
	nng_socket s;
	struct sendq *q;

	(void)state;
	assert_non_null(f);
	q = open_q(&s, 2000, 0, 0, 2);
	submit_n(q, 4);
	assert_int_equal(sendq_drain(q), 0);
	/* Each batch: two RETRYs, then OK, before the next batch is sent at all. */
	assert_int_equal(fake_store_count(f), 12);
	for (size_t i = 0; i < 12; i++) {
		struct fake_seen seen = fake_store_seen(f, i);
		assert_int_equal(seen.batch_id, i / 3 + 1);
		assert_int_equal(seen.answer, i % 3 == 2 ? FAKE_OK : FAKE_RETRY);
	}
	expect_delivered(f, 4);
	expect_done(4, 0);
	sendq_close(q);
	bus_close(s);
	fake_store_stop(f);
}

/* A rejected batch is reported to its sender, not retried, and the queue goes on. */
static void
test_sendq_rejected_batch_is_reported_and_the_queue_goes_on(void **state)
{
	struct fake_store *f = fake_store_start(url, reject_batch_3, NULL);
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT, *reply = NULL;
	Crmsync__RecordBatch b = CRMSYNC__RECORD_BATCH__INIT;
	struct sendq_meta m = { .tag = 6, .label = "leads" };
	nng_socket s;
	struct sendq *q;

	(void)state;
	assert_non_null(f);
	q = open_q(&s, 2000, 0, 0, 2);
	submit_n(q, 5);
	assert_int_equal(sendq_drain(q), 0);		/* a rejection is not sticky */
	expect_delivered(f, 5);
	assert_int_equal(fake_store_count(f), 5);	/* sent once each */
	assert_int_equal(done_count(), 5);
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(dl.tag[i], i + 1);
		assert_int_equal(dl.rv[i], i == 2 ? CS_EREJECTED : 0);
		assert_int_equal(dl.reply_body[i], CRMSYNC__ENVELOPE__BODY_ACK);
	}
	/* A waiting caller gets the rejection and the store's reason. */
	fake_store_set(f, always, &fa_reject);
	b.entity = "leads";
	b.batch_id = 6;
	env.body_case = CRMSYNC__ENVELOPE__BODY_BATCH;
	env.batch = &b;
	assert_int_equal(sendq_call(q, &env, &m, &reply), CS_EREJECTED);
	assert_non_null(reply);
	assert_int_equal(reply->ack->status, CRMSYNC__ACK_STATUS__ACK_REJECTED);
	assert_string_equal(reply->ack->error, "fake: value out of range");
	bus_free(reply);
	assert_int_equal(submit_batch(q, 7), 0);
	sendq_close(q);
	bus_close(s);
	fake_store_stop(f);
}

/* A deadline that passes is sticky: later submits fail at once until the error is cleared. */
static void
test_sendq_deadline_failure_sticks_until_cleared(void **state)
{
	struct fake_store *f = fake_store_start(url, always, &fa_silent);
	nng_socket s;
	struct sendq *q;

	(void)state;
	assert_non_null(f);
	q = open_q(&s, 100, 400, 0, 2);
	assert_int_equal(submit_batch(q, 1), 0);
	assert_int_equal(sendq_drain(q), CS_ETIMEDOUT);
	assert_int_equal(submit_batch(q, 2), CS_ETIMEDOUT);
	assert_int_equal(done_count(), 1);
	assert_int_equal(dl.rv[0], CS_ETIMEDOUT);
	fake_store_set(f, always, &fa_ok);
	sendq_clear_error(q);
	assert_int_equal(submit_batch(q, 3), 0);
	assert_int_equal(sendq_drain(q), 0);
	assert_int_equal(done_count(), 2);
	assert_int_equal(dl.tag[1], 3);
	assert_int_equal(dl.rv[1], 0);
	sendq_close(q);
	bus_close(s);
	fake_store_stop(f);
}

/* A reply that carries data (a cursor) answers a data_reply message; elsewhere it is retried. */
static void
test_sendq_data_reply_mode_returns_the_message(void **state)
{
	struct fake_store *f = fake_store_start(url, always, &fa_cursor);
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT, *reply = NULL;
	Crmsync__CursorGet cg = CRMSYNC__CURSOR_GET__INIT;
	struct sendq_meta data = { .data_reply = 1 }, plain = { .deadline_ms = 300 };
	nng_socket s;
	struct sendq *q;

	(void)state;
	assert_non_null(f);
	q = open_q(&s, 2000, 0, 0, 2);
	cg.name = "leads.updated_at";
	env.body_case = CRMSYNC__ENVELOPE__BODY_CURSOR_GET;
	env.cursor_get = &cg;
	assert_int_equal(sendq_call(q, &env, &data, &reply), 0);
	assert_non_null(reply);
	assert_int_equal(reply->body_case, CRMSYNC__ENVELOPE__BODY_CURSOR_VALUE);
	assert_string_equal(reply->cursor_value->value, "1700000000");
	bus_free(reply);
	/* Without the mode only an Ack answers: the CursorValue is unexpected, retried, timed out. */
	assert_int_equal(sendq_call(q, &env, &plain, &reply), CS_ETIMEDOUT);
	assert_null(reply);
	assert_true(fake_store_count(f) >= 2);
	sendq_clear_error(q);
	sendq_close(q);
	bus_close(s);
	fake_store_stop(f);
}

/*
 * Stopping while no store listens: every batch still queued fails with CS_ECANCELED and is
 * reported; without grace at once, with grace after one window shared by all of them.
 */
static void
test_sendq_shutdown_cancels_unsent_batches(void **state)
{
	static const struct {
		int64_t		grace_ms;
		uint64_t	n;
		int64_t		min_ms, max_ms;
	} cases[] = {
		{ 0, 3, 0, 2000 },	/* at once (a round trip in progress ends first) */
		{ 600, 4, 500, 2000 },	/* one 600 ms window, not 4 x 600 ms = 2.4 s */
	};

	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		nng_socket s;
		struct sendq *q;

		assert_int_equal(setup(state), 0);
		q = open_q(&s, 100, 0, cases[k].grace_ms, 4);
		submit_n(q, cases[k].n);
		stop_flag = 1;
		int64_t took = close_timed(q);
		assert_true(took >= cases[k].min_ms);
		assert_true(took < cases[k].max_ms);
		expect_done(cases[k].n, CS_ECANCELED);
		bus_close(s);
		assert_int_equal(teardown(state), 0);
	}
}

/* Stopping with a grace window: what is queued still reaches a store that answers in time. */
static void
test_sendq_shutdown_grace_delivers_queued_batches(void **state)
{
	struct fake_store *f = fake_store_start(url, always, &fa_retry);
	nng_socket s;
	struct sendq *q;

	(void)state;
	assert_non_null(f);
	q = open_q(&s, 1000, 0, 10000, 4);
	submit_n(q, 3);
	assert_true(fake_store_wait(f, 1, 5000) >= 1);	/* batch 1 is being retried */
	stop_flag = 1;
	fake_store_set(f, always, &fa_ok);
	sendq_close(q);
	expect_delivered(f, 3);
	expect_done(3, 0);
	bus_close(s);
	fake_store_stop(f);
}

/* An unstoppable message (the record of a run's end) is sent although the stop is set. */
static void
test_sendq_unstoppable_message_ignores_stop(void **state)
{
	struct fake_store *f = fake_store_start(url, NULL, NULL);
	Crmsync__Envelope env = CRMSYNC__ENVELOPE__INIT;
	Crmsync__RunEnd re = CRMSYNC__RUN_END__INIT;
	struct sendq_meta m = { .unstoppable = 1, .deadline_ms = 5000 };
	nng_socket s;
	struct sendq *q;

	(void)state;
	assert_non_null(f);
	q = open_q(&s, 1000, 0, 0, 2);
	stop_flag = 1;
	re.run_id = 9;
	env.body_case = CRMSYNC__ENVELOPE__BODY_RUN_END;
	env.run_end = &re;
	assert_int_equal(submit_batch(q, 1), 0);
	assert_int_equal(sendq_drain(q), CS_ECANCELED);
	sendq_clear_error(q);
	assert_int_equal(sendq_call(q, &env, &m, NULL), 0);
	assert_int_equal(fake_store_count(f), 1);
	assert_int_equal(fake_store_seen(f, 0).body, CRMSYNC__ENVELOPE__BODY_RUN_END);
	sendq_close(q);
	bus_close(s);
	fake_store_stop(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sendq_keeps_order_of_many_batches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sendq_resends_while_the_store_answers_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sendq_rejected_batch_is_reported_and_the_queue_goes_on, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sendq_deadline_failure_sticks_until_cleared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sendq_data_reply_mode_returns_the_message, setup, teardown),
		cmocka_unit_test(test_sendq_shutdown_cancels_unsent_batches),
		cmocka_unit_test_setup_teardown(test_sendq_shutdown_grace_delivers_queued_batches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sendq_unstoppable_message_ignores_stop, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
