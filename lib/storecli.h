/*
 * storecli.h - a sync service's side of the store protocol: sync runs, record batches,
 * soft deletes, progress notes and cursors, over one ordered, acknowledged sender
 * (lib/sendq). amo-sync and hollihop-sync both talk to the store through it.
 *
 * Everything goes through one queue, so the store sees messages in the order they were
 * made: a batch's cursor moves with its rows, a RunEnd comes after every batch of its run.
 * Batches are queued without waiting (storecli_batch), at most `depth` ahead, so the next
 * API page overlaps the store's COMMIT of the previous one; storecli_drain() marks where
 * the caller needs "all committed" (storecli_mark and storecli_reached: "all committed up to
 * here", while the caller goes on queueing). What needs an answer (RunBegin's run id, a cursor, a
 * batch of deletes) waits for it. Answers to batches are counted and logged here, on the
 * sender thread (batch.committed, batch.rejected, batch.not_sent); a batch the store
 * rejects (dead-lettered there, with the reason) does not stop the queue: the caller asks
 * storecli_rejected() whether anything of its was refused.
 *
 * Threads: one caller thread builds and submits; the sender thread inside owns the REQ
 * socket (nobody else may use it while the client is open).
 */
#ifndef CS_STORECLI_H
#define CS_STORECLI_H

#include <stddef.h>
#include <stdint.h>
#include <nng/nng.h>

#include "catalog.h"
#include "crmsync.pb-c.h"
#include "stats.h"

#define STORECLI_STOPPING_MS	5000	/* what a RunEnd still gets once the service stops */

struct storecli_opts {
	enum cat_crm		 crm;
	int			 timeout_ms;	/* one round trip */
	int64_t			 deadline_ms;	/* per message (<= 0: until answered or stopped) */
	int64_t			 grace_ms;	/* once *stop is set, what is queued still gets
						   this long, in all (0: it fails at once) */
	size_t			 depth;		/* batches queued ahead of the store, >= 1 */
	volatile _Atomic int	*stop;
	/* Counted on the store's answers (each may be NULL). */
	struct stat_counter	*batches;	/* batches committed */
	struct stat_counter	*rows;		/* their records */
	struct stat_counter	*rejected;	/* batches dead-lettered */
	struct stat_counter	*deletes;	/* soft deletes committed (storecli_deletes) */
	/* May be NULL: called on the sender thread after each answer, once storecli_reached
	 * sees it (to wake a thread that polls a mark while it does other work). */
	void			(*wake)(void *arg);
	void			*wake_arg;
};

/* One entity's line in RunEnd. */
struct storecli_entity {
	const char	*entity;
	int		 complete;	/* read to its end, every batch committed */
	int64_t		 rows;
	int64_t		 pages;
	int64_t		 rows_rejected;	/* rows read but not readable (sent as RejectedRow) */
	int		 has_total;	/* the API said how many rows the listing holds: */
	int64_t		 api_total;
};

struct storecli;

/* Start the sender on s (a REQ socket dialled to the store; still the caller's to close). */
int	storecli_open(struct storecli **out, nng_socket s, const struct storecli_opts *o);
/* Send what is queued (bounded by deadlines and the stop grace), stop the sender, free. */
void	storecli_close(struct storecli *c);

/*
 * Open a run of the given entities and wait for its id (the sticky error of what came
 * before is cleared first). last_rows (may be NULL; n entries) gets each entity's rows of
 * its last complete full read, -1 when the store knows none. On failure err (may be NULL)
 * says why, e.g. "the store did not open the run: rejected by peer: ..."; logged
 * run.begin_failed.
 */
int	storecli_run_begin(struct storecli *c, Crmsync__SyncKind kind, const char *trigger,
	    const char *const *entities, size_t n, int64_t *run_id, int64_t *last_rows, char *err,
	    size_t errlen);
/*
 * Close a run: after everything queued before it, whatever failed before (the sticky
 * error is cleared). It is sent even while stopping: a stop gives it STORECLI_STOPPING_MS
 * of its own. Logged run.end_unrecorded when the store never answered.
 */
int	storecli_run_end(struct storecli *c, int64_t run_id, Crmsync__RunStatus status,
	    const char *error, const struct storecli_entity *res, size_t n);
/* A progress note: queued, best effort (dropped after 5 s without the store). */
void	storecli_progress(struct storecli *c, int64_t run_id, const char *entity, int64_t rows,
	    int64_t pages);

/*
 * Queue b for the store (packed at once: b and what it points to may be freed on return).
 * The client sets crm, batch_id and replace_children; the caller fills entity, run_id,
 * records and an optional cursor. Returns 0 or the sticky error (deadline, stop).
 */
int	storecli_batch(struct storecli *c, Crmsync__RecordBatch *b);
/* The same, waiting for the answer: 0, CS_EREJECTED (logged, counted) or an error. */
int	storecli_batch_wait(struct storecli *c, Crmsync__RecordBatch *b);
/*
 * Soft-delete keys[i] (versioned ver_us[i], or 0 when ver_us is NULL) of e in one batch,
 * and wait for it. param fills a "$param" key column (a parent value), else NULL.
 * 0 also when the store rejected the batch (logged and counted there).
 */
int	storecli_deletes(struct storecli *c, const struct cat_entity *e, const char *param,
	    char *const *keys, const int64_t *ver_us, size_t n, int64_t run_id);
/* Read cursor `name` into dst; *found = 0 when the store has none. */
int	storecli_cursor_get(struct storecli *c, const char *name, char *dst, size_t cap,
	    int *found);

/* Wait until the store has answered everything queued; 0 or the sticky error. */
int	storecli_drain(struct storecli *c);
/*
 * A mark after everything queued so far (by any part of the caller: one entity's batches,
 * while other entities queue theirs behind them).
 */
uint64_t storecli_mark(struct storecli *c);
/*
 * Without waiting: 1 when the store has answered everything queued before mark (as
 * storecli_drain would have, for that part; rejections counted), then *err (may be NULL)
 * the sticky error storecli_drain would return; 0 while something before mark still waits
 * or is in flight (e.g. retried).
 */
int	storecli_reached(struct storecli *c, uint64_t mark, int *err);
/*
 * Batches rejected since the client opened (after a drain, or a mark reached, it counts
 * every rejection of what was queued before; maybe some after). why (may be NULL) gets
 * the first rejection since the last call that asked for it ("leads: the store rejected
 * batch 7: reason"), or "" when there was none.
 */
uint64_t storecli_rejected(struct storecli *c, char *why, size_t cap);

#endif
