/*
 * json.c - token walking on top of jsmn (see json.h).
 * jsmn itself is compiled here once (JSMN_STATIC would duplicate it per file).
 * Nesting is bounded before jsmn runs (json_depth_check): jsmn finds the container a
 * closing bracket ends by walking up from the last token, O(depth) per bracket, so
 * unbounded depth made hostile input quadratic (a 400 KB page of brackets: ~50 s).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "hash.h"
#define JSMN_STRICT
/* Parent links make closing a bracket O(depth); without them jsmn walks back over every
 * earlier token, which is quadratic on a page of a thousand rows. */
#define JSMN_PARENT_LINKS
#include <jsmn.h>
#include "json.h"


/* A JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int
valid_number(const char *s, size_t n)
{
	size_t i = 0;

	if (i < n && s[i] == '-')
		i++;
	if (i >= n)
		return 0;
	if (s[i] == '0')
		i++;
	else if (s[i] >= '1' && s[i] <= '9')
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	else
		return 0;
	if (i < n && s[i] == '.') {
		size_t d = ++i;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == d)
			return 0;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		size_t d = i;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == d)
			return 0;
	}
	return i == n;
}

/*
 * jsmn's strict mode still lets through a few malformed inputs ({"a":} and bare words such
 * as tru). Walk the tokens once: every object key has exactly one value, every primitive is
 * a literal or a number, nesting is bounded. Returns the index after t, or -1.
 */
static int
validate(const struct json *j, int t, int depth)
{
	const jsmntok_t *k;

	if (t >= j->ntok || depth > JSON_MAX_DEPTH)
		return -1;
	k = &j->tok[t];
	switch (k->type) {
	case JSMN_OBJECT: {
		int i = t + 1;
		for (int n = 0; n < k->size; n++) {
			if (i >= j->ntok || j->tok[i].type != JSMN_STRING || j->tok[i].size != 1)
				return -1;
			if ((i = validate(j, i + 1, depth + 1)) < 0)
				return -1;
		}
		return i;
	}
	case JSMN_ARRAY: {
		int i = t + 1;
		for (int n = 0; n < k->size; n++)
			if ((i = validate(j, i, depth + 1)) < 0)
				return -1;
		return i;
	}
	case JSMN_STRING:
		return k->size == 0 ? t + 1 : -1;
	case JSMN_PRIMITIVE: {
		const char *s = j->src + k->start;
		size_t n = (size_t)(k->end - k->start);
		if ((n == 4 && memcmp(s, "true", 4) == 0) || (n == 5 && memcmp(s, "false", 5) == 0) ||
		    (n == 4 && memcmp(s, "null", 4) == 0) || valid_number(s, n))
			return t + 1;
		return -1;
	}
	default:
		return -1;
	}
}

/* A strict-mode primitive runs until one of these (jsmn_parse_primitive). */
static int
primitive_end(char c)
{
	return c == '\t' || c == '\r' || c == '\n' || c == ' ' || c == ',' || c == ']' || c == '}';
}

size_t
json_depth_check(const char *src, size_t len, int max_depth)
{
	int depth = 0;

	/*
	 * Tokenise exactly as jsmn's strict mode does (strings with their escapes, primitives up
	 * to their terminator, a NUL ends the input), so a bracket inside a string never counts
	 * and one jsmn would open always does. Where jsmn would stop with an error, stop too:
	 * it reads nothing after that.
	 */
	for (size_t i = 0; i < len && src[i] != '\0'; i++) {
		switch (src[i]) {
		case '{':
		case '[':
			if (++depth > max_depth)
				return i;
			break;
		case '}':
		case ']':
			if (depth-- == 0)
				return len;	/* unmatched: jsmn fails here */
			break;
		case '"':
			for (i++; i < len && src[i] != '\0' && src[i] != '"'; i++)
				if (src[i] == '\\' && i + 1 < len)
					i++;	/* \uXXXX: the hex digits cannot be a quote */
			if (i >= len || src[i] != '"')
				return len;	/* unterminated */
			break;
		case '\t':
		case '\r':
		case '\n':
		case ' ':
		case ':':
		case ',':
			break;
		case '-':
		case '0': case '1': case '2': case '3': case '4':
		case '5': case '6': case '7': case '8': case '9':
		case 't':
		case 'f':
		case 'n':
			for (; i < len && src[i] != '\0' && !primitive_end(src[i]); i++)
				if ((signed char)src[i] < 32 || src[i] == 127)
					return len;
			if (i >= len || src[i] == '\0')
				return len;	/* strict jsmn: a primitive must be followed by , ] } */
			i--;			/* the terminator is read by the loop */
			break;
		default:
			return len;		/* not JSON: jsmn stops here */
		}
	}
	return len;
}

