/*
 * httpd.c - HTTPS front end for amoCRM webhooks (see httpd.h).
 *
 * NNG provides the connections and the TLS: an nng_stream_listener on tls+tcp:// with
 * NNG's mbedTLS engine. The small part of HTTP/1.1 a webhook needs is spoken here: request
 * line and headers (8 KiB), Content-Length bodies, keep-alive, pipelining, 100-continue,
 * and replies that are a status line and nothing else.
 * Why not NNG's HTTP server: in NNG 1.5 a TLS connection whose peer resets while no read
 * is queued strands every later read, and nng_http_conn_close() then waits for it forever
 * (an unauthenticated client sending "GET /" and a RST could wedge the server). Owning the
 * stream, we can always nng_stream_close() it, which fails whatever TLS has queued.
 * Owning the socket also lets us set TCP_NODELAY (NNG's server forces Nagle on).
 *
 * One struct httpd_session per connection: two aios (reads, writes) under a session mutex.
 *   head -> [100 Continue] -> body -> journal fsync -> 204 -> next head ...
 * Every phase has a deadline; the housekeeping thread closes the stream of a session past
 * it (the one thing that completes a stuck read), and frees ended sessions, since freeing
 * aios and streams may wait for callbacks.
 * Connections are capped in all (max_conns) and per client address (max_conns_per_client,
 * a small hash table of counts), so one slow peer cannot hold every slot (slowloris).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/util/platform.h>

#include "arena.h"
#include "clock.h"
#include "deadletter.h"
#include "errors.h"
#include "form.h"
#include "gateway.h"
#include "httpd.h"
#include "journal.h"
#include "log.h"
#include "tlsconf.h"

#define HTTP_HOOK_PREFIX	"/hooks/amo/"
#define HTTP_FORM_TYPE		"application/x-www-form-urlencoded"
#define HTTP_HEAD_MAX		8192	/* request line + headers */
#define HTTP_MAX_HEADERS	64
#define HTTP_RBUF		16384	/* a head, and what a client sent after it */
#define HTTP_TICK_MS		100
#define HTTP_LINGER_MS		2000
#define HTTP_DRAIN_CAP		(64 * 1024)
#define HTTP_STOP_WAIT_MS	10000

enum httpd_rstate { RS_NONE, RS_READ, RS_BODY, RS_DRAIN };
enum httpd_wstate { WS_NONE, WS_CONTINUE, WS_REPLY };

struct httpd_session {
	struct httpd		*h;
	struct httpd_session	*prev, *next;	/* h->sessions; h->graves once buried */
	pthread_mutex_t		 mtx;		/* everything below */
	nng_stream		*st;
	nng_aio			*raio, *waio;
	enum httpd_rstate	 rstate;	/* a read is pending unless RS_NONE */
	enum httpd_wstate	 wstate;	/* a write is pending unless WS_NONE */
	int			 journaling;	/* a journal callback is due */
	int			 inreq;		/* a request is being answered */
	int			 close;		/* close once the reply is written */
	int			 dead;		/* stream closed: no new operations */
	int			 buried;
	uint16_t		 due;		/* reply waiting for the 100 Continue write */
	int64_t			 deadline;	/* monotonic ms, 0 = none */
	const char		*phase;		/* what the deadline is for, for the log */
	int64_t			 head_started;	/* first byte of the current head, 0 = none yet */
	uint64_t		 clen;		/* Content-Length of the current request */
	char			*body;
	size_t			 bodylen, bodygot;
	size_t			 nevents;
	uint64_t		 drain_left;
	char			 wbuf[192];	/* the reply being written */
	size_t			 wlen, woff;
	uint8_t			 peer[16];	/* client address (IPv4 as ::ffff:a.b.c.d) */
	size_t			 roff, rlen;	/* unread request bytes: rbuf[roff, rlen) */
	char			 rbuf[HTTP_RBUF];	/* no read is pending into it while it moves */
};

struct httpd {
	struct httpd_opts	 o;
	char			*secret;
	size_t			 secretlen;
	nng_stream_listener	*l;
	nng_tls_config		*tls;
	nng_aio			*accept_aio;
	pthread_mutex_t		 accept_mtx;	/* posting an accept vs swapping tls */
	int			 accept_rearm;	/* tls swapped: a cancelled accept is posted again */
	int			 accept_sleeping;
	int			 port;
	atomic_int		 closing;
	pthread_mutex_t		 mtx;		/* lock order: h->mtx before s->mtx */
	pthread_cond_t		 cv;
	struct httpd_session	*sessions;	/* live */
	struct httpd_session	*graves;	/* ended, waiting to be freed */
	int			 nsessions;	/* live + not yet freed */
	struct httpd_peer	*peers;		/* open connections per client address */
	size_t			 npeerslots;	/* power of 2, > 2 x max_conns */
	int			 keeper_stop;
	int			 keeper_started;
	pthread_t		 keeper;
	_Atomic int64_t		 overload_logged;
};

/* A client address and how many connections it holds (n == 0: a free slot). */
struct httpd_peer {
	uint8_t	addr[16];
	int	n;
};

static void httpd_read_cb(void *arg);
static void httpd_write_cb(void *arg);
static void hs_advance(struct httpd_session *s);

/* ---- connections per client address (all with h->mtx held) ---- */

static size_t
httpd_peer_hash(const uint8_t *a, size_t mask)
{
	uint64_t x = 1469598103934665603ull;

	for (int i = 0; i < 16; i++)
		x = (x ^ a[i]) * 1099511628211ull;
	return (size_t)x & mask;
}

/* The slot holding addr, or the free slot where it would go. */
static struct httpd_peer *
httpd_peer_find(struct httpd *h, const uint8_t *addr)
{
	size_t mask = h->npeerslots - 1, i = httpd_peer_hash(addr, mask);

	while (h->peers[i].n != 0 && memcmp(h->peers[i].addr, addr, 16) != 0)
		i = (i + 1) & mask;
	return &h->peers[i];
}

