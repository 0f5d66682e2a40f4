/*
 * amo.c - amo-sync's service state (see amo.h): its counters, the API state and the last
 * error health reports, and the worker's wake-up. Every other file reports through here.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "amo.h"
#include "log.h"
#include "webhook.h"

static const struct stat_counter amo_stat_defs[AS__N] = {
	[AS_REQUESTS]		= { "api_requests", "HTTP requests made to amoCRM", 0, 0 },
	[AS_HTTP_429]		= { "api_429", "429 Too Many Requests answers", 0, 0 },
	[AS_HTTP_401]		= { "api_401", "401 answers (token refused)", 0, 0 },
	[AS_HTTP_5XX]		= { "api_5xx", "5xx answers", 0, 0 },
	[AS_NET_ERRORS]		= { "api_net_errors", "requests failed in transport", 0, 0 },
	[AS_ROWS]		= { "rows_sent", "rows committed by the store", 0, 0 },
	[AS_BATCHES]		= { "batches_sent", "record batches committed", 0, 0 },
	[AS_DELETES]		= { "deletes_sent", "soft deletes committed", 0, 0 },
	[AS_BAD_ROWS]		= { "rows_skipped", "rows that could not be read (dead-lettered with their batch)", 0, 0 },
	[AS_REJECTED]		= { "batches_rejected", "batches the store dead-lettered", 0, 0 },
	[AS_HOOK_DELIVERIES]	= { "hook_deliveries", "hook deliveries received", 0, 0 },
	[AS_HOOK_EVENTS]	= { "hook_events", "hook events received", 0, 0 },
	[AS_HOOK_FETCHES]	= { "hook_fetches", "list requests made for hook tasks", 0, 0 },
	[AS_QUEUE_DEPTH]	= { "queue_depth", "hook task keys pending or in flight", 1, 0 },
	[AS_DONE_SEQ]		= { "done_seq", "highest hook delivery fully processed", 1, 0 },
	[AS_RUNS_OK]		= { "runs_complete", "sync runs completed", 0, 0 },
	[AS_RUNS_FAILED]	= { "runs_failed", "sync runs failed or partial", 0, 0 },
	[AS_TOKEN_REFRESHES]	= { "token_rotations", "OAuth token pairs obtained and saved", 0, 0 },
	[AS_API_STATE]		= { "api_state", "0 ok, 1 token revoked, 2 account banned", 1, 0 },
	[AS_TOKEN_FAILURES]	= { "token_refresh_failures", "token requests that failed (unreachable, refused, unsaved)", 0, 0 },
	[AS_WEBHOOK_OK]		= { "webhook_ok", "amoCRM webhook to CS_AMO_WEBHOOK_URL: 1 subscribed and enabled, "
				    "0 missing or disabled, -1 not checked (off, or the check failed)", 1, 0 },
	[AS_WEBHOOK_CHECKED]	= { "webhook_checked_timestamp_seconds", "unix time of the last completed "
				    "webhook subscription check (0 = none yet)", 1, 0 },
	[AS_WEBHOOK_REPAIRS]	= { "webhook_repairs", "webhook subscriptions registered, re-enabled or "
				    "completed (CS_AMO_WEBHOOK_REPAIR)", 0, 0 },
};

void
amo_init(struct amo *a)
{
	for (size_t i = 0; i < AS__N; i++) {
		a->stats[i].name = amo_stat_defs[i].name;
		a->stats[i].help = amo_stat_defs[i].help;
		a->stats[i].gauge = amo_stat_defs[i].gauge;
		stat_set(&a->stats[i], 0);
	}
	atomic_store(&a->api_state, API_OK);
	atomic_store(&a->webhook_state, WH_OFF);
	stat_set(&a->stats[AS_WEBHOOK_OK], -1);
	pthread_mutex_init(&a->mtx, NULL);
	pthread_cond_init(&a->wake, NULL);
}

void
amo_destroy(struct amo *a)
{
	pthread_cond_destroy(&a->wake);
	pthread_mutex_destroy(&a->mtx);
}

void
amo_set_error(struct amo *a, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&a->mtx);
	va_start(ap, fmt);
	vsnprintf(a->last_error, sizeof(a->last_error), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&a->mtx);
}

void
amo_set_api_state(struct amo *a, enum api_state st)
{
	atomic_store(&a->api_state, (int)st);
}

enum api_state
amo_api_state(struct amo *a)
{
	return (enum api_state)atomic_load(&a->api_state);
}

void
amo_wake(struct amo *a)
{
	pthread_mutex_lock(&a->mtx);
	pthread_cond_broadcast(&a->wake);
	pthread_mutex_unlock(&a->mtx);
}

void
amo_wait(struct amo *a, int64_t ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&a->mtx);
	if (!a->stop && !atomic_load(&a->want_full) && !atomic_load(&a->want_incremental))
		pthread_cond_timedwait(&a->wake, &a->mtx, &ts);
	pthread_mutex_unlock(&a->mtx);
}

int
amo_status(void *arg, char *buf, size_t len)
{
	struct amo *a = arg;
	enum api_state st = amo_api_state(a);
	char wh[sizeof(a->webhook_note)];
	int wh_bad = webhook_status(a, wh, sizeof(wh));

	amo_gauge(a, AS_API_STATE, st);
	pthread_mutex_lock(&a->mtx);
	switch (st) {
	case API_REVOKED:
		snprintf(buf, len, "degraded: amoCRM token revoked or missing, syncing stopped (%s); "
		    "re-authorise with --auth-code", a->last_error);
		break;
	case API_BANNED:
		snprintf(buf, len, "degraded: amoCRM blocked the account's API access (403), syncing stopped");
		break;
	default:
		/* amoCRM no longer sending hooks is a failure an operator must see */
		if (wh_bad)
			snprintf(buf, len, "degraded: %s", wh);
		else
			snprintf(buf, len, "ok%s%s", wh[0] ? "; " : "", wh);
		break;
	}
	pthread_mutex_unlock(&a->mtx);
	return st == API_OK && !wh_bad;
}
