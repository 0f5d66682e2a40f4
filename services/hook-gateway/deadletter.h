/*
 * deadletter.h - keep what the gateway could not accept or deliver, for a human to read.
 *
 * One file per item in a directory: <kind>-<UTC time>-<pid>-<n>.<ext>, holding the raw
 * bytes exactly as received (a malformed body can be replayed with curl --data-binary @file).
 * The directory is capped in bytes so a flood of junk cannot fill the disk; past the cap
 * items are counted and logged, not written. Thread-safe.
 */
#ifndef GW_DEADLETTER_H
#define GW_DEADLETTER_H

#include <stddef.h>
#include <stdint.h>

struct deadletter;

/* Create dir if needed and sum what is already there. 0, CS_EIO, CS_ENOMEM. */
int	deadletter_open(struct deadletter **out, const char *dir, uint64_t max_bytes);
void	deadletter_close(struct deadletter *d);

/*
 * Write p[0..len) as a new file. kind ("form", "delivery") starts the name, ext ends it.
 * path (may be NULL) receives the file's path. 0, CS_EFULL (cap), CS_EIO.
 */
int	deadletter_write(struct deadletter *d, const char *kind, const char *ext,
	    const void *p, size_t len, char *path, size_t pathlen);

#endif
