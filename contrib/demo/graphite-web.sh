# shellcheck shell=bash disable=SC2154,SC2034  # work, pids, log_prefix come from the caller; graphite_url goes back to it
# graphite-web for the demo (sourced by contrib/demo/run.sh after bench/lib.sh):
# Debian's graphite-web 1.1.8 serving the demo's whisper tree, without Apache.
#
# start_graphite_web WHISPER_DIR: a settings module of our own in
# $work/graphite-web (graphite.settings imports the module named by
# GRAPHITE_SETTINGS_MODULE from PYTHONPATH), `graphite-manage migrate`, then
# `graphite-manage runserver` on a free loopback port; sets graphite_url.
# graphite.settings looks for static files in a directory Debian does not
# ship, and Django serves none with DEBUG off: haproxystats_demo_web serves
# Debian's /usr/share/graphite-web/static to the dashboard page.
start_graphite_web() {
    local whisper=$1 dir="$work/graphite-web" port
    mkdir -p "$dir/storage" "$dir/log" "$whisper"
    cat >"$dir/haproxystats_demo_graphite.py" <<PY
SECRET_KEY = "haproxystats-demo-$RANDOM$RANDOM"
STORAGE_DIR = "$dir/storage"
WHISPER_DIR = "$whisper"
# graphite.settings leaves out a WHISPER_DIR that does not exist yet, as
# before carbon-cache's first write.
STANDARD_DIRS = ["$whisper"]
LOG_DIR = "$dir/log"
INDEX_FILE = "$dir/storage/index"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "$dir/storage/graphite.db"}}
from graphite.app_settings import *  # noqa: E402,F401,F403
GRAPHITE_WEB_APP_SETTINGS_LOADED = True
ROOT_URLCONF = "haproxystats_demo_web"
STATICFILES_FINDERS = ["haproxystats_demo_web.DebianStatic"]
PY
    cat >"$dir/haproxystats_demo_web.py" <<'PY'
import os

from django.contrib.staticfiles.finders import BaseFinder
from django.http import HttpResponse
from django.urls import include, re_path
from django.views.static import serve

STATIC = "/usr/share/graphite-web/static"


class DebianStatic(BaseFinder):
    """Finds static files in Debian's directory (the dashboard view looks
    its theme's CSS up through the finders)."""

    def find(self, path, all=False):
        full = os.path.join(STATIC, path)
        if os.path.isfile(full):
            return [full] if all else full
        return [] if all else None

    def list(self, ignore_patterns):
        return []


def dashboard_js(request):
    # graphite-web 1.1.8's dashboard.js calls a global htmlEncode that no
    # script defines, so opening a saved dashboard stops at its name.
    with open(STATIC + "/js/dashboard.js", encoding="utf-8") as f:
        body = "var htmlEncode = Ext.util.Format.htmlEncode;\n" + f.read()
    return HttpResponse(body, content_type="application/javascript")


urlpatterns = [
    re_path(r"^static/js/dashboard\.js$", dashboard_js),
    re_path(r"^static/(?P<path>.*)$", serve, {"document_root": STATIC}),
    re_path(r"", include("graphite.urls")),
]
PY
    export PYTHONPATH="$dir" GRAPHITE_SETTINGS_MODULE=haproxystats_demo_graphite
    graphite-manage migrate --verbosity 0 >"$dir/log/migrate.log" 2>&1 \
        || die "graphite-manage migrate failed; its log: $(tail -n 5 "$dir/log/migrate.log")"
    port=$(free_port)
    setsid graphite-manage runserver --noreload "127.0.0.1:$port" >"$dir/log/runserver.log" 2>&1 &
    pids+=("$!")
    wait_for_port "$port" graphite-web
    graphite_url="http://127.0.0.1:$port"
}

# screenshot_dashboard URL PNG: headless Chromium's picture of a page, after
# its scripts and the graphs' images have loaded.
screenshot_dashboard() {
    local url=$1 png=$2 budget=${3:-8000}
    chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --user-data-dir="$work/chromium" --window-size=1600,780 \
        --virtual-time-budget="$budget" --screenshot="$png" "$url" \
        >"$work/chromium.log" 2>&1 || die "chromium could not take the screenshot; its log: $(tail -n 5 "$work/chromium.log")"
    [ -s "$png" ] || die "chromium wrote no screenshot ($work/chromium.log)"
}
