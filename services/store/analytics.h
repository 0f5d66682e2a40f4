/*
 * analytics.h - the analyst layer: tables in the "analytics" schema derived from the
 * mirror, kept current by the store in the same transaction as the rows they derive from.
 *
 * Each analytic table is data (struct an_table), like the catalogue's entities: its DDL,
 * the mirror entities that feed it, how to recompute the rows a batch touched, and how to
 * rebuild it all. analytics.c is the engine: it creates the tables (after the migrations
 * and the catalogue's evolution), calls refresh inside apply.c's batch transaction for the
 * keys the batch wrote or deleted, and rebuilds after a complete run and a re-derivation.
 *
 * Tables are refreshed in array order (first an_amo_tables, then an_school_tables): a table
 * may read the analytic tables before it. A table whose rows depend on another analytic
 * table's rows names it in sources ("analytics.<name>"); the engine passes on the keys
 * that table's refresh reported (refresh_sql returns them as a single text column, see below).
 */
#ifndef ANALYTICS_H
#define ANALYTICS_H

#include <stddef.h>

struct an_table {
	const char	*name;		/* analytics.<name> */
	/*
	 * Comma list of what feeds it: "amo.<entity>", "hollihop.<entity>" (catalogue names,
	 * child tables by their table name) or "analytics.<name>".
	 */
	const char	*sources;
	/*
	 * Idempotent DDL run at every start, in one transaction with the others: CREATE TABLE
	 * / VIEW / INDEX IF NOT EXISTS (or CREATE OR REPLACE), COMMENT ON (what a row is and
	 * where it comes from), GRANT SELECT to the analyst role when it exists.
	 */
	const char	*create_sql;
	/*
	 * Recompute the rows that depend on source keys: $1 = the source ("amo.leads"),
	 * $2 = text[] of the source's keys the batch wrote or deleted (the key as
	 * apply_key_expr renders it). Returns one text column: the keys of THIS table's rows
	 * it rewrote or deleted (for tables that name it as a source), or no rows.
	 * current_setting('crmsync.keys_new', true) is 'on' when the batch's keys name only
	 * rows it inserted (none existed before: an insert-only batch), 'off' otherwise.
	 * NULL = this table is only rebuilt.
	 */
	const char	*refresh_sql;
	const char	*rebuild_sql;	/* recompute every row (no parameters) */
	/*
	 * AN_START: rebuilt at every start (cheap checks, e.g. views generated from field
	 * definitions), not only when its SQL changed. AN_LOG: the rows refresh and rebuild
	 * return are events to log ("analytics.schema_change", one key=value per column), not
	 * keys for dependent tables. 0 for an ordinary table (added after the first five
	 * members: tables that leave it out keep compiling).
	 */
	unsigned	 flags;
};

#define AN_START	0x01
#define AN_LOG		0x02

extern const struct an_table an_amo_tables[];	/* analytics_amo.c */
extern const size_t an_amo_ntables;
extern const struct an_table an_school_tables[];	/* analytics_school.c */
extern const size_t an_school_ntables;

#endif
