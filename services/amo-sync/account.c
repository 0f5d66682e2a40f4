/*
 * account.c - the account settings the normaliser reads: the UTC offset of the account's
 * time zone (/api/v4/account?with=datetime_settings, "_embedded.datetime_settings.
 * timezone_offset", e.g. "+03:00"). amoCRM sends date custom fields as unix seconds of a
 * midnight in that zone, so amo.custom_field_values.value_date needs it (CT_DATE_DAY).
 * Read before the first fetch and again with every run that reads reference entities;
 * until it is known a date field's day is NULL (never a UTC day, which is a day early east
 * of UTC). Worker thread only.
 */
#include <stdio.h>
#include <string.h>

#include "account.h"
#include "api.h"
#include "clock.h"
#include "errors.h"
#include "json.h"
#include "log.h"
#include "normalise.h"

#define ACCOUNT_TOKENS_MAX	8192

#define ACCOUNT_RETRY_MS	60000	/* an unknown offset is asked for at most this often */

static char offset[32];		/* the offset in use, "" = unknown; worker thread only */
static int64_t last_try_ms = -1;

int
account_known(void)
{
	return offset[0] != '\0';
}

int
account_ensure(struct amo *a)
{
	if (account_known() || (last_try_ms >= 0 && clock_mono_ms() - last_try_ms < ACCOUNT_RETRY_MS))
		return 0;
	return account_refresh(a);
}

int
account_refresh(struct amo *a)
{
	struct http_response resp;
	struct json j;
	char got[sizeof(offset)];
	int rv;

	last_try_ms = clock_mono_ms();
	if ((rv = api_get(a, "/api/v4/account?with=datetime_settings", &resp)) != 0) {
		log_warnx("account.unread", "err=%s: date custom fields keep no day until it is read",
		    lq(cs_strerror(rv)));
		http_response_free(&resp);
		return rv;
	}
	rv = json_parse(&j, resp.body.data, resp.body.len, ACCOUNT_TOKENS_MAX);
	if (rv == 0) {
		int t = json_path(&j, 0, "_embedded.datetime_settings.timezone_offset");
		if (json_kind(&j, t) != JK_STRING || json_str(&j, t, got, sizeof(got), NULL) != 0)
			rv = CS_EPROTO;
		json_free(&j);
	}
	http_response_free(&resp);
	if (rv != 0) {
		log_warnx("account.no_offset", "err=%s: the account answer has no "
		    "_embedded.datetime_settings.timezone_offset; date custom fields keep no day",
		    lq(cs_strerror(rv)));
		return rv;
	}
	if (strcmp(got, offset) != 0) {
		if ((rv = normalise_set_default(NORM_CTX_UTC_OFFSET, got)) != 0)
			return rv;
		log_info("account.utc_offset", "offset=%s was=%s", lq(got), lq(offset));
		snprintf(offset, sizeof(offset), "%s", got);
	}
	return 0;
}
