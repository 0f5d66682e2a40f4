/*
 * api.c - every HTTP request amo-sync makes, under one token bucket.
 *
 * amoCRM allows 7 requests/s per integration and blocks the account (403 on everything)
 * after repeated violations, so no request bypasses rl_acquire(), retries included.
 * Status policy (shared/api/amocrm.md §3): 2xx ok, 204 = empty; 401 -> one refresh and
 * one retry, then the token counts as revoked; 429 -> everyone pauses (Retry-After or
 * backoff); 403 -> if the account endpoint also answers 403 the account is banned: stop and
 * alert, never retry; 5xx and network errors -> jittered exponential backoff, bounded.
 * Worker thread only (one struct http).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "amo.h"
#include "buf.h"
#include "errors.h"
#include "log.h"

#define API_URL_MAX	(64u << 10)	/* 250 ids in filter[id][] fit easily */
#define API_429_MAX	20		/* consecutive 429s before giving up on a request */

/* Sleep ms in short slices so a stop request is seen quickly. */
static int
api_sleep(struct amo *a, int64_t ms)
{
	while (ms > 0 && !a->stop) {
		int64_t s = ms > 100 ? 100 : ms;
		struct timespec ts = { 0, (long)s * 1000000L };
		nanosleep(&ts, NULL);
		ms -= s;
	}
	return a->stop ? CS_ECANCELED : 0;
}

/* One request under the rate limit, counted. */
static int
api_do(struct amo *a, const char *method, const char *url, const char *const *hdrs,
    const char *body, size_t len, struct http_response *resp)
{
	int rv;

	if ((rv = rl_acquire(&a->rl, &a->stop)) != 0) {
		memset(resp, 0, sizeof(*resp));
		buf_init(&resp->body, 1);
		return rv;
	}
	stat_add(&amo_stats[AS_REQUESTS], 1);
	rv = http_request(a->http, method, url, hdrs, body, len, resp);
	if (rv != 0)
		stat_add(&amo_stats[AS_NET_ERRORS], 1);
	else if (resp->status == 429)
		stat_add(&amo_stats[AS_HTTP_429], 1);
	else if (resp->status >= 500)
		stat_add(&amo_stats[AS_HTTP_5XX], 1);
	else if (resp->status == 401)
		stat_add(&amo_stats[AS_HTTP_401], 1);
	return rv;
}

static int
api_url(struct amo *a, const char *path, struct buf *u)
{
	buf_init(u, API_URL_MAX);
	if (buf_addstr(u, a->conf.base_url) != 0 || buf_addstr(u, path) != 0) {
		buf_free(u);
		return CS_ETOOBIG;
	}
	return 0;
}

/* A 403: a ban answers 403 everywhere, missing rights only on some endpoints. Ask the
 * account endpoint, which every token may read. 1 = banned. */
static int
api_is_banned(struct amo *a, const char *const *hdrs)
{
	struct http_response r;
	struct buf u;
	int banned = 0;

	if (api_url(a, "/api/v4/account", &u) != 0)
		return 1;
	if (api_do(a, "GET", u.data, hdrs, NULL, 0, &r) == 0)
		banned = r.status == 403;
	http_response_free(&r);
	buf_free(&u);
	return banned;
}

