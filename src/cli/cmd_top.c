/* SPDX-License-Identifier: MIT */
/*
 * "wcache top": a live view of a running server, refreshed every interval
 * from its control socket's metrics (the Prometheus text, parsed back into
 * numbers): dirty/free blocks with a sparkline of the dirty count, read and
 * write rates, hit ratio, writeback rate and runs in flight, commits, full
 * waits, origin errors. Plain ANSI on a terminal ('q' quits); one line per
 * interval otherwise. Rates are differences of counters over the interval.
 */
#include <errno.h>
#include <inttypes.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define SPARK_MAX 256

static const char top_usage[] =
	"Usage: wcache top --control PATH [--delay S] [--iterations N]\n"
	"\n"
	"Live view of a running server (wcache serve, the nbdkit plugin or wcache\n"
	"fuse) through its control socket: dirty and free blocks with a sparkline of\n"
	"the dirty count, reads and writes per second (blocks), read hit ratio,\n"
	"writeback rate and runs in flight, commits, full-cache waits and origin\n"
	"errors. On a terminal the screen is redrawn every interval and 'q' quits;\n"
	"otherwise one line per interval is printed (for logs and scripts).\n"
	"\n"
	"Options:\n"
	"  -c, --control PATH     the server's control socket\n"
	"  -d, --delay S          seconds between updates, decimals allowed (default 1)\n"
	"  -n, --iterations N     stop after N updates (default: until 'q' or a signal)\n"
	"  -h, --help             show this help\n"
	"\n"
	"Exit status: 0 done, 1 failed (server gone), 2 usage error.\n";

/* The numbers the view shows, from one metrics reply. */
struct sample {
	double t;		/* monotonic seconds */
	double blocks, free, dirty, wb_blocks, runs_in_flight, block_size, error;
	double reads, read_hits, writes, commits, full_waits, origin_errors, wb_bytes;
	double writes_around, flushes;
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Parse the Prometheus text: "name{labels} value" lines; histograms are skipped. */
static void parse_metrics(char *text, struct sample *s)
{
	const struct {
		const char *name;
		double *dst;
	} map[] = {
		{ "wcache_blocks", &s->blocks }, { "wcache_free_blocks", &s->free },
		{ "wcache_dirty_blocks", &s->dirty }, { "wcache_writeback_blocks", &s->wb_blocks },
		{ "wcache_writeback_runs_in_flight", &s->runs_in_flight },
		{ "wcache_block_size_bytes", &s->block_size }, { "wcache_error", &s->error },
		{ "wcache_reads_total", &s->reads }, { "wcache_read_hits_total", &s->read_hits },
		{ "wcache_writes_total", &s->writes }, { "wcache_commits_total", &s->commits },
		{ "wcache_full_waits_total", &s->full_waits },
		{ "wcache_origin_errors_total", &s->origin_errors },
		{ "wcache_writeback_bytes_total", &s->wb_bytes },
		{ "wcache_writes_around_total", &s->writes_around },
		{ "wcache_flushes_total", &s->flushes },
	};
	char *save, *line;

	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		size_t n = strcspn(line, "{ ");
		const char *v;

		if (line[0] == '#')
			continue;
		v = strrchr(line, ' ');
		if (!v)
			continue;
		for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
			if (strlen(map[i].name) == n && !strncmp(line, map[i].name, n)) {
				*map[i].dst = strtod(v + 1, NULL);
				break;
			}
		}
	}
}

static int fetch(int fd, struct sample *s, char *err, size_t err_len)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int ret;

	if (!f) {
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	ret = cli_ctl_metrics(fd, f, err, err_len);
	fclose(f);
	if (!ret) {
		memset(s, 0, sizeof(*s));
		s->t = mono_s();
		parse_metrics(buf, s);
	}
	free(buf);
	return ret;
}

/* "12.3k" style rate, or "-" without a previous sample. */
static const char *rate(char *buf, size_t len, const struct sample *p, double cur, double prev,
			double dt)
{
	double r;

	if (!p || dt <= 0 || cur < prev) {	/* no base, or counters cleared */
		snprintf(buf, len, "-");
		return buf;
	}
	r = (cur - prev) / dt;
	if (r >= 1e6)
		snprintf(buf, len, "%.1fM", r / 1e6);
	else if (r >= 1e4)
		snprintf(buf, len, "%.1fk", r / 1e3);
	else
		snprintf(buf, len, "%.1f", r);
	return buf;
}

