/*
 * store.h - the store service: the only writer of PostgreSQL.
 *
 * main.c wires it: config, the REP socket senders dial, the health responder, and the
 * loop that dispatches each Envelope. db.c owns the libpq connection (reconnect with
 * backoff), migrate.c the schema, apply.c the bulk upsert of a RecordBatch in one
 * transaction, runs.c sync runs, cursors, deletion detection and dead letters.
 */
#ifndef STORE_H
#define STORE_H

#include <stdint.h>
#include <libpq-fe.h>

#include "buf.h"
#include "catalog.h"
#include "crmsync.pb-c.h"
#include "stats.h"

struct store_conf {
	char	*url;
	char	*health_url;
	char	*dsn;
	int64_t	 recv_max;
	int64_t	 batch_max_rows;
	int64_t	 reconnect_max_ms;
	int64_t	 delete_guard_pct;
	int64_t	 statement_timeout_ms;
	char	*metrics_addr;	/* lib/metrics: "" = off */
};

enum {
	ST_BATCHES, ST_ROWS_APPLIED, ST_ROWS_UNCHANGED, ST_ROWS_DELETED, ST_REJECTED,
	ST_RETRIES, ST_DB_RECONNECTS, ST_RUNS_STARTED, ST_RUNS_FINISHED, ST_DB_UP, ST_REDONE, ST__N
};
/* After the ST__N service stats: one "deletions_refused{crm,entity}" counter per catalogue
 * entity (runs_metrics_init; served as metrics only, not in the health answer). */
#define ST_REFUSED_MAX	128
extern struct stat_counter store_stats[ST__N + ST_REFUSED_MAX];

struct entity_sql;	/* apply.c: per-entity SQL built once from the catalogue */

struct store {
	struct store_conf	 conf;
	PGconn			*pg;
	int			 pg_ok;
	volatile _Atomic int		 ready;		/* migrated and listening */
	int			 connect_attempts;
	int64_t			 backoff_ms;
	int64_t			 next_connect_ms;	/* bus_now_ms() of the next allowed attempt */
	struct entity_sql	*esql;		/* one per catalogue entity, both CRMs */
	size_t			 nesql;
	struct buf		 copy;		/* COPY data of the current batch */
};

/* db.c */
int	db_connect(struct store *st);		/* blocks with backoff until connected or stop */
int	db_try_connect(struct store *st);	/* one attempt if the backoff allows; never blocks long */
void	db_close(struct store *st);
int	db_exec(struct store *st, const char *sql);	/* CS_EDB / CS_EDBCONN */
int	db_execp(struct store *st, const char *sql, int n, const char *const *vals, PGresult **out);
/* The same through a named prepared statement, prepared on first use (*prepared tracks it;
 * clear it after a reconnect). */
int	db_execprep(struct store *st, const char *name, int *prepared, const char *sql, int n,
	    const char *const *vals, PGresult **out);
/* CS_EDBCONN when the connection is gone (retry later), CS_EDB for a data/SQL error. */
int	db_classify(struct store *st, const PGresult *r);
const char *db_errmsg(struct store *st, const PGresult *r);
void	db_rollback(struct store *st);

/* migrate.c */
int	migrate_run(struct store *st);

/* apply.c */
int	apply_init(struct store *st);
void	apply_free(struct store *st);
/* Apply one batch in one transaction. err gets the reason on failure. */
int	apply_batch(struct store *st, const Crmsync__RecordBatch *b, uint32_t *applied,
	    uint32_t *unchanged, char *err, size_t errlen);
const char *apply_key_expr(const struct cat_entity *e, const char *alias, char *buf, size_t cap);
/* After a reconnect: temp tables and prepared statements are gone with the old session. */
void	apply_reset_conn(struct store *st);

/* runs.c */
const char *runs_kind_name(Crmsync__SyncKind k);	/* "full", "incremental", "hooks" */
/* Open a run; last_rows[i] (rb->n_entities of them) gets the rows of entity i's last
 * complete full read, -1 when there is none. */
int	runs_begin(struct store *st, const Crmsync__RunBegin *rb, int64_t *run_id, int64_t *last_rows,
	    char *err, size_t errlen);
int	runs_end(struct store *st, const Crmsync__RunEnd *re, char *err, size_t errlen);
int	runs_progress(struct store *st, const Crmsync__RunProgress *rp);
/* The batch's rejected rows into crmsync.dead_letters, inside the caller's transaction. */
int	runs_rejected_rows(struct store *st, const Crmsync__RecordBatch *b, char *err, size_t errlen);
/* Name the per-entity counters after ST__N in store_stats; returns how many there are. */
size_t	runs_metrics_init(void);
int	runs_cursor_get(struct store *st, const Crmsync__CursorGet *cg, int *found, char **value);
int	runs_dead_letter(struct store *st, const char *crm, const char *entity, uint64_t batch_id,
	    int64_t run_id, const char *reason, const void *payload, size_t len);
const char *runs_crm_name(int crm);

#endif
