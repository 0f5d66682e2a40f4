/*
 * store.h - the store service: the only writer of PostgreSQL.
 *
 * main.c wires it: config, the REP socket senders dial, the health responder, and the
 * loop that dispatches each Envelope. db.c owns the libpq connection (reconnect with
 * backoff), migrate.c the schema, apply.c the bulk upsert of a RecordBatch in one
 * transaction, runs.c sync runs, cursors, deletion detection and dead letters, evolve.c
 * the catalogue against the database's schema at start-up, rederive.c the re-derivation
 * of typed columns and child rows from stored raw JSON (in the background, between batches).
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
	/* Context the normaliser needs to re-derive rows, as the sync services have it. */
	char	*hh_timezone;		/* CS_HOLLIHOP_TIMEZONE */
	char	*hh_amo_lead_field;	/* CS_HOLLIHOP_AMO_LEAD_FIELD */
	int64_t	 rederive_rows;		/* rows per re-derivation step */
	int64_t	 rederive_pause_ms;	/* idle wait between steps */
	char	*analytics;		/* CS_STORE_ANALYTICS: on, rebuild or off */
	int	 an_refresh, an_rebuild;	/* from it: refresh in batches; rebuild */
};

enum {
	ST_BATCHES, ST_ROWS_APPLIED, ST_ROWS_UNCHANGED, ST_ROWS_DELETED, ST_REJECTED,
	ST_RETRIES, ST_DB_RECONNECTS, ST_RUNS_STARTED, ST_RUNS_FINISHED, ST_DB_UP, ST_REDONE,
	ST_RD_READ, ST_RD_WRITTEN, ST_RD_UNREADABLE, ST_RD_PENDING, ST__N
};
/* After the ST__N service stats: one "deletions_refused{crm,entity}" counter per catalogue
 * entity (runs_metrics_init; served as metrics only, not in the health answer). */
#define ST_REFUSED_MAX	128
/* After those: runstats.c's per-entity, per-CRM and histogram stats (metrics only). */
#define ST_RUNSTATS_MAX	(2 * ST_REFUSED_MAX + 128)
extern struct stat_counter store_stats[ST__N + ST_REFUSED_MAX + ST_RUNSTATS_MAX];

struct entity_sql;	/* apply.c: per-entity SQL built once from the catalogue */
struct rederive;	/* rederive.c: the job being worked */

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
	struct rederive		*rd;
	struct {			/* full rebuilds to do once the current reply is sent */
		unsigned	 crms;		/* bit 1 << enum cat_crm */
		char		 why[64];
	} an_due;
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
/* COPY sql FROM STDIN with b as its data; CS_EEXISTS for a unique violation. */
int	db_copy_in(struct store *st, const char *sql, const struct buf *b, char *err, size_t errlen);

/* migrate.c */
int	migrate_run(struct store *st);

/* evolve.c: inside migrate_run's lock; the caller has opened a transaction. */
int	evolve_schema(struct store *st);
/* Context values an entity's derivation reads that the store supplies (not per row):
 * "tz" and "$name"s. Appends "name":value pairs (JSON) to b; NULL value = unknown. */
int	evolve_ctx_json(struct store *st, const struct cat_entity *e, struct buf *b);
/* The context value a converter reads without its path naming it (CT_DATE_DAY: the
 * account's UTC offset), or NULL. */
const char *evolve_ctx_implicit(enum cat_type type);
/* The value of global context name for crm, or NULL when the store cannot supply it. */
const char *evolve_ctx_value(struct store *st, enum cat_crm crm, const char *name);
/* A step into crmsync.schema_steps and the log (rows < 0: none). */
int	evolve_step(struct store *st, const char *crm, const char *entity, const char *tbl,
	    const char *action, const char *detail, int64_t rows, int64_t run_id);

/* rederive.c */
int	rederive_init(struct store *st);
void	rederive_free(struct store *st);
void	rederive_reset_conn(struct store *st);
/* A job per entity (children too when children is set) in run *run_id (0: open one, kind
 * 'rederive'); synced_before "" = every row, else rows written before it; source NULL =
 * in place, else the table rebuilt from. Inside the caller's transaction. */
