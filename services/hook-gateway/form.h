/*
 * form.h - amoCRM webhook bodies (application/x-www-form-urlencoded with PHP bracket keys)
 * turned into HookEvents.
 *
 * amoCRM posts `leads[status][0][id]=1&...&account[subdomain]=x`: one event per
 * entity[action][index], its fields one level below (notes add a [note] level), custom
 * fields and tags deeper still. form_parse() decodes the whole body, checks every key and
 * value (percent escapes, '+' as space, strict UTF-8, no NUL), enforces the limits below
 * and fills a HookDelivery. It never trusts the input: every count is bounded.
 */
#ifndef GW_FORM_H
#define GW_FORM_H

#include <stddef.h>

#include "arena.h"
#include "crmsync.pb-c.h"

struct form_limits {
	size_t	max_pairs;	/* key=value pairs in one body */
	size_t	max_depth;	/* bracket levels after the name (FORM_DEPTH_MAX at most) */
	size_t	max_key;	/* bytes of one decoded key */
	size_t	max_events;	/* distinct entity[action][index] groups */
};

#define FORM_DEPTH_MAX	64
#define FORM_LIMITS_DEFAULT	{ 50000, 16, 1024, 10000 }

/*
 * Parse body (len bytes, need not be NUL-terminated) into *out, which the caller has
 * initialised with CRMSYNC__HOOK_DELIVERY__INIT. subdomain, account_id and events are
 * set; seq and received_at_us are left alone. Every string and event lives in arena a and
 * stays valid until the arena is reset; nothing else is allocated.
 * Returns 0, or CS_EPROTO (malformed: bad escape, bad brackets, not a hook at all),
 * CS_EUTF8 (a key or value is not UTF-8 or holds NUL), CS_ETOOBIG (a limit above),
 * CS_ENOMEM (the arena's limit); err (may be NULL) then gets a short reason.
 */
int	form_parse(const char *body, size_t len, const struct form_limits *lim,
	    struct arena *a, Crmsync__HookDelivery *out, char *err, size_t errlen);

/* An arena limit that form_parse() never hits for a body of len bytes under lim. */
size_t	form_arena_size(size_t len, const struct form_limits *lim);

/* 1 if s[0..len) is well-formed UTF-8 without NUL bytes (no overlongs, no surrogates). */
int	form_utf8_valid(const unsigned char *s, size_t len);

#endif
