/*
 * metrics.c - Prometheus text exposition of a stat_counter array over NNG's HTTP server
 * (see metrics.h). The handler renders into a bounded buffer on NNG's thread and answers
 * synchronously; nothing here takes a lock the service's own threads hold.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "buf.h"
#include "clock.h"
#include "errors.h"
#include "log.h"
#include "metrics.h"
#include "version.h"

#define METRICS_NAME_MAX	128

struct metrics {
	nng_http_server		*srv;
	nng_http_handler	*h;
	const char		*service;
	struct stat_counter	*stats;
	size_t			 nstats;
	int64_t			 started_ms;
	int			 port;
	_Atomic int		 warned;	/* "too big" logged once */
	void			*scrape_arg;
	void			(*_Atomic on_scrape)(void *);
};


/* "crmsync_" + name with every byte outside [a-zA-Z0-9_] as '_', + "_total" for counters. */
static void
metrics_name(char *dst, size_t cap, const struct stat_counter *s)
{
	size_t n = 0, len;
	const char *p;

	n = (size_t)snprintf(dst, cap, "crmsync_");
	for (p = s->name != NULL ? s->name : "unnamed"; *p != '\0' && *p != '{' && n + 1 < cap; p++) {
		char c = *p;
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
		dst[n++] = ok ? c : '_';
	}
	dst[n] = '\0';
	len = strlen(dst);
	if (s->gauge == STAT_COUNTER && (len < 6 || strcmp(dst + len - 6, "_total") != 0) && len + 7 <= cap)
		memcpy(dst + len, "_total", 7);
}

/* HELP text: backslash and newline escaped. Label values also escape the double quote. */
static int
metrics_escape(struct buf *b, const char *s, int label)
{
	int rv = 0;

	for (; s != NULL && *s != '\0' && rv == 0; s++) {
		if (*s == '\\')
			rv = buf_addstr(b, "\\\\");
		else if (*s == '\n')
			rv = buf_addstr(b, "\\n");
		else if (*s == '"' && label)
			rv = buf_addstr(b, "\\\"");
		else
			rv = buf_addc(b, *s);
	}
	return rv;
}

/* One sample line: name{service="…"<extra_labels>} value (milli: value / 1000, 3 decimals). */
static int
metrics_sample_x(struct buf *b, const char *name, const char *service, const char *extra_labels,
    long long value, int milli)
{
	int rv;

	if ((rv = buf_printf(b, "%s{service=\"", name)) != 0 || (rv = metrics_escape(b, service, 1)) != 0 ||
	    (rv = buf_printf(b, "\"%s} ", extra_labels != NULL ? extra_labels : "")) != 0)
		return rv;
	if (milli)
		return buf_printf(b, "%s%lld.%03lld\n", value < 0 ? "-" : "", llabs(value) / 1000,
		    llabs(value) % 1000);
	return buf_printf(b, "%lld\n", value);
}

static int
metrics_sample(struct buf *b, const char *name, const char *service, const char *extra_labels,
    long long value)
{
	return metrics_sample_x(b, name, service, extra_labels, value, 0);
}

static int
metrics_family(struct buf *b, const char *name, const char *help, int gauge, const char *service,
    const char *extra_labels, long long value)
{
	int rv;

	if ((rv = buf_printf(b, "# HELP %s ", name)) != 0 || (rv = metrics_escape(b, help, 0)) != 0 ||
	    (rv = buf_printf(b, "\n# TYPE %s %s\n", name, gauge ? "gauge" : "counter")) != 0)
		return rv;
	return metrics_sample(b, name, service, extra_labels, value);
}

/*
 * A stat named `family{k="v",…}` is one labelled sample of `family`: its labels (the text
 * between the braces, values already escaped) into dst as ",k=\"v\",…"; NULL when the name
 * carries none.
 */
static const char *
metrics_labels(const struct stat_counter *s, char *dst, size_t cap)
{
	const char *o = s->name != NULL ? strchr(s->name, '{') : NULL;
	size_t n;

	if (o == NULL || (n = strlen(o)) < 3 || o[n - 1] != '}')
		return NULL;
	snprintf(dst, cap, ",%.*s", (int)(n - 2), o + 1);
	return dst;
}

/* Length of a histogram sample's family name: without _bucket, _sum or _count. */
static size_t
metrics_hist_base(const char *name)
{
	static const char *const sfx[] = { "_bucket", "_sum", "_count" };
	size_t n = strlen(name);

	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		size_t k = strlen(sfx[i]);
		if (n > k && strcmp(name + n - k, sfx[i]) == 0)
			return n - k;
	}
	return n;
}

/*
 * A histogram sample (STAT_HISTOGRAM): HELP/TYPE of its family before the first sample of
 * a run, then the sample itself; `_sum` is kept in thousandths.
 */
