/*
 * bus_test.c - NNG request/reply with one protobuf Envelope per message (lib/bus), against
 * the in-process fake store (fake_store.c) and raw sockets: a round trip, the at-least-once
 * rules of bus_call_ack (RETRY and silence re-sent, REJECTED final, deadlines, a stop),
 * bus_call_retry's data replies and stop grace, receive timeouts, undecodable bytes handed
 * back for dead-lettering, and the size bound.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "bus.h"
#include <nng/protocol/reqrep0/req.h>
#include "errors.h"
#include "fake_store.h"

static char url[64];
static int url_seq;
static volatile _Atomic int stop_flag;

static int
setup(void **state)
{
	(void)state;
	snprintf(url, sizeof(url), "inproc://bus_test_%d", ++url_seq);
	atomic_store(&stop_flag, 0);
	return 0;
}

/* A batch envelope with this id; fields point at static storage. */
static Crmsync__Envelope *
batch_env(uint64_t id)
{
	static Crmsync__Envelope env;
	static Crmsync__RecordBatch b;

	crmsync__envelope__init(&env);
	crmsync__record_batch__init(&b);
	b.entity = "leads";
	b.batch_id = id;
	env.body_case = CRMSYNC__ENVELOPE__BODY_BATCH;
	env.batch = &b;
	return &env;
}

/* Answers: RETRY for the first two attempts of a message, then OK. */
static enum fake_answer
retry_twice(void *arg, const Crmsync__Envelope *env, int attempt)
{
	(void)arg;
	(void)env;
	return attempt < 2 ? FAKE_RETRY : FAKE_OK;
}

static enum fake_answer
always(void *arg, const Crmsync__Envelope *env, int attempt)
{
	(void)env;
	(void)attempt;
	return *(enum fake_answer *)arg;
}

static void
test_round_trip(void **state)
{
	nng_socket s;
	Crmsync__Envelope *reply = NULL;

	(void)state;
	struct fake_store *f = fake_store_start(url, NULL, NULL);
	assert_int_equal(bus_dial(&s, url, BUS_RECVMAX_DEFAULT), 0);
	assert_int_equal(bus_call(s, batch_env(7), &reply, 2000), 0);
	assert_int_equal(reply->body_case, CRMSYNC__ENVELOPE__BODY_ACK);
	assert_int_equal(reply->ack->batch_id, 7);
	bus_free(reply);
	struct fake_seen seen = fake_store_seen(f, 0);
	assert_int_equal(seen.body, CRMSYNC__ENVELOPE__BODY_BATCH);
	assert_string_equal(seen.entity, "leads");
	bus_close(s);
	fake_store_stop(f);
}

/* RETRY is sent again until OK: three attempts of the same batch. */
static void
test_ack_retries_until_ok(void **state)
{
	nng_socket s;
	Crmsync__Envelope *ack = NULL;

	(void)state;
	struct fake_store *f = fake_store_start(url, retry_twice, NULL);
	assert_int_equal(bus_dial(&s, url, BUS_RECVMAX_DEFAULT), 0);
	assert_int_equal(bus_call_ack(s, batch_env(3), &ack, 1000, 10000, &stop_flag), 0);
	assert_int_equal(ack->ack->status, CRMSYNC__ACK_STATUS__ACK_OK);
	bus_free(ack);
	assert_int_equal(fake_store_count(f), 3);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(fake_store_seen(f, i).batch_id, 3);
	bus_close(s);
	fake_store_stop(f);
}

/* REJECTED is final: one attempt, the peer's reason handed back. */
static void
test_rejected_is_final(void **state)
{
	nng_socket s;
	Crmsync__Envelope *ack = NULL;
	enum fake_answer a = FAKE_REJECT;

	(void)state;
	struct fake_store *f = fake_store_start(url, always, &a);
	assert_int_equal(bus_dial(&s, url, BUS_RECVMAX_DEFAULT), 0);
	assert_int_equal(bus_call_ack(s, batch_env(4), &ack, 1000, 10000, &stop_flag), CS_EREJECTED);
	assert_non_null(ack);
	assert_string_equal(ack->ack->error, "fake: value out of range");
	bus_free(ack);
	assert_int_equal(fake_store_count(f), 1);
	bus_close(s);
	fake_store_stop(f);
}

