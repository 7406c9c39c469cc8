#!/usr/bin/env bash
# Builds the Debian package of haproxystats from a fresh clone:
#
#   contrib/deb/build.sh                     → target/debian/haproxystats_<version>_<arch>.deb
#   contrib/deb/build.sh --output DIR --deb-version 0.0.1-1 ...
#                                            (any argument goes to cargo deb)
#
# 1. `cargo build --release` (nothing to do when the binary is up to date, as
#    in CI after contrib/test-all.sh built it);
# 2. man pages and shell completions, written by that binary into
#    target/deb-assets (src/manual);
# 3. `cargo deb --no-build`: the package as [package.metadata.deb] in
#    Cargo.toml describes it, maintainer scripts from contrib/deb, units
#    from contrib/systemd.
#
# cargo-deb is installed from crates.io (into ~/.cargo/bin) when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

fail() {
    echo "contrib/deb/build.sh: $*" >&2
    exit 1
}

if ! cargo deb --version >/dev/null 2>&1; then
    echo "contrib/deb/build.sh: installing cargo-deb (once)"
    cargo install cargo-deb --locked --quiet || fail "cargo install cargo-deb failed"
fi

cargo build --release --quiet || fail "cargo build --release failed"

binary="${CARGO_TARGET_DIR:-target}/release/haproxystats"
# Cargo.toml's asset paths name this directory.
assets=target/deb-assets
rm -rf "$assets"
"$binary" --generate-assets "$assets" >/dev/null || fail "$binary --generate-assets $assets failed"

cargo deb --no-build "$@" || fail "cargo deb failed"
