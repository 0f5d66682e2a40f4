/*
 * normalise.c - JSON row -> Record, driven by the catalogue (see normalise.h).
 *
 * One converter per cat_type; no per-entity code. Values are emitted in the text form
 * PostgreSQL's COPY/input functions accept: 123, 12.50, t/f, ISO timestamps in UTC,
 * {1,2} arrays, JSON text for jsonb.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errors.h"
#include "normalise.h"

#define NORM_STR_MAX	(4u << 20)	/* a single text value */
#define NORM_DEFAULTS	4

/* normalise_set_default(): context values of the whole process. */
static struct {
	char	name[32];
	char	value[64];
} defaults[NORM_DEFAULTS];
static int ndefaults;

void
norm_ctx_set(struct norm_ctx *c, const char *name, const char *value)
{
	for (int i = 0; i < c->n; i++) {
		if (strcmp(c->name[i], name) == 0) {
			c->value[i] = value;
			return;
		}
	}
	if (c->n < NORM_CTX_MAX) {
		c->name[c->n] = name;
		c->value[c->n++] = value;
	}
}

int
normalise_set_default(const char *name, const char *value)
{
	int i;

	for (i = 0; i < ndefaults && strcmp(defaults[i].name, name) != 0; i++)
		;
	if (value == NULL) {
		if (i < ndefaults)
			defaults[i] = defaults[--ndefaults];
		return 0;
	}
	if (i == NORM_DEFAULTS || strlen(name) >= sizeof(defaults[i].name) ||
	    strlen(value) >= sizeof(defaults[i].value))
		return CS_ETOOBIG;
	snprintf(defaults[i].name, sizeof(defaults[i].name), "%s", name);
	snprintf(defaults[i].value, sizeof(defaults[i].value), "%s", value);
	if (i == ndefaults)
		ndefaults++;
	return 0;
}

int
normalise_set_timezone(const char *tz)
{
	if (tz == NULL || *tz == '\0')
		return CS_EINVAL;
	setenv("TZ", tz, 1);
	tzset();
	return 0;
}

