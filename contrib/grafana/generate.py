#!/usr/bin/env python3
"""Writes the Grafana dashboards of contrib/grafana/ from one list of panels.

The Load balancer and Cluster dashboards show the same HAProxy statistics under
two path roots (SPEC §4 and §7), so their panels are written once here and the
JSON files are generated, never edited by hand:

    contrib/grafana/generate.py           rewrite load-balancer.json, cluster.json
    contrib/grafana/generate.py --check   exit 1 if either file is not what this writes

Each target is a Graphite expression in which `$p` stands for the path root
(`$namespace.$host.haproxy` or `$namespace.$cluster_namespace.$cluster.haproxy`).
Counters become rates with perSecond (per second of the series' step, which is
the pull interval when whisper's retention matches it); gauges are shown as
they are. Only the standard library: CI runs it with python3 as it comes.
"""
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DS = {"type": "graphite", "uid": "${DS_GRAPHITE}"}

# Aliases: the last path nodes name a series whatever the namespace's depth.
FE = "$p.frontend.$frontend"
BE = "$p.backend.$backend"
SRV = "$p.backend.$backend.server.$server"
D = "$p.daemon"
SELF = "$p.haproxystats"


def by(expr, *nodes):
    """aliasByNode with nodes counted from the end of the path."""
    return "aliasByNode(%s, %s)" % (expr, ", ".join(str(n) for n in nodes))


def rate(path, *nodes):
    return by("perSecond(%s)" % path, *nodes)


def delta(path, *nodes):
    """Events per pull interval: for counters of rare events (restarts, drops)."""
    return by("nonNegativeDerivative(%s)" % path, *nodes)


def panel(title, unit, description, *targets, main=False):
    return {
        "title": title,
        "unit": unit,
        "description": description,
        "targets": list(targets),
        "main": main,
    }


TRAFFIC = (
    "Frontends",
    [
        panel(
            "Request rate",
            "reqps",
            "HTTP requests per second per frontend: perSecond of show stat field "
            "req_tot (requests received); req_rate is HAProxy's own rate over the last second.",
            rate(FE + ".req_tot", -2, -1),
            by(FE + ".req_rate", -2, -1),
            main=True,
        ),
        panel(
            "Session rate and its limit",
            "ops",
            "Sessions per second per frontend: perSecond of stot (sessions opened); "
            "rate is HAProxy's rate over the last second, rate_lim the configured "
            "limit (0 = none).",
            rate(FE + ".stot", -2, -1),
            by(FE + ".{rate,rate_lim}", -2, -1),
        ),
        panel(
            "Sessions against their limit",
            "short",
            "Current sessions (scur) per frontend against the configured limit "
            "(slim, maxconn) and the highest seen (smax).",
            by(FE + ".{scur,slim,smax}", -2, -1),
        ),
        panel(
            "Connection rate",
            "ops",
            "Connections accepted per second: perSecond of conn_tot; conn_rate is "
            "HAProxy's rate over the last second, conn_rate_max its peak.",
            rate(FE + ".conn_tot", -2, -1),
            by(FE + ".{conn_rate,conn_rate_max}", -2, -1),
        ),
        panel(
            "HTTP responses by class",
            "reqps",
            "Responses per second per status class: perSecond of hrsp_1xx .. "
            "hrsp_5xx and hrsp_other.",
            rate(FE + ".hrsp_*", -2, -1),
            main=True,
        ),
        panel(
            "Errors and denials",
            "ops",
            "Per second: request errors (ereq), denied requests (dreq), denied "
            "responses (dresp), connections and sessions denied by tcp rules "
            "(dcon, dses).",
            rate(FE + ".{ereq,dreq,dresp,dcon,dses}", -2, -1),
        ),
        panel(
            "Bytes in and out",
            "Bps",
            "Bytes per second received from clients (bin) and sent to them (bout).",
            rate(FE + ".{bin,bout}", -2, -1),
        ),
    ],
)

