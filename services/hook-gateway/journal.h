/*
 * journal.h - the hook gateway's append-only, fsync'd on-disk journal.
 *
 * Records go into segment files <dir>/<first seq, 20 digits>.seg; each record is
 *   magic "CSJ1" | u32 payload length | u32 CRC-32 of (length, seq, payload) | u64 seq | payload
 * (little-endian). Appends are asynchronous and group-committed: a writer thread writes
 * everything queued since its last fsync in one write and one fdatasync, then calls each
 * append's callback; a record is "committed" (and may be answered 2xx) only then.
 * One reader (the forwarder) walks committed records in seq order; journal_ack() moves the
 * acknowledged position, which is saved to <dir>/cursor (tmp + fsync + rename + fsync dir)
 * at most every cursor_interval and before a fully acknowledged segment is deleted.
 * On open, a torn or corrupt tail (crash mid-write) is found by length + CRC and cut off;
 * corruption in the middle of a segment is skipped by scanning for the next valid record.
 * Seqs are strictly increasing but may have gaps (a failed write burns its seqs).
 */
#ifndef GW_JOURNAL_H
#define GW_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#define JOURNAL_REC_HDR		20
#define JOURNAL_REC_MAX		(16u << 20)	/* largest payload accepted on read */

struct journal;

struct journal_opts {
	const char	*dir;			/* created if missing */
	uint64_t	 max_bytes;		/* cap on all segments; appends past it: CS_EFULL */
	uint64_t	 segment_bytes;		/* roll over to a new segment past this size */
	int64_t		 cursor_interval_ms;	/* how often acks are saved */
	int		 nosync;		/* tests only: skip fdatasync */
};

struct journal_stats {
	uint64_t	bytes;		/* all segment files */
	uint64_t	segments;
	uint64_t	committed;	/* last durable seq */
	uint64_t	acked;		/* last acknowledged seq */
	uint64_t	backlog;	/* committed records not yet acknowledged */
	uint64_t	fsyncs;
	uint64_t	records;	/* appended since open */
	uint64_t	full;		/* appends refused: cap or disk full */
	uint64_t	skipped;	/* corrupt records skipped since open */
};

/* Called from the writer thread once the record is durable (err 0) or has failed
 * (CS_EIO, CS_EFULL, CS_ECLOSED). Must not call back into the journal's append path
 * synchronously waiting for itself; it may append. */
typedef void (*journal_done_fn)(void *arg, uint64_t seq, int err);

/*
 * Open (or create) the journal in o->dir: scan the segments, cut a torn tail, read the
 * cursor, start the writer thread. Returns 0, CS_EIO, CS_ENOMEM or CS_EINVAL; the journal
 * is freed with journal_close().
 */
int	journal_open(struct journal **out, const struct journal_opts *o);
/* Finish queued appends, save the cursor, stop the writer, free. NULL is fine. */
void	journal_close(struct journal *j);

/*
 * Queue one record (payload is copied). On 0, done() will be called exactly once, from
 * the writer thread, after the fsync that covers it; *seq (may be NULL) gets the record's
 * seq at once. On error nothing is queued and done() is not called: CS_EFULL (the cap or
 * the disk), CS_ETOOBIG (len > JOURNAL_REC_MAX), CS_ECLOSED, CS_EIO (journal failed),
 * CS_ENOMEM.
 */
int	journal_append(struct journal *j, const void *payload, size_t len,
	    journal_done_fn done, void *arg, uint64_t *seq);
/* journal_append and wait for the fsync; returns its result. */
int	journal_append_wait(struct journal *j, const void *payload, size_t len, uint64_t *seq);

/*
 * The next committed record after the last one returned (first call: after the cursor).
 * Waits up to timeout_ms (< 0: forever) for one: CS_ETIMEDOUT, CS_ECLOSED. On 0 *payload
 * is malloc'd and owned by the caller (free()). Single reader only.
 */
int	journal_read(struct journal *j, int timeout_ms, uint64_t *seq, void **payload,
	    size_t *len);
/*
 * Read again from the first record after seq (which must be >= the acknowledged cursor):
 * the next journal_read() returns it. Used when the peer lost what it had received but
 * not yet finished (amo-sync restarted).
 */
void	journal_rewind(struct journal *j, uint64_t seq);
/* Everything up to seq is acknowledged: maybe save the cursor, delete acked segments. */
int	journal_ack(struct journal *j, uint64_t seq);
/* Save the cursor now (normally done by journal_ack / journal_close). */
int	journal_sync_cursor(struct journal *j);

void	journal_get_stats(struct journal *j, struct journal_stats *st);

/* CRC-32 (IEEE 802.3, as zlib's crc32), exposed for the tests. */
uint32_t journal_crc32(uint32_t crc, const void *p, size_t len);

#endif
