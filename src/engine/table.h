/* SPDX-License-Identifier: MIT */
/*
 * Internal helpers of the dm-writecache table-argument code (table.c):
 * strict number parsing with argument-naming messages, and the
 * "dmsetup table" line built from a struct wc_cfg.
 */
#ifndef WC_TABLE_H
#define WC_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wcache.h"

/* The kernel accepts at most this many optional words after N. */
#define TABLE_MAX_OPT_ARGS	18

/* Largest start_sector whose byte offset still fits in 64 bits. */
#define TABLE_MAX_START_SECTOR	(UINT64_MAX >> 9)

/*
 * Parse s as an unsigned decimal in 0..max: digits only, no sign, no spaces,
 * no trailing junk, no overflow. arg names the argument in the error text.
 * Returns 0 or -EINVAL (message in wcache_last_error()).
 */
int wc_table_parse_u64(const char *arg, const char *s, uint64_t max, uint64_t *out);

/*
 * wcache_cfg_validate() is this with need_paths. Without it, empty paths
 * pass: the devices come from the caller (wc_open_devs).
 */
int wc_table_validate(const struct wc_cfg *cfg, bool need_paths);

/*
 * Write "s ORIGIN CACHE BS N opts..." with only the explicitly set options
 * (cfg->set_mask), in the kernel's fixed order (docs/format.md §9.1). An empty path is
 * printed as "-". Paths containing white space cannot be parsed back.
 * Returns the length (excluding the NUL) or -ERANGE if len is too small.
 */
int wc_table_format_line(const struct wc_cfg *cfg, char *buf, size_t len);

#endif
