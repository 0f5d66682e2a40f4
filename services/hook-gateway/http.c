/*
 * http.c - HTTPS front end for amoCRM webhooks (see http.h).
 *
 * NNG calls http_first() with a connection's first request. We hijack the connection and
 * from then on one struct http_session drives it with a single aio through the states
 *   HEAD (request line + headers, idle timeout) -> [CONTINUE] -> BODY (exactly
 *   Content-Length bytes, body timeout) -> JOURNAL (waiting for the fsync) -> WRITE -> HEAD
 * Every reply has a status and no body. When unread body bytes would desynchronise the
 * stream (404 to a POST, 411, 413, 415) the connection is closed after the reply, but only
 * after a lingering read that discards what the client is still sending (bounded in bytes
 * and time): closing with unread data makes the kernel send RST, and the client may then
 * never see the 413.
 * Ended sessions go to a reaper thread: freeing an aio or a connection may wait for
 * callbacks, which must not happen on NNG's (or the journal's) callback threads.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <nng/supplemental/tls/tls.h>

#include "arena.h"
#include "deadletter.h"
#include "errors.h"
#include "form.h"
#include "gateway.h"
#include "http.h"
#include "journal.h"
#include "log.h"

#define HTTP_HOOK_PREFIX	"/hooks/amo/"
#define HTTP_CONTINUE		"HTTP/1.1 100 Continue\r\n\r\n"
#define HTTP_FORM_TYPE		"application/x-www-form-urlencoded"
#define HTTP_PEM_MAX		(1 << 20)
#define HTTP_STOP_WAIT_MS	10000
#define HTTP_LINGER_MS		2000
#define HTTP_DRAIN_BUF		16384

/* http_respond() flags */
#define HR_CLOSE	1	/* close after the reply */
#define HR_LINGER	2	/* unread body bytes follow: drain them before closing */

enum http_state { HS_HEAD, HS_CONTINUE, HS_BODY, HS_JOURNAL, HS_WRITE, HS_LINGER, HS_DEAD };

struct http_session {
	struct http		*h;
	struct http_session	*prev, *next;	/* h->sessions; h->graves once ended */
	nng_http_conn		*conn;
	nng_http_req		*req;
	nng_http_res		*res;
	nng_aio			*aio;
	enum http_state		 state;
	char			*body;
	size_t			 bodylen;
	size_t			 nevents;
	int			 close;		/* close after the reply being written */
	int			 linger;	/* ... after draining up to linger_left bytes */
	uint64_t		 linger_left;
	uint64_t		 clen;		/* Content-Length of the current request, 0 if none */
	char			*drain;
};

struct http {
	struct http_opts	 o;
	char			*secret;
	size_t			 secretlen;
	nng_http_server		*srv;
	nng_tls_config		*tls;
	int			 port;
	int			 started;	/* nng_http_server_start succeeded */
	atomic_int		 closing;
	pthread_mutex_t		 mtx;
	pthread_cond_t		 cv;
	struct http_session	*sessions;	/* live */
	struct http_session	*graves;	/* ended, waiting for the reaper */
	int			 nsessions;	/* live + not yet reaped */
	int			 reaper_stop;
	int			 reaper_started;
	pthread_t		 reaper;
	_Atomic int64_t		 overload_logged;
};

static void http_session_cb(void *arg);

static int64_t
http_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- session lifetime ---- */

static void
http_session_end(struct http_session *s)
{
	struct http *h = s->h;

	pthread_mutex_lock(&h->mtx);
	s->state = HS_DEAD;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		h->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	s->prev = NULL;
	s->next = h->graves;
	h->graves = s;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mtx);
}

