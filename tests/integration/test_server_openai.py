"""The OpenAI-compatible endpoints, in the shapes OpenAI's client libraries parse."""
from conftest import generate_cli, needs_stories

pytestmark = needs_stories


def test_models_lists_the_loaded_model(stories_server):
    status, _, body = stories_server.get("/v1/models")
    assert status == 200 and body["object"] == "list"
    assert body["data"][0]["id"] == "stories260K" and body["data"][0]["object"] == "model"


def test_completions_match_the_cli(stories_server):
    status, _, body = stories_server.post("/v1/completions", {
        "model": "stories260K", "prompt": "Once upon a time", "max_tokens": 32, "temperature": 0})
    assert status == 200, body
    assert body["object"] == "text_completion"
    choice = body["choices"][0]
    assert choice["text"] == generate_cli("Once upon a time", 32)
    assert choice["finish_reason"] == "length" and choice["index"] == 0
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + 32


def test_completions_default_to_sixteen_tokens(stories_server):
    _, _, body = stories_server.post("/v1/completions", {"prompt": "Once upon a time", "temperature": 0})
    assert body["usage"]["completion_tokens"] == 16


def test_chat_completion(stories_server):
    status, _, body = stories_server.post("/v1/chat/completions", {
        "model": "stories260K", "temperature": 0, "max_completion_tokens": 12,
        "messages": [{"role": "system", "content": "You tell stories."},
                     {"role": "user", "content": [{"type": "text", "text": "Tell me one."}]}]})
    assert status == 200, body
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    message = body["choices"][0]["message"]
    assert message["role"] == "assistant" and isinstance(message["content"], str)
    assert body["usage"]["completion_tokens"] == 12


def test_chat_stream_with_usage(stories_server):
    request = {"temperature": 0, "max_tokens": 20, "messages": [{"role": "user", "content": "Hello"}]}
    plain = stories_server.post("/v1/chat/completions", request)[2]
    events = list(stories_server.stream("/v1/chat/completions", {
        **request, "stream": True, "stream_options": {"include_usage": True}}))
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == plain["choices"][0]["message"]["content"]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == plain["choices"][0]["finish_reason"] and all(f is None for f in finishes[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == plain["usage"]["completion_tokens"]


def test_completions_stream(stories_server):
    plain = stories_server.post("/v1/completions", {"prompt": "The cat", "max_tokens": 24, "temperature": 0})[2]
    events = list(stories_server.stream("/v1/completions", {
        "prompt": "The cat", "max_tokens": 24, "temperature": 0, "stream": True}))
    assert events[-1] == "[DONE]"
    assert "".join(e["choices"][0]["text"] for e in events[:-1]) == plain["choices"][0]["text"]


def test_errors_have_the_openai_shape(stories_server):
    cases = [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": "hi"}], "n": 3}, "n"),
        ({"messages": [{"role": "user", "content": "hi"}], "temperature": "warm"}, "temperature"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
         "messages[0].content[0].type"),
    ]
    for body, param in cases:
        status, _, got = stories_server.post("/v1/chat/completions", body)
        assert status == 400, (body, got)
        assert set(got["error"]) == {"message", "type", "param", "code"}
        assert got["error"]["param"] == param
    status, _, got = stories_server.post("/v1/completions", {"prompt": 5})
    assert status == 400 and got["error"]["param"] == "prompt"


def test_completion_logprobs(stories_server):
    _, _, body = stories_server.post("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 6,
                                                         "temperature": 0, "logprobs": 3})
    choice = body["choices"][0]
    lp = choice["logprobs"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == 6
    assert "".join(lp["tokens"]) == choice["text"]
    for chosen, logprob, top in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"]):
        assert len(top) == 3 and logprob <= 0
        assert max(top.values()) == logprob and top[chosen] == logprob  # greedy picks the best
    status, _, err = stories_server.post("/v1/completions", {"prompt": "x", "logprobs": 2, "stream": True})
    assert status == 400 and err["error"]["param"] == "logprobs"


def test_cache_prompt_false_decodes_the_whole_prompt(stories_server):
    # llama-server's extension: an idle slot's prefix is reused by default; benchmarks of prompt
    # processing send "cache_prompt": false to have every prompt token decoded.
    body = {"prompt": "Once upon a time there was a little dog named", "max_tokens": 2, "temperature": 0}

    def cached(**extra):
        status, _, got = stories_server.post("/v1/completions", {**body, **extra})
        assert status == 200, got
        return got["usage"]["prompt_tokens_details"]["cached_tokens"], got["choices"][0]["text"]

    cached()
    reused, text = cached()
    assert reused > 0
    whole, same_text = cached(cache_prompt=False)
    assert whole == 0 and same_text == text
    status, _, got = stories_server.post("/v1/completions", {**body, "cache_prompt": "no"})
    assert status == 400 and got["error"]["param"] == "cache_prompt", got
