/* SPDX-License-Identifier: MIT */
/*
 * One formatter for library messages (wc_log) and the thread-local
 * "last error" string returned by wcache_last_error(). The library never
 * prints directly; the sink is chosen by the caller (wcache_set_logger).
 */
#ifndef WC_LOG_H
#define WC_LOG_H

#include <stdlib.h>

#include "wcache.h"

void wc_log(enum wc_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Set this thread's last error text and return err (a negative errno) for chaining. */
int wc_err(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define WC_BUG_ON(cond)                                                                  \
	do {                                                                             \
		if (__builtin_expect(!!(cond), 0)) {                                     \
			wc_log(WC_LOG_ERROR, "BUG at %s:%d: %s", __FILE__, __LINE__, #cond); \
			abort();                                                         \
		}                                                                        \
	} while (0)

#endif
