/* SPDX-License-Identifier: MIT */
/*
 * The bottom of the engine: small helpers every module uses on the state of
 * an open cache (the sticky error, the max_age clock, the watermarks, the
 * writeback kick). Nothing here calls another engine file, takes a lock or
 * does device I/O; callers hold whatever lock engine.h says a field needs.
 */
#include <string.h>

#include "log.h"
#include "engine.h"

void wc_set_error(struct wcache *c, int err, const char *what)
{
	int zero = 0;

	if (atomic_compare_exchange_strong(&c->error, &zero, err)) {
		wc_log(WC_LOG_ERROR, "%s failed: %s; cache is now in error state (writes fail, "
		       "reads continue; reopen to clear)", what, strerror(-err));
		pthread_cond_broadcast(&c->cond);
	}
}

uint32_t wc_now_age(const struct wcache *c)
{
	return (uint32_t)((wc_now_ns() - c->open_ns) / 1000000000ull);
}

uint64_t wc_free_high(const struct wcache *c)
{
	unsigned h = c->cleaner ? 100 : c->cfg.high_watermark;

	return (c->n_blocks * (100 - h) + 50) / 100;
}

uint64_t wc_free_low(const struct wcache *c)
{
	unsigned l = c->cleaner ? 100 : c->cfg.low_watermark;

	return (c->n_blocks * (100 - l) + 50) / 100;
}

void wc_kick_writeback(struct wcache *c)
{
	/*
	 * Writes kick on every request while the cache is under pressure:
	 * wake the sleepers of c->cond only when writeback sleeps, and once.
	 */
	if (!c->wb_sleeping)
		return;
	c->wb_sleeping = false;
	pthread_cond_broadcast(&c->cond);
}
