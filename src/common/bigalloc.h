/* SPDX-License-Identifier: MIT */
/*
 * Large arrays: mapped anonymously, so the memory starts zeroed and pages are
 * only resident once touched. With huge, also marked for transparent huge
 * pages (the metadata copy and the index, filled at once and probed at random:
 * far fewer page faults and TLB misses). Sanitizer builds use the heap
 * instead, so that ASan checks every access and LSan sees leaks.
 */
#ifndef WC_BIGALLOC_H
#define WC_BIGALLOC_H

#include <stdbool.h>
#include <stddef.h>

/* Zeroed, page-aligned; NULL on failure. */
void *wc_big_alloc(size_t bytes, bool huge);
void wc_big_free(void *p, size_t bytes);
/* Give the first bytes of p back to the system; their contents become undefined. */
void wc_big_release(void *p, size_t bytes);

#endif
