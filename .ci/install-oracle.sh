#!/usr/bin/env bash
# Installs the reference implementation for the differential tests: the Python
# original, haproxystats 0.5.1, in a virtualenv at ${HS_ORACLE_VENV:-/opt/hs-oracle/V}.
#
# Idempotent: an existing venv that already has every pinned package is left
# alone; otherwise the missing ones are installed. Fails loudly (exit 1) when
# python3.11 is not available: the original does not run on newer Pythons with
# pandas < 2, and tests/differential.rs refuses to run without it.
set -euo pipefail

VENV="${HS_ORACLE_VENV:-/opt/hs-oracle/V}"
PACKAGES=(
    "haproxystats==0.5.1"
    "pandas==1.5.3"
    "numpy==1.26.4"
    "pyinotify==0.9.6"
    "docopt==0.6.2"
)

die() {
    echo "install-oracle: $*" >&2
    exit 1
}

PYTHON="${HS_ORACLE_PYTHON:-$(command -v python3.11 || true)}"
[ -n "$PYTHON" ] || die "python3.11 not found in PATH (set HS_ORACLE_PYTHON to a Python 3.11 interpreter)"
version="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
    || die "$PYTHON does not run"
[ "$version" = "3.11" ] || die "$PYTHON is Python $version, need 3.11"

if [ ! -x "$VENV/bin/python" ]; then
    echo "install-oracle: creating venv $VENV with $PYTHON"
    mkdir -p "$(dirname "$VENV")"
    "$PYTHON" -m venv "$VENV" || die "cannot create venv $VENV"
fi
venv_version="$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[ "$venv_version" = "3.11" ] || die "$VENV runs Python $venv_version, need 3.11 (remove it and re-run)"

missing=()
for spec in "${PACKAGES[@]}"; do
    name="${spec%%==*}"
    want="${spec##*==}"
    have="$("$VENV/bin/python" -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p' || true)"
    [ "$have" = "$want" ] || missing+=("$spec")
done

if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-oracle: installing ${missing[*]}"
    "$VENV/bin/python" -m pip install --disable-pip-version-check "${PACKAGES[@]}" \
        || die "pip install failed"
fi

"$VENV/bin/python" -c 'import haproxystats, pandas, numpy, pyinotify, docopt' \
    || die "the venv $VENV cannot import the oracle's modules"
[ -x "$VENV/bin/haproxystats-process" ] || die "$VENV/bin/haproxystats-process is missing"
echo "install-oracle: haproxystats $("$VENV/bin/python" -c 'import haproxystats; print(haproxystats.__version__)') ready in $VENV"
