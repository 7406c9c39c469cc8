#!/usr/bin/env python3
"""Checks every target of Grafana dashboards against a graphite-web render API.

    check_targets.py --graphite http://127.0.0.1:8080 [--var NAME=VALUE]...
                     [--from -10min] [--wait SECONDS] DASHBOARD.json...

Template variables are expanded first: NAME=VALUE from the command line, else
a textbox variable's value, else a query variable's `metrics/find` answer
with the variable's regex applied, which must not be empty: for a variable
with "All", what Grafana sends for All (its allValue, or every value as a
`{a,b}` glob); the first value otherwise. Then each target, and each path
expression inside it, is sent to `/render?format=json`: each must return at
least one series with at least one non-null point, so a path that names a
metric haproxystats does not send fails even inside `sumSeries(good, wrong)`;
so does each path a brace pattern stands for, so that `a.{good,wrong}` fails.
Targets that fail are tried again until --wait seconds have passed (carbon may
still hold the newest points in its cache). Exit 0 when all pass, 1 with one
line per failing target, 2 on bad usage or an unreadable dashboard.
Standard library only.
"""
import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")


class Failure(Exception):
    """A target or variable that does not give what the dashboard needs."""


class Graphite:
    def __init__(self, base, since):
        self.base = base.rstrip("/")
        self.since = since

    def get(self, path, **params):
        url = "%s%s?%s" % (self.base, path, urllib.parse.urlencode(params))
        try:
            with urllib.request.urlopen(url, timeout=30) as reply:
                return json.load(reply)
        except urllib.error.HTTPError as err:
            body = err.read().decode("utf-8", "replace").strip().splitlines()
            raise Failure("HTTP %d from %s: %s" % (err.code, path, body[-1] if body else ""))
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise Failure("%s: %s" % (url, err))

    def find(self, query):
        return [node["text"] for node in self.get("/metrics/find", query=query)]

    def require_data(self, target):
        series = self.get("/render", target=target, format="json", **{"from": self.since})
        if not series:
            raise Failure("no series")
        if not any(v is not None for s in series for v, _ in s["datapoints"]):
            raise Failure("%d series, every point null" % len(series))


def expand(text, values):
    def one(match):
        name = next(g for g in match.groups() if g)
        if name not in values:
            raise Failure("unknown template variable $%s" % name)
        return values[name]

    return VAR.sub(one, text)


def js_regex(regex):
    """A Grafana variable regex `/.../flags` as a Python pattern."""
    if not regex:
        return None
    m = re.fullmatch(r"/(.*)/(\w*)", regex)
    body, flags = (m.group(1), m.group(2)) if m else (regex, "")
    return re.compile(body, re.IGNORECASE if "i" in flags else 0)


def resolve_variables(board, given, graphite):
    values = {}
    for var in board.get("templating", {}).get("list", []):
        name, kind = var["name"], var.get("type")
        if name in given:
            values[name] = given[name]
        elif kind in ("textbox", "constant", "custom"):
            current = var.get("current", {}).get("value") or var.get("query", "")
            values[name] = current.split(",")[0] if kind == "custom" else current
        elif kind == "query":
            query = var.get("query", "")
            query = query.get("target", "") if isinstance(query, dict) else query
            query = expand(query, values)
            found = graphite.find(query)
            pattern = js_regex(var.get("regex", ""))
            if pattern:
                found = [f for f in found if pattern.search(f)]
            if not found:
                raise Failure("variable $%s: metrics/find %r found nothing" % (name, query))
            if var.get("includeAll") and var.get("allValue"):
                values[name] = var["allValue"]
            elif var.get("multi") or var.get("includeAll"):
                values[name] = "{%s}" % ",".join(found) if len(found) > 1 else found[0]
            else:
                values[name] = found[0]
        else:
            raise Failure("variable $%s: type %r is not supported here" % (name, kind))
    return values


def targets(board):
    """(panel title, refId, target) of every visible Graphite target."""
    def walk(panels):
        for panel in panels:
            yield from walk(panel.get("panels", []))
            for t in panel.get("targets", []):
                if t.get("target") and not t.get("hide"):
                    yield panel.get("title", "?"), t.get("refId", "?"), t["target"]

    return list(walk(board.get("panels", [])))