static int
metrics_hist(struct buf *b, const char *service, struct stat_counter *stats, size_t i)
{
	char name[METRICS_NAME_MAX], prev[METRICS_NAME_MAX], labels[256];
	const char *lab = metrics_labels(&stats[i], labels, sizeof(labels));
	size_t base;
	int rv;

	metrics_name(name, sizeof(name), &stats[i]);
	base = metrics_hist_base(name);
	if (i > 0 && stats[i - 1].gauge == STAT_HISTOGRAM)
		metrics_name(prev, sizeof(prev), &stats[i - 1]);
	if (i == 0 || stats[i - 1].gauge != STAT_HISTOGRAM || metrics_hist_base(prev) != base ||
	    strncmp(prev, name, base) != 0) {
		if ((rv = buf_printf(b, "# HELP %.*s ", (int)base, name)) != 0 ||
		    (rv = metrics_escape(b, stats[i].help != NULL ? stats[i].help : name, 0)) != 0 ||
		    (rv = buf_printf(b, "\n# TYPE %.*s histogram\n", (int)base, name)) != 0)
			return rv;
	}
	return metrics_sample_x(b, name, service, lab, (long long)stat_get(&stats[i]),
	    strcmp(name + base, "_sum") == 0);
}

void
metrics_observe(struct stat_counter *h, const double *bounds, size_t nbounds, double v)
{
	for (size_t i = 0; i < nbounds; i++)
		if (v <= bounds[i])
			stat_add(&h[i], 1);
	stat_add(&h[nbounds], 1);
	stat_add(&h[nbounds + 1], (int64_t)(v * 1000.0 + 0.5));
	stat_add(&h[nbounds + 2], 1);
}

static int
metrics_reserved(const char *name)
{
	return strcmp(name, "crmsync_up") == 0 || strcmp(name, "crmsync_uptime_seconds") == 0 ||
	    strcmp(name, "crmsync_build_info") == 0;
}

int
metrics_render(struct buf *b, const char *service, struct stat_counter *stats, size_t nstats,
    long long uptime_s)
{
	char name[METRICS_NAME_MAX], other[METRICS_NAME_MAX], version[64];
	int rv;

	if (service == NULL)
		service = "";
	snprintf(version, sizeof(version), ",version=\"%s\"", CRMSYNC_VERSION);
	if ((rv = metrics_family(b, "crmsync_up", "1 while the service runs", 1, service, NULL, 1)) != 0 ||
	    (rv = metrics_family(b, "crmsync_build_info", "crmsync version of this service", 1,
	    service, version, 1)) != 0)
		return rv;
	if (uptime_s >= 0 && (rv = metrics_family(b, "crmsync_uptime_seconds",
	    "seconds since the service started", 1, service, NULL, uptime_s)) != 0)
		return rv;
	for (size_t i = 0; i < nstats; i++) {
		char labels[256], plabels[256];
		const char *lab = metrics_labels(&stats[i], labels, sizeof(labels));
		size_t first = i;

		if (stats[i].gauge == STAT_HISTOGRAM) {
			if ((rv = metrics_hist(b, service, stats, i)) != 0)
				return rv;
			continue;
		}
		metrics_name(name, sizeof(name), &stats[i]);
		/* A family appears once, at its first stat: a later stat of the same name is one
		 * more sample of it when both carry labels, else it is left out. */
		for (size_t j = 0; j < i && first == i; j++) {
			metrics_name(other, sizeof(other), &stats[j]);
			if (strcmp(name, other) == 0)
				first = j;
		}
		if (metrics_reserved(name))
			continue;
		if (first != i) {
			/* Samples of one family follow its header, nothing between: a labelled run. */
			metrics_name(other, sizeof(other), &stats[i - 1]);
			if (lab == NULL || metrics_labels(&stats[first], plabels, sizeof(plabels)) == NULL ||
			    metrics_labels(&stats[i - 1], plabels, sizeof(plabels)) == NULL ||
			    strcmp(name, other) != 0)
				continue;
			if ((rv = metrics_sample(b, name, service, lab, (long long)stat_get(&stats[i]))) != 0)
				return rv;
			continue;
		}
		if ((rv = metrics_family(b, name, stats[i].help != NULL ? stats[i].help : stats[i].name,
		    stats[i].gauge, service, lab, (long long)stat_get(&stats[i]))) != 0)
			return rv;
	}
	return 0;
}

