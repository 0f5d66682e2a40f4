/*
 * json_bench.c - what deeply nested JSON costs lib/json.c, next to jsmn alone (the parser
 * as it was before json_parse bounded depth up front) and to a flat input of the same size.
 *
 *   cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release && cmake --build build-bench --target json_bench
 *   build-bench/bench/json/json_bench [max_kib]       (default 400)
 *
 * For each size: a page that is nothing but "[[[[...]]]]" (depth = half its bytes), parsed
 * by jsmn alone (quadratic: it walks the parent chain at every closing bracket; only run up
 * to 100 KiB, it takes minutes beyond) and by json_parse (refused at bracket 65); and a
 * flat array "[1,1,1,...]" of the same size through json_parse (the baseline: linear); and
 * the worst legal shape, nests of the full 64 levels one after another, through json_parse.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errors.h"
#include "json.h"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
time_jsmn(const char *src, size_t len)
{
	jsmn_parser p;
	jsmntok_t *t = malloc((len + 1) * sizeof(*t));
	double t0 = now_s();

	jsmn_init(&p);
	(void)jsmn_parse(&p, src, len, t, (unsigned)(len + 1));
	t0 = now_s() - t0;
	free(t);
	return t0;
}

static double
time_parse(const char *src, size_t len, int *rv)
{
	struct json j;
	double t0 = now_s();

	*rv = json_parse(&j, src, len, 1 << 24);
	t0 = now_s() - t0;
	if (*rv == 0)
		json_free(&j);
	return t0;
}

int
main(int argc, char **argv)
{
	size_t maxk = argc > 1 ? strtoul(argv[1], NULL, 10) : 400;
	char *deep, *flat, *legal;

	if (maxk < 25 || maxk > 1 << 20) {
		fprintf(stderr, "usage: json_bench [max_kib >= 25]\n");
		return 2;
	}
	deep = malloc(maxk * 1024);
	flat = malloc(maxk * 1024);
	legal = malloc(maxk * 1024);
	printf("%-9s %-22s %-22s %-22s %s\n", "size", "nested: jsmn alone", "nested: json_parse",
	    "flat: json_parse", "64-deep nests: json_parse");
	for (size_t k = 25; k <= maxk; k *= 2) {
		size_t len = k * 1024;
		char jcol[32] = "(skipped: minutes)";
		int rvd, rvf, rvl;
		double td, tf, tl;
		size_t o = 0;

		memset(deep, '[', len / 2);
		memset(deep + len / 2, ']', len / 2);
		flat[0] = '[';
		for (size_t i = 1; i + 1 < len; i += 2) {
			flat[i] = '1';
			flat[i + 1] = ',';
		}
		flat[len - 2] = '1';
		flat[len - 1] = ']';
		/* "[" then ",[[...63...]]" repeated, then "]": every bracket 64 levels deep at most */
		legal[o++] = '[';
		while (o + 2 * (JSON_MAX_DEPTH - 1) + 2 < len) {
			if (o > 1)
				legal[o++] = ',';
			memset(legal + o, '[', JSON_MAX_DEPTH - 1);
			memset(legal + o + JSON_MAX_DEPTH - 1, ']', JSON_MAX_DEPTH - 1);
			o += 2 * (JSON_MAX_DEPTH - 1);
		}
		legal[o++] = ']';
		if (k <= 100)
			snprintf(jcol, sizeof(jcol), "%.3f s", time_jsmn(deep, len));
		td = time_parse(deep, len, &rvd);
		tf = time_parse(flat, len, &rvf);
		tl = time_parse(legal, o, &rvl);
		{
			char size[16], dcol[32], fcol[32], lcol[32];

			snprintf(size, sizeof(size), "%zu KiB", k);
			snprintf(dcol, sizeof(dcol), "%.6f s (%s)", td, rvd == CS_EJSON ? "refused" : "?!");
			snprintf(fcol, sizeof(fcol), "%.6f s (%s)", tf, rvf == 0 ? "ok" : cs_strerror(rvf));
			snprintf(lcol, sizeof(lcol), "%.6f s (%s)", tl, rvl == 0 ? "ok" : cs_strerror(rvl));
			printf("%-9s %-22s %-22s %-22s %s\n", size, jcol, dcol, fcol, lcol);
		}
	}
	free(deep);
	free(flat);
	free(legal);
	return 0;
}
