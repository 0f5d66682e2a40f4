/*
 * httpd.h - the gateway's HTTPS front end: POST /hooks/amo/<secret>.
 *
 * Connections and TLS come from NNG (an nng_stream_listener on tls+tcp://, NNG's mbedTLS
 * engine); the part of HTTP/1.1 a webhook needs is spoken in httpd.c, which gives what NNG
 * 1.5's HTTP server lacks: connection caps (in all and per client address), per-phase deadlines (enforced by closing the
 * stream), 411 for chunked bodies, 413 before reading an oversized body, TCP_NODELAY, and
 * connections that can always be closed. A hook is answered 204 only after the journal's
 * fsync covers it; every reply is a status line without a body.
 */
#ifndef GW_HTTPD_H
#define GW_HTTPD_H

#include <stddef.h>
#include <stdint.h>

#include "form.h"

struct journal;
struct deadletter;
struct httpd;

struct httpd_opts {
	const char		*listen;	/* "host:port"; port 0 picks a free one */
	int			 tls;		/* 0 only when explicitly configured */
	const char		*cert_file;	/* PEM, may hold the chain */
	const char		*key_file;
	const char		*secret;	/* the path token */
	size_t			 body_max;
	int64_t			 idle_timeout_ms;
	int64_t			 body_timeout_ms;
	int64_t			 write_timeout_ms;
	int			 max_conns;
	int			 max_conns_per_client;	/* from one client address; <= 0: max_conns */
	struct form_limits	 limits;
	struct journal		*journal;	/* NULL: answer 204 without journaling (benchmarks) */
	struct deadletter	*deadletter;
};

/* What a request head says; pointers go into the parsed buffer. */
struct httpd_head {
	size_t		 len;		/* bytes of the head, final empty line included */
	const char	*method, *target;
	size_t		 methodlen, targetlen;
	int		 minor;		/* HTTP/1.<minor> */
	const char	*cl, *te, *conn, *ctype, *expect;	/* header values, or NULL */
	size_t		 cllen, telen, connlen, ctypelen, expectlen;
	int		 cl_conflict;	/* two Content-Length headers that differ */
};

/*
 * Parse a request head at p[0..n) (exposed for the fuzz target). Returns 1 (complete, *hd
 * filled), 0 (need more bytes), or the status to refuse it with: 400, 431 or 505.
 */
int	httpd_parse_head(const char *p, size_t n, struct httpd_head *hd);

/* Start listening. Strings in o are copied. 0, CS_ECONFIG (cert, key, address), CS_ENNG. */
int	httpd_start(struct httpd **out, const struct httpd_opts *o);
/*
 * Load the certificate and key files again (SIGHUP) and use them for every handshake from
 * now on; connections already open keep the config they started with, which is freed with
 * the last of them. A file that cannot be read or parsed, or a key that is not the
 * certificate's, is logged (ev=http.tls_reload_failed) and the old config stays: 0 or
 * CS_ECONFIG / CS_ENNG. 0 without TLS. Main thread.
 */
int	httpd_reload_tls(struct httpd *h);
/* The bound port. */
int	httpd_port(struct httpd *h);
/*
 * Stop accepting, let in-flight hooks finish (their journal callbacks still arrive, so
 * close the journal after this), close every connection and free. NULL is fine.
 */
void	httpd_stop(struct httpd *h);

#endif
