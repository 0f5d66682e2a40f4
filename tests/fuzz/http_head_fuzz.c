/*
 * http_head_fuzz.c - libFuzzer target for the hook gateway's HTTP/1.x request head parser
 * (httpd_parse_head in services/hook-gateway/httpd.c). Whatever it accepts must be
 * consistent: the head fits in the input, every value it points at lies inside the head.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "gateway.h"
#include "httpd.h"

/* httpd.c counts into the gateway's stats; main.c, which defines them, is not linked here. */
struct stat_counter gw_stats[GW_NSTATS];

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
inside(const char *base, size_t len, const char *p, size_t n)
{
	if (p != NULL && (p < base || p + n > base + len))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	struct httpd_head hd;
	int rv = httpd_parse_head(p, size, &hd);

	if (rv != 0 && rv != 1 && rv != 400 && rv != 431 && rv != 505)
		abort();
	if (rv != 1)
		return 0;
	if (hd.len == 0 || hd.len > size || hd.methodlen == 0 || hd.targetlen == 0 ||
	    (hd.minor != 0 && hd.minor != 1))
		abort();
	inside(p, hd.len, hd.method, hd.methodlen);
	inside(p, hd.len, hd.target, hd.targetlen);
	inside(p, hd.len, hd.cl, hd.cllen);
	inside(p, hd.len, hd.te, hd.telen);
	inside(p, hd.len, hd.conn, hd.connlen);
	inside(p, hd.len, hd.ctype, hd.ctypelen);
	inside(p, hd.len, hd.expect, hd.expectlen);
	return 0;
}
