#!/usr/bin/env python3
"""Runs every test binary of the crate, several at a time.

    contrib/run-tests.py [--lanes N] [--list] [NAME ...]

`cargo test` runs its test binaries one after another. Most of ours spend
their time waiting: for HAProxy to answer, for carbon to write whisper
files, for tansu to rebalance a group. So this builds them once
(`cargo test --no-run --lib --bins --tests`) and runs up to N binaries at a
time (default 3 on 2 cores), the longest first, each with the environment
`cargo test` gives it (working directory = the crate, CARGO, CARGO_MANIFEST_DIR)
and its own block of TCP ports (HAPROXYSTATS_TEST_PORTS, read by
tests/support/process.rs::free_ports) so that parallel binaries never hand
out the same port.

A binary's output is printed when it ends: in full when it failed, its
summary line when it passed. Each binary's duration is kept in
target/test-durations.json and orders the next run, longest first;
a fresh clone uses contrib/test-durations.json (a run on a 2-core machine,
the fault-injection build in `signals` included). Binaries in neither start
first. NAME restricts the run to the binaries with those names
(e.g. `central_e2e`, `haproxystats` for the unit tests).

A binary still running after --timeout seconds is killed with what it
started (its process group) and counts as failed.

Exit status: 0 when every binary passed, 1 otherwise (the failed ones are
listed at the end).
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The test binaries that start tansu (tests/support/kafka.rs): the only ones
# that need it, so the others can run while it is being built.
KAFKA = {
    "central", "central_clusters", "central_e2e", "central_state_unreadable", "edge",
    "kafka_e2e", "kafka_process", "sink_kafka", "tansu_fetch",
}
# Below Linux's ephemeral ports (32768-60999): see tests/support/process.rs.
PORTS_FIRST, PORTS_LAST = 10000, 32767


def build():
    """Builds the test binaries; returns [(name, kind, path)]."""
    cmd = ["cargo", "test", "--no-run", "--lib", "--bins", "--tests",
           "--message-format=json-render-diagnostics"]
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(f"run-tests: {' '.join(cmd)} failed (exit {proc.returncode})")
    found = []
    for line in proc.stdout.splitlines():
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
            continue
        if not msg.get("profile", {}).get("test"):
            continue
        target = msg["target"]
        found.append((target["name"], target["kind"][0], msg["executable"]))
    if not found:
        sys.exit("run-tests: cargo built no test binary")
    return found


def durations_path():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "test-durations.json")


def load_durations():
    for path in (durations_path(), os.path.join(ROOT, "contrib", "test-durations.json")):
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError):
            continue
    return {}


def save_durations(durations):
    path = durations_path()
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(durations, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def label(name, kind):
    return name if kind == "test" else f"{name} ({kind})"


class Runner:
    def __init__(self, binaries, lanes, known, timeout):
        self.timeout = timeout
        # Unknown binaries first (they may be slow), then longest first.
        self.queue = sorted(binaries, key=lambda b: -known.get(label(b[0], b[1]), 1e9))
        self.lanes = lanes
        self.lock = threading.Lock()
        self.failed = []
        self.durations = dict(known)
        self.cargo = shutil.which("cargo") or "cargo"
        self.running = set()

    def next_binary(self):
        with self.lock:
            return self.queue.pop(0) if self.queue else None

    def lane(self, index):
        span = (PORTS_LAST - PORTS_FIRST + 1) // self.lanes
        first = PORTS_FIRST + index * span
        env = dict(os.environ)
        env.update({
            "CARGO": self.cargo,
            "CARGO_MANIFEST_DIR": ROOT,
            "HAPROXYSTATS_TEST_PORTS": f"{first}-{first + span - 1}",
        })
        while (binary := self.next_binary()) is not None:
            self.run(binary, env)

    def run(self, binary, env):
        name, kind, path = binary
        shown = label(name, kind)
        started = time.monotonic()
        with tempfile.TemporaryFile(mode="w+") as out:
            child = subprocess.Popen([path], cwd=ROOT, env=env, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
            with self.lock:
                self.running.add(child)
            try:
                code = child.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                # The whole group: HAProxy, carbon or tansu it started too.
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
                code = f"killed after {self.timeout} s"
            with self.lock:
                self.running.discard(child)
            elapsed = time.monotonic() - started
            out.seek(0)
            text = out.read()
        summary = [l for l in text.splitlines() if l.startswith("test result:")]
        with self.lock:
            self.durations[shown] = round(elapsed, 1)
            if code == 0:
                last = summary[-1] if summary else "no test result line"
                print(f"PASS {shown} in {elapsed:.0f} s: {last}", flush=True)
            else:
                self.failed.append(shown)
                code = code if isinstance(code, str) else f"exit {code}"
                print(f"\n---- FAIL {shown} ({code}) in {elapsed:.0f} s, its output:",
                      flush=True)
                print(text, flush=True)
                print(f"---- end of {shown}\n", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lanes", type=int, default=3,
                        help="test binaries running at once (default 3)")
    parser.add_argument("--timeout", type=int, default=1200,
                        help="seconds a binary may run before it is killed (default 1200)")
    parser.add_argument("--list", action="store_true",
                        help="list the binaries in the order they would start")
    kafka = parser.add_mutually_exclusive_group()
    kafka.add_argument("--only-kafka", action="store_true",
                       help="only the binaries that start tansu")
    kafka.add_argument("--no-kafka", action="store_true",
                       help="every binary but those that start tansu")
    parser.add_argument("names", nargs="*", help="only the binaries with these names")
    args = parser.parse_args()
    if args.lanes < 1:
        sys.exit("run-tests: --lanes must be at least 1")

    binaries = build_cache = build()
    if args.names:
        unknown = set(args.names) - {b[0] for b in binaries}
        if unknown:
            sys.exit(f"run-tests: no test binary named {', '.join(sorted(unknown))}")
        binaries = [b for b in binaries if b[0] in args.names]
    if args.only_kafka:
        binaries = [b for b in binaries if b[0] in KAFKA and b[1] == "test"]
    if args.no_kafka:
        binaries = [b for b in binaries if not (b[0] in KAFKA and b[1] == "test")]
    missing = KAFKA - {b[0] for b in build_cache if b[1] == "test"}
    if missing:
        sys.exit(f"run-tests: KAFKA names binaries that do not exist: {', '.join(sorted(missing))}")
    runner = Runner(binaries, args.lanes, load_durations(), args.timeout)
    if args.list:
        for name, kind, _ in runner.queue:
            print(label(name, kind))
        return 0

    started = time.monotonic()
    threads = [threading.Thread(target=runner.lane, args=(i,), daemon=True)
               for i in range(args.lanes)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    except KeyboardInterrupt:
        # Each binary runs in its own session, out of the terminal's reach.
        with runner.lock:
            runner.queue.clear()
            for child in runner.running:
                os.killpg(child.pid, signal.SIGTERM)
        print("run-tests: interrupted", file=sys.stderr)
        return 130
    save_durations(runner.durations)
    total = time.monotonic() - started
    if runner.failed:
        print(f"run-tests: {len(runner.failed)} of {len(binaries)} test binaries FAILED "
              f"in {total:.0f} s: {', '.join(runner.failed)}")
        return 1
    print(f"run-tests: all {len(binaries)} test binaries passed in {total:.0f} s "
          f"({args.lanes} at a time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
