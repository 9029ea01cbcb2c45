"""Tool calling and reasoning through the model families' own chat templates (llama.cpp's
templates and parsers): Qwen3's <tool_call> and <think>, Magistral's [TOOL_CALLS]/[ARGS] and
[THINK]/[/THINK], and the generic JSON format for a model whose template has no tools. The
synthetic models write gibberish, so logit_bias steers them to the family's markup; the grammar
then forces the call's syntax and the parser reads it back, as with a real model."""
import json

import pytest
from chat_family_support import family_server

jsonschema = pytest.importorskip("jsonschema", reason="needs python3-jsonschema (scripts/deps.sh)")

WEATHER_PARAMS = {"type": "object",
                  "properties": {"city": {"type": "string", "maxLength": 12},
                                 "unit": {"enum": ["celsius", "fahrenheit"]}},
                  "required": ["city", "unit"], "additionalProperties": False}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                           "parameters": WEATHER_PARAMS}},
         {"type": "function", "function": {"name": "get_time", "description": "Time in a city",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string", "maxLength": 12}},
                                                          "required": ["city"]}}}]
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def qwen3(tmp_path_factory):
    with family_server("qwen3", tmp_path_factory.mktemp("qwen3")) as server:
        yield server


@pytest.fixture(scope="module")
def magistral(tmp_path_factory):
    with family_server("magistral", tmp_path_factory.mktemp("magistral")) as server:
        yield server


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    with family_server("plain", tmp_path_factory.mktemp("plain")) as server:
        yield server


EOS = "1"  # the synthetic vocabulary's <eos>


def bias(server, **tokens):
    return {str(server.ids[t]): b for t, b in tokens.items()}


def magistral_bias(server):
    # [TOOL_CALLS] opens a call; <eos> ends the turn once the grammar lets it.
    return {**bias(server, **{"[TOOL_CALLS]": 9}), EOS: 12}


def post_chat(server, **body):
    body.setdefault("messages", ASK)
    body.setdefault("temperature", 1)
    body.setdefault("cache_prompt", False)  # the same seed samples the same, streamed or not
    status, _, out = server.post("/v1/chat/completions", body, timeout=300)
    assert status == 200, out
    return out["choices"][0]


def stream_chat(server, **body):
    body.setdefault("messages", ASK)
    body.setdefault("temperature", 1)
    body.setdefault("cache_prompt", False)
    body["stream"] = True
    content, reasoning, calls, finish = "", "", {}, None
    for event in server.stream("/v1/chat/completions", body, timeout=300):
        if event == "[DONE]":
            break
        for c in event["choices"]:
            d = c["delta"]
            content += d.get("content") or ""
            reasoning += d.get("reasoning_content") or ""
            for tc in d.get("tool_calls") or []:
                call = calls.setdefault(tc["index"], {"id": None, "name": "", "arguments": ""})
                if "id" in tc:
                    assert call["id"] is None, "a call's id and name come once"
                    call["id"], call["name"] = tc["id"], tc["function"]["name"]
                call["arguments"] += tc["function"].get("arguments", "")
            finish = c["finish_reason"] or finish
    return content, reasoning, [calls[i] for i in sorted(calls)], finish


def check_calls(choice, allowed=("get_weather", "get_time")):
    assert choice["finish_reason"] == "tool_calls", choice
    calls = choice["message"]["tool_calls"]
    assert calls
    for call in calls:
        assert call["type"] == "function" and call["id"]
        assert call["function"]["name"] in allowed
        args = json.loads(call["function"]["arguments"])
        if call["function"]["name"] == "get_weather":
            jsonschema.validate(args, WEATHER_PARAMS)
    return calls


def reassembles(server, **body):
    """Non-streamed and streamed answers of the same seed: the deltas make the same calls."""
    choice = post_chat(server, **body)
    calls = check_calls(choice)
    content, _, streamed, finish = stream_chat(server, **body)
    assert finish == "tool_calls"
    assert [(c["name"], json.loads(c["arguments"])) for c in streamed] == \
        [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls]
    assert content == (choice["message"]["content"] or "")
    return calls


def test_qwen3_native_tool_calls_parse_validate_and_stream(qwen3):
    # "<tool_call>\n" opens a call (llama.cpp's Qwen3 handler); the grammar forces the rest of
    # it, and the end of the turn (<|im_end|>) only once a call is complete.
    b = bias(qwen3, **{"<tool_call>": 9, "\n": 9, "<|im_end|>": 12})
    for seed in range(4):
        # The newline's bias also pads the JSON with whitespace: room for it.
        reassembles(qwen3, tools=TOOLS, tool_choice="required", seed=seed, max_tokens=1200,
                    logit_bias=b)


def test_magistral_native_tool_calls_when_required(magistral):
    b = magistral_bias(magistral)
    for seed in range(4):
        reassembles(magistral, tools=TOOLS, tool_choice="required", seed=seed, max_tokens=300,
                    logit_bias=b)


