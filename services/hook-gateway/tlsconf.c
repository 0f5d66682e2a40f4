/*
 * tlsconf.c - certificate and key files -> a checked NNG TLS server config (see tlsconf.h).
 * mbedTLS 2.28 parses the PEM (x509_crt_parse, pk_parse_key want the terminating NUL in
 * the length) and checks the pair (pk_check_pair); NNG then parses the same bytes again
 * for its own config. The key is wiped from memory once NNG has it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "errors.h"
#include "log.h"
#include "tlsconf.h"

#define TLSCONF_PEM_MAX	(1u << 20)	/* a chain of a few certificates is a few KiB */

/* Read a whole PEM file, NUL-terminated; *out is the caller's. */
static int
tlsconf_read(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *b = NULL;
	size_t n = 0;

	*out = NULL;
	if (f == NULL)
		return CS_ECONFIG;
	if ((b = malloc(TLSCONF_PEM_MAX + 1)) != NULL)
		n = fread(b, 1, TLSCONF_PEM_MAX + 1, f);
	if (b == NULL || ferror(f) || n == 0 || n > TLSCONF_PEM_MAX) {
		fclose(f);
		if (b != NULL) {
			explicit_bzero(b, TLSCONF_PEM_MAX + 1);
			free(b);
		}
		return CS_ECONFIG;
	}
	fclose(f);
	b[n] = '\0';
	*out = b;
	*len = n;
	return 0;
}

static int64_t
tlsconf_time(const mbedtls_x509_time *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = t->year - 1900;
	tm.tm_mon = t->mon - 1;
	tm.tm_mday = t->day;
	tm.tm_hour = t->hour;
	tm.tm_min = t->min;
	tm.tm_sec = t->sec;
	return (int64_t)timegm(&tm);
}

/* Both parse and belong together; info filled from the (first) certificate. */
static int
tlsconf_check(const char *cert_file, const char *key_file, const char *cert, size_t certlen,
    const char *key, size_t keylen, struct tlsconf_info *info)
{
	mbedtls_x509_crt crt;
	mbedtls_pk_context pk;
	int rv = CS_ECONFIG, mrv;
	char err[160];

	mbedtls_x509_crt_init(&crt);
	mbedtls_pk_init(&pk);
	if ((mrv = mbedtls_x509_crt_parse(&crt, (const unsigned char *)cert, certlen + 1)) != 0) {
		mbedtls_strerror(mrv, err, sizeof(err));
		log_warnx("http.tls_cert_rejected", "cert=%s err=%s", lq(cert_file), lq(err));
		goto out;
	}
	if ((mrv = mbedtls_pk_parse_key(&pk, (const unsigned char *)key, keylen + 1, NULL, 0)) != 0) {
		mbedtls_strerror(mrv, err, sizeof(err));
		log_warnx("http.tls_key_rejected", "key=%s err=%s", lq(key_file), lq(err));
		goto out;
	}
	if ((mrv = mbedtls_pk_check_pair(&crt.pk, &pk)) != 0) {
		mbedtls_strerror(mrv, err, sizeof(err));
		log_warnx("http.tls_key_mismatch", "cert=%s key=%s err=%s: the key is not the "
		    "certificate's", lq(cert_file), lq(key_file), lq(err));
		goto out;
	}
	if (mbedtls_x509_dn_gets(info->subject, sizeof(info->subject), &crt.subject) < 0)
		info->subject[0] = '\0';
	if (mbedtls_x509_serial_gets(info->serial, sizeof(info->serial), &crt.serial) < 0)
		info->serial[0] = '\0';
	info->not_after = tlsconf_time(&crt.valid_to);
	rv = 0;
out:
	mbedtls_pk_free(&pk);
	mbedtls_x509_crt_free(&crt);
	return rv;
}

int
tlsconf_load(const char *cert_file, const char *key_file, nng_tls_config **out,
    struct tlsconf_info *info)
{
	nng_tls_config *cfg = NULL;
	char *cert = NULL, *key = NULL;
	size_t certlen = 0, keylen = 0;
	int rv, nrv;

	*out = NULL;
	memset(info, 0, sizeof(*info));
	if ((rv = tlsconf_read(cert_file, &cert, &certlen)) != 0) {
		log_warnx("http.tls_cert_unreadable", "path=%s", lq(cert_file));
		goto out;
	}
	if ((rv = tlsconf_read(key_file, &key, &keylen)) != 0) {
		log_warnx("http.tls_key_unreadable", "path=%s", lq(key_file));
		goto out;
	}
	if ((rv = tlsconf_check(cert_file, key_file, cert, certlen, key, keylen, info)) != 0)
		goto out;
	rv = CS_ENNG;
	if ((nrv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_SERVER)) != 0) {
		log_warnx("http.tls_failed", "err=%s", lq(nng_strerror(nrv)));
		goto out;
	}
	/* TLS 1.2 or later; NNG's mbedTLS 2.28 tops out at 1.2 in practice. */
	if (nng_tls_config_version(cfg, NNG_TLS_1_2, NNG_TLS_1_3) != 0 &&
	    (nrv = nng_tls_config_version(cfg, NNG_TLS_1_2, NNG_TLS_1_2)) != 0) {
		log_warnx("http.tls_failed", "err=%s", lq(nng_strerror(nrv)));
		goto out;
	}
	if ((nrv = nng_tls_config_own_cert(cfg, cert, key, NULL)) != 0) {
		log_warnx("http.tls_cert_rejected", "cert=%s key=%s err=%s", lq(cert_file),
		    lq(key_file), lq(nng_strerror(nrv)));
		rv = CS_ECONFIG;
		goto out;
	}
	*out = cfg;
	cfg = NULL;
	rv = 0;
out:
	if (cfg != NULL)
		nng_tls_config_free(cfg);
	if (key != NULL) {
		explicit_bzero(key, keylen);
		free(key);
	}
	free(cert);
	return rv;
}
