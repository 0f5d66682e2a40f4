/*
 * main.c - crmsync-hook-gateway: wiring, configuration, signals.
 *
 * amoCRM --HTTPS POST--> httpd.c --form.c--> journal.c (fsync, then 204) --forward.c--> amo-sync
 * The journal is opened first (replaying whatever amo-sync has not acknowledged), then the
 * forwarder, then the listener; shutdown runs the other way round so that every hook
 * answered 204 is on disk and every in-flight one is either answered or never was.
 */
#include <errno.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "cfg.h"
#include "deadletter.h"
#include "errors.h"
#include "forward.h"
#include "form.h"
#include "gateway.h"
#include "health.h"
#include "httpd.h"
#include "journal.h"
#include "log.h"
#include "metrics.h"
#include "svc.h"

struct stat_counter gw_stats[GW_NSTATS] = {
	[GW_HOOKS_ACCEPTED]	= { "hooks_accepted", "hooks answered 204 (on disk)", 0, 0 },
	[GW_HOOKS_REJECTED]	= { "hooks_rejected", "requests answered 4xx", 0, 0 },
	[GW_HOOKS_UNAVAILABLE]	= { "hooks_unavailable", "requests answered 503", 0, 0 },
	[GW_HOOK_EVENTS]	= { "hook_events", "events parsed from accepted hooks", 0, 0 },
	[GW_DEADLETTERS]	= { "deadletters", "files written to the dead-letter directory", 0, 0 },
	[GW_CONNECTIONS]	= { "connections", "open HTTP connections", 1, 0 },
	[GW_HTTP_PORT]		= { "http_port", "bound HTTP(S) port", 1, 0 },
	[GW_JOURNAL_BYTES]	= { "journal_bytes", "bytes in journal segments", 1, 0 },
	[GW_JOURNAL_SEGMENTS]	= { "journal_segments", "journal segment files", 1, 0 },
	[GW_JOURNAL_BACKLOG]	= { "journal_backlog", "journaled, not yet processed by amo-sync (done_seq)", 1, 0 },
	[GW_JOURNAL_COMMITTED]	= { "journal_committed_seq", "last durable journal seq", 1, 0 },
	[GW_JOURNAL_ACKED]	= { "journal_acked_seq", "amo-sync's done_seq as far as the journal trusts it", 1, 0 },
	[GW_JOURNAL_FSYNCS]	= { "journal_fsyncs", "journal group commits (fdatasync)", 1, 0 },
	[GW_JOURNAL_RECORDS]	= { "journal_records", "records written since start", 1, 0 },
	[GW_FORWARDED]		= { "forwarded", "deliveries amo-sync received", 0, 0 },
	[GW_FORWARD_REJECTED]	= { "forward_rejected", "deliveries amo-sync refused for good", 0, 0 },
	[GW_FORWARD_REWINDS]	= { "forward_rewinds", "re-sends after amo-sync restarted", 0, 0 },
	[GW_FORWARD_BAD_DONE]	= { "forward_bad_done_seq", "done_seqs refused (another journal's, or beyond ours)", 0, 0 },
	[GW_JOURNAL_REFUSING]	= { "journal_refusing", "1 while hooks are answered 503 (journal cap, disk full, I/O error)", 1, 0 },
	[GW_CONNS_REFUSED_CLIENT] = { "connections_refused_per_client", "connections closed at once: their client address had CS_GATEWAY_MAX_CONNS_PER_CLIENT open", 0, 0 },
	[GW_TLS_NOT_AFTER]	= { "tls_not_after_timestamp_seconds", "unix time the TLS certificate in use expires (0 = no TLS)", 1, 0 },
	[GW_TLS_RELOADS]	= { "tls_reloads", "certificate and key loaded again on SIGHUP", 0, 0 },
	[GW_TLS_RELOAD_FAILURES] = { "tls_reload_failures", "SIGHUP reloads refused (files unreadable, unparsable, or the key not the certificate's): the old certificate stays", 0, 0 },
};

