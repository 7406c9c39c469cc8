#!/usr/bin/python3
"""Prints the cluster windows of `haproxystats central` found in whisper.

    cluster_windows.py --whisper DIR --namespace NS [--cluster-namespace clusters]
                       --cluster NAME=LB[,LB...] [--after NAME=T]... [--minutes 10]

For each cluster, every window T after --after's (none: every window of the
last --minutes) whose `LoadBalancersReporting` is in whisper, in T order, as
one line of space-separated fields:

    CLUSTER T REPORTING EXPECTED LATE REQ LB=REQ...

REQ is the cluster's `frontend.fe_web.req_tot` at T, each LB=REQ the same
counter in that LB's own lines at T (the snapshot that went into the window,
the LBs pulling once per window): the cluster's is their sum when every LB
reported. A value not in whisper is `?`: a window waits for its values
until a later window of its cluster is in whisper (carbon-cache writes a
window's metrics one file after the other, an LB that did not report has
none). Exit 0, 2 on bad usage.

Debian's /usr/bin/python3, for its python3-whisper (as whisper-fetch).
"""
import argparse
import os
import sys
import time

import whisper

OWN = ("LoadBalancersReporting", "LoadBalancersExpected", "LateSnapshots")
COUNTER = "frontend.fe_web.req_tot"


def points(whisper_dir, path, since):
    """{T: value} of the non-null points of `path` since `since`."""
    file = os.path.join(whisper_dir, *path.split(".")) + ".wsp"
    try:
        (start, _, step), values = whisper.fetch(file, since)
    except (OSError, whisper.WhisperException):
        return {}
    return {start + i * step: v for i, v in enumerate(values) if v is not None}


def number(value):
    if value is None:
        return "?"
    return str(int(value)) if float(value).is_integer() else "%g" % value


def windows(args, cluster, lbs, after, since):
    root = "%s.%s.%s.haproxy" % (args.namespace, args.cluster_namespace, cluster)
    own = {name: points(args.whisper, "%s.haproxystats.%s" % (root, name), since) for name in OWN}
    req = points(args.whisper, "%s.%s" % (root, COUNTER), since)
    per_lb = {lb: points(args.whisper, "%s.%s.haproxy.%s" % (args.namespace, lb, COUNTER), since)
              for lb in lbs}
    found = sorted(t for t in own["LoadBalancersReporting"] if t > after)
    out = []
    for i, t in enumerate(found):
        complete = (all(t in own[name] for name in OWN) and t in req
                    and all(t in per_lb[lb] for lb in lbs))
        if not complete and i == len(found) - 1:
            break
        fields = [cluster, str(t)] + [number(own[name].get(t)) for name in OWN]
        fields.append(number(req.get(t)))
        fields += ["%s=%s" % (lb, number(per_lb[lb].get(t))) for lb in lbs]
        out.append(" ".join(fields))
    return out


def pairs(values, option, parser):
    out = {}
    for pair in values:
        name, sep, value = pair.partition("=")
        if not sep or not name or not value:
            parser.error("%s %r: expected NAME=VALUE" % (option, pair))
        out[name] = value
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--whisper", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--cluster-namespace", default="clusters")
    parser.add_argument("--cluster", action="append", required=True, metavar="NAME=LB[,LB...]")
    parser.add_argument("--after", action="append", default=[], metavar="NAME=T")
    parser.add_argument("--minutes", type=int, default=10)
    args = parser.parse_args()
    clusters = {name: lbs.split(",") for name, lbs in pairs(args.cluster, "--cluster", parser).items()}
    after = pairs(args.after, "--after", parser)
    try:
        after = {name: int(t) for name, t in after.items()}
    except ValueError as err:
        parser.error("--after: %s" % err)
    since = int(time.time()) - 60 * args.minutes
    for cluster, lbs in clusters.items():
        for line in windows(args, cluster, lbs, after.get(cluster, 0), since):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
