/* SPDX-License-Identifier: MIT */
/*
 * Metrics of a running cache in the Prometheus text exposition format
 * (version 0.0.4): what 'wcache metrics --control', the metrics file of
 * serve/fuse and the HTTP endpoint all print. Uses only wcache.h.
 */
#ifndef WC_FRONTEND_METRICS_H
#define WC_FRONTEND_METRICS_H

#include <stddef.h>

struct wcache;

/*
 * Format every metric of wc (names wcache_*, base units, labels cache and
 * origin) into a malloc'd, NUL-terminated string in *out. Returns its
 * length or -ENOMEM.
 */
int wc_metrics_text(struct wcache *wc, char **out);

/*
 * Write text to path atomically: a temporary file PATH.tmp beside it,
 * renamed over path (mode 0644, readable by node_exporter), so a reader sees
 * the old or the new file, never half of one. Not fsync'ed: after a crash
 * the file is stale anyway. Returns 0 or -errno with a message in err.
 */
int wc_metrics_write_file(const char *path, const char *text, size_t len, char *err,
			  size_t err_len);

#endif
