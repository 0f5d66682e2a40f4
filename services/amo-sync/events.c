/*
 * events.c - deletions from the amoCRM event log (the CE_EVENT_LOG entity).
 *
 * Deleted entities vanish from every list; only webhooks and events say so. Each page of
 * /api/v4/events is scanned before it is stored: an event "<name>_deleted" whose <name>
 * is an entity's name or alias ("lead", "contact", "company", "customer", "task",
 * "common_note": catalog_find_alias) and whose entity has CE_EVENT_DELETES becomes a soft delete of
 * entity_id, versioned by the event's created_at (so an older delete never hides a row
 * that was restored and changed since). For a sub-entity (a note deleted from a lead)
 * the event's value_before names it: [{"note": {"id": 123}}] -> delete note 123.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "errors.h"
#include "events.h"
#include "json.h"
#include "log.h"
#include "storecli.h"

#define EVENTS_PAGE_MAX	1000

/* The id a sub-entity delete names in value_before: [{"<alias>": {"id": N}}]. */
static int
sub_entity_id(const struct cat_entity *e, const struct json *j, int ev, char *dst, size_t cap)
{
	int vb = json_get(j, ev, "value_before");
	int el = json_first(j, vb);

	for (int i = 0; i < json_size(j, vb); i++, el = json_skip(j, el)) {
		int k = json_first(j, el);
		for (int m = 0; m < json_size(j, el); m++) {
			size_t n;
			const char *key = json_raw(j, k, &n);
			int v = json_skip(j, k);
			if (catalog_is_named(e, key, n)) {
				int id = json_get(j, v, "id");
				if (json_kind(j, id) == JK_NUMBER || json_kind(j, id) == JK_STRING)
					return json_str(j, id, dst, cap, NULL);
			}
			k = json_skip(j, v);
		}
	}
	return CS_ENOENT;
}

struct del_group {
	const struct cat_entity	*e;
	char			**keys;
	int64_t			*ver;
	size_t			 n;
};

int
events_deletes(struct storecli *sc, const struct json *j, int list, int64_t run_id)
{
	struct del_group g[16];
	size_t ng = 0;
	int rv = 0, ev = json_first(j, list), n = json_size(j, list);

	memset(g, 0, sizeof(g));
	if (n > EVENTS_PAGE_MAX)
		n = EVENTS_PAGE_MAX;
	for (int i = 0; i < n; i++, ev = json_skip(j, ev)) {
		char type[128], key[64];
		const struct cat_entity *e;
		int64_t created = 0;
		size_t tl, gi;

		if (json_str(j, json_get(j, ev, "type"), type, sizeof(type), &tl) != 0 || tl <= 8 ||
		    strcmp(type + tl - 8, "_deleted") != 0)
			continue;
		if ((e = catalog_find_alias(CAT_AMO, type, tl - 8)) == NULL || !(e->flags & CE_EVENT_DELETES))
			continue;
		if (sub_entity_id(e, j, ev, key, sizeof(key)) != 0 &&
		    json_str(j, json_get(j, ev, "entity_id"), key, sizeof(key), NULL) != 0)
			continue;
		(void)json_int64(j, json_get(j, ev, "created_at"), &created);
		for (gi = 0; gi < ng && g[gi].e != e; gi++)
			;
		if (gi == ng) {
			if (ng == nitems(g))
				continue;
			g[ng].e = e;
			g[ng].keys = calloc((size_t)n, sizeof(char *));
			g[ng].ver = calloc((size_t)n, sizeof(int64_t));
			if (g[ng].keys == NULL || g[ng].ver == NULL) {
				free(g[ng].keys);
				free(g[ng].ver);
				rv = CS_ENOMEM;
				break;
			}
			ng++;
		}
		if ((g[gi].keys[g[gi].n] = strdup(key)) == NULL) {
			rv = CS_ENOMEM;
			break;
		}
		g[gi].ver[g[gi].n++] = created * 1000000;
		log_debug("events.delete", "type=%s entity=%s key=%s", type, e->name, key);
	}
	for (size_t k = 0; k < ng; k++) {
		if (rv == 0)
			rv = storecli_deletes(sc, g[k].e, NULL, g[k].keys, g[k].ver, g[k].n, run_id);
		for (size_t i = 0; i < g[k].n; i++)
			free(g[k].keys[i]);
		free(g[k].keys);
		free(g[k].ver);
	}
	return rv;
}
