/*
 * events.h - soft deletes from the amoCRM event log (the CE_EVENT_LOG entity).
 * Worker thread only.
 */
#ifndef AMO_EVENTS_H
#define AMO_EVENTS_H

#include <stdint.h>

struct json;
struct storecli;

/* Send the soft deletes implied by the *_deleted events of one page (the array at token
 * list) and wait for them; called before the page itself is sent. */
int	events_deletes(struct storecli *sc, const struct json *j, int list, int64_t run_id);

#endif
