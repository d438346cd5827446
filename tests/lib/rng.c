/* SPDX-License-Identifier: MIT */
/*
 * splitmix64 (Steele, Lea, Flood 2014) and what the tests derive from it.
 * Changing any output changes every seeded test run: keep it bit-identical.
 */
#include <string.h>

#include "rng.h"

uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t rng_range(struct rng *r, uint64_t lo, uint64_t hi)
{
	if (hi <= lo)
		return lo;
	return lo + rng_next(r) % (hi - lo + 1);
}

uint64_t rng_below(struct rng *r, uint64_t n)
{
	return n ? rng_next(r) % n : 0;
}

void rng_bytes(struct rng *r, void *buf, size_t len)
{
	uint8_t *p = buf;
	size_t i = 0;

	while (i + 8 <= len) {
		uint64_t v = rng_next(r);

		memcpy(p + i, &v, 8);
		i += 8;
	}
	if (i < len) {
		uint64_t v = rng_next(r);

		memcpy(p + i, &v, len - i);
	}
}

void rng_fill(uint64_t seed, void *buf, size_t len)
{
	struct rng r = { seed * 0x2545f4914f6cdd1dull + 1 };

	rng_bytes(&r, buf, len);
}
