"""Embeddings: POST /v1/embeddings in OpenAI's shape and task "embed" of /v1/inference, on the
synthetic BERT model (`mmserve synth embed`), alone and beside a chat model; OpenAI's Node.js
client against it."""
import base64
import concurrent.futures
import json
import math
import struct
import subprocess

import pytest
from conftest import BIN, STORIES, running_server
from test_openai_client import installed_client

HELLO = "hello world"


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    path = tmp_path_factory.mktemp("embed") / "bert-tiny.gguf"
    subprocess.run([BIN, "synth", "embed", "-o", str(path)], check=True, capture_output=True)
    return path


@pytest.fixture(scope="module")
def server(bert):
    with running_server("-m", bert, "--queue-size", "64") as s:
        yield s


@pytest.fixture(scope="module")
def both(bert):
    if not STORIES.exists():
        pytest.skip(f"needs {STORIES} (absent)")
    with running_server("-m", STORIES, "--embedding-model", bert) as s:
        yield s


def embed(server, input, **fields):
    status, _, body = server.post("/v1/embeddings", {"input": input, **fields})
    assert status == 200, body
    return body


def vectors(body):
    return [d["embedding"] for d in body["data"]]


# The same input placed elsewhere in a batch (beside other inputs, at another offset) sums its
# attention and pooling in another order: float32 rounding differs, by up to ~4e-5 seen on these
# unit vectors under concurrent packing. The same batch is bitwise identical (asserted below).
BATCH_TOLERANCE = 1e-4


def max_diff(a, b):
    assert len(a) == len(b)
    return max(abs(x - y) for x, y in zip(a, b))


def refused(server, body, param, path="/v1/embeddings"):
    status, _, got = server.post(path, body)
    assert status == 400, got
    assert got["error"]["param"] == param, got
    return got["error"]["message"]


def test_openai_shape_and_unit_vectors(server):
    body = embed(server, [HELLO, "the cat sat on the mat"], model="bert-tiny")
    assert body["object"] == "list" and body["model"] == "bert-tiny"
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert all(d["object"] == "embedding" for d in body["data"])
    a, b = vectors(body)
    assert len(a) == len(b) == 128
    assert abs(math.fsum(x * x for x in a) - 1) < 1e-5  # cosine(a, a) = 1
    assert abs(math.fsum(x * y for x, y in zip(a, b))) < 0.999  # different texts differ
    # "hello world" is [CLS] hello world [SEP]; the usage counts every token of every input.
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] >= 4 + 4


def test_base64_is_the_same_float32_vector(server):
    floats = vectors(embed(server, HELLO))[0]
    encoded = embed(server, HELLO, encoding_format="base64")["data"][0]["embedding"]
    raw = base64.b64decode(encoded)
    assert len(raw) == 4 * 128
    decoded = struct.unpack("<128f", raw)
    assert list(decoded) == [struct.unpack("<f", struct.pack("<f", x))[0] for x in floats]


def test_dimensions_truncate_and_renormalise(server):
    full = vectors(embed(server, HELLO))[0]
    short = vectors(embed(server, HELLO, dimensions=16))[0]
    assert len(short) == 16
    assert abs(math.fsum(x * x for x in short) - 1) < 1e-5
    scale = math.sqrt(math.fsum(x * x for x in full[:16]))
    assert max_diff(short, [x / scale for x in full[:16]]) < 1e-6


def test_token_arrays(server):
    one = embed(server, [2, 10, 11, 3])
    assert one["usage"]["prompt_tokens"] == 4 and len(one["data"]) == 1
    listed = embed(server, [[2, 10, 11, 3], [2, 12, 3]])
    assert listed["usage"]["prompt_tokens"] == 7 and len(listed["data"]) == 2
    assert max_diff(vectors(one)[0], vectors(listed)[0]) < BATCH_TOLERANCE
    assert refused(server, {"input": [2, 1024, 3]}, "input").startswith("field 'input' has token id 1024")
    refused(server, {"input": [[2, 3], [2, 99999, 3]]}, "input[1]")


