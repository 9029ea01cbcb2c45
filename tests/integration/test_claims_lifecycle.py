"""README claims about the server's life and limits that no other test checked: `--timeout`
answers 504, SIGINT drains as SIGTERM does (503 for new requests, /ready 503), `--drain-timeout`
cancels what is still running, /ready's 503 when the wait queue is full, the running/waiting/KV
gauges, and the API key (`--api-key` or $MMSERVE_API_KEY) on every /v1 route.

A slow synthetic model (tens of tokens a second on one thread) keeps requests running long
enough to be caught in flight."""
import json
import signal
import subprocess
import threading
import time

import pytest

from conftest import BIN, STORIES, needs_stories, running_server, start_server
from prometheus_text import Metrics

LONG = {"max_tokens": 400, "ignore_eos": True, "temperature": 0}


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("slow") / "slow.gguf"
    proc = subprocess.run([BIN, "synth", "llm", "-o", str(path), "--embd", "768", "--layers",
                           "6", "--vocab", "2048", "--context", "1024"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return path


def stream_in_background(server, events, started, parameters=LONG, path="/v1/inference"):
    def consume():
        try:
            for event in server.stream(path, {"input": "Once upon a time", "task": "text-gen",
                                              "stream": True, "parameters": parameters},
                                       timeout=120):
                events.append(event)
                started.set()
        except Exception as e:  # the connection closing at exit ends the stream
            events.append(e)
        finally:
            started.set()

    thread = threading.Thread(target=consume)
    thread.start()
    return thread


def infer(server, **params):
    return server.post("/v1/inference", {"input": "Once upon a time", "task": "text-gen",
                                         "parameters": params}, timeout=120)


def test_the_request_deadline_answers_504(slow_model):
    with running_server("-m", slow_model, "--threads", "1", "--timeout", "1") as server:
        started = time.monotonic()
        status, _, body = infer(server, **LONG)
        elapsed = time.monotonic() - started
        assert status == 504, body
        assert body["error"]["type"] == "timeout_error" or "timeout" in body["error"]["type"], body
        assert 0.9 < elapsed < 30, elapsed
        # A short request fits in the deadline.
        status, _, body = infer(server, max_tokens=2)
        assert status == 200, body


def test_sigint_drains_new_requests_get_503_and_ready_says_draining(slow_model):
    server = start_server("-m", slow_model, "--threads", "1", "--parallel", "2",
                          "--drain-timeout", "60")
    events, started = [], threading.Event()
    reader = stream_in_background(server, events, started, {**LONG, "max_tokens": 60})
    assert started.wait(60)
    server.proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 10
    while server.get("/ready")[0] == 200:  # the signal is handled asynchronously
        assert time.monotonic() < deadline, "/ready still 200 after SIGINT"
        time.sleep(0.02)
    status, _, body = server.get("/ready")
    assert status == 503 and body["status"] == "unavailable", body
    status, _, body = infer(server, max_tokens=2)
    assert status == 503, body
    reader.join(120)
    assert server.proc.wait(timeout=60) == 0
    # The in-flight stream finished normally.
    assert events[-1] == "[DONE]", events[-3:]
    assert events[-2]["finish_reason"] == "length"
    assert events[-2]["usage"]["completion_tokens"] == 60


def test_the_drain_timeout_cancels_what_still_runs(slow_model):
    server = start_server("-m", slow_model, "--threads", "1", "--drain-timeout", "1")
    events, started = [], threading.Event()
    reader = stream_in_background(server, events, started, {**LONG, "max_tokens": 1000})
    assert started.wait(60)
    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=60) == 0
    stopped = time.monotonic() - signalled
    reader.join(60)
    err = server.proc.stderr.read()
    assert "drain timeout" in err, err
    assert 0.9 < stopped < 20, stopped
    # The stream did not end as a finished answer: a cut connection or an error event.
    assert events[-1] != "[DONE]", events[-3:]
    pieces = [e for e in events if isinstance(e, dict) and e.get("output")]
    assert len(pieces) < 1000


def test_ready_is_503_while_the_wait_queue_is_full(slow_model):
    with running_server("-m", slow_model, "--threads", "1", "--parallel", "1",
                        "--queue-size", "1") as server:
        assert server.get("/ready")[0] == 200
        first, second = ([], threading.Event()), ([], threading.Event())
        a = stream_in_background(server, *first)
        assert first[1].wait(60)
        b = stream_in_background(server, *second)  # waits: the queue's one place
        deadline = time.monotonic() + 20
        while True:
            status, _, body = server.get("/ready")
            if status == 503:
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.02)
        assert body["status"] == "unavailable" and "queue" in json.dumps(body), body
        status, headers, body = infer(server, max_tokens=2)
        assert status == 429 and "Retry-After" in headers, body
        server.proc.send_signal(signal.SIGTERM)
        a.join(120)
        b.join(120)


