/* SPDX-License-Identifier: MIT */
/*
 * Engine entry points for tests only: white-box tests link wcache_internal,
 * which sees this folder. Not in include/wcache.h, since a program outside
 * the tree cannot build a struct wc_dev without the device layer's headers.
 */
#ifndef WC_TESTING_H
#define WC_TESTING_H

#include <stdint.h>

#include "wcache.h"

struct wc_dev;

/*
 * wcache_open() on devices the caller built (RAM, fault-injecting, logging
 * wrappers) instead of cfg->origin_path and cfg->cache_path, which may be
 * empty (the table line then shows "-"). The cache owns both devices from
 * the call on: wcache_close() closes them, and so does a failed open.
 * Returns what wcache_open() returns; -EINVAL if a device is NULL.
 */
int wc_open_devs(const struct wc_cfg *cfg, struct wc_dev *origin, struct wc_dev *cache,
		 struct wcache **out);

/* Activation reads metadata larger than 2 chunks of this many bytes in a helper thread. */
extern uint64_t wc_meta_chunk;

#endif
