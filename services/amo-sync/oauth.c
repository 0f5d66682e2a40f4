/*
 * oauth.c - amoCRM OAuth 2.0 tokens: code exchange, refresh before expiry, persistence.
 *
 * A refresh token works exactly once, account-wide: after a refresh the old pair is dead,
 * so the new pair is written to CS_AMO_TOKEN_FILE (tmp file, fsync, rename, fsync of the
 * directory) BEFORE the new access token is used; a crash at any later moment leaves the
 * file holding a live pair. Only one process refreshes: an flock on "<file>.lock" is held
 * around read-file / exchange / write-file, and a process that waited re-reads the file
 * and adopts a pair someone else already rotated instead of spending its own dead one.
 * A long-lived token (CS_AMO_LONG_LIVED_TOKEN) is used as is and never refreshed.
 * Rejected grants (400/401 from the token endpoint) mean "revoked": the worker stops
 * calling the API, says so in the log and in health, and resumes when the token file
 * changes (`crmsync-amo-sync --auth-code CODE` wrote a new pair). Tokens never reach logs.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "errors.h"
#include "json.h"
#include "log.h"
#include "oauth.h"
#include "request.h"

#define TOKEN_MAX	4096
#define TOKEN_FILE_MAX	(64u << 10)
#define LOCK_WAIT_MS	30000

struct oauth {
	char	 access[TOKEN_MAX];
	char	 refresh[TOKEN_MAX];
	int64_t	 expires_at;		/* unix seconds; 0 = unknown */
	int64_t	 issued_at;		/* when the pair was obtained (0 = unknown) */
	int	 long_lived;
	int	 have_stat;
	struct stat st;			/* of the token file as last read or written */
};

static int64_t
now_s(void)
{
	return (int64_t)time(NULL);
}

/*
 * When to refresh ahead of expiry: CS_AMO_REFRESH_BEFORE before it, but never earlier than
 * half-way through the token's life (a short-lived token must not be refreshed on every
 * request because the window is longer than its lifetime).
 */
static int64_t
refresh_at(const struct amo *a, const struct oauth *o)
{
	int64_t before = a->conf.refresh_before_ms / 1000;

	if (o->issued_at > 0 && o->expires_at > o->issued_at && before > (o->expires_at - o->issued_at) / 2)
		before = (o->expires_at - o->issued_at) / 2;
	return o->expires_at - before;
}

static void
oauth_wipe(struct oauth *o)
{
	explicit_bzero(o->access, sizeof(o->access));
	explicit_bzero(o->refresh, sizeof(o->refresh));
}

static int
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
	    a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Append s as a JSON string. */
static int
json_put(struct buf *b, const char *s)
{
	int rv = buf_addc(b, '"');

	for (; *s != '\0' && rv == 0; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			rv = buf_printf(b, "\\%c", c);
		else if (c < 0x20)
			rv = buf_printf(b, "\\u%04x", c);
		else
			rv = buf_addc(b, (char)c);
	}
	return rv | buf_addc(b, '"');
}

/* Copy string member `key` of object obj into dst. */
static int
get_str(const struct json *j, int obj, const char *key, char *dst, size_t cap)
{
	int t = json_get(j, obj, key);

	dst[0] = '\0';
	if (json_kind(j, t) != JK_STRING)
		return CS_ENOENT;
	return json_str(j, t, dst, cap, NULL);
}

/*
 * Parse a token pair (token endpoint response or our file) into o. A response carries
 * expires_in, the file expires_at. Returns CS_EPROTO when a token is missing.
 */
