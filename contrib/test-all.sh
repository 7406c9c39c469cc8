#!/usr/bin/env bash
# Every check and test of the project, from a fresh clone on a fresh machine:
# installs what is missing (Debian packages, the reference oracle), then runs
# formatting, lints, a warning-free release build, all tests (real HAProxy,
# real carbon, the original haproxystats as oracle) and one cycle of the demo.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }

step "installing what is missing"
contrib/install-deps.sh all

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo build --release (no warnings allowed)"
build_log=$(mktemp)
trap 'rm -f "$build_log"' EXIT
cargo build --release 2>&1 | tee "$build_log"
if grep -qE '^warning' "$build_log"; then
    echo "test-all: the release build printed warnings" >&2
    exit 1
fi

step "systemd unit: systemd-analyze verify"
contrib/systemd/verify.sh

step "Debian package: lintian, install, upgrade, purge (reuses the release build)"
contrib/deb/test.sh

step "cargo test"
# Not --all-targets: that would run the benchmarks (harness = false) in the
# debug profile, measuring nothing; clippy above already builds them.
cargo test --lib --bins --tests

step "grafana dashboards: up to date with generate.py, every panel with a unit and a description"
python3 -m unittest discover -s contrib/grafana -p 'test_*.py'

step "demo, three cycles: every dashboard target against graphite-web, a screenshot of the graphs"
contrib/demo/run.sh --once

step "central demo, four windows of each cluster: their sums, every target of the Cluster dashboard"
contrib/demo/central.sh --once

step "soak, 60 s (the fault-injection build tests/signals.rs made; bench/soak.sh 600 is the full one)"
SOAK_PROFILE=dev SOAK_TARGET_DIR="$PWD/target/fault-injection" bench/soak.sh 60
