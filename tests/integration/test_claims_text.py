"""README claims about text requests that no other test checked: the prompt built from a chat
template or ChatML, `raw` and `system`, chat's `top_p`, `stop` and `seed`, and that continuous
batching decodes concurrent requests in the same steps.

stories260K has no chat template (so chat goes through ChatML); the synthetic Gemma 3 VLM's text
model has one."""
import threading

import pytest

from conftest import STORIES, needs_stories, running_server
from prometheus_text import Metrics
from vision_support import synth_vlm

CHATML = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def stories():
    if not STORIES.exists():
        pytest.skip(f"needs {STORIES} (absent)")
    with running_server("-m", STORIES, "--parallel", "4", "--threads", "1") as server:
        yield server


@pytest.fixture(scope="module")
def templated(tmp_path_factory):
    model, _ = synth_vlm(tmp_path_factory.mktemp("vlm"))
    with running_server("-m", model, "--threads", "1") as server:
        yield server


def inference(server, text, **params):
    status, _, body = server.post("/v1/inference", {"input": text, "task": "text-gen",
                                                    "parameters": {"temperature": 0, **params}})
    assert status == 200, body
    return body


def chat(server, messages, **params):
    status, _, body = server.post("/v1/chat/completions",
                                  {"messages": messages, "temperature": 0, **params})
    assert status == 200, body
    return body


def completion(server, prompt, **params):
    status, _, body = server.post("/v1/completions",
                                  {"prompt": prompt, "temperature": 0, **params})
    assert status == 200, body
    return body


def user(text):
    return [{"role": "user", "content": text}]


@needs_stories
def test_chat_without_a_template_is_chatml(stories):
    """stories260K has no chat template: chat renders the messages as ChatML, exactly the text a
    plain completion of the ChatML string continues."""
    answer = chat(stories, user("Once upon a time"), max_tokens=24)
    plain = completion(stories, CHATML.format("Once upon a time"), max_tokens=24)
    assert answer["choices"][0]["message"]["content"] == plain["choices"][0]["text"]
    assert answer["usage"]["prompt_tokens"] == plain["usage"]["prompt_tokens"]


@needs_stories
def test_without_a_template_the_input_goes_as_is_raw_or_not(stories):
    a = inference(stories, "Once upon a time", max_tokens=24)
    b = inference(stories, "Once upon a time", max_tokens=24, raw=True)
    assert a["output"] == b["output"]
    assert a["usage"]["prompt_tokens"] == b["usage"]["prompt_tokens"]
    c = completion(stories, "Once upon a time", max_tokens=24)
    assert c["choices"][0]["text"] == a["output"]


def test_with_a_template_the_input_is_a_user_turn_and_raw_a_completion(templated):
    templated_turn = inference(templated, "Hello there", max_tokens=12)
    as_chat = chat(templated, user("Hello there"), max_tokens=12)
    assert templated_turn["output"] == as_chat["choices"][0]["message"]["content"]
    assert templated_turn["usage"]["prompt_tokens"] == as_chat["usage"]["prompt_tokens"]
    raw = inference(templated, "Hello there", max_tokens=12, raw=True)
    plain = completion(templated, "Hello there", max_tokens=12)
    assert raw["output"] == plain["choices"][0]["text"]
    assert raw["usage"]["prompt_tokens"] == plain["usage"]["prompt_tokens"]
    # The template's turn markers are real tokens around the input.
    assert templated_turn["usage"]["prompt_tokens"] > raw["usage"]["prompt_tokens"] + 4


def test_system_is_the_system_turn_before_the_input(templated):
    with_system = inference(templated, "Hello there", max_tokens=12, system="Be terse.")
    as_chat = chat(templated, [{"role": "system", "content": "Be terse."},
                               {"role": "user", "content": "Hello there"}], max_tokens=12)
    assert with_system["output"] == as_chat["choices"][0]["message"]["content"]
    assert with_system["usage"]["prompt_tokens"] == as_chat["usage"]["prompt_tokens"]
    without = inference(templated, "Hello there", max_tokens=12)
    assert with_system["usage"]["prompt_tokens"] > without["usage"]["prompt_tokens"]


