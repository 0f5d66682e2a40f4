/*
 * params.c - expand the catalogue's parameter templates into a form body.
 *
 * Methods that need parameters say so as data in the catalogue ("balanceDate={$today}",
 * "targets={Employees|Students|Companies}", "clientId={$parent}"); this file is the only
 * place that reads those templates, so no method has code of its own. Run variables come
 * from the config (date range) and the clock (today, in the configured time zone).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errors.h"
#include "hh.h"

int
params_alternatives(const char *tmpl, char alts[][64], int max)
{
	const char *p, *end;
	int n = 0;

	if (tmpl == NULL)
		return 0;
	for (p = strchr(tmpl, '{'); p != NULL; p = strchr(p + 1, '{')) {
		if (p[1] == '$')
			continue;
		if ((end = strchr(p, '}')) == NULL)
			return 0;
		for (const char *a = p + 1; a < end && n < max;) {
			size_t len = strcspn(a, "|}");
			if (len >= 64)
				len = 63;
			memcpy(alts[n], a, len);
			alts[n++][len] = '\0';
			a += strcspn(a, "|}");
			if (*a == '|')
				a++;
		}
		return n;	/* one alternatives group per template */
	}
	return 0;
}

static const char *
var_value(const struct hh_vars *v, const char *name, size_t n)
{
	if (n == 5 && memcmp(name, "today", 5) == 0)
		return v->today;
	if (n == 9 && memcmp(name, "date_from", 9) == 0)
		return v->date_from;
	if (n == 7 && memcmp(name, "date_to", 7) == 0)
		return v->date_to;
	if (n == 6 && memcmp(name, "parent", 6) == 0)
		return v->parent != NULL ? v->parent : "";
	return NULL;
}

int
params_expand(const char *tmpl, const char *alt, const struct hh_vars *v, struct buf *form,
    struct norm_ctx *ctx, char *store, size_t cap, char *err, size_t errlen)
{
	const char *p = tmpl;
	size_t used = 0;
	int rv = 0;

	while (p != NULL && *p != '\0') {
		size_t plen = strcspn(p, "&");
		const char *eq = memchr(p, '=', plen);
		char key[64], val[256];
		size_t klen, vlen;

		if (eq == NULL || (klen = (size_t)(eq - p)) == 0 || klen >= sizeof(key)) {
			snprintf(err, errlen, "bad parameter template %s", tmpl);
			return CS_EINVAL;
		}
		memcpy(key, p, klen);
		key[klen] = '\0';
		vlen = plen - klen - 1;
		if (vlen >= 2 && eq[1] == '{' && eq[vlen] == '}') {
			const char *x = NULL;
			if (eq[2] == '$')
				x = var_value(v, eq + 3, vlen - 3);
			else
				x = alt;
			if (x == NULL) {
				snprintf(err, errlen, "parameter %s: unknown variable %.*s", key,
				    (int)vlen, eq + 1);
				return CS_EINVAL;
			}
			snprintf(val, sizeof(val), "%s", x);
		} else {
			if (vlen >= sizeof(val)) {
				snprintf(err, errlen, "parameter %s: value too long", key);
				return CS_EINVAL;
			}
			memcpy(val, eq + 1, vlen);
			val[vlen] = '\0';
		}
		rv |= buf_addc(form, '&');
		rv |= http_urlencode(form, key);
		rv |= buf_addc(form, '=');
		rv |= http_urlencode(form, val);
		if (ctx != NULL) {
			size_t kn = strlen(key) + 1, vn = strlen(val) + 1;
			if (used + kn + vn > cap) {
				snprintf(err, errlen, "parameters too long");
				return CS_ETOOBIG;
			}
			memcpy(store + used, key, kn);
			memcpy(store + used + kn, val, vn);
			norm_ctx_set(ctx, store + used, store + used + kn);
			used += kn + vn;
		}
		p += plen;
		if (*p == '&')
			p++;
	}
	if (rv != 0) {
		snprintf(err, errlen, "form too long");
		return CS_ETOOBIG;
	}
	return 0;
}

void
params_context(struct norm_ctx *ctx, const struct hh_conf *c)
{
	/* The catalogue names the column (students.amo_lead_id), the config the field. */
	norm_ctx_set(ctx, "amo_lead_field", c->amo_lead_field != NULL ? c->amo_lead_field : "");
}

int
params_date(const char *spec, time_t now, char out[16])
{
	struct tm tm;
	char *end;

	if (spec == NULL || *spec == '\0')
		return CS_EINVAL;
	if (strlen(spec) == 10 && spec[4] == '-' && spec[7] == '-') {
		for (int i = 0; i < 10; i++)
			if (i != 4 && i != 7 && (spec[i] < '0' || spec[i] > '9'))
				return CS_EINVAL;
		int m = (spec[5] - '0') * 10 + (spec[6] - '0'), d = (spec[8] - '0') * 10 + (spec[9] - '0');
		if (m < 1 || m > 12 || d < 1 || d > 31)
			return CS_EINVAL;
		memcpy(out, spec, 10);
		out[10] = '\0';
		return 0;
	}
	long days = strtol(spec, &end, 10);
	if (end == spec || (*end != 'd' && *end != '\0') || (*end == 'd' && end[1] != '\0') ||
	    days < -36500 || days > 36500)
		return CS_EINVAL;
	/* Calendar arithmetic at local noon: immune to DST shifts. */
	if (localtime_r(&now, &tm) == NULL)
		return CS_EINVAL;
	tm.tm_mday += (int)days;
	tm.tm_hour = 12;
	tm.tm_min = tm.tm_sec = 0;
	tm.tm_isdst = -1;
	if (mktime(&tm) == (time_t)-1)
		return CS_EINVAL;
	if (tm.tm_year + 1900 < 1 || tm.tm_year + 1900 > 9999)
		return CS_ERANGE;
	char tmp[64];
	snprintf(tmp, sizeof(tmp), "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
	memcpy(out, tmp, 11);
	return 0;
}

int
params_vars(struct hh_vars *v, const struct hh_conf *c, time_t now)
{
	memset(v, 0, sizeof(*v));
	if (params_date("0d", now, v->today) != 0 || params_date(c->date_from, now, v->date_from) != 0 ||
	    params_date(c->date_to, now, v->date_to) != 0)
		return CS_EINVAL;
	return 0;
}
