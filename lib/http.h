/*
 * http.h - the HTTP client both sync services use (libcurl underneath).
 *
 * One struct http per thread (a curl easy handle keeps its connection alive between
 * requests). Every response body is bounded by max_body: a larger one fails with
 * CS_ETOOBIG instead of eating memory. Transport failures return CS_ENET with curl's text
 * in resp->error; an HTTP status is never an error here: callers decide (2xx, 204, 401,
 * 429, 5xx...) and read Retry-After / X-Request-Id from the response.
 */
#ifndef CS_HTTP_H
#define CS_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"

struct http_opts {
	int64_t		 connect_timeout_ms;	/* default 5 s */
	int64_t		 timeout_ms;		/* whole request; default 60 s */
	size_t		 max_body;		/* default 64 MiB */
	const char	*user_agent;		/* default "crmsync/<version>" */
	const char	*ca_file;		/* NULL = system store */
};

struct http_response {
	long		 status;
	struct buf	 body;
	int64_t		 retry_after_s;		/* seconds (an HTTP-date made relative); -1 when absent */
	char		 request_id[80];
	char		 content_type[80];
	char		 error[256];
	double		 total_s;
};

struct http;

/*
 * The value of a Retry-After header (RFC 9110 10.2.3): delay-seconds, or an HTTP-date
 * ("Sun, 06 Nov 1994 08:49:37 GMT"), as seconds from `now`: a date already past is 0;
 * anything unreadable -1 (as if absent). The caller bounds what it is willing to wait.
 */
int64_t	http_retry_after(const char *value, time_t now);

int	http_new(struct http **out, const struct http_opts *opts);	/* opts may be NULL */
void	http_free(struct http *h);

/*
 * Perform one request. headers: NULL-terminated "Name: value" list (may be NULL). body may
 * be NULL. resp is initialised here; release it with http_response_free() in all cases.
 */
int	http_request(struct http *h, const char *method, const char *url, const char *const *headers,
	    const char *body, size_t bodylen, struct http_response *resp);
void	http_response_free(struct http_response *resp);

/* Append s percent-encoded (RFC 3986 unreserved kept) to b. */
int	http_urlencode(struct buf *b, const char *s);

#endif
