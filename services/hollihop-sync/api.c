/*
 * api.c - one Hollihop API V2 call: POST <base>/<Method>?culture=… with a urlencoded form
 * body that starts with the authkey (so the key never appears in a URL or an access log).
 *
 * Every call waits for the shared token bucket (600 requests / 30 s by default). Answers
 * are classified once, here: transport errors, 5xx and unparsable bodies are retried with
 * jittered exponential backoff; a rate-limit answer (HTTP 429 or {"Error":"…limit…"})
 * pauses the whole bucket and retries; a refused authkey (401/403 or an auth error text)
 * and any other {"Error": …} are final, with the server's message kept for the run record.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "clock.h"
#include "errors.h"
#include "hh.h"
#include "log.h"

struct api {
	const struct hh_conf	*c;
	struct http		*http;
	struct ratelimit	*rl;
	struct buf		 auth;	/* "authkey=<urlencoded>"; a secret */
};

int
api_new(struct api **out, const struct hh_conf *c, struct ratelimit *rl)
{
	struct http_opts o = { 0 };
	struct api *a;
	int rv;

	*out = NULL;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return CS_ENOMEM;
	a->c = c;
	a->rl = rl;
	o.connect_timeout_ms = c->connect_timeout_ms;
	o.timeout_ms = c->timeout_ms;
	o.max_body = (size_t)c->max_body;
	if ((rv = http_new(&a->http, &o)) != 0) {
		free(a);
		return rv;
	}
	buf_init(&a->auth, 8192);
	if (buf_addstr(&a->auth, "authkey=") != 0 || http_urlencode(&a->auth, c->authkey) != 0) {
		api_free(a);
		return CS_ECONFIG;
	}
	/* The encoded form differs from the raw key when it holds '/' or '+': redact both. */
	log_secret(a->auth.data + 8);
	*out = a;
	return 0;
}

void
api_free(struct api *a)
{
	if (a == NULL)
		return;
	http_free(a->http);
	if (a->auth.data != NULL)
		explicit_bzero(a->auth.data, a->auth.len);
	buf_free(&a->auth);
	free(a);
}

static int
contains_ci(const char *s, const char *needle)
{
	size_t n = strlen(needle);

	for (; *s != '\0'; s++)
		if (strncasecmp(s, needle, n) == 0)
			return 1;
	return 0;
}

/* Sleep ms in short slices; CS_ECANCELED when *stop is set meanwhile. */
static int
nap(int64_t ms, volatile _Atomic int *stop)
{
	while (ms > 0) {
		int64_t s = ms > 50 ? 50 : ms;
		struct timespec ts = { 0, (long)s * 1000000L };

		if (stop != NULL && *stop)
			return CS_ECANCELED;
		nanosleep(&ts, NULL);
		ms -= s;
	}
	return stop != NULL && *stop ? CS_ECANCELED : 0;
}

enum verdict { V_OK, V_RETRY, V_LIMITED, V_FINAL };

/* The server's {"Error": "..."} text, if the body is such an object. */
static int
error_text(const struct json *j, char *dst, size_t cap)
{
	int t = json_get(j, 0, "Error");
	size_t n;

	if (t < 0)
		return 0;
	if (json_str(j, t, dst, cap, &n) != 0)
		snprintf(dst, cap, "(unreadable error text)");
	return 1;
}

static int
is_limit_text(const char *s)
{
	return contains_ci(s, "limit") || contains_ci(s, "лимит") || contains_ci(s, "too many");
}

static int
is_auth_text(const char *s)
{
	return contains_ci(s, "authkey") || contains_ci(s, "auth key") || contains_ci(s, "api key") ||
	    contains_ci(s, "unauthori") || contains_ci(s, "ключ") || contains_ci(s, "авториз");
}

