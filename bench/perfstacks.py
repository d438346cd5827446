#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Share of perf samples by call stack, from `perf script -F comm,tid,ip,sym,dso`
(a profile recorded with --call-graph dwarf, so that user-space frames of a
build without frame pointers are there: BENCH_PERF_CG="--call-graph dwarf,8192").

  perfstacks.py FILE --roles 'label=pat1|pat2;label2=pat3'
      each sample goes to the first role one of whose patterns occurs in its
      stack (substring of a frame), else to "other"
  perfstacks.py FILE --contains __lll_lock_wait [--dso nbdkit-wcache-plugin.so] [--frames 3]
      samples whose stack has a frame containing SYM, grouped by their first
      FRAMES frames in DSO (by the 4 frames after SYM when DSO is absent)
Percentages are of all samples in FILE.
"""
import argparse
import collections
import sys


def samples(path):
    with open(path, errors="replace") as f:
        block = []
        for line in f:
            line = line.strip()
            if not line:
                if block:
                    yield block
                block = []
            else:
                block.append(line)
        if block:
            yield block


def frame(line):
    # "7fff81234 sym+0x12 (dso)" -> "sym+0x12 (dso)"
    parts = line.split(None, 1)
    return parts[1] if len(parts) > 1 else parts[0]


def name(fr):
    return fr.split(" (")[0].split("+0x")[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--roles")
    ap.add_argument("--contains")
    ap.add_argument("--dso", default="nbdkit-wcache-plugin.so")
    ap.add_argument("--frames", type=int, default=3)
    a = ap.parse_args()
    total = 0
    count = collections.Counter()
    roles = []
    if a.roles:
        for r in a.roles.split(";"):
            label, pats = r.split("=", 1)
            roles.append((label, pats.split("|")))
    for s in samples(a.file):
        frames = [frame(l) for l in s[1:]]
        total += 1
        if roles:
            for label, pats in roles:
                if any(p in fr for fr in frames for p in pats):
                    count[label] += 1
                    break
            else:
                count["other"] += 1
        if a.contains:
            hit = [i for i, fr in enumerate(frames) if a.contains in fr]
            if not hit:
                continue
            own = [name(fr) for fr in frames if a.dso in fr][: a.frames]
            if own:
                key = " <- ".join(own)
            else:
                key = "(no %s frame) " % a.dso + " <- ".join(frames[hit[0] + 1 : hit[0] + 5])
            count[key] += 1
    if not total:
        sys.exit("no samples in " + a.file)
    print("%d samples" % total)
    if a.contains:
        print("%.1f%% with %s in the stack" % (100.0 * sum(count.values()) / total, a.contains))
    for k, v in count.most_common(15):
        print("%6.1f%%  %s" % (100.0 * v / total, k))


if __name__ == "__main__":
    main()
