/* SPDX-License-Identifier: MIT */
/*
 * "wcache serve": checks its options, builds an nbdkit command line for
 * nbdkit-wcache-plugin.so and execs nbdkit. Nothing here opens a device.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define PLUGIN_FILE "nbdkit-wcache-plugin.so"

/* -------------------------------------------------------------------- serve */

static const char serve_usage[] =
	"Usage: wcache serve ORIGIN CACHE [--socket PATH | --port N] [--control PATH]\n"
	"                    [--block-size N] [--format auto|yes|no] [--cache-io MODE]\n"
	"                    [--mode s|p] [table options]\n"
	"                    [--daemon --pidfile FILE | --run CMD] [--readonly]\n"
	"                    [--metrics-file PATH] [--metrics-listen ADDR:PORT]\n"
	"\n"
	"Serve ORIGIN through the write-back cache CACHE over NBD: runs nbdkit(1) with\n"
	"nbdkit-wcache-plugin(1). Runs in the foreground unless --daemon is given.\n"
	"Without --socket or --port nbdkit listens on TCP port 10809 on all\n"
	"interfaces; with --run and neither, on a private unix socket.\n"
	"\n"
	"Options:\n"
	"  -U, --socket PATH      listen on a unix socket\n"
	"  -p, --port N           listen on TCP port N\n"
	"  -c, --control PATH     control socket for 'wcache status|message|metrics|top\n"
	"                         --control'\n"
	"      --metrics-file PATH  write Prometheus metrics to PATH every interval,\n"
	"                         atomically (node_exporter's textfile collector)\n"
	"      --metrics-interval S  seconds between rewrites and systemd STATUS=\n"
	"                         updates (default 10)\n"
	"      --metrics-listen ADDR:PORT  serve Prometheus metrics over HTTP at\n"
	"                         /metrics (numeric address; ':PORT' is 127.0.0.1)\n"
	"  -b, --block-size N     cache block size 512..4096 (default: from CACHE;\n"
	"                         4096 when formatting)\n"
	"      --cache-io MODE    direct: O_DIRECT on a CACHE file (default);\n"
	"                         buffered: use the page cache (as safe: every commit\n"
	"                         is an fdatasync; faster re-reads, RAM used twice)\n"
	"      --format MODE      auto: format a blank CACHE (default); yes: always\n"
	"                         (destroys its contents); no: never\n"
	"  -m, --mode s|p         s: SSD mode (default); p: pmem mode, CACHE is mapped\n"
	"                         (a DAX file, /dev/daxN.M, or any file) and written\n"
	"                         with stores + cache-line flushes (libpmem2)\n"
	"  -d, --daemon           fork into the background (use with --pidfile)\n"
	"  -P, --pidfile FILE     write nbdkit's process id to FILE\n"
	"      --run CMD          run CMD ($uri, $nbd, $unixsocket set), stop after it\n"
	"  -r, --readonly         export read-only\n"
	"      --plugin FILE      plugin to load (default: next to this program or in\n"
	"                         its install tree, else nbdkit's plugin directory; or\n"
	"                         $WCACHE_NBDKIT_PLUGIN)\n"
	"  -n, --dry-run          print the nbdkit command instead of running it\n"
	"  -v, --verbose          nbdkit -v (debug messages)\n"
	"  -h, --help             show this help\n"
	CLI_TABLE_OPTS_HEADER
	"\n"
	"Under systemd (Type=notify) the server sends READY=1 once the cache is\n"
	"recovered and listening, and STATUS= lines with the dirty blocks.\n"
	"\n"
	"Exit status: that of nbdkit (0 after a clean shutdown), 1 if nbdkit cannot be\n"
	"run, 2 usage error.\n";

enum {
	OPT_FORMAT = 256,
	OPT_RUN,
	OPT_PLUGIN,
	OPT_CACHE_IO,
	OPT_METRICS_FILE,
	OPT_METRICS_INTERVAL,
	OPT_METRICS_LISTEN,
	OPT_TABLE = 0x200,	/* + index into wcache_options() */
};

/*
 * Where nbdkit-wcache-plugin.so is: --plugin, $WCACHE_NBDKIT_PLUGIN, beside
 * us (a build tree), where 'cmake --install' put it relative to us, or by
 * name in nbdkit's plugin directory.
 */
static const char *find_plugin(const char *opt, char *buf, size_t len)
{
	const char *env = getenv("WCACHE_NBDKIT_PLUGIN");
	char exe[PATH_MAX];
	const char *dir;
	ssize_t n;

	if (opt)
		return opt;
	if (env && *env)
		return env;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		dir = dirname(exe);
		snprintf(buf, len, "%s/" PLUGIN_FILE, dir);
		if (access(buf, R_OK) == 0)
			return buf;
		snprintf(buf, len, "%s/" WC_PLUGINDIR_FROM_BINDIR "/" PLUGIN_FILE, dir);
		if (access(buf, R_OK) == 0) {
			char *r = realpath(buf, NULL);	/* without the "bin/../" */

			if (r && strlen(r) < len)
				strcpy(buf, r);
			free(r);
			return buf;
		}
	}
	return "wcache";	/* nbdkit looks in its plugin directory */
}

