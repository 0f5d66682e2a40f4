/*
 * hash.h - the two non-cryptographic hashes the services use.
 *
 * hash_fnv1a: FNV-1a, byte at a time, for the small in-memory tables (in-batch key
 * dedupe, hook task coalescing, repeated-page guard). Incremental:
 *   h = hash_fnv1a(HASH_FNV1A_INIT, a, n); h = hash_fnv1a(h, b, m).
 *
 * hash_content: 64 bits over long inputs, eight bytes per step, for the store's
 * "has this row changed?" test (the content_hash column). Every step is a bijection of
 * the state for a fixed input word and of the input word for a fixed state, so two inputs
 * of the same length that differ in one 8-byte word always hash differently; other
 * differences collide with probability about 2^-64. The length is mixed in at the end.
 * Incremental in the same way as FNV-1a (the caller mixes lengths of variable parts).
 */
#ifndef CS_HASH_H
#define CS_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define HASH_FNV1A_INIT		1469598103934665603ull
#define HASH_CONTENT_INIT	0x2545f4914f6cdd1dull

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

static inline uint64_t
hash_content_step(uint64_t h, uint64_t w)
{
	h ^= w;
	h *= 0x9e3779b97f4a7c15ull;
	h ^= h >> 31;		/* invertible: an xorshift by at least half the width */
	return h;
}

/* Bijective finaliser (MurmurHash3's fmix64). */
static inline uint64_t
hash_content_final(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

static inline uint64_t
hash_content(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t w;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		memcpy(&w, s + i, 8);
		h = hash_content_step(h, w);
	}
	if (i < n) {
		w = 0;
		memcpy(&w, s + i, n - i);
		h = hash_content_step(h, w);
	}
	return hash_content_step(h, (uint64_t)n);
}

#endif
