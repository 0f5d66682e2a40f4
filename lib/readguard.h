/*
 * readguard.h - is this reading of an entity still believable? One rule for both sync
 * services, applied page by page while an entity is read in a run:
 *
 *   - a page sequence that repeats itself: a page with the same rows (same text) as an
 *     earlier page of the pass, or a page at least as long as any before it whose every
 *     key was already seen in the pass (keys going backwards: next links looping 1,2,1,2,
 *     a server that ignores skip or wraps around). A pass is one page sequence (one
 *     parent value, one alternative); rows seen twice across passes are normal.
 *   - more rows than the entity's size makes plausible: over `growth` times the rows of
 *     its last complete full read plus READGUARD_SLACK_ROWS (only once such a read exists).
 *
 * Either stops the entity's reading (the caller fails it: nothing is deleted). Memory:
 * 8 bytes per key kept (at most READGUARD_KEYS_MAX of them a pass) and per page.
 * Not thread-safe: one reader thread per guard.
 */
#ifndef CS_READGUARD_H
#define CS_READGUARD_H

#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "crmsync.pb-c.h"

#define READGUARD_SLACK_ROWS	10000
#define READGUARD_KEYS_MAX	(1u << 20)	/* keys remembered per pass; past it only
						   page contents are compared */

struct readguard;

/*
 * A guard for entity e. last_rows: rows of its last complete full read (< 0: unknown, no
 * bound); growth: the factor (0: no bound). CS_ENOMEM. Free with readguard_free (NULL ok).
 */
int	readguard_new(struct readguard **out, const struct cat_entity *e, int64_t last_rows,
	    int64_t growth);
void	readguard_free(struct readguard *g);
/* A new page sequence starts: forget the keys and pages of the last one. */
void	readguard_pass(struct readguard *g);
/* A page starts; then readguard_row for each record read from it (rows that could not be
 * read are not passed), then readguard_page_end. */
void	readguard_page_begin(struct readguard *g);
void	readguard_row(struct readguard *g, const Crmsync__Record *rec);
/*
 * The page ended; content: its rows' source text (NULL when it had none). 0, or CS_EPROTO
 * (a repeat) / CS_ETOOBIG (past the bound) with a sentence in why.
 */
int	readguard_page_end(struct readguard *g, const void *content, size_t len, char *why,
	    size_t cap);
/* The bound on rows (-1: none), and rows seen so far over every pass. */
int64_t	readguard_limit(const struct readguard *g);
int64_t	readguard_rows(const struct readguard *g);

#endif