int
api_get(struct amo *a, const char *pq, struct http_response *resp)
{
	char token[4096] = "", auth[4200] = "";
	const char *hdrs[] = { auth, "Accept: application/hal+json, application/json", NULL };
	int attempt = 0, n429 = 0, refreshed = 0, rv;
	struct buf u;

	memset(resp, 0, sizeof(*resp));
	buf_init(&resp->body, 1);
	if ((rv = api_url(a, pq, &u)) != 0)
		return rv;
	for (;;) {
		if (a->stop) {
			rv = CS_ECANCELED;
			break;
		}
		switch (atomic_load(&a->state)) {
		case API_REVOKED:	rv = CS_EREVOKED; goto out;
		case API_BANNED:	rv = CS_EBANNED; goto out;
		default:		break;
		}
		if ((rv = oauth_token(a, token, sizeof(token))) != 0) {
			if (rv != CS_ENET && rv != CS_ERETRY)
				break;
			/* The token endpoint was unreachable: same backoff as any request. */
			if (++attempt > a->conf.retry_max)
				break;
			if ((rv = api_sleep(a, backoff_ms(attempt, 500, a->conf.backoff_max_ms))) != 0)
				break;
			continue;
		}
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		http_response_free(resp);
		rv = api_do(a, "GET", u.data, hdrs, NULL, 0, resp);
		if (rv == CS_ECANCELED)
			break;
		if (rv != 0) {
			log_warnx("api.net_error", "path=%s attempt=%d err=%s", lq(pq), attempt + 1,
			    lq(resp->error));
			if (rv == CS_ETOOBIG || ++attempt > a->conf.retry_max) {
				rv = rv == CS_ETOOBIG ? rv : CS_ENET;
				break;
			}
			if ((rv = api_sleep(a, backoff_ms(attempt, 500, a->conf.backoff_max_ms))) != 0)
				break;
			continue;
		}
		long st = resp->status;
		if (st >= 200 && st < 300) {
			log_debug("api.ok", "path=%s status=%ld bytes=%zu s=%.3f request_id=%s", lq(pq), st,
			    resp->body.len, resp->total_s, lq(resp->request_id));
			rv = 0;
			break;
		}
		if (st == 401) {
			if (refreshed) {
				log_warnx("api.unauthorized", "path=%s request_id=%s: 401 again after a "
				    "token refresh; treating the grant as revoked", lq(pq), lq(resp->request_id));
				atomic_store(&a->state, API_REVOKED);
				rv = CS_EREVOKED;
				break;
			}
			if ((rv = oauth_after_401(a, token)) != 0)
				break;
			refreshed = 1;
			continue;
		}
		if (st == 429) {
			int64_t ms = resp->retry_after_s > 0 ? resp->retry_after_s * 1000 :
			    backoff_ms(n429, 1000, a->conf.backoff_max_ms);
			log_warnx("api.rate_limited", "path=%s pause_ms=%lld retry_after=%lld n=%d",
			    lq(pq), (long long)ms, (long long)resp->retry_after_s, n429 + 1);
			rl_pause(&a->rl, ms);
			if (++n429 > API_429_MAX) {
				rv = CS_ERATELIMIT;
				break;
			}
			continue;
		}
		if (st == 403) {
			if (!api_is_banned(a, hdrs)) {
				log_warnx("api.forbidden", "path=%s request_id=%s: 403 for this endpoint only "
				    "(missing rights?)", lq(pq), lq(resp->request_id));
				rv = CS_EREMOTE;
				break;
			}
			atomic_store(&a->state, API_BANNED);
			log_warnx("api.banned", "path=%s request_id=%s: ACCOUNT API ACCESS BLOCKED (403 "
			    "everywhere). Syncing has stopped and will not retry: ask amoCRM support to "
			    "unblock, then restart or send a sync command", lq(pq), lq(resp->request_id));
			amo_set_error(a, "amoCRM answers 403: account API access blocked");
			rv = CS_EBANNED;
			break;
		}
		if (st == 404) {
			rv = CS_ENOENT;
			break;
		}
		if (st >= 500) {
			log_warnx("api.server_error", "path=%s status=%ld attempt=%d request_id=%s", lq(pq),
			    st, attempt + 1, lq(resp->request_id));
			if (++attempt > a->conf.retry_max) {
				rv = CS_EREMOTE;
				break;
			}
			if ((rv = api_sleep(a, backoff_ms(attempt, 500, a->conf.backoff_max_ms))) != 0)
				break;
			continue;
		}
		log_warnx("api.client_error", "path=%s status=%ld request_id=%s body=%s", lq(pq), st,
		    lq(resp->request_id), lqn(resp->body.data, resp->body.len));
		rv = CS_EREMOTE;
		break;
	}
out:
	explicit_bzero(token, sizeof(token));
	explicit_bzero(auth, sizeof(auth));
	buf_free(&u);
	return rv;
}

int
api_post_json(struct amo *a, const char *path, const char *body, struct http_response *resp)
{
	const char *hdrs[] = { "Content-Type: application/json", "Accept: application/json", NULL };
	struct buf u;
	int rv;

	memset(resp, 0, sizeof(*resp));
	buf_init(&resp->body, 1);
	if ((rv = api_url(a, path, &u)) != 0)
		return rv;
	http_response_free(resp);
	rv = api_do(a, "POST", u.data, hdrs, body, strlen(body), resp);
	buf_free(&u);
	return rv;
}
