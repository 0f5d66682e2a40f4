/*
 * strlist.h - comma-separated lists: "leads,contacts", "students, groups".
 *
 * Config values and catalogue fields hold lists of names. One walker reads them all:
 * items are separated by commas and/or blanks, empty items are skipped, nothing is
 * copied (an item is a pointer into the list and a length).
 */
#ifndef CS_STRLIST_H
#define CS_STRLIST_H

#include <stddef.h>

/*
 * The next item of the list at *cursor: 1 with *item and *len set and *cursor moved past it,
 * 0 at the end. Start with *cursor = the list (NULL = empty list).
 */
int	strlist_next(const char **cursor, const char **item, size_t *len);
/* 1 when the list holds name[0..len) as a whole item. */
int	strlist_has(const char *list, const char *name, size_t len);
/* strlist_has for a NUL-terminated name. */
int	strlist_has_str(const char *list, const char *name);
/* Copy item i (0-based) into dst: 0, CS_ENOENT (fewer items), CS_ETOOBIG (cap too small). */
int	strlist_nth(const char *list, size_t i, char *dst, size_t cap);

#endif
