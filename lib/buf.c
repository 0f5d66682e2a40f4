/* buf.c - bounded growable buffer (see buf.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "errors.h"

void
buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = b->cap = 0;
	b->max = max;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

static int
buf_grow(struct buf *b, size_t need)
{
	size_t cap;
	char *p;

	if (need > b->max)
		return CS_ETOOBIG;
	if (need + 1 <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need + 1)
		cap *= 2;
	if (cap > b->max + 1)
		cap = b->max + 1;
	if ((p = realloc(b->data, cap)) == NULL)
		return CS_ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int
buf_reserve(struct buf *b, size_t n)
{
	if (n > b->max - b->len)
		return CS_ETOOBIG;
	return buf_grow(b, b->len + n);
}

int
buf_add(struct buf *b, const void *p, size_t n)
{
	int rv;

	if (n > b->max - b->len)
		return CS_ETOOBIG;
	if ((rv = buf_grow(b, b->len + n)) != 0)
		return rv;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
buf_addstr(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

int
buf_addc(struct buf *b, char c)
{
	return buf_add(b, &c, 1);
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, rv;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return CS_EINVAL;
	if ((size_t)n > b->max - b->len)
		return CS_ETOOBIG;
	if ((rv = buf_grow(b, b->len + (size_t)n)) != 0)
		return rv;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

char *
buf_steal(struct buf *b, size_t *len)
{
	char *p = b->data;

	if (len != NULL)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

int
buf_add_copytext(struct buf *b, const char *p, size_t n)
{
	size_t start = 0;
	int rv = 0;

	for (size_t i = 0; i < n; i++) {
		char esc;
		switch (p[i]) {
		case '\\':	esc = '\\'; break;
		case '\t':	esc = 't'; break;
		case '\n':	esc = 'n'; break;
		case '\r':	esc = 'r'; break;
		case '\0':	return CS_EINVAL;
		default:	continue;
		}
		rv |= buf_add(b, p + start, i - start);
		rv |= buf_addc(b, '\\');
		rv |= buf_addc(b, esc);
		start = i + 1;
	}
	return rv | buf_add(b, p + start, n - start);
}

int
buf_add_copy_null(struct buf *b)
{
	return buf_add(b, "\\N", 2);
}
