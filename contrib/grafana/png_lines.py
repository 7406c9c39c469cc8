#!/usr/bin/env python3
"""Checks that a screenshot of graphite-web's dashboard page shows drawn graphs.

    png_lines.py [--min-pixels N] [--min-colours K] SCREENSHOT.png

A blank page, a page whose scripts did not run, or graphs saying "No Data"
have no pixel in the line colours to_graphite_web.py gives graphite-web; graphs
of series have many (their lines and legend swatches; that the series hold
data is check_targets.py's job). Exit 0 with a one-line summary when at least N pixels are in
at least K of those colours, else 1. Decodes 8-bit RGB/RGBA PNGs (what
Chromium writes) with the standard library only.
"""
import argparse
import struct
import sys
import zlib

from to_graphite_web import LINE_COLOURS


class PngError(Exception):
    """A file this decoder cannot read."""


def rows(path):
    """(width, bytes per pixel, list of unfiltered scanlines)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise PngError("not a PNG file")
    pos, idat, header = 8, [], None
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise PngError("no IHDR chunk")
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in (2, 6) or interlace:
        raise PngError("only 8-bit non-interlaced RGB/RGBA is read (depth %d, colour type %d)" % (depth, colour))
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    out, prev = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif kind == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        elif kind != 0:
            raise PngError("unknown filter %d in row %d" % (kind, y))
        out.append(line)
        prev = line
    return width, bpp, out


def line_pixels(path):
    """Pixels per line colour."""
    wanted = {bytes.fromhex(c): c for c in LINE_COLOURS}
    counts = dict.fromkeys(LINE_COLOURS, 0)
    width, bpp, lines = rows(path)
    for line in lines:
        for x in range(0, width * bpp, bpp):
            name = wanted.get(bytes(line[x:x + 3]))
            if name:
                counts[name] += 1
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--min-pixels", type=int, default=1000)
    parser.add_argument("--min-colours", type=int, default=2)
    parser.add_argument("png")
    args = parser.parse_args()
    try:
        counts = line_pixels(args.png)
    except (OSError, PngError, zlib.error) as err:
        print("png_lines: %s: %s" % (args.png, err), file=sys.stderr)
        return 1
    drawn = {c: n for c, n in counts.items() if n}
    total = sum(drawn.values())
    summary = "%d pixels in %d line colours" % (total, len(drawn))
    if total < args.min_pixels or len(drawn) < args.min_colours:
        print("png_lines: %s: %s, expected at least %d in %d: no graphs drawn"
              % (args.png, summary, args.min_pixels, args.min_colours), file=sys.stderr)
        return 1
    print("png_lines: %s: %s" % (args.png, summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
