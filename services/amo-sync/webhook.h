/*
 * webhook.h - the account's webhook subscription for the gateway: amoCRM disables a webhook
 * after repeated failed deliveries and tells nobody but the account's admins, so amo-sync
 * reads GET /api/v4/webhooks every CS_AMO_WEBHOOK_CHECK_INTERVAL, reports a missing or
 * disabled subscription of CS_AMO_WEBHOOK_URL (health status, webhook_ok gauge), and with
 * CS_AMO_WEBHOOK_REPAIR on registers or re-enables it (POST /api/v4/webhooks).
 * Worker thread only (every API request is made there), except webhook_status().
 */
#ifndef AMO_WEBHOOK_H
#define AMO_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "amo.h"

/* What the last check found (AS_WEBHOOK_OK: 1 for WH_OK, 0 missing/disabled, -1 else). */
enum webhook_state {
	WH_OFF = 0,		/* CS_AMO_WEBHOOK_URL not set: nothing is checked */
	WH_UNKNOWN,		/* not checked yet, or the last check failed */
	WH_OK,			/* subscribed and enabled */
	WH_MISSING,		/* no subscription for the destination */
	WH_DISABLED,		/* subscribed, but amoCRM disabled it */
};

/* Run the check (and the repair) when it is due; ms until the next one (-1: off). */
int64_t	webhook_tick(struct amo *a);
/* The health line's part about the subscription ("" when it is fine or off). Any thread.
 * Returns 1 when the subscription is missing or disabled (the service is degraded). */
int	webhook_status(struct amo *a, char *buf, size_t len);
/* The events crmsync's hook handling reads, as amoCRM's settings codes (the default of
 * CS_AMO_WEBHOOK_EVENTS). */
extern const char webhook_default_events[];

#endif