def test_the_same_input_alone_and_in_a_batch(server):
    alone = vectors(embed(server, HELLO))[0]
    batch = vectors(embed(server, ["the quick brown fox jumps over the lazy dog", HELLO, "cat", HELLO]))
    # Each input is its own sequence: only the summation order of longer rows may differ.
    assert max_diff(alone, batch[1]) < BATCH_TOLERANCE
    assert batch[1] == batch[3]
    assert vectors(embed(server, HELLO))[0] == alone  # deterministic


def test_concurrent_requests_are_all_answered_alike(server):
    alone = vectors(embed(server, HELLO))[0]
    texts = [HELLO if i % 2 == 0 else f"query {i} of the search" for i in range(24)]
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        bodies = list(pool.map(lambda t: embed(server, t), texts))
    for text, body in zip(texts, bodies):
        if text == HELLO:
            assert max_diff(vectors(body)[0], alone) < BATCH_TOLERANCE
    stats = server.health()["models"]["bert-tiny"]
    assert stats["kind"] == "embedding" and stats["outstanding"] == 0
    assert stats["calls"] <= stats["inputs"]  # some calls carried several inputs, never fewer


@pytest.mark.parametrize("body,param", [
    ({}, "input"),
    ({"input": None}, "input"),
    ({"input": 5}, "input"),
    ({"input": {"text": "a"}}, "input"),
    ({"input": ""}, "input"),
    ({"input": []}, "input"),
    ({"input": ["a", ""]}, "input[1]"),
    ({"input": ["a", 3]}, "input[1]"),
    ({"input": [[2, 3], "a"]}, "input[1]"),
    ({"input": [[2, 3], []]}, "input[1]"),
    ({"input": [1.5]}, "input[0]"),
    ({"input": [-1]}, "input[0]"),
    ({"input": ["a"] * 2049}, "input"),
    ({"input": " ".join(["hello"] * 600)}, "input"),
    ({"input": ["a", " ".join(["cat"] * 600)]}, "input[1]"),
    ({"input": "a", "encoding_format": "binary"}, "encoding_format"),
    ({"input": "a", "encoding_format": 1}, "encoding_format"),
    ({"input": "a", "dimensions": 0}, "dimensions"),
    ({"input": "a", "dimensions": 129}, "dimensions"),
    ({"input": "a", "dimensions": "8"}, "dimensions"),
    ({"input": "a", "user": 7}, "user"),
    ({"input": "a", "stream": True}, "stream"),
    ({"input": "a", "model": "nope"}, None),
])
def test_bad_inputs_name_the_field(server, body, param):
    if param is None:  # a single-model server answers any name with its model, as OpenAI clients expect
        assert server.post("/v1/embeddings", body)[0] == 200
        return
    refused(server, body, param)


def test_too_long_input_is_refused_not_truncated(server):
    message = refused(server, {"input": " ".join(["hello"] * 600)}, "input")
    assert "at most 512 tokens" in message and "not truncated" in message


def test_inference_task_embed(server):
    status, _, body = server.post("/v1/inference", {"task": "embed", "input": [HELLO, "cat"],
                                                    "parameters": {"dimensions": 8}})
    assert status == 200, body
    assert body["task"] == "embed" and body["model"] == "bert-tiny" and body["route"] == "local"
    assert len(body["output"]) == 2 and body["dimensions"] == 8
    assert all(len(v) == 8 for v in body["output"])
    single = server.post("/v1/inference", {"task": "embed", "input": HELLO})[2]
    assert len(single["output"]) == 1 and len(single["output"][0]) == 128
    assert max_diff(single["output"][0], vectors(embed(server, HELLO))[0]) < BATCH_TOLERANCE
    b64 = server.post("/v1/inference", {"task": "embed", "input": HELLO,
                                        "parameters": {"encoding_format": "base64"}})[2]
    assert len(base64.b64decode(b64["output"][0])) == 4 * 128
    refused(server, {"task": "embed"}, "input", "/v1/inference")
    refused(server, {"task": "embed", "input": ""}, "input", "/v1/inference")
    refused(server, {"task": "embed", "input": "a", "stream": True}, "stream", "/v1/inference")
    refused(server, {"task": "embed", "input": "a", "parameters": {"max_tokens": 3}},
            "parameters.max_tokens", "/v1/inference")
    refused(server, {"task": "embed", "input": "a", "parameters": {"dimensions": 500}},
            "parameters.dimensions", "/v1/inference")


