/*
 * webhook.c - is amoCRM still sending hooks to the gateway? (see webhook.h)
 *
 * GET /api/v4/webhooks answers {"_total_items", "_links", "_embedded": {"webhooks": [{id,
 * destination, created_at, updated_at, account_id, created_by, sort, disabled, settings[]}]}}
 * (amoCRM's webhooks API docs and the official SDK's WebhookModel; 204 when there is none).
 * The subscription of CS_AMO_WEBHOOK_URL is found by its exact destination, matched here:
 * the URL carries the gateway's secret, so it never goes into a query string (api.c logs
 * paths) nor into our own logs (only scheme and host are shown). A repair is one POST of
 * {destination, settings}: amoCRM keeps one subscription per destination and a POST for an
 * existing one replaces its settings and enables it (UNSURE: documented for the settings, the
 * re-enabling is an assumption; the check right after the POST says whether it worked).
 * Worker thread only, except webhook_status().
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "buf.h"
#include "clock.h"
#include "errors.h"
#include "json.h"
#include "log.h"
#include "strlist.h"
#include "webhook.h"

#define WH_TOKENS_MAX	65536		/* an account has a handful of subscriptions */
#define WH_BODY_MAX	(64u << 10)	/* our POST body */
#define WH_RETRY_MS	60000		/* a failed check is retried this soon at the latest */
#define WH_SETTINGS_MAX	2048

const char webhook_default_events[] =
    "add_lead,update_lead,delete_lead,restore_lead,status_lead,responsible_lead,note_lead,"
    "add_contact,update_contact,delete_contact,restore_contact,responsible_contact,note_contact,"
    "add_company,update_company,delete_company,restore_company,responsible_company,note_company,"
    "add_customer,update_customer,delete_customer,responsible_customer,note_customer,"
    "add_task,update_task,delete_task,responsible_task,"
    "add_unsorted,update_unsorted,delete_unsorted,add_talk,update_talk";

static int64_t next_ms;		/* monotonic time of the next check; worker thread only */

/* What one read of the subscriptions found. */
struct found {
	enum webhook_state	 st;
	char			 settings[WH_SETTINGS_MAX];	/* its events, a comma list */
	char			 missing[WH_SETTINGS_MAX];	/* configured events it lacks */
};

/* "https://host:8443/…": the destination without its path (which holds the secret). */
static const char *
dest_shown(const char *url, char *buf, size_t cap)
{
	const char *p = strstr(url, "://");
	size_t n;

	p = p != NULL ? p + 3 : url;
	n = strcspn(p, "/?#");
	snprintf(buf, cap, "%.*s%s", (int)(p - url + (ptrdiff_t)n), url, p[n] != '\0' ? "/..." : "");
	return buf;
}

static int
buf_add_jstr(struct buf *b, const char *s)
{
	int rv = buf_addc(b, '"');

	for (; rv == 0 && *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			rv = buf_printf(b, "\\%c", c);
		else if (c < 0x20)
			rv = buf_printf(b, "\\u%04x", c);
		else
			rv = buf_addc(b, (char)c);
	}
	return rv != 0 ? rv : buf_addc(b, '"');
}

/* The subscription's settings into f->settings and the configured events it lacks. */
static void
read_settings(struct amo *a, const struct json *j, int w, struct found *f)
{
	int t = json_get(j, w, "settings");
	const char *cur = a->conf.webhook_events, *item;
	size_t k, n = 0;

	f->settings[0] = f->missing[0] = '\0';
	if (json_kind(j, t) == JK_ARRAY) {
		int e = json_first(j, t);
		for (int i = 0; i < json_size(j, t); i++, e = json_skip(j, e)) {
			char ev[128];
			if (json_kind(j, e) != JK_STRING || json_str(j, e, ev, sizeof(ev), NULL) != 0 ||
			    strchr(ev, ',') != NULL)
				continue;
			int w2 = snprintf(f->settings + n, sizeof(f->settings) - n, "%s%s", n ? "," : "", ev);
			if (w2 < 0 || (size_t)w2 >= sizeof(f->settings) - n) {
				f->settings[n] = '\0';
				break;
			}
			n += (size_t)w2;
		}
	}
	n = 0;
	while (strlist_next(&cur, &item, &k)) {
		if (strlist_has(f->settings, item, k))
			continue;
		int w2 = snprintf(f->missing + n, sizeof(f->missing) - n, "%s%.*s", n ? "," : "",
		    (int)k, item);
		if (w2 < 0 || (size_t)w2 >= sizeof(f->missing) - n) {
			f->missing[n] = '\0';
			break;
		}
		n += (size_t)w2;
	}
}

