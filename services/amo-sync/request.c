/* request.c - every amoCRM request under one token bucket, counted (see request.h). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "errors.h"
#include "request.h"

#define REQUEST_URL_MAX	(64u << 10)	/* 250 ids in filter[id][] fit easily */

int
request_sleep(struct amo *a, int64_t ms)
{
	while (ms > 0 && !a->stop) {
		int64_t s = ms > 100 ? 100 : ms;
		struct timespec ts = { 0, (long)s * 1000000L };
		nanosleep(&ts, NULL);
		ms -= s;
	}
	return a->stop ? CS_ECANCELED : 0;
}

int
request_do(struct amo *a, const char *method, const char *url, const char *const *hdrs,
    const char *body, size_t len, struct http_response *resp)
{
	int rv;

	if ((rv = rl_acquire(&a->rl, &a->stop)) != 0) {
		memset(resp, 0, sizeof(*resp));
		buf_init(&resp->body, 1);
		return rv;
	}
	amo_count(a, AS_REQUESTS, 1);
	rv = http_request(a->http, method, url, hdrs, body, len, resp);
	if (rv != 0)
		amo_count(a, AS_NET_ERRORS, 1);
	else if (resp->status == 429)
		amo_count(a, AS_HTTP_429, 1);
	else if (resp->status >= 500)
		amo_count(a, AS_HTTP_5XX, 1);
	else if (resp->status == 401)
		amo_count(a, AS_HTTP_401, 1);
	return rv;
}

int
request_url(struct amo *a, const char *path, struct buf *u)
{
	buf_init(u, REQUEST_URL_MAX);
	if (buf_addstr(u, a->conf.base_url) != 0 || buf_addstr(u, path) != 0) {
		buf_free(u);
		return CS_ETOOBIG;
	}
	return 0;
}

int
request_post_json(struct amo *a, const char *path, const char *body, struct http_response *resp)
{
	const char *hdrs[] = { "Content-Type: application/json", "Accept: application/json", NULL };
	struct buf u;
	int rv;

	memset(resp, 0, sizeof(*resp));
	buf_init(&resp->body, 1);
	if ((rv = request_url(a, path, &u)) != 0)
		return rv;
	http_response_free(resp);
	rv = request_do(a, "POST", u.data, hdrs, body, strlen(body), resp);
	buf_free(&u);
	return rv;
}
