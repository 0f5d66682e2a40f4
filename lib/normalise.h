/*
 * normalise.h - one JSON row + its catalogue entry -> one Record (typed values in
 * PostgreSQL text form, null mask, child rows, the row's raw JSON, its version).
 *
 * Used by both sync services; the same code can re-derive typed columns from stored raw
 * JSON. All memory comes from the caller's arena, so a page of rows is freed at once.
 * Local times (CT_TS_LOCAL) are read in the process time zone: a service that reads them
 * sets TZ once at start-up (normalise_set_timezone).
 */
#ifndef CS_NORMALISE_H
#define CS_NORMALISE_H

#include <stdint.h>

#include "arena.h"
#include "catalog.h"
#include "crmsync.pb-c.h"
#include "json.h"

#define NORM_CTX_MAX 8

/*
 * Bump when a change to this file changes what an already stored row derives to (a
 * converter fixed, a format read differently). The store records the version each table
 * was derived with and re-derives every table from its raw JSON at start-up when it
 * differs (services/store/evolve.c); a catalogue change needs no bump.
 */
#define NORMALISE_VERSION 1

/* The context value naming the Hollihop student extra field that holds the amoCRM lead
 * link (CS_HOLLIHOP_AMO_LEAD_FIELD): hollihop-sync and the store both supply it. */
#define NORM_CTX_AMO_LEAD_FIELD	"amo_lead_field"

/* The context value CT_DATE_DAY reads: the amoCRM account's UTC offset ("+03:00", from
 * /api/v4/account?with=datetime_settings). amo-sync sets it with normalise_set_default();
 * the store's re-derivation reads it from the stored account row (services/store/evolve.c). */
#define NORM_CTX_UTC_OFFSET	"utc_offset"

/* Context values for "$name" columns (e.g. $entity_type when tags are fetched per type). */
struct norm_ctx {
	int		 n;
	const char	*name[NORM_CTX_MAX];
	const char	*value[NORM_CTX_MAX];
};

void	norm_ctx_set(struct norm_ctx *c, const char *name, const char *value);

/*
 * A context value every normalise_row() of this process sees when its ctx does not name it
 * (amo-sync: the account's utc_offset, known once per process, not per fetch). value is
 * copied (NULL removes it); CS_ETOOBIG when too long or too many. Not thread-safe: set it
 * on the thread that normalises.
 */
int	normalise_set_default(const char *name, const char *value);

/* Set the zone for CT_TS_LOCAL ("Europe/Moscow"); CS_EINVAL if unknown. Not thread-safe. */
int	normalise_set_timezone(const char *tz);

/*
 * Fill rec (initialised here) from row t. Returns 0, or CS_EINVAL with a message in err
 * when the row cannot be stored (a key is missing or unreadable, or any object in the row
 * repeats a key: json_dup_key), CS_ENOMEM. Unreadable non-key
 * values become NULL and are counted in *bad_values (raw keeps them).
 */
int	normalise_row(const struct cat_entity *e, const struct json *j, int t,
	    const struct norm_ctx *ctx, struct arena *a, Crmsync__Record *rec,
	    int *bad_values, char *err, size_t errlen);

/* Convert one JSON value to the PostgreSQL text form of type; *out = NULL for null/absent. */
int	normalise_value(enum cat_type type, const struct json *j, int t, struct arena *a,
	    char **out, int64_t *version_us);

/* The null-mask helpers shared with the store. */
static inline int
norm_isnull(const ProtobufCBinaryData *mask, size_t i)
{
	return i / 8 < mask->len && (mask->data[i / 8] >> (i % 8)) & 1;
}

#endif
