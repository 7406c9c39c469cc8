#!/usr/bin/env bash
# Every check and test of the project, from a fresh clone on a fresh machine:
# installs what is missing (Debian packages, the reference oracle), then runs
# formatting, lints, a warning-free release build, all tests (real HAProxy,
# real carbon, the original haproxystats as oracle) and one cycle of the demo.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s (%s)\n' "$*" "$(date +%T)"; }

step "installing what is missing (the tools cargo builds: in the background, beside clippy and the builds)"
INSTALL_DEPS_CARGO=skip contrib/install-deps.sh all
tools_log=$(mktemp)
tools_rc=$(mktemp)
(INSTALL_DEPS_CARGO=only contrib/install-deps.sh all >"$tools_log" 2>&1; echo $? >"$tools_rc") &
tools_pid=$!

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo test --no-run: the test binaries"
# Not --all-targets: that would build the benchmarks (harness = false) in the
# debug profile, to measure nothing; clippy above already checks them.
cargo test --no-run --lib --bins --tests

# The release build (for the package and the demos) compiles while the tests
# run: most tests wait on HAProxy, carbon or tansu, not on the CPU, and
# tests/support gives each test binary its own ports.
step "cargo build --release (no warnings allowed), in the background beside the tests"
build_log=$(mktemp)
release_rc=$(mktemp)
trap 'rm -f "$build_log" "$release_rc" "$tools_log" "$tools_rc"' EXIT
(cargo build --release >"$build_log" 2>&1; echo $? >"$release_rc") &
release_pid=$!

step "the tools cargo builds (tansu, cargo-deb): waiting for them"
wait "$tools_pid" || true
cat "$tools_log"
if [ "$(cat "$tools_rc")" != 0 ]; then
    echo "test-all: contrib/install-deps.sh could not build tansu or cargo-deb" >&2
    exit 1
fi

# All at once, after tansu: running the tests that need no broker while
# tansu was still being built gained nothing on a fresh machine (25 min 25 s
# against 25 min 3 s): every step there is short of CPU.
step "the tests: every test binary, three at a time (contrib/run-tests.py)"
tests_ok=true
contrib/run-tests.py --lanes 3 || tests_ok=false

step "cargo build --release: waiting for it"
wait "$release_pid" || true
cat "$build_log"
if [ "$(cat "$release_rc")" != 0 ]; then
    echo "test-all: cargo build --release failed" >&2
    exit 1
fi
if grep -qE '^warning' "$build_log"; then
    echo "test-all: the release build printed warnings" >&2
    exit 1
fi
if ! $tests_ok; then
    echo "test-all: tests failed (see FAIL above)" >&2
    exit 1
fi

step "systemd unit: systemd-analyze verify"
contrib/systemd/verify.sh

step "Debian package: lintian, install, upgrade, purge (reuses the release build)"
contrib/deb/test.sh

step "grafana dashboards: up to date with generate.py, every panel with a unit and a description"
python3 -m unittest discover -s contrib/grafana -p 'test_*.py'

step "demo, three cycles: every dashboard target against graphite-web, a screenshot of the graphs"
DEMO_PROFILE=release contrib/demo/run.sh --once

step "central demo, four windows of each cluster: their sums, every target of the Cluster dashboard"
DEMO_PROFILE=release contrib/demo/central.sh --once

step "soak, 60 s (the fault-injection build tests/signals.rs made; bench/soak.sh 600 is the full one)"
SOAK_PROFILE=dev SOAK_TARGET_DIR="$PWD/target/fault-injection" bench/soak.sh 60