def test_a_named_tool_choice_calls_that_function(magistral, plain):
    for server, b in ((magistral, magistral_bias(magistral)), (plain, {})):
        choice = post_chat(server, tools=TOOLS, seed=3, max_tokens=300, logit_bias=b,
                           tool_choice={"type": "function", "function": {"name": "get_time"}})
        check_calls(choice, allowed=("get_time",))


def test_generic_json_format_for_a_template_without_tools(plain):
    for seed in range(4):
        calls = reassembles(plain, tools=TOOLS, tool_choice="required", seed=seed,
                            parallel_tool_calls=False, max_tokens=300)
        assert len(calls) == 1  # the generic format's schema allows one call only
    several = post_chat(plain, tools=TOOLS, tool_choice="required", seed=1, max_tokens=400)
    check_calls(several)


def test_tool_choice_none_and_auto_without_a_call_answer_text(plain, qwen3):
    choice = post_chat(qwen3, tools=TOOLS, tool_choice="none", seed=1, max_tokens=20)
    assert "tool_calls" not in choice["message"] and choice["finish_reason"] in ("stop", "length")
    # Generic auto: {"response": "..."} is the answer in words.
    for seed in range(8):
        choice = post_chat(plain, tools=TOOLS, seed=seed, max_tokens=400)
        assert choice["finish_reason"] in ("stop", "tool_calls", "length"), choice
        if choice["finish_reason"] == "stop":
            assert isinstance(choice["message"]["content"], str)


@pytest.mark.parametrize("family", ["qwen3", "magistral", "plain"])
def test_a_conversation_with_tool_results_renders(family, request):
    server = request.getfixturevalue(family)
    history = ASK + [
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "call_1", "type": "function",
                         "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": '{"temp": 21}'}]
    base = post_chat(server, tools=TOOLS, messages=ASK, max_tokens=4)
    choice = post_chat(server, tools=TOOLS, messages=history, max_tokens=4)
    assert choice["finish_reason"] in ("stop", "length", "tool_calls")
    status, _, out = server.post("/v1/chat/completions", {"messages": history, "tools": TOOLS, "max_tokens": 1})
    assert out["usage"]["prompt_tokens"] > 0 and status == 200
    assert base is not None


def reasoning_split(server, start, end, seeds=range(40)):
    """Seeds whose raw answer (reasoning_format none) opens a reasoning block and closes it."""
    b = bias(server, **{start: 5, end: 4})
    for seed in seeds:
        raw = post_chat(server, seed=seed, max_tokens=80, logit_bias=b, reasoning_format="none")
        text = raw["message"]["content"]
        if text.startswith(start) and end in text:
            yield seed, b, text


@pytest.mark.parametrize("family, start, end", [("qwen3", "<think>", "</think>"),
                                                ("magistral", "[THINK]", "[/THINK]")])
def test_reasoning_is_separated_whole_and_streamed(family, start, end, request):
    server = request.getfixturevalue(family)
    checked = 0
    for seed, b, raw in reasoning_split(server, start, end):
        thought, _, answer = raw[len(start):].partition(end)
        choice = post_chat(server, seed=seed, max_tokens=80, logit_bias=b)
        message = choice["message"]
        # The block's text is the reasoning, what follows it the content (the parser trims the
        # whitespace around both, as llama-server's does).
        assert message.get("reasoning_content", "").strip() == thought.strip(), (raw, message)
        assert message["content"].strip() == answer.strip(), (raw, message)
        content, reasoning, _, _ = stream_chat(server, seed=seed, max_tokens=80, logit_bias=b)
        assert reasoning == message.get("reasoning_content", "")
        assert content == message["content"]
        checked += 1
        if checked == 2:
            break
    assert checked >= 1, "no seed opened and closed a reasoning block"


@pytest.mark.parametrize("body, field", [
    ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
    ({"tools": [{"type": "function"}]}, "tools[0].function"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]}, "tools[0].function.parameters"),
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
     "tool_choice.function.name"),
    ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": TOOLS, "response_format": {"type": "json_object"}}, "response_format"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f",
                                                                                        "arguments": "{bad"}}]}]},
     "messages[0].tool_calls[0].function.arguments"),
    ({"reasoning_format": "sideways"}, "reasoning_format"),
    ({"chat_template_kwargs": {"enable_thinking": "yes"}}, "chat_template_kwargs.enable_thinking"),
    ({"logit_bias": {"x": 1}}, "logit_bias"),
    ({"logit_bias": {"5": 500}}, "logit_bias"),
    ({"logit_bias": {"99999999": 1}}, "logit_bias"),
])
def test_bad_tool_fields_are_400_naming_the_field(plain, body, field):
    body = {"messages": ASK, "max_tokens": 4, **body}
    status, _, out = plain.post("/v1/chat/completions", body)
    assert status == 400, out
    assert out["error"]["param"] == field, out
