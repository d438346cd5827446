/* SPDX-License-Identifier: MIT */
/*
 * nbdkit plugin: serves a wcache (origin + dm-writecache cache device) over
 * NBD. Translates nbdkit callbacks to wcache.h calls and nothing else; the
 * cache semantics live in the engine. Optional control socket (control.c).
 *
 * Lifecycle. nbdkit forks after .get_ready when it daemonizes or runs --run,
 * and fork() loses the engine's background threads. So .get_ready opens the
 * cache once to check everything (devices, lock, format, recovery) and closes
 * it again, and .after_fork opens it for real in the serving process. The
 * control socket is bound in .get_ready (errors reach the user's terminal)
 * and served from .after_fork, and so is the HTTP metrics socket. After
 * the open in .after_fork systemd hears READY=1 (monitor.c). .cleanup
 * commits and closes.
 */
#define NBDKIT_API_VERSION 2
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <nbdkit-plugin.h>

#include "wcache.h"
#include "control.h"
#include "monitor.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

/* NBD block size constraints: the smallest I/O unit and the largest request. */
#define WC_NBD_MIN_BLOCK 512u
#define WC_NBD_MAX_REQUEST (32u << 20)

static struct wc_cfg cfg;
static char *table_arg;		/* table=..., exclusive with origin/cache/options */
static char *control_path;
static char *metrics_file, *metrics_listen;
static unsigned metrics_interval_ms;
static bool have_origin, have_cache, have_opts;
static enum wc_format_mode format_mode = WC_FORMAT_AUTO;
static bool cache_buffered;	/* cache-io=buffered (applies with table= too) */
/* conf= id= keyring= force_unlock=: appended to an rbd: origin (with table= too). */
static char rbd_extra[4096];

static struct wcache *wc;	/* open in the serving process only */
static struct wc_control *ctl;
static struct wc_monitor *mon;
static pid_t server_pid;	/* process that opened wc (after_fork) */

static void log_to_nbdkit(enum wc_log_level level, const char *msg, void *opaque)
{
	(void)opaque;
	switch (level) {
	case WC_LOG_ERROR:
		nbdkit_error("%s", msg);
		break;
	case WC_LOG_WARN:
		nbdkit_error("warning: %s", msg);
		break;
	default:
		nbdkit_debug("%s", msg);
		break;
	}
}

static void build_config_help(void);

static void wcache_nbd_load(void)
{
	build_config_help();
	wcache_cfg_init(&cfg);
	/* 0: take the block size from the superblock (4096 when formatting). */
	cfg.block_size = 0;
	wcache_set_logger(log_to_nbdkit, NULL);
}

static void close_cache(void)
{
	int ret;

	if (getpid() != server_pid)
		return;		/* a forked copy: the server process owns these */
	wc_monitor_stop(mon);	/* STOPPING=1 first: the commit may take a while */
	mon = NULL;
	wc_control_stop(ctl);
	ctl = NULL;
	if (wc) {
		ret = wcache_close(wc);
		wc = NULL;
		if (ret < 0)
			nbdkit_error("closing the cache: %s", wcache_last_error());
	}
}

static void wcache_nbd_cleanup(void)
{
	close_cache();
}

static void wcache_nbd_unload(void)
{
	close_cache();
	free(table_arg);
	free(control_path);
	free(metrics_file);
	free(metrics_listen);
}

/*
 * Paths become absolute: nbdkit changes directory when it daemonizes. URIs
 * and rbd:POOL/IMAGE specs stay (their conf=/keyring= paths should be absolute).
 */
static int set_path(char *dst, size_t dst_len, const char *key, const char *value)
{
	char *abs;
	int n;

	if (!*value) {
		nbdkit_error("%s: empty path", key);
		return -1;
	}
	if (strstr(value, "://") || !strncmp(value, "rbd:", 4)) {
		n = snprintf(dst, dst_len, "%s", value);
	} else {
		abs = nbdkit_absolute_path(value);
		if (!abs)
			return -1;
		n = snprintf(dst, dst_len, "%s", abs);
		free(abs);
	}
	if (n < 0 || (size_t)n >= dst_len) {
		nbdkit_error("%s: path too long (max %zu bytes)", key, dst_len - 1);
		return -1;
	}
	return 0;
}

