"""GET /metrics on a real server: promtool accepts it, counters move by exactly the requests
sent, histograms are cumulative with _count equal to the requests; X-Request-Id; the JSON
request log; GPU series only where NVML is."""
import json
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from conftest import BIN, STORIES, needs_stories, running_server
from prometheus_text import scrape, tool

MODEL = "stories260K"  # the registry name of a single-model server: the file stem

pytestmark = needs_stories

FAKE_NVML = os.environ.get("MMSERVE_FAKE_NVML", "")
UUID4 = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"


def inference(text, max_tokens=8, **extra):
    return {"input": text, "task": "text-gen", "parameters": {"max_tokens": max_tokens, "temperature": 0}, **extra}


def send_mixed_traffic(server):
    """Known requests of every kind; returns what the metrics should count, from the replies."""
    usages = []  # (prompt, cached, completion) per generation

    for prompt in ("Once upon a time", "The cat sat", "Lily found a box"):
        body = server.infer(prompt, max_tokens=6, temperature=0)
        u = body["usage"]
        usages.append((u["prompt_tokens"], u["cached_prompt_tokens"], u["completion_tokens"]))
    for prompt in ("Tom and Sue went", "A big dog"):
        final = [e for e in server.stream("/v1/inference", inference(prompt, 5, stream=True)) if e != "[DONE]"][-1]
        u = final["usage"]
        usages.append((u["prompt_tokens"], u["cached_prompt_tokens"], u["completion_tokens"]))
    status, _, body = server.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4})
    assert status == 200, body
    u = body["usage"]
    usages.append((u["prompt_tokens"], u["prompt_tokens_details"]["cached_tokens"], u["completion_tokens"]))
    events = list(server.stream("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 3,
                                                         "stream": True, "stream_options": {"include_usage": True}}))
    u = [e for e in events if e != "[DONE]" and e.get("usage")][-1]["usage"]
    usages.append((u["prompt_tokens"], u["prompt_tokens_details"]["cached_tokens"], u["completion_tokens"]))
    status, _, body = server.post("/v1/completions", {"prompt": "Once", "max_tokens": 1})
    assert status == 200, body
    u = body["usage"]
    usages.append((u["prompt_tokens"], u["prompt_tokens_details"]["cached_tokens"], u["completion_tokens"]))
    # Refused before any generation: a known task without input, an unknown task, no task.
    assert server.post("/v1/inference", {"task": "text-gen"})[0] == 400
    assert server.post("/v1/inference", {"input": "hi", "task": "translate"})[0] == 400
    assert server.post("/v1/inference", {"input": "hi"})[0] == 400
    # Not inference requests: never counted in mmserve_requests_total.
    assert server.get("/health")[0] == 200
    assert server.get("/v1/models")[0] == 200
    assert server.get("/no/such/route")[0] == 404
    return usages


def test_counters_move_by_exactly_the_requests_sent(stories_server):
    before = scrape(stories_server)
    usages = send_mixed_traffic(stories_server)
    after = scrape(stories_server)

    def delta(name, **labels):
        return after.value(name, **labels) - before.value(name, **labels)

    req = "mmserve_requests_total"
    ok = {"route": "local", "status": "200"}
    assert delta(req, task="text-gen", model=MODEL, endpoint="/v1/inference", **ok) == 5
    assert delta(req, task="text-gen", model=MODEL, endpoint="/v1/chat/completions", **ok) == 2
    assert delta(req, task="text-gen", model=MODEL, endpoint="/v1/completions", **ok) == 1
    # Refused before a model was chosen: model "none".
    assert delta(req, task="text-gen", model="none", endpoint="/v1/inference", route="local", status="400") == 1
    assert delta(req, task="none", model="none", endpoint="/v1/inference", route="local", status="400") == 2
    assert after.total(req) - before.total(req) == 11  # health, models and 404 not counted

    assert delta("mmserve_request_duration_seconds_count", task="text-gen", model=MODEL) == 8
    assert delta("mmserve_request_duration_seconds_count", task="text-gen", model="none") == 1
    assert delta("mmserve_request_duration_seconds_count", task="none", model="none") == 2
    assert delta("mmserve_queue_wait_seconds_count", task="text-gen", model=MODEL) == len(usages)
    assert delta("mmserve_prompt_tokens_total", model=MODEL) == sum(p for p, _, _ in usages)
    assert delta("mmserve_cached_prompt_tokens_total", model=MODEL) == sum(c for _, c, _ in usages)
    assert delta("mmserve_generated_tokens_total", model=MODEL) == sum(n for _, _, n in usages)
    assert delta("mmserve_time_to_first_token_seconds_count") == sum(1 for _, _, n in usages if n > 0)
    assert delta("mmserve_inter_token_latency_seconds_count") == sum(max(0, n - 1) for _, _, n in usages)
    # One observation per decode step. The requests went one at a time, so every step held one
    # sequence; a generation of n tokens takes at least n steps. (The scheduler records a step
    # just after it wakes the request it finished, so the very last step may not be in yet.)
    steps = delta("mmserve_batch_size_count")
    assert steps >= sum(n for _, _, n in usages) - 1
    assert delta("mmserve_batch_size_bucket", le="1") == steps
    assert delta("mmserve_batch_size_sum") == steps
    assert delta("mmserve_audio_seconds_total") == 0 and delta("mmserve_images_total") == 0


