"""Several models in one server (a models file): routing by "model", /v1/models, unknown names,
the memory/count budget with least-recently-used unloads, leases across an unload, pinning, and
the admin endpoints. Real models: stories260K, a synthetic llama and the tiny whisper fixture."""
import json
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import BIN, STORIES, needs_stories, running_server, start_server
from speech_support import FIXTURE, infer_speech, tone, transcribe_http, wav_bytes

pytestmark = [needs_stories,
              pytest.mark.skipif(not FIXTURE.exists(), reason=f"needs {FIXTURE} (absent)")]

PROMPTS = ["Once upon a time", "The cat sat", "Tom and Sue went", "A big dog"]


@pytest.fixture(scope="module")
def synth_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "synth-llama.gguf"
    proc = subprocess.run([BIN, "synth", "llm", "-o", str(path), "--seed", "7"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return path


def models_file(tmp_path, synth_model, extra_text="", extra_synth="", extra_speech=""):
    """stories (alias gpt-4o-mini), synth and whisper, each decoding one sequence at a time so
    that a request's greedy answer is what it gets alone."""
    path = tmp_path / "models.toml"
    path.write_text(f"""
[[model]]
name = "stories"
aliases = ["gpt-4o-mini"]
path = "{STORIES}"
parallel = 1
{extra_text}

[[model]]
name = "synth"
path = "{synth_model}"
parallel = 1
ctx_size = 1024
{extra_synth}

[[model]]
name = "whisper"
kind = "speech"
path = "{FIXTURE}"
parallel = 1
{extra_speech}
""")
    return path


def complete(server, model, prompt, max_tokens=24, **kw):
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, **kw}
    if model is not None:
        body["model"] = model
    return server.post("/v1/completions", body, timeout=120)


def events(server, name):
    _, _, text = server.get("/metrics")
    out = {}
    for line in text.splitlines():
        if line.startswith("mmserve_model_events_total{") and f'model="{name}"' in line:
            event = line.split('event="', 1)[1].split('"', 1)[0]
            out[event] = float(line.rsplit(" ", 1)[1])
    return out


def listing(server):
    status, _, body = server.get("/v1/models")
    assert status == 200, body
    return {m["id"]: m for m in body["data"]}


def test_two_chat_models_and_a_speech_model_answer_by_name(tmp_path, synth_model):
    with running_server("--models", models_file(tmp_path, synth_model), "-t", "2") as server:
        models = listing(server)
        assert list(models) == ["stories", "synth", "whisper"]
        assert all(m["meta"]["loaded"] for m in models.values())
        assert models["stories"]["meta"]["aliases"] == ["gpt-4o-mini"]
        assert models["whisper"]["meta"]["tasks"] == ["speech-transcribe"]
        assert models["synth"]["meta"]["memory_bytes"] > models["stories"]["meta"]["memory_bytes"] > 0
        raw = json.dumps(models)
        assert str(tmp_path) not in raw and str(STORIES) not in raw and "path" not in raw

        alone = {}
        for model in ("stories", "synth"):
            for prompt in PROMPTS:
                status, _, body = complete(server, model, prompt)
                assert status == 200 and body["model"] == model, body
                alone[model, prompt] = body["choices"][0]["text"]
        # Different models, different greedy text; the alias and the default reach "stories".
        assert all(alone["stories", p] != alone["synth", p] for p in PROMPTS)
        assert complete(server, "gpt-4o-mini", PROMPTS[0])[2]["choices"][0]["text"] == alone["stories", PROMPTS[0]]
        assert complete(server, None, PROMPTS[0])[2]["model"] == "stories"
        status, _, body = server.post("/v1/inference", {"task": "text-gen", "model": "synth", "input": PROMPTS[1],
                                                        "parameters": {"max_tokens": 24, "temperature": 0,
                                                                       "raw": True}})
        assert status == 200 and body["model"] == "synth" and body["output"] == alone["synth", PROMPTS[1]], body

        # All three at once, under load: each answer is its model's.
        def one(job):
            kind, model, prompt = job
            if kind == "speech":
                status, body = transcribe_http(server, wav_bytes(tone(1.0)), model="whisper")
                return job, status, body
            status, _, body = complete(server, model, prompt)
            return job, status, body
        jobs = [("text", m, p) for m in ("stories", "synth") for p in PROMPTS] * 2 + [("speech", "whisper", "")] * 3
        with ThreadPoolExecutor(len(jobs)) as pool:
            for (kind, model, prompt), status, body in pool.map(one, jobs):
                assert status == 200, body
                if kind == "text":
                    assert body["model"] == model and body["choices"][0]["text"] == alone[model, prompt]
        # Per-model series: tokens, requests, queue and KV figures carry the model's name.
        _, _, text = server.get("/metrics")
        samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                   for line in text.splitlines() if line.startswith("mmserve_")}
        # stories: 4 alone, the alias, the default, 8 together; synth: 4 alone, /v1/inference, 8.
        for model, requests in (("stories", 14), ("synth", 13)):
            assert samples[f'mmserve_generated_tokens_total{{model="{model}"}}'] == 24 * requests
            assert samples[f'mmserve_requests_running{{task="text-gen",model="{model}"}}'] == 0
            assert f'mmserve_kv_cache_usage_ratio{{model="{model}"}}' in samples
        assert samples['mmserve_requests_total{task="speech-transcribe",model="whisper",endpoint="/v1/audio/transcriptions",route="local",status="200"}'] == 3
        health = server.health()
        assert set(health["models"]) == {"stories", "synth", "whisper"}
        assert health["models"]["whisper"]["kind"] == "speech" and health["models"]["whisper"]["windows"] >= 3


