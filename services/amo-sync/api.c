/*
 * api.c - authorised GETs and amoCRM's status policy (summarised in api.h; amoCRM's
 * "HTTP status codes" and rate-limit documentation). Every request goes through request_do(), so none bypasses the rate limit.
 * Only the status code decides: error bodies are not JSON (a 403 ban is an nginx HTML
 * page, 429 bodies are not JSON either), so they are logged, never parsed.
 * Worker thread only.
 */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "errors.h"
#include "log.h"
#include "oauth.h"
#include "request.h"

#define API_429_MAX	20		/* consecutive 429s before giving up on a request */
#define API_RETRY_AFTER_MAX_S	3600	/* longest Retry-After honoured as given */

#define GET_DONE	0		/* finished: *rv is the result */
#define GET_AGAIN	1		/* make the request again */

/* One request with its retry state. */
struct get {
	struct amo	*a;
	const char	*method;	/* GET, or POST with a JSON body */
	const char	*body;
	const char	*pq;
	struct buf	 u;
	char		 token[4096];
	char		 auth[4200];
	const char	*hdrs[4];
	int		 attempt;	/* transport / 5xx / token endpoint failures */
	int		 n429;
	int		 refreshed;
};

/* A 403: a ban answers 403 everywhere, missing rights only on some endpoints. Ask the
 * account endpoint, which every token may read. 1 = banned. */
static int
api_is_banned(struct get *g)
{
	struct http_response r;
	struct buf u;
	int banned = 0;

	if (request_url(g->a, "/api/v4/account", &u) != 0)
		return 1;
	if (request_do(g->a, "GET", u.data, g->hdrs, NULL, 0, &r) == 0)
		banned = r.status == 403;
	http_response_free(&r);
	buf_free(&u);
	return banned;
}

/* Count a failed attempt: give up with fail_rv after retry_max, else wait and go again. */
static int
get_backoff(struct get *g, int fail_rv, int *rv)
{
	struct amo *a = g->a;

	if (++g->attempt > a->conf.retry_max) {
		*rv = fail_rv;
		return GET_DONE;
	}
	if ((*rv = request_sleep(a, backoff_ms(g->attempt, 500, a->conf.backoff_max_ms))) != 0)
		return GET_DONE;
	return GET_AGAIN;
}

/* 401: refresh the token once; a second 401 means the grant was revoked. */
static int
get_unauthorized(struct get *g, const struct http_response *resp, int *rv)
{
	if (g->refreshed) {
		log_warnx("api.unauthorized", "path=%s request_id=%s: 401 again after a "
		    "token refresh; treating the grant as revoked", lq(g->pq), lq(resp->request_id));
		amo_set_api_state(g->a, API_REVOKED);
		*rv = CS_EREVOKED;
		return GET_DONE;
	}
	if ((*rv = oauth_after_401(g->a, g->token)) != 0)
		return GET_DONE;
	g->refreshed = 1;
	return GET_AGAIN;
}

/* 403: missing rights on this endpoint, or the whole account blocked. */
static int
get_forbidden(struct get *g, const struct http_response *resp, int *rv)
{
	if (!api_is_banned(g)) {
		log_warnx("api.forbidden", "path=%s request_id=%s: 403 for this endpoint only "
		    "(missing rights?)", lq(g->pq), lq(resp->request_id));
		*rv = CS_EREMOTE;
		return GET_DONE;
	}
	amo_set_api_state(g->a, API_BANNED);
	log_warnx("api.banned", "path=%s request_id=%s: ACCOUNT API ACCESS BLOCKED (403 "
	    "everywhere). Syncing has stopped and will not retry: ask amoCRM support to "
	    "unblock, then restart or send a sync command", lq(g->pq), lq(resp->request_id));
	amo_set_error(g->a, "amoCRM answers 403: account API access blocked");
	*rv = CS_EBANNED;
	return GET_DONE;
}

