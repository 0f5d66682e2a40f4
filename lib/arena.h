/*
 * arena.h - a chunked bump allocator for short-lived message building (one page of rows ->
 * one RecordBatch). Pointers stay valid until arena_reset()/arena_free(): blocks are never
 * moved. Allocation past `max` total bytes fails (returns NULL), so a hostile page cannot
 * eat the machine.
 */
#ifndef CS_ARENA_H
#define CS_ARENA_H

#include <stddef.h>

struct arena_block;
struct arena {
	struct arena_block	*head;
	size_t			 used;	/* bytes handed out, all blocks */
	size_t			 max;
};

void	 arena_init(struct arena *a, size_t max);
void	*arena_alloc(struct arena *a, size_t n);	/* zeroed, 16-byte aligned */
char	*arena_strndup(struct arena *a, const char *s, size_t n);
void	 arena_reset(struct arena *a);	/* free everything, keep the limit */
#define arena_free arena_reset

#endif
