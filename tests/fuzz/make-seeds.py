#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Write the seed corpus of the fuzz targets (tests/fuzz/{meta,table,control}/
# seed-*); the files are committed, this records how they were made.
# Usage: tests/fuzz/make-seeds.py WCACHE_BINARY [SAMPLES_DIR]
#   WCACHE_BINARY  a built wcache (its `format` makes the small caches)
#   SAMPLES_DIR    kernel-written sample caches (folders with cache.img.zst);
#                  their 64 KiB of metadata become seeds too
# Regression inputs (crash-*, named after what they found) are never rewritten.
import os
import struct
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    path = os.path.join(here, target, "seed-" + name)
    with open(path, "wb") as f:
        f.write(data)


def meta_header(flags=0, origin_log=4, size_4k=0, window=0, ops=()):
    # struct hdr of fuzz_meta.c: flags, origin_log, le16 size, le32 window, 8 ops
    ops = list(ops) + [(5, 0, 0)] * (8 - len(ops))
    h = struct.pack("<BBHI", flags, origin_log, size_4k, window)
    for kind, sect, length in ops:
        h += struct.pack("<BHB", kind, sect, length)
    assert len(h) == 40
    return h


# A few writes of each kind: aligned, FUA, unaligned, flush, discard, zeroes.
OPS = [(0, 0, 7), (4, 16, 0), (8, 3, 0x35), (5, 0, 0), (0, 8, 15), (6, 24, 7), (7, 40, 3),
       (1, 100, 1)]


def trimmed(path, keep):
    with open(path, "rb") as f:
        data = f.read()
    end = len(data.rstrip(b"\0"))
    end = max(keep, (end + 511) // 512 * 512)
    return data[:end]


def meta_seeds(wcache, samples):
    with tempfile.TemporaryDirectory() as tmp:
        for bs, kib, start in ((512, 32, 0), (1024, 64, 0), (2048, 128, 3), (4096, 64, 0),
                               (4096, 256, 1)):
            cache = os.path.join(tmp, "c.img")
            with open(cache, "wb") as f:
                f.truncate(kib * 1024)
            subprocess.run([wcache, "format", "--block-size", str(bs), "--start-sector",
                            str(start), cache], check=True, stdout=subprocess.DEVNULL)
            img = trimmed(cache, 512)
            hdr = meta_header(flags=start | 0x20, origin_log=4, size_4k=kib // 4, ops=OPS)
            put("meta", f"format-bs{bs}-{kib}k-s{start}", hdr + img)
            # The same cache without writes, in cleaner mode and chunked metadata reads.
            hdr = meta_header(flags=start | 0x10 | 0x40 | 0x08, origin_log=4, size_4k=kib // 4)
            put("meta", f"format-bs{bs}-{kib}k-s{start}-cleaner", hdr + img)
    if not samples:
        return
    for name in sorted(os.listdir(samples)):
        zst = os.path.join(samples, name, "cache.img.zst")
        if not os.path.exists(zst):
            continue
        img = subprocess.run(["zstd", "-dc", zst], check=True, stdout=subprocess.PIPE).stdout
        # 16 MiB cache, 64 KiB metadata, 64 MiB origin (the samples' geometry).
        hdr = meta_header(flags=0x20 | 0x80, origin_log=10, size_4k=len(img) // 4096, ops=OPS)
        put("meta", f"kernel-{name}", hdr + img[:65536])


TABLES = {
    "minimal": "s /dev/vda /dev/vdb 4096 0\n",
    "kernel-line": "0 131072 writecache s /dev/vda /dev/vdb 4096 8 high_watermark 100 "
    "low_watermark 99 autocommit_time 3600000 autocommit_blocks 1000000\n",
    "all-options": "s o c 512 18 start_sector 8 high_watermark 60 low_watermark 10 "
    "writeback_jobs 0 autocommit_blocks 7 autocommit_time 3 max_age 1000 cleaner "
    "metadata_only pause_writeback 500\n",
    "key-values": "s origin cache 2048 2 cleaner metadata_only\nhigh-watermark=60\n"
    "low_watermark=10\ncleaner=0\nblock-size=1024\npause_writeback=500\nmax_age=1000\n"
    "writeback-jobs=0\nstart-sector=16\nautocommit-time=3\nmetadata-only\nCLEANER=yes\n",
    "refused": "p o c 4096 0\nfua\nblock_size=8192\nhigh_watermark=101\nnofua=1\n",
    "cache-io": "s o c 4096 0\ncache-io=buffered\ncache-io=direct\ncache-io=Buffered\n",
    "numbers": "18446744073709551615\nstart_sector=36028797018963967\n"
    "autocommit_blocks=4294967296\nmax_age=-1\n",
}

CONTROL = {
    "all": b"status\ntable\nstats\nstats --json\nhelp\n",
    "messages": b"message clear_stats\nmessage flush\nmessage flush_on_suspend\n",
    "odd": b"  status \t\r\n\nmessage\nmessage bogus\nstats --jso\nstatus x\nwhat\r\n",
    "no-newline": b"stats --json",
}


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: make-seeds.py WCACHE_BINARY [SAMPLES_DIR]")
    for t in ("meta", "table", "control"):
        os.makedirs(os.path.join(here, t), exist_ok=True)
    meta_seeds(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
    for name, text in TABLES.items():
        put("table", name, text.encode())
    for name, data in CONTROL.items():
        put("control", name, data)


main()