int
json_parse(struct json *j, const char *src, size_t len, int max_tokens)
{
	jsmn_parser p;
	int n;

	memset(j, 0, sizeof(*j));
	j->src = src;
	j->len = len;
	/* Before jsmn, in one linear pass: too deep is refused at the bracket too many. */
	if (json_depth_check(src, len, JSON_MAX_DEPTH) < len)
		return CS_EJSON;
	/*
	 * One pass into a token array sized from the input and grown when jsmn runs out
	 * (jsmn resumes where it stopped), instead of a counting pass first: the fetcher
	 * parses every page between two downloads, so a pass saved is latency saved. The
	 * estimate is a token per 12 bytes (API pages have one per 11-14; a token is 20
	 * bytes) and grows by half: a page's array is then about 1.7 times its size instead
	 * of 2.5, and what was not needed is given back once parsed, since a parsed page is
	 * held while it waits in a queue and is normalised.
	 */
	int cap = len / 12 + 64 < (size_t)max_tokens ? (int)(len / 12 + 64) : max_tokens;
	jsmn_init(&p);
	for (;;) {
		jsmntok_t *t = realloc(j->tok, (size_t)cap * sizeof(*t));
		if (t == NULL) {
			json_free(j);
			return CS_ENOMEM;
		}
		j->tok = t;
		j->cap = cap;
		n = jsmn_parse(&p, src, len, j->tok, (unsigned)cap);
		if (n != JSMN_ERROR_NOMEM)
			break;
		if (cap >= max_tokens) {
			json_free(j);
			return CS_ETOOBIG;
		}
		cap = cap > max_tokens / 3 * 2 ? max_tokens : cap + cap / 2;
	}
	if (n <= 0) {
		json_free(j);
		return CS_EJSON;
	}
	j->ntok = n;
	if (cap - n > 1024) {
		jsmntok_t *t = realloc(j->tok, (size_t)n * sizeof(*t));
		if (t != NULL) {
			j->tok = t;
			j->cap = n;
		}
	}
	/* Strict jsmn still accepts trailing garbage after the first value; refuse it. */
	for (size_t i = (size_t)j->tok[0].end + (j->tok[0].type == JSMN_STRING); i < len; i++) {
		char c = src[i];
		if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
			json_free(j);
			return CS_EJSON;
		}
	}
	if (validate(j, 0, 0) != j->ntok) {
		json_free(j);
		return CS_EJSON;
	}
	return 0;
}

void
json_free(struct json *j)
{
	free(j->tok);
	j->tok = NULL;
	j->ntok = j->cap = 0;
}

enum json_kind
json_kind(const struct json *j, int t)
{
	const jsmntok_t *k;

	if (t < 0 || t >= j->ntok)
		return JK_ABSENT;
	k = &j->tok[t];
	switch (k->type) {
	case JSMN_OBJECT:	return JK_OBJECT;
	case JSMN_ARRAY:	return JK_ARRAY;
	case JSMN_STRING:	return JK_STRING;
	case JSMN_PRIMITIVE:
		switch (j->src[k->start]) {
		case 'n':	return JK_NULL;
		case 't':
		case 'f':	return JK_BOOL;
		default:	return JK_NUMBER;
		}
	default:
		return JK_ABSENT;
	}
}

int
json_skip(const struct json *j, int t)
{
	int end, i;

	if (t < 0 || t >= j->ntok)
		return -1;
	/* A scalar (or an object key, whose value follows it) ends at the next token. */
	if (j->tok[t].type == JSMN_STRING || j->tok[t].type == JSMN_PRIMITIVE)
		return t + 1;
	/*
	 * Tokens are in document order, and a container's subtree is the run of tokens that
	 * start before it ends: binary search for the first one that starts at or after its
	 * end, so skipping a big nested value costs O(log n), not its size.
	 */
	end = j->tok[t].end;
	int lo = t + 1, hi = j->ntok;
	while (lo < hi) {
		i = lo + (hi - lo) / 2;
		if (j->tok[i].start < end)
			lo = i + 1;
		else
			hi = i;
	}
	return lo;
}