static int replace_str(char **dst, const char *key, const char *value)
{
	if (*dst) {
		nbdkit_error("%s given more than once", key);
		return -1;
	}
	*dst = strdup(value);
	if (!*dst) {
		nbdkit_error("strdup: %m");
		return -1;
	}
	return 0;
}

/* true (with the error) if the bit of name is in *given already; else sets it. */
static bool repeated(unsigned *given, unsigned bit, const char *name)
{
	if (*given & bit) {
		nbdkit_error("%s given more than once; give it once", name);
		return true;
	}
	*given |= bit;
	return false;
}

/*
 * A table option given twice (high_watermark=50 high_watermark=60) is
 * refused like a second origin=: the kernel takes the last, which hides the
 * mistake (docs/compat.md). Spellings with '-' and any case are one key.
 */
static bool option_repeated(const char *key)
{
	static unsigned given;		/* WC_SET_* bits */
	static unsigned given_other;	/* 1: mode, 2: block_size */
	const struct wc_opt_desc *opts;
	char norm[32];
	size_t i, nr;

	for (i = 0; i < sizeof(norm) - 1 && key[i]; i++)
		norm[i] = key[i] == '-' ? '_' : key[i];
	norm[i] = '\0';
	if (!strcasecmp(norm, "mode"))
		return repeated(&given_other, 1u, key);
	if (!strcasecmp(norm, "block_size"))
		return repeated(&given_other, 2u, key);
	opts = wcache_options(&nr);
	for (i = 0; i < nr; i++) {
		if (!strcasecmp(norm, opts[i].name))
			return repeated(&given, opts[i].set_bit, opts[i].name);
	}
	return false;
}

/* One RBD parameter, kept as ":key=value" (conf and keyring made absolute). */
static int rbd_param(const char *key, const char *value)
{
	size_t used = strlen(rbd_extra);
	char *abs = NULL;
	int n;

	if (!*value) {
		nbdkit_error("%s: empty value", key);
		return -1;
	}
	if (!strcmp(key, "conf") || !strcmp(key, "keyring")) {
		abs = nbdkit_absolute_path(value);
		if (!abs)
			return -1;
		value = abs;
	}
	n = snprintf(rbd_extra + used, sizeof(rbd_extra) - used, ":%s=%s", key, value);
	free(abs);
	if (n < 0 || (size_t)n >= sizeof(rbd_extra) - used) {
		nbdkit_error("%s: too long", key);
		return -1;
	}
	return 0;
}

/* Append the RBD parameters to the origin, which must then be an rbd: image. */
static int rbd_apply(void)
{
	size_t len = strlen(cfg.origin_path);

	if (!rbd_extra[0])
		return 0;
	if (strncmp(cfg.origin_path, "rbd:", 4)) {
		nbdkit_error("conf=, id=, keyring= and force_unlock= apply to an rbd:POOL/IMAGE "
			     "origin only (origin is %s)", cfg.origin_path);
		return -1;
	}
	if (len + strlen(rbd_extra) >= sizeof(cfg.origin_path)) {
		nbdkit_error("origin: too long with the RBD parameters");
		return -1;
	}
	memcpy(cfg.origin_path + len, rbd_extra, strlen(rbd_extra) + 1);
	return 0;
}

