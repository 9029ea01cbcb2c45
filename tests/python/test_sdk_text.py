"""generate and chat: the same answers in remote and local mode, streamed or not."""
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import GOLDEN, PROMPTS, needs_stories

import mmserve

pytestmark = needs_stories


def test_greedy_output_is_the_golden_text_in_both_modes(remote, local):
    a = remote.generate("Once upon a time", max_tokens=48, temperature=0)
    b = local.generate("Once upon a time", max_tokens=48, temperature=0)
    assert a.startswith(GOLDEN)
    assert a == b


@pytest.mark.parametrize("prompt", PROMPTS)
def test_both_modes_give_the_same_greedy_output(remote, local, prompt):
    assert remote.generate(prompt, max_tokens=40, temperature=0) == \
        local.generate(prompt, max_tokens=40, temperature=0)


def test_sampling_options_reach_the_engine_the_same_way(remote, local):
    options = dict(max_tokens=32, temperature=1.0, seed=1234, top_k=20, top_p=0.9, min_p=0.02,
                   repeat_penalty=1.1)
    a = remote.generate("The cat sat", **options)
    b = local.generate("The cat sat", **options)
    assert a == b
    assert a != remote.generate("The cat sat", **{**options, "seed": 4321})


def test_stop_strings(either):
    out = either.generate("Once upon a time", max_tokens=64, temperature=0, stop=["Lily"])
    assert out == ", there was a little girl named "
    stream = either.generate("Once upon a time", max_tokens=64, temperature=0, stop="Lily",
                             stream=True)
    assert stream.read() == out
    assert stream.finish_reason == "stop"


@pytest.mark.parametrize("prompt", PROMPTS)
def test_stream_concatenates_to_the_plain_answer(either, prompt):
    plain = either.generate(prompt, max_tokens=50, temperature=0)
    stream = either.generate(prompt, max_tokens=50, temperature=0, stream=True)
    pieces = list(stream)
    assert all(isinstance(p, str) and p for p in pieces)
    assert "".join(pieces) == plain
    assert stream.finish_reason == "length"
    assert stream.usage["completion_tokens"] == 50


def test_default_max_tokens_fills_what_is_left_of_the_context(either):
    stream = either.generate("Once upon a time", temperature=0, ignore_eos=True, stream=True)
    stream.read()
    assert stream.usage["prompt_tokens"] + stream.usage["completion_tokens"] == 512


def test_chat_is_the_same_in_both_modes(remote, local):
    messages = [{"role": "system", "content": "You tell stories."},
                {"role": "user", "content": "Tell me about a dog."}]
    a = remote.chat(messages, max_tokens=40, temperature=0)
    b = local.chat(messages, max_tokens=40, temperature=0)
    assert isinstance(a, str) and a
    assert a == b
    # Content given as OpenAI text parts is the same message.
    parts = [messages[0], {"role": "user", "content": [{"type": "text", "text": "Tell me "},
                                                       {"type": "text", "text": "about a dog."}]}]
    assert local.chat(parts, max_tokens=40, temperature=0) == b
    assert remote.chat(parts, max_tokens=40, temperature=0) == a


def test_chat_stream_concatenates(either):
    messages = [{"role": "user", "content": "Once upon a time"}]
    plain = either.chat(messages, max_tokens=30, temperature=0)
    stream = either.chat(messages, max_tokens=30, temperature=0, stream=True)
    assert "".join(stream) == plain
    assert stream.finish_reason == "length"
    assert stream.usage["completion_tokens"] == 30


def test_closing_a_stream_early_stops_it_and_the_model_goes_on(either):
    stream = either.generate("Once upon a time", max_tokens=400, ignore_eos=True, stream=True)
    first = next(stream)
    assert first
    stream.close()
    assert list(stream) == []
    assert either.generate("Once upon a time", max_tokens=48, temperature=0).startswith(GOLDEN)


def test_concurrent_callers_get_what_they_get_alone(either):
    alone = [either.generate(p, max_tokens=32, temperature=0) for p in PROMPTS]
    with ThreadPoolExecutor(max_workers=len(PROMPTS)) as pool:
        together = list(pool.map(lambda p: either.generate(p, max_tokens=32, temperature=0),
                                 PROMPTS))
    assert together == alone


def test_infer_is_the_requests_post_helper(server):
    body = mmserve.infer("Once upon a time", task="text-gen",
                         parameters={"max_tokens": 48, "temperature": 0}, base_url=server.url)
    assert body["output"].startswith(GOLDEN)
    assert body["task"] == "text-gen" and body["model"] == "stories260K"
    assert body["usage"]["completion_tokens"] == 48
    events = list(mmserve.infer("Once upon a time", parameters={"max_tokens": 48,
                                                                "temperature": 0},
                                base_url=server.url, stream=True))
    assert "".join(e["output"] for e in events) == body["output"]
    assert events[-1]["finish_reason"] == "length"


def test_the_readme_client_line_and_infer_agree(server):
    requests = pytest.importorskip("requests")
    body = {"input": "分析市场趋势", "task": "text-gen",
            "parameters": {"max_tokens": 200, "temperature": 0}}
    expected = requests.post(f"{server.url}/v1/inference", json=body).json()["output"]
    got = mmserve.infer(body["input"], task=body["task"], parameters=body["parameters"],
                        base_url=server.url)["output"]
    assert got == expected
