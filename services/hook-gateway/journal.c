/*
 * journal.c - append-only segment files with group commit (see journal.h).
 *
 * Appenders only queue (under j->mtx) and get their seq; the writer thread takes the whole
 * queue, writes it with one pwrite at the end of the active segment, runs one fdatasync,
 * publishes the new committed size and calls the appenders back. While it is in fdatasync
 * the next group collects, so N concurrent hooks cost about one fsync, not N.
 * Only bytes below a segment's committed size are ever read, so the reader (forwarder)
 * never sees a record that is not durable, and a failed write is simply overwritten by
 * the next group. All file I/O happens outside j->mtx.
 * A full filesystem is survived without an operator: the acknowledged position is saved by
 * overwriting one of two slots of a preallocated state file (no new blocks needed), and
 * after a write failed for want of space the next group starts a new segment, so the old
 * one is deleted as soon as everything in it is acknowledged.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "errors.h"
#include "fs.h"
#include "journal.h"
#include "log.h"

#define JOURNAL_MAGIC		"CSJ1"
#define JOURNAL_SEG_NAMELEN	24	/* 20 digits + ".seg" */
#define JOURNAL_STATE		"state"
#define JOURNAL_STATE_TMP	"state.tmp"
#define JOURNAL_STATE_MAGIC	"CSJS"
#define JOURNAL_STATE_VERSION	1
#define JOURNAL_STATE_LEN	36	/* magic, version, id, gen, acked, crc */
#define JOURNAL_STATE_SLOT	512	/* two slots, a sector each: a torn save spoils one */
#define JOURNAL_LEGACY_CURSOR	"cursor"	/* before journal ids: text, converted on open */
#define JOURNAL_LEGACY_HDR	"crmsync-journal-cursor 1\n"
#define JOURNAL_FULL_LOG_MS	10000

struct journal_seg {
	uint64_t	base;	/* first seq it may hold: its file name */
	uint64_t	last;	/* last seq in it, 0 = empty */
	uint64_t	size;	/* committed bytes */
};

struct journal_req {
	struct journal_req	*next;
	uint64_t		 seq;
	size_t			 len;
	journal_done_fn		 done;
	void			*arg;
	unsigned char		 data[];
};

struct journal {
	struct journal_opts	 o;
	char			*dir;
	int			 dirfd;
	pthread_mutex_t		 mtx;
	pthread_mutex_t		 cursor_mtx;	/* one cursor writer at a time */
	pthread_cond_t		 wcv;		/* writer: work queued or closing */
	pthread_cond_t		 rcv;		/* reader: more committed records */
	pthread_cond_t		 scv;		/* journal_append_wait callers */
	pthread_t		 writer;
	int			 writer_started;
	int			 closing;

	struct journal_seg	*segs;		/* ascending; the last one is active */
	size_t			 nsegs, capsegs;
	int			 wfd;		/* the active segment, for the writer */

	uint64_t		 id;		/* identity, made with the journal (state file) */
	int			 statefd;	/* the state file, overwritten in place */
	uint64_t		 state_gen;	/* generation of the last slot written */

	uint64_t		 next_seq;
	uint64_t		 committed;
	uint64_t		 acked;
	uint64_t		 cursor_saved;
	int64_t			 cursor_saved_ms;
	uint64_t		 bytes;		/* committed bytes of all segments */
	uint64_t		 queued_bytes;	/* queued or being written */
	struct journal_req	*qhead, **qtail;
	int64_t			 full_logged_ms;
	int			 disk_full;	/* the last write failed for want of space */
	int			 roll_wanted;	/* disk full, all acknowledged: writer, roll */
	enum journal_refusal	 refusing;	/* why appends are being refused, if they are */
	int64_t			 refusing_since_ms;

	/* reader (forwarder) position */
	uint64_t		 rbase, rpos, rseq;
	int			 rfd;
	uint64_t		 rfd_base;
	int			 rbusy;		/* the reader is using rfd without the lock */

	/* writer scratch */
	unsigned char		*wbuf;
	size_t			 wcap;

	struct journal_stats	 st;
};

/* ---- CRC-32 (reflected 0xEDB88320, like zlib) ---- */

static uint32_t journal_crc_table[8][256];
static pthread_once_t journal_crc_once = PTHREAD_ONCE_INIT;

static void
journal_crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		journal_crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			journal_crc_table[t][i] = (journal_crc_table[t - 1][i] >> 8) ^
			    journal_crc_table[0][journal_crc_table[t - 1][i] & 0xff];
}

