/* SPDX-License-Identifier: MIT */
/* Library log sink and per-thread last-error text. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static wc_log_fn log_fn;
static void *log_opaque;
static __thread char last_error[1024];

void wcache_set_logger(wc_log_fn fn, void *opaque)
{
	log_fn = fn;
	log_opaque = opaque;
}

static void default_sink(enum wc_log_level level, const char *msg)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	const char *dbg = getenv("WC_DEBUG");

	if (level >= WC_LOG_INFO && !(dbg && *dbg))
		return;
	fprintf(stderr, "wcache: %s: %s\n", names[level], msg);
}

void wc_log(enum wc_log_level level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_fn)
		log_fn(level, msg, log_opaque);
	else
		default_sink(level, msg);
}

int wc_err(int err, const char *fmt, ...)
{
	char msg[sizeof(last_error)];
	va_list ap;

	/* Format aside first: callers may pass wcache_last_error() as an argument. */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	memcpy(last_error, msg, sizeof(msg));
	return err;
}

const char *wcache_last_error(void)
{
	return last_error[0] ? last_error : "no error";
}
