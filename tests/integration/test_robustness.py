"""Regression tests for the robustness findings: requests without max_tokens batch and never
fail for lack of KV room (also on a synthetic model with a 32K training context at default
flags), a client that leaves cancels its non-streamed text, image or transcription work, /ready
is right for every queue size and each of its 503 states, failed streams end with one typed
error event (never a normal finish), and fields the server does not implement are refused.

Servers run with one thread: on a loaded two-core machine more ggml threads than cores spin."""
import base64
import json
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import BIN, STORIES, needs_stories, running_server, start_server
from speech_support import SMALL as SMALL_WHISPER, needs_jfk, speech_like, synth_whisper, wav_bytes
from vision_support import PHOTO, SMALL as SMALL_VLM, needs_photo, synth_vlm

import subprocess


def synth_llm_32k(path):
    """A small synthetic Llama with a 32K training context (real length, tiny width)."""
    proc = subprocess.run([BIN, "synth", "llm", "-o", str(path), "--context", "32768", "--embd", "64",
                           "--layers", "1", "--vocab", "1024"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return path


def chat(server, body, timeout=300):
    return server.post("/v1/chat/completions", body, timeout=timeout)


def most_running_while(server, futures, key="text"):
    """Polls /health until every future is done; returns the most requests seen running."""
    most = 0
    while not all(f.done() for f in futures):
        most = max(most, server.health().get(key, {}).get("running", 0))
        time.sleep(0.01)
    return most


def send_then_close(server, path, body, content_type="application/json", after=0.5):
    """Sends a request, waits `after` seconds without reading, then closes the connection."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
                 f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    time.sleep(after)
    sock.close()


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, what
        time.sleep(0.02)


# ---- finding 2: requests without max_tokens ----

@needs_stories
def test_eight_chat_requests_without_max_tokens_batch_and_all_succeed():
    with running_server("-m", STORIES, "--parallel", "4", "--ctx-size", "512", "--threads", "1") as server:
        body = {"messages": [{"role": "user", "content": "Tell me a story"}], "ignore_eos": True}
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(chat, server, body) for _ in range(8)]
            most = most_running_while(server, futures)
            answers = [f.result() for f in futures]
        for status, _, answer in answers:
            assert status == 200, answer
            # The documented limit: the request's share of the pool, 512 / 4 = 128 tokens.
            usage = answer["usage"]
            assert usage["prompt_tokens"] + usage["completion_tokens"] == 128, usage
            assert answer["choices"][0]["finish_reason"] == "length"
        assert most == 4


def test_sixteen_chat_requests_without_max_tokens_on_a_32k_model_at_default_flags(tmp_path):
    model = synth_llm_32k(tmp_path / "llm-32k.gguf")
    with running_server("-m", model, "--threads", "1") as server:  # default -np 4, default -c
        body = {"messages": [{"role": "user", "content": "Write a long report"}]}
        with ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(chat, server, body) for _ in range(16)]
            most = most_running_while(server, futures)
            answers = [f.result() for f in futures]
        assert [status for status, _, _ in answers] == [200] * 16, [a for s, _, a in answers if s != 200][:1]
        for _, _, answer in answers:
            usage = answer["usage"]
            # Default -c is 4 x min(32768, 4096): each request's share is 4096 tokens.
            assert usage["prompt_tokens"] + usage["completion_tokens"] <= 4096, usage
        assert most == 4  # --parallel of them at once, not one holding the whole pool


# ---- finding 4: a client that leaves cancels its work ----

def test_a_non_streamed_text_request_is_cancelled_when_its_client_leaves(tmp_path):
    model = synth_llm_32k(tmp_path / "llm-32k.gguf")
    with running_server("-m", model, "--threads", "1", "--parallel", "1") as server:
        send_then_close(server, "/v1/completions",
                        {"prompt": "Once", "max_tokens": 4000, "ignore_eos": True})  # -c 4096 here
        t0 = time.time()
        wait_for(lambda: server.health()["text"]["cancelled"] == 1, 10, "the request was never cancelled")
        assert time.time() - t0 < 5
        assert server.health()["text"]["running"] == 0
        # The freed slot serves the next request.
        status, _, body = server.post("/v1/completions", {"prompt": "Once", "max_tokens": 4})
        assert status == 200, body


@needs_photo
def test_a_non_streamed_image_request_is_cancelled_when_its_client_leaves(tmp_path):
    model, mmproj = synth_vlm(tmp_path, *SMALL_VLM)
    with running_server("-m", model, "--mmproj", mmproj, "--threads", "1", "--parallel", "1") as server:
        image = base64.b64encode(PHOTO.read_bytes()).decode()
        send_then_close(server, "/v1/inference",
                        {"task": "image-caption", "input": image,
                         "parameters": {"max_tokens": 3000, "ignore_eos": True}}, after=1.0)
        wait_for(lambda: server.health()["text"]["cancelled"] == 1, 15, "the image request was never cancelled")
        assert server.health()["text"]["running"] == 0


@needs_jfk
def test_a_transcription_is_cancelled_when_its_client_leaves(tmp_path):
    whisper = tmp_path / "whisper.bin"
    synth_whisper(whisper)
    with running_server("--whisper-model", whisper, "--threads", "1", "--speech-parallel", "1") as server:
        audio = wav_bytes(speech_like(240))  # 8 windows: minutes of work if nobody stops it
        send_then_close(server, "/v1/inference",
                        {"task": "speech-transcribe", "input": base64.b64encode(audio).decode()}, after=1.0)
        windows_at_close = server.health()["speech"]["windows"]
        wait_for(lambda: server.health()["speech"]["cancelled"] == 1, 20, "the transcription was never cancelled")
        speech = server.health()["speech"]
        assert speech["running"] == 0 and speech["active"] == 0
        # Stopped within the window running when the client left, not after all 8.
        assert speech["windows"] <= windows_at_close + 1 < 8, (windows_at_close, speech)


# ---- finding 5: /ready for every queue size, and each 503 state ----

@needs_stories
def test_ready_with_queue_size_zero_follows_what_a_request_would_get():
    with running_server("-m", STORIES, "--parallel", "1", "--queue-size", "0", "--threads", "1") as server:
        assert server.get("/ready")[0] == 200  # idle: a request would run at once
        status, _, body = server.post("/v1/inference", {"input": "Once", "task": "text-gen",
                                                        "parameters": {"max_tokens": 4}})
        assert status == 200, body
        done = threading.Event()

        def long_request():
            server.post("/v1/completions", {"prompt": "Once", "max_tokens": 500, "ignore_eos": True})
            done.set()

        threading.Thread(target=long_request).start()
        wait_for(lambda: server.health()["text"]["running"] == 1 or done.is_set(), 10, "never ran")
        if not done.is_set():
            status, _, body = server.get("/ready")
            refused = server.post("/v1/completions", {"prompt": "Once", "max_tokens": 4})[0]
            if not done.is_set():  # both answers came while the slot was busy
                assert status == 503 and body["reason"] == "the wait queue is full", body
                assert refused == 429
        assert done.wait(30)
        assert server.get("/ready")[0] == 200


@needs_stories
def test_ready_is_503_while_the_queue_is_full():
    with running_server("-m", STORIES, "--parallel", "1", "--queue-size", "1", "--threads", "1") as server:
        body = {"prompt": "Once", "max_tokens": 500, "ignore_eos": True}
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(server.post, "/v1/completions", body) for _ in range(2)]
            def both_in():  # one running and one waiting: from here on, waiting can only fall
                text = server.health()["text"]
                return text["running"] == 1 and text["waiting"] == 1
            wait_for(lambda: both_in() or all(f.done() for f in futures), 10, "nothing queued")
            queued_before = server.health()["text"]["waiting"] == 1
            seen = server.get("/ready")
            if queued_before and server.health()["text"]["waiting"] == 1:  # queued throughout
                assert seen[0] == 503 and seen[2]["reason"] == "the wait queue is full", seen
                assert seen[2]["model"] == "stories260K", seen  # which model's queue
            assert all(f.result()[0] == 200 for f in futures)
        assert server.get("/ready")[0] == 200


@needs_jfk
def test_ready_is_503_while_loading(tmp_path):
    whisper = tmp_path / "whisper.bin"
    synth_whisper(whisper)  # its readiness probe transcribes a window: loading lasts a while
    server = start_server("--whisper-model", whisper, "--threads", "1", ready=False)
    try:
        status, _, body = server.get("/ready")
        assert status == 503 and body["state"] == "loading", body
        wait_for(lambda: server.get("/ready")[0] == 200, 60, "never became ready")
    finally:
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=30)


@needs_stories
def test_ready_is_503_while_draining():
    server = start_server("-m", STORIES, "--parallel", "1", "--threads", "1")
    try:
        started = threading.Event()

        def stream():
            for _ in server.stream("/v1/inference", {"input": "Once", "task": "text-gen", "stream": True,
                                                     "parameters": {"max_tokens": 480, "ignore_eos": True}}):
                started.set()

        reader = threading.Thread(target=stream)
        reader.start()
        assert started.wait(30)
        server.proc.send_signal(signal.SIGTERM)
        # The signal reaches the server's signal thread asynchronously: give it a moment.
        deadline = time.time() + 5
        while (seen := server.get("/ready"))[0] == 200 and time.time() < deadline:
            time.sleep(0.005)
        status, _, body = seen
        assert status == 503 and body["state"] == "draining", body
        assert server.post("/v1/inference", {"input": "x", "task": "text-gen"})[0] == 503
        reader.join(60)
        assert server.proc.wait(timeout=60) == 0
    finally:
        if server.proc.poll() is None:
            server.proc.kill()


# ---- finding 6: a failed stream ends with its typed error, never a normal finish ----

def stream_events(server, path, body):
    return list(server.stream(path, body, timeout=60))


@pytest.mark.parametrize("path,body", [
    ("/v1/inference", {"input": "Once", "task": "text-gen", "stream": True,
                       "parameters": {"max_tokens": 16000, "ignore_eos": True}}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Once"}], "stream": True,
                              "max_tokens": 16000, "ignore_eos": True}),
    ("/v1/completions", {"prompt": "Once", "stream": True, "max_tokens": 16000, "ignore_eos": True}),
])
def test_a_stream_past_its_deadline_ends_with_one_timeout_error_event(tmp_path, path, body):
    model = synth_llm_32k(tmp_path / "llm-32k.gguf")
    with running_server("-m", model, "--threads", "1", "--timeout", "1") as server:
        events = stream_events(server, path, body)
        assert "[DONE]" not in events
        last = events[-1]
        assert set(last) == {"error"}, last
        assert last["error"]["type"] == "timeout" and last["error"]["code"] == 504, last
        for event in events[:-1]:
            for choice in event.get("choices", []):
                assert choice.get("finish_reason") is None, event
            assert "finish_reason" not in event, event


def test_a_non_streamed_request_past_its_deadline_answers_504(tmp_path):
    model = synth_llm_32k(tmp_path / "llm-32k.gguf")
    with running_server("-m", model, "--threads", "1", "--timeout", "1") as server:
        status, _, body = server.post("/v1/completions", {"prompt": "Once", "max_tokens": 16000, "ignore_eos": True})
        assert status == 504 and body["error"]["type"] == "timeout", body


# ---- finding 7: unsupported fields are refused, not ignored ----

@pytest.mark.parametrize("path,body,field", [
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}],
                              "tools": [{"type": "code_interpreter"}]}, "tools[0].type"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}],
                              "response_format": {"type": "json_schema", "json_schema": {"name": "x"},
                                                  "strict": True}},
     "response_format.strict"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "n": 2}, "n"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "frequency_penalty": 0.5},
     "frequency_penalty"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "mirostat": 2}, "mirostat"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi", "tool_calls": []}]},
     "messages[0].tool_calls"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "stream": True,
                              "stream_options": {"include_obfuscation": True}},
     "stream_options.include_obfuscation"),
    ("/v1/completions", {"prompt": "hi", "echo": True}, "echo"),
    ("/v1/completions", {"prompt": "hi", "best_of": 3}, "best_of"),
    ("/v1/inference", {"input": "hi", "task": "text-gen", "parameters": {"grammar": "root ::= x"}},
     "parameters.grammar"),
    ("/v1/inference", {"input": "hi", "task": "text-gen", "options": {}}, "options"),
])
@needs_stories
def test_unsupported_fields_answer_400_naming_them(stories_server, path, body, field):
    status, _, answer = stories_server.post(path, body)
    assert status == 400, answer
    assert answer["error"]["param"] == field, answer
    assert answer["error"]["type"] == "invalid_request_error"


@needs_stories
def test_no_op_values_of_unimplemented_fields_are_accepted(stories_server):
    status, _, answer = stories_server.post("/v1/chat/completions", {
        "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "n": 1, "presence_penalty": 0,
        "frequency_penalty": 0.0, "logit_bias": {}, "tools": [], "tool_choice": "none", "logprobs": False,
        "response_format": {"type": "text"}, "user": "someone", "store": False, "model": "anything"})
    assert status == 200, answer


@needs_stories
@pytest.mark.parametrize("path", ["/v1/inference", "/v1/chat/completions", "/v1/completions"])
def test_a_deeply_nested_body_is_refused_not_a_stack_overflow(stories_server, path):
    for body, field in (('{"parameters": ' + "[" * 200000 + "]" * 200000 + "}", "parameters"),
                        ('{"a": ' + '{"b": ' * 100 + "1" + "}" * 100 + "}", "a" + ".b" * 63),
                        ("[" * 100000 + "]" * 100000, "body")):
        status, _, answer = stories_server.post(path, body)
        assert status == 400 and answer["error"]["param"] == field, answer
    assert stories_server.get("/health")[0] == 200