def test_unknown_and_wrong_models_are_refused_naming_the_field(tmp_path, synth_model):
    with running_server("--models", models_file(tmp_path, synth_model), "-t", "1") as server:
        status, _, body = complete(server, "gpt-5", "Once")
        assert status == 404 and body["error"]["param"] == "model", body
        assert "stories, synth, whisper" in body["error"]["message"]
        status, _, body = server.post("/v1/chat/completions", {"model": "nope", "messages": [{"role": "user", "content": "Hi"}]})
        assert status == 404 and body["error"]["param"] == "model"
        status, _, body = server.post("/v1/inference", {"task": "text-gen", "model": "nope", "input": "Hi"})
        assert status == 404 and body["error"]["param"] == "model"
        assert server.get("/v1/models/nope")[0] == 404
        assert server.get("/v1/models/gpt-4o-mini")[2]["id"] == "stories"
        # A speech model cannot chat, a text model cannot transcribe, and none describes images.
        status, _, body = complete(server, "whisper", "Once")
        assert status == 400 and body["error"]["param"] == "model" and "speech model" in body["error"]["message"]
        status, body = transcribe_http(server, wav_bytes(tone(0.5)), model="stories")
        assert status == 400 and body["error"]["param"] == "model"
        status, _, body = server.post("/v1/inference", {"task": "image-caption", "input": "aGVsbG8="})
        assert status == 400 and body["error"]["param"] == "task"
        for bad in (42, ["stories"], "x" * 300):
            status, _, body = complete(server, bad, "Once")
            assert status == 400 and body["error"]["param"] == "model", (bad, body)


def test_single_model_flags_take_any_model_name():
    with running_server("-m", STORIES, "-t", "1") as server:
        status, _, body = complete(server, "gpt-4o", "Once")
        assert status == 200 and body["model"] == "stories260K"


def test_budget_unloads_the_least_recently_used_idle_model_and_reloads_it(tmp_path, synth_model):
    path = models_file(tmp_path, synth_model, extra_text="preload = false", extra_synth="preload = false",
                       extra_speech="preload = false")
    with running_server("--models", path, "--max-models", "2", "-t", "1") as server:
        assert not any(m["meta"]["loaded"] for m in listing(server).values())  # load on first use
        assert complete(server, "stories", "Once")[0] == 200
        assert complete(server, "synth", "Once")[0] == 200
        assert infer_speech(server, wav_bytes(tone(0.5)), language="en")[0] == 200  # unloads stories
        models = listing(server)
        assert [n for n, m in models.items() if m["meta"]["loaded"]] == ["synth", "whisper"]
        assert models["stories"]["meta"]["unloads"] == 1
        first = complete(server, "stories", PROMPTS[0])  # loads it again; synth is the oldest now
        assert first[0] == 200, first
        models = listing(server)
        assert [n for n, m in models.items() if m["meta"]["loaded"]] == ["stories", "whisper"]
        assert models["stories"]["meta"]["loads"] == 2
        assert events(server, "stories") == {"load": 2, "unload": 1}
        assert events(server, "synth") == {"load": 1, "unload": 1}