def test_histogram_buckets_are_cumulative_and_count_matches(stories_server):
    send_mixed_traffic(stories_server)
    histograms = scrape(stories_server).histograms()
    names = {name for name, _ in histograms}
    assert {"mmserve_request_duration_seconds", "mmserve_queue_wait_seconds", "mmserve_time_to_first_token_seconds",
            "mmserve_inter_token_latency_seconds", "mmserve_batch_size"} <= names
    for (name, labels), (buckets, total, count) in histograms.items():
        les = [le for le, _ in buckets]
        assert les == sorted(les) and les[-1] == float("inf"), (name, les)
        values = [v for _, v in sorted(buckets)]
        assert all(a <= b for a, b in zip(values, values[1:])), (name, labels, values)
        assert values[-1] == count, (name, labels)
        assert total >= 0
    # _count of the request histogram equals the requests counted, per task.
    m = scrape(stories_server)
    for task, model in (("text-gen", MODEL), ("text-gen", "none"), ("none", "none")):
        assert (m.value("mmserve_request_duration_seconds_count", task=task, model=model)
                == m.total("mmserve_requests_total", task=task, model=model))


def test_promtool_accepts_live_metrics(stories_server):
    promtool = tool("promtool")
    send_mixed_traffic(stories_server)  # every family has samples, labelled ones included
    text = scrape(stories_server).text
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_state_gauges_and_build_info(stories_server):
    m = scrape(stories_server)
    assert m.require("mmserve_requests_running", task="text-gen", model=MODEL) == 0
    assert m.require("mmserve_requests_waiting", task="text-gen", model=MODEL) == 0
    assert m.require("mmserve_queue_capacity", task="text-gen", model=MODEL) == 64
    assert 0 <= m.require("mmserve_kv_cache_usage_ratio", model=MODEL) <= 1
    info = json.loads(subprocess.run([BIN, "info", "--json", "-m", str(STORIES)], capture_output=True, text=True,
                                     check=True, timeout=60).stdout)
    assert m.series("mmserve_model_memory_bytes") == [({"model": "stories260K", "device": "CPU"}, info["weights_bytes"])]
    [(labels, value)] = m.series("mmserve_build_info")
    version = subprocess.run([BIN, "--version"], capture_output=True, text=True, check=True, timeout=60).stdout
    assert value == 1
    for key in ("version", "llama_cpp", "whisper_cpp"):
        assert labels[key] and labels[key] in version, (key, labels, version)
    assert "CPU" in labels["backend"].split(",")
    assert m.value("process_resident_memory_bytes") > 1 << 20
    assert m.value("process_start_time_seconds") <= time.time() + 1
    assert m.types["process_cpu_seconds_total"] == "counter"
    assert m.value("mmserve_log_lines_dropped_total") == 0


