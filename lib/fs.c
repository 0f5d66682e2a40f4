/* fs.c - file-system helpers (see fs.h). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "errors.h"
#include "fs.h"

int
fs_mkdirs(const char *dir, mode_t mode, char *failed, size_t cap)
{
	char path[PATH_MAX];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(path))
		return CS_EINVAL;
	memcpy(path, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		path[i] = '\0';
		if (mkdir(path, mode) != 0 && errno != EEXIST) {
			int saved = errno;
			if (failed != NULL)
				snprintf(failed, cap, "%s", path);
			errno = saved;
			return CS_EIO;
		}
		path[i] = dir[i];
	}
	return 0;
}
