"""Continuous batching under concurrent clients, queue overflow and client disconnects."""
import http.client
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from conftest import STORIES, needs_stories, running_server
from tie_support import TIE_MARGIN, assert_only_near_ties, first_divergence_margin

pytestmark = needs_stories

PROMPTS = ["Once upon a time", "The cat sat", "Tom and Sue went", "One day, a little bird",
           "Lily found a box", "The sun was hot", "A big dog", "Mom said", "In the park",
           "Ben wanted to", "There was a tree", "The boy ran", "She had a doll", "The fish swam",
           "It was a rainy day", "Max liked cars"]


def test_sixteen_concurrent_clients_get_what_they_get_alone():
    with running_server("-m", STORIES, "--parallel", "8", "--batch-size", "64") as server:
        alone = [server.infer(p, max_tokens=48, temperature=0)["output"] for p in PROMPTS]
        with ThreadPoolExecutor(max_workers=16) as pool:
            together = list(pool.map(lambda p: server.infer(p, max_tokens=48, temperature=0)["output"], PROMPTS))
        assert server.health()["text"]["steps"] > 0
        # Batching must not change greedy results. A difference is tolerated only where the
        # reference run had a near-tie (floating-point order differs between batch sizes), told
        # apart from a scheduling bug by the logit margin at the first differing token.
        assert_only_near_ties(server, PROMPTS, alone, together)


def test_full_queue_answers_429_with_retry_after():
    with running_server("-m", STORIES, "--parallel", "1", "--queue-size", "1", "--threads", "1") as server:
        body = {"input": "Once upon a time", "task": "text-gen",
                "parameters": {"max_tokens": 400, "ignore_eos": True, "temperature": 0}}
        barrier = threading.Barrier(6)

        def send(_):
            barrier.wait()
            return server.post("/v1/inference", body)

        with ThreadPoolExecutor(max_workers=6) as pool:
            results = list(pool.map(send, range(6)))
        statuses = sorted(status for status, _, _ in results)
        assert statuses.count(200) >= 2, statuses  # one running, one waiting
        refused = [(h, b) for s, h, b in results if s == 429]
        assert refused, statuses
        headers, error = refused[0]
        assert headers.get("Retry-After") == "1"
        assert error["error"]["type"] == "server_busy"
        ok = [b for s, _, b in results if s == 200]
        assert all(b["usage"]["completion_tokens"] == 400 for b in ok)


def test_disconnect_mid_stream_frees_the_sequence():
    with running_server("-m", STORIES, "--parallel", "1", "--threads", "1") as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        payload = json.dumps({"input": "Once upon a time", "task": "text-gen", "stream": True,
                              "parameters": {"max_tokens": 480, "ignore_eos": True}}).encode()
        sock.sendall(b"POST /v1/inference HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
        received = b""
        while b"data: " not in received:
            received += sock.recv(4096)
        sock.close()

        deadline = time.time() + 10
        while server.health()["text"]["cancelled"] < 1:
            assert time.time() < deadline, "the abandoned stream was never cancelled"
            time.sleep(0.01)
        follow_up = server.infer("Once upon a time", max_tokens=8, temperature=0)
        assert follow_up["usage"]["completion_tokens"] == 8
        assert server.health()["text"]["running"] == 0


def test_long_prompts_are_chunked_without_stalling_running_streams():
    with running_server("-m", STORIES, "--parallel", "2", "--batch-size", "16") as server:
        long_prompt = " ".join(["the little dog ran to the park and played with a ball"] * 20)
        with ThreadPoolExecutor(max_workers=2) as pool:
            stream = pool.submit(lambda: server.infer("Once upon a time", max_tokens=48, temperature=0))
            longp = pool.submit(lambda: server.infer(long_prompt, max_tokens=4, temperature=0))
            assert stream.result()["output"] == server.infer("Once upon a time", max_tokens=48, temperature=0)["output"]
            assert longp.result()["usage"]["prompt_tokens"] > 100


def test_the_tie_detector_flags_a_real_difference(stories_server):
    """A changed token where the model was confident must count as a bug, not a near-tie."""
    alone = stories_server.infer("Once upon a time", max_tokens=48, temperature=0)["output"]
    wrong = alone[:12] + "X" + alone[13:]
    assert first_divergence_margin(stories_server, "Once upon a time", alone, wrong) > TIE_MARGIN