/* A peer that never answers: re-sent after each timeout, given up at the deadline. */
static void
test_silence_ends_at_the_deadline(void **state)
{
	nng_socket s;
	Crmsync__Envelope *ack = NULL;
	enum fake_answer a = FAKE_SILENT;

	(void)state;
	struct fake_store *f = fake_store_start(url, always, &a);
	assert_int_equal(bus_dial(&s, url, BUS_RECVMAX_DEFAULT), 0);
	int64_t t0 = bus_now_ms();
	assert_int_equal(bus_call_ack(s, batch_env(5), &ack, 100, 600, &stop_flag), CS_ETIMEDOUT);
	int64_t took = bus_now_ms() - t0;
	assert_null(ack);
	assert_true(took >= 600);
	assert_true(took < 10000);
	assert_true(fake_store_count(f) >= 2);	/* re-sent, not waited on once */
	bus_close(s);
	fake_store_stop(f);
}

static void *
stop_later(void *arg)
{
	struct timespec ts = { 0, 200 * 1000000L };

	(void)arg;
	nanosleep(&ts, NULL);
	atomic_store(&stop_flag, 1);
	return NULL;
}

/* A stop ends the retrying with CS_ECANCELED (no deadline given). */
static void
test_stop_cancels(void **state)
{
	nng_socket s;
	Crmsync__Envelope *ack = NULL;
	enum fake_answer a = FAKE_RETRY;
	pthread_t t;

	(void)state;
	struct fake_store *f = fake_store_start(url, always, &a);
	assert_int_equal(bus_dial(&s, url, BUS_RECVMAX_DEFAULT), 0);
	assert_int_equal(pthread_create(&t, NULL, stop_later, NULL), 0);
	int64_t t0 = bus_now_ms();
	assert_int_equal(bus_call_ack(s, batch_env(6), &ack, 1000, 0, &stop_flag), CS_ECANCELED);
	assert_true(bus_now_ms() - t0 < 10000);
	pthread_join(t, NULL);
	bus_free(ack);
	bus_close(s);
	fake_store_stop(f);
}

/* data_reply: a CursorValue answers a CursorGet; without it, it would not count as an ack. */
static void
test_data_reply(void **state)
{
	nng_socket s;
	nng_msg *m;
	Crmsync__Envelope req = CRMSYNC__ENVELOPE__INIT, *reply = NULL;
	Crmsync__CursorGet cg = CRMSYNC__CURSOR_GET__INIT;
	enum fake_answer a = FAKE_CURSOR;
	struct bus_retry r = { .timeout_ms = 500, .deadline_ms = 5000, .stop = &stop_flag,
	    .data_reply = 1 };

	(void)state;
	struct fake_store *f = fake_store_start(url, always, &a);
	assert_int_equal(bus_dial(&s, url, BUS_RECVMAX_DEFAULT), 0);
	cg.name = "leads.updated_at";
	req.body_case = CRMSYNC__ENVELOPE__BODY_CURSOR_GET;
	req.cursor_get = &cg;
	assert_int_equal(bus_pack(&req, &m), 0);
	assert_int_equal(bus_call_retry(s, m, &reply, &r), 0);
	assert_int_equal(reply->body_case, CRMSYNC__ENVELOPE__BODY_CURSOR_VALUE);
	assert_string_equal(reply->cursor_value->value, "1700000000");
	bus_free(reply);
	reply = NULL;
	/* The same answer without data_reply is not an acknowledgement: retried to the deadline. */
	r.data_reply = 0;
	r.deadline_ms = 400;
	assert_int_equal(bus_call_retry(s, m, &reply, &r), CS_ETIMEDOUT);
	bus_free(reply);
	nng_msg_free(m);
	bus_close(s);
	fake_store_stop(f);
}

/* Once stopped, a grace window still lets an answering peer take the message. */
static void
test_stop_grace(void **state)
{
	nng_socket s;
	nng_msg *m;
	Crmsync__Envelope *reply = NULL;
	int64_t seen = 0;
	struct bus_retry r = { .timeout_ms = 500, .deadline_ms = 0, .stop = &stop_flag,
	    .grace_ms = 2000, .stop_seen_ms = &seen };

	(void)state;
	struct fake_store *f = fake_store_start(url, retry_twice, NULL);
	assert_int_equal(bus_dial(&s, url, BUS_RECVMAX_DEFAULT), 0);
	atomic_store(&stop_flag, 1);
	assert_int_equal(bus_pack(batch_env(8), &m), 0);
	assert_int_equal(bus_call_retry(s, m, &reply, &r), 0);	/* delivered within the grace */
	assert_int_equal(reply->ack->status, CRMSYNC__ACK_STATUS__ACK_OK);
	assert_true(seen > 0);
	bus_free(reply);
	reply = NULL;
	nng_msg_free(m);
	/* A peer that keeps saying RETRY: given up once the grace (shared via seen) is over. */
	enum fake_answer a = FAKE_RETRY;
	fake_store_set(f, always, &a);
	r.grace_ms = 300;
	seen = bus_now_ms();
	assert_int_equal(bus_pack(batch_env(9), &m), 0);
	int64_t t0 = bus_now_ms();
	assert_int_equal(bus_call_retry(s, m, &reply, &r), CS_ECANCELED);
	assert_true(bus_now_ms() - t0 < 5000);
	bus_free(reply);
	nng_msg_free(m);
	bus_close(s);
	fake_store_stop(f);
}