/* One more connection from addr, unless it already has max_conns_per_client. */
static int
httpd_peer_add(struct httpd *h, const uint8_t *addr)
{
	struct httpd_peer *p = httpd_peer_find(h, addr);

	if (p->n >= h->o.max_conns_per_client)
		return 0;
	if (p->n == 0)
		memcpy(p->addr, addr, 16);
	p->n++;
	return 1;
}

static void
httpd_peer_del(struct httpd *h, const uint8_t *addr)
{
	size_t mask = h->npeerslots - 1, i, j;
	struct httpd_peer *p = httpd_peer_find(h, addr);

	if (p->n == 0 || --p->n > 0)
		return;
	/* Free the slot: move later members of the probe run back (no tombstones). */
	i = (size_t)(p - h->peers);
	for (j = (i + 1) & mask; h->peers[j].n != 0; j = (j + 1) & mask) {
		size_t k = httpd_peer_hash(h->peers[j].addr, mask);
		/* j's entry may fill the hole at i unless its home k lies cyclically in (i, j] */
		if ((i <= j) ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		h->peers[i] = h->peers[j];
		h->peers[j].n = 0;
		i = j;
	}
}

/* The stream's client address as 16 bytes (IPv4 mapped into IPv6); zeros if unknown. */
static void
httpd_peer_addr(nng_stream *st, uint8_t *out, char *text, size_t textlen)
{
	nng_sockaddr sa;

	memset(out, 0, 16);
	snprintf(text, textlen, "?");
	if (nng_stream_get_addr(st, NNG_OPT_REMADDR, &sa) != 0)
		return;
	if (sa.s_family == NNG_AF_INET) {
		const uint8_t *b = (const uint8_t *)&sa.s_in.sa_addr;	/* network order */
		out[10] = out[11] = 0xff;
		memcpy(out + 12, b, 4);
		snprintf(text, textlen, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
	} else if (sa.s_family == NNG_AF_INET6) {
		memcpy(out, sa.s_in6.sa_addr, 16);
		snprintf(text, textlen, "%02x%02x:%02x%02x:...:%02x%02x", out[0], out[1], out[2], out[3],
		    out[14], out[15]);
	}
}

static int64_t
httpd_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


/* ---- session lifetime ---- */

static void
hs_deadline(struct httpd_session *s, int64_t ms, const char *phase)
{
	s->deadline = ms > 0 ? clock_mono_ms() + ms : 0;
	s->phase = phase;
}

/* With s->mtx held: close the stream. Pending operations complete with an error, and
 * their callbacks (or the caller's hs_unlock, if nothing is pending) bury the session. */
static void
hs_kill(struct httpd_session *s)
{
	if (!s->dead) {
		s->dead = 1;
		s->deadline = 0;
		nng_stream_close(s->st);
	}
}

/* With s->mtx held: 1 when the caller must bury s (dead, nothing pending, not yet buried). */
static int
hs_idle(struct httpd_session *s)
{
	if (s->dead && !s->buried && s->rstate == RS_NONE && s->wstate == WS_NONE &&
	    !s->journaling) {
		s->buried = 1;
		return 1;
	}
	return 0;
}

/* With h->mtx held: hand s over to be freed. Nothing may touch s afterwards. */
static void
httpd_bury_locked(struct httpd *h, struct httpd_session *s)
{
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
}

static void
hs_unlock(struct httpd_session *s)
{
	int bury = hs_idle(s);
	struct httpd *h = s->h;

	pthread_mutex_unlock(&s->mtx);
	if (bury) {
		pthread_mutex_lock(&h->mtx);
		httpd_bury_locked(h, s);
		pthread_mutex_unlock(&h->mtx);
	}
}

static void
httpd_free_session(struct httpd_session *s)
{
	/* both wait for a callback that may still be returning */
	nng_aio_free(s->raio);
	nng_aio_free(s->waio);
	nng_stream_free(s->st);
	pthread_mutex_destroy(&s->mtx);
	free(s->body);
	free(s);
}

/*
 * The housekeeping thread: every tick, close the streams of sessions past their deadline
 * and free the ended ones.
 */
static void *
httpd_keeper(void *arg)
{
	struct httpd *h = arg;
	struct timespec ts;

	pthread_mutex_lock(&h->mtx);
	for (;;) {
		struct httpd_session *s, *next, *dead;
		int64_t now = clock_mono_ms();
		int n = 0;

		for (s = h->sessions; s != NULL; s = next) {
			int bury;
			next = s->next;
			pthread_mutex_lock(&s->mtx);
			if (!s->dead && s->deadline != 0 && now >= s->deadline) {
				log_debug("http.deadline", "phase=%s", s->phase);
				hs_kill(s);
			}
			bury = hs_idle(s);
			pthread_mutex_unlock(&s->mtx);
			if (bury)
				httpd_bury_locked(h, s);
		}
		if (h->graves != NULL) {
			dead = h->graves;
			h->graves = NULL;
			for (s = dead; s != NULL; s = s->next)
				httpd_peer_del(h, s->peer);
			pthread_mutex_unlock(&h->mtx);
			for (s = dead; s != NULL; s = next) {
				next = s->next;
				httpd_free_session(s);
				n++;
			}
			pthread_mutex_lock(&h->mtx);
			h->nsessions -= n;
			stat_set(&gw_stats[GW_CONNECTIONS], h->nsessions);
			pthread_cond_broadcast(&h->cv);
			continue;
		}
		if (h->keeper_stop && h->sessions == NULL)
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += HTTP_TICK_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&h->cv, &h->mtx, &ts);
	}
	pthread_mutex_unlock(&h->mtx);
	return NULL;
}

/* ---- reads and writes (all with s->mtx held, never on a dead session) ---- */

/* More request bytes into rbuf (compacted first). Nothing if the buffer is full. */
static void
hs_read(struct httpd_session *s)
{
	nng_iov iov;

	if (s->roff > 0) {
		memmove(s->rbuf, s->rbuf + s->roff, s->rlen - s->roff);
		s->rlen -= s->roff;
		s->roff = 0;
	}
	if (s->rlen == sizeof(s->rbuf))
		return;
	iov.iov_buf = s->rbuf + s->rlen;
	iov.iov_len = sizeof(s->rbuf) - s->rlen;
	s->rstate = RS_READ;
	nng_aio_set_iov(s->raio, 1, &iov);
	nng_stream_recv(s->st, s->raio);
}

static void
hs_read_body(struct httpd_session *s)
{
	nng_iov iov;

	iov.iov_buf = s->body + s->bodygot;
	iov.iov_len = s->bodylen - s->bodygot;
	s->rstate = RS_BODY;
	nng_aio_set_iov(s->raio, 1, &iov);
	nng_stream_recv(s->st, s->raio);
}

/* Read and discard what the client still sends after an early reply. */
static void
hs_drain(struct httpd_session *s)
{
	nng_iov iov;

	s->roff = s->rlen = 0;
	iov.iov_buf = s->rbuf;
	iov.iov_len = sizeof(s->rbuf);
	s->rstate = RS_DRAIN;
	nng_aio_set_iov(s->raio, 1, &iov);
	nng_stream_recv(s->st, s->raio);
}

static void
hs_send(struct httpd_session *s, enum httpd_wstate what)
{
	nng_iov iov;

	iov.iov_buf = s->wbuf + s->woff;
	iov.iov_len = s->wlen - s->woff;
	s->wstate = what;
	nng_aio_set_iov(s->waio, 1, &iov);
	nng_stream_send(s->st, s->waio);
}

static const char *
httpd_reason(uint16_t status)
{
	switch (status) {
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 431: return "Request Header Fields Too Large";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default:  return "Error";
	}
}

/* Write the reply: a status line, no body (a 204 has no Content-Length at all). */
static void
hs_reply(struct httpd_session *s, uint16_t status)
{
	int n;

	if (s->wstate != WS_NONE) {
		s->due = status;	/* the 100 Continue is still going out */
		return;
	}
	if (status == 204)
		stat_add(&gw_stats[GW_HOOKS_ACCEPTED], 1);
	else if (status == 503)
		stat_add(&gw_stats[GW_HOOKS_UNAVAILABLE], 1);
	else
		stat_add(&gw_stats[GW_HOOKS_REJECTED], 1);
	if (atomic_load(&s->h->closing))
		s->close = 1;
	n = snprintf(s->wbuf, sizeof(s->wbuf), "HTTP/1.1 %u %s\r\n%s%s\r\n", status,
	    httpd_reason(status), status == 204 ? "" : "Content-Length: 0\r\n",
	    s->close ? "Connection: close\r\n" : "");
	/*
	 * Look-ahead: with a read out while the reply goes, a client that leaves is noticed
	 * at once (NNG's TLS loses a peer's close that arrives while no read is queued, and
	 * we would only find out at the idle deadline). Only into an empty buffer, so it can
	 * never race a buffered pipelined request or the buffer's compaction.
	 */
	if (s->inreq && !s->close && s->rstate == RS_NONE && s->roff == s->rlen)
		hs_read(s);
	s->wlen = (size_t)n;
	s->woff = 0;
	hs_deadline(s, s->h->o.write_timeout_ms, "write");
	hs_send(s, WS_REPLY);
}

/*
 * Reply early, leaving body bytes unread: discard them (what is buffered, then up to a cap
 * read alongside the reply), then close. Closing at once with unread data would make the
 * kernel send RST, and the client could lose the reply.
 */
static void
hs_reply_drain(struct httpd_session *s, uint16_t status)
{
	uint64_t cap = 4 * (uint64_t)s->h->o.body_max, avail = s->rlen - s->roff, skip;

	if (cap < HTTP_DRAIN_CAP)
		cap = HTTP_DRAIN_CAP;
	s->close = 1;
	s->drain_left = s->clen > 0 && s->clen < cap ? s->clen : cap;
	skip = avail < s->drain_left ? avail : s->drain_left;
	s->roff += (size_t)skip;
	s->drain_left -= skip;
	if (s->drain_left > 0 && s->rstate == RS_NONE)
		hs_drain(s);
	hs_reply(s, status);
}

/* ---- request parsing ---- */

static int
httpd_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int
httpd_name_is(const char *p, size_t n, const char *lit)
{
	return strlen(lit) == n && strncasecmp(p, lit, n) == 0;
}

/* Keep one header's value; a repeat with a different value is a conflict. */
static void
httpd_hdr_keep(const char **f, size_t *flen, const char *v, size_t n, int *conflict)
{
	if (*f != NULL && (*flen != n || memcmp(*f, v, n) != 0))
		*conflict = 1;
	*f = v;
	*flen = n;
}

/* "METHOD target HTTP/1.x" into hd: 0, or the status that refuses it (400, 505). */
static int
httpd_request_line(const char *l, size_t len, struct httpd_head *hd)
{
	const char *sp1, *sp2;

	if ((sp1 = memchr(l, ' ', len)) == NULL ||
	    (sp2 = memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - l))) == NULL)
		return 400;
	hd->method = l;
	hd->methodlen = (size_t)(sp1 - l);
	hd->target = sp1 + 1;
	hd->targetlen = (size_t)(sp2 - sp1 - 1);
	if (hd->methodlen == 0 || hd->methodlen > 16 || hd->targetlen == 0)
		return 400;
	for (size_t i = 0; i < hd->methodlen; i++)
		if (!httpd_tchar((unsigned char)l[i]))
			return 400;
	for (size_t i = 0; i < hd->targetlen; i++)
		if ((unsigned char)hd->target[i] <= ' ' || hd->target[i] == 0x7f)
			return 400;
	len -= (size_t)(sp2 + 1 - l);
	if (len == 8 && memcmp(sp2 + 1, "HTTP/1.", 7) == 0 && (sp2[8] == '0' || sp2[8] == '1')) {
		hd->minor = sp2[8] - '0';
		return 0;
	}
	return len >= 5 && memcmp(sp2 + 1, "HTTP/", 5) == 0 ? 505 : 400;
}

