/* SPDX-License-Identifier: MIT */
/*
 * Large arrays that are filled at once (the metadata copy, the index): mapped
 * anonymously and marked for transparent huge pages, so that filling and
 * randomly probing hundreds of MiB costs far fewer page faults and TLB misses.
 * The memory starts zeroed.
 */
#ifndef WC_BIGALLOC_H
#define WC_BIGALLOC_H

#include <stddef.h>

/* NULL on failure. */
void *big_alloc(size_t bytes);
void big_free(void *p, size_t bytes);

#endif
