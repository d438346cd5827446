/* SPDX-License-Identifier: MIT */
/*
 * The tests' one pseudo-random generator: splitmix64, seedable and the same
 * stream on every host (the kernel test and the crash tests replay runs from a
 * printed seed). Not for production code: src/dev/fault.c keeps its own.
 */
#ifndef WC_TEST_RNG_H
#define WC_TEST_RNG_H

#include <stddef.h>
#include <stdint.h>

struct rng {
	uint64_t s;		/* the whole state: { seed } starts a stream */
};

uint64_t rng_next(struct rng *r);
/* Uniform in [lo, hi] (inclusive); lo when hi <= lo. */
uint64_t rng_range(struct rng *r, uint64_t lo, uint64_t hi);
/* rng_next() % n; 0 when n == 0. */
uint64_t rng_below(struct rng *r, uint64_t n);
/* len bytes: successive rng_next() values in host byte order, the last one cut short. */
void rng_bytes(struct rng *r, void *buf, size_t len);
/* rng_bytes() of the stream seeded with seed * 0x2545f4914f6cdd1d + 1. */
void rng_fill(uint64_t seed, void *buf, size_t len);

#endif
