/*
 * cfg.c - the table-driven environment configuration (see cfg.h).
 * Every numeric value goes through strtoll with an end-pointer and range check:
 * "abc", "12x" and out-of-range values are errors, never a silent 0.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cfg.h"
#include "errors.h"
#include "log.h"

int
cfg_parse_int(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0')
		return CS_EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno == ERANGE)
		return CS_ERANGE;
	if (end == s || *end != '\0')
		return CS_EINVAL;
	*out = v;
	return 0;
}

/* Parse "<number><unit>" where unit is looked up in a small table. */
struct unit { const char *name; int64_t mul; };

static int
parse_with_units(const char *s, const struct unit *units, int64_t bare_mul, int64_t *out)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0')
		return CS_EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno == ERANGE || v < 0)
		return CS_ERANGE;
	if (end == s)
		return CS_EINVAL;
	while (*end == ' ')
		end++;
	if (*end == '\0') {
		if (v > INT64_MAX / bare_mul)
			return CS_ERANGE;
		*out = v * bare_mul;
		return 0;
	}
	for (const struct unit *u = units; u->name != NULL; u++) {
		if (strcasecmp(end, u->name) == 0) {
			if (v > INT64_MAX / u->mul)
				return CS_ERANGE;
			*out = v * u->mul;
			return 0;
		}
	}
	return CS_EINVAL;
}

int
cfg_parse_duration(const char *s, int64_t *ms)
{
	static const struct unit units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "min", 60000 },
		{ "h", 3600000 }, { "d", 86400000 }, { NULL, 0 },
	};
	return parse_with_units(s, units, 1000, ms);
}

int
cfg_parse_bytes(const char *s, int64_t *bytes)
{
	static const struct unit units[] = {
		{ "b", 1 }, { "k", 1024 }, { "kb", 1024 }, { "kib", 1024 },
		{ "m", 1 << 20 }, { "mb", 1 << 20 }, { "mib", 1 << 20 },
		{ "g", 1 << 30 }, { "gb", 1 << 30 }, { "gib", 1 << 30 }, { NULL, 0 },
	};
	return parse_with_units(s, units, 1, bytes);
}

int
cfg_parse_bool(const char *s, int *out)
{
	static const char *const yes[] = { "1", "true", "yes", "on" };
	static const char *const no[] = { "0", "false", "no", "off" };

	if (s == NULL)
		return CS_EINVAL;
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return CS_EINVAL;
}

static const char *
type_name(enum cfg_type t)
{
	switch (t) {
	case CFG_STR:		return "string";
	case CFG_SECRET:	return "secret";
	case CFG_INT:		return "integer";
	case CFG_DURATION:	return "duration";
	case CFG_BYTES:		return "bytes";
	case CFG_BOOL:		return "bool";
	}
	return "?";
}

static int
cfg_set(const struct cfg_key *k, void *conf, const char *val, char *err, size_t errlen)
{
	char *base = conf;
	int64_t v = 0;
	int rv;

	switch (k->type) {
	case CFG_STR:
	case CFG_SECRET: {
		char **dst = (char **)(void *)(base + k->off);
		char *dup = strdup(val);
		if (dup == NULL)
			return CS_ENOMEM;
		free(*dst);
		*dst = dup;
		if (k->type == CFG_SECRET)
			log_secret(dup);
		return 0;
	}
	case CFG_BOOL: {
		int b;
		if (cfg_parse_bool(val, &b) != 0) {
			snprintf(err, errlen, "%s: %s is not on or off (also: true/false, yes/no, 1/0)",
			    k->name, lq(val));
			return CS_ECONFIG;
		}
		*(int *)(void *)(base + k->off) = b;
		return 0;
	}
	case CFG_INT:
		rv = cfg_parse_int(val, &v);
		break;
	case CFG_DURATION:
		rv = cfg_parse_duration(val, &v);
		break;
	case CFG_BYTES:
		rv = cfg_parse_bytes(val, &v);
		break;
	default:
		return CS_EINVAL;
	}
	if (rv != 0) {
		static const char *const example[] = {
			[CFG_INT] = "a whole number",
			[CFG_DURATION] = "a duration such as 250ms, 5s, 2m, 1h or 1d",
			[CFG_BYTES] = "a size such as 512, 64KiB or 16MiB",
		};
		snprintf(err, errlen, "%s: %s is not %s", k->name, lq(val), example[k->type]);
		return CS_ECONFIG;
	}
	if ((k->min != 0 || k->max != 0) && (v < k->min || v > k->max)) {
		snprintf(err, errlen, "%s: %s is outside [%lld, %lld]%s", k->name, lq(val),
		    (long long)k->min, (long long)k->max,
		    k->type == CFG_DURATION ? " ms" : k->type == CFG_BYTES ? " bytes" : "");
		return CS_ECONFIG;
	}
	*(int64_t *)(void *)(base + k->off) = v;
	return 0;
}

int
cfg_load(const struct cfg_key *keys, size_t n, void *conf, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		const char *val = getenv(keys[i].name);
		int rv;

		if (val == NULL)
			val = keys[i].def;
		if (val == NULL) {
			snprintf(err, errlen, "%s is required: %s (--help lists every variable)",
			    keys[i].name, keys[i].help);
			return CS_ECONFIG;
		}
		if ((rv = cfg_set(&keys[i], conf, val, err, errlen)) != 0)
			return rv;
	}
	return 0;
}

void
cfg_free(const struct cfg_key *keys, size_t n, void *conf)
{
	char *base = conf;

	for (size_t i = 0; i < n; i++) {
		if (keys[i].type == CFG_STR || keys[i].type == CFG_SECRET) {
			char **p = (char **)(void *)(base + keys[i].off);
			if (*p != NULL && keys[i].type == CFG_SECRET)
				explicit_bzero(*p, strlen(*p));
			free(*p);
			*p = NULL;
		}
	}
}

void
cfg_usage(FILE *f, const struct cfg_key *keys, size_t n)
{
	fprintf(f, "Environment variables:\n");
	for (size_t i = 0; i < n; i++) {
		const struct cfg_key *k = &keys[i];
		fprintf(f, "  %-28s %-8s default: %s\n", k->name, type_name(k->type),
		    k->def == NULL ? "(required)" : k->type == CFG_SECRET && k->def[0] ? "***" :
		    k->def[0] == '\0' ? "(empty)" : k->def);
		fprintf(f, "  %-28s %s", "", k->help);
		if (k->min != 0 || k->max != 0) {
			if (k->type == CFG_INT)
				fprintf(f, " [%lld..%lld]", (long long)k->min, (long long)k->max);
		}
		fputc('\n', f);
	}
}

void
cfg_print(FILE *f, const struct cfg_key *keys, size_t n, const void *conf)
{
	const char *base = conf;

	for (size_t i = 0; i < n; i++) {
		const struct cfg_key *k = &keys[i];
		const void *p = base + k->off;
		switch (k->type) {
		case CFG_STR:
			fprintf(f, "%s=%s\n", k->name, *(char *const *)p ? *(char *const *)p : "");
			break;
		case CFG_SECRET:
			fprintf(f, "%s=%s\n", k->name, (*(char *const *)p && **(char *const *)p) ? "***" : "");
			break;
		case CFG_BOOL:
			fprintf(f, "%s=%s\n", k->name, *(const int *)p ? "true" : "false");
			break;
		case CFG_DURATION:
			fprintf(f, "%s=%lldms\n", k->name, (long long)*(const int64_t *)p);
			break;
		default:
			fprintf(f, "%s=%lld\n", k->name, (long long)*(const int64_t *)p);
			break;
		}
	}
}
