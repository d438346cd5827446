/* SPDX-License-Identifier: MIT */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bigalloc.h"

#define HUGE_BYTES (2u << 20)
#define PAGE_BYTES 4096u

#if defined(__SANITIZE_ADDRESS__)
#define WC_HEAP_ONLY 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WC_HEAP_ONLY 1
#endif
#endif

#ifdef WC_HEAP_ONLY
void *wc_big_alloc(size_t bytes, bool huge)
{
	size_t len = ((bytes ? bytes : 1) + PAGE_BYTES - 1) & ~(size_t)(PAGE_BYTES - 1);
	void *p = aligned_alloc(PAGE_BYTES, len);

	(void)huge;
	if (p)
		memset(p, 0, len);
	return p;
}

void wc_big_free(void *p, size_t bytes)
{
	(void)bytes;
	free(p);
}

void wc_big_release(void *p, size_t bytes)
{
	(void)p;
	(void)bytes;
}
#else
void *wc_big_alloc(size_t bytes, bool huge)
{
	size_t len = bytes ? bytes : 1;
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	/* Advice only: without THP the mapping works the same, just slower to fill. */
	if (huge && len >= HUGE_BYTES)
		(void)madvise(p, len, MADV_HUGEPAGE);
	return p;
}

void wc_big_free(void *p, size_t bytes)
{
	if (p)
		munmap(p, bytes ? bytes : 1);
}

void wc_big_release(void *p, size_t bytes)
{
	/* Private anonymous memory reads back as zeros afterwards. */
	(void)madvise(p, bytes, MADV_DONTNEED);
}
#endif