static void
metrics_serve(nng_aio *aio)
{
	nng_http_handler *h = nng_aio_get_input(aio, 1);
	struct metrics *m = nng_http_handler_get_data(h);
	nng_http_res *res = NULL;
	struct buf b;
	int rv;

	void (*fn)(void *) = atomic_load(&m->on_scrape);
	if (fn != NULL)
		fn(m->scrape_arg);
	buf_init(&b, METRICS_MAX_BYTES);
	rv = metrics_render(&b, m->service, m->stats, m->nstats,
	    (long long)((clock_mono_ms() - m->started_ms) / 1000));
	if (rv != 0) {
		if (atomic_exchange(&m->warned, 1) == 0)
			log_warnx("metrics.render_failed", "err=%s", lq(cs_strerror(rv)));
		buf_free(&b);
		if (nng_http_res_alloc_error(&res, 500) != 0) {
			nng_aio_finish(aio, NNG_ENOMEM);
			return;
		}
		nng_aio_set_output(aio, 0, res);
		nng_aio_finish(aio, 0);
		return;
	}
	if (nng_http_res_alloc(&res) != 0 ||
	    nng_http_res_set_header(res, "Content-Type", "text/plain; version=0.0.4; charset=utf-8") != 0 ||
	    nng_http_res_set_header(res, "Cache-Control", "no-store") != 0 ||
	    nng_http_res_copy_data(res, b.data, b.len) != 0) {
		if (res != NULL)
			nng_http_res_free(res);
		buf_free(&b);
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	buf_free(&b);
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

/* addr -> "http://host:port" in url; CS_EINVAL for anything else. */
static int
metrics_url(const char *addr, char *url, size_t cap)
{
	const char *colon, *port;
	char *end;
	long p;
	int n;

	if (strncmp(addr, "http://", 7) == 0)
		addr += 7;
	if (addr[0] == '[') {
		const char *rb = strchr(addr, ']');
		if (rb == NULL || rb[1] != ':')
			return CS_EINVAL;
		colon = rb + 1;
	} else {
		colon = strrchr(addr, ':');
		if (colon == NULL || memchr(addr, ':', (size_t)(colon - addr)) != NULL)
			return CS_EINVAL;
	}
	port = colon + 1;
	p = strtol(port, &end, 10);
	if (*port == '\0' || (*end != '\0' && strcmp(end, "/") != 0) || p < 0 || p > 65535)
		return CS_EINVAL;
	if (colon == addr)	/* ":port": every interface */
		n = snprintf(url, cap, "http://0.0.0.0:%ld", p);
	else
		n = snprintf(url, cap, "http://%.*s:%ld", (int)(colon - addr), addr, p);
	if (n < 0 || (size_t)n >= cap)
		return CS_EINVAL;
	return 0;
}

int
metrics_start(struct metrics **out, const char *addr, const char *service,
    struct stat_counter *stats, size_t nstats)
{
	struct metrics *m = NULL;
	nng_url *u = NULL;
	nng_sockaddr sa;
	char url[300];
	int rv = CS_ENNG;

	*out = NULL;
	if (addr == NULL || addr[0] == '\0')
		return 0;
	if (metrics_url(addr, url, sizeof(url)) != 0 || nng_url_parse(&u, url) != 0)
		return CS_EINVAL;
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		nng_url_free(u);
		return CS_ENOMEM;
	}
	m->service = service;
	m->stats = stats;
	m->nstats = nstats;
	m->started_ms = clock_mono_ms();
	m->port = -1;
	if (nng_http_server_hold(&m->srv, u) != 0) {
		m->srv = NULL;
		goto out;
	}
	if (nng_http_handler_alloc(&m->h, "/metrics", metrics_serve) != 0) {
		m->h = NULL;
		goto out;
	}
	if (nng_http_handler_set_method(m->h, "GET") != 0 ||
	    nng_http_handler_set_data(m->h, m, NULL) != 0)
		goto out;
	if (nng_http_server_add_handler(m->srv, m->h) != 0)
		goto out;
	if (nng_http_server_start(m->srv) != 0) {
		(void)nng_http_server_del_handler(m->srv, m->h);
		goto out;
	}
	if (nng_http_server_get_addr(m->srv, &sa) == 0) {
		if (sa.s_family == NNG_AF_INET)
			m->port = ntohs(sa.s_in.sa_port);
		else if (sa.s_family == NNG_AF_INET6)
			m->port = ntohs(sa.s_in6.sa_port);
	}
	log_info("metrics.listening", "url=%s port=%d", lq(url), m->port);
	nng_url_free(u);
	*out = m;
	return 0;
out:
	/* Not yet registered (or removed again): the handler is still ours to free. */
	if (m->h != NULL)
		nng_http_handler_free(m->h);
	if (m->srv != NULL)
		nng_http_server_release(m->srv);
	nng_url_free(u);
	free(m);
	return rv;
}

void
metrics_stop(struct metrics *m)
{
	if (m == NULL)
		return;
	/* Stop first: no new connection, existing ones closed, so no scrape runs after this. */
	nng_http_server_stop(m->srv);
	if (nng_http_server_del_handler(m->srv, m->h) == 0)
		nng_http_handler_free(m->h);
	nng_http_server_release(m->srv);
	free(m);
}

void
metrics_on_scrape(struct metrics *m, void (*fn)(void *), void *arg)
{
	if (m == NULL)
		return;
	m->scrape_arg = arg;
	atomic_store(&m->on_scrape, fn);
}

int
metrics_port(const struct metrics *m)
{
	return m != NULL ? m->port : -1;
}