/* One "name: value" line; the headers the gateway acts on are kept in hd. 0, or 400/431. */
static int
httpd_header_line(const char *l, size_t len, struct httpd_head *hd, int *nhdr)
{
	const char *colon = memchr(l, ':', len), *v, *ve;
	size_t nm, vl;
	int ignore = 0;

	if (l[0] == ' ' || l[0] == '\t' || colon == NULL || colon == l)
		return 400;	/* obsolete line folding, or no name */
	for (const char *c = l; c < colon; c++)
		if (!httpd_tchar((unsigned char)*c))
			return 400;
	if (++*nhdr > HTTP_MAX_HEADERS)
		return 431;
	for (v = colon + 1; v < l + len && (*v == ' ' || *v == '\t'); v++)
		;
	for (ve = l + len; ve > v && (ve[-1] == ' ' || ve[-1] == '\t'); ve--)
		;
	for (const char *c = v; c < ve; c++)
		if (((unsigned char)*c < ' ' && *c != '\t') || *c == 0x7f)
			return 400;
	nm = (size_t)(colon - l);
	vl = (size_t)(ve - v);
	if (httpd_name_is(l, nm, "content-length"))
		httpd_hdr_keep(&hd->cl, &hd->cllen, v, vl, &hd->cl_conflict);
	else if (httpd_name_is(l, nm, "transfer-encoding"))
		httpd_hdr_keep(&hd->te, &hd->telen, v, vl, &ignore);
	else if (httpd_name_is(l, nm, "connection"))
		httpd_hdr_keep(&hd->conn, &hd->connlen, v, vl, &ignore);
	else if (httpd_name_is(l, nm, "content-type"))
		httpd_hdr_keep(&hd->ctype, &hd->ctypelen, v, vl, &ignore);
	else if (httpd_name_is(l, nm, "expect"))
		httpd_hdr_keep(&hd->expect, &hd->expectlen, v, vl, &ignore);
	return 0;
}