/* Find CS_AMO_WEBHOOK_URL among the subscriptions of a 200 answer. */
static int
find_subscription(struct amo *a, const struct http_response *resp, struct found *f)
{
	struct json j;
	int rv, list, w;

	if ((rv = json_parse(&j, resp->body.data, resp->body.len, WH_TOKENS_MAX)) != 0)
		return rv;
	list = json_path(&j, 0, "_embedded.webhooks");
	if (json_kind(&j, list) != JK_ARRAY) {
		json_free(&j);
		return CS_EPROTO;
	}
	f->st = WH_MISSING;
	w = json_first(&j, list);
	for (int i = 0; i < json_size(&j, list); i++, w = json_skip(&j, w)) {
		int disabled = 0, t = json_get(&j, w, "disabled");
		char dest[4096];
		/* decoded: a PHP encoder may send "https:\/\/..." */
		if (json_kind(&j, w) != JK_OBJECT || json_kind(&j, json_get(&j, w, "destination")) !=
		    JK_STRING || json_str(&j, json_get(&j, w, "destination"), dest, sizeof(dest), NULL) != 0 ||
		    strcmp(dest, a->conf.webhook_url) != 0)
			continue;
		/* absent or null: not disabled (the field is documented as a boolean) */
		if (json_kind(&j, t) == JK_BOOL)
			(void)json_bool(&j, t, &disabled);
		f->st = disabled ? WH_DISABLED : WH_OK;
		read_settings(a, &j, w, f);
		break;
	}
	json_free(&j);
	return 0;
}

/* One read of the account's subscriptions; f->st says what it found. */
static int
webhook_read(struct amo *a, struct found *f)
{
	struct http_response resp;
	int rv;

	memset(f, 0, sizeof(*f));
	f->st = WH_UNKNOWN;
	rv = api_get(a, "/api/v4/webhooks", &resp);
	if (rv == 0 && resp.status == 204)
		f->st = WH_MISSING;
	else if (rv == 0)
		rv = find_subscription(a, &resp, f);
	http_response_free(&resp);
	return rv;
}

/* Record what the check found, for health and metrics. */
static void
publish(struct amo *a, enum webhook_state st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
publish(struct amo *a, enum webhook_state st, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&a->mtx);
	va_start(ap, fmt);
	vsnprintf(a->webhook_note, sizeof(a->webhook_note), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&a->mtx);
	atomic_store(&a->webhook_state, (int)st);
	amo_gauge(a, AS_WEBHOOK_OK, st == WH_OK ? 1 : st == WH_MISSING || st == WH_DISABLED ? 0 : -1);
	if (st != WH_UNKNOWN)
		amo_gauge(a, AS_WEBHOOK_CHECKED, (int64_t)time(NULL));
}

/* {"destination": URL, "settings": [configured events, then the subscription's others]}. */
static int
repair_body(struct amo *a, const struct found *f, struct buf *b)
{
	const char *lists[2] = { a->conf.webhook_events, f->settings }, *cur, *item;
	char ev[128];
	size_t k;
	int rv, n = 0;

	buf_init(b, WH_BODY_MAX);
	rv = buf_addstr(b, "{\"destination\":");
	if (rv == 0)
		rv = buf_add_jstr(b, a->conf.webhook_url);
	if (rv == 0)
		rv = buf_addstr(b, ",\"settings\":[");
	for (int l = 0; l < 2 && rv == 0; l++) {
		cur = lists[l];
		while (rv == 0 && strlist_next(&cur, &item, &k)) {
			if (l == 1 && strlist_has(a->conf.webhook_events, item, k))
				continue;
			snprintf(ev, sizeof(ev), "%.*s", (int)k, item);
			if ((rv = n++ ? buf_addc(b, ',') : 0) == 0)
				rv = buf_add_jstr(b, ev);
		}
	}
	if (rv == 0)
		rv = buf_addstr(b, "]}");
	return rv;
}

/* POST the subscription: register it (missing), re-enable it, or add the events it lacks. */
static int
webhook_repair(struct amo *a, const struct found *f, const char *shown)
{
	const char *what = f->st == WH_MISSING ? "register" : f->st == WH_DISABLED ? "re-enable" :
	    "add-events";
	struct http_response resp;
	struct buf b;
	int rv;

	if ((rv = repair_body(a, f, &b)) == 0)
		rv = api_post_json(a, "/api/v4/webhooks", b.data, &resp);
	else
		memset(&resp, 0, sizeof(resp));
	buf_free(&b);
	if (rv != 0) {
		log_warnx("webhook.repair_failed", "action=%s destination=%s status=%ld err=%s: "
		    "subscribe it by hand (amoCRM: Settings -> Integrations -> Web hooks)", what,
		    lq(shown), resp.status, lq(cs_strerror(rv)));
	} else {
		amo_count(a, AS_WEBHOOK_REPAIRS, 1);
		log_info("webhook.repaired", "action=%s destination=%s status=%ld events=%s", what,
		    lq(shown), resp.status, f->missing[0] ? lq(f->missing) : "\"\"");
	}
	http_response_free(&resp);
	return rv;
}

