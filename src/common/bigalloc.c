/* SPDX-License-Identifier: MIT */
#include <stdint.h>
#include <sys/mman.h>

#include "common/bigalloc.h"

#define HUGE_BYTES (2u << 20)

void *big_alloc(size_t bytes)
{
	size_t len = bytes ? bytes : 1;
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	/* Advice only: without THP the mapping works the same, just slower to fill. */
	if (len >= HUGE_BYTES)
		(void)madvise(p, len, MADV_HUGEPAGE);
	return p;
}

void big_free(void *p, size_t bytes)
{
	if (p)
		munmap(p, bytes ? bytes : 1);
}
