#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Per-window statistics from a fio per-I/O latency log (--write_lat_log with
# --log_avg_msec=0): for every WINDOW_MS window of completion time, MiB/s,
# IOPS, p50/p99/p99.9/max latency in microseconds. Also prints one summary
# line: steady-state MiB/s (second half of the run), the longest completion
# gap and the largest latency, both in ms.
#
# Usage: winstats.py LOG WINDOW_MS OUT.dat
import sys


def pct(sorted_vals, p):
    if not sorted_vals:
        return 0.0
    k = min(len(sorted_vals) - 1, int(p / 100.0 * len(sorted_vals)))
    return sorted_vals[k]


def main():
    log, win, dat = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rows = []  # (t_ms, lat_ns, bytes)
    with open(log) as f:
        for line in f:
            parts = [x.strip() for x in line.split(",")]
            if len(parts) < 4:
                continue
            rows.append((int(parts[0]), int(parts[1]), int(parts[3])))
    if not rows:
        sys.exit("winstats: no samples in " + log)
    rows.sort()
    end = rows[-1][0]
    windows = {}
    for t, lat, nbytes in rows:
        windows.setdefault(t // win, []).append((lat, nbytes))
    with open(dat, "w") as out:
        out.write("# t_s MiB/s IOPS p50_us p99_us p99.9_us max_us\n")
        for w in range(0, end // win + 1):
            ios = windows.get(w, [])
            lats = sorted(x[0] / 1000.0 for x in ios)
            nbytes = sum(x[1] for x in ios)
            secs = win / 1000.0
            out.write("%.2f %.2f %.0f %.1f %.1f %.1f %.1f\n" % (
                (w + 0.5) * secs, nbytes / 1048576.0 / secs, len(ios) / secs,
                pct(lats, 50), pct(lats, 99), pct(lats, 99.9), lats[-1] if lats else 0))
    half = [r for r in rows if r[0] >= end / 2]
    span = (end - end / 2) / 1000.0
    steady = sum(r[2] for r in half) / 1048576.0 / span if span > 0 else 0.0
    gap, prev = 0, 0
    for t, _, _ in rows:
        gap = max(gap, t - prev)
        prev = t
    print("steady_mibs=%.2f longest_gap_ms=%d max_lat_ms=%.1f total_s=%.1f" % (
        steady, gap, max(r[1] for r in rows) / 1e6, end / 1000.0))


if __name__ == "__main__":
    main()