/* See httpd.h. Bounded: looks at HTTP_HEAD_MAX bytes at most, HTTP_MAX_HEADERS lines. */
int
httpd_parse_head(const char *p, size_t n, struct httpd_head *hd)
{
	size_t pos = 0, lim = n < HTTP_HEAD_MAX ? n : HTTP_HEAD_MAX;
	int line = 0, nhdr = 0, rv;

	memset(hd, 0, sizeof(*hd));
	for (;;) {
		const char *nl = memchr(p + pos, '\n', lim - pos);
		size_t end, len;

		if (nl == NULL)
			return n >= HTTP_HEAD_MAX ? 431 : 0;
		end = (size_t)(nl - p);
		len = end - pos;
		if (len > 0 && p[end - 1] == '\r')
			len--;
		if (line == 0 && len == 0) {
			/* empty lines before the request line: allowed */
			pos = end + 1;
			continue;
		}
		if (line > 0 && len == 0) {
			hd->len = end + 1;
			return 1;
		}
		rv = line == 0 ? httpd_request_line(p + pos, len, hd) :
		    httpd_header_line(p + pos, len, hd, &nhdr);
		if (rv != 0)
			return rv;
		line++;
		pos = end + 1;
	}
}

/* Does the comma-separated header value v contain token tok (case-insensitive)? */
static int
httpd_has_token(const char *v, size_t n, const char *tok)
{
	size_t tl = strlen(tok), i = 0;

	while (i < n) {
		size_t s, e;
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == tl && strncasecmp(v + s, tok, tl) == 0)
			return 1;
	}
	return 0;
}

/* POST to /hooks/amo/<secret>[?...] (origin or absolute form); secret compared in constant time. */
static int
httpd_route_ok(struct httpd *h, const struct httpd_head *hd)
{
	size_t plen = strlen(HTTP_HOOK_PREFIX), glen, tlen = hd->targetlen;
	const char *t = hd->target, *tok;
	unsigned char d;

	if (hd->methodlen != 4 || memcmp(hd->method, "POST", 4) != 0)
		return 0;
	if (tlen > 8 && (strncasecmp(t, "https://", 8) == 0 || strncasecmp(t, "http://", 7) == 0)) {
		const char *slash = memchr(t + 8, '/', tlen - 8);
		if (slash == NULL)
			return 0;
		tlen -= (size_t)(slash - t);
		t = slash;
	}
	if (tlen < plen || memcmp(t, HTTP_HOOK_PREFIX, plen) != 0)
		return 0;
	tok = t + plen;
	for (glen = 0; glen < tlen - plen && tok[glen] != '?' && tok[glen] != '#'; glen++)
		;
	d = glen != h->secretlen;
	for (size_t i = 0; i < h->secretlen; i++)
		d |= (unsigned char)(h->secret[i] ^ (i < glen ? tok[i] : 0));
	return d == 0;
}

static int
httpd_parse_len(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 18)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

static int
httpd_is_form(const char *ct, size_t n)
{
	size_t fl = strlen(HTTP_FORM_TYPE);

	return n >= fl && strncasecmp(ct, HTTP_FORM_TYPE, fl) == 0 &&
	    (n == fl || ct[fl] == ';' || ct[fl] == ' ');
}

/* ---- the hook itself ---- */

static void
httpd_journaled(void *arg, uint64_t seq, int err)
{
	struct httpd_session *s = arg;

	if (err == 0) {
		stat_add(&gw_stats[GW_HOOK_EVENTS], (int64_t)s->nevents);
		log_debug("hook.accepted", "seq=%" PRIu64 " events=%zu", seq, s->nevents);
	} else if (err != CS_EFULL) {
		log_warnx("hook.not_journaled", "seq=%" PRIu64 " err=%s action=answering_503",
		    seq, lq(cs_strerror(err)));
	}
	pthread_mutex_lock(&s->mtx);
	s->journaling = 0;
	if (!s->dead)
		hs_reply(s, err == 0 ? 204 : 503);
	hs_unlock(s);
}

