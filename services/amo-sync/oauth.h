/*
 * oauth.h - amoCRM OAuth 2.0 tokens: code exchange, refresh before expiry, atomic
 * persistence, the refresh lock, long-lived tokens. Worker thread only (main before the
 * worker starts, and for --auth-code).
 */
#ifndef AMO_OAUTH_H
#define AMO_OAUTH_H

#include <stddef.h>

#include "amo.h"

int	oauth_open(struct amo *a);
void	oauth_close(struct amo *a);
/* Exchange an authorization code for the first token pair and persist it. */
int	oauth_exchange_code(struct amo *a, const char *code);
/* The access token to send now (refreshed first when close to expiry). CS_EREVOKED when
 * there is none usable; CS_EBANNED when the token endpoint answers 403 (the account is
 * blocked: API_BANNED, not a revoked grant); CS_ENET/CS_ERETRY when a refresh failed for
 * a temporary reason. */
int	oauth_token(struct amo *a, char *dst, size_t cap);
/* A request with token `used` got 401: refresh once unless another refresh happened. */
int	oauth_after_401(struct amo *a, const char *used);
/* Re-read the token file if it changed since it was read (an operator re-authorised);
 * 0 and state API_OK when it now holds a pair, CS_ENOENT when unchanged. */
int	oauth_reload(struct amo *a);

#endif
