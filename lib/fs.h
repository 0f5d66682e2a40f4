/*
 * fs.h - small file-system helpers shared by services that keep files (journal,
 * dead letters).
 */
#ifndef CS_FS_H
#define CS_FS_H

#include <sys/types.h>

/*
 * mkdir -p: create dir and every missing parent with mode. 0 when it exists afterwards;
 * CS_EINVAL (empty or longer than PATH_MAX), CS_EIO (errno says why; failed, if not NULL,
 * gets the component that failed, for the log).
 */
int	fs_mkdirs(const char *dir, mode_t mode, char *failed, size_t cap);

#endif