struct argv_buf {
	char **v;
	size_t n, cap;
	bool oom;
};

static void arg_add(struct argv_buf *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void arg_add(struct argv_buf *a, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (a->oom)
		return;
	if (a->n + 2 > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 32;
		char **v = realloc(a->v, cap * sizeof(*v));

		if (!v) {
			a->oom = true;
			return;
		}
		a->v = v;
		a->cap = cap;
	}
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0) {
		a->oom = true;
		s = NULL;
	}
	va_end(ap);
	if (s) {
		a->v[a->n++] = s;
		a->v[a->n] = NULL;
	}
}

/* Shell-quote for --dry-run output. */
static void print_quoted(const char *s)
{
	if (*s && !s[strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
			    "-_=./:,+@%")]) {
		fputs(s, stdout);
		return;
	}
	putchar('\'');
	for (; *s; s++) {
		if (*s == '\'')
			fputs("'\\''", stdout);
		else
			putchar(*s);
	}
	putchar('\'');
}

int cmd_serve(const struct cli_cmd *cmd, int argc, char **argv)
{
	/* Fixed options, then two spellings of every table option. */
	static const struct option fixed[] = {
		{ "socket", required_argument, NULL, 'U' },
		{ "port", required_argument, NULL, 'p' },
		{ "control", required_argument, NULL, 'c' },
		{ "block-size", required_argument, NULL, 'b' },
		{ "block_size", required_argument, NULL, 'b' },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "cache-io", required_argument, NULL, OPT_CACHE_IO },
		{ "metrics-file", required_argument, NULL, OPT_METRICS_FILE },
		{ "metrics-interval", required_argument, NULL, OPT_METRICS_INTERVAL },
		{ "metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN },
		{ "mode", required_argument, NULL, 'm' },
		{ "daemon", no_argument, NULL, 'd' },
		{ "pidfile", required_argument, NULL, 'P' },
		{ "run", required_argument, NULL, OPT_RUN },
		{ "readonly", no_argument, NULL, 'r' },
		{ "plugin", required_argument, NULL, OPT_PLUGIN },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
	};
	const struct cli_cmd self = { cmd->name, cmd->fn, cmd->summary, serve_usage, 0 };
	struct option lo[sizeof(fixed) / sizeof(fixed[0]) + CLI_TABLE_LONGOPTS + 1];
	const struct wc_opt_desc *d, *opts;
	const char *socket_path = NULL, *port = NULL, *control = NULL, *block_size = NULL;
	const char *format = NULL, *pidfile = NULL, *run = NULL, *plugin_opt = NULL;
	const char *cache_io = NULL, *mode = NULL;
	const char *metrics_file = NULL, *metrics_interval = NULL, *metrics_listen = NULL;
	const char *topt_val[CLI_MAX_TABLE_OPTS] = { 0 };
	bool topt_set[CLI_MAX_TABLE_OPTS] = { 0 };
	bool daemon = false, readonly = false, dry_run = false, verbose = cli_verbose;
	char plugin_buf[PATH_MAX + sizeof(WC_PLUGINDIR_FROM_BINDIR) + 32];
	struct argv_buf a = { 0 };
	struct wc_cfg cfg;
	uint64_t v;
	size_t i, nlo = 0, nr_opts;
	int c, rc;

	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		lo[nlo++] = fixed[i];
	nlo += cli_table_longopts(lo + nlo, self.own_table_opts, OPT_TABLE);
	lo[nlo] = (struct option){ NULL, 0, NULL, 0 };

	opts = wcache_options(&nr_opts);
	wcache_cfg_init(&cfg);
	while ((c = cli_getopt(&self, argc, argv, ":U:p:c:b:m:dP:rnvh", lo)) != -1) {
		switch (c) {
		case 'U':
			socket_path = optarg;
			break;
		case 'p':
			if (cli_opt_u64(&self, "--port", optarg, 65535, &v))
				return CLI_EXIT_USAGE;
			port = optarg;
			break;
		case 'c':
			control = optarg;
			break;
		case 'b':
			if (cli_opt_block_size(&self, optarg, &cfg.block_size))
				return CLI_EXIT_USAGE;
			block_size = optarg;
			break;
		case OPT_FORMAT:
			if (strcmp(optarg, "auto") && strcmp(optarg, "yes") && strcmp(optarg, "no"))
				return cli_usage_error(&self, "--format: '%s' is not auto, yes or no",
						       optarg);
			format = optarg;
			break;
		case OPT_CACHE_IO:
			if (cli_opt_cache_io(&self, optarg, &cfg.cache_buffered))
				return CLI_EXIT_USAGE;
			cache_io = optarg;
			break;
		case OPT_METRICS_FILE:
			if (!*optarg)
				return cli_usage_error(&self, "--metrics-file: empty path");
			metrics_file = optarg;
			break;
		case OPT_METRICS_INTERVAL:
			if (cli_opt_u64(&self, "--metrics-interval", optarg, 86400, &v))
				return CLI_EXIT_USAGE;
			if (!v)
				return cli_usage_error(&self, "--metrics-interval: at least 1 second");
			metrics_interval = optarg;
			break;
		case OPT_METRICS_LISTEN:
			if (!strchr(optarg, ':'))
				return cli_usage_error(&self, "--metrics-listen: '%s' is not ADDR:PORT",
						       optarg);
			metrics_listen = optarg;
			break;
		case 'm':
			if (cli_opt_mode(&self, optarg, &cfg))
				return CLI_EXIT_USAGE;
			mode = optarg;
			break;
		case 'd':
			daemon = true;
			break;
		case 'P':
			pidfile = optarg;
			break;
		case OPT_RUN:
			run = optarg;
			break;
		case 'r':
			readonly = true;
			break;
		case OPT_PLUGIN:
			plugin_opt = optarg;
			break;
		case 'n':
			dry_run = true;
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			return cli_help(&self);
		default:
			/* Check values now: a usage error beats a failed nbdkit start. */
			d = cli_table_opt(c, OPT_TABLE);
			if (!d || cli_table_set(&self, &cfg, d, optarg))
				return CLI_EXIT_USAGE;
			topt_set[d - opts] = true;
			topt_val[d - opts] = optarg;
			break;
		}
	}
	if (optind + 2 != argc)
		return cli_usage_error(&self, optind + 2 > argc ? "expected ORIGIN and CACHE" :
				       "too many arguments (expected ORIGIN CACHE)");
	if (socket_path && port)
		return cli_usage_error(&self, "--socket and --port are mutually exclusive");
	if (daemon && run)
		return cli_usage_error(&self, "--daemon and --run are mutually exclusive");
	if (!*argv[optind] || !*argv[optind + 1])
		return cli_usage_error(&self, "ORIGIN and CACHE must not be empty");
	snprintf(cfg.origin_path, sizeof(cfg.origin_path), "%s", argv[optind]);
	snprintf(cfg.cache_path, sizeof(cfg.cache_path), "%s", argv[optind + 1]);
	if (wcache_cfg_validate(&cfg) < 0)
		return cli_usage_error(&self, "%s", wcache_last_error());

	arg_add(&a, "nbdkit");
	if (!daemon)
		arg_add(&a, "-f");
	if (verbose)
		arg_add(&a, "-v");
	if (readonly)
		arg_add(&a, "-r");
	if (socket_path) {
		arg_add(&a, "-U");
		arg_add(&a, "%s", socket_path);
	} else if (port) {
		arg_add(&a, "-p");
		arg_add(&a, "%s", port);
	} else if (run) {
		arg_add(&a, "-U");
		arg_add(&a, "-");
	}
	if (pidfile) {
		arg_add(&a, "-P");
		arg_add(&a, "%s", pidfile);
	}
	if (run) {
		arg_add(&a, "--run");
		arg_add(&a, "%s", run);
	}
	arg_add(&a, "%s", find_plugin(plugin_opt, plugin_buf, sizeof(plugin_buf)));
	arg_add(&a, "origin=%s", argv[optind]);
	arg_add(&a, "cache=%s", argv[optind + 1]);
	if (mode)
		arg_add(&a, "mode=%s", mode);
	if (block_size)
		arg_add(&a, "block-size=%s", block_size);
	if (format)
		arg_add(&a, "format=%s", format);
	if (cache_io)
		arg_add(&a, "cache-io=%s", cache_io);
	if (control)
		arg_add(&a, "control=%s", control);
	if (metrics_file)
		arg_add(&a, "metrics-file=%s", metrics_file);
	if (metrics_interval)
		arg_add(&a, "metrics-interval=%s", metrics_interval);
	if (metrics_listen)
		arg_add(&a, "metrics-listen=%s", metrics_listen);
	/* As listed in the help: options with a value, then flags. */
	for (int flags = 0; flags < 2; flags++) {
		for (i = 0; i < nr_opts; i++) {
			if (!topt_set[i] || opts[i].has_value == flags)
				continue;
			if (flags)
				arg_add(&a, "%s=1", cli_table_opt_name(&opts[i]));
			else
				arg_add(&a, "%s=%s", cli_table_opt_name(&opts[i]), topt_val[i]);
		}
	}
	if (a.oom) {
		cli_error(&self, "out of memory");
		rc = CLI_EXIT_FAIL;
		goto out;
	}
	if (dry_run) {
		for (i = 0; i < a.n; i++) {
			if (i)
				putchar(' ');
			print_quoted(a.v[i]);
		}
		putchar('\n');
		rc = CLI_EXIT_OK;
		goto out;
	}
	fflush(stdout);
	fflush(stderr);
	execvp(getenv("WCACHE_NBDKIT") ? getenv("WCACHE_NBDKIT") : "nbdkit", a.v);
	cli_error(&self, "cannot run nbdkit: %s%s", strerror(errno),
		  errno == ENOENT ? " (is the nbdkit package installed?)" : "");
	rc = CLI_EXIT_FAIL;
out:
	for (i = 0; i < a.n; i++)
		free(a.v[i]);
	free(a.v);
	return rc;
}
