/* http.c - bounded libcurl wrapper (see http.h). */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "errors.h"
#include "http.h"
#include "version.h"

struct http {
	CURL			*curl;
	struct http_opts	 opts;
};

int
http_new(struct http **out, const struct http_opts *opts)
{
	static int inited;
	struct http *h;

	*out = NULL;
	if (!inited) {
		/* Not thread-safe by itself: call http_new once from main before threads start. */
		curl_global_init(CURL_GLOBAL_DEFAULT);
		inited = 1;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return CS_ENOMEM;
	if (opts != NULL)
		h->opts = *opts;
	if (h->opts.connect_timeout_ms <= 0)
		h->opts.connect_timeout_ms = 5000;
	if (h->opts.timeout_ms <= 0)
		h->opts.timeout_ms = 60000;
	if (h->opts.max_body == 0)
		h->opts.max_body = 64u << 20;
	if (h->opts.user_agent == NULL)
		h->opts.user_agent = "crmsync/" CRMSYNC_VERSION;
	if ((h->curl = curl_easy_init()) == NULL) {
		free(h);
		return CS_ENOMEM;
	}
	*out = h;
	return 0;
}

void
http_free(struct http *h)
{
	if (h == NULL)
		return;
	curl_easy_cleanup(h->curl);
	free(h);
}

static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
	struct http_response *r = arg;

	if (buf_add(&r->body, p, size * n) != 0)
		return 0;	/* makes curl fail with CURLE_WRITE_ERROR */
	return size * n;
}

static void
copy_header_value(char *dst, size_t cap, const char *v, size_t n)
{
	while (n > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
		n--;
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

int64_t
http_retry_after(const char *v, time_t now)
{
	long long s;
	char *end;
	time_t t;

	if (isdigit((unsigned char)*v)) {
		errno = 0;
		s = strtoll(v, &end, 10);
		return errno == 0 && *end == '\0' ? (int64_t)s : -1;
	}
	/* An HTTP-date (IMF-fixdate, or the obsolete RFC 850 / asctime forms curl also reads). */
	if ((t = curl_getdate(v, NULL)) == -1)
		return -1;
	return t > now ? (int64_t)(t - now) : 0;
}

static size_t
on_header(char *p, size_t size, size_t n, void *arg)
{
	struct http_response *r = arg;
	size_t len = size * n;
	char tmp[64];

	if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
		copy_header_value(tmp, sizeof(tmp), p + 12, len - 12);
		r->retry_after_s = http_retry_after(tmp, time(NULL));
	} else if (len > 13 && strncasecmp(p, "X-Request-Id:", 13) == 0) {
		copy_header_value(r->request_id, sizeof(r->request_id), p + 13, len - 13);
	} else if (len > 13 && strncasecmp(p, "Content-Type:", 13) == 0) {
		copy_header_value(r->content_type, sizeof(r->content_type), p + 13, len - 13);
	} else if (len > 15 && strncasecmp(p, "Content-Length:", 15) == 0) {
		/* The body in one allocation of its size, instead of a doubling chain of
		 * reallocations (a page of rows: a dozen, up to twice its size). A length past
		 * the limit is left to the body callback to refuse. */
		copy_header_value(tmp, sizeof(tmp), p + 15, len - 15);
		char *end;
		errno = 0;
		unsigned long long cl = strtoull(tmp, &end, 10);
		if (errno == 0 && end != tmp && *end == '\0' && cl <= r->body.max)
			(void)buf_reserve(&r->body, (size_t)cl);
	}
	return len;
}

int
http_request(struct http *h, const char *method, const char *url, const char *const *headers,
    const char *body, size_t bodylen, struct http_response *resp)
{
	struct curl_slist *hl = NULL;
	CURLcode cc;
	int rv = 0;

	memset(resp, 0, sizeof(*resp));
	buf_init(&resp->body, h->opts.max_body);
	resp->retry_after_s = -1;
	curl_easy_reset(h->curl);
	for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
		hl = curl_slist_append(hl, headers[i]);
	curl_easy_setopt(h->curl, CURLOPT_URL, url);
	curl_easy_setopt(h->curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h->curl, CURLOPT_USERAGENT, h->opts.user_agent);
	curl_easy_setopt(h->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)h->opts.connect_timeout_ms);
	curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS, (long)h->opts.timeout_ms);
	curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h->curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h->curl, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, resp);
	curl_easy_setopt(h->curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h->curl, CURLOPT_HEADERDATA, resp);
	curl_easy_setopt(h->curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)h->opts.max_body);
	if (h->opts.ca_file != NULL)
		curl_easy_setopt(h->curl, CURLOPT_CAINFO, h->opts.ca_file);
	if (body != NULL) {
		curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)bodylen);
	}
	cc = curl_easy_perform(h->curl);
	curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &resp->status);
	curl_easy_getinfo(h->curl, CURLINFO_TOTAL_TIME, &resp->total_s);
	if (cc != CURLE_OK) {
		snprintf(resp->error, sizeof(resp->error), "%s", curl_easy_strerror(cc));
		rv = (cc == CURLE_WRITE_ERROR || cc == CURLE_FILESIZE_EXCEEDED) ? CS_ETOOBIG :
		    cc == CURLE_OPERATION_TIMEDOUT ? CS_ETIMEDOUT : CS_ENET;
	}
	/* The handle keeps pointers to these lists: drop them before returning. */
	curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hl);
	return rv;
}

void
http_response_free(struct http_response *resp)
{
	buf_free(&resp->body);
}

int
http_urlencode(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	int rv = 0;

	for (; *s != '\0' && rv == 0; s++) {
		unsigned char c = (unsigned char)*s;
		if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
			rv = buf_addc(b, (char)c);
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };
			rv = buf_add(b, e, 3);
		}
	}
	return rv;
}
