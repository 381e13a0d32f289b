#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Reads an HdrHistogram interval log (format version 1.3, V2 compressed
histograms) with nothing but the standard library, independently of the C
writer: base64, zlib, struct. Checks each line (cookies, lengths, header
fields, that Interval_Max lies in the top recorded bucket) and prints a
JSON summary: {"intervals", "total", "start_time", "max_ns", "sig_digits",
"lowest", "highest"}. Exit status 1 with a message on the first problem.

usage: hdrlog_decode.py LOG [MAX_RATIO]   (MAX_RATIO default 1e6: ns -> ms)
"""
import base64
import json
import math
import re
import struct
import sys
import zlib

COMPRESSED_COOKIE = 0x1C849314
COOKIE = 0x1C849313


def fail(msg):
    print("hdrlog_decode: " + msg, file=sys.stderr)
    sys.exit(1)


def varints(buf):
    """ZigZag LEB128, at most 9 bytes each (the 9th carries 8 bits)."""
    i = 0
    while i < len(buf):
        z = 0
        for n in range(9):
            if i >= len(buf):
                fail("truncated varint")
            b = buf[i]
            i += 1
            if n == 8:
                z |= b << 56
                break
            z |= (b & 0x7F) << (7 * n)
            if not b & 0x80:
                break
        yield (z >> 1) ^ -(z & 1)


def decode(b64):
    raw = base64.b64decode(b64, validate=True)
    cookie, clen = struct.unpack(">iI", raw[:8])
    if cookie & 0xFFFFFFFF != COMPRESSED_COOKIE:
        fail("compressed cookie %#x" % (cookie & 0xFFFFFFFF))
    if clen != len(raw) - 8:
        fail("compressed length %d, %d bytes follow" % (clen, len(raw) - 8))
    plain = zlib.decompress(raw[8:])
    (cookie, plen, norm, digits, lowest, highest, ratio) = struct.unpack(">iiiiqqd", plain[:40])
    if cookie & 0xFFFFFFFF != COOKIE:
        fail("cookie %#x" % (cookie & 0xFFFFFFFF))
    if plen != len(plain) - 40:
        fail("payload length %d, %d bytes follow" % (plen, len(plain) - 40))
    if norm != 0 or ratio != 1.0 or lowest < 1 or not 0 <= digits <= 5:
        fail("header fields %r" % ((norm, digits, lowest, ratio),))
    counts = []
    for v in varints(plain[40:]):
        if v < 0:
            counts.extend([0] * -v)
        else:
            counts.append(v)
    return digits, lowest, highest, counts


def layout(digits, lowest):
    """HdrHistogram's bucket layout: sub-bucket half count (log2) and unit."""
    single = 2 * 10 ** digits
    sub_mag = int(math.ceil(math.log2(single)))
    return max(sub_mag - 1, 0), int(math.floor(math.log2(lowest)))


def value_at(index, half_mag, unit):
    half = 1 << half_mag
    bucket = (index >> half_mag) - 1
    sub = (index & (half - 1)) + half
    if bucket < 0:
        sub -= half
        bucket = 0
    return sub << (bucket + unit), 1 << (bucket + unit)  # lowest value, bucket width


def main():
    if len(sys.argv) < 2:
        fail("usage: hdrlog_decode.py LOG [MAX_RATIO]")
    ratio = float(sys.argv[2]) if len(sys.argv) > 2 else 1e6
    start_time = None
    intervals = total = 0
    max_ns = 0
    info = {}
    legend = False
    with open(sys.argv[1]) as f:
        for line in f:
            line = line.rstrip("\n")
            m = re.match(r"#\[StartTime: ([0-9.]+) ", line)
            if m:
                start_time = float(m.group(1))
            if line.startswith("#") or not line:
                continue
            if line.startswith('"StartTimestamp"'):
                legend = True
                continue
            fields = line.split(",")
            if fields[0].startswith("Tag="):
                fields = fields[1:]
            if len(fields) != 4:
                fail("line with %d fields: %s" % (len(fields), line[:80]))
            t0, length, imax = float(fields[0]), float(fields[1]), float(fields[2])
            if t0 < 0 or length <= 0:
                fail("interval %r" % line[:40])
            digits, lowest, highest, counts = decode(fields[3])
            info = {"sig_digits": digits, "lowest": lowest, "highest": highest}
            half_mag, unit = layout(digits, lowest)
            n = sum(counts)
            if n:
                top = max(i for i, c in enumerate(counts) if c)
                lo, width = value_at(top, half_mag, unit)
                # Interval_Max (printed to 3 decimals) must fall in the top bucket.
                if not lo / ratio - 0.0005 <= imax <= (lo + width) / ratio + 0.0005:
                    fail("Interval_Max %s outside top bucket [%d, %d) ns" % (fields[2], lo, lo + width))
                max_ns = max(max_ns, lo + width - 1)
            intervals += 1
            total += n
    if not legend or start_time is None:
        fail("no legend line or no StartTime")
    out = {"intervals": intervals, "total": total, "start_time": start_time, "max_ns": max_ns}
    out.update(info)
    print(json.dumps(out))


main()
