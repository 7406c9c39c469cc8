#!/usr/bin/env bash
# Verifies the systemd unit offline: no running systemd, no installed binary,
# no haproxystats user needed (CI containers have none of them).
#
#   contrib/systemd/verify.sh              verify haproxystats.service and
#                                          haproxystats-central.service
#   contrib/systemd/verify.sh UNIT_FILE    verify another unit file
#   contrib/systemd/verify.sh --self-test  also prove that broken units fail
#
# How: a temporary root holds the system's own unit files (for sysinit.target
# and friends), the unit under test in /etc/systemd/system, and an executable
# stub at each ExecStart*= path (verify only checks that it is executable).
# Then, inside that root:
# - `systemd-analyze verify`: any line it prints about the unit fails the
#   script, warnings included (systemd exits 0 on "Unknown key" or a value it
#   cannot parse and ignores: exactly the mistakes worth catching);
# - `systemd-analyze security --offline`: the exposure score must stay at or
#   below MAX_EXPOSURE, so that hardening cannot be dropped unnoticed.
#
# Installs the `systemd` package with apt-get when systemd-analyze is missing
# (run as root, as CI does). Exits non-zero, loudly, on any failure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# systemd-analyze prints the score with one decimal; --threshold counts tenths.
MAX_EXPOSURE=20
# Temporary roots live here; removed on exit.
WORK=

fail() {
    printf 'verify.sh: FAILED: %s\n' "$*" >&2
    exit 1
}

ensure_systemd_analyze() {
    command -v systemd-analyze >/dev/null 2>&1 && return
    echo "verify.sh: systemd-analyze missing; installing the systemd package" >&2
    [ "$(id -u)" -eq 0 ] || fail "systemd-analyze is missing and we are not root to install it"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || fail "apt-get update"
    apt-get install -y -qq --no-install-recommends systemd >&2 || fail "apt-get install systemd"
    command -v systemd-analyze >/dev/null 2>&1 || fail "systemd-analyze still missing after installing systemd"
}

# The directory holding the system's unit files (sysinit.target and so on).
system_units() {
    local dir
    for dir in /usr/lib/systemd/system /lib/systemd/system; do
        if [ -f "$dir/sysinit.target" ]; then
            echo "$dir"
            return
        fi
    done
    fail "no sysinit.target in /usr/lib/systemd/system or /lib/systemd/system"
}

# verify_unit FILE: 0 when clean, 1 (with the reasons on stderr) otherwise.
verify_unit() {
    local file=$1 name root status=0 output line exec path
    name=$(basename "$file")
    root=$(mktemp -d -p "$WORK")
    mkdir -p "$root/usr/lib/systemd" "$root/etc/systemd/system"
    cp -a "$(system_units)" "$root/usr/lib/systemd/system"
    cp "$file" "$root/etc/systemd/system/$name"
    # Stub every command the unit runs, at its own path inside the root.
    while IFS= read -r exec; do
        path=${exec#*=}
        path=${path##[-@:+!]}
        path=${path##[-@:+!]}
        path=${path%% *}
        case $path in
        /*)
            mkdir -p "$root$(dirname "$path")"
            printf '#!/bin/sh\nexit 0\n' >"$root$path"
            chmod 0755 "$root$path"
            ;;
        esac
    done < <(grep -E '^[[:space:]]*Exec[A-Za-z]*=' "$file" || true)

    output=$(systemd-analyze verify --root="$root" --man=no --generators=no "$name" 2>&1) || status=$?
    # Lines about the system's own units are not ours to fix.
    local ours=""
    while IFS= read -r line; do
        [ -n "$line" ] || continue
        case $line in
        "$root/usr/lib/systemd/system/"*) echo "verify.sh: note (system unit, ignored): $line" >&2 ;;
        *) ours+="$line"$'\n' ;;
        esac
    done <<<"$output"
    if [ "$status" -ne 0 ] || [ -n "$ours" ]; then
        printf '%s' "$ours" >&2
        echo "verify.sh: systemd-analyze verify $name: exit $status, $(printf '%s' "$ours" | grep -c .) line(s) about the unit" >&2
        return 1
    fi

    status=0
    output=$(systemd-analyze security --offline=true --root="$root" --threshold="$MAX_EXPOSURE" \
        --no-pager "$name" 2>&1) || status=$?
    if [ "$status" -ne 0 ]; then
        printf '%s\n' "$output" >&2
        echo "verify.sh: $name: exposure above $((MAX_EXPOSURE / 10)).$((MAX_EXPOSURE % 10)) (systemd-analyze security)" >&2
        return 1
    fi
    echo "verify.sh: $name: clean; $(printf '%s\n' "$output" | grep -o 'Overall exposure level.*' || echo 'exposure not reported')"
}

# Broken copies of the unit must fail: proves the checks above can fail.
self_test() {
    local file=$1 tmp mutation
    tmp=$(mktemp -d -p "$WORK")
    for mutation in \
        's/^Type=notify$/Typ=notify/' \
        's/^WatchdogSec=30$/WatchdogSec=thirty/' \
        '/^ProtectSystem=/,/^UMask=/d' \
        's/^\[Service\]$/[Servce]/'; do
        sed "$mutation" "$file" >"$tmp/haproxystats.service"
        cmp -s "$file" "$tmp/haproxystats.service" && fail "self-test: '$mutation' changed nothing in $file"
        if verify_unit "$tmp/haproxystats.service" 2>/dev/null >/dev/null; then
            fail "self-test: a unit broken by '$mutation' passed verification"
        fi
        echo "verify.sh: self-test: '$mutation' is caught"
    done
}

main() {
    local self_test=no unit units
    if [ "${1:-}" = "--self-test" ]; then
        self_test=yes
        shift
    fi
    if [ $# -gt 0 ]; then
        units=("$@")
    else
        units=("$here/haproxystats.service" "$here/haproxystats-central.service")
    fi
    ensure_systemd_analyze
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
    for unit in "${units[@]}"; do
        [ -f "$unit" ] || fail "no unit file $unit"
        verify_unit "$unit" || fail "$unit"
        if [ "$self_test" = yes ]; then
            self_test "$unit"
        fi
    done
}

main "$@"
