/*
 * fetch.h - the one paging loop: any catalogue entity -> pages of rows -> record batches
 * (see fetch.c). Worker thread only.
 */
#ifndef AMO_FETCH_H
#define AMO_FETCH_H

#include <stddef.h>
#include <stdint.h>

#include "amo.h"

enum fetch_mode { FETCH_FULL, FETCH_INCREMENTAL, FETCH_IDS };

struct fetch_result {
	int64_t	rows;
	int64_t	pages;
	int	complete;	/* every page was read and every batch committed */
	int64_t	rows_rejected;	/* rows that could not be read (sent as RejectedRow) */
	int	has_total;	/* every pass's first page said _total_items: */
	int64_t	api_total;	/* their sum */
};

/* Called between the pages of a long pass (the sync loop runs due hook tasks there). */
typedef void (*fetch_idle_fn)(void *arg);

/* What the worker remembers per entity between passes (a->memo). */
int	fetch_memo_new(struct amo *a, fetch_idle_fn idle, void *arg);
void	fetch_memo_free(struct amo *a);
/*
 * Fetch entity e (every parent value) in mode FULL or INCREMENTAL, sending a batch per page.
 * last_rows: its last complete full read (-1: unknown), the bound on a plausible reading
 * (lib/readguard, with CS_AMO_MAX_GROWTH). A page that is not the expected shape, repeats
 * or goes past the bound fails it (CS_EPROTO, CS_ETOOBIG).
 */
int	fetch_entity(struct amo *a, const struct cat_entity *e, enum fetch_mode mode,
	    int64_t run_id, int64_t last_rows, struct fetch_result *res);
/* Fetch the rows with these keys (<= 250) of e, for parent value param (may be NULL), and
 * wait until the store has answered for them. */
int	fetch_ids(struct amo *a, const struct cat_entity *e, const char *param,
	    char *const *keys, size_t n, struct fetch_result *res);

#endif