def test_an_embedding_only_server_does_not_chat(server):
    status, _, body = server.post("/v1/chat/completions",
                                  {"model": "bert-tiny", "messages": [{"role": "user", "content": "hi"}]})
    assert status == 400 and body["error"]["param"] == "model", body
    status, _, body = server.post("/v1/inference", {"task": "text-gen", "input": "hi"})
    assert status == 400, body
    models = server.get("/v1/models")[2]["data"]
    assert [m["id"] for m in models] == ["bert-tiny"]
    meta = models[0]["meta"]
    assert meta["kind"] == "embedding" and meta["tasks"] == ["embed"]
    assert meta["dimensions"] == 128 and meta["pooling"] == "mean" and meta["max_input_tokens"] == 512


def test_metrics_count_the_embed_task(server):
    embed(server, HELLO)
    status, _, text = server.get("/metrics")
    assert status == 200
    lines = [l for l in text.splitlines() if l.startswith("mmserve_requests_total") and 'task="embed"' in l]
    assert lines and any('endpoint="/v1/embeddings"' in l for l in lines), lines


def test_an_embedding_model_beside_a_chat_model(both, bert):
    assert both.post("/v1/embeddings", {"input": HELLO})[0] == 200  # the default embedding model
    assert both.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "Once"}],
                                              "max_tokens": 4})[0] == 200
    # A chat model asked to embed, and the embedding model asked to chat: 400 naming the model.
    refused(both, {"model": "stories260K", "input": HELLO}, "model")
    refused(both, {"model": "bert-tiny", "messages": [{"role": "user", "content": "hi"}]}, "model",
            "/v1/chat/completions")
    refused(both, {"task": "embed", "model": "stories260K", "input": HELLO}, "model", "/v1/inference")
    tasks = {m["id"]: m["meta"]["tasks"] for m in both.get("/v1/models")[2]["data"]}
    assert tasks == {"stories260K": ["text-gen"], "bert-tiny": ["embed"]}