/* What the answer's status means: done (with *rv) or once more. */
static int
get_status(struct get *g, const struct http_response *resp, int *rv)
{
	struct amo *a = g->a;
	long st = resp->status;

	if (st >= 200 && st < 300) {
		log_debug("api.ok", "path=%s status=%ld bytes=%zu s=%.3f request_id=%s", lq(g->pq), st,
		    resp->body.len, resp->total_s, lq(resp->request_id));
		*rv = 0;
		return GET_DONE;
	}
	if (st == 401)
		return get_unauthorized(g, resp, rv);
	if (st == 429) {
		/* The status decides, never the body (amoCRM's 429 body is not JSON); the pause
		 * is Retry-After (seconds or an HTTP-date, bounded) or a jittered backoff. */
		int64_t ra = resp->retry_after_s > API_RETRY_AFTER_MAX_S ? API_RETRY_AFTER_MAX_S :
		    resp->retry_after_s;
		int64_t ms = ra > 0 ? ra * 1000 : backoff_ms(g->n429, 1000, a->conf.backoff_max_ms);
		log_warnx("api.rate_limited", "path=%s pause_ms=%lld retry_after=%lld n=%d",
		    lq(g->pq), (long long)ms, (long long)resp->retry_after_s, g->n429 + 1);
		rl_pause(&a->rl, ms);
		*rv = CS_ERATELIMIT;
		return ++g->n429 > API_429_MAX ? GET_DONE : GET_AGAIN;
	}
	if (st == 403)
		return get_forbidden(g, resp, rv);
	if (st == 404) {
		*rv = CS_ENOENT;
		return GET_DONE;
	}
	if (st >= 500) {
		log_warnx("api.server_error", "path=%s status=%ld attempt=%d request_id=%s", lq(g->pq),
		    st, g->attempt + 1, lq(resp->request_id));
		return get_backoff(g, CS_EREMOTE, rv);
	}
	log_warnx("api.client_error", "path=%s status=%ld request_id=%s body=%s", lq(g->pq), st,
	    lq(resp->request_id), lqn(resp->body.data, resp->body.len));
	*rv = CS_EREMOTE;
	return GET_DONE;
}

/* One attempt: a token, the request, its answer. */
static int
get_once(struct get *g, struct http_response *resp, int *rv)
{
	struct amo *a = g->a;

	switch (amo_api_state(a)) {
	case API_REVOKED:	*rv = CS_EREVOKED; return GET_DONE;
	case API_BANNED:	*rv = CS_EBANNED; return GET_DONE;
	default:		break;
	}
	if ((*rv = oauth_token(a, g->token, sizeof(g->token))) != 0) {
		if (*rv != CS_ENET && *rv != CS_ERETRY)
			return GET_DONE;
		/* The token endpoint was unreachable: same backoff as any request. */
		return get_backoff(g, *rv, rv);
	}
	snprintf(g->auth, sizeof(g->auth), "Authorization: Bearer %s", g->token);
	http_response_free(resp);
	*rv = request_do(a, g->method, g->u.data, g->hdrs, g->body,
	    g->body != NULL ? strlen(g->body) : 0, resp);
	if (*rv == CS_ECANCELED)
		return GET_DONE;
	if (*rv != 0) {
		log_warnx("api.net_error", "path=%s attempt=%d err=%s", lq(g->pq), g->attempt + 1,
		    lq(resp->error));
		if (*rv == CS_ETOOBIG)
			return GET_DONE;
		return get_backoff(g, CS_ENET, rv);
	}
	return get_status(g, resp, rv);
}

static int
api_request(struct amo *a, const char *method, const char *pq, const char *body,
    struct http_response *resp)
{
	struct get g = { .a = a, .method = method, .body = body, .pq = pq };
	int rv;

	g.hdrs[0] = g.auth;
	g.hdrs[1] = "Accept: application/hal+json, application/json";
	if (body != NULL)
		g.hdrs[2] = "Content-Type: application/json";
	memset(resp, 0, sizeof(*resp));
	buf_init(&resp->body, 1);
	if ((rv = request_url(a, pq, &g.u)) != 0)
		return rv;
	for (;;) {
		if (a->stop) {
			rv = CS_ECANCELED;
			break;
		}
		if (get_once(&g, resp, &rv) == GET_DONE)
			break;
	}
	explicit_bzero(g.token, sizeof(g.token));
	explicit_bzero(g.auth, sizeof(g.auth));
	buf_free(&g.u);
	return rv;
}

int
api_get(struct amo *a, const char *pq, struct http_response *resp)
{
	return api_request(a, "GET", pq, NULL, resp);
}

int
api_post_json(struct amo *a, const char *pq, const char *body, struct http_response *resp)
{
	return api_request(a, "POST", pq, body, resp);
}
