/*
 * json.h - a small read-only JSON view over jsmn (Debian's libjsmn-dev).
 *
 * json_parse() tokenises a buffer in place (strict mode, bounded token count) without
 * copying it; tokens carry byte offsets, so a row's raw JSON is a slice of the input,
 * byte for byte. Lookups walk tokens: json_get() for an object key (its first occurrence;
 * keys with escapes are decoded), json_path() for "a.b.0.c". Token index -1 means
 * "absent"; every accessor accepts -1.
 * The buffer must outlive the struct json.
 */
#ifndef CS_JSON_H
#define CS_JSON_H

#include <stddef.h>
#include <stdint.h>

#define JSMN_HEADER
#define JSMN_STRICT
#define JSMN_PARENT_LINKS	/* must match json.c: it changes jsmntok_t */
#include <jsmn.h>

enum json_kind { JK_ABSENT, JK_NULL, JK_BOOL, JK_NUMBER, JK_STRING, JK_ARRAY, JK_OBJECT };

struct json {
	const char	*src;
	size_t		 len;
	jsmntok_t	*tok;
	int		 ntok;
	int		 cap;
};

#define JSON_MAX_DEPTH	64	/* levels of [ and { */

/*
 * Parse src[0..len). max_tokens bounds memory (CS_ETOOBIG past it); CS_EJSON if malformed
 * or nested deeper than JSON_MAX_DEPTH. Costs time linear in len, whatever the input.
 */
int	json_parse(struct json *j, const char *src, size_t len, int max_tokens);
/*
 * The offset of the first bracket that opens more than max_depth levels, as jsmn's strict
 * tokenizer would see it (brackets inside strings do not count), or len when there is none
 * or the input turns malformed before it. One linear pass; json_parse runs it first.
 */
size_t	json_depth_check(const char *src, size_t len, int max_depth);
void	json_free(struct json *j);

enum json_kind json_kind(const struct json *j, int t);
/* Index of the token after t and its whole subtree. */
int	json_skip(const struct json *j, int t);
/* Number of elements (array) or members (object). */
int	json_size(const struct json *j, int t);
/* First element of an array/object value (-1 if empty); next one with json_skip(). */
int	json_first(const struct json *j, int t);
int	json_get(const struct json *j, int obj, const char *key);
int	json_getn(const struct json *j, int obj, const char *key, size_t keylen);
int	json_path(const struct json *j, int t, const char *path);
/*
 * Duplicate keys anywhere in t's subtree: *dup = the token of the first key found that
 * repeats an earlier key of the same object (compared decoded, as PostgreSQL's jsonb
 * compares them; jsonb keeps the last, json_get finds the first), or -1 when there is
 * none. O(tokens), objects of many members hashed and sorted. Returns 0 or CS_ENOMEM.
 */
int	json_dup_key(const struct json *j, int t, int *dup);

/* Raw bytes of a token (strings: without the quotes). */
const char *json_raw(const struct json *j, int t, size_t *len);
/* Raw JSON text of a value including quotes, as in the source. */
const char *json_text(const struct json *j, int t, size_t *len);

/* Unescaped string (or a scalar's text) into dst (NUL-terminated). CS_ETOOBIG if it won't fit. */
int	json_str(const struct json *j, int t, char *dst, size_t cap, size_t *outlen);
int	json_int64(const struct json *j, int t, int64_t *out);
int	json_bool(const struct json *j, int t, int *out);
int	json_streq(const struct json *j, int t, const char *s);

/* Decode a JSON string body (without quotes) into dst; returns bytes written or -1. */
long	json_unescape(const char *s, size_t n, char *dst, size_t cap);

#endif