def test_models_file_kind_embedding(bert, tmp_path):
    models = tmp_path / "models.toml"
    models.write_text(f'[[model]]\nname = "embedder"\nkind = "embedding"\naliases = ["text-embedding-3-small"]\n'
                      f'path = "{bert}"\nctx_size = 32\n')
    with running_server("--models", models) as s:
        body = embed(s, HELLO, model="text-embedding-3-small")
        assert body["model"] == "embedder"
        refused(s, {"model": "embedder", "input": " ".join(["cat"] * 40)}, "input")  # ctx_size 32
    models.write_text(f'[[model]]\nname = "embedder"\npath = "{bert}"\n')  # kind "text" by default
    proc = subprocess.run([BIN, "serve", "--port", "0", "--models", models], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0
    assert 'kind = "embedding"' in proc.stderr


def test_official_openai_client_embeddings(server):
    target = installed_client()
    proc = subprocess.run(["node", "client.mjs", f"{server.url}/v1", "embeddings", "bert-tiny"],
                          cwd=target, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    floats = vectors(embed(server, HELLO))[0]
    one = got["one"]  # the client asked for base64 and decoded it
    assert one["object"] == "list" and one["model"] == "bert-tiny"
    assert one["data"][0]["object"] == "embedding" and one["data"][0]["index"] == 0
    assert max_diff(one["data"][0]["embedding"], floats) < 1e-6
    assert one["usage"]["prompt_tokens"] == one["usage"]["total_tokens"] > 0
    assert [d["index"] for d in got["many"]["data"]] == [0, 1]
    assert max_diff(got["many"]["data"][1]["embedding"], floats) < BATCH_TOLERANCE
    assert len(got["short"]["data"][0]["embedding"]) == 16
    assert got["error"]["status"] == 400 and got["error"]["param"] == "input"


def test_embedding_model_flag_alone(bert):
    with running_server("--embedding-model", bert) as s:
        body = embed(s, HELLO)
        assert body["model"] == "bert-tiny" and len(vectors(body)[0]) == 128


@pytest.mark.parametrize("args,message", [
    (["synth", "embed"], "option --out is required"),
    (["synth", "embed", "-o", "x.gguf", "--preset", "nope"], "unknown preset 'nope'"),
    (["synth", "embed", "-o", "x.gguf", "--pooling", "max"], "unknown pooling 'max'"),
    (["synth", "embed", "-o", "x.gguf", "--type", "q4_0"], "unknown type 'q4_0'"),
    (["synth", "embed", "-o", "x.gguf", "--vocab", "10"], "the vocabulary needs at least"),
    (["synth", "embed", "-o", "x.gguf", "--embd", "130"], "multiple of n_head"),
    (["serve", "--port", "0", "--embedding-model", "missing.gguf"], "not found"),
])
def test_cli_refusals(tmp_path, args, message):
    proc = subprocess.run([BIN, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode in (1, 2), proc
    assert message in proc.stderr
    assert proc.stderr.count("\n") <= 20  # one line (and the usage for a missing option)
    assert not (tmp_path / "x.gguf").exists()


def test_serve_refuses_a_projector_on_an_embedding_model(bert):
    proc = subprocess.run([BIN, "serve", "--port", "0", "-m", bert, "--mmproj", bert],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "is an embedding model" in proc.stderr


def test_synth_embed_is_deterministic_and_cls_pooling_differs(tmp_path):
    paths = [tmp_path / n for n in ("a.gguf", "b.gguf", "cls.gguf")]
    for p, extra in zip(paths, ([], [], ["--pooling", "cls"])):
        subprocess.run([BIN, "synth", "embed", "-o", p, *extra], check=True, capture_output=True)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    with running_server("-m", paths[0]) as mean, running_server("-m", paths[2]) as cls:
        assert cls.get("/v1/models")[2]["data"][0]["meta"]["pooling"] == "cls"
        assert max_diff(vectors(embed(mean, HELLO))[0], vectors(embed(cls, HELLO))[0]) > 1e-3


def test_key_scopes_and_token_quota_cover_embed(bert, tmp_path):
    db = tmp_path / "mmserve.db"

    def new_key(name, *args):
        proc = subprocess.run([BIN, "keys", "create", name, *args, "--db", str(db), "--json"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return {"Authorization": "Bearer " + json.loads(proc.stdout)["key"]}

    embedder = new_key("search", "--tasks", "embed")
    writer = new_key("writer", "--tasks", "text-gen")
    with running_server("-m", bert, "--db", db) as s:
        assert s.post("/v1/embeddings", {"input": HELLO}, headers=embedder)[0] == 200
        status, _, body = s.post("/v1/embeddings", {"input": HELLO}, headers=writer)
        assert status == 403, body
        assert s.post("/v1/embeddings", {"input": HELLO})[0] == 401
    usage = subprocess.run([BIN, "audit", "--db", str(db), "--format", "json"],
                           capture_output=True, text=True, timeout=60)
    rows = [json.loads(line) for line in usage.stdout.splitlines() if line.strip()]
    ok = [r for r in rows if r.get("status") == 200 and r["path"] == "/v1/embeddings"]
    assert ok and ok[0]["task"] == "embed" and ok[0]["prompt_tokens"] >= 4, rows  # charged tokens


def test_privacy_rules_scan_what_is_embedded(bert, tmp_path):
    policy = tmp_path / "privacy.toml"
    policy.write_text('[[rule]]\nname = "no-cards"\ntypes = ["bank_card"]\naction = "refuse"\n',
                      encoding="utf-8")
    card = "请从卡号6222021234567890128扣款"
    with running_server("-m", bert, "--privacy-policy", policy) as s:
        status, headers, body = s.post("/v1/embeddings", {"input": ["hello", card]})
        assert status == 403 and body["error"]["type"] == "permission_error", body
        assert "6222" not in body["error"]["message"]
        status, headers, body = s.post("/v1/embeddings", {"input": [HELLO]})
        assert status == 200, body
        status, _, body = s.post("/v1/inference", {"task": "embed", "input": HELLO,
                                                   "parameters": {"data_class": "personal"}})
        assert status == 200 and body["route"] == "local", body
