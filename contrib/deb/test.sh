#!/usr/bin/env bash
# Checks the Debian package on this machine (run as root, as CI does; no
# running systemd needed), and leaves the machine as it found it:
#
# 1. builds the package (contrib/deb/build.sh: reuses the release binary)
#    and a copy of it with a lower version, the "previous" one;
# 2. lintian: no error and no warning but those overridden, with reasons, in
#    contrib/deb/lintian-overrides;
# 3. installs the previous version, edits /etc/haproxystats.conf, upgrades:
#    the edit is kept;
# 4. checks what is installed: files, the conffile, the user and its
#    groups, the state directory, `haproxystats -V`, the argv[0] names,
#    `man -w`, the unit enabled, `systemd-analyze verify` of the installed
#    unit, the shipped configuration valid;
# 5. removes (the conffile stays), purges: nothing of the package is left.
#
# A package left installed by an earlier run is purged first; the package is
# purged at the end, also on failure. A /etc/haproxystats.conf or
# /var/lib/haproxystats that belongs to no package (other tests run
# haproxystats with the default base-dir) is moved aside and put back.
set -euo pipefail
cd "$(dirname "$0")/../.."

PACKAGE=haproxystats
CONFFILE=/etc/haproxystats.conf
STATE_DIR=/var/lib/haproxystats
UNIT=/usr/lib/systemd/system/haproxystats.service
PREVIOUS_VERSION=0.0.0-1
WORK=
# Paths moved aside into $WORK/saved, put back by cleanup.
SAVED=()

fail() {
    echo "contrib/deb/test.sh: FAILED: $*" >&2
    exit 1
}

step() { printf 'contrib/deb/test.sh: %s\n' "$*"; }

installed_version() {
    dpkg-query -W -f='${Status} ${Version}' "$PACKAGE" 2>/dev/null |
        awk '$3 == "installed" { print $4 }'
}

purge() {
    if dpkg-query -W -f='${Status}' "$PACKAGE" 2>/dev/null | grep -qv 'not-installed'; then
        dpkg --purge "$PACKAGE" >/dev/null
    fi
}

set_aside() {
    local path
    mkdir -p "$WORK/saved"
    for path in "$CONFFILE" "$STATE_DIR"; do
        if [ -e "$path" ]; then
            mv "$path" "$WORK/saved/$(basename "$path")"
            SAVED+=("$path")
        fi
    done
}

cleanup() {
    local status=$? path keep_work=no
    purge || echo "contrib/deb/test.sh: could not purge $PACKAGE" >&2
    for path in "${SAVED[@]}"; do
        rm -rf "$path"
        if ! mv "$WORK/saved/$(basename "$path")" "$path"; then
            echo "contrib/deb/test.sh: could not put $path back; it is in $WORK/saved" >&2
            keep_work=yes
        fi
    done
    [ -z "$WORK" ] || [ "$keep_work" = yes ] || rm -rf "$WORK"
    exit "$status"
}

need_tools() {
    local tool
    for tool in lintian man systemd-analyze dpkg-deb; do
        command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing: run contrib/install-deps.sh package"
    done
}

