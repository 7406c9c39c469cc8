#!/usr/bin/env python3
"""Saves the main panels of a Grafana dashboard as a graphite-web dashboard.

    to_graphite_web.py --graphite URL --name NAME [--var NAME=VALUE]... DASHBOARD.json

The panels marked `"haproxystatsMain": true` by generate.py become graphs of
graphite-web's own dashboard page (`URL/dashboard/NAME`), with the template
variables expanded as check_targets.py expands them. The graphs draw with the
fixed colours of LINE_COLOURS on white, so that a screenshot can be checked
for drawn lines (png_lines.py). Standard library only.
"""
import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

from check_targets import Failure, Graphite, expand, resolve_variables

# Colours graphite-web draws series in; png_lines.py counts pixels of them.
LINE_COLOURS = ["e6194b", "3cb44b", "4363d8", "f58231", "911eb4", "42d4f4", "f032e6", "9a6324"]
GRAPH = {"width": 515, "height": 280}


def state(board, name, values, minutes):
    graphs, row = [], ""
    for panel in board["panels"]:
        if panel.get("type") == "row":
            row = panel["title"] + ": "
        if not panel.get("haproxystatsMain"):
            continue
        params = {
            "title": row + panel["title"],
            "target": [expand(t["target"], values) for t in panel["targets"]],
        }
        graphs.append(["graph%d" % len(graphs), params, "render?" + urllib.parse.urlencode(params, doseq=True)])
    if not graphs:
        raise Failure("%s: no panel is marked haproxystatsMain" % board.get("title"))
    return {
        "name": name,
        "timeConfig": {
            "type": "relative",
            "relativeStartQuantity": str(minutes),
            "relativeStartUnits": "minutes",
            "relativeUntilQuantity": "",
            "relativeUntilUnits": "now",
        },
        "refreshConfig": {"enabled": True, "interval": 10000},
        "graphSize": GRAPH,
        "defaultGraphParams": dict(
            GRAPH,
            **{
                "from": "-%dminutes" % minutes,
                "until": "now",
                "bgcolor": "ffffff",
                "fgcolor": "000000",
                "majorGridLineColor": "c0c0c0",
                "minorGridLineColor": "e8e8e8",
                "colorList": ",".join(LINE_COLOURS),
                "lineWidth": "2",
            }
        ),
        "graphs": graphs,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--graphite", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--minutes", type=int, default=10, help="time range shown")
    parser.add_argument("dashboard")
    args = parser.parse_args()
    given = dict(pair.partition("=")[::2] for pair in args.var)
    graphite = Graphite(args.graphite, "-10min")
    try:
        with open(args.dashboard, encoding="utf-8") as f:
            board = json.load(f)
        body = urllib.parse.urlencode(
            {"state": json.dumps(state(board, args.name, resolve_variables(board, given, graphite), args.minutes))}
        ).encode()
        url = "%s/dashboard/save/%s" % (args.graphite.rstrip("/"), urllib.parse.quote(args.name))
        with urllib.request.urlopen(url, data=body, timeout=30) as reply:
            answer = json.load(reply)
    except (OSError, ValueError, Failure) as err:
        print("to_graphite_web: %s: %s" % (args.dashboard, err), file=sys.stderr)
        return 1
    if not answer.get("success"):
        print("to_graphite_web: graphite-web refused the dashboard: %s" % answer, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