int
json_size(const struct json *j, int t)
{
	if (t < 0 || t >= j->ntok)
		return 0;
	if (j->tok[t].type != JSMN_ARRAY && j->tok[t].type != JSMN_OBJECT)
		return 0;
	return j->tok[t].size;
}

int
json_first(const struct json *j, int t)
{
	if (json_size(j, t) == 0)
		return -1;
	return t + 1;
}

/*
 * Is key token k the string key[0..keylen)? Compared raw; a key written with escapes
 * ("\u0069d") is decoded first, as PostgreSQL's jsonb decodes it.
 */
static int
key_is(const struct json *j, int k, const char *key, size_t keylen)
{
	const jsmntok_t *kt = &j->tok[k];
	size_t n = (size_t)(kt->end - kt->start);
	const char *s = j->src + kt->start;
	char tmp[256];
	long w;

	if (n == keylen && memcmp(s, key, keylen) == 0)
		return 1;
	if (n <= keylen || keylen >= sizeof(tmp))
		return 0;	/* an escape only makes the raw form longer */
	/*
	 * Decoded, a key reads as its raw bytes up to its first escape: one that differs
	 * from key before that cannot match (most keys of a row, for each column looked up;
	 * scanning each for a backslash was a tenth of the run thread's time).
	 */
	for (size_t i = 0; s[i] != '\\'; i++)
		if (i == keylen || s[i] != key[i])
			return 0;
	w = json_unescape(s, n, tmp, sizeof(tmp));
	return w >= 0 && (size_t)w == keylen && memcmp(tmp, key, keylen) == 0;
}

int
json_getn(const struct json *j, int obj, const char *key, size_t keylen)
{
	int n, k;

	if (obj < 0 || obj >= j->ntok || j->tok[obj].type != JSMN_OBJECT)
		return -1;
	n = j->tok[obj].size;
	k = obj + 1;
	for (int i = 0; i < n && k < j->ntok; i++) {
		if (key_is(j, k, key, keylen))
			return k + 1;
		k = json_skip(j, k + 1);
	}
	return -1;
}

/* A key's decoded bytes: s itself when it has no escape, else decoded into buf. */
static const char *
key_text(const struct json *j, int k, char *buf, size_t cap, size_t *len)
{
	const jsmntok_t *kt = &j->tok[k];
	const char *s = j->src + kt->start;
	size_t n = (size_t)(kt->end - kt->start);
	long w;

	*len = n;
	if (memchr(s, '\\', n) == NULL || (w = json_unescape(s, n, buf, cap)) < 0)
		return s;	/* (undecodable: validate() let it through raw; compare raw) */
	*len = (size_t)w;
	return buf;
}

static int
key_eq(const struct json *j, int a, int b)
{
	char ba[512], bb[512];
	size_t na, nb;
	const char *sa = key_text(j, a, ba, sizeof(ba), &na);
	const char *sb = key_text(j, b, bb, sizeof(bb), &nb);

	return na == nb && memcmp(sa, sb, na) == 0;
}

struct keyhash {
	uint64_t	h;
	int		tok;
};

static int
keyhash_cmp(const void *a, const void *b)
{
	const struct keyhash *x = a, *y = b;

	if (x->h != y->h)
		return x->h < y->h ? -1 : 1;
	return x->tok < y->tok ? -1 : x->tok > y->tok;
}

#define DUP_PAIRWISE_MAX	16	/* members compared pair by pair; more are hashed and sorted */