static void *
http_reaper(void *arg)
{
	struct http *h = arg;

	pthread_mutex_lock(&h->mtx);
	for (;;) {
		struct http_session *s, *next;
		int n = 0;

		while (h->graves == NULL && !h->reaper_stop)
			pthread_cond_wait(&h->cv, &h->mtx);
		if (h->graves == NULL)
			break;
		s = h->graves;
		h->graves = NULL;
		pthread_mutex_unlock(&h->mtx);
		for (; s != NULL; s = next) {
			next = s->next;
			nng_aio_free(s->aio);	/* waits for its callback to return */
			if (s->conn != NULL)
				nng_http_conn_close(s->conn);	/* closes and frees */
			if (s->req != NULL)
				nng_http_req_free(s->req);
			if (s->res != NULL)
				nng_http_res_free(s->res);
			free(s->body);
			free(s->drain);
			free(s);
			n++;
		}
		pthread_mutex_lock(&h->mtx);
		h->nsessions -= n;
		stat_set(&gw_stats[GW_CONNECTIONS], h->nsessions);
		pthread_cond_broadcast(&h->cv);
	}
	pthread_mutex_unlock(&h->mtx);
	return NULL;
}

/* ---- replies ---- */

static void
http_respond(struct http_session *s, uint16_t status, int flags)
{
	struct http *h = s->h;
	nng_http_res *res = NULL;

	if (flags & (HR_CLOSE | HR_LINGER))
		s->close = 1;
	if (flags & HR_LINGER) {
		uint64_t cap = 4 * (uint64_t)h->o.body_max;
		s->linger = 1;
		s->linger_left = s->clen > 0 && s->clen < cap ? s->clen : cap;
	}
	if (status == 204)
		stat_add(&gw_stats[GW_HOOKS_ACCEPTED], 1);
	else if (status == 503)
		stat_add(&gw_stats[GW_HOOKS_UNAVAILABLE], 1);
	else
		stat_add(&gw_stats[GW_HOOKS_REJECTED], 1);
	if (s->res != NULL) {
		nng_http_res_free(s->res);
		s->res = NULL;
	}
	/* No body, ever: a body costs a ~40 ms Nagle stall per reply over NNG's TLS. */
	if (nng_http_res_alloc(&res) != 0 || nng_http_res_set_status(res, status) != 0 ||
	    (status != 204 && nng_http_res_set_header(res, "Content-Length", "0") != 0) ||
	    (s->close && nng_http_res_set_header(res, "Connection", "close") != 0)) {
		if (res != NULL)
			nng_http_res_free(res);
		http_session_end(s);
		return;
	}
	s->res = res;
	s->state = HS_WRITE;
	nng_aio_set_timeout(s->aio, (nng_duration)h->o.write_timeout_ms);
	nng_http_conn_write_res(s->conn, res, s->aio);
}

/* ---- request checks ---- */

/* POST to /hooks/amo/<secret>[?...]; the secret compared in constant time. */
static int
http_route_ok(struct http *h, const char *method, const char *uri)
{
	size_t plen = strlen(HTTP_HOOK_PREFIX), glen;
	const char *tok;
	unsigned char d;

	if (method == NULL || uri == NULL || strcmp(method, "POST") != 0 ||
	    strncmp(uri, HTTP_HOOK_PREFIX, plen) != 0)
		return 0;
	tok = uri + plen;
	glen = strcspn(tok, "?#");
	d = glen != h->secretlen;
	for (size_t i = 0; i < h->secretlen; i++)
		d |= (unsigned char)(h->secret[i] ^ (i < glen ? tok[i] : 0));
	return d == 0;
}