BACKENDS = (
    "Backends",
    [
        panel(
            "Request rate",
            "reqps",
            "Per backend: HTTP requests per second (perSecond of req_tot) and "
            "connections handed to a server per second (perSecond of lbtot).",
            rate(BE + ".{req_tot,lbtot}", -2, -1),
        ),
        panel(
            "Response times",
            "ms",
            "Mean over the last 1024 requests, averaged over the processes that "
            "served any: queue time (qtime), connect time (ctime), response time "
            "(rtime), total time (ttime).",
            by(BE + ".{qtime,ctime,rtime,ttime}", -2, -1),
            main=True,
        ),
        panel(
            "HTTP responses by class",
            "reqps",
            "Responses per second per status class: perSecond of hrsp_1xx .. "
            "hrsp_5xx and hrsp_other.",
            rate(BE + ".hrsp_*", -2, -1),
        ),
        panel(
            "Errors and retries",
            "ops",
            "Per second: connection errors (econ), response errors (eresp), "
            "retries (wretr), redispatches (wredis), aborts by the client "
            "(cli_abrt) and by the server (srv_abrt).",
            rate(BE + ".{econ,eresp,wretr,wredis,cli_abrt,srv_abrt}", -2, -1),
        ),
        panel(
            "Servers and weights",
            "short",
            "Servers configured (TotalServers, distinct names), active and backup "
            "servers up (act, bck) and the backend's total weight (weight).",
            by(BE + ".{TotalServers,act,bck,weight}", -2, -1),
        ),
        panel(
            "Sessions and queue",
            "short",
            "Current sessions (scur) against the limit (slim); requests waiting "
            "for a server (qcur) and the most seen (qmax).",
            by(BE + ".{scur,slim,qcur,qmax}", -2, -1),
        ),
        panel(
            "Downtime and transitions",
            "short",
            "Seconds down (downtime, a counter) and UP to DOWN transitions "
            "(chkdown) in each pull interval.",
            delta(BE + ".{downtime,chkdown}", -2, -1),
        ),
    ],
)

SERVERS = (
    "Servers",
    [
        panel(
            "Request rate",
            "ops",
            "Connections handed to each server per second: perSecond of lbtot "
            "(times the server was selected).",
            rate(SRV + ".lbtot", -4, -2, -1),
            main=True,
        ),
        panel(
            "Response times",
            "ms",
            "Per server: qtime, ctime, rtime, ttime (mean over the last 1024 "
            "requests, averaged over the processes that served any).",
            by(SRV + ".{qtime,ctime,rtime,ttime}", -4, -2, -1),
        ),
        panel(
            "Weight and throttle",
            "short",
            "The server's effective weight (weight) and its slow-start "
            "throttle in percent (throttle).",
            by(SRV + ".{weight,throttle}", -4, -2, -1),
        ),
        panel(
            "Sessions and queue",
            "short",
            "Current sessions (scur) against the server's maxconn (slim); "
            "requests queued for it (qcur).",
            by(SRV + ".{scur,slim,qcur}", -4, -2, -1),
        ),
        panel(
            "HTTP responses by class",
            "reqps",
            "Responses per second per status class: perSecond of hrsp_1xx .. "
            "hrsp_5xx and hrsp_other.",
            rate(SRV + ".hrsp_*", -4, -2, -1),
        ),
        panel(
            "Errors, retries and failed checks",
            "ops",
            "Per second: econ, eresp, wretr, wredis, cli_abrt, srv_abrt, failed "
            "health checks (chkfail) and UP to DOWN transitions (chkdown).",
            rate(SRV + ".{econ,eresp,wretr,wredis,cli_abrt,srv_abrt,chkfail,chkdown}", -4, -2, -1),
        ),
    ],
)