def test_memory_budget_counts_estimated_bytes(tmp_path, synth_model):
    probe = models_file(tmp_path, synth_model)
    with running_server("--models", probe, "-t", "1") as server:
        sizes = {n: m["meta"]["memory_bytes"] for n, m in listing(server).items()}
    # Room for the two largest at once, not for all three.
    budget = sizes["synth"] + sizes["whisper"] + sizes["stories"] // 2
    path = models_file(tmp_path, synth_model, extra_text="preload = false", extra_synth="preload = false",
                       extra_speech="preload = false")
    with running_server("--models", path, "--max-memory", str(budget), "-t", "1") as server:
        for model in ("stories", "synth"):
            assert complete(server, model, "Once")[0] == 200
        assert infer_speech(server, wav_bytes(tone(0.5)), language="en")[0] == 200
        models = listing(server)
        assert not models["stories"]["meta"]["loaded"] and models["synth"]["meta"]["loaded"]
        assert sum(m["meta"]["memory_bytes"] for m in models.values() if m["meta"]["loaded"]) <= budget


def test_a_request_in_flight_outlives_the_unload_of_its_model(tmp_path, synth_model):
    path = models_file(tmp_path, synth_model, extra_speech="preload = false")
    with running_server("--models", path, "--max-models", "2", "-t", "1") as server:
        assert [n for n, m in listing(server).items() if m["meta"]["loaded"]] == ["stories", "synth"]
        result = {}

        def long_stream():
            pieces, last = [], None
            for event in server.stream("/v1/completions", {"model": "stories", "prompt": "Once", "max_tokens": 400,
                                                           "ignore_eos": True, "stream": True,
                                                           "stream_options": {"include_usage": True}},
                                       timeout=300):
                if event != "[DONE]":
                    last = event
                    pieces.append(event["choices"][0]["text"] if event["choices"] else "")
            result["last"] = last

        thread = threading.Thread(target=long_stream)
        thread.start()
        deadline = time.time() + 60
        while server.health()["models"].get("stories", {}).get("running", 0) == 0:
            assert time.time() < deadline and thread.is_alive(), "the stream never ran"
            time.sleep(0.01)
        status, _, body = server.post("/models/unload", {"model": "stories"})
        assert status == 200 and body == {"model": "stories", "unloaded": True, "in_use": True}, body
        assert not listing(server)["stories"]["meta"]["loaded"]
        # The unloaded model keeps its room while the stream reads from it: with the count
        # budget full (synth and it), a third model has to wait.
        status, headers, body = server.post("/models/load", {"model": "whisper"})
        if thread.is_alive():
            assert status == 429 and body["error"]["param"] == "model", body
        thread.join(300)
        assert result["last"]["usage"]["completion_tokens"] == 400  # it finished normally
        assert server.post("/models/load", {"model": "whisper"})[0] == 200
        status, _, body = complete(server, "stories", "Once")  # loads it again
        assert status == 200, body


def test_pinned_models_are_never_unloaded_for_room(tmp_path, synth_model):
    path = models_file(tmp_path, synth_model, extra_text="pinned = true", extra_synth="preload = false",
                       extra_speech="preload = false")
    with running_server("--models", path, "--max-models", "1", "-t", "1") as server:
        status, headers, body = complete(server, "synth", "Once")
        assert status == 429 and headers.get("Retry-After") and "pinned" in body["error"]["message"], body
        assert listing(server)["stories"]["meta"]["loaded"]


def test_admin_endpoints_need_the_admin_key_when_keys_exist(tmp_path, synth_model):
    path = models_file(tmp_path, synth_model, extra_synth="preload = false")
    with running_server("--models", path, "--api-key", "user-key", "--admin-key", "admin-key", "-t", "1") as server:
        user = {"Authorization": "Bearer user-key"}
        admin = {"Authorization": "Bearer admin-key"}
        assert server.post("/models/load", {"model": "synth"})[0] == 401
        assert server.post("/models/load", {"model": "synth"}, headers=user)[0] == 403
        status, _, body = server.post("/models/load", {"model": "synth"}, headers=admin)
        assert status == 200 and body["id"] == "synth" and body["meta"]["loaded"], body
        assert server.post("/models/unload", {"model": "synth"}, headers=admin)[2] == {
            "model": "synth", "unloaded": True, "in_use": False}
        assert server.post("/models/unload", {"model": "synth"}, headers=admin)[2]["unloaded"] is False
        status, _, body = server.post("/models/load", {"model": "nope"}, headers=admin)
        assert status == 404 and body["error"]["param"] == "model"
        status, _, body = server.post("/models/load", {"name": "synth"}, headers=admin)
        assert status == 400 and body["error"]["param"] == "name"
        assert server.get("/v1/models")[0] == 401  # the API key guards /v1/* as before
        assert server.get("/v1/models", headers=user)[0] == 200
    log = server.proc.stderr.read()  # loads and unloads are logged
    assert "model 'synth' loaded in" in log and "model 'synth' unloaded (admin" in log, log[-2000:]
    with running_server("--models", path, "--api-key", "user-key", "-t", "1") as server:
        status, _, body = server.post("/models/load", {"model": "synth"},
                                      headers={"Authorization": "Bearer user-key"})
        assert status == 403 and "--admin-key" in body["error"]["message"]