/* Receiving: a timeout, then bytes that are no Envelope - CS_EPROTO, the bytes kept. */
static void
test_recv_timeout_and_garbage(void **state)
{
	nng_socket rep, req;
	nng_msg *m = NULL, *raw;
	Crmsync__Envelope *env = NULL;
	static const unsigned char junk[] = { 0xff, 0xff, 0xff, 0x0f, 0x01 };

	(void)state;
	assert_int_equal(bus_listen(&rep, url, BUS_RECVMAX_DEFAULT), 0);
	assert_int_equal(bus_recv(rep, &env, 50), CS_ETIMEDOUT);
	assert_int_equal(nng_req0_open(&req), 0);
	assert_int_equal(nng_dial(req, url, NULL, 0), 0);
	assert_int_equal(nng_msg_alloc(&raw, 0), 0);
	assert_int_equal(nng_msg_append(raw, junk, sizeof(junk)), 0);
	assert_int_equal(nng_sendmsg(req, raw, 0), 0);
	assert_int_equal(bus_recv_msg(rep, &m, &env, 2000), CS_EPROTO);
	assert_null(env);
	assert_non_null(m);
	assert_int_equal(nng_msg_len(m), sizeof(junk));
	assert_memory_equal(nng_msg_body(m), junk, sizeof(junk));
	nng_msg_free(m);
	/* The receiver still answers, with a rejection the sender can read. */
	assert_int_equal(bus_reply_ack(rep, CRMSYNC__ACK_STATUS__ACK_REJECTED, "undecodable", 0, 0, 0, 0), 0);
	nng_msg *back;
	assert_int_equal(nng_recvmsg(req, &back, 0), 0);
	Crmsync__Envelope *a = crmsync__envelope__unpack(NULL, nng_msg_len(back), nng_msg_body(back));
	assert_non_null(a);
	assert_int_equal(a->ack->status, CRMSYNC__ACK_STATUS__ACK_REJECTED);
	crmsync__envelope__free_unpacked(a, NULL);
	nng_msg_free(back);
	nng_close(req);
	bus_close(rep);
}

/* A message over the receiver's recvmax never arrives (and costs the receiver nothing). */
static void
test_size_bound(void **state)
{
	nng_socket rep, req;
	Crmsync__Envelope *env = NULL;
	static char big[8192];

	(void)state;
	snprintf(url, sizeof(url), "ipc:///tmp/cs-bus-test-%d-%d.sock", (int)getpid(), ++url_seq);
	assert_int_equal(bus_listen(&rep, url, 1024), 0);
	assert_int_equal(bus_dial(&req, url, BUS_RECVMAX_DEFAULT), 0);
	memset(big, 'x', sizeof(big) - 1);
	Crmsync__Envelope *e = batch_env(10);
	e->batch->entity = big;
	assert_int_equal(bus_send(req, e), 0);
	assert_int_equal(bus_recv(rep, &env, 300), CS_ETIMEDOUT);
	assert_null(env);
	bus_close(req);
	bus_close(rep);
	unlink(url + strlen("ipc://"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_round_trip, setup),
		cmocka_unit_test_setup(test_ack_retries_until_ok, setup),
		cmocka_unit_test_setup(test_rejected_is_final, setup),
		cmocka_unit_test_setup(test_silence_ends_at_the_deadline, setup),
		cmocka_unit_test_setup(test_stop_cancels, setup),
		cmocka_unit_test_setup(test_data_reply, setup),
		cmocka_unit_test_setup(test_stop_grace, setup),
		cmocka_unit_test_setup(test_recv_timeout_and_garbage, setup),
		cmocka_unit_test_setup(test_size_bound, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