DAEMON = (
    "HAProxy processes",
    [
        panel(
            "CPU usage across processes",
            "percent",
            "CpuUsagePct = 100 - Idle_pct (show info) of each process: the 25th to "
            "99th percentiles across processes (nearest rank) and their sample "
            "standard deviation. Sent when there is more than one process.",
            by(D + ".{25,50,75,95,99}PercentileCpuUsagePct", -1),
            by(D + ".StdCpuUsagePct", -1),
            main=True,
        ),
        panel(
            "CPU usage per process",
            "percent",
            "CpuUsagePct of each process (per-process-metrics = true), named by "
            "Process_num or, since HAProxy 2.5, by the stats socket.",
            by(D + ".process.*.CpuUsagePct", -2),
        ),
        panel(
            "Limits in use",
            "percent",
            "calculate-percentages = true: CurrConns/Maxconn (ConnPercentage), "
            "ConnRate/ConnRateLimit, CurrSslConns/MaxSslConns, SslRate/SslRateLimit, "
            "summed over processes; 0 when there is no limit.",
            by(D + ".{ConnPercentage,ConnRatePercentage,SslConnPercentage,SslRatePercentage}", -1),
        ),
        panel(
            "Connections against their limit",
            "short",
            "Current connections (CurrConns) against Maxconn and Hard_maxconn, "
            "summed over processes.",
            by(D + ".{CurrConns,Maxconn,Hard_maxconn}", -1),
        ),
        panel(
            "Connection and session rates against limits",
            "ops",
            "ConnRate and SessRate (per second, HAProxy's own) against "
            "ConnRateLimit and SessRateLimit; perSecond of CumConns and CumReq.",
            by(D + ".{ConnRate,ConnRateLimit,SessRate,SessRateLimit}", -1),
            rate(D + ".{CumConns,CumReq}", -1),
        ),
        panel(
            "SSL against limits",
            "short",
            "SSL connections (CurrSslConns) against MaxSslConns; SslRate against "
            "SslRateLimit; SSL key computations per second (SslFrontendKeyRate).",
            by(D + ".{CurrSslConns,MaxSslConns,SslRate,SslRateLimit,SslFrontendKeyRate}", -1),
        ),
        panel(
            "Run queue and tasks",
            "short",
            "Tasks in the run queue (Run_queue) and tasks in total (Tasks), "
            "summed over processes.",
            by(D + ".{Run_queue,Tasks}", -1),
        ),
        panel(
            "Uptime",
            "s",
            "Uptime_sec, the mean over processes: a drop is a reload or a restart.",
            by(D + ".Uptime_sec", -1),
        ),
    ],
)

SELF_ROW = (
    "haproxystats",
    [
        panel(
            "Processing wall-clock time",
            "s",
            "Seconds haproxystats spent on each snapshot: in total "
            "(TotalWallClockTime) and per part (WallClockTime*).",
            by(SELF + ".{TotalWallClockTime,WallClockTime*}", -1),
            main=True,
        ),
        panel(
            "Metrics per snapshot",
            "short",
            "Lines sent per snapshot for the daemon, frontends, backends and "
            "servers (Metrics*).",
            by(SELF + ".Metrics*", -1),
        ),
        panel(
            "Queue and sink backlogs",
            "short",
            "Snapshots waiting for a processor (QueueDepth) and lines waiting in "
            "each enabled sink's backlog (GraphiteBacklog, KafkaBacklog, ...).",
            by(SELF + ".{QueueDepth,*Backlog}", -1),
        ),
        panel(
            "Dropped lines",
            "short",
            "Lines each sink dropped from a full backlog (*DroppedLines) in each "
            "pull interval: anything above 0 is lost data.",
            delta(SELF + ".*DroppedLines", -1),
        ),
        panel(
            "Restarts and quarantined snapshots",
            "short",
            "In each pull interval: children restarted (ChildRestarts), processor "
            "panics (ProcessorPanics), snapshots moved to <src-dir>.failed "
            "(QuarantinedSnapshots), Graphite reconnections (GraphiteReconnects).",
            delta(SELF + ".{ChildRestarts,ProcessorPanics,QuarantinedSnapshots,GraphiteReconnects}", -1),
        ),
    ],
)

CLUSTER_ROW = (
    "Cluster",
    [
        panel(
            "Load balancers reporting",
            "short",
            "Load balancers whose snapshot is in the cluster's window "
            "(LoadBalancersReporting) against those expected "
            "(LoadBalancersExpected: reported within [central] lb-timeout).",
            by(SELF + ".{LoadBalancersReporting,LoadBalancersExpected}", -1),
            main=True,
        ),
        panel(
            "Late snapshots",
            "short",
            "Partials that arrived after their window was emitted (LateSnapshots), "
            "in each window: their per-LB lines went out, the cluster lines did not "
            "change.",
            delta(SELF + ".LateSnapshots", -1),
        ),
    ],
)


def query_var(name, query, multi=False, regex=""):
    var = {
        "name": name,
        "label": name,
        "type": "query",
        "datasource": DS,
        "query": query,
        "definition": query,
        "refresh": 1,
        "regex": regex,
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
        "current": {},
        "options": [],
        "hide": 0,
    }
    if multi:
        # "All" by default, sent as `*`: a glob of every name would make long
        # URLs on load balancers with hundreds of backends.
        var.update(allValue="*", current={"text": "All", "value": "$__all"})
    return var