/* Say what the read found: health note, gauge, log. */
static void
report(struct amo *a, const struct found *f, const char *shown, int after_repair)
{
	switch (f->st) {
	case WH_MISSING:
		log_warnx("webhook.missing", "destination=%s%s: amoCRM sends no hooks to the gateway; "
		    "changes arrive only with the incremental sync", lq(shown),
		    after_repair ? " after the repair" : "");
		publish(a, WH_MISSING, "amoCRM webhook to %s is not subscribed%s", shown,
		    a->conf.webhook_repair ? "" : " (CS_AMO_WEBHOOK_REPAIR=on registers it)");
		break;
	case WH_DISABLED:
		log_warnx("webhook.disabled", "destination=%s%s: amoCRM disabled the subscription "
		    "(after failed deliveries) and sends no hooks; %s", lq(shown),
		    after_repair ? " after the repair" : "", after_repair ?
		    "re-enable it in amoCRM (Settings -> Integrations -> Web hooks)" :
		    a->conf.webhook_repair ? "re-enabling it" : "re-enable it in amoCRM or set "
		    "CS_AMO_WEBHOOK_REPAIR=on");
		publish(a, WH_DISABLED, "amoCRM disabled the webhook to %s (after failed deliveries)%s",
		    shown, a->conf.webhook_repair ? "" : "; re-enable it in amoCRM");
		break;
	default:
		if (f->missing[0] != '\0')
			log_warnx("webhook.events_missing", "destination=%s events=%s: the subscription "
			    "does not send these%s", lq(shown), lq(f->missing),
			    a->conf.webhook_repair ? "" : " (CS_AMO_WEBHOOK_REPAIR=on adds them)");
		if (atomic_load(&a->webhook_state) != WH_OK)
			log_info("webhook.ok", "destination=%s: subscribed and enabled", lq(shown));
		publish(a, WH_OK, "%s", "");
		break;
	}
}

/* One check: read, repair when asked to, read again to see the repair took. */
static void
webhook_check(struct amo *a)
{
	char shown[256];
	struct found f;
	int rv;

	dest_shown(a->conf.webhook_url, shown, sizeof(shown));
	if ((rv = webhook_read(a, &f)) != 0) {
		log_warnx("webhook.check_failed", "destination=%s err=%s: reading /api/v4/webhooks "
		    "needs an account admin's token", lq(shown), lq(cs_strerror(rv)));
		publish(a, WH_UNKNOWN, "webhook check failed: %s", cs_strerror(rv));
		next_ms = clock_mono_ms() + (a->conf.webhook_check_ms < WH_RETRY_MS ?
		    a->conf.webhook_check_ms : WH_RETRY_MS);
		return;
	}
	log_debug("webhook.checked", "destination=%s state=%d", lq(shown), (int)f.st);
	if (a->conf.webhook_repair && (f.st != WH_OK || f.missing[0] != '\0') &&
	    webhook_repair(a, &f, shown) == 0) {
		if (webhook_read(a, &f) != 0)
			f.st = WH_UNKNOWN;
		if (f.st == WH_UNKNOWN) {
			publish(a, WH_UNKNOWN, "%s", "webhook repaired, not re-read yet");
			return;
		}
		report(a, &f, shown, 1);
		return;
	}
	report(a, &f, shown, 0);
}

int64_t
webhook_tick(struct amo *a)
{
	int64_t now = clock_mono_ms();

	if (a->conf.webhook_url[0] == '\0' || a->conf.webhook_check_ms <= 0 || a->once)
		return -1;
	if (now >= next_ms) {
		next_ms = now + a->conf.webhook_check_ms;
		webhook_check(a);
		now = clock_mono_ms();
	}
	return next_ms > now ? next_ms - now : 0;
}

int
webhook_status(struct amo *a, char *buf, size_t len)
{
	enum webhook_state st = (enum webhook_state)atomic_load(&a->webhook_state);

	pthread_mutex_lock(&a->mtx);
	snprintf(buf, len, "%s", st == WH_OFF || st == WH_OK ? "" : a->webhook_note);
	pthread_mutex_unlock(&a->mtx);
	return st == WH_MISSING || st == WH_DISABLED;
}
