/*
 * json_fuzz.c - libFuzzer target for lib/json.c, the JSON view every CRM page goes through.
 * Whatever json_parse accepts must be walkable: every token's text lies inside the input,
 * json_skip moves forward, strings decode or refuse cleanly. And the depth pre-scan must
 * agree with jsmn itself (run here alone, on the same bytes) wherever jsmn's tree is well
 * formed: it refuses exactly the inputs on which jsmn would nest deeper than JSON_MAX_DEPTH
 * before stopping, and nothing jsmn would parse within the limit. (After a stray ':' jsmn
 * hangs later tokens under the last one, even a closed container; its tree depth then is
 * not the bracket depth, and such input is refused by json_parse's own walk.)
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "json.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * How deep jsmn's own tokens nest (containers only), whether jsmn stopped with an error, and
 * whether its tree is well formed: every token inside its parent's span. Strict jsmn still
 * accepts a stray ':' and then re-parents the next tokens under the last one (even a closed
 * container), so on such malformed input its tree depth is not the bracket depth.
 */
static int
jsmn_depth(const char *src, size_t len, int *failed, int *well_formed)
{
	jsmn_parser p;
	jsmntok_t *t = calloc(len + 1, sizeof(*t));
	int *d, max = 0, n;

	if (t == NULL || (d = calloc(len + 1, sizeof(*d))) == NULL)
		abort();
	jsmn_init(&p);
	n = jsmn_parse(&p, src, len, t, (unsigned)(len + 1));	/* a token takes >= 1 byte */
	*failed = n < 0;
	*well_formed = 1;
	for (unsigned i = 0; i < p.toknext; i++) {
		int c = t[i].type == JSMN_OBJECT || t[i].type == JSMN_ARRAY;
		if (t[i].parent >= (int)i)
			abort();
		if (t[i].parent >= 0 && (t[i].start < t[t[i].parent].start ||
		    t[i].end > t[t[i].parent].end))
			*well_formed = 0;
		d[i] = (t[i].parent >= 0 ? d[t[i].parent] : 0) + c;
		if (d[i] > max)
			max = d[i];
	}
	free(d);
	free(t);
	return max;
}

static void
inside(const char *base, size_t len, const char *p, size_t n)
{
	if (p == NULL || p < base || p + n > base + len)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *src = (const char *)data;
	struct json j;
	char buf[256];
	int failed, well_formed, rv;
	size_t at = json_depth_check(src, size, JSON_MAX_DEPTH);
	int deepest = jsmn_depth(src, size, &failed, &well_formed);

	if (at > size)
		abort();
	if (at == size && well_formed && deepest > JSON_MAX_DEPTH)
		abort();	/* the scan let through what jsmn nests too deep */
	if (at < size && !failed && well_formed && deepest <= JSON_MAX_DEPTH)
		abort();	/* the scan refused what jsmn parses within the limit */

	rv = json_parse(&j, src, size, 4096);
	if (rv != 0) {
		if (rv != CS_EJSON && rv != CS_ETOOBIG && rv != CS_ENOMEM)
			abort();
		return 0;
	}
	if (at < size || j.ntok < 1)
		abort();
	for (int t = 0; t < j.ntok; t++) {
		size_t n;
		const char *p = json_text(&j, t, &n);
		int next = json_skip(&j, t);
		int64_t v;

		inside(src, size, p, n);
		if (next <= t || next > j.ntok)
			abort();
		switch (json_kind(&j, t)) {
		case JK_STRING:
			rv = json_str(&j, t, buf, sizeof(buf), &n);
			if (rv == 0 && (n >= sizeof(buf) || buf[n] != '\0'))
				abort();
			break;
		case JK_NUMBER:
			(void)json_int64(&j, t, &v);
			break;
		case JK_ARRAY:
		case JK_OBJECT:
			if (json_size(&j, t) < 0)
				abort();
			if (json_size(&j, t) > 0 && json_first(&j, t) != t + 1)
				abort();
			break;
		default:
			break;
		}
	}
	if (json_skip(&j, 0) != j.ntok)
		abort();	/* the root value spans every token */
	/* A repeated key, if any, is an object key after the first token. */
	int dup;
	if (json_dup_key(&j, 0, &dup) == 0 && dup != -1 &&
	    (dup < 1 || dup >= j.ntok || json_kind(&j, dup) != JK_STRING))
		abort();
	json_free(&j);
	return 0;
}
