#!/usr/bin/env python3
"""Tests of contrib/grafana/ that need no graphite-web (CI runs them with
`python3 -m unittest discover -s contrib/grafana`); the dashboards' targets
themselves are checked against graphite-web by contrib/demo/run.sh --once."""
import json
import os
import struct
import tempfile
import unittest
import zlib
from pathlib import Path

import check_targets
import generate
import png_lines
from to_graphite_web import LINE_COLOURS

HERE = Path(__file__).resolve().parent
DASHBOARDS = [HERE / "load-balancer.json", HERE / "cluster.json"]


class PathExpressions(unittest.TestCase):
    def test_paths_inside_calls_are_found_and_arguments_are_not(self):
        self.assertEqual(
            check_targets.path_expressions(
                'aliasByNode(perSecond(a.b.{x,y}.c), -2, -1)'),
            ["a.b.{x,y}.c"])
        self.assertEqual(
            check_targets.path_expressions(
                'sumSeries(a.b, alias(c.d, "x, y (z)"), e.*.f)'),
            ["a.b", "c.d", "e.*.f"])
        self.assertEqual(
            check_targets.path_expressions("movingAverage(a.b, '1min', xFilesFactor=0.5)"),
            ["a.b"])
        self.assertEqual(check_targets.path_expressions("a.b.c"), ["a.b.c"])

    def test_braces_give_every_path_they_stand_for(self):
        self.assertEqual(
            check_targets.alternatives("a.{b,c}.x.{d,e}"),
            ["a.b.x.d", "a.b.x.e", "a.c.x.d", "a.c.x.e"])
        self.assertEqual(check_targets.alternatives("a.*.b"), ["a.*.b"])

    def test_broken_targets_are_refused(self):
        for target in ["sumSeries(a.b", "alias(a.b, 'x)", "a.b) c"]:
            with self.assertRaises(check_targets.Failure, msg=target):
                check_targets.path_expressions(target)


class Variables(unittest.TestCase):
    def test_every_syntax_expands_and_a_longer_name_is_not_cut(self):
        values = {"cluster": "c", "cluster_namespace": "clusters", "ns": "n"}
        self.assertEqual(
            check_targets.expand("$ns.$cluster_namespace.${cluster}.[[cluster]].x", values),
            "n.clusters.c.c.x")

    def test_an_unknown_variable_fails(self):
        with self.assertRaises(check_targets.Failure):
            check_targets.expand("$namespace.$nope.x", {"namespace": "n"})

    def test_grafana_regex_syntax(self):
        pattern = check_targets.js_regex("/^(?!clusters$)/i")
        self.assertTrue(pattern.search("lb1"))
        self.assertFalse(pattern.search("Clusters"))


class Dashboards(unittest.TestCase):
    def test_files_are_what_generate_py_writes(self):
        for name, board in [("load-balancer.json", generate.load_balancer()),
                            ("cluster.json", generate.cluster())]:
            self.assertEqual((HERE / name).read_text(), generate.render(board), name)

    def test_every_panel_has_a_unit_a_description_and_targets_with_known_variables(self):
        for path in DASHBOARDS:
            board = json.loads(path.read_text())
            names = {v["name"] for v in board["templating"]["list"]}
            values = {n: "x" for n in names}
            panels = [p for p in board["panels"] if p["type"] != "row"]
            self.assertTrue(panels, path.name)
            for p in panels:
                where = "%s / %s" % (path.name, p["title"])
                self.assertTrue(p["fieldConfig"]["defaults"]["unit"], where)
                self.assertGreater(len(p["description"]), 20, where)
                self.assertTrue(p["targets"], where)
                for t in p["targets"]:
                    check_targets.expand(t["target"], values)
                    self.assertTrue(check_targets.path_expressions(t["target"]), where)
            ids = [p["id"] for p in board["panels"]]
            self.assertEqual(len(ids), len(set(ids)), path.name)

    def test_counters_are_rates_and_gauges_are_not(self):
        counters = {"req_tot", "stot", "conn_tot", "bin", "bout", "lbtot", "CumConns", "CumReq"}
        gauges = {"scur", "slim", "qcur", "weight", "CurrConns", "Maxconn", "ctime", "rtime"}
        board = generate.load_balancer()
        for p in board["panels"]:
            for t in p.get("targets", []):
                target = t["target"]
                for path in check_targets.path_expressions(target):
                    last = path.rsplit(".", 1)[-1].strip("{}").split(",")
                    where = "%s: %s" % (p["title"], target)
                    if counters.intersection(last):
                        self.assertIn("perSecond(", target, where)
                    if gauges.intersection(last):
                        self.assertNotIn("perSecond(", target, where)


def png(width, height, rgba_rows, filters):
    """A PNG (colour type 6) with each row encoded by the given filter."""
    def paeth(a, b, c):
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        return a if pa <= pb and pa <= pc else b if pb <= pc else c

    raw, prev = bytearray(), bytes(width * 4)
    for row, kind in zip(rgba_rows, filters):
        out = bytearray([kind])
        for i, x in enumerate(row):
            a = row[i - 4] if i >= 4 else 0
            b, c = prev[i], prev[i - 4] if i >= 4 else 0
            pred = [0, a, b, (a + b) >> 1, paeth(a, b, c)][kind]
            out.append((x - pred) & 255)
        raw += out
        prev = row

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(raw)))
            + chunk(b"IEND", b""))


class Screenshot(unittest.TestCase):
    def write(self, data):
        f = tempfile.NamedTemporaryFile(suffix=".png", delete=False)
        f.write(data)
        f.close()
        self.addCleanup(os.unlink, f.name)
        return f.name

    def test_line_pixels_are_counted_through_every_filter(self):
        line, other = bytes.fromhex(LINE_COLOURS[1]) + b"\xff", b"\x10\x20\x30\xff"
        width = 7
        rows = [bytes(line * (y % 3) + other * (width - y % 3)) for y in range(10)]
        path = self.write(png(width, 10, rows, [0, 1, 2, 3, 4, 4, 3, 2, 1, 0]))
        counts = png_lines.line_pixels(path)
        self.assertEqual(counts[LINE_COLOURS[1]], sum(y % 3 for y in range(10)))
        self.assertEqual(sum(counts.values()), counts[LINE_COLOURS[1]])

    def test_a_blank_image_has_no_line_pixels(self):
        rows = [b"\xff\xff\xff\xff" * 5] * 5
        self.assertFalse(any(png_lines.line_pixels(self.write(png(5, 5, rows, [4] * 5))).values()))

    def test_not_a_png_is_an_error(self):
        with self.assertRaises(png_lines.PngError):
            png_lines.line_pixels(self.write(b"GIF89a"))


if __name__ == "__main__":
    unittest.main()
