/*
 * buf.h - a growable byte buffer with a hard limit fixed at creation (curl's dynbuf idea):
 * every append past `max` fails with CS_ETOOBIG and leaves the buffer as it was.
 * The data is always NUL-terminated (the NUL is not counted in len).
 */
#ifndef CS_BUF_H
#define CS_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
	size_t	 max;
};

void	buf_init(struct buf *b, size_t max);
void	buf_free(struct buf *b);
void	buf_reset(struct buf *b);
/* Room for n more bytes (and the NUL) at once, e.g. a body of known length: CS_ETOOBIG
 * past max, CS_ENOMEM; the contents stay. */
int	buf_reserve(struct buf *b, size_t n);
int	buf_add(struct buf *b, const void *p, size_t n);
int	buf_addstr(struct buf *b, const char *s);
int	buf_addc(struct buf *b, char c);
int	buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * Append n bytes as one value in PostgreSQL's COPY text format (\\, \t, \n, \r escaped);
 * CS_EINVAL for a NUL byte, which the format cannot carry. buf_add_copy_null: the NULL marker.
 */
int	buf_add_copytext(struct buf *b, const char *p, size_t n);
int	buf_add_copy_null(struct buf *b);
/* Take the data out: the caller frees it; the buffer is left empty. */
char	*buf_steal(struct buf *b, size_t *len);

#endif
