"""Bad input gets a 4xx JSON error naming the field, and never disturbs other requests."""
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import STORIES, needs_stories, running_server

pytestmark = needs_stories

LONG_PROMPT = "cat " * 700

BAD_REQUESTS = [
    # (body, expected status, expected "param")
    ('{"input": "hi", "task": ', 400, "body"),
    ("", 400, "body"),
    ("[1, 2]", 400, "body"),
    ({"task": "text-gen"}, 400, "input"),
    ({"input": "hi"}, 400, "task"),
    ({"input": 42, "task": "text-gen"}, 400, "input"),
    ({"input": "hi", "task": "translate"}, 400, "task"),
    ({"input": "hi", "task": "text-gen", "parameters": "fast"}, 400, "parameters"),
    ({"input": "hi", "task": "text-gen", "parameters": {"max_tokens": "many"}}, 400, "parameters.max_tokens"),
    ({"input": "hi", "task": "text-gen", "parameters": {"max_tokens": 0}}, 400, "parameters.max_tokens"),
    ({"input": "hi", "task": "text-gen", "parameters": {"max_tokens": 100000}}, 400, "parameters.max_tokens"),
    ({"input": "hi", "task": "text-gen", "parameters": {"max_tokens": 2.5}}, 400, "parameters.max_tokens"),
    ({"input": "hi", "task": "text-gen", "parameters": {"temperature": -1}}, 400, "parameters.temperature"),
    ({"input": "hi", "task": "text-gen", "parameters": {"top_p": "x"}}, 400, "parameters.top_p"),
    ({"input": "hi", "task": "text-gen", "parameters": {"stop": [1]}}, 400, "parameters.stop"),
    ({"input": LONG_PROMPT, "task": "text-gen"}, 400, "input"),
    ({"input": "hi", "task": "image-caption"}, 400, "task"),
    ({"input": "hi", "task": "speech-transcribe"}, 400, "task"),
]


@pytest.mark.parametrize("body,status,param", BAD_REQUESTS)
def test_bad_input_is_a_clear_error(stories_server, body, status, param):
    got_status, _, got = stories_server.post("/v1/inference", body)
    assert got_status == status, got
    assert got["error"]["param"] == param, got
    assert got["error"]["message"]


def test_missing_models_are_named(stories_server):
    _, _, got = stories_server.post("/v1/inference", {"input": "aGk=", "task": "image-caption"})
    assert "--mmproj" in got["error"]["message"]
    _, _, got = stories_server.post("/v1/inference", {"input": "aGk=", "task": "speech-transcribe"})
    assert "--whisper-model" in got["error"]["message"]
    _, _, got = stories_server.post("/v1/inference", {"input": "x", "task": "nope"})
    assert "text-gen, image-caption, speech-transcribe" in got["error"]["message"]


def test_unknown_route_is_json_404(stories_server):
    status, _, got = stories_server.get("/v2/nothing")
    assert status == 404 and got["error"]["type"] == "not_found_error"


def test_body_over_the_limit_is_413():
    with running_server("-m", STORIES, "--max-body-size", "2000") as server:
        status, _, got = server.post("/v1/inference", {"input": "x" * 5000, "task": "text-gen"})
        assert status == 413
        assert got["error"]["param"] == "body"
        assert server.infer("Once upon a time", max_tokens=4, temperature=0)["output"]


def test_bad_requests_do_not_disturb_good_ones(stories_server):
    expected = stories_server.infer("Once upon a time", max_tokens=40, temperature=0)["output"]

    def good(_):
        return stories_server.infer("Once upon a time", max_tokens=40, temperature=0)["output"]

    def bad(i):
        body, status, _ = BAD_REQUESTS[i % len(BAD_REQUESTS)]
        return stories_server.post("/v1/inference", body)[0] == status

    with ThreadPoolExecutor(max_workers=8) as pool:
        goods = pool.map(good, range(6))
        bads = pool.map(bad, range(24))
        assert all(bads)
        assert all(out == expected for out in goods)
    assert stories_server.get("/ready")[0] == 200
