/*
 * tlsconf.h - the gateway's certificate and key files as an NNG TLS server configuration.
 * The files are read and checked with mbedTLS (the engine NNG uses) before NNG sees them:
 * both must parse and the key must belong to the certificate, since NNG would take a
 * mismatched pair and fail every handshake after. Used at start and on SIGHUP (httpd.c).
 */
#ifndef GW_TLSCONF_H
#define GW_TLSCONF_H

#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

/* What the certificate says, for the log and the tls_not_after gauge. */
struct tlsconf_info {
	char	subject[256];
	char	serial[128];
	int64_t	not_after;	/* unix seconds */
};

/*
 * Build a server config (TLS 1.2+) from the PEM files. On success *out is the caller's
 * (nng_tls_config_free) and info describes the certificate; on failure *out is NULL, the
 * reason is logged (ev=http.tls_*) and the result is CS_ECONFIG (files) or CS_ENNG.
 */
int	tlsconf_load(const char *cert_file, const char *key_file, nng_tls_config **out,
	    struct tlsconf_info *info);

#endif