static int
parse_pair(struct oauth *o, const char *body, size_t len, int need_refresh)
{
	struct json j;
	int64_t v;
	int rv;

	if ((rv = json_parse(&j, body, len, 256)) != 0)
		return CS_EPROTO;
	rv = CS_EPROTO;
	if (json_kind(&j, 0) != JK_OBJECT || get_str(&j, 0, "access_token", o->access,
	    sizeof(o->access)) != 0 || o->access[0] == '\0')
		goto out;
	if (get_str(&j, 0, "refresh_token", o->refresh, sizeof(o->refresh)) != 0 && need_refresh)
		goto out;
	o->expires_at = o->issued_at = 0;
	if (json_int64(&j, json_get(&j, 0, "expires_at"), &v) == 0) {
		o->expires_at = v;
		if (json_int64(&j, json_get(&j, 0, "issued_at"), &v) == 0)
			o->issued_at = v;
	} else if (json_int64(&j, json_get(&j, 0, "expires_in"), &v) == 0 && v > 0) {
		o->issued_at = now_s();
		o->expires_at = o->issued_at + v;
	}
	log_secret(o->access);
	log_secret(o->refresh);
	rv = 0;
out:
	json_free(&j);
	return rv;
}

/* Read the token file into o. CS_ENOENT when it does not exist. */
static int
read_file(struct amo *a, struct oauth *o)
{
	char *data = NULL;
	struct stat st;
	ssize_t n;
	int fd, rv;

	if ((fd = open(a->conf.token_file, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? CS_ENOENT : CS_EIO;
	if (fstat(fd, &st) != 0 || st.st_size > (off_t)TOKEN_FILE_MAX ||
	    (data = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return CS_EIO;
	}
	n = read(fd, data, (size_t)st.st_size);
	close(fd);
	if (n != (ssize_t)st.st_size) {
		free(data);
		return CS_EIO;
	}
	/* Parse aside so a bad file never clobbers the pair in memory. */
	struct oauth tmp;
	memset(&tmp, 0, sizeof(tmp));
	rv = parse_pair(&tmp, data, (size_t)n, 0);
	explicit_bzero(data, (size_t)n);
	free(data);
	if (rv == 0) {
		memcpy(o->access, tmp.access, sizeof(o->access));
		memcpy(o->refresh, tmp.refresh, sizeof(o->refresh));
		o->expires_at = tmp.expires_at;
		o->issued_at = tmp.issued_at;
		o->st = st;
		o->have_stat = 1;
	}
	oauth_wipe(&tmp);
	return rv;
}

/* Write the pair atomically: tmp + fsync + rename + fsync(dir). */
static int
persist(struct amo *a, const struct oauth *o)
{
	const char *path = a->conf.token_file;
	char tmp[4096], dirbuf[4096];
	struct buf b;
	int fd = -1, dfd, rv = CS_EIO;

	buf_init(&b, TOKEN_FILE_MAX);
	buf_addstr(&b, "{\"token_type\":\"Bearer\",\"access_token\":");
	json_put(&b, o->access);
	buf_addstr(&b, ",\"refresh_token\":");
	json_put(&b, o->refresh);
	if (buf_printf(&b, ",\"expires_at\":%lld,\"issued_at\":%lld}\n", (long long)o->expires_at,
	    (long long)o->issued_at) != 0)
		goto out;
	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
		log_warn("oauth.persist_failed", "file=%s step=open", lq(tmp));
		goto out;
	}
	for (size_t off = 0; off < b.len;) {
		ssize_t w = write(fd, b.data + off, b.len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			log_warn("oauth.persist_failed", "file=%s step=write", lq(tmp));
			goto out;
		}
		off += (size_t)w;
	}
	if (fsync(fd) != 0) {
		log_warn("oauth.persist_failed", "file=%s step=fsync", lq(tmp));
		goto out;
	}
	close(fd);
	fd = -1;
	if (rename(tmp, path) != 0) {
		log_warn("oauth.persist_failed", "file=%s step=rename", lq(path));
		goto out;
	}
	snprintf(dirbuf, sizeof(dirbuf), "%s", path);
	if ((dfd = open(dirname(dirbuf), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		if (fsync(dfd) != 0)
			log_warn("oauth.persist_failed", "file=%s step=fsync_dir", lq(path));
		close(dfd);
	}
	rv = 0;
out:
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	explicit_bzero(b.data, b.len);
	buf_free(&b);
	return rv;
}

/* Take the refresh lock (flock on "<file>.lock"), waiting up to LOCK_WAIT_MS. */
static int
lock_take(struct amo *a)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s.lock", a->conf.token_file);
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		log_warn("oauth.lock_failed", "file=%s", lq(path));
		return -1;
	}
	for (int waited = 0; flock(fd, LOCK_EX | LOCK_NB) != 0; waited += 50) {
		struct timespec ts = { 0, 50 * 1000000L };
		if (errno != EWOULDBLOCK || waited >= LOCK_WAIT_MS || a->stop) {
			log_warnx("oauth.lock_busy", "file=%s: another process holds the refresh lock",
			    lq(path));
			close(fd);
			return -1;
		}
		nanosleep(&ts, NULL);
	}
	return fd;
}

static void
lock_release(int fd)
{
	if (fd >= 0) {
		flock(fd, LOCK_UN);
		close(fd);
	}
}

static void
set_revoked(struct amo *a, const char *why)
{
	amo_set_api_state(a, API_REVOKED);
	amo_set_error(a, "%s", why);
	log_warnx("oauth.revoked", "reason=%s action=\"syncing stopped; re-authorise with "
	    "crmsync-amo-sync --auth-code CODE (the running service resumes when the token file "
	    "changes)\"", lq(why));
}

/*
 * POST the grant in body to the token endpoint; on success persist the new pair and only
 * then make it current. Caller holds the lock.
 */
static int
token_request(struct amo *a, const char *body, const char *what)
{
	struct oauth *o = a->oauth, next;
	struct http_response r;
	int rv;

	memset(&next, 0, sizeof(next));
	rv = request_post_json(a, "/oauth2/access_token", body, &r);
	if (rv != 0) {
		amo_count(a, AS_TOKEN_FAILURES, 1);
		log_warnx("oauth.unreachable", "grant=%s err=%s", what, lq(r.error[0] ? r.error : cs_strerror(rv)));
		http_response_free(&r);
		return rv == CS_ECANCELED ? rv : CS_ENET;
	}
	if (r.status == 200 && parse_pair(&next, r.body.data, r.body.len, 1) == 0) {
		explicit_bzero(r.body.data, r.body.len);
		http_response_free(&r);
		/* The old refresh token is dead from here on: disk first, memory second. */
		for (int i = 0; (rv = persist(a, &next)) != 0 && i < 5 && !a->stop; i++) {
			struct timespec ts = { 0, 200 * 1000000L };
			nanosleep(&ts, NULL);
		}
		if (rv != 0) {
			amo_count(a, AS_TOKEN_FAILURES, 1);
			log_warnx("oauth.persist_failed", "grant=%s: the rotated token pair could not be "
			    "saved to %s; NOT using it", what, lq(a->conf.token_file));
			set_revoked(a, "could not save the rotated token pair");
			oauth_wipe(&next);
			return CS_EIO;
		}
		memcpy(o->access, next.access, sizeof(o->access));
		memcpy(o->refresh, next.refresh, sizeof(o->refresh));
		o->expires_at = next.expires_at;
		o->issued_at = next.issued_at;
		stat(a->conf.token_file, &o->st);
		o->have_stat = 1;
		oauth_wipe(&next);
		amo_count(a, AS_TOKEN_REFRESHES, 1);
		log_info("oauth.rotated", "grant=%s expires_in=%lld file=%s", what,
		    (long long)(o->expires_at ? o->expires_at - now_s() : -1), lq(a->conf.token_file));
		return 0;
	}
	oauth_wipe(&next);
	amo_count(a, AS_TOKEN_FAILURES, 1);
	if (r.status == 403) {
		/* Not a verdict on the grant: a blocked account answers 403 (an nginx page) to
		 * every call, the token endpoint included (amocrm-api-php#563); the refresh token
		 * was not used and works again once amoCRM lifts the block. */
		amo_set_api_state(a, API_BANNED);
		amo_set_error(a, "amoCRM answers 403: account API access blocked");
		log_warnx("api.banned", "path=/oauth2/access_token grant=%s: ACCOUNT API ACCESS "
		    "BLOCKED (403 from the token endpoint). Syncing has stopped and will not retry: "
		    "ask amoCRM support to unblock, then restart or send a sync command", what);
		http_response_free(&r);
		return CS_EBANNED;
	}
	if (r.status == 400 || r.status == 401) {
		char why[256];
		snprintf(why, sizeof(why), "token endpoint refused the %s grant (HTTP %ld)", what, r.status);
		set_revoked(a, why);
		http_response_free(&r);
		return CS_EREVOKED;
	}
	log_warnx("oauth.refresh_failed", "grant=%s status=%ld", what, r.status);
	rv = r.status == 429 ? CS_ERETRY : r.status == 200 ? CS_EPROTO : CS_ENET;
	if (r.status == 429)
		rl_pause(&a->rl, r.retry_after_s > 0 ? r.retry_after_s * 1000 : 2000);
	http_response_free(&r);
	return rv;
}

static int
grant_body(struct amo *a, struct buf *b, const char *grant, const char *key, const char *value)
{
	int rv = 0;

	buf_init(b, 64u << 10);
	rv |= buf_addstr(b, "{\"client_id\":");
	rv |= json_put(b, a->conf.client_id);
	rv |= buf_addstr(b, ",\"client_secret\":");
	rv |= json_put(b, a->conf.client_secret);
	rv |= buf_addstr(b, ",\"grant_type\":");
	rv |= json_put(b, grant);
	rv |= buf_printf(b, ",\"%s\":", key);
	rv |= json_put(b, value);
	rv |= buf_addstr(b, ",\"redirect_uri\":");
	rv |= json_put(b, a->conf.redirect_uri);
	rv |= buf_addc(b, '}');
	return rv ? CS_ETOOBIG : 0;
}

/*
 * Refresh under the lock. `rejected` is the access token the API just refused (NULL when
 * refreshing ahead of expiry): if the file already holds another one, somebody rotated
 * the pair for us and it is adopted without an exchange.
 */
static int
refresh(struct amo *a, const char *rejected)
{
	struct oauth *o = a->oauth, disk;
	struct buf body;
	int fd, rv;

	if ((fd = lock_take(a)) < 0)
		return CS_ERETRY;
	memset(&disk, 0, sizeof(disk));
	if (read_file(a, &disk) == 0 && strcmp(disk.refresh, o->refresh) != 0) {
		int fresh = disk.expires_at == 0 || now_s() < refresh_at(a, &disk);
		if (rejected == NULL ? fresh : strcmp(disk.access, rejected) != 0) {
			memcpy(o->access, disk.access, sizeof(o->access));
			memcpy(o->refresh, disk.refresh, sizeof(o->refresh));
			o->expires_at = disk.expires_at;
			o->issued_at = disk.issued_at;
			o->st = disk.st;
			o->have_stat = 1;
			oauth_wipe(&disk);
			lock_release(fd);
			log_info("oauth.adopted", "file=%s: another process had rotated the pair",
			    lq(a->conf.token_file));
			return 0;
		}
		/* Someone rotated, but theirs is stale too: refresh theirs (ours is dead). */
		memcpy(o->refresh, disk.refresh, sizeof(o->refresh));
	}
	oauth_wipe(&disk);
	if (o->refresh[0] == '\0') {
		lock_release(fd);
		set_revoked(a, "no refresh token");
		return CS_EREVOKED;
	}
	if ((rv = grant_body(a, &body, "refresh_token", "refresh_token", o->refresh)) == 0)
		rv = token_request(a, body.data, "refresh_token");
	explicit_bzero(body.data, body.len);
	buf_free(&body);
	lock_release(fd);
	return rv;
}

int
oauth_open(struct amo *a)
{
	struct oauth *o;
	int rv;

	if ((o = calloc(1, sizeof(*o))) == NULL)
		return CS_ENOMEM;
	a->oauth = o;
	if (a->conf.long_lived_token[0] != '\0') {
		o->long_lived = 1;
		snprintf(o->access, sizeof(o->access), "%s", a->conf.long_lived_token);
		log_secret(o->access);
		log_info("oauth.long_lived", "using CS_AMO_LONG_LIVED_TOKEN (no refresh)");
		return 0;
	}
	rv = read_file(a, o);
	if (rv == CS_ENOENT) {
		log_warnx("oauth.no_token", "file=%s does not exist: run crmsync-amo-sync --auth-code "
		    "CODE once to authorise", lq(a->conf.token_file));
		return 0;
	}
	if (rv != 0) {
		log_warnx("oauth.bad_token_file", "file=%s err=%s", lq(a->conf.token_file),
		    lq(cs_strerror(rv)));
		return rv;
	}
	log_info("oauth.loaded", "file=%s expires_in=%lld", lq(a->conf.token_file),
	    (long long)(o->expires_at ? o->expires_at - now_s() : -1));
	return 0;
}

void
oauth_close(struct amo *a)
{
	if (a->oauth == NULL)
		return;
	oauth_wipe(a->oauth);
	free(a->oauth);
	a->oauth = NULL;
}

int
oauth_exchange_code(struct amo *a, const char *code)
{
	struct buf body;
	int fd, rv;

	if (a->oauth->long_lived) {
		log_warnx("oauth.exchange_skipped", "a long-lived token is configured");
		return CS_EINVAL;
	}
	log_secret(code);
	if ((fd = lock_take(a)) < 0)
		return CS_EBUSY;
	if ((rv = grant_body(a, &body, "authorization_code", "code", code)) == 0)
		rv = token_request(a, body.data, "authorization_code");
	explicit_bzero(body.data, body.len);
	buf_free(&body);
	lock_release(fd);
	if (rv == 0)
		amo_set_api_state(a, API_OK);
	return rv;
}

int
oauth_token(struct amo *a, char *dst, size_t cap)
{
	struct oauth *o = a->oauth;
	int rv;

	if (o->access[0] == '\0') {
		if (!o->long_lived && read_file(a, o) == 0 && o->access[0] != '\0')
			goto have;
		set_revoked(a, "no access token: the service was never authorised");
		return CS_EREVOKED;
	}
have:
	if (!o->long_lived && o->expires_at != 0 && now_s() >= refresh_at(a, o)) {
		rv = refresh(a, NULL);
		if (rv != 0 && (rv == CS_EREVOKED || rv == CS_ECANCELED || now_s() >= o->expires_at))
			return rv;
		/* A temporary failure while the old token still works: use it, retry later. */
	}
	if (strlen(o->access) + 1 > cap)
		return CS_ETOOBIG;
	memcpy(dst, o->access, strlen(o->access) + 1);
	return 0;
}

int
oauth_after_401(struct amo *a, const char *used)
{
	struct oauth *o = a->oauth;

	if (o->long_lived) {
		set_revoked(a, "the long-lived token was refused (401): expired or revoked; "
		    "create a new one and set CS_AMO_LONG_LIVED_TOKEN");
		return CS_EREVOKED;
	}
	if (strcmp(o->access, used) != 0)
		return 0;	/* already replaced since that request was made */
	log_info("oauth.refresh_on_401", "the access token was refused; refreshing once");
	return refresh(a, used);
}

int
oauth_reload(struct amo *a)
{
	struct oauth *o = a->oauth;
	struct stat st;
	int rv;

	if (o->long_lived || stat(a->conf.token_file, &st) != 0)
		return CS_ENOENT;
	if (o->have_stat && same_file(&st, &o->st))
		return CS_ENOENT;
	if ((rv = read_file(a, o)) != 0)
		return rv;
	log_info("oauth.reloaded", "file=%s changed: resuming", lq(a->conf.token_file));
	amo_set_api_state(a, API_OK);
	return 0;
}