static char *
fmt_ts(struct arena *a, int64_t epoch)
{
	struct tm tm;
	time_t t = (time_t)epoch;
	char tmp[48];

	if (gmtime_r(&t, &tm) == NULL)
		return NULL;
	snprintf(tmp, sizeof(tmp), "%04d-%02d-%02d %02d:%02d:%02d+00", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return arena_strndup(a, tmp, strlen(tmp));
}

static int
digits(const char *s, size_t n, int *out)
{
	int v = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

/* "YYYY-MM-DD[T| ]HH:MM[:SS][.frac][Z|+hh:mm|-hh:mm]" -> epoch seconds. No offset = local. */
static int
parse_local_ts(const char *s, size_t n, int64_t *epoch)
{
	struct tm tm;
	int y, mo, d, h = 0, mi = 0, sec = 0, off = 0, have_off = 0;
	size_t i = 0;

	memset(&tm, 0, sizeof(tm));
	if (n < 10 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
	    digits(s + 8, 2, &d))
		return CS_EINVAL;
	i = 10;
	if (i < n && (s[i] == 'T' || s[i] == ' ')) {
		if (n < i + 6 || digits(s + i + 1, 2, &h) || s[i + 3] != ':' || digits(s + i + 4, 2, &mi))
			return CS_EINVAL;
		i += 6;
		if (i < n && s[i] == ':') {
			if (n < i + 3 || digits(s + i + 1, 2, &sec))
				return CS_EINVAL;
			i += 3;
		}
		if (i < n && s[i] == '.')
			for (i++; i < n && isdigit((unsigned char)s[i]); i++)
				;
		if (i < n && s[i] == 'Z') {
			have_off = 1;
			i++;
		} else if (i < n && (s[i] == '+' || s[i] == '-')) {
			int oh, om = 0;
			if (n < i + 3 || digits(s + i + 1, 2, &oh))
				return CS_EINVAL;
			size_t k = i + 3;
			if (k < n && s[k] == ':')
				k++;
			if (k + 2 <= n && digits(s + k, 2, &om) == 0)
				k += 2;
			off = (oh * 60 + om) * 60 * (s[i] == '-' ? -1 : 1);
			have_off = 1;
			i = k;
		}
	}
	if (i != n || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return CS_EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	if (have_off) {
		*epoch = (int64_t)timegm(&tm) - off;
	} else {
		tm.tm_isdst = -1;
		*epoch = (int64_t)mktime(&tm);
	}
	return 0;
}

/* "+03:00", "+0300", "+03", "-05:30" -> seconds east of UTC; -1 when not such an offset. */
static int
parse_offset(const char *s, int *secs)
{
	int h, m = 0;
	size_t n = s != NULL ? strlen(s) : 0;

	if (n < 3 || (s[0] != '+' && s[0] != '-') || digits(s + 1, 2, &h) != 0)
		return -1;
	if (n == 6 && s[3] == ':' && digits(s + 4, 2, &m) == 0)
		;
	else if (n == 5 && digits(s + 3, 2, &m) == 0)
		;
	else if (n != 3)
		return -1;
	if (h > 14 || m > 59)
		return -1;
	*secs = (h * 3600 + m * 60) * (s[0] == '-' ? -1 : 1);
	return 0;
}

/*
 * CT_DATE_DAY: a "YYYY-MM-DD..." string is its date; unix seconds (a number or a string of
 * digits) are a moment of the day in the account's zone, utc_offset (NULL or unreadable:
 * the day is unknown, *out = NULL).
 */
static int
date_day(const struct json *j, int t, const char *utc_offset, struct arena *a, char **out)
{
	enum json_kind k = json_kind(j, t);
	size_t n;
	const char *raw;
	char tmp[48];
	int64_t v;
	int off, y, m, d;
	struct tm tm;
	time_t tt;

	*out = NULL;
	if (k == JK_ABSENT || k == JK_NULL)
		return 0;
	raw = json_raw(j, t, &n);
	if (k == JK_STRING && n == 0)
		return 0;
	if (k == JK_STRING && n >= 10 && raw[4] == '-') {
		if (digits(raw, 4, &y) || digits(raw + 5, 2, &m) || raw[7] != '-' ||
		    digits(raw + 8, 2, &d) || m < 1 || m > 12 || d < 1 || d > 31)
			return CS_EINVAL;
		return (*out = arena_strndup(a, raw, 10)) != NULL ? 0 : CS_ENOMEM;
	}
	if (json_int64(j, t, &v) != 0)
		return CS_EINVAL;
	if (parse_offset(utc_offset, &off) != 0)
		return 0;
	tt = (time_t)(v + off);
	if (gmtime_r(&tt, &tm) == NULL)
		return CS_ERANGE;
	snprintf(tmp, sizeof(tmp), "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
	return (*out = arena_strndup(a, tmp, strlen(tmp))) != NULL ? 0 : CS_ENOMEM;
}

/* Keep a numeric literal: optional sign, digits, one decimal point, optional exponent. */
static int
clean_numeric(const char *s, size_t n, char *dst, size_t cap, int money)
{
	size_t o = 0;
	int seen_digit = 0, seen_point = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= '0' && c <= '9') {
			seen_digit = 1;
		} else if ((c == '-' || c == '+') && !seen_digit && o == 0) {
			/* sign */
		} else if (c == '.' || (money && c == ',')) {
			if (seen_point)
				return CS_EINVAL;
			seen_point = 1;
			c = '.';
		} else if (!money && (c == 'e' || c == 'E') && seen_digit) {
			/* exponent: copy the rest verbatim, validated by PostgreSQL's strictness below */
		} else if (money && (c == ' ' || c == 0xC2 || c == 0xA0 || c == '\'')) {
			continue;	/* group separators: space, NBSP (C2 A0), apostrophe */
		} else if (money && seen_digit) {
			break;		/* currency suffix: "руб.", "$", "тг." */
		} else if (money && !seen_digit) {
			continue;	/* currency prefix: "$ 12" */
		} else {
			return CS_EINVAL;
		}
		if (o + 1 >= cap)
			return CS_ETOOBIG;
		dst[o++] = (char)c;
	}
	if (!seen_digit)
		return CS_EINVAL;
	/* "12." from "12,руб" is fine for PostgreSQL numeric. */
	dst[o] = '\0';
	return 0;
}

static char *
array_literal(const struct json *j, int t, struct arena *a, int ints)
{
	struct buf {
		char *p;
		size_t n, cap;
	} b = { NULL, 0, 0 };
	char tmp[4096];
	int e = json_first(j, t);
	size_t cap = 3;

	/* Size: every element's raw length doubled (escapes) + quotes + commas. */
	for (int i = 0, x = e; i < json_size(j, t); i++, x = json_skip(j, x)) {
		size_t len;
		json_raw(j, x, &len);
		cap += 2 * len + 4;
	}
	if ((b.p = arena_alloc(a, cap)) == NULL)
		return NULL;
	b.cap = cap;
	b.p[b.n++] = '{';
	for (int i = 0, x = e; i < json_size(j, t); i++, x = json_skip(j, x)) {
		size_t len;
		if (i > 0)
			b.p[b.n++] = ',';
		if (json_kind(j, x) == JK_NULL) {
			memcpy(b.p + b.n, "NULL", 4);
			b.n += 4;
			continue;
		}
		if (ints) {
			int64_t v;
			if (json_int64(j, x, &v) != 0)
				return NULL;
			b.n += (size_t)snprintf(b.p + b.n, b.cap - b.n, "%lld", (long long)v);
			continue;
		}
		if (json_str(j, x, tmp, sizeof(tmp), &len) != 0)
			return NULL;
		b.p[b.n++] = '"';
		for (size_t k = 0; k < len && b.n + 3 < b.cap; k++) {
			if (tmp[k] == '"' || tmp[k] == '\\')
				b.p[b.n++] = '\\';
			b.p[b.n++] = tmp[k];
		}
		b.p[b.n++] = '"';
	}
	b.p[b.n++] = '}';
	b.p[b.n] = '\0';
	return b.p;
}

int
normalise_value(enum cat_type type, const struct json *j, int t, struct arena *a,
    char **out, int64_t *version_us)
{
	enum json_kind k = json_kind(j, t);
	char tmp[128];
	size_t n;
	const char *raw;
	int64_t v;
	int rv;

	*out = NULL;
	if (version_us != NULL)
		*version_us = 0;
	if (k == JK_ABSENT || k == JK_NULL)
		return 0;
	raw = json_raw(j, t, &n);
	switch (type) {
	case CT_INT8:
		if (k == JK_STRING && n == 0)
			return 0;
		if ((rv = json_int64(j, t, &v)) != 0)
			return rv;
		snprintf(tmp, sizeof(tmp), "%lld", (long long)v);
		if (version_us != NULL)
			*version_us = v;
		break;
	case CT_NUMERIC:
	case CT_MONEY_TEXT:
		if (k == JK_STRING && n == 0)
			return 0;
		if (k != JK_NUMBER && k != JK_STRING)
			return CS_EINVAL;
		if (k == JK_STRING && memchr(raw, '\\', n) != NULL) {
			/* "33\u00a0000,00 руб." from a serializer that escapes non-ASCII. */
			char un[256];
			long w = json_unescape(raw, n, un, sizeof(un));
			if (w < 0)
				return CS_EINVAL;
			if ((rv = clean_numeric(un, (size_t)w, tmp, sizeof(tmp), 1)) != 0)
				return rv;
			break;
		}
		if ((rv = clean_numeric(raw, n, tmp, sizeof(tmp), type == CT_MONEY_TEXT || k == JK_STRING)) != 0)
			return rv;
		break;
	case CT_BOOL: {
		int b;
		if (json_bool(j, t, &b) != 0) {
			if (json_streq(j, t, "true") || json_streq(j, t, "Y"))
				b = 1;
			else if (json_streq(j, t, "false") || json_streq(j, t, "N") || json_streq(j, t, ""))
				b = 0;
			else
				return CS_EINVAL;
		}
		strcpy(tmp, b ? "t" : "f");
		break;
	}
	case CT_TS_UNIX:
		if (k == JK_STRING && n == 0)
			return 0;
		if ((rv = json_int64(j, t, &v)) != 0)
			return rv;
		if (version_us != NULL)
			*version_us = v * 1000000;
		return (*out = fmt_ts(a, v)) != NULL ? 0 : CS_ENOMEM;
	case CT_TS_LOCAL:
		if (k != JK_STRING)
			return CS_EINVAL;
		if (n == 0)
			return 0;
		if ((rv = parse_local_ts(raw, n, &v)) != 0)
			return rv;
		if (version_us != NULL)
			*version_us = v * 1000000;
		return (*out = fmt_ts(a, v)) != NULL ? 0 : CS_ENOMEM;
	case CT_DATE: {
		int y, m, d;
		if (k == JK_STRING && n == 0)
			return 0;
		if (k != JK_STRING || n < 10 || digits(raw, 4, &y) || raw[4] != '-' ||
		    digits(raw + 5, 2, &m) || raw[7] != '-' || digits(raw + 8, 2, &d) ||
		    m < 1 || m > 12 || d < 1 || d > 31)
			return CS_EINVAL;
		memcpy(tmp, raw, 10);
		tmp[10] = '\0';
		break;
	}
	case CT_TIME: {
		int h, m, s = 0;
		if (k == JK_STRING && n == 0)
			return 0;
		if (k != JK_STRING || (n != 5 && n != 8) || digits(raw, 2, &h) || raw[2] != ':' ||
		    digits(raw + 3, 2, &m) || (n == 8 && (raw[5] != ':' || digits(raw + 6, 2, &s))) ||
		    h > 24 || m > 59 || s > 60)
			return CS_EINVAL;
		memcpy(tmp, raw, n);
		tmp[n] = '\0';
		break;
	}
	case CT_TEXT: {
		char *dst;
		long w;
		if (k == JK_OBJECT || k == JK_ARRAY) {
			raw = json_text(j, t, &n);
			return (*out = arena_strndup(a, raw, n)) != NULL ? 0 : CS_ENOMEM;
		}
		if (k != JK_STRING)
			return (*out = arena_strndup(a, raw, n)) != NULL ? 0 : CS_ENOMEM;
		if (n + 1 > NORM_STR_MAX)
			return CS_ETOOBIG;
		if ((dst = arena_alloc(a, n + 1)) == NULL)
			return CS_ENOMEM;
		if ((w = json_unescape(raw, n, dst, n + 1)) < 0)
			return CS_EJSON;
		*out = dst;
		return 0;
	}
	case CT_JSONB:
		raw = json_text(j, t, &n);
		return (*out = arena_strndup(a, raw, n)) != NULL ? 0 : CS_ENOMEM;
	case CT_DATE_DAY:
		return date_day(j, t, NULL, a, out);	/* no context here: epochs are NULL */
	case CT_INT8_ARRAY:
	case CT_TEXT_ARRAY:
		if (k != JK_ARRAY)
			return CS_EINVAL;
		return (*out = array_literal(j, t, a, type == CT_INT8_ARRAY)) != NULL ? 0 : CS_EINVAL;
	default:
		return CS_EINVAL;
	}
	return (*out = arena_strndup(a, tmp, strlen(tmp))) != NULL ? 0 : CS_ENOMEM;
}

/* A context value by name, or NULL. */
static const char *
ctx_get(const struct norm_ctx *ctx, const char *name, size_t n)
{
	for (int i = 0; ctx != NULL && i < ctx->n; i++)
		if (strlen(ctx->name[i]) == n && memcmp(ctx->name[i], name, n) == 0)
			return ctx->value[i];
	for (int i = 0; i < ndefaults; i++)
		if (strlen(defaults[i].name) == n && memcmp(defaults[i].name, name, n) == 0)
			return defaults[i].value;
	return NULL;
}

/*
 * "arr[Key=want].rest": the first element of array arr whose string member Key equals want
 * ("$name" = a context value), then rest inside it ("" = the element). -1 when the array,
 * the element or the context value is missing, or the path is malformed.
 */
static int
resolve_select(const struct json *j, int row, const char *path, const struct norm_ctx *ctx)
{
	const char *lb = strchr(path, '['), *eq, *rb;
	char arr[128], key[64], want[512], got[512];
	size_t n;

	if (lb == NULL || (eq = strchr(lb, '=')) == NULL || (rb = strchr(eq, ']')) == NULL ||
	    (size_t)(lb - path) >= sizeof(arr) || (size_t)(eq - lb - 1) >= sizeof(key) ||
	    (rb[1] != '\0' && rb[1] != '.'))
		return -1;
	memcpy(arr, path, (size_t)(lb - path));
	arr[lb - path] = '\0';
	memcpy(key, lb + 1, (size_t)(eq - lb - 1));
	key[eq - lb - 1] = '\0';
	if (eq[1] == '$') {
		const char *v = ctx_get(ctx, eq + 2, (size_t)(rb - eq - 2));
		if (v == NULL || *v == '\0' || strlen(v) >= sizeof(want))
			return -1;
		snprintf(want, sizeof(want), "%s", v);
	} else {
		if ((size_t)(rb - eq - 1) >= sizeof(want))
			return -1;
		memcpy(want, eq + 1, (size_t)(rb - eq - 1));
		want[rb - eq - 1] = '\0';
	}
	int a = arr[0] ? json_path(j, row, arr) : row;
	if (json_kind(j, a) != JK_ARRAY)
		return -1;
	for (int i = 0, el = json_first(j, a); i < json_size(j, a); i++, el = json_skip(j, el)) {
		int k = json_get(j, el, key);
		if (json_kind(j, k) != JK_STRING || json_str(j, k, got, sizeof(got), &n) != 0 ||
		    strcmp(got, want) != 0)
			continue;
		return rb[1] == '.' ? json_path(j, el, rb + 2) : el;
	}
	return -1;
}

/* Resolve a column's source path: "$ctx", "^outer.path", "a[K=v].b", "" (the row) or a path. */
static int
resolve(const char *path, const struct json *j, int row, int outer,
    const struct norm_ctx *ctx, const char **ctxval)
{
	*ctxval = NULL;
	if (path[0] == '$') {
		*ctxval = ctx_get(ctx, path + 1, strlen(path + 1));
		return -1;
	}
	if (path[0] == '^')
		return json_path(j, outer, path + 1);
	if (strchr(path, '[') != NULL)
		return resolve_select(j, row, path, ctx);
	if (strchr(path, '|') != NULL) {
		/* "a|b": the first alternative present ("" = the row itself), for shapes the
		 * API notes are unsure about, e.g. "Name|" = an object's Name or a bare string. */
		for (const char *p = path;;) {
			char alt[128];
			size_t n = strcspn(p, "|");
			int t;
			if (n >= sizeof(alt))
				return -1;
			memcpy(alt, p, n);
			alt[n] = '\0';
			t = n == 0 ? row : json_path(j, row, alt);
			if (json_kind(j, t) != JK_ABSENT)
				return t;
			if (p[n] == '\0')
				return -1;
			p += n + 1;
		}
	}
	if (path[0] == '\0')
		return row;
	return json_path(j, row, path);
}

/*
 * "path~marker" (CT_INT8): the integer that directly follows marker in the string at t, e.g.
 * the lead id of "https://x.amocrm.ru/leads/detail/24384061". A string without the marker
 * or without digits after it is NULL, not an error: link fields often hold a placeholder
 * such as "https://" (raw keeps it). A non-string value is unreadable.
 */
static int
extract_after(const struct json *j, int t, const char *marker, struct arena *a, char **out)
{
	char s[4096];
	const char *p;
	size_t n, d = 0, mlen = strlen(marker);

	*out = NULL;
	switch (json_kind(j, t)) {
	case JK_ABSENT:
	case JK_NULL:
		return 0;
	case JK_STRING:
		break;
	default:
		return CS_EINVAL;
	}
	if (json_str(j, t, s, sizeof(s), &n) != 0)
		return CS_ETOOBIG;
	if (mlen == 0 || (p = memmem(s, n, marker, mlen)) == NULL)
		return 0;
	p += mlen;
	while (p + d < s + n && p[d] >= '0' && p[d] <= '9')
		d++;
	if (d == 0)
		return 0;
	if (d > 18)
		return CS_ERANGE;
	return (*out = arena_strndup(a, p, d)) != NULL ? 0 : CS_ENOMEM;
}

/*
 * "path?test=v1,v2": 1 when the string at test (resolved as a column path) is one of the
 * listed values, else 0 (q points at the '?').
 */
static int
cond_holds(const char *q, const struct json *j, int row, int outer,
    const struct norm_ctx *ctx)
{
	const char *eq = strchr(q + 1, '='), *cv;
	char test[128], got[128];
	size_t n;
	int t;

	if (eq == NULL || (size_t)(eq - q - 1) >= sizeof(test))
		return 0;
	memcpy(test, q + 1, (size_t)(eq - q - 1));
	test[eq - q - 1] = '\0';
	t = resolve(test, j, row, outer, ctx, &cv);
	if (cv != NULL)
		snprintf(got, sizeof(got), "%s", cv);
	else if (json_kind(j, t) != JK_STRING || json_str(j, t, got, sizeof(got), &n) != 0)
		return 0;
	for (const char *v = eq + 1; *v != '\0';) {
		size_t vn = strcspn(v, ",");
		if (vn == strlen(got) && memcmp(v, got, vn) == 0)
			return 1;
		v += vn + (v[vn] == ',');
	}
	return 0;
}

/* Fill values/null_mask for ncols columns of an element. Returns bad count or -1 (key). */
static int
fill_values(const struct cat_col *cols, size_t ncols, const struct json *j, int row, int outer,
    const struct norm_ctx *ctx, struct arena *a, char ***values, ProtobufCBinaryData *mask,
    int64_t *version_us, char *err, size_t errlen)
{
	int bad = 0;

	*values = arena_alloc(a, (ncols ? ncols : 1) * sizeof(char *));
	mask->len = (ncols + 7) / 8;
	mask->data = arena_alloc(a, mask->len ? mask->len : 1);
	if (*values == NULL || mask->data == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < ncols; i++) {
		const struct cat_col *c = &cols[i];
		const char *cv, *path = c->json, *marker = strchr(c->json, '~');
		const char *cond = strchr(c->json, '?');
		char pbuf[256];
		char *out = NULL;
		int64_t ver = 0;
		int rv = 0, t;

		if (cond != NULL && (marker == NULL || marker > cond))
			marker = NULL;	/* a '~' inside the condition's values is no marker */
		if (marker != NULL || cond != NULL) {
			size_t pn = (size_t)((marker != NULL ? marker : cond) - c->json);
			if (pn >= sizeof(pbuf)) {
				snprintf(err, errlen, "column %s: path too long", c->column);
				return -1;
			}
			memcpy(pbuf, c->json, pn);
			pbuf[pn] = '\0';
			path = pbuf;
			if (marker != NULL)
				marker++;
		}
		cv = NULL;
		if (cond == NULL || cond_holds(cond, j, row, outer, ctx))
			t = resolve(path, j, row, outer, ctx, &cv);
		else
			t = -1;	/* another kind of value: NULL, not converted */
		if (cv != NULL)
			out = arena_strndup(a, cv, strlen(cv));
		else if (marker != NULL)
			rv = extract_after(j, t, marker, a, &out);
		else if (c->type == CT_DATE_DAY)
			rv = date_day(j, t, ctx_get(ctx, NORM_CTX_UTC_OFFSET, strlen(NORM_CTX_UTC_OFFSET)),
			    a, &out);
		else
			rv = normalise_value(c->type, j, t, a, &out, &ver);
		if (rv != 0) {
			if (c->flags & (CF_KEY | CF_REQUIRED)) {
				snprintf(err, errlen, "column %s (%s): %s", c->column, c->json, cs_strerror(rv));
				return -1;
			}
			bad++;
			out = NULL;
		}
		if (out == NULL && (c->flags & (CF_KEY | CF_REQUIRED))) {
			snprintf(err, errlen, "column %s (%s) is missing", c->column, c->json);
			return -1;
		}
		if ((c->flags & CF_VERSION) && version_us != NULL && out != NULL)
			*version_us = ver;
		if (out == NULL) {
			mask->data[i / 8] |= (uint8_t)(1u << (i % 8));
			out = (char *)"";
		}
		(*values)[i] = out;
	}
	return bad;
}

/* Count the elements a child spec yields (to size the array before filling). */
static int
child_elements(const struct cat_child *ch, const struct json *j, int row,
    int *outer_arr, const char **inner_path, char *outer_path, size_t cap)
{
	const char *br = strstr(ch->json, "[].");

	if (br == NULL) {
		*outer_arr = ch->json[0] ? json_path(j, row, ch->json) : row;
		*inner_path = NULL;
		return json_kind(j, *outer_arr) == JK_ARRAY ? json_size(j, *outer_arr) : 0;
	}
	size_t n = (size_t)(br - ch->json);
	if (n + 1 > cap)
		return 0;
	memcpy(outer_path, ch->json, n);
	outer_path[n] = '\0';
	*outer_arr = json_path(j, row, outer_path);
	*inner_path = br + 3;
	int total = 0;
	if (json_kind(j, *outer_arr) != JK_ARRAY)
		return 0;
	for (int i = 0, o = json_first(j, *outer_arr); i < json_size(j, *outer_arr); i++, o = json_skip(j, o)) {
		int in = json_path(j, o, *inner_path);
		if (json_kind(j, in) == JK_ARRAY)
			total += json_size(j, in);
	}
	return total;
}

/* A key written twice in the row: typed columns would read its first value, jsonb (raw) its
 * last. 0 when none, else CS_EINVAL (or CS_ENOMEM) with the reason in err. */
static int
dup_key_check(const struct json *j, int t, char *err, size_t errlen)
{
	int dup;

	if (json_dup_key(j, t, &dup) != 0) {
		snprintf(err, errlen, "out of memory");
		return CS_ENOMEM;
	}
	if (dup < 0)
		return 0;
	size_t kl;
	const char *k = json_raw(j, dup, &kl);
	snprintf(err, errlen, "duplicate key \"%.*s\" in the row (the columns would read one "
	    "value, raw another)", (int)(kl > 64 ? 64 : kl), k);
	return CS_EINVAL;
}

/* rec->children sized for every child element of row t of e (none: left NULL). */
static int
children_alloc(const struct cat_entity *e, const struct json *j, int t, struct arena *a,
    Crmsync__Record *rec, char *err, size_t errlen)
{
	size_t total = 0;

	for (size_t c = 0; c < e->nchildren; c++) {
		int oa;
		const char *ip;
		char op[128];
		total += (size_t)child_elements(&e->children[c], j, t, &oa, &ip, op, sizeof(op));
	}
	if (total == 0)
		return 0;
	if ((rec->children = arena_alloc(a, total * sizeof(*rec->children))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return CS_ENOMEM;
	}
	return 0;
}

/* The rows of child table c of row t (element el, in outer element o) appended to rec;
 * adds the unreadable values to *bad. */
static int
child_row(const struct cat_child *ch, size_t c, const struct json *j, int el, int o,
    const struct norm_ctx *ctx, struct arena *a, Crmsync__Record *rec, int *bad, char *err,
    size_t errlen)
{
	Crmsync__ChildRow *cr = arena_alloc(a, sizeof(*cr));
	int b;

	if (cr == NULL) {
		snprintf(err, errlen, "out of memory");
		return CS_ENOMEM;
	}
	crmsync__child_row__init(cr);
	cr->child = (uint32_t)c;
	b = fill_values(ch->cols, ch->ncols, j, el, o, ctx, a, &cr->values, &cr->null_mask, NULL,
	    err, errlen);
	if (b < 0)
		return CS_EINVAL;
	*bad += b;
	cr->n_values = ch->ncols;
	rec->children[rec->n_children++] = cr;
	return 0;
}

/* Every child table's rows of row t. */
static int
children_fill(const struct cat_entity *e, const struct json *j, int t, const struct norm_ctx *ctx,
    struct arena *a, Crmsync__Record *rec, int *bad, char *err, size_t errlen)
{
	int rv;

	for (size_t c = 0; c < e->nchildren; c++) {
		const struct cat_child *ch = &e->children[c];
		int oa;
		const char *ip;
		char op[128];

		if (child_elements(ch, j, t, &oa, &ip, op, sizeof(op)) == 0)
			continue;
		for (int i = 0, o = json_first(j, oa); i < json_size(j, oa); i++, o = json_skip(j, o)) {
			int arr = ip != NULL ? json_path(j, o, ip) : -1;
			int nel = ip != NULL ? json_size(j, arr) : 1;
			for (int k = 0, el = ip != NULL ? json_first(j, arr) : o; k < nel;
			    k++, el = json_skip(j, el))
				if ((rv = child_row(ch, c, j, el, o, ctx, a, rec, bad, err, errlen)) != 0)
					return rv;
		}
	}
	return 0;
}

int
normalise_row(const struct cat_entity *e, const struct json *j, int t,
    const struct norm_ctx *ctx, struct arena *a, Crmsync__Record *rec,
    int *bad_values, char *err, size_t errlen)
{
	int64_t version = 0;
	size_t rawlen;
	int bad, rv;

	crmsync__record__init(rec);
	/* One reading of a row: a row with a key written twice is not stored at all (the caller
	 * dead-letters it, and its entity deletes nothing in that run). */
	if ((rv = dup_key_check(j, t, err, errlen)) != 0)
		return rv;
	bad = fill_values(e->cols, e->ncols, j, t, -1, ctx, a, &rec->values, &rec->null_mask,
	    &version, err, errlen);
	if (bad < 0)
		return CS_EINVAL;
	rec->n_values = e->ncols;
	rec->source_updated_at_us = version;
	rec->raw_json.data = (uint8_t *)json_text(j, t, &rawlen);	/* into the page: no copy */
	rec->raw_json.len = rawlen;
	if ((rv = children_alloc(e, j, t, a, rec, err, errlen)) != 0 ||
	    (rv = children_fill(e, j, t, ctx, a, rec, &bad, err, errlen)) != 0)
		return rv;
	if (bad_values != NULL)
		*bad_values += bad;
	return 0;
}