static int wcache_nbd_config(const char *key, const char *value)
{
	if (!strcmp(key, "origin")) {
		if (have_origin) {
			nbdkit_error("origin given more than once");
			return -1;
		}
		have_origin = true;
		return set_path(cfg.origin_path, sizeof(cfg.origin_path), key, value);
	}
	if (!strcmp(key, "cache")) {
		if (have_cache) {
			nbdkit_error("cache given more than once");
			return -1;
		}
		have_cache = true;
		return set_path(cfg.cache_path, sizeof(cfg.cache_path), key, value);
	}
	if (!strcmp(key, "table"))
		return replace_str(&table_arg, key, value);
	if (!strcmp(key, "conf") || !strcmp(key, "id") || !strcmp(key, "keyring") ||
	    !strcmp(key, "force_unlock"))
		return rbd_param(key, value);
	if (!strcmp(key, "control")) {
		char *abs;
		int ret;

		if (!*value) {
			nbdkit_error("control: empty path");
			return -1;
		}
		abs = nbdkit_absolute_path(value);
		if (!abs)
			return -1;
		ret = replace_str(&control_path, key, abs);
		free(abs);
		return ret;
	}
	if (!strcmp(key, "metrics-file")) {
		char *abs;
		int ret;

		if (!*value) {
			nbdkit_error("metrics-file: empty path");
			return -1;
		}
		abs = nbdkit_absolute_path(value);
		if (!abs)
			return -1;
		ret = replace_str(&metrics_file, key, abs);
		free(abs);
		return ret;
	}
	if (!strcmp(key, "metrics-listen"))
		return replace_str(&metrics_listen, key, value);
	if (!strcmp(key, "metrics-interval")) {
		char *end;
		unsigned long s;

		errno = 0;
		s = strtoul(value, &end, 10);
		if (!*value || *end || errno || s < 1 || s > 86400) {
			nbdkit_error("metrics-interval: '%s' is not a number of seconds 1..86400",
				     value);
			return -1;
		}
		metrics_interval_ms = (unsigned)s * 1000;
		return 0;
	}
	if (!strcmp(key, "cache-io")) {
		if (!strcmp(value, "direct")) {
			cache_buffered = false;
		} else if (!strcmp(value, "buffered")) {
			cache_buffered = true;
		} else {
			nbdkit_error("cache-io: '%s' is not one of direct, buffered", value);
			return -1;
		}
		return 0;
	}
	if (!strcmp(key, "format")) {
		if (!strcmp(value, "auto")) {
			format_mode = WC_FORMAT_AUTO;
		} else if (!strcmp(value, "yes")) {
			format_mode = WC_FORMAT_YES;
		} else if (!strcmp(value, "no")) {
			format_mode = WC_FORMAT_NO;
		} else {
			nbdkit_error("format: '%s' is not one of auto, yes, no", value);
			return -1;
		}
		return 0;
	}
	/* Everything else is a dm-writecache table option (block-size included). */
	if (option_repeated(key))
		return -1;
	if (wcache_cfg_set(&cfg, key, value) < 0) {
		nbdkit_error("%s=%s: %s", key, value, wcache_last_error());
		return -1;
	}
	have_opts = true;
	return 0;
}

static int table_paths(void)
{
	char *o = strdup(cfg.origin_path), *c = strdup(cfg.cache_path);
	int ret = -1;

	if (!o || !c)
		nbdkit_error("strdup: %m");
	else if (!set_path(cfg.origin_path, sizeof(cfg.origin_path), "origin", o) &&
		 !set_path(cfg.cache_path, sizeof(cfg.cache_path), "cache", c))
		ret = 0;
	free(o);
	free(c);
	return ret;
}

static int wcache_nbd_config_complete(void)
{
	if (table_arg) {
		if (have_origin || have_cache || have_opts) {
			nbdkit_error("table= cannot be combined with origin=, cache=, block-size= "
				     "or table options; put everything in the table line");
			return -1;
		}
		if (wcache_cfg_parse_table(&cfg, table_arg) < 0) {
			nbdkit_error("table: %s", wcache_last_error());
			return -1;
		}
		/* Same path rules as origin= / cache=. */
		if (table_paths() < 0)
			return -1;
	} else if (!have_origin || !have_cache) {
		nbdkit_error("both origin=PATH and cache=PATH are required (or table=\"s ORIGIN "
			     "CACHE BLOCK_SIZE N [options]\")");
		return -1;
	}
	if (rbd_apply() < 0)
		return -1;
	cfg.format = format_mode;
	cfg.cache_buffered = cache_buffered;
	if (wcache_cfg_validate(&cfg) < 0) {
		nbdkit_error("%s", wcache_last_error());
		return -1;
	}
	return 0;
}

/*
 * --help: the fixed parameters, then one line per table option from
 * wcache_options(), written into config_help by wcache_nbd_load (nbdkit
 * prints the help after loading the plugin).
 */
