/*
 * health_test.c - the health responder every service runs and the probe crmsyncctl and the
 * container checks use: what a probe gets back (service, version, stats, the status line
 * and whether it is healthy), a service that is down, a stopped responder, and requests
 * that are not health requests.
 */
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
#include "errors.h"
#include "health.h"
#include "version.h"

static char url[128];
static int url_seq;

/* What the status callback answers, changed by the tests while the responder runs. */
static volatile _Atomic int healthy = 1;

static int
status_cb(void *arg, char *buf, size_t len)
{
	(void)arg;
	if (atomic_load(&healthy)) {
		snprintf(buf, len, "ok; journal 0 entries");
		return 1;
	}
	snprintf(buf, len, "refusing hooks: journal full");
	return 0;
}

static int
setup(void **state)
{
	(void)state;
	/* ipc, as the services use it: a real socket file, so "nobody listens" is real too. */
	snprintf(url, sizeof(url), "ipc:///tmp/cs-health-test-%d-%d.sock", (int)getpid(), ++url_seq);
	atomic_store(&healthy, 1);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	unlink(url + strlen("ipc://"));
	return 0;
}

static int64_t
stat_of(const Crmsync__HealthResponse *r, const char *name)
{
	for (size_t i = 0; i < r->n_stats; i++)
		if (strcmp(r->stats[i]->name, name) == 0)
			return r->stats[i]->value;
	fail_msg("stat %s missing", name);
	return -1;
}

static void
test_probe_reads_what_the_service_reports(void **state)
{
	struct stat_counter stats[2] = { { .name = "hooks_received" }, { .name = "journal_backlog" } };
	struct health *h;
	Crmsync__Envelope *env;

	(void)state;
	stat_add(&stats[0], 41);
	stat_set(&stats[1], 7);
	assert_int_equal(health_start(&h, url, "hook-gateway", stats, 2, status_cb, NULL), 0);
	assert_int_equal(health_probe(url, 2000, &env), 0);
	Crmsync__HealthResponse *r = env->health_response;
	assert_string_equal(r->service, "hook-gateway");
	assert_string_equal(r->version, CRMSYNC_VERSION);
	assert_true(r->ok);
	assert_string_equal(r->status, "ok; journal 0 entries");
	assert_int_equal(stat_of(r, "hooks_received"), 41);
	assert_int_equal(stat_of(r, "journal_backlog"), 7);
	assert_true(r->uptime_s >= 0 && r->uptime_s < 60);
	bus_free(env);

	/* Values are read at each probe, not at start. */
	stat_add(&stats[0], 1);
	atomic_store(&healthy, 0);
	assert_int_equal(health_probe(url, 2000, &env), 0);
	assert_false(env->health_response->ok);
	assert_string_equal(env->health_response->status, "refusing hooks: journal full");
	assert_int_equal(stat_of(env->health_response, "hooks_received"), 42);
	bus_free(env);
	health_stop(h);
}

/* No callback: healthy, status "ok". */
static void
test_no_status_callback_is_ok(void **state)
{
	struct health *h;
	Crmsync__Envelope *env;

	(void)state;
	assert_int_equal(health_start(&h, url, "store", NULL, 0, NULL, NULL), 0);
	assert_int_equal(health_probe(url, 2000, &env), 0);
	assert_true(env->health_response->ok);
	assert_string_equal(env->health_response->status, "ok");
	assert_int_equal(env->health_response->n_stats, 0);
	bus_free(env);
	health_stop(h);
}

/* Nobody listening is "down" (CS_ECLOSED), at once - also after the responder stopped. */
static void
test_down_and_stopped_are_closed(void **state)
{
	struct health *h;
	Crmsync__Envelope *env = NULL;

	(void)state;
	int64_t t0 = bus_now_ms();
	assert_int_equal(health_probe(url, 5000, &env), CS_ECLOSED);
	assert_null(env);
	assert_true(bus_now_ms() - t0 < 4000);	/* refused, not timed out */
	assert_int_equal(health_start(&h, url, "amo-sync", NULL, 0, NULL, NULL), 0);
	health_stop(h);
	assert_int_equal(health_probe(url, 5000, &env), CS_ECLOSED);
	assert_null(env);
}

/* Two services cannot share one health address. */
static void
test_address_in_use(void **state)
{
	struct health *a, *b = NULL;

	(void)state;
	assert_int_equal(health_start(&a, url, "store", NULL, 0, NULL, NULL), 0);
	assert_int_not_equal(health_start(&b, url, "store", NULL, 0, NULL, NULL), 0);
	assert_null(b);
	health_stop(a);
	health_stop(NULL);	/* harmless */
}

/* Anything else sent to the health socket is rejected, and the responder keeps serving. */
static void
test_other_requests_rejected(void **state)
{
	struct health *h;
	nng_socket s;
	Crmsync__Envelope req = CRMSYNC__ENVELOPE__INIT, *reply = NULL, *env = NULL;
	Crmsync__CursorGet cg = CRMSYNC__CURSOR_GET__INIT;

	(void)state;
	assert_int_equal(health_start(&h, url, "store", NULL, 0, NULL, NULL), 0);
	assert_int_equal(bus_dial(&s, url, BUS_RECVMAX_DEFAULT), 0);
	cg.name = "leads.updated_at";
	req.body_case = CRMSYNC__ENVELOPE__BODY_CURSOR_GET;
	req.cursor_get = &cg;
	assert_int_equal(bus_call(s, &req, &reply, 2000), 0);
	assert_int_equal(reply->body_case, CRMSYNC__ENVELOPE__BODY_ACK);
	assert_int_equal(reply->ack->status, CRMSYNC__ACK_STATUS__ACK_REJECTED);
	assert_non_null(strstr(reply->ack->error, "HealthRequest"));
	bus_free(reply);
	bus_close(s);
	assert_int_equal(health_probe(url, 2000, &env), 0);
	bus_free(env);
	health_stop(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_probe_reads_what_the_service_reports, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_status_callback_is_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_down_and_stopped_are_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_address_in_use, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_requests_rejected, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