static enum verdict
classify(struct api *a, int hrv, struct http_response *resp, struct json *j, int *code,
    char *why, size_t cap)
{
	char etext[512];
	int prv;

	*code = 0;
	if (hrv == CS_ETOOBIG) {
		snprintf(why, cap, "response larger than CS_HOLLIHOP_MAX_BODY (%lld bytes)",
		    (long long)a->c->max_body);
		*code = CS_ETOOBIG;
		return V_FINAL;
	}
	if (hrv != 0) {
		snprintf(why, cap, "network: %s", resp->error);
		*code = hrv;
		return V_RETRY;
	}
	if (resp->status == 429) {
		snprintf(why, cap, "HTTP 429");
		*code = CS_ERATELIMIT;
		return V_LIMITED;
	}
	if (resp->status >= 500 || resp->status == 408 || resp->status == 0) {
		snprintf(why, cap, "HTTP %ld", resp->status);
		*code = CS_EHTTP;
		return V_RETRY;
	}
	prv = json_parse(j, resp->body.data, resp->body.len, (int)a->c->max_tokens);
	if (prv == 0 && json_kind(j, 0) == JK_OBJECT && error_text(j, etext, sizeof(etext))) {
		json_free(j);
		if (is_limit_text(etext)) {
			snprintf(why, cap, "rate limited: %s", etext);
			*code = CS_ERATELIMIT;
			return V_LIMITED;
		}
		if (resp->status == 401 || resp->status == 403 || is_auth_text(etext)) {
			snprintf(why, cap, "authkey refused (HTTP %ld): %s", resp->status, etext);
			*code = CS_EAUTH;
			return V_FINAL;
		}
		snprintf(why, cap, "Hollihop error (HTTP %ld): %s", resp->status, etext);
		*code = CS_EREMOTE;
		return V_FINAL;
	}
	if (resp->status == 401 || resp->status == 403) {
		if (prv == 0)
			json_free(j);
		snprintf(why, cap, "authkey refused (HTTP %ld)", resp->status);
		*code = CS_EAUTH;
		return V_FINAL;
	}
	if (resp->status < 200 || resp->status >= 300) {
		if (prv == 0)
			json_free(j);
		snprintf(why, cap, "HTTP %ld", resp->status);
		*code = CS_EREMOTE;
		return V_FINAL;
	}
	if (prv == CS_ETOOBIG) {
		snprintf(why, cap, "response has more than CS_HOLLIHOP_MAX_TOKENS (%lld) JSON tokens",
		    (long long)a->c->max_tokens);
		*code = CS_ETOOBIG;
		return V_FINAL;
	}
	if (prv != 0 || json_kind(j, 0) != JK_OBJECT) {
		if (prv == 0)
			json_free(j);
		/* A cut or garbled body is usually transient (proxy, dropped connection). */
		snprintf(why, cap, "malformed JSON (%zu bytes)", resp->body.len);
		*code = prv == CS_ENOMEM ? CS_ENOMEM : CS_EJSON;
		return V_RETRY;
	}
	return V_OK;
}

int
api_call(struct api *a, const char *method, const char *form, volatile _Atomic int *stop,
    struct http_response *resp, struct json *j, char *err, size_t errlen)
{
	static const char *const headers[] = {
		"Content-Type: application/x-www-form-urlencoded", "Accept: application/json", NULL
	};
	char url[2048], why[640] = "";
	struct buf body;
	int rv = 0, code = 0;

	memset(resp, 0, sizeof(*resp));
	memset(j, 0, sizeof(*j));
	if (a->c->culture[0] != '\0')
		snprintf(url, sizeof(url), "%s/%s?culture=%s", a->c->base_url, method, a->c->culture);
	else
		snprintf(url, sizeof(url), "%s/%s", a->c->base_url, method);
	buf_init(&body, 1u << 20);
	if (buf_add(&body, a->auth.data, a->auth.len) != 0 || buf_addstr(&body, form) != 0) {
		snprintf(err, errlen, "%s: form body too long", method);
		rv = CS_ETOOBIG;
		goto out;
	}
	/* The form without the key: what was asked, for -v and the benchmark's replay. */
	log_debug("api.request", "method=%s form=%s", method, lq(form));
	for (int attempt = 0;; attempt++) {
		enum verdict v;
		int64_t wait;
		long ticket;

		if ((rv = rl_take(a->rl, stop, &ticket)) != 0) {
			snprintf(err, errlen, "%s: canceled", method);
			goto out;
		}
		stat_add(&hh_stats[HS_REQUESTS], 1);
		int64_t t0 = clock_mono_us();
		int hrv = http_request(a->http, "POST", url, headers, body.data, body.len, resp);
		int64_t t1 = clock_mono_us();
		rl_done(a->rl, ticket);		/* the server has seen it by now, if ever */
		stat_add(&hh_stats[HS_BYTES_IN], (int64_t)resp->body.len);
		v = classify(a, hrv, resp, j, &code, why, sizeof(why));
		log_debug("api.response", "method=%s status=%ld bytes=%zu tokens=%d http_us=%lld "
		    "parse_us=%lld", method, resp->status, resp->body.len, v == V_OK ? j->ntok : 0,
		    (long long)(t1 - t0), (long long)(clock_mono_us() - t1));
		if (v == V_OK) {
			rv = 0;
			goto out;
		}
		http_response_free(resp);
		if (v == V_FINAL || attempt >= a->c->retries) {
			if (v == V_FINAL)
				snprintf(err, errlen, "%s: %s", method, why);
			else
				snprintf(err, errlen, "%s: %s (gave up after %d attempts)", method, why,
				    attempt + 1);
			rv = code != 0 ? code : CS_EREMOTE;
			goto out;
		}
		wait = backoff_ms(attempt, a->c->backoff_base_ms, a->c->backoff_max_ms);
		stat_add(&hh_stats[HS_RETRIES], 1);
		if (v == V_LIMITED) {
			stat_add(&hh_stats[HS_RATE_LIMITED], 1);
			if (resp->retry_after_s >= 0)
				wait = resp->retry_after_s * 1000;
			/* Everyone sharing the account waits, not just this call. */
			rl_pause(a->rl, wait);
		}
		log_warnx("api.retry", "method=%s attempt=%d reason=%s wait_ms=%lld", method, attempt + 1,
		    lq(why), (long long)wait);
		if ((rv = nap(v == V_LIMITED ? 0 : wait, stop)) != 0) {
			snprintf(err, errlen, "%s: canceled", method);
			goto out;
		}
	}
out:
	explicit_bzero(body.data, body.len);
	buf_free(&body);
	return rv;
}