#define CONFIG_HELP_FIXED \
	"origin=<PATH>        (required) origin file or block device, nbd:// URI or rbd:POOL/IMAGE\n" \
	"conf= id= keyring=   for an rbd: origin: ceph.conf, client name, keyring\n" \
	"force_unlock=1       for an rbd: origin: break a dead owner's image lock\n" \
	"cache=<PATH>         (required) dm-writecache cache device\n" \
	"mode=s|p             s: SSD mode (default); p: pmem mode (cache mapped, libpmem2)\n" \
	"block-size=<N>       cache block size 512..4096 (default: from the cache, 4096 new)\n" \
	"format=auto|yes|no   format a blank cache (auto), always (yes), never (no)\n" \
	"control=<SOCKET>     unix control socket (status, table, stats, message)\n" \
	"cache-io=direct|buffered  cache file I/O: O_DIRECT (default) or page cache\n" \
	"metrics-file=<PATH>  rewrite Prometheus metrics there every interval (atomic)\n" \
	"metrics-interval=<S> seconds between metrics file rewrites (default 10)\n" \
	"metrics-listen=<ADDR:PORT>  serve /metrics over HTTP (e.g. 127.0.0.1:9477)\n" \
	"table=<LINE>         instead of the above: \"s ORIGIN CACHE BS N [options]\"\n" \
	"dm-writecache table options ('-' or '_' in the name):"

static char config_help[4096] = CONFIG_HELP_FIXED;

static void build_config_help(void)
{
	size_t nr, i, pos = strlen(CONFIG_HELP_FIXED);
	const struct wc_opt_desc *d = wcache_options(&nr);

	for (i = 0; i < nr && pos < sizeof(config_help); i++) {
		char name[64];
		int n;

		snprintf(name, sizeof(name), "%s=<%s>", d[i].name,
			 d[i].has_value ? d[i].unit : "BOOL");
		n = snprintf(config_help + pos, sizeof(config_help) - pos, "\n%-20s %s", name,
			     d[i].help);
		if (n < 0)
			break;
		pos += (size_t)n;
	}
}

/*
 * Check-open: every error a user can make (paths, lock, block size, format,
 * corrupt metadata) is reported here, before nbdkit forks, with a non-zero
 * exit. Formatting (if asked) happens here too, so after_fork never formats.
 */
static int wcache_nbd_get_ready(void)
{
	struct wcache *probe;
	char err[512];
	int ret;

	ret = wcache_open(&cfg, &probe);
	if (ret < 0) {
		nbdkit_error("%s", wcache_last_error());
		return -1;
	}
	cfg.block_size = wcache_block_size(probe);
	ret = wcache_close(probe);
	if (ret < 0) {
		nbdkit_error("%s", wcache_last_error());
		return -1;
	}
	cfg.format = WC_FORMAT_NO;
	if (control_path && wc_control_listen(control_path, &ctl, err, sizeof(err)) < 0) {
		nbdkit_error("%s", err);
		return -1;
	}
	/* Always: it also sends systemd READY=1 when NOTIFY_SOCKET is set. */
	{
		struct wc_monitor_cfg mc = { .metrics_file = metrics_file,
					     .listen = metrics_listen,
					     .interval_ms = metrics_interval_ms };

		if (wc_monitor_prepare(&mc, &mon, err, sizeof(err)) < 0) {
			nbdkit_error("%s", err);
			return -1;
		}
	}
	return 0;
}

static int wcache_nbd_after_fork(void)
{
	char err[512];

	server_pid = getpid();
	if (wcache_open(&cfg, &wc) < 0) {
		nbdkit_error("%s", wcache_last_error());
		return -1;
	}
	if (ctl && wc_control_run(ctl, wc, err, sizeof(err)) < 0) {
		nbdkit_error("%s", err);
		return -1;
	}
	if (mon && wc_monitor_run(mon, wc, err, sizeof(err)) < 0) {
		nbdkit_error("%s", err);
		return -1;
	}
	/* Recovered, and nbdkit bound its sockets before calling us. */
	wc_monitor_ready(mon);
	nbdkit_debug("serving %s through cache %s, %" PRIu64 " bytes, block size %u",
		     cfg.origin_path, cfg.cache_path, wcache_size(wc), wcache_block_size(wc));
	return 0;
}

static void *wcache_nbd_open(int readonly)
{
	(void)readonly;
	return NBDKIT_HANDLE_NOT_NEEDED;
}

static int64_t wcache_nbd_get_size(void *handle)
{
	(void)handle;
	return (int64_t)wcache_size(wc);
}

