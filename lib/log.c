/*
 * log.c - logfmt lines on stderr with secret redaction.
 *
 * A line is built in a stack buffer (bounded: 4 KiB, longer lines are cut and end in "..."),
 * secrets are masked in place, control characters are escaped (\n, \t, \r, \xHH: one event
 * is always one line, whatever a caller formatted into it), then the line goes out in one
 * write(2) so lines of different threads never interleave.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX	4096
#define LOG_SECRETS_MAX	64
#define LOG_SECRETS_PINNED 16	/* the first ones registered (config secrets) are never evicted */
#define LQ_SLOTS	8
#define LQ_MAX		200

/* Append the readable escape of control character c at dst (room for 4). Returns its length. */
static size_t
log_escape_ctl(char *dst, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";

	dst[0] = '\\';
	switch (c) {
	case '\n':	dst[1] = 'n'; return 2;
	case '\t':	dst[1] = 't'; return 2;
	case '\r':	dst[1] = 'r'; return 2;
	default:
		dst[1] = 'x';
		dst[2] = hex[c >> 4];
		dst[3] = hex[c & 0xf];
		return 4;
	}
}

static const char *log_svc = "crmsync";
static int log_verbose;
static pthread_mutex_t log_mtx = PTHREAD_MUTEX_INITIALIZER;
static char *log_secrets[LOG_SECRETS_MAX];
static int log_nsecrets;
static int log_next_evict = LOG_SECRETS_PINNED;

void
log_init(const char *svc, int verbose)
{
	log_svc = svc;
	log_verbose = verbose;
}

void
log_setverbose(int verbose)
{
	log_verbose = verbose;
}

int
log_getverbose(void)
{
	return log_verbose;
}

void
log_secret(const char *s)
{
	if (s == NULL || strlen(s) < 4)
		return;
	pthread_mutex_lock(&log_mtx);
	for (int i = 0; i < log_nsecrets; i++)
		if (strcmp(log_secrets[i], s) == 0)
			goto out;
	char *dup = strdup(s);
	if (dup == NULL)
		goto out;
	if (log_nsecrets < LOG_SECRETS_MAX) {
		log_secrets[log_nsecrets++] = dup;
	} else {
		/*
		 * Full: rotated tokens keep arriving (a new pair a day), so the oldest dynamic
		 * entry makes room. The first LOG_SECRETS_PINNED (configuration secrets) stay.
		 */
		free(log_secrets[log_next_evict]);
		log_secrets[log_next_evict] = dup;
		log_next_evict = log_next_evict + 1 >= LOG_SECRETS_MAX ? LOG_SECRETS_PINNED : log_next_evict + 1;
	}
out:
	pthread_mutex_unlock(&log_mtx);
}

/* Replace every occurrence of a registered secret with "***" (the line can only shrink). */
static void
log_redact(char *line)
{
	pthread_mutex_lock(&log_mtx);
	for (int i = 0; i < log_nsecrets; i++) {
		size_t slen = strlen(log_secrets[i]);
		char *p;
		while ((p = strstr(line, log_secrets[i])) != NULL) {
			memcpy(p, "***", 3);
			memmove(p + 3, p + slen, strlen(p + slen) + 1);
		}
	}
	pthread_mutex_unlock(&log_mtx);
}

static void
log_emit(const char *lvl, const char *ev, int with_errno, int saved_errno, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX], esc[LOG_LINE_MAX + 8];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int rv;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	rv = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ lvl=%s svc=%s ev=%s",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    ts.tv_nsec / 1000000, lvl, log_svc, ev);
	n = rv < 0 ? 0 : (size_t)rv;
	if (fmt != NULL && fmt[0] != '\0' && n < sizeof(line) - 2) {
		line[n++] = ' ';
		rv = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		if (rv > 0)
			n += (size_t)rv;
	}
	if (with_errno && n < sizeof(line)) {
		rv = snprintf(line + n, sizeof(line) - n, " err=%s", lq(strerror(saved_errno)));
		if (rv > 0)
			n += (size_t)rv;
	}
	if (n >= sizeof(line) - 1) {
		n = sizeof(line) - 5;
		memcpy(line + n, "...", 3);
		n += 3;
	}
	line[n] = '\0';
	log_redact(line);
	/* Control characters a caller formatted in raw (%s of a multi-line message) would
	 * split the event or garble a terminal: escape them, cutting the line if it grows. */
	n = 0;
	for (const char *p = line; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (n + 4 >= sizeof(esc) - 4) {
			memcpy(esc + n, "...", 3);
			n += 3;
			break;
		}
		if (c < 0x20 || c == 0x7f)
			n += log_escape_ctl(esc + n, c);
		else
			esc[n++] = (char)c;
	}
	esc[n++] = '\n';
	/* One write per line; a short write on stderr is not worth a retry loop. */
	if (write(STDERR_FILENO, esc, n) < 0)
		(void)0;
}

#define LOG_BODY(lvl, with_errno) do {				\
	int saved_errno = errno;				\
	va_list ap;						\
	va_start(ap, fmt);					\
	log_emit(lvl, ev, with_errno, saved_errno, fmt, ap);	\
	va_end(ap);						\
	errno = saved_errno;					\
} while (0)

void
log_info(const char *ev, const char *fmt, ...)
{
	LOG_BODY("info", 0);
}

void
log_debug(const char *ev, const char *fmt, ...)
{
	if (!log_verbose)
		return;
	LOG_BODY("debug", 0);
}

void
log_warnx(const char *ev, const char *fmt, ...)
{
	LOG_BODY("warn", 0);
}

void
log_warn(const char *ev, const char *fmt, ...)
{
	LOG_BODY("warn", 1);
}

void
fatalx(const char *ev, const char *fmt, ...)
{
	LOG_BODY("fatal", 0);
	exit(1);
}

void
fatal(const char *ev, const char *fmt, ...)
{
	LOG_BODY("fatal", 1);
	exit(1);
}

const char *
lqn(const char *s, unsigned long len)
{
	static _Thread_local char ring[LQ_SLOTS][LQ_MAX + 16];
	static _Thread_local unsigned slot;
	char *out = ring[slot++ % LQ_SLOTS];
	size_t o = 0;

	out[o++] = '"';
	for (unsigned long i = 0; s != NULL && i < len && o < LQ_MAX; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			o += log_escape_ctl(out + o, c);
		} else {
			out[o++] = (char)c;
		}
	}
	if (s != NULL && o >= LQ_MAX) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

const char *
lq(const char *s)
{
	return lqn(s, s == NULL ? 0 : strlen(s));
}