static const char *hit_ratio(char *buf, size_t len, const struct sample *p, const struct sample *s)
{
	double dr = p ? s->reads - p->reads : 0;

	if (!p || dr <= 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.1f%%", 100.0 * (s->read_hits - p->read_hits) / dr);
	return buf;
}

static const char *mib_rate(char *buf, size_t len, const struct sample *p, const struct sample *s,
			    double dt)
{
	if (!p || dt <= 0 || s->wb_bytes < p->wb_bytes)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.1f MiB/s", (s->wb_bytes - p->wb_bytes) / dt / 1048576.0);
	return buf;
}

/* The dirty count over time, scaled to the cache size (a full cache is a full bar). */
static void sparkline(char *out, size_t len, const double *hist, size_t n, double total,
		      bool utf8)
{
	static const char *const bars[] = { "\u2581", "\u2582", "\u2583", "\u2584",
					    "\u2585", "\u2586", "\u2587", "\u2588" };
	static const char ascii[] = "_.-:=+*#";
	size_t pos = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n && pos + 4 < len; i++) {
		int k = total > 0 ? (int)(hist[i] / total * 7.0 + 0.5) : 0;

		k = k < 0 ? 0 : k > 7 ? 7 : k;
		if (utf8) {
			size_t b = strlen(bars[k]);

			memcpy(out + pos, bars[k], b);
			pos += b;
		} else {
			out[pos++] = ascii[k];
		}
		out[pos] = '\0';
	}
}

static void draw(const char *control, const struct sample *s, const struct sample *p,
		 const double *hist, size_t nhist, bool utf8)
{
	char a[32], b[32], c[32], d[32], e[32], spark[SPARK_MAX * 4 + 1], ts[16];
	double dt = p ? s->t - p->t : 0;
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
	sparkline(spark, sizeof(spark), hist, nhist, s->blocks, utf8);
	/* Home, clear: the whole screen is redrawn each time. */
	printf("\033[H\033[2J");
	printf("\033[1mwcache top\033[0m  %s  %s   (q quits)\n\n", control, ts);
	printf("dirty      %10.0f / %.0f blocks (%.1f%%)   %.1f MiB\n", s->dirty, s->blocks,
	       s->blocks ? 100.0 * s->dirty / s->blocks : 0.0,
	       s->dirty * s->block_size / 1048576.0);
	printf("free       %10.0f blocks\n", s->free);
	printf("dirty over time (full height = whole cache):\n  %s\n\n", spark);
	printf("reads/s    %10s   read hits %s\n", rate(a, sizeof(a), p, s->reads, p ? p->reads : 0, dt),
	       hit_ratio(b, sizeof(b), p, s));
	printf("writes/s   %10s   around/s %s   flushes/s %s\n",
	       rate(c, sizeof(c), p, s->writes, p ? p->writes : 0, dt),
	       rate(d, sizeof(d), p, s->writes_around, p ? p->writes_around : 0, dt),
	       rate(e, sizeof(e), p, s->flushes, p ? p->flushes : 0, dt));
	printf("writeback  %10s   in flight: %.0f blocks, %.0f runs\n",
	       mib_rate(a, sizeof(a), p, s, dt), s->wb_blocks, s->runs_in_flight);
	printf("commits/s  %10s   full-cache waits %.0f\n",
	       rate(b, sizeof(b), p, s->commits, p ? p->commits : 0, dt), s->full_waits);
	printf("origin errors %7.0f   state %s\n", s->origin_errors,
	       s->error ? "\033[1;31mERROR\033[0m (see the server's log)" : "ok");
	fflush(stdout);
}

static void line(const struct sample *s, const struct sample *p, uint64_t row)
{
	char a[32], b[32], c[32], d[32], e[32], ts[16];
	double dt = p ? s->t - p->t : 0;
	time_t now = time(NULL);
	struct tm tm;

	if (row % 20 == 0)
		printf("%-8s %10s %10s %7s %9s %9s %7s %9s %12s %6s %6s %s\n", "time", "dirty", "free",
		       "dirty%", "reads/s", "writes/s", "hit%", "commits/s", "writeback", "wbruns",
		       "origerr", "state");
	localtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
	printf("%-8s %10.0f %10.0f %7.1f %9s %9s %7s %9s %12s %6.0f %6.0f %s\n", ts, s->dirty,
	       s->free, s->blocks ? 100.0 * s->dirty / s->blocks : 0.0,
	       rate(a, sizeof(a), p, s->reads, p ? p->reads : 0, dt),
	       rate(b, sizeof(b), p, s->writes, p ? p->writes : 0, dt), hit_ratio(c, sizeof(c), p, s),
	       rate(d, sizeof(d), p, s->commits, p ? p->commits : 0, dt),
	       mib_rate(e, sizeof(e), p, s, dt), s->runs_in_flight, s->origin_errors,
	       s->error ? "ERROR" : "ok");
	fflush(stdout);
}

