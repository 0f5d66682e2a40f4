/*
 * request.h - the one door to amoCRM: every HTTP request amo-sync makes passes here, under
 * the account's token bucket, and is counted. amoCRM allows 7 requests/s per integration
 * and blocks the account (403 on everything) after repeated violations, so no request
 * bypasses it, retries and token requests included. Worker thread only (one struct http).
 */
#ifndef AMO_REQUEST_H
#define AMO_REQUEST_H

#include <stdint.h>

#include "amo.h"
#include "buf.h"

/* base_url + path into u (initialised here; the caller frees it). CS_ETOOBIG when too long. */
int	request_url(struct amo *a, const char *path, struct buf *u);
/*
 * One request under the rate limit, counted (requests, 429, 401, 5xx, transport errors).
 * resp is always initialised (free it with http_response_free); returns http_request's
 * result, or CS_ECANCELED when stopped while waiting for the limit.
 */
int	request_do(struct amo *a, const char *method, const char *url, const char *const *hdrs,
	    const char *body, size_t len, struct http_response *resp);
/* POST a JSON body to base_url + path without a token (the OAuth token endpoint). */
int	request_post_json(struct amo *a, const char *path, const char *body,
	    struct http_response *resp);
/* Sleep ms in short slices so a stop is seen quickly: 0, or CS_ECANCELED. */
int	request_sleep(struct amo *a, int64_t ms);

#endif
