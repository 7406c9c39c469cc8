#!/usr/bin/env bash
# Installs what the tests and the demo need on a fresh Debian machine, and
# nothing that is already there. Idempotent; safe to run on every CI run.
#
#   haproxy            real HAProxy instances (tests/support, demo)
#   carbon-c-relay     the Graphite relay haproxystats sends to
#   graphite-carbon    carbon-cache writing whisper files
#   python3-whisper    whisper-fetch, to read back what landed
#   time               /usr/bin/time -v for peak RSS in benchmarks
#   curl               traffic for the demo's HAProxy instances
#   graphite-web       the render API the dashboards are checked against (demo)
#   chromium           headless screenshot of graphite-web's dashboard page (demo)
#   openssl            a certificate for the tests' HTTPS stats page
#   prometheus         a real Prometheus scraping the endpoint sink, and promtool
#                      (tests/prometheus.rs)
#   cmake, libcurl4-openssl-dev, libsasl2-dev, libssl-dev
#                      building librdkafka (rdkafka's cmake-build, ssl, sasl)
#   lintian, man-db    checking the Debian package (contrib/deb/test.sh;
#                      contrib/deb/build.sh installs cargo-deb itself)
#   pyarrow            (pip) an independent reader of the raw snapshots' Arrow
#                      IPC (tests/raw_snapshot.rs)
#   tansu              a Kafka-compatible broker for the Kafka tests: built
#                      once with cargo (about 10 minutes on 2 cores) into
#                      ~/.cargo/bin and reused
set -euo pipefail

need=()
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v carbon-c-relay >/dev/null 2>&1 || need+=(carbon-c-relay)
command -v carbon-cache >/dev/null 2>&1 || need+=(graphite-carbon)
command -v whisper-fetch >/dev/null 2>&1 || need+=(python3-whisper)
[ -x /usr/bin/time ] || need+=(time)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v graphite-manage >/dev/null 2>&1 || need+=(graphite-web)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v lintian >/dev/null 2>&1 || need+=(lintian)
command -v man >/dev/null 2>&1 || need+=(man-db)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v cmake >/dev/null 2>&1 || need+=(cmake)
for dev in libcurl4-openssl-dev libsasl2-dev libssl-dev; do
    dpkg-query -W -f='${Status}' "$dev" 2>/dev/null | grep -q "install ok installed" || need+=("$dev")
done

if [ "${#need[@]}" -gt 0 ]; then
    echo "install-deps: installing ${need[*]}"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi

# graphite-carbon's package starts a system carbon-cache on some setups; the
# tests and the demo run their own on free ports, so leave that one alone.
for bin in haproxy carbon-c-relay carbon-cache whisper-fetch graphite-manage chromium prometheus promtool; do
    command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || {
        echo "install-deps: $bin is still missing after apt-get install" >&2
        exit 1
    }
done

# tansu: no Debian package; cargo builds it once.
tansu_bin="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
if ! command -v tansu >/dev/null 2>&1 && [ ! -x "$tansu_bin" ]; then
    echo "install-deps: building tansu (Kafka-compatible broker, once; about 10 minutes)"
    cargo install tansu --locked --features dynostore --quiet
fi

# pyarrow: Debian 12 has no package of it; pip does.
if ! python3 -c 'import pyarrow' >/dev/null 2>&1; then
    echo "install-deps: installing pyarrow (pip)"
    command -v pip3 >/dev/null 2>&1 || python3 -m pip --version >/dev/null 2>&1 || {
        sudo_cmd=()
        [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
        "${sudo_cmd[@]}" apt-get update -qq
        DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq python3-pip >/dev/null
    }
    python3 -m pip install --quiet pyarrow 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages pyarrow
fi