/* A repeated key among the members of object o: its later token, -1, or -2 (no memory). */
static int
object_dup(const struct json *j, int o, struct keyhash **scratch, size_t *cap)
{
	int n = j->tok[o].size, keys[DUP_PAIRWISE_MAX], k = o + 1;

	if (n < 2)
		return -1;
	if (n <= DUP_PAIRWISE_MAX) {
		for (int i = 0; i < n; i++, k = json_skip(j, k + 1)) {
			keys[i] = k;
			for (int p = 0; p < i; p++)
				if (key_eq(j, keys[p], k))
					return k;
		}
		return -1;
	}
	if ((size_t)n > *cap) {
		struct keyhash *nk = realloc(*scratch, (size_t)n * sizeof(*nk));
		if (nk == NULL)
			return -2;
		*scratch = nk;
		*cap = (size_t)n;
	}
	for (int i = 0; i < n; i++, k = json_skip(j, k + 1)) {
		char buf[512];
		size_t len;
		const char *s = key_text(j, k, buf, sizeof(buf), &len);
		(*scratch)[i].h = hash_fnv1a(HASH_FNV1A_INIT, s, len);
		(*scratch)[i].tok = k;
	}
	qsort(*scratch, (size_t)n, sizeof(**scratch), keyhash_cmp);
	for (int i = 1; i < n; i++) {
		/* Equal hashes sort by position: the later of an equal pair is a repeat. */
		for (int p = i - 1; p >= 0 && (*scratch)[p].h == (*scratch)[i].h; p--)
			if (key_eq(j, (*scratch)[p].tok, (*scratch)[i].tok))
				return (*scratch)[i].tok;
	}
	return -1;
}

int
json_dup_key(const struct json *j, int t, int *dup)
{
	struct keyhash *scratch = NULL;
	size_t cap = 0;
	int end = json_skip(j, t), rv = 0;

	*dup = -1;
	for (int i = t; i >= 0 && i < end; i++) {
		if (j->tok[i].type != JSMN_OBJECT)
			continue;
		int d = object_dup(j, i, &scratch, &cap);
		if (d == -2) {
			rv = CS_ENOMEM;
			break;
		}
		if (d >= 0) {
			*dup = d;
			break;
		}
	}
	free(scratch);
	return rv;
}

int
json_get(const struct json *j, int obj, const char *key)
{
	return json_getn(j, obj, key, strlen(key));
}

int
json_path(const struct json *j, int t, const char *path)
{
	const char *p = path;

	while (t >= 0 && *p != '\0') {
		const char *dot = strchr(p, '.');
		size_t n = dot != NULL ? (size_t)(dot - p) : strlen(p);

		if (json_kind(j, t) == JK_ARRAY && n > 0 && p[0] >= '0' && p[0] <= '9') {
			long idx = strtol(p, NULL, 10);
			int e = json_first(j, t);
			if (idx >= json_size(j, t))
				return -1;
			for (long i = 0; i < idx; i++)
				e = json_skip(j, e);
			t = e;
		} else {
			t = json_getn(j, t, p, n);
		}
		p += n;
		if (*p == '.')
			p++;
	}
	return t;
}

const char *
json_raw(const struct json *j, int t, size_t *len)
{
	if (t < 0 || t >= j->ntok) {
		*len = 0;
		return NULL;
	}
	*len = (size_t)(j->tok[t].end - j->tok[t].start);
	return j->src + j->tok[t].start;
}

