#!/usr/bin/env python3
"""Checks that every line haproxystats sent (as kept by [local-store]) is in whisper.

    soak_verify.py --local-store DIR --whisper DIR --prefix PREFIX
                   [--restarts N] [--timeout SECONDS]

Reads every DIR/<ts>/stats file ("path value timestamp" lines; the last value
of a (path, timestamp) wins, as in Graphite), then reads each path's .wsp file
once per pass with the `whisper` module and compares value and timestamp of
every point. carbon-cache writes its cache lazily, so points still missing are
polled again (only their files) until --timeout. Also checks the self
metrics: <prefix>.haproxystats.GraphiteDroppedLines is 0 in every snapshot,
and the last ChildRestarts is --restarts.

Prints key=value lines (snapshots, metrics, lines_verified, ...); exit 1 with
the first missing or different points on failure.
"""
import argparse
import math
import os
import sys
import time

import whisper


def load(store):
    """path -> {timestamp: value}, and the number of snapshot files."""
    expected = {}
    snapshots = 0
    problems = []
    for name in sorted(os.listdir(store)):
        stats = os.path.join(store, name, "stats")
        if not os.path.isfile(stats):
            problems.append(f"{os.path.join(store, name)} has no stats file")
            continue
        snapshots += 1
        with open(stats, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                parts = line.split()
                if len(parts) != 3:
                    problems.append(f"{stats}:{number}: not 'path value ts': {line!r}")
                    continue
                path, value, ts = parts
                try:
                    point = (int(ts), float(value))
                except ValueError:
                    problems.append(f"{stats}:{number}: bad value or timestamp: {line!r}")
                    continue
                if math.isnan(point[1]):
                    problems.append(f"{stats}:{number}: nan sent: {line!r}")
                    continue
                expected.setdefault(path, {})[point[0]] = point[1]
    return expected, snapshots, problems


def wsp_file(root, path):
    return os.path.join(root, *path.split(".")) + ".wsp"


def differences(root, path, points):
    """The points of `path` that whisper does not hold: [(ts, want, got)]."""
    file = wsp_file(root, path)
    if not os.path.exists(file):
        return [(ts, want, "no .wsp file") for ts, want in sorted(points.items())]
    first, last = min(points), max(points)
    (start, _end, step), values = whisper.fetch(file, first - 1, last + 1)
    bad = []
    for ts, want in sorted(points.items()):
        index = (ts - start) // step
        got = values[index] if 0 <= index < len(values) else None
        if got is None or not math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9):
            bad.append((ts, want, got))
    return bad


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--local-store", required=True)
    parser.add_argument("--whisper", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--restarts", type=int)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()

    expected, snapshots, problems = load(args.local_store)
    lines = sum(len(points) for points in expected.values())
    print(f"snapshots={snapshots}")
    print(f"metrics={len(expected)}")
    print(f"lines={lines}")
    if problems:
        print("FAIL: unreadable local-store content:", *problems[:20], sep="\n  ")
        return 1
    if snapshots == 0:
        print("FAIL: the local-store is empty")
        return 1

    failures = []
    dropped = expected.get(f"{args.prefix}.haproxystats.GraphiteDroppedLines")
    if dropped is None:
        failures.append("no GraphiteDroppedLines self metric in the local-store")
    elif any(v != 0 for v in dropped.values()):
        bad = sorted((ts, v) for ts, v in dropped.items() if v != 0)
        failures.append(f"GraphiteDroppedLines not 0: {bad[:10]}")
    else:
        print(f"graphite_dropped_lines=0 in {len(dropped)} snapshots")
    restarts = expected.get(f"{args.prefix}.haproxystats.ChildRestarts")
    if restarts is None:
        failures.append("no ChildRestarts self metric in the local-store")
    else:
        last = restarts[max(restarts)]
        print(f"child_restarts_last={last:g}")
        if args.restarts is not None and last != args.restarts:
            failures.append(f"the last ChildRestarts is {last:g}, expected {args.restarts}")

    deadline = time.monotonic() + args.timeout
    pending = sorted(expected)
    passes = 0
    began = time.monotonic()
    while True:
        passes += 1
        missing = {}
        for path in pending:
            bad = differences(args.whisper, path, expected[path])
            if bad:
                missing[path] = bad
        if not missing or time.monotonic() >= deadline:
            break
        pending = sorted(missing)
        time.sleep(2)
    waited = time.monotonic() - began
    if missing:
        count = sum(len(bad) for bad in missing.values())
        failures.append(
            f"{count} of {lines} points ({len(missing)} of {len(expected)} metrics) not in whisper "
            f"after {waited:.0f} s; first ones (path ts want got):"
        )
        for path in sorted(missing)[:10]:
            for ts, want, got in missing[path][:3]:
                failures.append(f"  {path} {ts} {want!r} {got!r}")
    else:
        print(f"lines_verified={lines}")
        print(f"whisper_passes={passes} ({waited:.1f} s)")
    if failures:
        print("FAIL:", *failures, sep="\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
