"""POST /v1/inference with the real stories260K model: output, shape, streaming, UTF-8."""
import pytest
from conftest import GOLDEN, generate_cli, needs_stories

pytestmark = needs_stories


def test_greedy_output_equals_the_cli(stories_server):
    body = stories_server.infer("Once upon a time", max_tokens=48, temperature=0)
    assert body["output"] == generate_cli("Once upon a time", 48)
    assert body["output"].startswith(GOLDEN)


def test_response_shape(stories_server):
    body = stories_server.infer("Once upon a time", max_tokens=8, temperature=0)
    assert body["task"] == "text-gen" and body["model"] == "stories260K"
    assert body["id"].startswith("inf-")
    assert body["finish_reason"] == "length"
    assert body["usage"]["prompt_tokens"] == 5 and body["usage"]["completion_tokens"] == 8
    assert set(body["timings"]) == {"queue_ms", "prompt_ms", "generate_ms"}
    assert all(v >= 0 for v in body["timings"].values())


def test_the_users_client_line_works(stories_server):
    requests = pytest.importorskip("requests")
    output = requests.post(f"{stories_server.url}/v1/inference",
                           json={"input": "分析市场趋势", "task": "text-gen", "parameters": {"max_tokens": 200}}).json()["output"]
    assert isinstance(output, str) and output


def test_stop_strings_and_seeded_sampling(stories_server):
    body = stories_server.infer("Once upon a time", max_tokens=64, temperature=0, stop=["Lily"])
    assert body["output"] == ", there was a little girl named "
    assert body["finish_reason"] == "stop"
    a = stories_server.infer("Once upon a time", max_tokens=32, temperature=1.0, seed=99)
    b = stories_server.infer("Once upon a time", max_tokens=32, temperature=1.0, seed=99)
    assert a["output"] == b["output"]


def test_repeated_prompt_reuses_the_prefix(stories_server):
    prompt = "Tom had a red kite. He went to the hill with his dad to fly it"
    stories_server.infer(prompt, max_tokens=4, temperature=0)
    again = stories_server.infer(prompt, max_tokens=4, temperature=0)
    assert again["usage"]["cached_prompt_tokens"] == again["usage"]["prompt_tokens"] - 1


@pytest.mark.parametrize("prompt", ["Once upon a time", "分析市场趋势", "Café résumé naïve — 日本語 🙂"])
def test_stream_concatenates_to_the_plain_response(stories_server, prompt):
    plain = stories_server.infer(prompt, max_tokens=60, temperature=0)
    events = list(stories_server.stream("/v1/inference", {
        "input": prompt, "task": "text-gen", "stream": True,
        "parameters": {"max_tokens": 60, "temperature": 0}}))
    assert events[-1] == "[DONE]"
    final = events[-2]
    assert final["finish_reason"] == plain["finish_reason"]
    assert final["usage"]["completion_tokens"] == plain["usage"]["completion_tokens"]
    pieces = [e["output"] for e in events[:-1]]
    assert "".join(pieces) == plain["output"]
