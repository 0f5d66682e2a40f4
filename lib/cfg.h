/*
 * cfg.h - configuration from environment variables, described by a table.
 *
 * Each service declares `static const struct cfg_key keys[]` (name, type, offset into its
 * config struct, default, limits, help). cfg_load() reads and validates every key, so a
 * bad value stops start-up with one clear message; cfg_usage() prints the table for
 * --help; cfg_print() shows the effective values with secrets as ***.
 * Storage by type: STR/SECRET -> char * (owned, freed by cfg_free), INT/DURATION/BYTES ->
 * int64_t (DURATION in milliseconds, BYTES in bytes), BOOL -> int.
 */
#ifndef CS_CFG_H
#define CS_CFG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum cfg_type {
	CFG_STR,
	CFG_SECRET,	/* a string never printed: redacted in logs and in cfg_print */
	CFG_INT,
	CFG_DURATION,	/* "250ms", "5s", "2m", "1h", "1d"; a bare number is seconds */
	CFG_BYTES,	/* "512", "64KiB", "16MiB", "2GiB" */
	CFG_BOOL,	/* true/false/yes/no/on/off/1/0 */
};

struct cfg_key {
	const char	*name;	/* environment variable */
	enum cfg_type	 type;
	size_t		 off;	/* offsetof() in the config struct */
	const char	*def;	/* default as text; NULL = required */
	int64_t		 min, max;	/* numeric limits (ignored when both 0) */
	const char	*help;
};

#define CFG_NKEYS(a) (sizeof(a) / sizeof((a)[0]))

/*
 * One row of a key table, for the config struct named by CFG_STRUCT:
 *   #define CFG_STRUCT struct amo_conf
 *   static const struct cfg_key keys[] = {
 *	CFG_KEY("CS_AMO_RPS", CFG_INT, rps, "7", 1, 1000, "requests per second"), ...
 */
#define CFG_KEY(name, type, field, def, min, max, help) \
	{ name, type, offsetof(CFG_STRUCT, field), def, min, max, help }

/* Returns 0, or CS_ECONFIG with a message in err ("CS_X: \"abc\" is not a duration such as ..."). */
int	cfg_load(const struct cfg_key *keys, size_t n, void *conf, char *err, size_t errlen);
void	cfg_free(const struct cfg_key *keys, size_t n, void *conf);
void	cfg_usage(FILE *f, const struct cfg_key *keys, size_t n);
void	cfg_print(FILE *f, const struct cfg_key *keys, size_t n, const void *conf);

/* The parsers behind cfg_load, usable on their own. Return 0 or CS_EINVAL/CS_ERANGE. */
int	cfg_parse_int(const char *s, int64_t *out);
int	cfg_parse_duration(const char *s, int64_t *ms);
int	cfg_parse_bytes(const char *s, int64_t *bytes);
int	cfg_parse_bool(const char *s, int *out);

#endif