def test_ready_is_503_while_loading(slow_model):
    """The server listens before it loads: until the model is loaded and probed /ready answers
    503 with the reason, then 200."""
    server = start_server("-m", slow_model, "--threads", "1", ready=False)
    try:
        status, _, body = server.get("/ready")
        assert status == 503, body
        assert body["status"] == "unavailable" and "load" in body.get("reason", ""), body
        deadline = time.monotonic() + 60
        while server.get("/ready")[0] != 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=60)


def test_running_waiting_and_kv_gauges_follow_the_requests(slow_model):
    with running_server("-m", slow_model, "--threads", "1", "--parallel", "1") as server:
        def gauges():
            m = Metrics(server.get("/metrics")[2])
            series = {"task": "text-gen", "model": "slow"}
            return (m.require("mmserve_requests_running", **series),
                    m.require("mmserve_requests_waiting", **series),
                    m.require("mmserve_kv_cache_usage_ratio", model="slow"))

        assert gauges()[:2] == (0, 0)
        first, second = ([], threading.Event()), ([], threading.Event())
        a = stream_in_background(server, *first, {**LONG, "max_tokens": 300})
        assert first[1].wait(60)
        b = stream_in_background(server, *second, {**LONG, "max_tokens": 5})
        deadline = time.monotonic() + 20
        while True:
            running, waiting, kv = gauges()
            if (running, waiting) == (1, 1):
                break
            assert time.monotonic() < deadline, (running, waiting, kv)
            time.sleep(0.05)
        assert 0 < kv <= 1
        a.join(180)
        b.join(180)
        deadline = time.monotonic() + 20
        while gauges()[:2] != (0, 0):  # the gauges fall when the answers end, just after
            assert time.monotonic() < deadline, gauges()
            time.sleep(0.05)


@needs_stories
@pytest.mark.parametrize("how", ["flag", "environment"])
def test_the_api_key_protects_every_v1_route(how):
    args = ["-m", STORIES, "--threads", "1"]
    env = None
    if how == "flag":
        args += ["--api-key", "s3cret"]
    else:
        env = {"MMSERVE_API_KEY": "s3cret"}
    routes = [("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}],
                                                "max_tokens": 2}),
              ("POST", "/v1/completions", {"prompt": "Once", "max_tokens": 2}),
              ("GET", "/v1/models", None),
              ("POST", "/v1/inference", {"input": "Once", "task": "text-gen",
                                         "parameters": {"max_tokens": 2}}),
              ("POST", "/v1/embeddings", {"input": "Once"}),
              ("POST", "/v1/audio/transcriptions", None)]
    with running_server(*args, env=env) as server:
        for method, path, body in routes:
            status, _, answer = server.request(method, path, body)
            assert status == 401, (path, status, answer)
            assert answer["error"]["type"] == "authentication_error", (path, answer)
            status, _, answer = server.request(method, path, body,
                                               headers={"Authorization": "Bearer wrong"})
            assert status == 401, (path, status, answer)
        for method, path, body in routes[:4]:
            status, _, answer = server.request(method, path, body,
                                               headers={"Authorization": "Bearer s3cret"})
            assert status == 200, (path, status, answer)
        assert server.get("/health")[0] == 200 and server.get("/ready")[0] == 200