def test_request_id_is_echoed_sanitised_or_generated(stories_server):
    status, headers, _ = stories_server.post("/v1/inference", inference("Once"), headers={"X-Request-Id": "client-42.a:b_c"})
    assert status == 200 and headers["X-Request-Id"] == "client-42.a:b_c"
    # Unsafe characters are dropped and the length is bounded.
    _, headers, _ = stories_server.get("/health", headers={"X-Request-Id": "a<b>\"c\" d" + "x" * 300})
    assert headers["X-Request-Id"] == "abcd" + "x" * 124
    # Absent (or nothing usable): a fresh UUID on every response, errors and probes included.
    seen = set()
    for method, path, body in [("GET", "/health", None), ("GET", "/ready", None), ("GET", "/metrics", None),
                               ("GET", "/nope", None), ("POST", "/v1/inference", "{bad json"),
                               ("POST", "/v1/inference", inference("Once"))]:
        _, headers, _ = stories_server.request(method, path, body)
        rid = headers.get("X-Request-Id", "")
        assert uuid.UUID(rid).version == 4, (path, rid)
        seen.add(rid)
    assert len(seen) == 6
    _, headers, _ = stories_server.get("/health", headers={"X-Request-Id": "\u00e9\u00e8"})
    assert uuid.UUID(headers["X-Request-Id"]).version == 4


def test_a_request_httplib_refuses_before_routing_still_gets_an_id(stories_server):
    with socket.create_connection(("127.0.0.1", stories_server.port)) as conn:
        conn.sendall(b"GARBAGE\r\n\r\n")
        head = conn.recv(65536).decode().split("\r\n\r\n", 1)[0]
    assert head.startswith("HTTP/1.1 400"), head
    [rid] = [line.split(": ", 1)[1] for line in head.split("\r\n") if line.startswith("X-Request-Id: ")]
    assert uuid.UUID(rid).version == 4