static void
httpd_deadletter(struct httpd *h, const char *kind, const char *body, size_t len, char *path,
    size_t pathlen)
{
	path[0] = '\0';
	if (h->o.deadletter != NULL &&
	    deadletter_write(h->o.deadletter, kind, "form", body, len, path, pathlen) == 0)
		stat_add(&gw_stats[GW_DEADLETTERS], 1);
}

/* The body is in: parse, journal, and (from the journal callback) answer. s->mtx held. */
static void
hs_hook(struct httpd_session *s)
{
	struct httpd *h = s->h;
	Crmsync__HookDelivery d = CRMSYNC__HOOK_DELIVERY__INIT;
	struct arena a;
	char err[160], path[4200];
	uint8_t *buf = NULL;
	size_t n = 0;
	int rv;

	arena_init(&a, form_arena_size(s->bodylen, &h->o.limits));
	rv = form_parse(s->body, s->bodylen, &h->o.limits, &a, &d, err, sizeof(err));
	if (rv != 0) {
		httpd_deadletter(h, "malformed", s->body, s->bodylen, path, sizeof(path));
		log_warnx("hook.malformed", "bytes=%zu err=%s reason=%s deadletter=%s",
		    s->bodylen, lq(cs_strerror(rv)), lq(err), lq(path));
		arena_free(&a);
		hs_reply(s, 400);
		return;
	}
	if (d.n_events == 0) {
		/* amoCRM's account block but nothing we know: keep it, and accept it. */
		httpd_deadletter(h, "noevents", s->body, s->bodylen, path, sizeof(path));
		log_warnx("hook.no_events", "bytes=%zu subdomain=%s deadletter=%s", s->bodylen,
		    lq(d.subdomain), lq(path));
	}
	d.received_at_us = httpd_now_us();
	s->nevents = d.n_events;
	n = crmsync__hook_delivery__get_packed_size(&d);
	if ((buf = malloc(n > 0 ? n : 1)) != NULL)
		crmsync__hook_delivery__pack(&d, buf);
	arena_free(&a);
	if (buf == NULL) {
		hs_reply(s, 503);
		return;
	}
	if (h->o.journal == NULL) {
		free(buf);
		stat_add(&gw_stats[GW_HOOK_EVENTS], (int64_t)s->nevents);
		hs_reply(s, 204);
		return;
	}
	s->journaling = 1;
	hs_deadline(s, 0, "journal");
	rv = journal_append(h->o.journal, buf, n, httpd_journaled, s);
	free(buf);
	if (rv != 0) {
		s->journaling = 0;
		if (rv != CS_EFULL)
			log_warnx("hook.not_journaled", "err=%s action=answering_503",
			    lq(cs_strerror(rv)));
		hs_reply(s, 503);
	}
	/* The callback takes s->mtx, so it cannot run before our caller unlocks. */
}

/* A complete head was parsed (and consumed from rbuf). s->mtx held. */
static void
hs_request(struct httpd_session *s, const struct httpd_head *hd)
{
	struct httpd *h = s->h;
	int has_body = hd->te != NULL || (hd->cl != NULL && !(hd->cllen == 1 && hd->cl[0] == '0'));
	uint64_t len = 0;
	size_t take;

	s->inreq = 1;
	s->clen = 0;
	free(s->body);
	s->body = NULL;
	s->bodylen = s->bodygot = 0;
	s->close = atomic_load(&h->closing) ||
	    (hd->minor == 0 ? hd->conn == NULL || !httpd_has_token(hd->conn, hd->connlen, "keep-alive")
	    : hd->conn != NULL && httpd_has_token(hd->conn, hd->connlen, "close"));
	if (hd->cl != NULL && httpd_parse_len(hd->cl, hd->cllen, &len) == 0)
		s->clen = len;
	if (!httpd_route_ok(h, hd)) {
		/* Nothing about the path is logged: it may hold a near-miss of the secret. */
		log_debug("http.not_found", "method=%s", lqn(hd->method, hd->methodlen));
		if (has_body)
			hs_reply_drain(s, 404);
		else
			hs_reply(s, 404);
		return;
	}
	if (hd->te != NULL) {
		log_info("hook.refused", "status=411 reason=%s", lq("Transfer-Encoding not supported"));
		hs_reply_drain(s, 411);
		return;
	}
	if (hd->cl == NULL) {
		hs_reply(s, 411);
		return;
	}
	if (hd->cl_conflict || httpd_parse_len(hd->cl, hd->cllen, &len) != 0) {
		hs_reply_drain(s, 400);
		return;
	}
	if (len > h->o.body_max) {
		log_warnx("hook.too_large", "bytes=%" PRIu64 " max=%zu", len, h->o.body_max);
		hs_reply_drain(s, 413);
		return;
	}
	if (len == 0) {
		hs_reply(s, 400);
		return;
	}
	if (hd->ctype != NULL && !httpd_is_form(hd->ctype, hd->ctypelen)) {
		log_info("hook.refused", "status=415 content_type=%s", lqn(hd->ctype, hd->ctypelen));
		hs_reply_drain(s, 415);
		return;
	}
	if ((s->body = malloc((size_t)len + 1)) == NULL) {
		hs_reply_drain(s, 503);
		return;
	}
	s->bodylen = (size_t)len;
	take = s->rlen - s->roff < s->bodylen ? s->rlen - s->roff : s->bodylen;
	memcpy(s->body, s->rbuf + s->roff, take);
	s->roff += take;
	s->bodygot = take;
	if (s->bodygot == s->bodylen) {
		hs_hook(s);
		return;
	}
	hs_deadline(s, h->o.body_timeout_ms, "body");
	hs_read_body(s);
	if (take == 0 && hd->expect != NULL && hd->expectlen == 12 &&
	    strncasecmp(hd->expect, "100-continue", 12) == 0) {
		s->wlen = (size_t)snprintf(s->wbuf, sizeof(s->wbuf), "HTTP/1.1 100 Continue\r\n\r\n");
		s->woff = 0;
		hs_send(s, WS_CONTINUE);
	}
}