@pytest.mark.parametrize("text, needle", [
    ("", "no [[model]] tables"),
    ("[[model]]\nname = \"a\"\n", "'path' is required"),
    ("[[model]]\nname = \"a\"\npath = \"x.gguf\"\ncolour = \"red\"\n", "unknown key 'colour'"),
    ("[[model]]\nname = \"a\"\npath = \"x.gguf\"\nkind = \"video\"\n", "'kind' must be"),
    ("[[model]]\nname = \"a\"\npath = \"x.gguf\"\nparallel = 0\n", "'parallel' must be an integer"),
    ("[[model]]\nname = \"a\"\npath = \"x.gguf\"\n[[model]]\nname = \"a\"\npath = \"y.gguf\"\n", "used twice"),
    ("[[model]\nname = \"a\"\n", "models.toml:1"),
    ("[[model]]\nname = \"a\"\npath = \"missing.gguf\"\n", "missing.gguf"),
])
def test_a_bad_models_file_stops_the_server_with_one_line(tmp_path, text, needle):
    path = tmp_path / "models.toml"
    path.write_text(text)
    proc = subprocess.run([BIN, "serve", "--port", "0", "--models", path], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0 and needle in proc.stderr, proc.stderr


def test_models_file_excludes_the_single_model_flags(tmp_path, synth_model):
    proc = subprocess.run([BIN, "serve", "--port", "0", "--models", models_file(tmp_path, synth_model),
                           "-m", STORIES], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--model" in proc.stderr, proc.stderr


def test_preloads_never_unload_each_other_and_a_pinned_model_must_fit(tmp_path, synth_model):
    with running_server("--models", models_file(tmp_path, synth_model), "--max-models", "2", "-t", "1") as server:
        models = listing(server)
        assert [n for n, m in models.items() if m["meta"]["loaded"]] == ["stories", "synth"]
        assert all(m["meta"]["unloads"] == 0 for m in models.values())
        assert infer_speech(server, wav_bytes(tone(0.5)), language="en")[0] == 200  # loads at first use
    path = models_file(tmp_path, synth_model, extra_speech="pinned = true")
    with running_server("--models", path, "--max-models", "2", "-t", "1", ready=False) as server:
        deadline = time.time() + 120
        while (ready := server.get("/ready"))[2]["state"] == "loading":
            assert time.time() < deadline
            time.sleep(0.05)
        status, _, body = ready
        assert status == 503 and body["state"] == "failed", body
        assert "no room to load the model 'whisper'" in body["reason"], body


def test_the_readme_models_file_serves_two_chat_models_and_a_speech_model(tmp_path):
    readme = (__import__("pathlib").Path(__file__).resolve().parents[2] / "README.md").read_text()
    toml = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    here = tmp_path / "repo"
    here.mkdir()
    (tmp_path / "shared").symlink_to(STORIES.parents[1])  # the README's ../shared
    (here / "models.toml").write_text(toml)
    proc = subprocess.run([BIN, "synth", "llm", "-o", str(here / "synth.gguf")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    with running_server("--models", here / "models.toml", "--max-models", "2", "-t", "1") as server:
        status, _, body = server.post("/v1/chat/completions", {"model": "synth", "max_tokens": 8,
                                                               "messages": [{"role": "user", "content": "Hi"}]})
        assert status == 200 and body["model"] == "synth", body
        jfk = STORIES.parents[1] / "media" / "jfk.wav"
        status, body = transcribe_http(server, jfk.read_bytes(), model="whisper")
        assert status == 200 and isinstance(body["text"], str), body  # the fixture's weights are random
        assert [n for n, m in listing(server).items() if m["meta"]["loaded"]] == ["synth", "whisper"]
