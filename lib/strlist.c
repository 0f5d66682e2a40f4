/* strlist.c - comma-separated lists (see strlist.h). */
#include <string.h>

#include "errors.h"
#include "strlist.h"

#define STRLIST_SEP	", \t"

int
strlist_next(const char **cursor, const char **item, size_t *len)
{
	const char *s = *cursor;

	if (s == NULL)
		return 0;
	s += strspn(s, STRLIST_SEP);
	if (*s == '\0') {
		*cursor = s;
		return 0;
	}
	*item = s;
	*len = strcspn(s, STRLIST_SEP);
	*cursor = s + *len;
	return 1;
}

int
strlist_has(const char *list, const char *name, size_t len)
{
	const char *item;
	size_t n;

	while (strlist_next(&list, &item, &n))
		if (n == len && memcmp(item, name, len) == 0)
			return 1;
	return 0;
}

int
strlist_has_str(const char *list, const char *name)
{
	return name != NULL && strlist_has(list, name, strlen(name));
}

int
strlist_nth(const char *list, size_t i, char *dst, size_t cap)
{
	const char *item;
	size_t n;

	while (strlist_next(&list, &item, &n)) {
		if (i-- > 0)
			continue;
		if (n + 1 > cap)
			return CS_ETOOBIG;
		memcpy(dst, item, n);
		dst[n] = '\0';
		return 0;
	}
	return CS_ENOENT;
}