def test_streams_echo_the_request_id(stories_server):
    conn = socket.create_connection(("127.0.0.1", stories_server.port))
    payload = json.dumps(inference("Once", 3, stream=True)).encode()
    conn.sendall(b"POST /v1/inference HTTP/1.1\r\nHost: x\r\nX-Request-Id: stream-7\r\nConnection: close\r\n"
                 b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
    received = b""
    while chunk := conn.recv(65536):
        received += chunk
    conn.close()
    head = received.split(b"\r\n\r\n", 1)[0].decode()
    assert "\r\nX-Request-Id: stream-7" in head, head
    assert b"data: [DONE]" in received


def log_lines(stderr):
    """The JSON request lines of a server's stderr (other lines are startup messages)."""
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_one_json_line_per_request_without_prompt_or_output():
    marker = "Zebrafish" + uuid.uuid4().hex[:8]
    with running_server("-m", STORIES, "--parallel", "2") as server:
        _, _, body = server.post("/v1/inference", inference(marker + " once upon", 6), headers={"X-Request-Id": "log-1"})
        output = body["output"]
        list(server.stream("/v1/chat/completions", {"messages": [{"role": "user", "content": marker}], "max_tokens": 4,
                                                    "stream": True}))
        server.post("/v1/inference", {"input": "hi", "task": "text-gen", "parameters": {"max_tokens": 0}},
                    headers={"X-Request-Id": "log-3"})
        server.get("/health", headers={"X-Request-Id": "log-4"})
    stderr = server.proc.stderr.read()
    assert marker not in stderr and output not in stderr
    lines = log_lines(stderr)
    by_id = {line["id"]: line for line in lines}
    first = by_id["log-1"]
    assert first["level"] == "info" and first["msg"] == "request"
    assert (first["method"], first["path"], first["status"]) == ("POST", "/v1/inference", 200)
    assert (first["endpoint"], first["route"], first["task"]) == ("/v1/inference", "local", "text-gen")
    assert first["stream"] is False and first["finish_reason"] in ("length", "stop")
    assert first["completion_tokens"] == body["usage"]["completion_tokens"]
    assert first["prompt_tokens"] == body["usage"]["prompt_tokens"]
    assert first["response_id"] == body["id"]
    for key in ("ts", "duration_ms", "queue_ms", "ttft_ms", "generate_ms"):
        assert key in first, key
    [chat] = [line for line in lines if line["path"] == "/v1/chat/completions"]
    assert chat["stream"] is True and chat["completion_tokens"] == 4 and chat["status"] == 200
    bad = by_id["log-3"]
    assert (bad["status"], bad["level"], bad["error_type"], bad["error_param"]) == (
        400, "warn", "invalid_request_error", "parameters.max_tokens")
    assert "response_id" not in bad
    health = by_id["log-4"]
    assert health["path"] == "/health" and "endpoint" not in health


def test_log_prompts_switches_capture_on():
    marker = "Zebrafish" + uuid.uuid4().hex[:8]
    with running_server("-m", STORIES, "--log-prompts") as server:
        _, _, body = server.post("/v1/inference", inference(marker, 6), headers={"X-Request-Id": "cap-1"})
    [line] = [line for line in log_lines(server.proc.stderr.read()) if line["id"] == "cap-1"]
    assert marker in line["request_body"]
    assert line["output"] == body["output"]


def test_a_stream_cut_short_is_counted_and_logged_as_cancelled():
    with running_server("-m", STORIES, "--parallel", "1", "--threads", "1") as server:
        before = scrape(server)
        sock = socket.create_connection(("127.0.0.1", server.port))
        payload = json.dumps(inference("Once upon a time", 480, stream=True) | {
            "parameters": {"max_tokens": 480, "ignore_eos": True}}).encode()
        sock.sendall(b"POST /v1/inference HTTP/1.1\r\nHost: x\r\nX-Request-Id: cut-1\r\n"
                     b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
        received = b""
        while b"data: " not in received:
            received += sock.recv(4096)
        sock.close()
        # The server notices at its next write; wait (bounded) for it to count the request.
        key = dict(task="text-gen", model=MODEL, endpoint="/v1/inference", route="local", status="200")
        deadline = time.time() + 30
        while scrape(server).value("mmserve_requests_total", **key) == before.value("mmserve_requests_total", **key):
            assert time.time() < deadline, "the abandoned stream was never counted"
            time.sleep(0.02)
        after = scrape(server)
        assert after.value("mmserve_requests_total", **key) - before.value("mmserve_requests_total", **key) == 1
        assert after.require("mmserve_requests_running", task="text-gen", model=MODEL) == 0
    [line] = [line for line in log_lines(server.proc.stderr.read()) if line["id"] == "cut-1"]
    assert line["finish_reason"] == "cancelled" and line["stream"] is True
    assert 0 < line["completion_tokens"] < 480


def test_gpu_series_absent_without_nvml_and_startup_says_why():
    with running_server("-m", STORIES, env={"MMSERVE_NVML_LIBRARY": "/nonexistent/libnvidia-ml.so.1"}) as server:
        m = scrape(server)
    assert not [name for name in m.types if name.startswith("mmserve_gpu_")]
    startup = [line for line in server.proc.stderr.read().splitlines() if "GPU metrics" in line]
    assert len(startup) == 1 and startup[0].startswith("mmserve: GPU metrics off: cannot load /nonexistent/"), startup


@pytest.mark.skipif(not Path(FAKE_NVML).is_file(), reason="needs the test NVML library (MMSERVE_FAKE_NVML, built with the tests)")
def test_gpu_series_through_nvml():
    promtool = tool("promtool")
    with running_server("-m", STORIES, env={"MMSERVE_NVML_LIBRARY": FAKE_NVML}) as server:
        m = scrape(server)
    assert m.value("mmserve_gpu_info", gpu="0", name='Fake "GPU" 0', uuid="GPU-fake-0") == 1
    assert m.value("mmserve_gpu_utilization_ratio", gpu="0") == 0.37
    assert m.value("mmserve_gpu_memory_used_bytes", gpu="1") == 2 << 30
    assert m.value("mmserve_gpu_memory_total_bytes", gpu="0") == 80 << 30
    assert m.value("mmserve_gpu_power_watts", gpu="0") == 123.5
    assert m.series("mmserve_gpu_power_watts", gpu="1") == []  # no reading: no series
    proc = subprocess.run([promtool, "check", "metrics"], input=m.text, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mmserve: GPU metrics on: 2 GPUs through NVML" in server.proc.stderr.read()
