/*
 * api.h - authorised requests (GETs, and the one POST webhook.c makes) of amoCRM's REST API and their status policy
 * (2xx ok, 204 = empty; 401 -> one refresh and one retry, then the token counts as
 * revoked; 429 -> everyone pauses; 403 everywhere -> banned, stop and alert; 5xx and
 * network errors -> jittered exponential backoff, bounded). Worker thread only.
 */
#ifndef AMO_API_H
#define AMO_API_H

#include "amo.h"

/*
 * GET base_url + path_query with the bearer token, under the rate limit. 429 pauses everyone
 * (Retry-After or backoff) and retries; 5xx and network errors retry with jittered backoff
 * up to retry_max; 401 refreshes once and retries. Returns 0 with resp->status 200..204
 * (204 = empty), CS_EREVOKED, CS_EBANNED (403: state set, loud alert), CS_ENOENT (404),
 * CS_EREMOTE (other 4xx; resp kept for the caller), CS_ENET, CS_ERATELIMIT, CS_ECANCELED.
 * resp is always initialised; free it with http_response_free().
 */
int	api_get(struct amo *a, const char *path_query, struct http_response *resp);
/*
 * POST a JSON body (NUL-terminated) to base_url + path_query with the same token, rate limit
 * and status policy as api_get (a 5xx is retried: use it only for idempotent requests).
 */
int	api_post_json(struct amo *a, const char *path_query, const char *body,
	    struct http_response *resp);

#endif
