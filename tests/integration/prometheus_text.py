"""Parsing the Prometheus text exposition format for the metrics tests, and tool lookup."""
import re
import shutil

import pytest

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def unescape(value):
    return re.sub(r'\\[\\"n]', lambda m: UNESCAPE[m.group(0)], value)


class Metrics:
    """One scrape: {(name, sorted label pairs): value} plus each family's TYPE."""

    def __init__(self, text):
        self.text = text
        self.types = {}
        self.samples = {}
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ", 3)
                self.types[name] = kind
                continue
            if not line or line.startswith("#"):
                continue
            match = SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            labels = tuple(sorted((k, unescape(v)) for k, v in LABEL.findall(match.group(2) or "")))
            key = (match.group(1), labels)
            assert key not in self.samples, f"duplicate series: {line!r}"
            self.samples[key] = float(match.group(3))

    # The metric name is positional-only: "name" is also a label (mmserve_gpu_info).
    def value(self, metric, /, **labels):
        """The series with exactly these labels; 0 when it does not exist (yet)."""
        return self.samples.get((metric, tuple(sorted(labels.items()))), 0.0)

    def require(self, metric, /, **labels):
        """The series with exactly these labels; AssertionError when it does not exist (for
        claims that the series is exported, where value()'s 0 would hide its absence)."""
        key = (metric, tuple(sorted(labels.items())))
        assert key in self.samples, f"no series {metric}{labels or ''} in the scrape"
        return self.samples[key]

    def series(self, metric, /, **match):
        """[(labels dict, value)] of every series of `metric` whose labels include `match`."""
        out = []
        for (n, labels), v in self.samples.items():
            d = dict(labels)
            if n == metric and all(d.get(k) == val for k, val in match.items()):
                out.append((d, v))
        return out

    def total(self, metric, /, **match):
        return sum(v for _, v in self.series(metric, **match))

    def histograms(self):
        """{(name, labels without le): ([(le, cumulative)], sum, count)} of every histogram."""
        out = {}
        for name, kind in self.types.items():
            if kind != "histogram":
                continue
            for labels, value in self.series(name + "_bucket"):
                le = float(labels.pop("le"))
                key = (name, tuple(sorted(labels.items())))
                out.setdefault(key, [[], None, None])[0].append((le, value))
            for key, entry in out.items():
                if key[0] == name:
                    labels = dict(key[1])
                    entry[1] = self.value(name + "_sum", **labels)
                    entry[2] = self.value(name + "_count", **labels)
        return out


def scrape(server):
    status, headers, body = server.get("/metrics")
    assert status == 200, body
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return Metrics(body)


def tool(name):
    """The path of a Prometheus tool, or a skip saying how to get it."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"needs {name} (Debian package prometheus; scripts/deps.sh installs it)")
    return path