static int
http_parse_len(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	size_t n = 0;

	while (*s == ' ' || *s == '\t')
		s++;
	for (; *s >= '0' && *s <= '9'; s++, n++) {
		if (n >= 18)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	while (*s == ' ' || *s == '\t')
		s++;
	if (n == 0 || *s != '\0')
		return -1;
	*out = v;
	return 0;
}

static int
http_is_form(const char *ctype)
{
	size_t n = strlen(HTTP_FORM_TYPE);

	while (*ctype == ' ')
		ctype++;
	return strncasecmp(ctype, HTTP_FORM_TYPE, n) == 0 &&
	    (ctype[n] == '\0' || ctype[n] == ';' || ctype[n] == ' ');
}

/* ---- the hook itself ---- */

static void
http_session_journaled(void *arg, uint64_t seq, int err)
{
	struct http_session *s = arg;

	if (err == 0) {
		stat_add(&gw_stats[GW_HOOK_EVENTS], (int64_t)s->nevents);
		log_debug("hook.accepted", "seq=%" PRIu64 " events=%zu", seq, s->nevents);
	} else if (err != CS_EFULL) {
		log_warnx("hook.not_journaled", "seq=%" PRIu64 " err=%s action=answering_503",
		    seq, lq(cs_strerror(err)));
	}
	http_respond(s, err == 0 ? 204 : 503, 0);
}

static void
http_deadletter(struct http *h, const char *kind, const char *body, size_t len, char *path,
    size_t pathlen)
{
	path[0] = '\0';
	if (h->o.deadletter != NULL &&
	    deadletter_write(h->o.deadletter, kind, "form", body, len, path, pathlen) == 0)
		stat_add(&gw_stats[GW_DEADLETTERS], 1);
}

static void
http_session_hook(struct http_session *s)
{
	struct http *h = s->h;
	Crmsync__HookDelivery d = CRMSYNC__HOOK_DELIVERY__INIT;
	struct arena a;
	char err[160], path[4200];
	uint8_t *buf = NULL;
	size_t n = 0;
	int rv;

	arena_init(&a, form_arena_size(s->bodylen, &h->o.limits));
	rv = form_parse(s->body, s->bodylen, &h->o.limits, &a, &d, err, sizeof(err));
	if (rv != 0) {
		http_deadletter(h, "malformed", s->body, s->bodylen, path, sizeof(path));
		log_warnx("hook.malformed", "bytes=%zu err=%s reason=%s deadletter=%s",
		    s->bodylen, lq(cs_strerror(rv)), lq(err), lq(path));
		arena_free(&a);
		free(s->body);
		s->body = NULL;
		http_respond(s, 400, 0);
		return;
	}
	if (d.n_events == 0) {
		/* amoCRM's account block but nothing we know: keep it, and accept it. */
		http_deadletter(h, "noevents", s->body, s->bodylen, path, sizeof(path));
		log_warnx("hook.no_events", "bytes=%zu subdomain=%s deadletter=%s", s->bodylen,
		    lq(d.subdomain), lq(path));
	}
	d.received_at_us = http_now_us();
	s->nevents = d.n_events;
	n = crmsync__hook_delivery__get_packed_size(&d);
	if ((buf = malloc(n > 0 ? n : 1)) != NULL)
		crmsync__hook_delivery__pack(&d, buf);
	arena_free(&a);
	free(s->body);
	s->body = NULL;
	if (buf == NULL) {
		http_respond(s, 503, 0);
		return;
	}
	if (h->o.journal == NULL) {
		free(buf);
		stat_add(&gw_stats[GW_HOOK_EVENTS], (int64_t)s->nevents);
		http_respond(s, 204, 0);
		return;
	}
	s->state = HS_JOURNAL;
	rv = journal_append(h->o.journal, buf, n, http_session_journaled, s, NULL);
	free(buf);
	if (rv != 0) {
		if (rv != CS_EFULL)
			log_warnx("hook.not_journaled", "err=%s action=answering_503",
			    lq(cs_strerror(rv)));
		http_respond(s, 503, 0);
	}
	/* On success the session belongs to the journal callback now: do not touch s. */
}

static void
http_session_read_body(struct http_session *s)
{
	nng_iov iov;

	iov.iov_buf = s->body;
	iov.iov_len = s->bodylen;
	s->state = HS_BODY;
	nng_aio_set_iov(s->aio, 1, &iov);
	nng_aio_set_timeout(s->aio, (nng_duration)s->h->o.body_timeout_ms);
	nng_http_conn_read_all(s->conn, s->aio);
}

static void
http_session_request(struct http_session *s)
{
	struct http *h = s->h;
	nng_http_req *req = s->req;
	const char *method = nng_http_req_get_method(req);
	const char *uri = nng_http_req_get_uri(req);
	const char *vers = nng_http_req_get_version(req);
	const char *te = nng_http_req_get_header(req, "Transfer-Encoding");
	const char *cl = nng_http_req_get_header(req, "Content-Length");
	const char *connhdr = nng_http_req_get_header(req, "Connection");
	const char *ctype = nng_http_req_get_header(req, "Content-Type");
	const char *expect = nng_http_req_get_header(req, "Expect");
	int has_body = te != NULL || (cl != NULL && strcmp(cl, "0") != 0);
	uint64_t len;

	s->linger = 0;
	s->clen = 0;
	s->close = vers == NULL || strcmp(vers, "HTTP/1.1") != 0 ||
	    (connhdr != NULL && strcasestr(connhdr, "close") != NULL) || atomic_load(&h->closing);
	if (!http_route_ok(h, method, uri)) {
		/* Nothing about the path is logged: it may hold a near-miss of the secret. */
		log_debug("http.not_found", "method=%s", lq(method));
		http_respond(s, 404, has_body ? HR_LINGER : 0);
		return;
	}
	if (te != NULL) {
		/* NNG would hand us an empty body and then drop the connection. */
		log_info("hook.refused", "status=411 reason=%s", lq("Transfer-Encoding not supported"));
		http_respond(s, 411, HR_LINGER);
		return;
	}
	if (cl == NULL) {
		http_respond(s, 411, 0);
		return;
	}
	if (http_parse_len(cl, &len) != 0) {
		http_respond(s, 400, HR_LINGER);
		return;
	}
	s->clen = len;
	if (len > h->o.body_max) {
		log_warnx("hook.too_large", "bytes=%" PRIu64 " max=%zu", len, h->o.body_max);
		http_respond(s, 413, HR_LINGER);
		return;
	}
	if (len == 0) {
		http_respond(s, 400, 0);
		return;
	}
	if (ctype != NULL && !http_is_form(ctype)) {
		log_info("hook.refused", "status=415 content_type=%s", lq(ctype));
		http_respond(s, 415, HR_LINGER);
		return;
	}
	if ((s->body = malloc((size_t)len + 1)) == NULL) {
		http_respond(s, 503, HR_LINGER);
		return;
	}
	s->bodylen = (size_t)len;
	if (expect != NULL && strcasecmp(expect, "100-continue") == 0) {
		nng_iov iov;
		iov.iov_buf = (void *)HTTP_CONTINUE;
		iov.iov_len = strlen(HTTP_CONTINUE);
		s->state = HS_CONTINUE;
		nng_aio_set_iov(s->aio, 1, &iov);
		nng_aio_set_timeout(s->aio, (nng_duration)h->o.write_timeout_ms);
		nng_http_conn_write_all(s->conn, s->aio);
		return;
	}
	http_session_read_body(s);
}

/* Read and discard what the client still sends, then (from the callback) close. */
static void
http_session_linger(struct http_session *s)
{
	nng_iov iov;

	if (s->drain == NULL && (s->drain = malloc(HTTP_DRAIN_BUF)) == NULL) {
		http_session_end(s);
		return;
	}
	iov.iov_buf = s->drain;
	iov.iov_len = HTTP_DRAIN_BUF;
	s->state = HS_LINGER;
	nng_aio_set_iov(s->aio, 1, &iov);
	nng_aio_set_timeout(s->aio, HTTP_LINGER_MS);
	nng_http_conn_read(s->conn, s->aio);
}

static void
http_session_cb(void *arg)
{
	struct http_session *s = arg;
	struct http *h = s->h;
	int rv = nng_aio_result(s->aio);

	switch (s->state) {
	case HS_HEAD:
		if (rv != 0) {
			if (rv != NNG_ECLOSED && rv != NNG_ECONNRESET && rv != NNG_ECONNSHUT &&
			    rv != NNG_ECONNREFUSED &&
			    rv != NNG_ETIMEDOUT && rv != NNG_ECANCELED)
				log_debug("http.read_failed", "err=%s", lq(nng_strerror(rv)));
			http_session_end(s);
			return;
		}
		http_session_request(s);
		return;
	case HS_CONTINUE:
		if (rv != 0) {
			http_session_end(s);
			return;
		}
		http_session_read_body(s);
		return;
	case HS_BODY:
		if (rv != 0) {
			/* A slow or vanished client: it never got a 2xx, amoCRM will retry. */
			log_info("http.body_aborted", "bytes=%zu err=%s", s->bodylen,
			    lq(nng_strerror(rv)));
			http_session_end(s);
			return;
		}
		http_session_hook(s);
		return;
	case HS_WRITE:
		nng_http_res_free(s->res);
		s->res = NULL;
		if (rv == 0 && s->linger) {
			http_session_linger(s);
			return;
		}
		if (rv != 0 || s->close || atomic_load(&h->closing)) {
			http_session_end(s);
			return;
		}
		s->state = HS_HEAD;
		nng_http_req_reset(s->req);
		nng_aio_set_timeout(s->aio, (nng_duration)h->o.idle_timeout_ms);
		nng_http_conn_read_req(s->conn, s->req, s->aio);
		return;
	case HS_LINGER:
		if (rv != 0 || nng_aio_count(s->aio) >= s->linger_left) {
			http_session_end(s);
			return;
		}
		s->linger_left -= nng_aio_count(s->aio);
		http_session_linger(s);
		return;
	default:
		http_session_end(s);
		return;
	}
}

/* NNG's handler: the first request of a new connection. */
static void
http_first(nng_aio *saio)
{
	nng_http_req *req = nng_aio_get_input(saio, 0);
	nng_http_handler *hd = nng_aio_get_input(saio, 1);
	nng_http_conn *conn = nng_aio_get_input(saio, 2);
	struct http *h = nng_http_handler_get_data(hd);
	struct http_session *s = NULL;
	nng_http_res *res;
	int nsess;

	pthread_mutex_lock(&h->mtx);
	if (!atomic_load(&h->closing) && h->nsessions < h->o.max_conns &&
	    (s = calloc(1, sizeof(*s))) != NULL) {
		if (nng_aio_alloc(&s->aio, http_session_cb, s) != 0) {
			free(s);
			s = NULL;
		} else {
			s->h = h;
			s->next = h->sessions;
			if (h->sessions != NULL)
				h->sessions->prev = s;
			h->sessions = s;
			h->nsessions++;
		}
	}
	nsess = h->nsessions;
	pthread_mutex_unlock(&h->mtx);
	if (s == NULL) {
		int64_t now = http_now_us(), last = atomic_load(&h->overload_logged);
		if (now - last > 10 * 1000000 &&
		    atomic_compare_exchange_strong(&h->overload_logged, &last, now))
			log_warnx("http.overload", "connections=%d max=%d action=answering_503",
			    nsess, h->o.max_conns);
		stat_add(&gw_stats[GW_HOOKS_UNAVAILABLE], 1);
		if (nng_http_res_alloc(&res) == 0) {
			nng_http_res_set_status(res, 503);
			nng_http_res_set_header(res, "Content-Length", "0");
			nng_http_res_set_header(res, "Connection", "close");
			nng_aio_set_output(saio, 0, res);
			nng_aio_finish(saio, 0);
		} else {
			nng_aio_finish(saio, NNG_ENOMEM);
		}
		return;
	}
	stat_set(&gw_stats[GW_CONNECTIONS], nsess);
	/* From here on the connection and the request are ours. */
	nng_http_hijack(conn);
	s->conn = conn;
	s->req = req;
	nng_aio_set_output(saio, 0, NULL);
	nng_aio_finish(saio, 0);
	http_session_request(s);
}

/* ---- start / stop ---- */

static int
http_read_pem(const char *path, char **out)
{
	FILE *f;
	char *buf;
	size_t n;

	*out = NULL;
	if ((f = fopen(path, "rb")) == NULL)
		return CS_ECONFIG;
	if ((buf = malloc(HTTP_PEM_MAX + 1)) == NULL) {
		fclose(f);
		return CS_ENOMEM;
	}
	n = fread(buf, 1, HTTP_PEM_MAX + 1, f);
	fclose(f);
	if (n == 0 || n > HTTP_PEM_MAX) {
		free(buf);
		return CS_ECONFIG;
	}
	buf[n] = '\0';
	*out = buf;
	return 0;
}

static int
http_tls_setup(struct http *h)
{
	char *cert = NULL, *key = NULL;
	int rv;

	if ((rv = nng_tls_config_alloc(&h->tls, NNG_TLS_MODE_SERVER)) != 0) {
		log_warnx("http.tls_failed", "err=%s", lq(nng_strerror(rv)));
		return CS_ENNG;
	}
	/* TLS 1.2 or later; NNG's mbedTLS 2.28 tops out at 1.2 in practice. */
	if (nng_tls_config_version(h->tls, NNG_TLS_1_2, NNG_TLS_1_3) != 0 &&
	    (rv = nng_tls_config_version(h->tls, NNG_TLS_1_2, NNG_TLS_1_2)) != 0) {
		log_warnx("http.tls_failed", "err=%s", lq(nng_strerror(rv)));
		return CS_ENNG;
	}
	if (http_read_pem(h->o.cert_file, &cert) != 0) {
		log_warnx("http.tls_cert_unreadable", "path=%s", lq(h->o.cert_file));
		return CS_ECONFIG;
	}
	if (http_read_pem(h->o.key_file, &key) != 0) {
		log_warnx("http.tls_key_unreadable", "path=%s", lq(h->o.key_file));
		free(cert);
		return CS_ECONFIG;
	}
	rv = nng_tls_config_own_cert(h->tls, cert, key, NULL);
	explicit_bzero(key, strlen(key));
	free(key);
	free(cert);
	if (rv != 0) {
		log_warnx("http.tls_cert_rejected", "cert=%s key=%s err=%s", lq(h->o.cert_file),
		    lq(h->o.key_file), lq(nng_strerror(rv)));
		return CS_ECONFIG;
	}
	if ((rv = nng_http_server_set_tls(h->srv, h->tls)) != 0) {
		log_warnx("http.tls_failed", "err=%s", lq(nng_strerror(rv)));
		return CS_ENNG;
	}
	return 0;
}

int
http_start(struct http **out, const struct http_opts *o)
{
	struct http *h;
	nng_http_handler *hd = NULL;
	nng_url *url = NULL;
	nng_sockaddr sa;
	char urlbuf[512];
	int rv, nrv;

	*out = NULL;
	if (o->secret == NULL || o->secret[0] == '\0' || o->max_conns <= 0)
		return CS_EINVAL;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return CS_ENOMEM;
	h->o = *o;
	pthread_mutex_init(&h->mtx, NULL);
	pthread_cond_init(&h->cv, NULL);
	if ((h->secret = strdup(o->secret)) == NULL) {
		rv = CS_ENOMEM;
		goto fail;
	}
	h->secretlen = strlen(h->secret);
	h->o.secret = NULL;
	h->o.listen = NULL;
	if (pthread_create(&h->reaper, NULL, http_reaper, h) != 0) {
		rv = CS_ENOMEM;
		goto fail;
	}
	h->reaper_started = 1;

	snprintf(urlbuf, sizeof(urlbuf), "%s://%s", o->tls ? "https" : "http", o->listen);
	rv = CS_ECONFIG;
	if ((nrv = nng_url_parse(&url, urlbuf)) != 0) {
		log_warnx("http.bad_address", "listen=%s err=%s", lq(o->listen), lq(nng_strerror(nrv)));
		goto fail;
	}
	if ((nrv = nng_http_server_hold(&h->srv, url)) != 0) {
		log_warnx("http.server_failed", "listen=%s err=%s", lq(o->listen), lq(nng_strerror(nrv)));
		goto fail;
	}
	if (o->tls && (rv = http_tls_setup(h)) != 0)
		goto fail;
	rv = CS_ENNG;
	if ((nrv = nng_http_handler_alloc(&hd, "/", http_first)) != 0 ||
	    (nrv = nng_http_handler_set_method(hd, NULL)) != 0 ||
	    (nrv = nng_http_handler_set_tree(hd)) != 0 ||
	    (nrv = nng_http_handler_collect_body(hd, false, 0)) != 0 ||
	    (nrv = nng_http_handler_set_data(hd, h, NULL)) != 0 ||
	    (nrv = nng_http_server_add_handler(h->srv, hd)) != 0) {
		log_warnx("http.handler_failed", "err=%s", lq(nng_strerror(nrv)));
		if (hd != NULL)
			nng_http_handler_free(hd);
		goto fail;
	}
	if ((nrv = nng_http_server_start(h->srv)) != 0) {
		log_warnx("http.listen_failed", "listen=%s err=%s", lq(o->listen), lq(nng_strerror(nrv)));
		rv = nrv == NNG_EADDRINUSE || nrv == NNG_EADDRINVAL ? CS_ECONFIG : CS_ENNG;
		goto fail;
	}
	h->started = 1;
	if (nng_http_server_get_addr(h->srv, &sa) == 0)
		h->port = sa.s_family == NNG_AF_INET6 ? ntohs(sa.s_in6.sa_port) : ntohs(sa.s_in.sa_port);
	nng_url_free(url);
	stat_set(&gw_stats[GW_HTTP_PORT], h->port);
	log_info("http.listening", "scheme=%s listen=%s port=%d path=%s max_conns=%d body_max=%zu",
	    o->tls ? "https" : "http", lq(o->listen), h->port, lq(HTTP_HOOK_PREFIX "***"),
	    o->max_conns, o->body_max);
	*out = h;
	return 0;
fail:
	if (url != NULL)
		nng_url_free(url);
	http_stop(h);
	return rv;
}

int
http_port(struct http *h)
{
	return h->port;
}

void
http_stop(struct http *h)
{
	struct timespec ts;
	int waited = 0;

	if (h == NULL)
		return;
	atomic_store(&h->closing, 1);
	if (h->started)
		nng_http_server_stop(h->srv);
	pthread_mutex_lock(&h->mtx);
	/* Cut idle and half-read connections; hooks waiting for the journal and replies
	 * being written finish first (each checks `closing` before reading again). */
	while (h->sessions != NULL && waited < HTTP_STOP_WAIT_MS) {
		for (struct http_session *s = h->sessions; s != NULL; s = s->next)
			if (s->state == HS_HEAD || s->state == HS_CONTINUE || s->state == HS_BODY ||
			    s->state == HS_LINGER)
				nng_aio_cancel(s->aio);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&h->cv, &h->mtx, &ts);
		waited += 50;
	}
	if (h->sessions != NULL) {
		/* A journal callback may still come for them: leak rather than free under it. */
		log_warnx("http.stop_timeout", "sessions=%d action=leaked", h->nsessions);
		pthread_mutex_unlock(&h->mtx);
		return;
	}
	h->reaper_stop = 1;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mtx);
	if (h->reaper_started)
		pthread_join(h->reaper, NULL);
	if (h->srv != NULL)
		nng_http_server_release(h->srv);
	if (h->tls != NULL)
		nng_tls_config_free(h->tls);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mtx);
	if (h->secret != NULL) {
		explicit_bzero(h->secret, h->secretlen);
		free(h->secret);
	}
	free(h);
}