build() {
    step "building the package and a previous version ($PREVIOUS_VERSION)"
    mkdir -p "$WORK/new" "$WORK/old"
    contrib/deb/build.sh --quiet --output "$WORK/new/" >/dev/null
    # --fast: an xz-compressed twin of the package above would only cost time.
    contrib/deb/build.sh --quiet --fast --deb-version "$PREVIOUS_VERSION" --output "$WORK/old/" >/dev/null
    NEW_DEB=$(echo "$WORK"/new/*.deb)
    OLD_DEB=$(echo "$WORK"/old/*.deb)
    [ -f "$NEW_DEB" ] && [ -f "$OLD_DEB" ] || fail "no .deb built in $WORK"
    NEW_VERSION=$(dpkg-deb -f "$NEW_DEB" Version)
}

run_lintian() {
    step "lintian $(basename "$NEW_DEB")"
    local output status=0
    # Judged from the tags it prints, not its exit status, which
    # --show-overrides turns into 2 whenever an override applies.
    output=$(lintian --display-level '>=info' --show-overrides "$NEW_DEB" 2>&1) || status=$?
    printf '%s\n' "$output" | grep -v '^N: ' | sed 's/^/    /'
    [ "$status" -eq 0 ] || [ "$status" -eq 2 ] || fail "lintian failed (exit $status)"
    # Errors and warnings fail, unless overridden in contrib/deb/lintian-overrides
    # (with the reason); an override lintian no longer needs fails too.
    if printf '%s\n' "$output" | grep -qE '^[EW]: |unused-override|mismatched-override'; then
        fail "lintian reported errors, warnings or stale overrides (above)"
    fi
    printf '%s\n' "$output" | grep -q '^O: ' ||
        fail "lintian applied no override: is contrib/deb/lintian-overrides shipped?"
}

install_previous_and_upgrade() {
    step "installing $PREVIOUS_VERSION, editing $CONFFILE, upgrading to $NEW_VERSION"
    dpkg -i "$OLD_DEB" </dev/null >/dev/null
    [ "$(installed_version)" = "$PREVIOUS_VERSION" ] || fail "$PREVIOUS_VERSION is not installed"
    grep -q '^pull-interval = 10$' "$CONFFILE" || fail "$CONFFILE: no 'pull-interval = 10' to edit"
    sed -i 's/^pull-interval = 10$/pull-interval = 20/' "$CONFFILE"
    local edited
    edited=$(sha256sum <"$CONFFILE")
    # No --force-conf*: dpkg keeps an edited conffile the new version does
    # not change without asking; a question would fail on the closed stdin.
    dpkg -i "$NEW_DEB" </dev/null >/dev/null
    [ "$(installed_version)" = "$NEW_VERSION" ] || fail "$NEW_VERSION is not installed after the upgrade"
    [ "$(sha256sum <"$CONFFILE")" = "$edited" ] || fail "the upgrade changed the edited $CONFFILE"
    [ ! -e "$CONFFILE.dpkg-new" ] && [ ! -e "$CONFFILE.dpkg-dist" ] ||
        fail "the upgrade left $CONFFILE.dpkg-new or .dpkg-dist"
}

check_installed() {
    step "checking the installed package"
    local path
    for path in /usr/bin/haproxystats "$UNIT" /usr/lib/systemd/system/haproxystats-central.service \
        /usr/share/man/man1/haproxystats.1.gz /usr/share/man/man1/haproxystats-pull.1.gz \
        /usr/share/man/man1/haproxystats-check.1.gz \
        /usr/share/bash-completion/completions/haproxystats \
        /usr/share/zsh/vendor-completions/_haproxystats \
        /usr/share/fish/vendor_completions.d/haproxystats.fish \
        /usr/share/doc/haproxystats/README.md /usr/share/doc/haproxystats/copyright \
        /usr/share/doc/haproxystats/changelog.Debian.gz; do
        [ -f "$path" ] || fail "$path is missing"
    done
    for path in /usr/bin/haproxystats-pull /usr/bin/haproxystats-process; do
        [ "$(readlink "$path")" = haproxystats ] || fail "$path is not a link to haproxystats"
    done
    dpkg-query -W -f='${Conffiles}\n' "$PACKAGE" | grep -q "^ $CONFFILE " ||
        fail "$CONFFILE is not a conffile"

    getent passwd haproxystats >/dev/null || fail "no user haproxystats"
    local groups
    groups=" $(id -nG haproxystats) "
    [[ $groups == *" haproxystats "* && $groups == *" haproxy "* ]] ||
        fail "haproxystats is in the groups '$groups', not haproxystats and haproxy"
    [ "$(stat -c %U:%G "$STATE_DIR")" = haproxystats:haproxystats ] ||
        fail "$STATE_DIR is not owned by haproxystats"

    local version
    version=$(haproxystats -V)
    [ "$version" = "haproxystats ${NEW_VERSION%-*}" ] || fail "haproxystats -V printed '$version'"
    local name
    for name in pull process; do
        [ "$("haproxystats-$name" --help | head -1)" = "$(haproxystats "$name" --help | head -1)" ] ||
            fail "haproxystats-$name is not 'haproxystats $name'"
    done
    haproxystats -f "$CONFFILE" -P | grep -q '^pull-interval = 20$' ||
        fail "the installed $CONFFILE is refused or lost its edit"

    local page
    page=$(man -w haproxystats) || fail "man -w haproxystats found no page"
    [ "$page" = /usr/share/man/man1/haproxystats.1.gz ] || fail "man -w haproxystats: $page"
    man -w haproxystats-pull >/dev/null || fail "man -w haproxystats-pull found no page"
    # The page renders without a warning from groff.
    local warnings
    warnings=$(MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null)
    [ -z "$warnings" ] || fail "man haproxystats: $warnings"

    [ -L /etc/systemd/system/multi-user.target.wants/haproxystats.service ] ||
        fail "haproxystats.service is not enabled"
    [ ! -e /etc/systemd/system/multi-user.target.wants/haproxystats-central.service ] ||
        fail "haproxystats-central.service is enabled on a load balancer"
    local output
    output=$(systemd-analyze verify --man=no "$UNIT" 2>&1) || fail "systemd-analyze verify $UNIT: $output"
    if printf '%s\n' "$output" | grep -q haproxystats; then
        fail "systemd-analyze verify $UNIT: $output"
    fi
}

remove_and_purge() {
    step "removing (the conffile stays), then purging (nothing stays)"
    dpkg --remove "$PACKAGE" >/dev/null
    [ ! -e /usr/bin/haproxystats ] || fail "dpkg --remove left /usr/bin/haproxystats"
    [ -f "$CONFFILE" ] || fail "dpkg --remove removed $CONFFILE"
    dpkg --purge "$PACKAGE" >/dev/null
    local path left=()
    while IFS= read -r path; do
        path=${path#.}
        # Directories the package shares with the system (/usr/bin, ...) stay.
        [ -e "$path" ] && [ ! -d "$path" ] && left+=("$path")
    done < <(dpkg-deb --fsys-tarfile "$NEW_DEB" | tar -t)
    for path in "$CONFFILE" "$STATE_DIR" /etc/systemd/system/multi-user.target.wants/haproxystats.service \
        /var/lib/systemd/deb-systemd-helper-enabled/haproxystats.service.dsh-also \
        /var/lib/systemd/deb-systemd-helper-masked/haproxystats.service; do
        [ -e "$path" ] && left+=("$path")
    done
    [ "${#left[@]}" -eq 0 ] || fail "the purge left: ${left[*]}"
    ! getent passwd haproxystats >/dev/null || fail "the purge left the user haproxystats"
    ! getent group haproxystats >/dev/null || fail "the purge left the group haproxystats"
    dpkg-query -W -f='${Status}' "$PACKAGE" 2>/dev/null | grep -qv 'not-installed' &&
        fail "dpkg still knows $PACKAGE after the purge"
    return 0
}

main() {
    [ "$(id -u)" -eq 0 ] || fail "must run as root (dpkg -i)"
    getent group haproxy >/dev/null || fail "no group haproxy: install haproxy (contrib/install-deps.sh graphite)"
    need_tools
    WORK=$(mktemp -d)
    trap cleanup EXIT
    purge
    set_aside
    build
    run_lintian
    install_previous_and_upgrade
    check_installed
    remove_and_purge
    step "OK"
}

main "$@"