struct gw_conf {
	char	*listen;
	int	 tls;
	char	*cert;
	char	*key;
	char	*secret;
	int	 journal_on;
	char	*journal_dir;
	int64_t	 journal_max;
	int64_t	 segment_size;
	int64_t	 cursor_interval;
	char	*deadletter_dir;
	int64_t	 deadletter_max;
	int64_t	 body_max;
	int64_t	 max_keys;
	int64_t	 max_depth;
	int64_t	 max_events;
	int64_t	 max_conns;
	int64_t	 max_conns_per_client;
	int64_t	 idle_timeout;
	int64_t	 body_timeout;
	int64_t	 write_timeout;
	char	*amo_url;
	int64_t	 forward_timeout;
	char	*health_url;
	char	*metrics_addr;
};

#define CFG_STRUCT struct gw_conf

static const struct cfg_key gw_keys[] = {
	CFG_KEY("CS_GATEWAY_LISTEN", CFG_STR, listen, "0.0.0.0:8443", 0, 0,
	    "address:port of the webhook listener (port 0 = any free port)"),
	CFG_KEY("CS_GATEWAY_TLS", CFG_BOOL, tls, "on", 0, 0,
	    "HTTPS; off only behind a TLS-terminating proxy"),
	CFG_KEY("CS_GATEWAY_TLS_CERT", CFG_STR, cert, "", 0, 0,
	    "PEM certificate (chain) file, required with TLS"),
	CFG_KEY("CS_GATEWAY_TLS_KEY", CFG_STR, key, "", 0, 0,
	    "PEM private key file, required with TLS"),
	CFG_KEY("CS_GATEWAY_SECRET", CFG_SECRET, secret, NULL, 0, 0,
	    "path token: hooks are accepted at POST /hooks/amo/<secret> (16+ URL-safe chars)"),
	CFG_KEY("CS_GATEWAY_JOURNAL", CFG_BOOL, journal_on, "on", 0, 0,
	    "journal hooks before answering; off = benchmark baseline only, hooks are DROPPED"),
	CFG_KEY("CS_GATEWAY_JOURNAL_DIR", CFG_STR, journal_dir, "/var/lib/crmsync/hook-gateway/journal", 0, 0,
	    "journal directory (segments + cursor)"),
	CFG_KEY("CS_GATEWAY_JOURNAL_MAX", CFG_BYTES, journal_max, "1GiB", 65536, INT64_MAX,
	    "journal cap; past it hooks get 503"),
	CFG_KEY("CS_GATEWAY_SEGMENT_SIZE", CFG_BYTES, segment_size, "64MiB", 4096, INT64_MAX,
	    "journal segment size (at most a quarter of the cap)"),
	CFG_KEY("CS_GATEWAY_CURSOR_INTERVAL", CFG_DURATION, cursor_interval, "200ms", 0, 60000,
	    "how often the acknowledged position is saved"),
	CFG_KEY("CS_GATEWAY_DEADLETTER_DIR", CFG_STR, deadletter_dir, "/var/lib/crmsync/hook-gateway/deadletter", 0, 0,
	    "where malformed bodies and refused deliveries are kept"),
	CFG_KEY("CS_GATEWAY_DEADLETTER_MAX", CFG_BYTES, deadletter_max, "64MiB", 0, INT64_MAX,
	    "dead-letter directory cap"),
	CFG_KEY("CS_GATEWAY_BODY_MAX", CFG_BYTES, body_max, "1MiB", 1024, 64 << 20,
	    "largest hook body; larger gets 413"),
	CFG_KEY("CS_GATEWAY_FORM_MAX_KEYS", CFG_INT, max_keys, "50000", 1, 10000000,
	    "key=value pairs per body"),
	CFG_KEY("CS_GATEWAY_FORM_MAX_DEPTH", CFG_INT, max_depth, "16", 1, FORM_DEPTH_MAX,
	    "bracket nesting of one key"),
	CFG_KEY("CS_GATEWAY_FORM_MAX_EVENTS", CFG_INT, max_events, "10000", 1, 1000000,
	    "events per body"),
	CFG_KEY("CS_GATEWAY_MAX_CONNS", CFG_INT, max_conns, "512", 1, 100000,
	    "open connections; past it new ones are refused (closed at once)"),
	CFG_KEY("CS_GATEWAY_MAX_CONNS_PER_CLIENT", CFG_INT, max_conns_per_client, "64", 1, 100000,
	    "open connections from one client IP address, so one slow peer cannot hold them all; "
	    "behind a proxy every connection has the proxy's address: set it to CS_GATEWAY_MAX_CONNS"),
	CFG_KEY("CS_GATEWAY_IDLE_TIMEOUT", CFG_DURATION, idle_timeout, "60s", 100, 3600000,
	    "keep-alive connection idle limit"),
	CFG_KEY("CS_GATEWAY_BODY_TIMEOUT", CFG_DURATION, body_timeout, "10s", 100, 600000,
	    "time for a request head once it starts, and for a body (slow clients are cut off)"),
	CFG_KEY("CS_GATEWAY_WRITE_TIMEOUT", CFG_DURATION, write_timeout, "10s", 100, 600000,
	    "time to send a reply"),
	CFG_KEY("CS_AMO_URL", CFG_STR, amo_url, "tcp://127.0.0.1:7702", 0, 0,
	    "amo-sync's NNG REP address, where journaled hooks are delivered"),
	CFG_KEY("CS_GATEWAY_FORWARD_TIMEOUT", CFG_DURATION, forward_timeout, "2s", 10, 600000,
	    "wait for amo-sync's ack before resending"),
	CFG_KEY("CS_GATEWAY_HEALTH_URL", CFG_STR, health_url, "tcp://127.0.0.1:7311", 0, 0,
	    "NNG address of the health responder"),
	CFG_KEY("CS_GATEWAY_METRICS_ADDR", CFG_STR, metrics_addr, "", 0, 0,
	    "host:port serving Prometheus GET /metrics over plain HTTP (e.g. 127.0.0.1:9102; empty = off)"),
};

