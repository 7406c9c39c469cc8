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
set -euo pipefail

need=()
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v carbon-c-relay >/dev/null 2>&1 || need+=(carbon-c-relay)
command -v carbon-cache >/dev/null 2>&1 || need+=(graphite-carbon)
command -v whisper-fetch >/dev/null 2>&1 || need+=(python3-whisper)
[ -x /usr/bin/time ] || need+=(time)
command -v curl >/dev/null 2>&1 || need+=(curl)

if [ "${#need[@]}" -gt 0 ]; then
    echo "install-deps: installing ${need[*]}"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi

# graphite-carbon's package starts a system carbon-cache on some setups; the
# tests and the demo run their own on free ports, so leave that one alone.
for bin in haproxy carbon-c-relay carbon-cache whisper-fetch; do
    command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || {
        echo "install-deps: $bin is still missing after apt-get install" >&2
        exit 1
    }
done