@needs_stories
def test_chat_stop_ends_the_answer_before_the_stop_text(stories):
    full = chat(stories, user("Once upon a time"), max_tokens=40)["choices"][0]
    text = full["message"]["content"]
    word = text.split()[4]
    stopped = chat(stories, user("Once upon a time"), max_tokens=40, stop=[word])["choices"][0]
    assert stopped["finish_reason"] == "stop"
    assert stopped["message"]["content"] == text[:text.index(word)]
    single = chat(stories, user("Once upon a time"), max_tokens=40, stop=word)["choices"][0]
    assert single["message"]["content"] == stopped["message"]["content"]


@needs_stories
def test_chat_seed_makes_sampling_repeatable(stories):
    def sample(seed):
        return chat(stories, user("Once upon a time"), max_tokens=32, temperature=1.0,
                    seed=seed)["choices"][0]["message"]["content"]

    assert sample(7) == sample(7)
    assert len({sample(seed) for seed in (1, 2, 3, 4)}) > 1


@needs_stories
def test_chat_top_p_narrows_sampling(stories):
    """top_p so small that only the most likely token is left: temperature 1 samples greedily."""
    greedy = chat(stories, user("Once upon a time"), max_tokens=32)["choices"][0]
    for seed in (1, 2, 3):
        nucleus = chat(stories, user("Once upon a time"), max_tokens=32, temperature=1.0,
                       top_p=1e-6, seed=seed)["choices"][0]
        assert nucleus["message"]["content"] == greedy["message"]["content"]
    wide = {chat(stories, user("Once upon a time"), max_tokens=32, temperature=1.0, top_p=1.0,
                 seed=seed)["choices"][0]["message"]["content"] for seed in (1, 2, 3)}
    assert wide != {greedy["message"]["content"]}


@needs_stories
def test_concurrent_requests_are_decoded_in_the_same_steps(stories):
    """--parallel 4 and four requests at once: steps decode several sequences together (the
    batch-size histogram has observations above 1), not one after the other."""
    def batch_counts():
        metrics = Metrics(stories.get("/metrics")[2])
        buckets = {d["le"]: v for d, v in metrics.series("mmserve_batch_size_bucket")}
        assert buckets, "no mmserve_batch_size series"
        return buckets["1"], metrics.require("mmserve_batch_size_count")

    single_before, total_before = batch_counts()
    go = threading.Barrier(4)
    errors = []

    def one(i):
        go.wait()
        try:
            inference(stories, f"Story {i}:", max_tokens=48, ignore_eos=True)
        except AssertionError as e:
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    single, total = batch_counts()
    steps, single_steps = total - total_before, single - single_before
    assert steps > 0
    # 4 x 48 tokens one at a time would be >= 192 single-sequence steps.
    assert steps - single_steps > 0, (steps, single_steps)
    assert steps < 4 * 48, steps


@needs_stories
def test_requests_behind_one_system_prompt_share_its_cells():
    """A prompt that starts like one another sequence holds shares its KV cells: of requests
    sent together behind one system prompt, only the first decodes it, and usage says so
    (`prompt_tokens_details.cached_tokens`). A fresh server, so no idle slot holds it before."""
    system = ("Once upon a time, there was a little girl named Lily. She loved to play outside "
              "in the park with her friends. One day, she saw a big red ball in the grass. ") * 2
    endings = ["Lily said", "Tom ran to", "The dog was", "Mom looked at"]
    with running_server("-m", STORIES, "--parallel", "4", "--threads", "1") as server:
        results = [None] * len(endings)

        def send(i):
            results[i] = completion(server, system + endings[i], max_tokens=24)["usage"]

        threads = [threading.Thread(target=send, args=(i,)) for i in range(len(endings))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        shared = min(u["prompt_tokens"] for u in results) - 8  # the endings differ within 8 tokens
        cached = sorted(u["prompt_tokens_details"]["cached_tokens"] for u in results)
        # The first decoded it (an idle slot of the server's warm-up may lend it BOS).
        assert cached[0] <= 1 and all(c >= shared for c in cached[1:]), (cached, shared)
