/*
 * storecli_test.c - the store client both sync services use, against an in-process fake
 * store (fake_store.c): what RunBegin, RecordBatch, deletes, progress, cursors and RunEnd
 * carry, the order the store sees them in, rejections counted and explained, and a run
 * end that is still recorded after a stop dropped the batches queued before it, and marks
 * (one part's batches answered while others' still wait: retried, or dropped on a stop).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "bus.h"
#include "catalog.h"
#include "errors.h"
#include "fake_store.h"
#include "storecli.h"

static volatile _Atomic int stop_flag;
static char url[64];
static int url_seq;
static struct stat_counter st_batches, st_rows, st_rejected, st_deletes;
static struct fake_store *fs;
static nng_socket sock;
static struct storecli *sc;

static enum fake_answer
decide(void *arg, const Crmsync__Envelope *env, int attempt)
{
	(void)arg;
	(void)attempt;
	if (env->body_case == CRMSYNC__ENVELOPE__BODY_CURSOR_GET)
		return strcmp(env->cursor_get->name, "missing") == 0 ? FAKE_REJECT : FAKE_CURSOR;
	if (env->body_case == CRMSYNC__ENVELOPE__BODY_BATCH && strcmp(env->batch->entity, "contacts") == 0)
		return FAKE_REJECT;
	return FAKE_OK;
}

static enum fake_answer
silent(void *arg, const Crmsync__Envelope *env, int attempt)
{
	(void)arg;
	(void)env;
	(void)attempt;
	return FAKE_SILENT;
}

static int
setup(void **state)
{
	const struct storecli_opts o = { .crm = CAT_AMO, .timeout_ms = 2000, .grace_ms = 0,
	    .depth = 2, .stop = &stop_flag, .batches = &st_batches, .rows = &st_rows,
	    .rejected = &st_rejected, .deletes = &st_deletes };

	(void)state;
	stop_flag = 0;
	stat_set(&st_batches, 0);
	stat_set(&st_rows, 0);
	stat_set(&st_rejected, 0);
	stat_set(&st_deletes, 0);
	snprintf(url, sizeof(url), "inproc://storecli_test_%d", ++url_seq);
	if ((fs = fake_store_start(url, decide, NULL)) == NULL)
		return -1;
	if (bus_dial(&sock, url, BUS_RECVMAX_DEFAULT) != 0)
		return -1;
	return storecli_open(&sc, sock, &o) == 0 ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	storecli_close(sc);
	bus_close(sock);
	fake_store_stop(fs);
	return 0;
}

/* A batch with n records of one text value each. */
static void
make_batch(Crmsync__RecordBatch *b, Crmsync__Record *recs, Crmsync__Record **rp, char **vals,
    const char *entity, size_t n)
{
	crmsync__record_batch__init(b);
	b->entity = (char *)entity;
	b->run_id = FAKE_RUN_ID;
	for (size_t i = 0; i < n; i++) {
		crmsync__record__init(&recs[i]);
		recs[i].n_values = 1;
		recs[i].values = &vals[i];
		rp[i] = &recs[i];
	}
	b->records = rp;
	b->n_records = n;
}