uint32_t
journal_crc32(uint32_t crc, const void *p, size_t len)
{
	const unsigned char *s = p;

	pthread_once(&journal_crc_once, journal_crc_init);
	crc = ~crc;
	/* slicing-by-8: the journal checksums every hook body twice (write, read) */
	while (len >= 8) {
		uint32_t lo = crc ^ ((uint32_t)s[0] | (uint32_t)s[1] << 8 |
		    (uint32_t)s[2] << 16 | (uint32_t)s[3] << 24);
		crc = journal_crc_table[7][lo & 0xff] ^ journal_crc_table[6][(lo >> 8) & 0xff] ^
		    journal_crc_table[5][(lo >> 16) & 0xff] ^ journal_crc_table[4][lo >> 24] ^
		    journal_crc_table[3][s[4]] ^ journal_crc_table[2][s[5]] ^
		    journal_crc_table[1][s[6]] ^ journal_crc_table[0][s[7]];
		s += 8;
		len -= 8;
	}
	while (len-- > 0)
		crc = journal_crc_table[0][(crc ^ *s++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* ---- small helpers ---- */

static void
journal_put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void
journal_put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t
journal_get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t
journal_get64(const unsigned char *p)
{
	return (uint64_t)journal_get32(p) | (uint64_t)journal_get32(p + 4) << 32;
}


static void
journal_seg_name(char *buf, size_t len, uint64_t base)
{
	snprintf(buf, len, "%020" PRIu64 ".seg", base);
}

/* CRC of one record: length, seq and payload, in their on-disk byte order. */
static uint32_t
journal_rec_crc(const unsigned char *hdr, const void *payload, size_t len)
{
	uint32_t crc = journal_crc32(0, hdr + 4, 4);	/* length */

	crc = journal_crc32(crc, hdr + 12, 8);		/* seq */
	return journal_crc32(crc, payload, len);
}

static void
journal_rec_header(unsigned char *hdr, uint64_t seq, const void *payload, size_t len)
{
	memcpy(hdr, JOURNAL_MAGIC, 4);
	journal_put32(hdr + 4, (uint32_t)len);
	journal_put64(hdr + 12, seq);
	journal_put32(hdr + 8, journal_rec_crc(hdr, payload, len));
}

static int
journal_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int
journal_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/*
 * Read and check the record at pos (it must end by end and have seq > after).
 * 0: valid, *payload is malloc'd (caller frees) unless payload is NULL. -1: not a record.
 */
static int
journal_rec_read(int fd, uint64_t pos, uint64_t end, uint64_t after, uint64_t *seq,
    void **payload, size_t *plen)
{
	unsigned char hdr[JOURNAL_REC_HDR];
	unsigned char *data = NULL;
	uint32_t len;

	if (end - pos < JOURNAL_REC_HDR || journal_pread_full(fd, hdr, sizeof(hdr), pos) != 0)
		return -1;
	len = journal_get32(hdr + 4);
	if (memcmp(hdr, JOURNAL_MAGIC, 4) != 0 || len > JOURNAL_REC_MAX ||
	    end - pos - JOURNAL_REC_HDR < len || journal_get64(hdr + 12) <= after)
		return -1;
	if ((data = malloc(len > 0 ? len : 1)) == NULL)
		return -1;
	if (journal_pread_full(fd, data, len, pos + JOURNAL_REC_HDR) != 0 ||
	    journal_rec_crc(hdr, data, len) != journal_get32(hdr + 8)) {
		free(data);
		return -1;
	}
	*seq = journal_get64(hdr + 12);
	*plen = len;
	if (payload != NULL)
		*payload = data;
	else
		free(data);
	return 0;
}

/* Find the next valid record after a bad one at pos: 0 and *found, or -1 (none before end). */
static int
journal_resync(int fd, uint64_t pos, uint64_t end, uint64_t after, uint64_t *found)
{
	unsigned char buf[65536];
	uint64_t off = pos + 1;

	while (off + JOURNAL_REC_HDR <= end) {
		size_t want = end - off < sizeof(buf) ? (size_t)(end - off) : sizeof(buf);
		if (journal_pread_full(fd, buf, want, off) != 0)
			return -1;
		for (size_t i = 0; i + 4 <= want; i++) {
			uint64_t seq;
			size_t len;
			if (memcmp(buf + i, JOURNAL_MAGIC, 4) != 0)
				continue;
			if (journal_rec_read(fd, off + i, end, after, &seq, NULL, &len) == 0) {
				*found = off + i;
				return 0;
			}
		}
		if (want < sizeof(buf))
			break;
		off += want - 3;	/* a magic may straddle the chunk boundary */
	}
	return -1;
}

static int
journal_segs_add(struct journal *j, uint64_t base)
{
	if (j->nsegs == j->capsegs) {
		size_t cap = j->capsegs ? j->capsegs * 2 : 16;
		struct journal_seg *s = realloc(j->segs, cap * sizeof(*s));
		if (s == NULL)
			return CS_ENOMEM;
		j->segs = s;
		j->capsegs = cap;
	}
	j->segs[j->nsegs].base = base;
	j->segs[j->nsegs].last = 0;
	j->segs[j->nsegs].size = 0;
	j->nsegs++;
	return 0;
}

static int
journal_seg_cmp(const void *a, const void *b)
{
	const struct journal_seg *x = a, *y = b;

	return x->base < y->base ? -1 : x->base > y->base;
}

/* Create segment base and make its name durable; returns the fd (O_RDWR) or -1. */
static int
journal_seg_create(struct journal *j, uint64_t base)
{
	char name[JOURNAL_SEG_NAMELEN + 8];
	int fd;

	journal_seg_name(name, sizeof(name), base);
	fd = openat(j->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (fd < 0) {
		log_warn("journal.create_failed", "dir=%s seg=%s", lq(j->dir), name);
		return -1;
	}
	if (!j->o.nosync && fsync(j->dirfd) != 0) {
		log_warn("journal.fsync_dir_failed", "dir=%s", lq(j->dir));
		close(fd);
		unlinkat(j->dirfd, name, 0);
		return -1;
	}
	return fd;
}

/* ---- state: identity and acknowledged position ---- */

/* One slot: magic | u32 version | u64 id | u64 generation | u64 acked | u32 CRC of the rest. */
static void
journal_state_slot(unsigned char *p, uint64_t id, uint64_t gen, uint64_t acked)
{
	memset(p, 0, JOURNAL_STATE_SLOT);
	memcpy(p, JOURNAL_STATE_MAGIC, 4);
	journal_put32(p + 4, JOURNAL_STATE_VERSION);
	journal_put64(p + 8, id);
	journal_put64(p + 16, gen);
	journal_put64(p + 24, acked);
	journal_put32(p + 32, journal_crc32(0, p, 32));
}

static int
journal_state_valid(const unsigned char *p)
{
	return memcmp(p, JOURNAL_STATE_MAGIC, 4) == 0 &&
	    journal_get32(p + 4) == JOURNAL_STATE_VERSION && journal_get64(p + 8) != 0 &&
	    journal_get32(p + 32) == journal_crc32(0, p, 32);
}

static uint64_t
journal_new_id(void)
{
	uint64_t id = 0;

	while (id == 0) {
		if (getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id))
			id = (uint64_t)clock_mono_ms() * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
	}
	return id;
}

/* A cursor file of the version before journal ids: its position, or 0 (replay all). */
static void
journal_legacy_cursor(struct journal *j, int fd)
{
	char buf[128];
	unsigned long long v;
	char *end;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);

	if (n < 0)
		n = 0;
	buf[n] = '\0';
	errno = 0;
	if (strncmp(buf, JOURNAL_LEGACY_HDR, strlen(JOURNAL_LEGACY_HDR)) == 0) {
		v = strtoull(buf + strlen(JOURNAL_LEGACY_HDR), &end, 10);
		if (errno == 0 && end != buf + strlen(JOURNAL_LEGACY_HDR) && *end == '\n') {
			j->acked = v;
			return;
		}
	}
	/* Replaying from the start only costs duplicates, which receivers tolerate. */
	log_warnx("journal.cursor_invalid", "dir=%s action=replay_all", lq(j->dir));
}

/*
 * Read the state file (or an older cursor file): j->id and j->acked. j->id stays 0 when
 * there is no valid state: the journal then gets a new identity (journal_state_create).
 */
static int
journal_state_load(struct journal *j)
{
	unsigned char buf[2 * JOURNAL_STATE_SLOT];
	ssize_t n;
	int fd;

	j->id = 0;
	j->acked = 0;
	if ((fd = openat(j->dirfd, JOURNAL_STATE, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno != ENOENT)
			return CS_EIO;
		if ((fd = openat(j->dirfd, JOURNAL_LEGACY_CURSOR, O_RDONLY | O_CLOEXEC)) < 0)
			return errno == ENOENT ? 0 : CS_EIO;
		journal_legacy_cursor(j, fd);
		close(fd);
		log_info("journal.cursor_converted", "dir=%s acked=%" PRIu64, lq(j->dir), j->acked);
		return 0;
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0)
		return CS_EIO;
	for (int i = 0; i < 2; i++) {
		const unsigned char *p = buf + i * JOURNAL_STATE_SLOT;

		if ((size_t)n < (size_t)i * JOURNAL_STATE_SLOT + JOURNAL_STATE_LEN || !journal_state_valid(p))
			continue;
		if (j->id != 0 && journal_get64(p + 8) != j->id)
			continue;	/* cannot happen unless tampered with: trust slot 0 */
		if (j->id == 0 || journal_get64(p + 16) > j->state_gen) {
			j->id = journal_get64(p + 8);
			j->state_gen = journal_get64(p + 16);
			j->acked = journal_get64(p + 24);
		}
	}
	if (j->id == 0)
		log_warnx("journal.state_invalid", "dir=%s action=new_identity_replay_all", lq(j->dir));
	return 0;
}

/*
 * Write a whole new state file (tmp, fsync, rename, fsync dir) with a new identity when
 * j->id is 0, and keep it open for in-place saves. This is the only state write that needs
 * free space: it happens when the journal is created (or converted, or found inconsistent).
 */
static int
journal_state_create(struct journal *j)
{
	unsigned char buf[2 * JOURNAL_STATE_SLOT];
	int fd, rv = CS_EIO;

	if (j->id == 0)
		j->id = journal_new_id();
	j->state_gen = 1;
	journal_state_slot(buf, j->id, j->state_gen, j->acked);
	journal_state_slot(buf + JOURNAL_STATE_SLOT, j->id, j->state_gen, j->acked);
	fd = openat(j->dirfd, JOURNAL_STATE_TMP, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		goto fail;
	if (journal_pwrite_full(fd, buf, sizeof(buf), 0) != 0 || (!j->o.nosync && fsync(fd) != 0))
		goto fail;
	if (renameat(j->dirfd, JOURNAL_STATE_TMP, j->dirfd, JOURNAL_STATE) != 0 ||
	    (!j->o.nosync && fsync(j->dirfd) != 0))
		goto fail;
	j->statefd = fd;
	unlinkat(j->dirfd, JOURNAL_LEGACY_CURSOR, 0);
	return 0;
fail:
	if (errno == ENOSPC || errno == EDQUOT)
		rv = CS_EFULL;
	log_warn("journal.state_create_failed", "dir=%s", lq(j->dir));
	if (fd >= 0)
		close(fd);
	unlinkat(j->dirfd, JOURNAL_STATE_TMP, 0);
	return rv;
}

/*
 * Save the acknowledged position: overwrite the older of the two slots in place and
 * fdatasync. Overwriting allocated blocks needs no free space, so this works on a full
 * filesystem; a failed save is retried by the next journal_ack.
 */
int
journal_sync_cursor(struct journal *j)
{
	unsigned char slot[JOURNAL_STATE_SLOT];
	uint64_t v, gen;
	int rv = CS_EIO;

	pthread_mutex_lock(&j->cursor_mtx);
	pthread_mutex_lock(&j->mtx);
	v = j->acked;
	pthread_mutex_unlock(&j->mtx);
	gen = j->state_gen + 1;
	journal_state_slot(slot, j->id, gen, v);
	if (journal_pwrite_full(j->statefd, slot, sizeof(slot), (gen & 1) * JOURNAL_STATE_SLOT) != 0 ||
	    (!j->o.nosync && fdatasync(j->statefd) != 0))
		goto out;
	j->state_gen = gen;
	pthread_mutex_lock(&j->mtx);
	if (v > j->cursor_saved)
		j->cursor_saved = v;
	j->cursor_saved_ms = clock_mono_ms();
	pthread_mutex_unlock(&j->mtx);
	rv = 0;
out:
	if (rv != 0)
		log_warn("journal.cursor_save_failed", "dir=%s seq=%" PRIu64 " action=retry_on_next_ack",
		    lq(j->dir), v);
	pthread_mutex_unlock(&j->cursor_mtx);
	return rv;
}

uint64_t
journal_id(const struct journal *j)
{
	return j->id;
}

/* ---- open: scan segments, cut torn tails ---- */

static int
journal_scan_seg(struct journal *j, struct journal_seg *s, int fd, uint64_t *lastseq)
{
	struct stat sb;
	uint64_t pos = 0, end;
	char name[JOURNAL_SEG_NAMELEN + 8];

	journal_seg_name(name, sizeof(name), s->base);
	if (fstat(fd, &sb) != 0)
		return CS_EIO;
	end = (uint64_t)sb.st_size;
	while (pos < end) {
		uint64_t seq, found;
		size_t len;

		if (journal_rec_read(fd, pos, end, *lastseq, &seq, NULL, &len) == 0 && seq >= s->base) {
			*lastseq = seq;
			s->last = seq;
			pos += JOURNAL_REC_HDR + len;
			continue;
		}
		if (journal_resync(fd, pos, end, *lastseq, &found) == 0) {
			log_warnx("journal.corrupt", "seg=%s from=%" PRIu64 " to=%" PRIu64
			    " action=skipped", name, pos, found);
			j->st.skipped++;
			pos = found;
			continue;
		}
		/* Nothing valid follows: a write the crash cut short. It was never acknowledged. */
		log_warnx("journal.torn_tail", "seg=%s offset=%" PRIu64 " bytes=%" PRIu64
		    " action=truncated", name, pos, end - pos);
		if (ftruncate(fd, (off_t)pos) != 0 || (!j->o.nosync && fdatasync(fd) != 0)) {
			log_warn("journal.truncate_failed", "seg=%s", name);
			return CS_EIO;
		}
		end = pos;
	}
	s->size = end;
	return 0;
}

/*
 * Delete fully acknowledged segments (never the active one) once the cursor covers them.
 * The reader's descriptor of a deleted segment is closed here when the reader is not using
 * it, since an open descriptor keeps the space allocated.
 */
static void
journal_gc(struct journal *j)
{
	char name[JOURNAL_SEG_NAMELEN + 8];

	for (;;) {
		struct journal_seg s;
		int rfd = -1;

		pthread_mutex_lock(&j->mtx);
		if (j->nsegs < 2 || j->segs[0].last > j->cursor_saved) {
			pthread_mutex_unlock(&j->mtx);
			return;
		}
		s = j->segs[0];
		memmove(&j->segs[0], &j->segs[1], (j->nsegs - 1) * sizeof(j->segs[0]));
		j->nsegs--;
		j->bytes -= s.size;
		if (j->rfd >= 0 && j->rfd_base == s.base && !j->rbusy) {
			rfd = j->rfd;
			j->rfd = -1;
		}
		if ((j->refusing == JOURNAL_REFUSING_DISK || j->refusing == JOURNAL_REFUSING_CAP) &&
		    s.size > 0) {
			log_info("journal.space_reclaimed", "dir=%s seg_bytes=%" PRIu64 " action=accepting",
			    lq(j->dir), s.size);
			j->refusing = JOURNAL_ACCEPTING;
		}
		pthread_mutex_unlock(&j->mtx);
		if (rfd >= 0)
			close(rfd);
		journal_seg_name(name, sizeof(name), s.base);
		if (unlinkat(j->dirfd, name, 0) != 0 && errno != ENOENT)
			log_warn("journal.unlink_failed", "seg=%s", name);
		else
			log_debug("journal.segment_deleted", "seg=%s last=%" PRIu64 " bytes=%" PRIu64,
			    name, s.last, s.size);
	}
}

static void *journal_writer(void *arg);

/* The journal's memory, locks and bounds (a segment well below the cap, or a full cap could
 * never be freed). */
static struct journal *
journal_new(const struct journal_opts *o)
{
	struct journal *j;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return NULL;
	j->o = *o;
	j->dirfd = j->wfd = j->rfd = j->statefd = -1;
	j->qtail = &j->qhead;
	pthread_mutex_init(&j->mtx, NULL);
	pthread_mutex_init(&j->cursor_mtx, NULL);
	pthread_cond_init(&j->wcv, NULL);
	pthread_cond_init(&j->rcv, NULL);
	pthread_cond_init(&j->scv, NULL);
	if (j->o.segment_bytes == 0 || j->o.segment_bytes > j->o.max_bytes / 4)
		j->o.segment_bytes = j->o.max_bytes / 4;
	if (j->o.segment_bytes < 4096)
		j->o.segment_bytes = 4096;
	if ((j->dir = strdup(o->dir)) == NULL) {
		free(j);
		return NULL;
	}
	return j;
}

/* The segment files in the directory, oldest first. */
static int
journal_list_segs(struct journal *j)
{
	DIR *d;
	struct dirent *de;
	int rv = 0;

	if ((d = fdopendir(dup(j->dirfd))) == NULL)
		return CS_EIO;
	while (rv == 0 && (de = readdir(d)) != NULL) {
		char *end;
		unsigned long long base;

		if (strlen(de->d_name) != JOURNAL_SEG_NAMELEN ||
		    strcmp(de->d_name + 20, ".seg") != 0)
			continue;
		errno = 0;
		base = strtoull(de->d_name, &end, 10);
		if (errno != 0 || end != de->d_name + 20)
			continue;
		rv = journal_segs_add(j, base);
	}
	closedir(d);
	if (rv == 0 && j->nsegs > 1)
		qsort(j->segs, j->nsegs, sizeof(j->segs[0]), journal_seg_cmp);
	return rv;
}

/* Scan every segment (the newest stays open for writing); *lastseq: the last entry found. */
static int
journal_scan_all(struct journal *j, uint64_t *lastseq)
{
	for (size_t i = 0; i < j->nsegs; i++) {
		char name[JOURNAL_SEG_NAMELEN + 8];
		int fd, rv;

		journal_seg_name(name, sizeof(name), j->segs[i].base);
		if ((fd = openat(j->dirfd, name, O_RDWR | O_CLOEXEC)) < 0) {
			log_warn("journal.open_failed", "seg=%s", name);
			return CS_EIO;
		}
		rv = journal_scan_seg(j, &j->segs[i], fd, lastseq);
		if (rv == 0 && i == j->nsegs - 1)
			j->wfd = fd;
		else
			close(fd);
		if (rv != 0)
			return rv;
		j->bytes += j->segs[i].size;
	}
	return 0;
}

/* The next sequence number: after the cursor, the last entry and the newest segment's
 * base; an empty journal gets its first segment. */
static int
journal_place_next(struct journal *j, uint64_t lastseq)
{
	j->next_seq = j->acked + 1;
	if (lastseq + 1 > j->next_seq)
		j->next_seq = lastseq + 1;
	if (j->nsegs > 0 && j->segs[j->nsegs - 1].base > j->next_seq)
		j->next_seq = j->segs[j->nsegs - 1].base;
	if (j->nsegs == 0) {
		int rv;
		if ((rv = journal_segs_add(j, j->next_seq)) != 0)
			return rv;
		if ((j->wfd = journal_seg_create(j, j->next_seq)) < 0)
			return CS_EIO;
	}
	j->committed = j->next_seq - 1;
	return 0;
}

/*
 * The journal's identity. State without segments means the segments were lost (wiped,
 * restored without them): seqs after the cursor may have been delivered already under
 * this identity, so a new identity makes amo-sync take what comes next as new, not as
 * re-sends.
 */
static int
journal_identity(struct journal *j, size_t found_segs)
{
	if (j->id != 0 && found_segs == 0 && j->acked > 0) {
		log_warnx("journal.segments_missing", "dir=%s acked=%" PRIu64 " action=new_identity",
		    lq(j->dir), j->acked);
		j->id = 0;
	}
	if (j->id == 0 || (j->statefd = openat(j->dirfd, JOURNAL_STATE, O_RDWR | O_CLOEXEC)) < 0)
		return journal_state_create(j);
	return 0;
}

int
journal_open(struct journal **out, const struct journal_opts *o)
{
	struct journal *j;
	uint64_t lastseq = 0;
	size_t found_segs;
	int rv;

	*out = NULL;
	if (o->dir == NULL || o->max_bytes == 0)
		return CS_EINVAL;
	if ((j = journal_new(o)) == NULL)
		return CS_ENOMEM;
	if (fs_mkdirs(j->dir, 0750, NULL, 0) != 0 ||
	    (j->dirfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		log_warn("journal.open_failed", "dir=%s", lq(j->dir));
		rv = CS_EIO;
		goto fail;
	}
	unlinkat(j->dirfd, JOURNAL_STATE_TMP, 0);
	if ((rv = journal_state_load(j)) != 0)
		goto fail;
	j->cursor_saved = j->acked;
	if ((rv = journal_list_segs(j)) != 0)
		goto fail;
	found_segs = j->nsegs;
	if ((rv = journal_scan_all(j, &lastseq)) != 0 ||
	    (rv = journal_place_next(j, lastseq)) != 0 ||
	    (rv = journal_identity(j, found_segs)) != 0)
		goto fail;
	j->rbase = j->segs[0].base;
	j->rseq = j->acked;
	j->cursor_saved_ms = clock_mono_ms();
	journal_gc(j);
	if (pthread_create(&j->writer, NULL, journal_writer, j) != 0) {
		rv = CS_ENOMEM;
		goto fail;
	}
	j->writer_started = 1;
	log_info("journal.opened", "dir=%s id=%016" PRIx64 " segments=%zu bytes=%" PRIu64
	    " acked=%" PRIu64 " next_seq=%" PRIu64 " backlog=%" PRIu64, lq(j->dir), j->id, j->nsegs,
	    j->bytes, j->acked, j->next_seq, j->committed > j->acked ? j->committed - j->acked : 0);
	*out = j;
	return 0;
fail:
	journal_close(j);
	return rv;
}

/* ---- writer ---- */

/*
 * Writer thread: start a new segment at base (no seq below base may be written after).
 * reclaim (the disk was found full): then also save the cursor and delete what is
 * acknowledged, so the old segment's space is free before the next write needs it.
 */
static int
journal_roll(struct journal *j, uint64_t base, int reclaim)
{
	int nfd = journal_seg_create(j, base), save;

	if (nfd < 0)
		return errno == ENOSPC || errno == EDQUOT ? CS_EFULL : CS_EIO;
	pthread_mutex_lock(&j->mtx);
	if (journal_segs_add(j, base) != 0) {
		pthread_mutex_unlock(&j->mtx);
		close(nfd);
		return CS_EIO;
	}
	close(j->wfd);
	j->wfd = nfd;
	save = j->acked > j->cursor_saved;
	pthread_mutex_unlock(&j->mtx);
	if (reclaim) {
		log_info("journal.rolled_for_space", "dir=%s seg_base=%" PRIu64, lq(j->dir), base);
		if (save)
			(void)journal_sync_cursor(j);
		journal_gc(j);
	}
	return 0;
}

/* Write and sync one group, after a roll if asked; returns 0, CS_EIO or CS_EFULL. */
static int
journal_write_group(struct journal *j, struct journal_req *batch, size_t nbytes, int roll,
    int reclaim, uint64_t off)
{
	size_t o = 0;
	int fd, rv;

	if (roll) {
		if ((rv = journal_roll(j, batch->seq, reclaim)) != 0)
			return rv;
		off = 0;
	}
	fd = j->wfd;
	if (nbytes > j->wcap) {
		unsigned char *b = realloc(j->wbuf, nbytes);
		if (b == NULL)
			return CS_EIO;
		j->wbuf = b;
		j->wcap = nbytes;
	}
	for (struct journal_req *r = batch; r != NULL; r = r->next) {
		journal_rec_header(j->wbuf + o, r->seq, r->data, r->len);
		memcpy(j->wbuf + o + JOURNAL_REC_HDR, r->data, r->len);
		o += JOURNAL_REC_HDR + r->len;
	}
	if (journal_pwrite_full(fd, j->wbuf, nbytes, off) != 0) {
		int full = errno == ENOSPC || errno == EDQUOT;
		log_warn(full ? "journal.disk_full" : "journal.write_failed",
		    "dir=%s bytes=%zu", lq(j->dir), nbytes);
		/* Whatever landed is beyond the committed size: cut it, the next group overwrites. */
		(void)ftruncate(fd, (off_t)off);
		return full ? CS_EFULL : CS_EIO;
	}
	if (!j->o.nosync && fdatasync(fd) != 0) {
		log_warn("journal.fsync_failed", "dir=%s bytes=%zu", lq(j->dir), nbytes);
		(void)ftruncate(fd, (off_t)off);
		return errno == ENOSPC || errno == EDQUOT ? CS_EFULL : CS_EIO;
	}
	return 0;
}

/* Refusing for want of space and everything is acknowledged: roll now, so the space comes
 * back without waiting for the next hook to be refused first. j->mtx held. */
static void
writer_reclaim(struct journal *j)
{
	uint64_t base = j->next_seq;
	int rv;

	j->roll_wanted = 0;
	if (!j->disk_full || j->segs[j->nsegs - 1].size == 0)
		return;
	pthread_mutex_unlock(&j->mtx);
	rv = journal_roll(j, base, 1);
	pthread_mutex_lock(&j->mtx);
	if (rv == 0)
		j->disk_full = 0;	/* the next write tells whether it is enough */
}

/* A group written and synced: it is committed, and readers are woken. j->mtx held. */
static void
writer_committed(struct journal *j, const struct journal_req *last, size_t nbytes, size_t n)
{
	struct journal_seg *act = &j->segs[j->nsegs - 1];

	act->size += nbytes;
	act->last = last->seq;
	j->bytes += nbytes;
	j->committed = last->seq;
	j->st.records += n;
	if (!j->o.nosync)
		j->st.fsyncs++;
	if (j->disk_full || j->refusing != JOURNAL_ACCEPTING)
		log_info("journal.accepting", "dir=%s refused=%" PRIu64 " refusing_s=%" PRId64,
		    lq(j->dir), j->st.full, (clock_mono_ms() - j->refusing_since_ms) / 1000);
	j->disk_full = 0;
	j->refusing = JOURNAL_ACCEPTING;
	pthread_cond_broadcast(&j->rcv);
}

/* A group not written: its seqs are taken back, and the journal refuses until a write
 * succeeds. j->mtx held. */
static void
writer_failed(struct journal *j, struct journal_req *batch, uint64_t first, size_t n, int rv)
{
	j->next_seq = first;
	for (struct journal_req *r = batch; r != NULL; r = r->next)
		r->seq = 0;
	if (rv == CS_EFULL) {
		j->st.full += n;
		j->disk_full = 1;
	}
	if (j->refusing == JOURNAL_ACCEPTING)
		j->refusing_since_ms = clock_mono_ms();
	j->refusing = rv == CS_EFULL ? JOURNAL_REFUSING_DISK : JOURNAL_REFUSING_IO;
}

/*
 * Write what is queued as one group. Seqs are given here, by the only thread that gives
 * them, so a write that fails takes its seqs back: committed seqs have no gaps, and the
 * backlog is exact. j->mtx held on entry and return; the callbacks run without it.
 */
static void
writer_group(struct journal *j)
{
	struct journal_req *batch = j->qhead, *r, *last = NULL;
	size_t nbytes = 0, n = 0;
	uint64_t first = j->next_seq, off;
	int roll, reclaim, rv;

	j->qhead = NULL;
	j->qtail = &j->qhead;
	for (r = batch; r != NULL; r = r->next) {
		r->seq = j->next_seq++;
		nbytes += JOURNAL_REC_HDR + r->len;
		n++;
		last = r;
	}
	struct journal_seg *act = &j->segs[j->nsegs - 1];
	off = act->size;
	/* After a write found the disk full, a non-empty segment is closed: it can then be
	 * deleted once acknowledged (the active one never is), which frees its space. */
	roll = act->size > 0 && (act->size + nbytes > j->o.segment_bytes || j->disk_full);
	reclaim = roll && j->disk_full;
	pthread_mutex_unlock(&j->mtx);

	rv = journal_write_group(j, batch, nbytes, roll, reclaim, off);

	pthread_mutex_lock(&j->mtx);
	j->queued_bytes -= nbytes;
	if (rv == 0)
		writer_committed(j, last, nbytes, n);
	else
		writer_failed(j, batch, first, n, rv);
	pthread_mutex_unlock(&j->mtx);
	for (r = batch; r != NULL;) {
		struct journal_req *next = r->next;
		r->done(r->arg, r->seq, rv);
		free(r);
		r = next;
	}
	pthread_mutex_lock(&j->mtx);
}

static void *
journal_writer(void *arg)
{
	struct journal *j = arg;

	pthread_mutex_lock(&j->mtx);
	for (;;) {
		while (j->qhead == NULL && !j->closing && !j->roll_wanted)
			pthread_cond_wait(&j->wcv, &j->mtx);
		if (j->qhead == NULL && j->closing)
			break;
		if (j->qhead == NULL)
			writer_reclaim(j);
		else
			writer_group(j);
	}
	pthread_mutex_unlock(&j->mtx);
	return NULL;
}

/* ---- append ---- */

int
journal_append(struct journal *j, const void *payload, size_t len, journal_done_fn done,
    void *arg)
{
	struct journal_req *r;
	uint64_t reclen = JOURNAL_REC_HDR + (uint64_t)len;
	int64_t now;

	if (len > JOURNAL_REC_MAX)
		return CS_ETOOBIG;
	if ((r = malloc(sizeof(*r) + len)) == NULL)
		return CS_ENOMEM;
	memcpy(r->data, payload, len);
	r->len = len;
	r->done = done;
	r->arg = arg;
	r->next = NULL;

	pthread_mutex_lock(&j->mtx);
	if (j->closing) {
		pthread_mutex_unlock(&j->mtx);
		free(r);
		return CS_ECLOSED;
	}
	if (j->bytes + j->queued_bytes + reclen > j->o.max_bytes) {
		j->st.full++;
		now = clock_mono_ms();
		if (j->refusing == JOURNAL_ACCEPTING)
			j->refusing_since_ms = now;
		j->refusing = JOURNAL_REFUSING_CAP;
		if (j->full_logged_ms == 0 || now - j->full_logged_ms >= JOURNAL_FULL_LOG_MS) {
			/* Loud on purpose: hooks are being refused (amoCRM will retry them). */
			log_warnx("journal.full", "dir=%s bytes=%" PRIu64 " cap=%" PRIu64
			    " backlog=%" PRIu64 " refused=%" PRIu64 " action=answering_503",
			    lq(j->dir), j->bytes, j->o.max_bytes, j->committed - j->acked, j->st.full);
			j->full_logged_ms = now;
		}
		pthread_mutex_unlock(&j->mtx);
		free(r);
		return CS_EFULL;
	}
	if (j->full_logged_ms != 0) {
		log_info("journal.not_full", "dir=%s bytes=%" PRIu64 " refused=%" PRIu64,
		    lq(j->dir), j->bytes, j->st.full);
		j->full_logged_ms = 0;
	}
	if (j->refusing == JOURNAL_REFUSING_CAP)
		j->refusing = JOURNAL_ACCEPTING;	/* under the cap again */
	r->seq = 0;	/* given by the writer */
	*j->qtail = r;
	j->qtail = &r->next;
	j->queued_bytes += reclen;
	pthread_cond_signal(&j->wcv);
	pthread_mutex_unlock(&j->mtx);
	return 0;
}

struct journal_waiter {
	struct journal	*j;
	int		 done;
	int		 err;
	uint64_t	 seq;
};

static void
journal_waiter_done(void *arg, uint64_t seq, int err)
{
	struct journal_waiter *w = arg;

	pthread_mutex_lock(&w->j->mtx);
	w->done = 1;
	w->err = err;
	w->seq = seq;
	pthread_cond_broadcast(&w->j->scv);
	pthread_mutex_unlock(&w->j->mtx);
}

int
journal_append_wait(struct journal *j, const void *payload, size_t len, uint64_t *seq)
{
	struct journal_waiter w = { j, 0, 0, 0 };
	int rv;

	if ((rv = journal_append(j, payload, len, journal_waiter_done, &w)) != 0)
		return rv;
	pthread_mutex_lock(&j->mtx);
	while (!w.done)
		pthread_cond_wait(&j->scv, &j->mtx);
	pthread_mutex_unlock(&j->mtx);
	if (seq != NULL)
		*seq = w.seq;
	return w.err;
}

/* ---- reader ---- */

/* The segment the reader is in (its own gone, acked and deleted: the next one). j->mtx held. */
static size_t
reader_segment(struct journal *j)
{
	size_t i;

	for (i = 0; i < j->nsegs && j->segs[i].base < j->rbase; i++)
		;
	if (i == j->nsegs || j->segs[i].base != j->rbase) {
		if (i == j->nsegs)
			i = j->nsegs - 1;
		j->rbase = j->segs[i].base;
		j->rpos = 0;
	}
	return i;
}

/*
 * At the end of segment i: move to the next one (0), or wait for the writer until the
 * deadline (0 when woken, CS_ETIMEDOUT). j->mtx held.
 */
static int
reader_at_end(struct journal *j, size_t i, int timeout_ms, const struct timespec *deadline)
{
	if (i + 1 < j->nsegs) {
		j->rbase = j->segs[i + 1].base;
		j->rpos = 0;
		if (j->rfd >= 0) {
			/* done with it: an open descriptor would keep a deleted segment's space allocated */
			close(j->rfd);
			j->rfd = -1;
		}
		return 0;
	}
	if (timeout_ms == 0)
		return CS_ETIMEDOUT;
	if (timeout_ms < 0)
		pthread_cond_wait(&j->rcv, &j->mtx);
	else if (pthread_cond_timedwait(&j->rcv, &j->mtx, deadline) == ETIMEDOUT)
		return CS_ETIMEDOUT;
	return 0;
}

/* The reader's descriptor on its segment; -1 when it cannot be opened (skipped). */
static int
reader_open(struct journal *j, uint64_t end)
{
	char name[JOURNAL_SEG_NAMELEN + 8];

	if (j->rfd >= 0 && j->rfd_base == j->rbase)
		return 0;
	if (j->rfd >= 0)
		close(j->rfd);
	journal_seg_name(name, sizeof(name), j->rbase);
	j->rfd_base = j->rbase;
	if ((j->rfd = openat(j->dirfd, name, O_RDONLY | O_CLOEXEC)) < 0) {
		log_warn("journal.read_open_failed", "seg=%s", name);
		j->rpos = end;	/* skip it rather than spin */
		return -1;
	}
	return 0;
}

/*
 * The record at the reader's position, read without the lock (committed bytes never
 * change). 1 with the entry when there is a new one, 0 when the position moved past one
 * already delivered or past corrupt bytes. j->mtx held on entry and return.
 */
static int
reader_take(struct journal *j, uint64_t end, uint64_t *seq, void **payload, size_t *len)
{
	char name[JOURNAL_SEG_NAMELEN + 8];
	int fd = j->rfd;
	uint64_t pos = j->rpos, rseq = j->rseq, s, found;
	size_t l;
	void *p;
	int ok;

	j->rbusy = 1;
	pthread_mutex_unlock(&j->mtx);
	ok = journal_rec_read(fd, pos, end, 0, &s, &p, &l) == 0;
	if (!ok && journal_resync(fd, pos, end, rseq, &found) != 0)
		found = end;
	pthread_mutex_lock(&j->mtx);
	j->rbusy = 0;
	if (ok) {
		j->rpos = pos + JOURNAL_REC_HDR + l;
		if (s <= j->rseq) {
			free(p);	/* at or before the cursor: already delivered */
			return 0;
		}
		j->rseq = s;
		*seq = s;
		*payload = p;
		*len = l;
		return 1;
	}
	journal_seg_name(name, sizeof(name), j->rbase);
	log_warnx("journal.corrupt", "seg=%s from=%" PRIu64 " to=%" PRIu64 " action=skipped",
	    name, pos, found);
	j->st.skipped++;
	j->rpos = found;
	return 0;
}

int
journal_read(struct journal *j, int timeout_ms, uint64_t *seq, void **payload, size_t *len)
{
	struct timespec deadline;
	int rv = 0;

	clock_gettime(CLOCK_REALTIME, &deadline);
	if (timeout_ms > 0) {
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
		if (deadline.tv_nsec >= 1000000000) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000;
		}
	}
	*payload = NULL;
	pthread_mutex_lock(&j->mtx);
	for (;;) {
		if (j->closing) {
			rv = CS_ECLOSED;
			break;
		}
		size_t i = reader_segment(j);
		uint64_t end = j->segs[i].size;
		if (j->rpos >= end) {
			if ((rv = reader_at_end(j, i, timeout_ms, &deadline)) != 0)
				break;
			continue;
		}
		if (reader_open(j, end) != 0)
			continue;
		if (reader_take(j, end, seq, payload, len)) {
			rv = 0;
			break;
		}
	}
	pthread_mutex_unlock(&j->mtx);
	return rv;
}

void
journal_rewind(struct journal *j, uint64_t seq)
{
	pthread_mutex_lock(&j->mtx);
	if (seq < j->acked)
		seq = j->acked;
	if (seq < j->rseq && j->nsegs > 0) {
		/* Records at or before rseq are skipped by journal_read: start at the oldest segment. */
		j->rseq = seq;
		j->rbase = j->segs[0].base;
		j->rpos = 0;
	}
	pthread_mutex_unlock(&j->mtx);
}

int
journal_ack(struct journal *j, uint64_t seq)
{
	int save, rv = 0;

	pthread_mutex_lock(&j->mtx);
	if (seq > j->acked)
		j->acked = seq;
	if (j->disk_full && j->segs[j->nsegs - 1].size > 0 && j->segs[j->nsegs - 1].last <= j->acked) {
		j->roll_wanted = 1;
		pthread_cond_signal(&j->wcv);
	}
	save = j->acked > j->cursor_saved &&
	    (clock_mono_ms() - j->cursor_saved_ms >= j->o.cursor_interval_ms ||
	    (j->nsegs > 1 && j->segs[0].last <= j->acked));
	pthread_mutex_unlock(&j->mtx);
	if (save)
		rv = journal_sync_cursor(j);
	journal_gc(j);
	return rv;
}

void
journal_get_stats(struct journal *j, struct journal_stats *st)
{
	pthread_mutex_lock(&j->mtx);
	*st = j->st;
	st->bytes = j->bytes;
	st->segments = j->nsegs;
	st->committed = j->committed;
	st->acked = j->acked;
	st->backlog = j->committed > j->acked ? j->committed - j->acked : 0;
	st->refusing = j->refusing;
	st->refusing_ms = j->refusing != JOURNAL_ACCEPTING ? clock_mono_ms() - j->refusing_since_ms : 0;
	pthread_mutex_unlock(&j->mtx);
}

void
journal_close(struct journal *j)
{
	if (j == NULL)
		return;
	if (j->writer_started) {
		pthread_mutex_lock(&j->mtx);
		j->closing = 1;
		pthread_cond_broadcast(&j->wcv);
		pthread_cond_broadcast(&j->rcv);
		pthread_mutex_unlock(&j->mtx);
		pthread_join(j->writer, NULL);
		if (j->acked > j->cursor_saved)
			(void)journal_sync_cursor(j);
		log_info("journal.closed", "dir=%s committed=%" PRIu64 " acked=%" PRIu64,
		    lq(j->dir), j->committed, j->acked);
	}
	if (j->wfd >= 0)
		close(j->wfd);
	if (j->rfd >= 0)
		close(j->rfd);
	if (j->statefd >= 0)
		close(j->statefd);
	if (j->dirfd >= 0)
		close(j->dirfd);
	pthread_cond_destroy(&j->wcv);
	pthread_cond_destroy(&j->rcv);
	pthread_cond_destroy(&j->scv);
	pthread_mutex_destroy(&j->mtx);
	pthread_mutex_destroy(&j->cursor_mtx);
	free(j->segs);
	free(j->wbuf);
	free(j->dir);
	free(j);
}