static struct journal *gw_journal;

/* Start-up only: a file the configuration names must be readable, said before anything
 * is created on disk. */
static void
gw_readable(const char *key, const char *path)
{
	FILE *f = fopen(path, "r");

	if (f == NULL)
		fatalx("config.bad", "key=%s path=%s reason=%s", key, lq(path), lq(strerror(errno)));
	fclose(f);
}

/* Health status: refresh the journal gauges; not ok while hooks are refused, and why. */
static int
gw_status(void *arg, char *buf, size_t len)
{
	static const char *const why[] = {
		[JOURNAL_REFUSING_CAP] = "journal at its cap (CS_GATEWAY_JOURNAL_MAX), waiting for amo-sync",
		[JOURNAL_REFUSING_DISK] = "journal filesystem full",
		[JOURNAL_REFUSING_IO] = "journal writes failing",
	};
	struct journal_stats st;
	const struct gw_conf *c = arg;

	if (gw_journal == NULL) {
		snprintf(buf, len, "ok (journal off: hooks are not kept)");
		return 1;
	}
	journal_get_stats(gw_journal, &st);
	stat_set(&gw_stats[GW_JOURNAL_BYTES], (int64_t)st.bytes);
	stat_set(&gw_stats[GW_JOURNAL_SEGMENTS], (int64_t)st.segments);
	stat_set(&gw_stats[GW_JOURNAL_BACKLOG], (int64_t)st.backlog);
	stat_set(&gw_stats[GW_JOURNAL_COMMITTED], (int64_t)st.committed);
	stat_set(&gw_stats[GW_JOURNAL_ACKED], (int64_t)st.acked);
	stat_set(&gw_stats[GW_JOURNAL_FSYNCS], (int64_t)st.fsyncs);
	stat_set(&gw_stats[GW_JOURNAL_RECORDS], (int64_t)st.records);
	stat_set(&gw_stats[GW_JOURNAL_REFUSING], st.refusing != JOURNAL_ACCEPTING);
	if (st.refusing != JOURNAL_ACCEPTING) {
		snprintf(buf, len, "refusing hooks (503) for %" PRId64 " s: %s; journal %" PRIu64
		    " bytes, backlog %" PRIu64 ", %" PRIu64 " refused", st.refusing_ms / 1000,
		    why[st.refusing], st.bytes, st.backlog, st.full);
		return 0;
	}
	if (st.bytes * 10 >= (uint64_t)c->journal_max * 9) {
		snprintf(buf, len, "degraded: journal at %" PRIu64 " of %" PRId64 " bytes, backlog %" PRIu64,
		    st.bytes, c->journal_max, st.backlog);
		return 0;
	}
	snprintf(buf, len, "ok");
	return 1;
}