def textbox_var(name, value, description):
    return {
        "name": name,
        "label": name.replace("_", " "),
        "type": "textbox",
        "description": description,
        "query": value,
        "current": {"text": value, "value": value},
        "options": [{"selected": True, "text": value, "value": value}],
        "hide": 0,
    }


def proxy_vars(root):
    return [
        query_var("frontend", root + ".frontend.*", multi=True),
        query_var("backend", root + ".backend.*", multi=True),
        query_var("server", root + ".backend.$backend.server.*", multi=True),
    ]


def panels_json(rows, root):
    out, y, ident = [], 0, 1
    for title, panels in rows:
        out.append({
            "type": "row",
            "title": title,
            "id": ident,
            "collapsed": False,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
            "panels": [],
        })
        ident, y = ident + 1, y + 1
        for i, p in enumerate(panels):
            out.append({
                "type": "timeseries",
                "id": ident,
                "title": p["title"],
                "description": p["description"],
                "datasource": DS,
                "gridPos": {"h": 8, "w": 8, "x": 8 * (i % 3), "y": y + 8 * (i // 3)},
                "fieldConfig": {
                    "defaults": {
                        "unit": p["unit"],
                        "custom": {"lineWidth": 1, "fillOpacity": 10, "spanNulls": True},
                    },
                    "overrides": [],
                },
                "options": {
                    "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"},
                },
                "targets": [
                    {"refId": chr(ord("A") + k), "target": t.replace("$p", root)}
                    for k, t in enumerate(p["targets"])
                ],
                # Read by contrib/grafana/to_graphite_web.py; Grafana ignores it.
                "haproxystatsMain": p["main"],
            })
            ident += 1
        y += 8 * ((len(panels) + 2) // 3)
    return out


def dashboard(uid, title, description, variables, rows, root):
    return {
        "__inputs": [{
            "name": "DS_GRAPHITE",
            "label": "Graphite",
            "description": "The Graphite that haproxystats sends to",
            "type": "datasource",
            "pluginId": "graphite",
            "pluginName": "Graphite",
        }],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
            {"type": "datasource", "id": "graphite", "name": "Graphite", "version": "1.0.0"},
            {"type": "panel", "id": "timeseries", "name": "Time series", "version": ""},
        ],
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["haproxy", "haproxystats"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "10s",
        "timezone": "",
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": variables},
        "panels": panels_json(rows, root),
    }


def load_balancer():
    root = "$namespace.$host.haproxy"
    return dashboard(
        "haproxystats-lb",
        "HAProxy load balancer (haproxystats)",
        "One load balancer: what haproxystats sends under "
        "<namespace>.<host>.haproxy (prefix-hostname = true).",
        # Not the cluster lines of haproxystats central (default cluster-namespace).
        [query_var("namespace", "*"), query_var("host", "$namespace.*", regex="/^(?!clusters$)/")]
        + proxy_vars(root),
        [TRAFFIC, BACKENDS, SERVERS, DAEMON, SELF_ROW],
        root,
    )


def cluster():
    root = "$namespace.$cluster_namespace.$cluster.haproxy"
    return dashboard(
        "haproxystats-cluster",
        "HAProxy cluster (haproxystats central)",
        "One cluster of load balancers: what haproxystats central sends under "
        "<namespace>.<cluster-namespace>.<cluster>.haproxy (SPEC §7).",
        [
            query_var("namespace", "*"),
            textbox_var("cluster_namespace", "clusters", "[central] cluster-namespace"),
            query_var("cluster", "$namespace.$cluster_namespace.*"),
        ] + proxy_vars(root),
        [CLUSTER_ROW, TRAFFIC, BACKENDS, SERVERS, DAEMON],
        root,
    )


def render(board):
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def main(argv):
    check = argv[1:] == ["--check"]
    if argv[1:] and not check:
        print("usage: generate.py [--check]", file=sys.stderr)
        return 2
    stale = []
    for name, board in [("load-balancer.json", load_balancer()), ("cluster.json", cluster())]:
        path = HERE / name
        text = render(board)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print("generate.py: %s not up to date: run contrib/grafana/generate.py"
              % ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