static void
test_storecli_run_and_batches_reach_the_store_in_order(void **state)
{
	const char *const names[] = { "leads", "contacts" };
	Crmsync__RecordBatch b;
	Crmsync__Record recs[3], *rp[3];
	Crmsync__Cursor cur = CRMSYNC__CURSOR__INIT;
	char *vals[3] = { "1", "2", "3" };
	const struct storecli_entity res[] = { { "leads", 1, 3, 1, 0, 0, 0 }, { "contacts", 0, 0, 0, 0, 0, 0 } };
	int64_t run_id;

	(void)state;
	assert_int_equal(storecli_run_begin(sc, CRMSYNC__SYNC_KIND__SYNC_FULL, "cli", names, 2,
	    &run_id, NULL, NULL, 0), 0);
	assert_int_equal(run_id, FAKE_RUN_ID);
	make_batch(&b, recs, rp, vals, "leads", 3);
	cur.name = "leads.updated_at";
	cur.value = "1700000000";
	b.cursor_opt_case = CRMSYNC__RECORD_BATCH__CURSOR_OPT_CURSOR;
	b.cursor = &cur;
	assert_int_equal(storecli_batch(sc, &b), 0);
	make_batch(&b, recs, rp, vals, "leads", 2);
	assert_int_equal(storecli_batch(sc, &b), 0);
	storecli_progress(sc, run_id, "leads", 5, 2);
	assert_int_equal(storecli_run_end(sc, run_id, CRMSYNC__RUN_STATUS__RUN_COMPLETE, NULL, res, 2), 0);

	assert_int_equal(fake_store_count(fs), 5);
	struct fake_seen s0 = fake_store_seen(fs, 0), s1 = fake_store_seen(fs, 1),
	    s2 = fake_store_seen(fs, 2), s3 = fake_store_seen(fs, 3), s4 = fake_store_seen(fs, 4);
	assert_int_equal(s0.body, CRMSYNC__ENVELOPE__BODY_RUN_BEGIN);
	assert_int_equal(s0.env->run_begin->crm, CRMSYNC__CRM__CRM_AMO);
	assert_int_equal(s0.env->run_begin->kind, CRMSYNC__SYNC_KIND__SYNC_FULL);
	assert_string_equal(s0.env->run_begin->trigger, "cli");
	assert_int_equal(s0.env->run_begin->n_entities, 2);
	assert_string_equal(s0.env->run_begin->entities[1], "contacts");
	/* Batches: the client's crm, increasing ids, children replaced, the cursor with its rows. */
	assert_int_equal(s1.body, CRMSYNC__ENVELOPE__BODY_BATCH);
	assert_int_equal(s1.env->batch->crm, CRMSYNC__CRM__CRM_AMO);
	assert_int_equal(s1.batch_id, 1);
	assert_int_equal(s1.n, 3);
	assert_true(s1.env->batch->replace_children);
	assert_int_equal(s1.env->batch->cursor_opt_case, CRMSYNC__RECORD_BATCH__CURSOR_OPT_CURSOR);
	assert_string_equal(s1.env->batch->cursor->value, "1700000000");
	assert_int_equal(s2.batch_id, 2);
	assert_int_equal(s2.env->batch->cursor_opt_case, CRMSYNC__RECORD_BATCH__CURSOR_OPT__NOT_SET);
	assert_int_equal(s3.body, CRMSYNC__ENVELOPE__BODY_RUN_PROGRESS);
	assert_int_equal(s3.env->run_progress->rows, 5);
	assert_int_equal(s4.body, CRMSYNC__ENVELOPE__BODY_RUN_END);
	assert_int_equal(s4.env->run_end->status, CRMSYNC__RUN_STATUS__RUN_COMPLETE);
	assert_int_equal(s4.env->run_end->n_entities, 2);
	assert_true(s4.env->run_end->entities[0]->complete);
	assert_int_equal(s4.env->run_end->entities[0]->rows, 3);
	assert_false(s4.env->run_end->entities[1]->complete);
	assert_int_equal(stat_get(&st_batches), 2);
	assert_int_equal(stat_get(&st_rows), 5);
	assert_int_equal(storecli_rejected(sc, NULL, 0), 0);
}

