/*
 * deadletter.c - the dead-letter directory (see deadletter.h).
 *
 * Files are written whole with O_EXCL and a unique name; they are not fsync'd (they are
 * for inspection, and their loss on a crash costs nothing that amoCRM will not resend).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "deadletter.h"
#include "errors.h"
#include "fs.h"
#include "log.h"

struct deadletter {
	char		*dir;
	uint64_t	 max_bytes;
	pthread_mutex_t	 mtx;
	uint64_t	 bytes;
	uint64_t	 seq;
	int64_t		 full_logged;
};

int
deadletter_open(struct deadletter **out, const char *dir, uint64_t max_bytes)
{
	struct deadletter *d;
	char failed[4096];
	DIR *dh;
	struct dirent *de;
	int rv;

	*out = NULL;
	if ((rv = fs_mkdirs(dir, 0750, failed, sizeof(failed))) != 0) {
		if (rv == CS_EIO)
			log_warn("deadletter.mkdir_failed", "dir=%s", lq(failed));
		return rv;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL || (d->dir = strdup(dir)) == NULL) {
		free(d);
		return CS_ENOMEM;
	}
	d->max_bytes = max_bytes;
	pthread_mutex_init(&d->mtx, NULL);
	if ((dh = opendir(dir)) != NULL) {
		while ((de = readdir(dh)) != NULL) {
			struct stat sb;
			if (de->d_name[0] == '.')
				continue;
			if (fstatat(dirfd(dh), de->d_name, &sb, 0) == 0 && S_ISREG(sb.st_mode))
				d->bytes += (uint64_t)sb.st_size;
		}
		closedir(dh);
	}
	*out = d;
	return 0;
}

void
deadletter_close(struct deadletter *d)
{
	if (d == NULL)
		return;
	pthread_mutex_destroy(&d->mtx);
	free(d->dir);
	free(d);
}

int
deadletter_write(struct deadletter *d, const char *kind, const char *ext, const void *p,
    size_t len, char *pathout, size_t pathlen)
{
	char path[4096], stamp[32];
	struct timespec ts;
	struct tm tm;
	uint64_t n;
	const unsigned char *s = p;
	size_t off = 0;
	int fd, rv = CS_EIO;

	pthread_mutex_lock(&d->mtx);
	if (d->bytes + len > d->max_bytes) {
		if (d->full_logged++ % 1000 == 0)
			log_warnx("deadletter.full", "dir=%s bytes=%" PRIu64 " cap=%" PRIu64
			    " dropped=%" PRId64, lq(d->dir), d->bytes, d->max_bytes, d->full_logged);
		pthread_mutex_unlock(&d->mtx);
		return CS_EFULL;
	}
	d->bytes += len;
	n = ++d->seq;
	pthread_mutex_unlock(&d->mtx);

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", &tm);
	snprintf(path, sizeof(path), "%s/%s-%s.%06ldZ-%ld-%06" PRIu64 ".%s", d->dir, kind, stamp,
	    ts.tv_nsec / 1000, (long)getpid(), n, ext);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640)) < 0)
		goto out;
	while (off < len) {
		ssize_t w = write(fd, s + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			break;
		off += (size_t)w;
	}
	if (close(fd) == 0 && off == len)
		rv = 0;
	else
		unlink(path);
out:
	if (rv != 0) {
		log_warn("deadletter.write_failed", "path=%s", lq(path));
		pthread_mutex_lock(&d->mtx);
		d->bytes -= len;
		pthread_mutex_unlock(&d->mtx);
	} else if (pathout != NULL) {
		snprintf(pathout, pathlen, "%s", path);
	}
	return rv;
}
