"""Structured output: response_format json_object / json_schema on chat completions,
parameters.json_schema on /v1/inference, text.format on /v1/responses. Grammar-constrained
sampling (libllama's grammar sampler, the schema compiled by llama.cpp's common library) must
make every answer parse and validate, checked with the jsonschema package, not our own code."""
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from chat_family_support import family_server

jsonschema = pytest.importorskip("jsonschema", reason="needs python3-jsonschema (scripts/deps.sh)")

# Bounded strings, numbers and arrays, an enum, a nested object and an optional field: a random
# model's answer still ends (the grammar leaves it no unbounded choice but whitespace).
SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "active": {"type": "boolean"},
        "role": {"enum": ["admin", "user", "guest"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 6}, "maxItems": 3},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 10},
                           "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
            "required": ["city", "zip"],
            "additionalProperties": False,
        },
        "note": {"type": "string", "maxLength": 8},
    },
    "required": ["name", "age", "active", "role", "tags", "address"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def qwen3_server(tmp_path_factory):
    with family_server("qwen3", tmp_path_factory.mktemp("qwen3"), parallel=4) as server:
        yield server


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory):
    with family_server("plain", tmp_path_factory.mktemp("plain")) as server:
        yield server


def chat(server, **body):
    body.setdefault("messages", [{"role": "user", "content": "Describe a customer."}])
    status, _, out = server.post("/v1/chat/completions", body, timeout=300)
    assert status == 200, out
    return out["choices"][0]


def customers(server, seeds, **extra):
    def one(seed):
        return seed, chat(server, temperature=1, seed=seed, max_tokens=700,
                          response_format={"type": "json_schema",
                                           "json_schema": {"name": "customer", "strict": True,
                                                           "schema": SCHEMA}}, **extra)

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, seeds))


def test_json_schema_answers_validate_for_100_seeds_at_temperature_1(qwen3_server):
    # Qwen3 with thinking off (its template's switch): the answer is the JSON alone.
    results = customers(qwen3_server, range(100), chat_template_kwargs={"enable_thinking": False})
    answers = set()
    for seed, choice in results:
        assert choice["finish_reason"] == "stop", (seed, choice)
        value = json.loads(choice["message"]["content"])
        jsonschema.validate(value, SCHEMA)
        answers.add(json.dumps(value, sort_keys=True))
    assert len(answers) > 50  # sampled, not one answer repeated


def test_a_reasoning_model_may_think_before_the_json(qwen3_server):
    # With thinking on, the grammar lets a <think> block come first (as llama-server's does);
    # the content is still the JSON, the reasoning apart from it.
    for seed, choice in customers(qwen3_server, range(12)):
        if choice["finish_reason"] == "stop":
            jsonschema.validate(json.loads(choice["message"]["content"]), SCHEMA)


def test_json_schema_on_a_model_without_a_template_for_30_seeds(plain_server):
    for seed, choice in customers(plain_server, range(30)):
        assert choice["finish_reason"] == "stop", (seed, choice)
        jsonschema.validate(json.loads(choice["message"]["content"]), SCHEMA)


def test_json_object_answers_an_object(qwen3_server):
    for seed in range(5):
        choice = chat(qwen3_server, temperature=1, seed=seed, max_tokens=400,
                      response_format={"type": "json_object"},
                      chat_template_kwargs={"enable_thinking": False})
        if choice["finish_reason"] == "stop":
            assert isinstance(json.loads(choice["message"]["content"]), dict)
        else:  # an unbounded object may be cut by max_tokens: then it is a prefix of one
            assert choice["message"]["content"].lstrip().startswith("{")


def test_json_schema_on_a_model_without_a_template_and_in_a_stream(tmp_path):
    # A server of its own with one sequence, and cache_prompt off: both runs decode the prompt
    # into the same KV cells, so the same seed samples the same. (On a server that other
    # requests used, the cells differ, and so does the floating-point order of attention: at
    # temperature 1 a sample near a boundary can flip.)
    with family_server("plain", tmp_path, parallel=1) as server:
        stream_equals_plain(server)


def stream_equals_plain(plain_server):
    body = {"temperature": 1, "seed": 11, "max_tokens": 600, "stream": True, "cache_prompt": False,
            "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": SCHEMA}},
            "messages": [{"role": "user", "content": "Describe a customer."}]}
    text, finish = "", None
    for event in plain_server.stream("/v1/chat/completions", body, timeout=300):
        if event == "[DONE]":
            break
        for c in event["choices"]:
            text += c["delta"].get("content", "")
            finish = c["finish_reason"] or finish
    assert finish == "stop"
    jsonschema.validate(json.loads(text), SCHEMA)
    body["stream"] = False
    assert chat(plain_server, **body)["message"]["content"] == text


def test_inference_json_schema_raw_and_templated(qwen3_server):
    for raw in (True, False):
        for seed in range(5):
            out = qwen3_server.infer("A customer:", json_schema=SCHEMA, raw=raw, temperature=1,
                                     seed=seed, max_tokens=700)
            assert out["finish_reason"] == "stop", out
            jsonschema.validate(json.loads(out["output"]), SCHEMA)


def test_responses_text_format_json_schema(qwen3_server):
    status, _, out = qwen3_server.post("/v1/responses", {
        "input": "Describe a customer.", "temperature": 1, "seed": 5, "max_output_tokens": 700,
        "text": {"format": {"type": "json_schema", "name": "customer", "schema": SCHEMA, "strict": True}}},
        timeout=300)
    assert status == 200, out
    assert out["status"] == "completed"
    message = [item for item in out["output"] if item["type"] == "message"][0]
    jsonschema.validate(json.loads(message["content"][0]["text"]), SCHEMA)


@pytest.mark.parametrize("body, field", [
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": "not a schema"}}},
     "response_format.json_schema.schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x",
                                                                "schema": {"type": "object", "$ref": "#/nowhere"}}}},
     "response_format.json_schema.schema"),
    ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
    ({"response_format": {"type": "yaml"}}, "response_format.type"),
    ({"response_format": {"type": "json_object", "schema": {}}}, "response_format.schema"),
    ({"response_format": "json"}, "response_format"),
])
def test_bad_response_formats_are_400_naming_the_field(qwen3_server, body, field):
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, **body}
    status, _, out = qwen3_server.post("/v1/chat/completions", body)
    assert status == 400, out
    assert out["error"]["param"] == field, out


def test_bad_inference_schema_is_400(qwen3_server):
    status, _, out = qwen3_server.post("/v1/inference", {
        "task": "text-gen", "input": "x", "parameters": {"json_schema": {"type": "object", "$ref": "#/x"}}})
    assert status == 400 and out["error"]["param"] == "parameters.json_schema", out
    status, _, out = qwen3_server.post("/v1/inference", {
        "task": "text-gen", "input": "x", "parameters": {"json_schema": [1, 2]}})
    assert status == 400 and out["error"]["param"] == "parameters.json_schema", out