/* A rejected batch: counted, explained once, and the batches after it still go. */
static void
test_storecli_rejection_is_counted_and_explained(void **state)
{
	Crmsync__RecordBatch b;
	Crmsync__Record recs[2], *rp[2];
	char *vals[2] = { "1", "2" }, why[256];

	(void)state;
	make_batch(&b, recs, rp, vals, "leads", 2);
	assert_int_equal(storecli_batch(sc, &b), 0);
	make_batch(&b, recs, rp, vals, "contacts", 1);
	assert_int_equal(storecli_batch(sc, &b), 0);
	make_batch(&b, recs, rp, vals, "leads", 1);
	assert_int_equal(storecli_batch(sc, &b), 0);
	assert_int_equal(storecli_drain(sc), 0);
	assert_int_equal(storecli_rejected(sc, why, sizeof(why)), 1);
	assert_string_equal(why, "contacts: the store rejected batch 2: fake: value out of range");
	assert_int_equal(storecli_rejected(sc, why, sizeof(why)), 1);
	assert_string_equal(why, "");
	assert_int_equal(stat_get(&st_rejected), 1);
	assert_int_equal(stat_get(&st_batches), 2);
	assert_int_equal(stat_get(&st_rows), 3);
	/* Waiting for a rejected batch says so. */
	make_batch(&b, recs, rp, vals, "contacts", 1);
	assert_int_equal(storecli_batch_wait(sc, &b), CS_EREJECTED);
}

/* Deletes: one record per key, deleted, versioned; only key columns carry values. */
static void
test_storecli_deletes_carry_only_keys(void **state)
{
	const struct cat_entity *leads = catalog_find(CAT_AMO, "leads");
	char *keys[] = { "11", "12" };
	const int64_t ver[] = { 1700000000000000LL, 1700000001000000LL };

	(void)state;
	assert_non_null(leads);
	assert_int_equal(storecli_deletes(sc, leads, NULL, keys, ver, 2, 0), 0);
	assert_int_equal(fake_store_count(fs), 1);
	struct fake_seen s = fake_store_seen(fs, 0);
	const Crmsync__RecordBatch *b = s.env->batch;
	assert_string_equal(b->entity, "leads");
	assert_int_equal(b->n_records, 2);
	for (size_t i = 0; i < 2; i++) {
		const Crmsync__Record *r = b->records[i];
		assert_true(r->deleted);
		assert_int_equal(r->source_updated_at_us, ver[i]);
		assert_int_equal(r->n_values, leads->ncols);
		for (size_t c = 0; c < leads->ncols; c++) {
			int null = (r->null_mask.data[c / 8] >> (c % 8)) & 1;
			if (leads->cols[c].flags & CF_KEY) {
				assert_false(null);
				assert_string_equal(r->values[c], keys[i]);
			} else {
				assert_true(null);
			}
		}
	}
	assert_int_equal(stat_get(&st_deletes), 2);
	assert_int_equal(storecli_deletes(sc, leads, NULL, keys, NULL, 0, 0), 0);	/* nothing to send */
	assert_int_equal(fake_store_count(fs), 1);
}

/* A cursor comes back as data; a refused cursor request is an error. */
static void
test_storecli_cursor_get(void **state)
{
	char v[32];
	int found;

	(void)state;
	assert_int_equal(storecli_cursor_get(sc, "leads.updated_at", v, sizeof(v), &found), 0);
	assert_true(found);
	assert_string_equal(v, "1700000000");
	assert_string_equal(fake_store_seen(fs, 0).entity, "leads.updated_at");
	assert_int_equal(fake_store_seen(fs, 0).env->cursor_get->crm, CRMSYNC__CRM__CRM_AMO);
	assert_int_equal(storecli_cursor_get(sc, "missing", v, sizeof(v), &found), CS_EREJECTED);
	assert_false(found);
	assert_string_equal(v, "");
}

/* Stopping: batches queued behind a silent store are dropped, the run's end still goes. */
static void
test_storecli_run_end_is_recorded_after_a_stop(void **state)
{
	Crmsync__RecordBatch b;
	Crmsync__Record recs[1], *rp[1];
	char *vals[1] = { "1" };
	const struct storecli_entity res[] = { { "leads", 0, 1, 1, 0, 0, 0 } };

	(void)state;
	make_batch(&b, recs, rp, vals, "leads", 1);
	/* The store takes the batch but never answers: it is in flight when the stop comes. */
	fake_store_set(fs, silent, NULL);
	assert_int_equal(storecli_batch(sc, &b), 0);
	assert_true(fake_store_wait(fs, 1, 5000) >= 1);
	stop_flag = 1;
	fake_store_set(fs, decide, NULL);
	assert_int_equal(storecli_drain(sc), CS_ECANCELED);
	assert_int_equal(storecli_run_end(sc, 7, CRMSYNC__RUN_STATUS__RUN_PARTIAL, "stopped", res, 1), 0);
	size_t n = fake_store_count(fs);
	struct fake_seen last = fake_store_seen(fs, n - 1);
	assert_int_equal(last.body, CRMSYNC__ENVELOPE__BODY_RUN_END);
	assert_int_equal(last.env->run_end->status, CRMSYNC__RUN_STATUS__RUN_PARTIAL);
	assert_string_equal(last.env->run_end->error, "stopped");
	assert_int_equal(stat_get(&st_batches), 0);
}