const char *
json_text(const struct json *j, int t, size_t *len)
{
	if (t < 0 || t >= j->ntok) {
		*len = 0;
		return NULL;
	}
	if (j->tok[t].type == JSMN_STRING) {
		*len = (size_t)(j->tok[t].end - j->tok[t].start) + 2;
		return j->src + j->tok[t].start - 1;
	}
	return json_raw(j, t, len);
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static long
read_u16(const char *s, size_t n, size_t i)
{
	long v = 0;

	if (i + 4 > n)
		return -1;
	for (size_t k = 0; k < 4; k++) {
		int h = hexval(s[i + k]);
		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

long
json_unescape(const char *s, size_t n, char *dst, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned long cp;
		char c = s[i];

		if (c != '\\') {
			if (o + 1 >= cap)
				return -1;
			dst[o++] = c;
			continue;
		}
		if (++i >= n)
			return -1;
		switch (s[i]) {
		case '"': case '\\': case '/':
			c = s[i];
			break;
		case 'b': c = '\b'; break;
		case 'f': c = '\f'; break;
		case 'n': c = '\n'; break;
		case 'r': c = '\r'; break;
		case 't': c = '\t'; break;
		case 'u': {
			long hi = read_u16(s, n, i + 1);
			if (hi < 0)
				return -1;
			i += 4;
			cp = (unsigned long)hi;
			if (hi >= 0xD800 && hi <= 0xDBFF) {
				long lo;
				if (i + 2 >= n || s[i + 1] != '\\' || s[i + 2] != 'u' ||
				    (lo = read_u16(s, n, i + 3)) < 0xDC00 || lo > 0xDFFF)
					return -1;
				i += 6;
				cp = 0x10000 + (((unsigned long)hi - 0xD800) << 10) + ((unsigned long)lo - 0xDC00);
			} else if (hi >= 0xDC00 && hi <= 0xDFFF) {
				return -1;
			}
			if (cp == 0)
				return -1;	/* NUL cannot live in text columns */
			if (o + 5 >= cap)
				return -1;
			if (cp < 0x80) {
				dst[o++] = (char)cp;
			} else if (cp < 0x800) {
				dst[o++] = (char)(0xC0 | (cp >> 6));
				dst[o++] = (char)(0x80 | (cp & 0x3F));
			} else if (cp < 0x10000) {
				dst[o++] = (char)(0xE0 | (cp >> 12));
				dst[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
				dst[o++] = (char)(0x80 | (cp & 0x3F));
			} else {
				dst[o++] = (char)(0xF0 | (cp >> 18));
				dst[o++] = (char)(0x80 | ((cp >> 12) & 0x3F));
				dst[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
				dst[o++] = (char)(0x80 | (cp & 0x3F));
			}
			continue;
		}
		default:
			return -1;
		}
		if (o + 1 >= cap)
			return -1;
		dst[o++] = c;
	}
	if (o >= cap)
		return -1;
	dst[o] = '\0';
	return (long)o;
}

int
json_str(const struct json *j, int t, char *dst, size_t cap, size_t *outlen)
{
	size_t n;
	const char *s = json_raw(j, t, &n);
	long w;

	if (s == NULL)
		return CS_ENOENT;
	if (j->tok[t].type == JSMN_STRING) {
		if ((w = json_unescape(s, n, dst, cap)) < 0)
			return n + 1 > cap ? CS_ETOOBIG : CS_EJSON;
	} else {
		if (n + 1 > cap)
			return CS_ETOOBIG;
		memcpy(dst, s, n);
		dst[n] = '\0';
		w = (long)n;
	}
	if (outlen != NULL)
		*outlen = (size_t)w;
	return 0;
}

int
json_int64(const struct json *j, int t, int64_t *out)
{
	char tmp[32];
	char *end;
	size_t n;
	const char *s = json_raw(j, t, &n);
	long long v;

	if (s == NULL)
		return CS_ENOENT;
	if (j->tok[t].type != JSMN_PRIMITIVE && j->tok[t].type != JSMN_STRING)
		return CS_EINVAL;
	if (n == 0 || n >= sizeof(tmp))
		return CS_ERANGE;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	errno = 0;
	v = strtoll(tmp, &end, 10);
	if (errno == ERANGE)
		return CS_ERANGE;
	/* Accept "12.0" (Hollihop writes some integers as decimals) but not "12.5". */
	if (*end == '.') {
		for (char *p = end + 1; *p; p++)
			if (*p != '0')
				return CS_EINVAL;
	} else if (end == tmp || *end != '\0') {
		return CS_EINVAL;
	}
	*out = v;
	return 0;
}

int
json_bool(const struct json *j, int t, int *out)
{
	size_t n;
	const char *s = json_raw(j, t, &n);

	if (s == NULL)
		return CS_ENOENT;
	if ((n == 4 && memcmp(s, "true", 4) == 0) || (n == 1 && s[0] == '1')) {
		*out = 1;
		return 0;
	}
	if ((n == 5 && memcmp(s, "false", 5) == 0) || (n == 1 && s[0] == '0')) {
		*out = 0;
		return 0;
	}
	return CS_EINVAL;
}

int
json_streq(const struct json *j, int t, const char *s)
{
	size_t n;
	const char *r = json_raw(j, t, &n);

	return r != NULL && strlen(s) == n && memcmp(r, s, n) == 0;
}