/*
 * Between requests: parse what is buffered (a pipelined request), or read more. s->mtx
 * held, session alive. If the reply's look-ahead read is still out, the next request
 * arrives through it (the buffer was empty when it was issued).
 */
static void
hs_advance(struct httpd_session *s)
{
	struct httpd *h = s->h;
	struct httpd_head hd;
	int rv;

	if (s->inreq)
		return;
	if (s->rstate == RS_READ) {
		hs_deadline(s, h->o.idle_timeout_ms, "idle");
		return;
	}
	if (s->rstate != RS_NONE)
		return;
	rv = httpd_parse_head(s->rbuf + s->roff, s->rlen - s->roff, &hd);
	if (rv == 1) {
		s->roff += hd.len;
		s->head_started = 0;
		hs_request(s, &hd);
		return;
	}
	if (rv != 0) {
		log_info("http.bad_request", "status=%d", rv);
		s->inreq = 1;
		s->clen = 0;
		hs_reply_drain(s, (uint16_t)rv);
		return;
	}
	if (s->rlen > s->roff) {
		/* A head has begun: it gets body_timeout in all, however slowly it trickles. */
		if (s->head_started == 0) {
			s->head_started = clock_mono_ms();
			hs_deadline(s, h->o.body_timeout_ms, "head");
		}
	} else if (s->phase == NULL) {
		hs_deadline(s, h->o.body_timeout_ms, "first request");
	} else {
		hs_deadline(s, h->o.idle_timeout_ms, "idle");
	}
	hs_read(s);
}

static void
httpd_read_cb(void *arg)
{
	struct httpd_session *s = arg;
	int rv = nng_aio_result(s->raio);
	size_t got = nng_aio_count(s->raio);
	enum httpd_rstate was;

	pthread_mutex_lock(&s->mtx);
	was = s->rstate;
	s->rstate = RS_NONE;
	if (s->dead) {
		hs_unlock(s);
		return;
	}
	switch (was) {
	case RS_READ:
		if (rv != 0) {
			if (rv != NNG_ECLOSED && rv != NNG_ECONNRESET && rv != NNG_ECONNSHUT &&
			    rv != NNG_ECONNREFUSED && rv != NNG_ECANCELED)
				log_debug("http.read_failed", "err=%s", lq(nng_strerror(rv)));
			if (s->inreq)
				s->close = 1;	/* gone: the reply still due goes out (or fails) first */
			else
				hs_kill(s);
			break;
		}
		s->rlen += got;
		if (!s->inreq)
			hs_advance(s);
		break;
	case RS_BODY:
		if (rv != 0) {
			/* A slow or vanished client: it never got a 2xx, amoCRM will retry. */
			log_info("http.body_aborted", "bytes=%zu got=%zu err=%s", s->bodylen,
			    s->bodygot, lq(nng_strerror(rv)));
			hs_kill(s);
			break;
		}
		s->bodygot += got;
		if (s->bodygot < s->bodylen) {
			hs_read_body(s);
			break;
		}
		hs_hook(s);
		break;
	case RS_DRAIN:
		if (rv == 0 && got < s->drain_left) {
			s->drain_left -= got;
			hs_drain(s);
		} else if (s->wstate == WS_NONE) {
			hs_kill(s);	/* drained and replied */
		}
		break;
	default:
		break;
	}
	hs_unlock(s);
}

static void
httpd_write_cb(void *arg)
{
	struct httpd_session *s = arg;
	int rv = nng_aio_result(s->waio);
	enum httpd_wstate was;

	pthread_mutex_lock(&s->mtx);
	was = s->wstate;
	s->wstate = WS_NONE;
	if (s->dead) {
		hs_unlock(s);
		return;
	}
	if (rv != 0) {
		hs_kill(s);
		hs_unlock(s);
		return;
	}
	s->woff += nng_aio_count(s->waio);
	if (s->woff < s->wlen) {
		hs_send(s, was);
	} else if (was == WS_CONTINUE) {
		if (s->due != 0) {
			uint16_t due = s->due;
			s->due = 0;
			hs_reply(s, due);
		}
	} else {
		s->inreq = 0;
		free(s->body);
		s->body = NULL;
		if (s->close || atomic_load(&s->h->closing)) {
			/*
			 * Lingering close: NNG's TLS completes a write once it is buffered, and
			 * closing now could cut the reply still on its way to the socket. Read
			 * until the client, which has its reply, closes (or 2 s, or 64 KiB).
			 */
			if (s->rstate == RS_NONE) {
				s->drain_left = HTTP_DRAIN_CAP;
				hs_drain(s);
			}
			if (s->rstate == RS_DRAIN)
				hs_deadline(s, HTTP_LINGER_MS, "linger");
			else
				hs_kill(s);
		} else {
			hs_advance(s);	/* a pipelined request, or wait for the next */
		}
	}
	hs_unlock(s);
}

/* ---- accepting ---- */

static void
httpd_post_accept(struct httpd *h)
{
	pthread_mutex_lock(&h->accept_mtx);
	nng_stream_listener_accept(h->l, h->accept_aio);
	pthread_mutex_unlock(&h->accept_mtx);
}

/*
 * The accept's outcome: 1 when a connection came, 0 when this call was a wake-up from the
 * back-off sleep, a re-arm after a certificate swap, a closing listener or a failure (the
 * next accept is already armed, or the listener is gone).
 */
