/*
 * apply.h - private to apply.c and apply_sql.c: the statements of one catalogue entity,
 * built once at start-up from the catalogue (never from input).
 */
#ifndef STORE_APPLY_H
#define STORE_APPLY_H

#include "catalog.h"

#define APPLY_MAX_KEYS	4	/* key columns of one entity (checked at start-up) */

struct entity_sql {
	const struct cat_entity	*e;
	const char		*schema;
	int			 created;	/* temp tables exist on this connection */
	int			 prep_lookup;	/* lookup, seen prepared on this connection */
	int			 prep_seen;
	int			 prep_written;
	char			 name_lookup[96], name_seen[96], name_written[96];
	size_t			*kidx;		/* positions of the key columns in e->cols */
	size_t			 nk;

	/* Classification and the direct path (rows the table does not have yet). */
	char			*lookup;	/* $1..$nk key arrays -> ordinal, hash, deleted */
	char			*seen;		/* $1 run, $2 entity, $3.. key arrays */
	/* Of the live ($1..$nk) and deleted ($nk+1..) key arrays, the keys this transaction
	 * wrote or soft-deleted (synced_at = now()), as one text[] (for analytics.c). */
	char			*written;
	char			*direct;	/* COPY table (cols, version, raw, hash) */
	char			**child_direct;	/* per child: COPY child table */

	/* The staged path (rows that exist and differ, delete records). */
	char			*create;	/* temp stage tables */
	char			*copy;		/* COPY st FROM STDIN */
	char			*upsert;
	char			*softdel;
	char			**child_copy;	/* per child */
	char			**child_del;
	char			**child_ins;

	/* Growth since the store last ANALYZEd the entity's tables (batch_analyze_grown):
	 * rows the planner knows of (-1 = not read yet) and rows inserted since. */
	double			 an_known;
	long			 an_since;
};

int	esql_build(struct entity_sql *x, const struct cat_entity *e, const char *schema);
void	esql_free(struct entity_sql *x);

#endif