/* Wait up to delay seconds; on a terminal, return true early when 'q' is typed. */
static bool wait_or_quit(double delay, bool tty)
{
	double until = mono_s() + delay;

	while (!stop_flag) {
		double left = until - mono_s();
		struct pollfd pf = { .fd = STDIN_FILENO, .events = POLLIN };
		char ch;

		if (left <= 0)
			return false;
		if (!tty) {
			struct timespec ts = { (time_t)left, (long)((left - (double)(time_t)left) * 1e9) };

			nanosleep(&ts, NULL);
			continue;
		}
		if (poll(&pf, 1, (int)(left * 1000) + 1) > 0 && read(STDIN_FILENO, &ch, 1) == 1 &&
		    (ch == 'q' || ch == 'Q'))
			return true;
	}
	return true;
}

int cmd_top(const struct cli_cmd *cmd, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "control", required_argument, NULL, 'c' },
		{ "delay", required_argument, NULL, 'd' },
		{ "iterations", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct cli_cmd self = { cmd->name, cmd->fn, cmd->summary, top_usage, 0 };
	const char *control = NULL;
	double delay = 1.0, hist[SPARK_MAX];
	uint64_t iterations = 0, row;
	struct sample cur, prev;
	bool have_prev = false, tty, utf8;
	struct termios saved, raw;
	struct sigaction sa = { .sa_handler = on_signal };
	size_t nhist = 0, width;
	char err[512], *end;
	int c, fd, rc = CLI_EXIT_FAIL;

	while ((c = cli_getopt(&self, argc, argv, ":c:d:n:h", lo)) != -1) {
		switch (c) {
		case 'c':
			control = optarg;
			break;
		case 'd':
			errno = 0;
			delay = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(delay >= 0.1 && delay <= 3600))
				return cli_usage_error(&self, "--delay: '%s' is not a number of seconds "
						       "from 0.1 to 3600", optarg);
			break;
		case 'n':
			if (cli_opt_u64(&self, "--iterations", optarg, UINT32_MAX, &iterations))
				return CLI_EXIT_USAGE;
			if (!iterations)
				return cli_usage_error(&self, "--iterations: at least 1");
			break;
		case 'h':
			return cli_help(&self);
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (!control)
		return cli_usage_error(&self, "--control PATH is required");
	if (optind != argc)
		return cli_usage_error(&self, "unexpected argument '%s'", argv[optind]);
	fd = cli_ctl_connect(control, err, sizeof(err));
	if (fd < 0) {
		cli_error(&self, "%s", err);
		return CLI_EXIT_FAIL;
	}
	tty = isatty(STDOUT_FILENO) && isatty(STDIN_FILENO);
	setlocale(LC_CTYPE, "");
	utf8 = !strcmp(nl_langinfo(CODESET), "UTF-8");
	width = 60;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if (tty) {
		/* Keys without Enter and without echo; restored on every way out. */
		tcgetattr(STDIN_FILENO, &saved);
		raw = saved;
		raw.c_lflag &= (tcflag_t)~(ICANON | ECHO);
		raw.c_cc[VMIN] = 0;
		raw.c_cc[VTIME] = 0;
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
		printf("\033[?1049h\033[?25l");	/* alternate screen, hide cursor */
	}
	for (row = 0; !stop_flag && (!iterations || row < iterations); row++) {
		if (row && wait_or_quit(delay, tty))
			break;
		if (fetch(fd, &cur, err, sizeof(err)) < 0)
			goto out;
		if (nhist == width) {
			memmove(hist, hist + 1, sizeof(hist[0]) * (width - 1));
			nhist--;
		}
		hist[nhist++] = cur.dirty;
		if (tty)
			draw(control, &cur, have_prev ? &prev : NULL, hist, nhist, utf8);
		else
			line(&cur, have_prev ? &prev : NULL, row);
		if (ferror(stdout))
			goto out;
		prev = cur;
		have_prev = true;
	}
	rc = CLI_EXIT_OK;
out:
	if (tty) {
		printf("\033[?25h\033[?1049l");
		fflush(stdout);
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	}
	if (rc != CLI_EXIT_OK)
		cli_error(&self, "%s", err);
	close(fd);
	return rc;
}
