/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "bigalloc.h"
#include "elist.h"

/* Hand pages back only when a list that has shrunk to empty had grown this far. */
#define ELIST_RETURN_BYTES (1u << 20)

int wc_elist_init(struct elist *l, uint64_t cap)
{
	memset(l, 0, sizeof(*l));
	l->v = wc_big_alloc((cap ? cap : 1) * sizeof(uint32_t), false);
	if (!l->v)
		return -ENOMEM;
	l->cap = cap;
	return 0;
}

void wc_elist_free(struct elist *l)
{
	wc_big_free(l->v, (l->cap ? l->cap : 1) * sizeof(uint32_t));
	l->v = NULL;
}

void wc_elist_trim(struct elist *l)
{
	if (l->n || l->touched * sizeof(uint32_t) < ELIST_RETURN_BYTES)
		return;
	wc_big_release(l->v, l->touched * sizeof(uint32_t));
	l->touched = 0;
}

void wc_elist_drop_front(struct elist *l, uint64_t k)
{
	WC_BUG_ON(k > l->n);
	memmove(l->v, l->v + k, (l->n - k) * sizeof(uint32_t));
	l->n -= k;
	wc_elist_trim(l);
}

bool wc_elist_remove(struct elist *l, uint32_t e)
{
	for (uint64_t i = 0; i < l->n; i++) {
		if (l->v[i] == e) {
			wc_elist_remove_at(l, i);
			wc_elist_trim(l);
			return true;
		}
	}
	return false;
}
