/*
 * journal.h - the hook gateway's append-only, fsync'd on-disk journal.
 *
 * Records go into segment files <dir>/<first seq, 20 digits>.seg; each record is
 *   magic "CSJ1" | u32 payload length | u32 CRC-32 of (length, seq, payload) | u64 seq | payload
 * (little-endian). Appends are asynchronous and group-committed: a writer thread writes
 * everything queued since its last fsync in one write and one fdatasync, then calls each
 * append's callback; a record is "committed" (and may be answered 2xx) only then.
 * One reader (the forwarder) walks committed records in seq order; journal_ack() moves the
 * acknowledged position, which is saved at most every cursor_interval and before a fully
 * acknowledged segment is deleted, into <dir>/state: two 512-byte slots, each
 *   magic "CSJS" | u32 version 1 | u64 journal id | u64 generation | u64 acked | u32 CRC-32
 * overwritten in turn in place (fdatasync), so a save needs no free space and a torn one
 * leaves the other slot. The journal id is random, made when the journal is (a new
 * directory, a lost state, segments gone): seqs of two journals are unrelated, and the id
 * travels with every delivery so amo-sync never takes a new journal's seq for a re-send.
 * (A <dir>/cursor text file of the version before ids is converted on open.)
 * When a write fails for want of space (ENOSPC), the next write (or, once everything is
 * acknowledged, the writer at once) starts a new segment and deletes the acknowledged
 * old one: the journal recovers by itself once amo-sync has caught up.
 * On open, a torn or corrupt tail (crash mid-write) is found by length + CRC and cut off;
 * corruption in the middle of a segment is skipped by scanning for the next valid record.
 * Seqs are strictly increasing and given at commit: a failed write takes its seqs back, so
 * committed seqs have no gaps (a corrupt record skipped on read leaves one).
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

/* Why appends are being refused (answered 503), if they are. */
enum journal_refusal {
	JOURNAL_ACCEPTING,
	JOURNAL_REFUSING_CAP,	/* at max_bytes: waiting for amo-sync to acknowledge */
	JOURNAL_REFUSING_DISK,	/* the filesystem is full (ENOSPC/EDQUOT) */
	JOURNAL_REFUSING_IO,	/* writes fail (EIO...) */
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
	enum journal_refusal refusing;	/* since the last append/write outcome */
	int64_t		refusing_ms;	/* for how long */
};

/* Called from the writer thread once the record is durable (err 0; seq is its seq) or has
 * failed (CS_EIO, CS_EFULL, CS_ECLOSED; seq is 0). Must not call back into the journal's
 * append path synchronously waiting for itself; it may append. */
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
 * the writer thread, after the fsync that covers it, with the record's seq. On error
 * nothing is queued and done() is not called: CS_EFULL (the cap), CS_ETOOBIG (len >
 * JOURNAL_REC_MAX), CS_ECLOSED, CS_ENOMEM.
 */
int	journal_append(struct journal *j, const void *payload, size_t len,
	    journal_done_fn done, void *arg);
/* journal_append and wait for the fsync; returns its result, *seq (may be NULL) the seq. */
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
/* The journal's identity: random, never 0, fixed for its lifetime. */
uint64_t journal_id(const struct journal *j);

void	journal_get_stats(struct journal *j, struct journal_stats *st);

/* CRC-32 (IEEE 802.3, as zlib's crc32), exposed for the tests. */
uint32_t journal_crc32(uint32_t crc, const void *p, size_t len);

#endif
