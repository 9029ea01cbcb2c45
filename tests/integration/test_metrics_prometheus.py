"""A real Prometheus server scrapes mmserve on loopback with the shipped scrape configuration,
and PromQL sees the requests just sent; the shipped Grafana dashboard's queries are valid
PromQL over series mmserve really exports."""
import json
import os
import re
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from conftest import STORIES, free_port, needs_stories, running_server
from prometheus_text import scrape, tool

pytestmark = needs_stories

REPO = Path(__file__).resolve().parents[2]
SCRAPE_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "mmserve.json"
FAKE_NVML = os.environ.get("MMSERVE_FAKE_NVML", "")
WAIT_S = 90  # bound on waiting for Prometheus to start and to scrape


class Prometheus:
    def __init__(self, binary, workdir, target_port):
        # The shipped configuration, pointed at this server, scraping every second.
        config = SCRAPE_CONFIG.read_text()
        for shipped, here in (("localhost:8080", f"127.0.0.1:{target_port}"), ("scrape_interval: 15s", "scrape_interval: 1s"),
                              ("scrape_timeout: 5s", "scrape_timeout: 1s")):
            assert shipped in config, shipped
            config = config.replace(shipped, here)
        self.config = workdir / "prometheus.yml"
        self.config.write_text(config)
        self.log = workdir / "prometheus.log"
        for _ in range(3):  # the free port may be taken between the probe and the bind
            self.port = free_port()
            with open(self.log, "w") as log:
                self.proc = subprocess.Popen(
                    [binary, f"--config.file={self.config}", f"--storage.tsdb.path={workdir / 'data'}",
                     f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h"],
                    stdout=log, stderr=subprocess.STDOUT)
            if self.wait_ready():
                return
            self.stop()
        raise AssertionError("Prometheus did not start: " + self.log.read_text()[-2000:])

    def wait_ready(self):
        deadline = time.time() + WAIT_S
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=5) as r:
                    if r.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def query(self, expr):
        """The result of an instant query; fails on a PromQL error."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            body = json.load(e)
        assert body["status"] == "success", (expr, body)
        return body["data"]["result"]

    def wait_for(self, expr, want):
        """Polls (bounded) until `expr` gives the single value `want`; returns the last value."""
        deadline = time.time() + WAIT_S
        got = None
        while time.time() < deadline:
            result = self.query(expr)
            got = float(result[0]["value"][1]) if len(result) == 1 else None
            if got == want:
                return got
            time.sleep(0.2)
        return got

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    binary = tool("prometheus")
    # With the test NVML library, the GPU series exist too, so every dashboard panel has data.
    env = {"MMSERVE_NVML_LIBRARY": FAKE_NVML} if Path(FAKE_NVML).is_file() else {}
    with running_server("-m", STORIES, env=env) as server:
        prometheus = Prometheus(binary, tmp_path_factory.mktemp("prometheus"), server.port)
        try:
            yield server, prometheus
        finally:
            prometheus.stop()


def test_shipped_scrape_config_is_valid():
    promtool = tool("promtool")
    proc = subprocess.run([promtool, "check", "config", str(SCRAPE_CONFIG)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_prometheus_scrapes_the_requests_just_sent(stack):
    server, prometheus = stack
    for prompt in ("Once upon a time", "The cat sat", "A big dog", "Mom said", "In the park"):
        server.infer(prompt, max_tokens=4, temperature=0)
    for content in ("Hi", "Hello"):
        status, _, body = server.post("/v1/chat/completions", {"messages": [{"role": "user", "content": content}], "max_tokens": 2})
        assert status == 200, body
    assert server.post("/v1/inference", {"input": "hi", "task": "translate"})[0] == 400

    assert prometheus.wait_for('up{job="mmserve"}', 1) == 1, prometheus.log.read_text()[-2000:]
    assert prometheus.wait_for('sum(mmserve_requests_total{job="mmserve"})', 8) == 8
    by_endpoint = {r["metric"]["endpoint"] + " " + r["metric"]["status"]: float(r["value"][1])
                   for r in prometheus.query('sum by (endpoint, status) (mmserve_requests_total{job="mmserve"})')}
    assert by_endpoint == {"/v1/inference 200": 5, "/v1/chat/completions 200": 2, "/v1/inference 400": 1}
    [count] = prometheus.query('sum(mmserve_request_duration_seconds_count{job="mmserve"})')
    assert float(count["value"][1]) == 8
    [tokens] = prometheus.query('sum(mmserve_generated_tokens_total{job="mmserve"})')
    assert float(tokens["value"][1]) == 5 * 4 + 2 * 2


def dashboard_exprs():
    dash = json.loads(DASHBOARD.read_text())
    exprs = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            exprs.append((panel["title"], target["expr"]))
    return dash, exprs


def test_dashboard_is_well_formed():
    dash, exprs = dashboard_exprs()
    assert dash["uid"] == "mmserve" and exprs
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert variables == {"datasource", "instance"}
    for panel in dash["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert '$instance' in target["expr"], (panel["title"], target["expr"])


def test_dashboard_queries_are_valid_promql_over_live_series(stack):
    server, prometheus = stack
    live = scrape(server).types
    _, exprs = dashboard_exprs()
    assert prometheus.wait_for('up{job="mmserve"}', 1) == 1
    for title, expr in exprs:
        for name in re.findall(r"\b((?:mmserve|process)_[a-z_]+)", expr):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            if base.startswith("mmserve_gpu_") and not Path(FAKE_NVML).is_file():
                continue  # no GPU series without NVML
            assert name in live or (base in live and live[base] == "histogram"), (title, name)
        concrete = expr.replace("$__rate_interval", "1m").replace("$instance", ".*")
        result = prometheus.query(concrete)  # asserts it is valid PromQL
        if "rate(" not in expr and (Path(FAKE_NVML).is_file() or "mmserve_gpu_" not in expr):
            assert result, (title, concrete)  # a gauge panel has data as soon as one scrape is in
