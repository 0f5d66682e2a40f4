/*
 * hash.h - FNV-1a, the one non-cryptographic hash the services use for their small
 * in-memory tables (in-batch key dedupe, hook task coalescing, repeated-page guard).
 * Incremental: h = hash_fnv1a(HASH_FNV1A_INIT, a, n); h = hash_fnv1a(h, b, m).
 */
#ifndef CS_HASH_H
#define CS_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_FNV1A_INIT	1469598103934665603ull

static inline uint64_t
hash_fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 1099511628211ull;
	}
	return h;
}

#endif