/* A RunBegin the store never answered (deadline) does not keep the next run from starting. */
static void
test_storecli_failed_run_begin_does_not_block_the_next(void **state)
{
	const struct storecli_opts o = { .crm = CAT_HOLLIHOP, .timeout_ms = 100, .deadline_ms = 300,
	    .depth = 2, .stop = &stop_flag };
	const char *const names[] = { "students" };
	struct storecli *c;
	char err[256] = "";
	int64_t run_id;

	(void)state;
	assert_int_equal(storecli_open(&c, sock, &o), 0);
	fake_store_set(fs, silent, NULL);
	assert_int_equal(storecli_run_begin(c, CRMSYNC__SYNC_KIND__SYNC_FULL, "schedule", names, 1,
	    &run_id, NULL, err, sizeof(err)), CS_ETIMEDOUT);
	assert_string_equal(err, "the store did not open the run: timed out");
	fake_store_set(fs, decide, NULL);
	assert_int_equal(storecli_run_begin(c, CRMSYNC__SYNC_KIND__SYNC_FULL, "schedule", names, 1,
	    &run_id, NULL, err, sizeof(err)), 0);
	assert_int_equal(run_id, FAKE_RUN_ID);
	storecli_close(c);
}

/* Marks: the store holds "contacts" batches with RETRY while hold is set. */
static volatile _Atomic int hold;
static _Atomic int wakes, woke_reached;
static uint64_t wake_mark;

static enum fake_answer
hold_contacts(void *arg, const Crmsync__Envelope *env, int attempt)
{
	(void)arg;
	(void)attempt;
	if (env->body_case == CRMSYNC__ENVELOPE__BODY_BATCH && strcmp(env->batch->entity, "contacts") == 0)
		return hold ? FAKE_RETRY : FAKE_OK;
	return hold == 2 ? FAKE_SILENT : FAKE_OK;
}

/* The wake-up: what a poller woken by it would see of wake_mark. */
static void
on_wake(void *arg)
{
	struct storecli **c = arg;

	atomic_fetch_add(&wakes, 1);
	if (*c != NULL && wake_mark > 0)
		atomic_store(&woke_reached, storecli_reached(*c, wake_mark, NULL));
}