/* What start-up can check beyond the key table: one clear line, or a warning. */
static void
check_config(const struct gw_conf *c)
{
	if (strlen(c->secret) < 16)
		fatalx("config.bad", "key=CS_GATEWAY_SECRET reason=%s",
		    lq("must be at least 16 characters (it is the only authentication)"));
	if (strspn(c->secret, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~") !=
	    strlen(c->secret))
		fatalx("config.bad", "key=CS_GATEWAY_SECRET reason=%s",
		    lq("only URL-safe characters [A-Za-z0-9-._~]"));
	if (c->tls && (c->cert[0] == '\0' || c->key[0] == '\0'))
		fatalx("config.bad", "key=CS_GATEWAY_TLS_CERT reason=%s",
		    lq("TLS is on: set CS_GATEWAY_TLS_CERT and CS_GATEWAY_TLS_KEY (or CS_GATEWAY_TLS=off behind a proxy)"));
	if (c->tls) {
		gw_readable("CS_GATEWAY_TLS_CERT", c->cert);
		gw_readable("CS_GATEWAY_TLS_KEY", c->key);
	} else {
		log_warnx("config.plain_http", "reason=%s", lq("CS_GATEWAY_TLS=off: serving plain HTTP"));
	}
	if (strrchr(c->listen, ':') == NULL || strspn(strrchr(c->listen, ':') + 1, "0123456789") !=
	    strlen(strrchr(c->listen, ':') + 1) || strrchr(c->listen, ':')[1] == '\0')
		fatalx("config.bad", "key=CS_GATEWAY_LISTEN value=%s reason=%s", lq(c->listen),
		    lq("expected address:port, e.g. 0.0.0.0:8443"));
}

/* The journal (replayed) and its forwarder to amo-sync; nothing when the journal is off. */
static void
journal_start(const struct gw_conf *c, struct deadletter *dl, struct forward **fw)
{
	struct journal_opts jo;
	struct forward_opts fo;
	int rv;

	if (!c->journal_on) {
		log_warnx("config.journal_off", "reason=%s",
		    lq("CS_GATEWAY_JOURNAL=off: hooks are answered 204 and DROPPED (benchmark baseline only)"));
		return;
	}
	memset(&jo, 0, sizeof(jo));
	jo.dir = c->journal_dir;
	jo.max_bytes = (uint64_t)c->journal_max;
	jo.segment_bytes = (uint64_t)c->segment_size;
	jo.cursor_interval_ms = c->cursor_interval;
	if ((rv = journal_open(&gw_journal, &jo)) != 0)
		fatalx("journal.open_failed", "dir=%s err=%s", lq(c->journal_dir),
		    lq(rv == CS_EIO ? "cannot create, read or write it (the line before says why)" :
		    cs_strerror(rv)));
	memset(&fo, 0, sizeof(fo));
	fo.url = c->amo_url;
	fo.timeout_ms = (int)c->forward_timeout;
	fo.journal = gw_journal;
	fo.deadletter = dl;
	if ((rv = forward_start(fw, &fo)) != 0)
		fatalx("forward.start_failed", "url=%s err=%s", lq(c->amo_url), lq(cs_strerror(rv)));
}

/* The HTTPS listener. */
static void
listener_start(const struct gw_conf *c, struct deadletter *dl, struct httpd **httpd)
{
	struct httpd_opts ho;
	int rv;

	memset(&ho, 0, sizeof(ho));
	ho.listen = c->listen;
	ho.tls = c->tls;
	ho.cert_file = c->cert;
	ho.key_file = c->key;
	ho.secret = c->secret;
	ho.body_max = (size_t)c->body_max;
	ho.idle_timeout_ms = c->idle_timeout;
	ho.body_timeout_ms = c->body_timeout;
	ho.write_timeout_ms = c->write_timeout;
	ho.max_conns = (int)c->max_conns;
	ho.max_conns_per_client = (int)c->max_conns_per_client;
	ho.limits.max_pairs = (size_t)c->max_keys;
	ho.limits.max_depth = (size_t)c->max_depth;
	ho.limits.max_key = 1024;
	ho.limits.max_events = (size_t)c->max_events;
	ho.journal = gw_journal;
	ho.deadletter = dl;
	if ((rv = httpd_start(httpd, &ho)) != 0)
		fatalx("http.start_failed", "listen=%s err=%s", lq(c->listen), lq(cs_strerror(rv)));
}

int
main(int argc, char **argv)
{
	struct gw_conf c;
	struct svc_desc d = {
		.name = "hook-gateway",
		.summary = "crmsync-hook-gateway: receives amoCRM webhooks over HTTPS, journals them to\n"
		    "disk (fsync) before answering 204, and forwards them in order to amo-sync over NNG.",
		.keys = gw_keys,
		.nkeys = CFG_NKEYS(gw_keys),
		.conf = &c,
	};
	struct deadletter *dl = NULL;
	struct forward *fw = NULL;
	struct httpd *httpd = NULL;
	struct health *health = NULL;
	struct metrics *metrics = NULL;
	int rv;

	memset(&c, 0, sizeof(c));
	svc_init(argc, argv, &d);
	svc_signals();
	svc_reload_signal();	/* SIGHUP: load the certificate and key again */
	check_config(&c);
	if ((rv = deadletter_open(&dl, c.deadletter_dir, (uint64_t)c.deadletter_max)) != 0)
		fatalx("deadletter.open_failed", "dir=%s err=%s", lq(c.deadletter_dir), lq(cs_strerror(rv)));
	journal_start(&c, dl, &fw);
	listener_start(&c, dl, &httpd);
	/* Last: a health answer means the listener is up and the journal replayed. */
	if ((rv = health_start(&health, c.health_url, "hook-gateway", gw_stats, GW_NSTATS,
	    gw_status, &c)) != 0)
		fatalx("health.start_failed", "url=%s err=%s", lq(c.health_url), lq(cs_strerror(rv)));
	if ((rv = metrics_start(&metrics, c.metrics_addr, "hook-gateway", gw_stats, GW_NSTATS)) != 0)
		fatalx("metrics.listen_failed", "addr=%s err=%s", lq(c.metrics_addr), lq(cs_strerror(rv)));
	log_info("gateway.ready", "port=%d journal=%s amo=%s health=%s", httpd_port(httpd),
	    c.journal_on ? lq(c.journal_dir) : "off", lq(c.amo_url), lq(c.health_url));

	while (!svc_stop) {
		nng_msleep(100);
		if (atomic_exchange(&svc_reload, 0)) {
			log_info("gateway.reload", "signal=SIGHUP what=tls certificate and key");
			(void)httpd_reload_tls(httpd);
		}
	}

	log_info("gateway.stopping", "reason=signal");
	metrics_stop(metrics);
	health_stop(health);
	httpd_stop(httpd);		/* in-flight hooks get their journal answer first */
	forward_stop(fw);
	journal_close(gw_journal);	/* saves the cursor */
	deadletter_close(dl);
	cfg_free(gw_keys, CFG_NKEYS(gw_keys), &c);
	log_info("gateway.stopped", "accepted=%" PRId64 " forwarded=%" PRId64,
	    stat_get(&gw_stats[GW_HOOKS_ACCEPTED]), stat_get(&gw_stats[GW_FORWARDED]));
	return 0;
}