def path_expressions(target):
    """The series paths inside a Graphite target: every argument that is not a
    call, a string, a number or a keyword argument."""
    out = []

    def skip(i):
        while i < len(target) and target[i].isspace():
            i += 1
        return i

    def arg(i):
        i = skip(i)
        if i < len(target) and target[i] in "\"'":
            end = target.find(target[i], i + 1)
            if end < 0:
                raise Failure("unterminated string in %r" % target)
            return end + 1
        j, depth = i, 0
        while j < len(target):
            c = target[j]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            elif depth == 0 and (c in "(),\"'" or c.isspace()):
                break
            j += 1
        token, j = target[i:j], skip(j)
        if j < len(target) and target[j] == "(":
            j += 1
            while True:
                j = skip(j)
                if j < len(target) and target[j] == ")":
                    return j + 1
                j = skip(arg(j))
                if j < len(target) and target[j] == ",":
                    j += 1
                elif j < len(target) and target[j] == ")":
                    return j + 1
                else:
                    raise Failure("cannot parse %r at offset %d" % (target, j))
        if "=" in token:
            # keyword=value: the value follows as its own token
            return arg(j) if j < len(target) and target[j] in "\"'" else j
        if token and not re.fullmatch(r"-?\d+(\.\d*)?|true|false|None", token):
            out.append(token)
        return j

    end = skip(arg(0))
    if end != len(target):
        raise Failure("cannot parse %r at offset %d" % (target, end))
    return out


def alternatives(path):
    """Every path a Graphite brace pattern stands for: `a.{b,c}.{d,e}` gives
    a.b.d, a.b.e, a.c.d, a.c.e; a path without braces, itself."""
    m = re.search(r"\{([^{}]*)\}", path)
    if not m:
        return [path]
    return [out for alt in m.group(1).split(",")
            for out in alternatives(path[:m.start()] + alt + path[m.end():])]


def check(graphite, name, title, ref, target):
    """The reason `target` fails, or None."""
    try:
        for path in path_expressions(target):
            for one in alternatives(path):
                try:
                    graphite.require_data(one)
                except Failure as why:
                    raise Failure("path %s: %s" % (one, why))
        graphite.require_data(target)
    except Failure as why:
        return "FAIL %s / %s / %s: %s: %s" % (name, title, ref, target, why)
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--graphite", required=True, help="graphite-web base URL")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--from", dest="since", default="-10min")
    parser.add_argument("--wait", type=float, default=30.0, metavar="SECONDS")
    parser.add_argument("dashboards", nargs="+")
    args = parser.parse_args()
    given = {}
    for pair in args.var:
        name, sep, value = pair.partition("=")
        if not sep:
            parser.error("--var %r: expected NAME=VALUE" % pair)
        given[name] = value
    graphite = Graphite(args.graphite, args.since)

    pending = []
    for path in args.dashboards:
        try:
            with open(path, encoding="utf-8") as f:
                board = json.load(f)
        except (OSError, ValueError) as err:
            print("check_targets: %s: %s" % (path, err), file=sys.stderr)
            return 2
        name = board.get("title", path)
        try:
            values = resolve_variables(board, given, graphite)
        except Failure as why:
            print("FAIL %s: %s" % (name, why))
            return 1
        found = targets(board)
        if not found:
            print("FAIL %s: no targets" % name)
            return 1
        for title, ref, target in found:
            try:
                pending.append((name, title, ref, expand(target, values)))
            except Failure as why:
                print("FAIL %s / %s / %s: %s" % (name, title, ref, why))
                return 1

    total = len(pending)
    deadline = time.monotonic() + args.wait
    while True:
        failures = [(t, check(graphite, *t)) for t in pending]
        failures = [(t, why) for t, why in failures if why]
        if not failures or time.monotonic() >= deadline:
            break
        pending = [t for t, _ in failures]
        time.sleep(2)
    for _, why in failures:
        print(why)
    if failures:
        print("check_targets: %d of %d targets return no data" % (len(failures), total))
        return 1
    print("check_targets: all %d targets of %d dashboard(s) return data"
          % (total, len(args.dashboards)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
