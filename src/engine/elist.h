/* SPDX-License-Identifier: MIT */
/*
 * A list of cache entry numbers (the pending frees, the superseded copies)
 * with room for every entry of the cache reserved up front as address space
 * only: pages are touched as the list grows and handed back once it empties,
 * so pushing never fails and an idle cache pays nothing for it. Replaces
 * links through a 4-byte-per-block array. Callers hold the cache lock.
 */
#ifndef WC_ELIST_H
#define WC_ELIST_H

#include <stdbool.h>
#include <stdint.h>

#include "log.h"

struct elist {
	uint32_t *v;
	uint64_t n, cap;
	uint64_t touched;	/* high-water mark of n since the pages were last handed back */
};

/* Room for cap entries. 0 or -ENOMEM (address space). */
int wc_elist_init(struct elist *l, uint64_t cap);
void wc_elist_free(struct elist *l);

static inline void wc_elist_push(struct elist *l, uint32_t e)
{
	WC_BUG_ON(l->n >= l->cap);
	l->v[l->n++] = e;
	if (l->n > l->touched)
		l->touched = l->n;
}

/* Remove the element at i; the last one takes its place. */
static inline void wc_elist_remove_at(struct elist *l, uint64_t i)
{
	l->v[i] = l->v[--l->n];
}

/* Remove the first k elements, keeping the order of the rest. */
void wc_elist_drop_front(struct elist *l, uint64_t k);

/* Hand the pages back if the list is empty after having grown large. */
void wc_elist_trim(struct elist *l);

/* Remove e (present); false if absent. Linear. */
bool wc_elist_remove(struct elist *l, uint32_t e);

#endif
