/*
 * log.h - one line per event on stderr, in logfmt:
 *   ts=2026-11-24T18:00:00.123Z lvl=warn svc=store ev=batch.rejected crm=amo n=250 reason="..."
 * The first argument of every call is a stable event id ("batch.rejected"); the format
 * string carries the context fields. Values that may hold spaces go through lq().
 * Registered secrets (log_secret) are replaced by *** wherever they appear in a line.
 * Thread-safe: each line is formatted into a local buffer and written with one write(2).
 */
#ifndef CS_LOG_H
#define CS_LOG_H

#include <stdarg.h>

void	log_init(const char *svc, int verbose);
void	log_setverbose(int verbose);
int	log_getverbose(void);
/* Redact this value from every later line. Copies s; ignores empty and very short strings. */
void	log_secret(const char *s);

void	log_info(const char *ev, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void	log_debug(const char *ev, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void	log_warnx(const char *ev, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Like log_warnx, and appends errno's text as err="..." (errno is preserved). */
void	log_warn(const char *ev, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Start-up only: log at lvl=fatal and exit(1). */
void	fatalx(const char *ev, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
void	fatal(const char *ev, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/*
 * Quote a value for logfmt: "text" with \" \\ escaped and control characters written as
 * \n \t \r or \xHH, truncated to 200 bytes.
 * Returns a pointer into a small per-thread ring (8 slots): valid until 8 more calls.
 */
const char *lq(const char *s);
/* Same for a byte range that need not be NUL-terminated. */
const char *lqn(const char *s, unsigned long len);

#endif
