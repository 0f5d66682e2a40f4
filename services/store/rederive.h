/*
 * rederive.h - private to rederive.c and rederive_sql.c: the re-derivation job being
 * worked, and the statements built for it from the catalogue and its source table's key.
 */
#ifndef STORE_REDERIVE_H
#define STORE_REDERIVE_H

#include <pthread.h>

#include "arena.h"
#include "buf.h"
#include "normalise.h"

#define RD_MAX_KEYS	4
#define RD_MAX_CTX	6
#define RD_MAX_BLOCKED	32

struct rederive {
	pthread_mutex_t		 mu;
	char			 status[256];	/* read by the health thread */

	int			 known;		/* pending jobs read since start/request */
	int64_t			 npending;
	const struct cat_entity	*blocked[RD_MAX_BLOCKED];	/* entities being rebuilt */
	size_t			 nblocked;

	/* The job being worked. */
	int			 have;
	int64_t			 id, run_id, total, read, written, merged, skipped, unreadable;
	const struct cat_entity	*e;
	const char		*schema;
	int			 children, rebuild;
	char			 since[64];	/* synced_before as text; "" = every row */
	char			 source[128];	/* the table read */
	char			 keycol[RD_MAX_KEYS][64];
	char			 keytype[RD_MAX_KEYS][64];
	size_t			 nk;
	char			*last[RD_MAX_KEYS];	/* position; NULL = from the start */
	size_t			 ctxcol[RD_MAX_CTX];	/* e->cols of "$name" columns */
	int			 ctxhave[RD_MAX_CTX];	/* present in source */
	size_t			 nctx;
	struct norm_ctx		 gctx;
	unsigned char		*set;		/* e->cols written in place */
	char			*sel_first, *sel_next, *create, *stage_copy, *apply, *progress;
	char			**ccopy, **cdel, **cins;
	int			 created;	/* temp tables exist on this connection */
	int64_t			 solo;		/* rows left to take one at a time */
	int64_t			 t0, last_log;
	struct buf		 sbuf, cbuf;
	struct arena		 arena;
};

/* Build every statement of the loaded job (rd->e, schema, source, keys, "$name" columns). */
int	rederive_sql(struct rederive *rd);
/* Does column c read a context value the store does not know of (kept as stored)? */
int	rederive_ctx_missing(const struct cat_entity *e, const struct cat_col *c);

#endif