static int wcache_nbd_block_size(void *handle, uint32_t *minimum, uint32_t *preferred,
				 uint32_t *maximum)
{
	(void)handle;
	*minimum = WC_NBD_MIN_BLOCK;
	*preferred = wcache_block_size(wc);
	*maximum = WC_NBD_MAX_REQUEST;
	return 0;
}

static int yes(void *handle)
{
	(void)handle;
	return 1;
}

static int wcache_nbd_can_fua(void *handle)
{
	(void)handle;
	return NBDKIT_FUA_NATIVE;
}

static int wcache_nbd_is_rotational(void *handle)
{
	(void)handle;
	return 0;
}

/* Map an engine result to nbdkit's convention. */
static int result(int ret, const char *op)
{
	if (ret >= 0)
		return 0;
	nbdkit_error("%s: %s", op, wcache_last_error());
	nbdkit_set_error(-ret);
	return -1;
}

static unsigned fua(uint32_t flags)
{
	return (flags & NBDKIT_FLAG_FUA) ? WC_FUA : 0;
}

static int wcache_nbd_pread(void *handle, void *buf, uint32_t count, uint64_t offset,
			    uint32_t flags)
{
	(void)handle;
	(void)flags;
	return result(wcache_read(wc, buf, count, offset), "read");
}

static int wcache_nbd_pwrite(void *handle, const void *buf, uint32_t count, uint64_t offset,
			     uint32_t flags)
{
	(void)handle;
	return result(wcache_write(wc, buf, count, offset, fua(flags)), "write");
}

/* Covers writes from every connection (one engine), hence can_multi_conn. */
static int wcache_nbd_flush(void *handle, uint32_t flags)
{
	(void)handle;
	(void)flags;
	return result(wcache_flush(wc), "flush");
}

static int wcache_nbd_trim(void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
	(void)handle;
	return result(wcache_discard(wc, count, offset, fua(flags)), "trim");
}

/*
 * NBD_CMD_WRITE_ZEROES must read back zeros; a discard reads back unspecified
 * data, so MAY_TRIM is ignored and zeros are always written.
 */
static int wcache_nbd_zero(void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
	(void)handle;
	return result(wcache_write_zeroes(wc, count, offset, fua(flags)), "zero");
}

static void wcache_nbd_dump_plugin(void)
{
	/*
	 * 32 MiB is the largest NBD request, not a block size (it was printed as
	 * wcache_block_size_max); the cache block size is one of 512..4096.
	 */
	printf("wcache_block_size_min=%u\n", WC_NBD_MIN_BLOCK);
	printf("wcache_max_request_bytes=%u\n", WC_NBD_MAX_REQUEST);
	printf("wcache_cache_block_sizes=512,1024,2048,4096\n");
}

static struct nbdkit_plugin plugin = {
	.name = "wcache",
	.longname = "wcache: crash-consistent write-back block cache (dm-writecache format)",
	.version = "0.1",
	.description = "Serve an origin image through a dm-writecache compatible write-back cache",
	.load = wcache_nbd_load,
	.unload = wcache_nbd_unload,
	.config = wcache_nbd_config,
	.config_complete = wcache_nbd_config_complete,
	.config_help = config_help,
	.magic_config_key = "origin",
	.get_ready = wcache_nbd_get_ready,
	.after_fork = wcache_nbd_after_fork,
	.cleanup = wcache_nbd_cleanup,
	.dump_plugin = wcache_nbd_dump_plugin,
	.open = wcache_nbd_open,
	.get_size = wcache_nbd_get_size,
	.block_size = wcache_nbd_block_size,
	.can_write = yes,
	.can_flush = yes,
	.can_trim = yes,
	.can_zero = yes,
	.can_multi_conn = yes,
	.can_fua = wcache_nbd_can_fua,
	.is_rotational = wcache_nbd_is_rotational,
	.pread = wcache_nbd_pread,
	.pwrite = wcache_nbd_pwrite,
	.flush = wcache_nbd_flush,
	.trim = wcache_nbd_trim,
	.zero = wcache_nbd_zero,
	.errno_is_preserved = 0,
};

struct nbdkit_plugin *plugin_init(void);
NBDKIT_REGISTER_PLUGIN(plugin)
