#!/usr/bin/env bash
# Installs what a command of this repository needs on a fresh Debian machine,
# and nothing that is already there. Idempotent; safe to run on every CI run.
#
#   contrib/install-deps.sh WHAT...
#
# WHAT is one or more of:
#   build        what building haproxystats needs besides Rust: cmake and the
#                headers librdkafka links (rdkafka's cmake-build, TLS, SASL).
#                Every other set includes it.
#   graphite     HAProxy, carbon-c-relay, carbon-cache, whisper-fetch,
#                graphite-web; curl (traffic for the demo's HAProxy), openssl
#                (a certificate for the HTTPS stats page tests), time
#                (/usr/bin/time -v for peak RSS in benchmarks)
#   kafka        tansu, a Kafka-compatible broker, built once with cargo into
#                ~/.cargo/bin (opt-level 1: about 7 minutes on 2 cores); pyarrow (pip), an
#                independent reader of the raw snapshots' Arrow IPC
#   prometheus   Debian's prometheus and promtool, and victoria-metrics (both
#                remote-write receivers of the tests)
#   browser      chromium, for headless screenshots of graphite-web's page
#   package      lintian and man-db (contrib/deb/test.sh), cargo-deb (built
#                once with cargo into ~/.cargo/bin, about 2 minutes)
#   oracle       the original haproxystats 0.5.1 in a venv (.ci/install-oracle.sh)
#   all          every set above: what contrib/test-all.sh needs
#
# Without arguments it installs `all`, as it always did.
#
# The tools cargo builds (tansu, cargo-deb) take minutes of CPU.
# INSTALL_DEPS_CARGO=skip leaves them out, INSTALL_DEPS_CARGO=only does
# nothing else: contrib/test-all.sh builds them beside its own builds, which
# leave a core idle much of the time (linking, the last crates).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    echo "usage: $0 [build|graphite|kafka|prometheus|browser|package|oracle|all]..." >&2
    exit 2
}

[ "$#" -gt 0 ] || set -- all
declare -A want=([build]=1)
for what in "$@"; do
    case $what in
    all) for w in graphite kafka prometheus browser package oracle; do want[$w]=1; done ;;
    build | graphite | kafka | prometheus | browser | package | oracle) want[$what]=1 ;;
    *) usage ;;
    esac
done
has() { [ -n "${want[$1]:-}" ]; }

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

# Debian packages: command → package, per set.
need=()
missing_command() { ! command -v "$1" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$1" ]; }
missing_package() { ! dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing_command cmake && need+=(cmake)
for dev in libcurl4-openssl-dev libsasl2-dev libssl-dev; do
    missing_package "$dev" && need+=("$dev")
done
if has graphite; then
    missing_command haproxy && need+=(haproxy)
    missing_command carbon-c-relay && need+=(carbon-c-relay)
    missing_command carbon-cache && need+=(graphite-carbon)
    missing_command whisper-fetch && need+=(python3-whisper)
    missing_command graphite-manage && need+=(graphite-web)
    missing_command curl && need+=(curl)
    missing_command openssl && need+=(openssl)
    [ -x /usr/bin/time ] || need+=(time)
fi
if has prometheus; then
    missing_command promtool && need+=(prometheus)
    missing_command victoria-metrics && need+=(victoria-metrics)
fi
if has browser; then missing_command chromium && need+=(chromium); fi
if has package; then
    missing_command lintian && need+=(lintian)
    missing_command man && need+=(man-db)
fi
# Kafka's tests start real HAProxy edges too.
if has kafka; then missing_command haproxy && need+=(haproxy); fi

cargo_tools=${INSTALL_DEPS_CARGO:-yes}
case $cargo_tools in yes | skip | only) ;; *) usage ;; esac
[ "$cargo_tools" = only ] && need=()

if [ "${#need[@]}" -gt 0 ]; then
    echo "install-deps: installing ${need[*]}"
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi

# graphite-carbon's package starts a system carbon-cache on some setups; the
# tests and the demo run their own on free ports, so leave that one alone.
check=(cmake)
has graphite && check+=(haproxy carbon-c-relay carbon-cache whisper-fetch graphite-manage)
has prometheus && check+=(prometheus promtool victoria-metrics)
has browser && check+=(chromium)
has package && check+=(lintian)
[ "$cargo_tools" = only ] && check=()
for bin in "${check[@]}"; do
    missing_command "$bin" && {
        echo "install-deps: $bin is still missing after apt-get install" >&2
        exit 1
    }
done

cargo_install() {
    local bin=$1 why=$2
    shift 2
    command -v "$bin" >/dev/null 2>&1 && return 0
    [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/$bin" ] && return 0
    echo "install-deps: building $bin ($why, once)"
    cargo install --locked --quiet "$@"
}

if [ "$cargo_tools" != skip ]; then
    # tansu: no Debian package. Built at opt-level 1: 830 s of CPU on the
    # 2-core machine (about 7 minutes alone), and the whole suite and the
    # Kafka loop pass against it (README, "Development").
    if has kafka; then
        CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
            cargo_install tansu "a Kafka-compatible broker, about 7 minutes" tansu --features dynostore
    fi
    if has package; then
        cargo_install cargo-deb "the Debian package builder, about 2 minutes" cargo-deb
    fi
fi
if [ "$cargo_tools" = only ]; then exit 0; fi

if has kafka; then
    # pyarrow: Debian 12 has no package of it; pip does.
    if ! python3 -c 'import pyarrow' >/dev/null 2>&1; then
        echo "install-deps: installing pyarrow (pip)"
        command -v pip3 >/dev/null 2>&1 || python3 -m pip --version >/dev/null 2>&1 || {
            "${sudo_cmd[@]}" apt-get update -qq
            DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq python3-pip >/dev/null
        }
        python3 -m pip install --quiet pyarrow 2>/dev/null ||
            python3 -m pip install --quiet --break-system-packages pyarrow
    fi
fi

if has oracle; then .ci/install-oracle.sh; fi