static int
httpd_accept_ready(struct httpd *h, int rv)
{
	if (atomic_load(&h->closing))
		return 0;
	if (h->accept_sleeping) {
		h->accept_sleeping = 0;
		httpd_post_accept(h);
		return 0;
	}
	if (rv == NNG_ECANCELED) {
		int rearm;
		/* httpd_tls_setup swapped the certificate: accept with the new one */
		pthread_mutex_lock(&h->accept_mtx);
		if ((rearm = h->accept_rearm) != 0) {
			h->accept_rearm = 0;
			nng_stream_listener_accept(h->l, h->accept_aio);
		}
		pthread_mutex_unlock(&h->accept_mtx);
		if (rearm)
			return 0;
	}
	if (rv != 0) {
		if (rv == NNG_ECLOSED)
			return 0;
		/* EMFILE and friends: say so, breathe, try again. */
		log_warnx("http.accept_failed", "err=%s", lq(nng_strerror(rv)));
		h->accept_sleeping = 1;
		nng_sleep_aio(100, h->accept_aio);
		return 0;
	}
	return 1;
}

/*
 * A session for stream st from peer, within the connection limits (total, per client);
 * NULL when over one of them (*per_client says which) or out of memory. *nsess: sessions
 * open now.
 */
static struct httpd_session *
httpd_session_new(struct httpd *h, nng_stream *st, const uint8_t *peer, int *per_client,
    int *nsess)
{
	struct httpd_session *s = NULL;

	*per_client = 0;
	pthread_mutex_lock(&h->mtx);
	if (h->nsessions < h->o.max_conns && !(*per_client = !httpd_peer_add(h, peer)) &&
	    (s = calloc(1, sizeof(*s))) != NULL) {
		if (nng_aio_alloc(&s->raio, httpd_read_cb, s) != 0 ||
		    nng_aio_alloc(&s->waio, httpd_write_cb, s) != 0) {
			nng_aio_free(s->raio);
			free(s);
			s = NULL;
		} else {
			pthread_mutex_init(&s->mtx, NULL);
			s->h = h;
			s->st = st;
			memcpy(s->peer, peer, sizeof(s->peer));
			s->next = h->sessions;
			if (h->sessions != NULL)
				h->sessions->prev = s;
			h->sessions = s;
			h->nsessions++;
			/* Under h->mtx, as the keeper's: the next accept's callback may already be
			 * running, and a count set after unlocking could overwrite a newer one. */
			stat_set(&gw_stats[GW_CONNECTIONS], h->nsessions);
		}
	}
	if (s == NULL && h->nsessions < h->o.max_conns && !*per_client)
		httpd_peer_del(h, peer);		/* counted, but out of memory */
	*nsess = h->nsessions;
	pthread_mutex_unlock(&h->mtx);
	return s;
}

/* No session for st: log (at most every 10 s), count, close. */
static void
httpd_refuse(struct httpd *h, nng_stream *st, const char *peertext, int per_client, int nsess)
{
	int64_t now = httpd_now_us(), last = atomic_load(&h->overload_logged);

	if (now - last > 10 * 1000000 &&
	    atomic_compare_exchange_strong(&h->overload_logged, &last, now)) {
		if (per_client)
			log_warnx("http.client_overload", "client=%s max_per_client=%d connections=%d "
			    "action=refusing", peertext, h->o.max_conns_per_client, nsess);
		else
			log_warnx("http.overload", "connections=%d max=%d action=refusing",
			    nsess, h->o.max_conns);
	}
	if (per_client)
		stat_add(&gw_stats[GW_CONNS_REFUSED_CLIENT], 1);
	stat_add(&gw_stats[GW_HOOKS_UNAVAILABLE], 1);
	nng_stream_close(st);
	nng_stream_free(st);
}

static void
httpd_accept_cb(void *arg)
{
	struct httpd *h = arg;
	struct httpd_session *s;
	nng_stream *st;
	uint8_t peer[16];
	char peertext[64];
	int nsess, per_client;

	if (!httpd_accept_ready(h, nng_aio_result(h->accept_aio)))
		return;
	st = nng_aio_get_output(h->accept_aio, 0);
	httpd_post_accept(h);
	httpd_peer_addr(st, peer, peertext, sizeof(peertext));
	if ((s = httpd_session_new(h, st, peer, &per_client, &nsess)) == NULL) {
		httpd_refuse(h, st, peertext, per_client, nsess);
		return;
	}
	/* Replies are one small write each: no reason to let Nagle hold them back. */
	(void)nng_stream_set_bool(st, NNG_OPT_TCP_NODELAY, true);
	pthread_mutex_lock(&s->mtx);
	hs_advance(s);
	hs_unlock(s);
}

/* ---- start / stop ---- */

/* The listener's TLS config from the certificate and key files (start and reload). */
static int
httpd_tls_setup(struct httpd *h)
{
	struct tlsconf_info info;
	nng_tls_config *cfg, *old;
	int rv;

	if ((rv = tlsconf_load(h->o.cert_file, h->o.key_file, &cfg, &info)) != 0) {
		stat_add(&gw_stats[GW_TLS_RELOAD_FAILURES], h->tls != NULL);
		return rv;
	}
	/* NNG binds a connection to the listener's config when its accept is posted, and reads
	 * the listener's pointer then without a lock: swap it only while no accept is posted. */
	pthread_mutex_lock(&h->accept_mtx);
	if ((rv = nng_stream_listener_set_ptr(h->l, NNG_OPT_TLS_CONFIG, cfg)) != 0) {
		pthread_mutex_unlock(&h->accept_mtx);
		log_warnx("http.tls_failed", "err=%s", lq(nng_strerror(rv)));
		nng_tls_config_free(cfg);
		stat_add(&gw_stats[GW_TLS_RELOAD_FAILURES], h->tls != NULL);
		return CS_ENNG;
	}
	old = h->tls;
	h->tls = cfg;
	h->accept_rearm = old != NULL;
	pthread_mutex_unlock(&h->accept_mtx);
	/* Connections made with the old config hold their own reference: it is freed with the
	 * last of them. */
	if (old != NULL)
		nng_tls_config_free(old);
	stat_set(&gw_stats[GW_TLS_NOT_AFTER], info.not_after);
	if (old != NULL) {
		stat_add(&gw_stats[GW_TLS_RELOADS], 1);
		/* the accept posted before holds the old config: post it again */
		nng_aio_cancel(h->accept_aio);
	}
	log_info(old != NULL ? "http.tls_reloaded" : "http.tls_loaded", "cert=%s subject=%s serial=%s "
	    "not_after=%lld days_left=%lld", lq(h->o.cert_file), lq(info.subject), lq(info.serial),
	    (long long)info.not_after, (long long)((info.not_after - (int64_t)time(NULL)) / 86400));
	return 0;
}