static struct storecli *
open_waking(struct storecli **c, int64_t grace_ms)
{
	const struct storecli_opts o = { .crm = CAT_HOLLIHOP, .timeout_ms = 2000, .grace_ms = grace_ms,
	    .depth = 4, .stop = &stop_flag, .batches = &st_batches, .rejected = &st_rejected,
	    .wake = on_wake, .wake_arg = c };

	*c = NULL;
	wakes = woke_reached = 0;
	wake_mark = 0;
	assert_int_equal(storecli_open(c, sock, &o), 0);
	return *c;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Poll mark for up to ms; returns what storecli_reached said last. */
static int
reached_within(struct storecli *c, uint64_t mark, int *err, int ms)
{
	int64_t t0 = bus_now_ms();
	int r;

	while (!(r = storecli_reached(c, mark, err)) && bus_now_ms() - t0 < ms)
		sleep_ms(5);
	return r;
}

/*
 * One entity's mark is reached once its batches are answered, while a batch queued after
 * it is still retried (the store answers RETRY); the later mark only once that one is
 * answered. Every answer wakes the poller after it counts.
 */
static void
test_storecli_mark_reached_while_later_batches_retry(void **state)
{
	Crmsync__RecordBatch b;
	Crmsync__Record recs[2], *rp[2];
	char *vals[2] = { "1", "2" };
	struct storecli *c;
	int err = -1;

	(void)state;
	hold = 1;
	fake_store_set(fs, hold_contacts, NULL);
	open_waking(&c, 0);
	assert_true(storecli_reached(c, storecli_mark(c), &err));	/* nothing queued */
	assert_int_equal(err, 0);
	make_batch(&b, recs, rp, vals, "leads", 2);
	assert_int_equal(storecli_batch(c, &b), 0);
	uint64_t m1 = storecli_mark(c);
	make_batch(&b, recs, rp, vals, "contacts", 1);
	assert_int_equal(storecli_batch(c, &b), 0);
	uint64_t m2 = storecli_mark(c);
	assert_true(m2 > m1);
	wake_mark = m2;
	assert_true(reached_within(c, m1, &err, 5000));
	assert_int_equal(err, 0);
	assert_int_equal(stat_get(&st_batches), 1);
	/* contacts is retried (seen more than once), and its mark waits for it. */
	for (int i = 0; i < 200 && fake_store_count(fs) < 3; i++)
		sleep_ms(10);
	assert_true(fake_store_count(fs) >= 3);
	assert_false(storecli_reached(c, m2, &err));
	assert_false(woke_reached);
	hold = 0;
	assert_true(reached_within(c, m2, &err, 10000));
	assert_int_equal(err, 0);
	assert_int_equal(stat_get(&st_batches), 2);
	assert_true(woke_reached);	/* the last wake-up already saw it */
	assert_true(wakes >= 2);
	assert_true(storecli_reached(c, m1, NULL));
	storecli_close(c);
}

/*
 * Shutdown with batches unsent: one in flight (the store silent), two queued behind it.
 * Once stopped (no grace) the mark is reached with the stop as the error, nothing counted
 * committed, so an entity waiting for it cannot count as complete.
 */
static void
test_storecli_mark_reached_on_stop_with_batches_unsent(void **state)
{
	Crmsync__RecordBatch b;
	Crmsync__Record recs[1], *rp[1];
	char *vals[1] = { "1" };
	struct storecli *c;
	int err = 0;

	(void)state;
	hold = 2;
	fake_store_set(fs, hold_contacts, NULL);
	open_waking(&c, 0);
	make_batch(&b, recs, rp, vals, "leads", 1);
	assert_int_equal(storecli_batch(c, &b), 0);
	assert_true(fake_store_wait(fs, 1, 5000) >= 1);
	make_batch(&b, recs, rp, vals, "contacts", 1);
	assert_int_equal(storecli_batch(c, &b), 0);
	make_batch(&b, recs, rp, vals, "leads", 1);
	assert_int_equal(storecli_batch(c, &b), 0);
	uint64_t m = storecli_mark(c);
	wake_mark = m;
	sleep_ms(50);
	assert_false(storecli_reached(c, m, &err));
	stop_flag = 1;
	assert_true(reached_within(c, m, &err, 10000));
	assert_int_equal(err, CS_ECANCELED);
	assert_int_equal(stat_get(&st_batches), 0);
	assert_true(woke_reached);
	assert_int_equal(wakes, 3);
	/* The queue refuses more until the error is cleared (as storecli_drain reports it). */
	assert_int_equal(storecli_drain(c), CS_ECANCELED);
	storecli_close(c);
	hold = 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_storecli_run_and_batches_reach_the_store_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_storecli_rejection_is_counted_and_explained, setup, teardown),
		cmocka_unit_test_setup_teardown(test_storecli_deletes_carry_only_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_storecli_cursor_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_storecli_run_end_is_recorded_after_a_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_storecli_failed_run_begin_does_not_block_the_next, setup, teardown),
		cmocka_unit_test_setup_teardown(test_storecli_mark_reached_while_later_batches_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_storecli_mark_reached_on_stop_with_batches_unsent, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
