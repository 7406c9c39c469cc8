#!/usr/bin/env bash
# Checks Grafana dashboards against any whisper tree: starts Debian's
# graphite-web on it (as the demo does), runs check_targets.py, stops it.
#
#   contrib/grafana/check.sh WHISPER_DIR [check_targets.py options] DASHBOARD.json...
#   e.g. contrib/grafana/check.sh /var/lib/graphite/whisper --var namespace=haproxy \
#            contrib/grafana/load-balancer.json
#
# Exit status: check_targets.py's (0 all targets return data, 1 some do not).
set -euo pipefail
[ $# -ge 2 ] || {
    echo "usage: $0 WHISPER_DIR [--var NAME=VALUE]... [--from -10min] DASHBOARD.json..." >&2
    exit 2
}
repo=$(cd "$(dirname "$0")/../.." && pwd)
[ -d "$1" ] || {
    echo "check.sh: $1 is not a directory" >&2
    exit 2
}
whisper=$(cd "$1" && pwd)
shift

work=$(mktemp -d /tmp/haproxystats-grafana-check.XXXXXX)
log_prefix=check.sh
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
# shellcheck source=contrib/demo/graphite-web.sh
. "$repo/contrib/demo/graphite-web.sh"
trap 'stop_all; rm -rf "$work"' EXIT
command -v graphite-manage >/dev/null 2>&1 || die "graphite-manage missing: run contrib/install-deps.sh graphite"
start_graphite_web "$whisper"
status=0
python3 "$repo/contrib/grafana/check_targets.py" --graphite "$graphite_url" "$@" || status=$?
exit "$status"