int
httpd_reload_tls(struct httpd *h)
{
	int rv;

	if (h == NULL || !h->o.tls)
		return 0;
	if ((rv = httpd_tls_setup(h)) != 0)
		log_warnx("http.tls_reload_failed", "cert=%s key=%s err=%s: still serving the "
		    "certificate loaded before", lq(h->o.cert_file), lq(h->o.key_file),
		    lq(cs_strerror(rv)));
	return rv;
}

int
httpd_start(struct httpd **out, const struct httpd_opts *o)
{
	struct httpd *h;
	char url[512];
	int rv, nrv;

	*out = NULL;
	if (o->secret == NULL || o->secret[0] == '\0' || o->max_conns <= 0)
		return CS_EINVAL;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return CS_ENOMEM;
	h->o = *o;
	if (h->o.max_conns_per_client <= 0 || h->o.max_conns_per_client > h->o.max_conns)
		h->o.max_conns_per_client = h->o.max_conns;
	pthread_mutex_init(&h->mtx, NULL);
	pthread_mutex_init(&h->accept_mtx, NULL);
	pthread_cond_init(&h->cv, NULL);
	for (h->npeerslots = 16; h->npeerslots <= 2 * (size_t)h->o.max_conns; h->npeerslots *= 2)
		;
	if ((h->peers = calloc(h->npeerslots, sizeof(*h->peers))) == NULL) {
		rv = CS_ENOMEM;
		goto fail;
	}
	if ((h->secret = strdup(o->secret)) == NULL) {
		rv = CS_ENOMEM;
		goto fail;
	}
	h->secretlen = strlen(h->secret);
	h->o.secret = NULL;
	h->o.listen = NULL;
	if (nng_aio_alloc(&h->accept_aio, httpd_accept_cb, h) != 0 ||
	    pthread_create(&h->keeper, NULL, httpd_keeper, h) != 0) {
		rv = CS_ENOMEM;
		goto fail;
	}
	h->keeper_started = 1;

	snprintf(url, sizeof(url), "%s://%s", o->tls ? "tls+tcp" : "tcp", o->listen);
	if ((nrv = nng_stream_listener_alloc(&h->l, url)) != 0) {
		log_warnx("http.bad_address", "listen=%s err=%s", lq(o->listen), lq(nng_strerror(nrv)));
		rv = CS_ECONFIG;
		goto fail;
	}
	if (o->tls && (rv = httpd_tls_setup(h)) != 0)
		goto fail;
	if ((nrv = nng_stream_listener_listen(h->l)) != 0) {
		log_warnx("http.listen_failed", "listen=%s err=%s", lq(o->listen), lq(nng_strerror(nrv)));
		rv = nrv == NNG_EADDRINUSE || nrv == NNG_EADDRINVAL ? CS_ECONFIG : CS_ENNG;
		goto fail;
	}
	(void)nng_stream_listener_get_int(h->l, NNG_OPT_TCP_BOUND_PORT, &h->port);
	httpd_post_accept(h);
	stat_set(&gw_stats[GW_HTTP_PORT], h->port);
	log_info("http.listening", "scheme=%s listen=%s port=%d path=%s max_conns=%d "
	    "max_conns_per_client=%d body_max=%zu", o->tls ? "https" : "http", lq(o->listen), h->port,
	    lq(HTTP_HOOK_PREFIX "***"), o->max_conns, h->o.max_conns_per_client, o->body_max);
	*out = h;
	return 0;
fail:
	httpd_stop(h);
	return rv;
}

int
httpd_port(struct httpd *h)
{
	return h->port;
}

void
httpd_stop(struct httpd *h)
{
	struct timespec ts;
	int waited = 0;

	if (h == NULL)
		return;
	atomic_store(&h->closing, 1);
	if (h->l != NULL)
		nng_stream_listener_close(h->l);
	if (h->accept_aio != NULL)
		nng_aio_stop(h->accept_aio);
	pthread_mutex_lock(&h->mtx);
	/* Cut idle, half-read and draining connections; hooks waiting for the journal and
	 * replies being written finish first (the write callback sees `closing`). */
	while (h->sessions != NULL && waited < HTTP_STOP_WAIT_MS) {
		struct httpd_session *s, *next;
		for (s = h->sessions; s != NULL; s = next) {
			int bury;
			next = s->next;
			pthread_mutex_lock(&s->mtx);
			if (!s->inreq || s->rstate == RS_BODY ||
			    (s->rstate == RS_DRAIN && s->wstate == WS_NONE))
				hs_kill(s);
			bury = hs_idle(s);
			pthread_mutex_unlock(&s->mtx);
			if (bury)
				httpd_bury_locked(h, s);
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
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
	h->keeper_stop = 1;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mtx);
	if (h->keeper_started)
		pthread_join(h->keeper, NULL);
	nng_aio_free(h->accept_aio);
	if (h->l != NULL)
		nng_stream_listener_free(h->l);
	if (h->tls != NULL)
		nng_tls_config_free(h->tls);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->accept_mtx);
	pthread_mutex_destroy(&h->mtx);
	if (h->secret != NULL) {
		explicit_bzero(h->secret, h->secretlen);
		free(h->secret);
	}
	free(h->peers);
	free(h);
}