int	rederive_enqueue(struct store *st, const struct cat_entity *e, const char *reason,
	    int children, const char *synced_before, const char *source, const char *trigger,
	    int64_t *run_id);
/* Work to do? (cheap: in memory) */
int	rederive_pending(struct store *st);
/* One step (a batch of rows) of the oldest job; 0, or CS_EDBCONN when the connection died. */
int	rederive_step(struct store *st);
/* crmsyncctl rederive: a run for the CRM's entities (all when none). */
int	rederive_request(struct store *st, const Crmsync__RederiveRequest *rq, int64_t *run_id,
	    char *err, size_t errlen);
/* Batches for e must wait (its table is being rebuilt)? reason into err. */
int	rederive_blocks(struct store *st, int crm, const char *entity, char *err, size_t errlen);
/* One line for the health status ("" when idle). Thread-safe. */
void	rederive_status(struct store *st, char *buf, size_t len);

/* analytics.c: the analytic tables (analytics.h) */
/* At start, after migrate_catalog, under the migration lock: create them, rebuild the ones
 * whose definition changed (and the AN_START ones). Own transaction. */
int	analytics_init(struct store *st);
/* Does any analytic table read entity e (or one of its child tables)? Cheap. */
int	analytics_reads(const struct cat_entity *e);
/* Inside the caller's batch transaction: refresh every table fed by e for keys (a text[]
 * literal of the keys the batch wrote or deleted, as apply_key_expr renders them),
 * cascading through "analytics.<name>" sources. err gets the reason on failure. */
int	analytics_refresh(struct store *st, const struct cat_entity *e, const char *keys,
	    char *err, size_t errlen);
/* The same when keys name only rows the batch inserted (none of them existed before). */
int	analytics_refresh_new(struct store *st, const struct cat_entity *e, const char *keys,
	    char *err, size_t errlen);
/* In its own transaction: rebuild every table fed by crm's entity (entity NULL: by any of
 * crm's entities) and the tables that read those. Failures are logged and returned. */
int	analytics_rebuild(struct store *st, enum cat_crm crm, const char *entity, const char *why);
/* The rebuilds marked in st->an_due (a complete run's), after its reply was sent. */
void	analytics_rebuild_due(struct store *st);
void	analytics_reset_conn(struct store *st);

/* apply.c */
int	apply_init(struct store *st);
void	apply_free(struct store *st);
/* Apply one batch in one transaction. err gets the reason on failure. */
int	apply_batch(struct store *st, const Crmsync__RecordBatch *b, uint32_t *applied,
	    uint32_t *unchanged, char *err, size_t errlen);
const char *apply_key_expr(const struct cat_entity *e, const char *alias, char *buf, size_t cap);
/* content_hash of a live record (source JSON, version, typed and child values). */
int64_t	apply_rec_hash(const Crmsync__Record *r);
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

/* deadletter.c: crmsyncctl deadletters resubmit|discard. Fills rep (free its contents with
 * deadletter_reply_free); CS_EINVAL (a bad request) or CS_EDBCONN (database away) + err. */
int	deadletter_request(struct store *st, const Crmsync__DeadLetterRequest *rq,
	    Crmsync__DeadLetterReply *rep, char *err, size_t errlen);
void	deadletter_reply_free(Crmsync__DeadLetterReply *rep);

/* runstats.c: run metrics (last success per entity, failures in a row, durations). */
/* Name the stats from store_stats[first]; returns how many (first + n <= the array). */
size_t	runstats_init(size_t first);
/* Read them from the database (after migration); 0 or the db error (logged). */
int	runstats_load(struct store *st);
/* After a batch's COMMIT: its rows written, per entity (crm: the Crm enum). */
void	runstats_rows(int crm, const char *entity, uint32_t n);
/* After a RunEnd's COMMIT: count it, time it, re-read its CRM's last successes. */
void	runstats_run_ended(struct store *st, const char *run, const char *crm, const char *status);

#endif
