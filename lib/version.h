/* version.h - the crmsync version string. */
#ifndef CS_VERSION_H
#define CS_VERSION_H
#define CRMSYNC_VERSION "0.1.0"
#endif
