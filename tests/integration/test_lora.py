"""LoRA adapters served (--lora, the models file, POST /models/adapters/load|unload): stories260K
with synthetic adapters from `mmserve synth lora`. An adapter changes greedy text; streamed
equals plain; "base:adapter", the `lora` parameter and the base served at once under load each
equal their solo output; an adapter loaded at run time serves; one unloaded while a request
runs on it lets that request finish and refuses the next; bad specs are refused by name."""
import concurrent.futures
import subprocess

import pytest

from conftest import BIN, STORIES, needs_stories, running_server
from tie_support import TIE_MARGIN, first_divergence_margin

pytestmark = needs_stories
BASE = "stories260K"
ADMIN = {"Authorization": "Bearer admin-key"}
USER = {"Authorization": "Bearer user-key"}


def synth_lora(path, seed):
    out = subprocess.run([BIN, "synth", "lora", "--base", str(STORIES), "-o", str(path),
                          "--seed", str(seed)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return path


@pytest.fixture(scope="module")
def adapters(tmp_path_factory):
    d = tmp_path_factory.mktemp("lora")
    return {"a": synth_lora(d / "a.gguf", 1), "b": synth_lora(d / "b.gguf", 2),
            "c": synth_lora(d / "c.gguf", 3)}


@pytest.fixture(scope="module")
def server(adapters):
    with running_server("-m", STORIES, "--lora", f"a={adapters['a']}",
                        "--lora", f"b={adapters['b']}:0.5", "-np", "4", "-t", "1",
                        "--api-key", "user-key", "--admin-key", "admin-key") as s:
        yield s


def complete(server, prompt="Once upon a time", max_tokens=24, headers=USER, **extra):
    body = {"model": BASE, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, **extra}
    return server.post("/v1/completions", body, headers=headers)


def text_of(server, **kw):
    status, _, body = complete(server, **kw)
    assert status == 200, body
    return body["choices"][0]["text"], body["model"]


def streamed_text(server, **kw):
    body = {"model": BASE, "prompt": "Once upon a time", "max_tokens": 24, "temperature": 0,
            "stream": True, **kw}
    conn_events = server.stream("/v1/completions", body)
    return "".join(e["choices"][0]["text"] for e in conn_events if e != "[DONE]" and e["choices"])


def test_an_adapter_changes_the_greedy_text(server):
    base, model = text_of(server)
    assert model == BASE and base.startswith(", there was a little girl")
    with_a, model = text_of(server, model=f"{BASE}:a")
    assert model == f"{BASE}:a"
    assert with_a != base
    # The lora parameter, by name or llama-server's id, is the same adapter.
    assert text_of(server, lora="a") == (with_a, f"{BASE}:a")
    assert text_of(server, lora=[{"id": 0}]) == (with_a, f"{BASE}:a")
    assert text_of(server, lora=[{"name": "a", "scale": 1}]) == (with_a, f"{BASE}:a")
    # b at its default scale (0.5 from --lora), and at another.
    with_b, model = text_of(server, model=f"{BASE}:b")
    assert model == f"{BASE}:b" and with_b not in (base, with_a)
    assert text_of(server, lora=[{"name": "b", "scale": 0.5}])[0] == with_b
    other, model = text_of(server, lora=[{"name": "b", "scale": 1.5}])
    assert model == f"{BASE}:b*1.5" and other != with_b
    # Scale 0 turns an adapter off.
    assert text_of(server, lora=[{"name": "a", "scale": 0}]) == (base, BASE)


def test_streamed_equals_plain(adapters):
    with running_server("-m", STORIES, "--lora", f"a={adapters['a']}", "-t", "1") as s:
        for model in (BASE, f"{BASE}:a"):
            plain, _ = text_of(s, model=model, headers={})
            assert streamed_text(s, model=model) == plain
        plain, _ = text_of(s, lora="a", headers={})
        assert streamed_text(s, lora="a") == plain
        # Chat and /v1/inference take the adapter too, and say so in `model`.
        status, _, chat = s.post("/v1/chat/completions", {
            "model": f"{BASE}:a", "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 8, "temperature": 0})
        assert status == 200 and chat["model"] == f"{BASE}:a", chat
        body = s.infer("Once upon a time", max_tokens=24, temperature=0, lora="a")
        assert body["model"] == f"{BASE}:a" and body["output"] == plain


def test_two_adapters_and_the_base_at_once_equal_their_solo_runs(server):
    prompts = ["Once upon a time", "The cat", "Tom and Sue went", "One day, a little bird"]
    forms = [{}, {"model": f"{BASE}:a"}, {"lora": [{"name": "b"}]}]
    solo = {(i, j): text_of(server, prompt=p, max_tokens=32, **f)[0]
            for i, f in enumerate(forms) for j, p in enumerate(prompts)}
    assert len({solo[(0, 0)], solo[(1, 0)], solo[(2, 0)]}) == 3

    def run(key):
        i, j = key
        return key, text_of(server, prompt=prompts[j], max_tokens=32, **forms[i])[0]

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        together = list(pool.map(run, list(solo) * 2))
    # Each equals its solo run, but where the solo run had a near-tie (the floating-point order
    # of a step changes with the batch; tie_support.py): told apart from mixing adapters by the
    # logit margin, under the same adapter, at the first differing token.
    for (i, j), text in together:
        if text != solo[(i, j)]:
            margin = first_divergence_margin(server, prompts[j], solo[(i, j)], text, max_tokens=32,
                                             headers=USER, **{"model": BASE, **forms[i]})
            assert margin < TIE_MARGIN, (forms[i], prompts[j], solo[(i, j)], text, margin)
    status, _, metrics = server.get("/metrics", headers=USER)
    assert status == 200
    switches = [line for line in metrics.splitlines()
                if line.startswith(f'mmserve_lora_switches_total{{model="{BASE}"}}')]
    assert switches and float(switches[0].split()[-1]) > 0


def test_models_list_shows_each_adapter(server):
    status, _, body = server.get("/v1/models", headers=USER)
    assert status == 200
    ids = [m["id"] for m in body["data"]]
    assert ids[:3] == [BASE, f"{BASE}:a", f"{BASE}:b"]
    base = body["data"][0]
    assert base["meta"]["adapters"] == [{"name": "a", "id": 0, "scale": 1.0},
                                        {"name": "b", "id": 1, "scale": 0.5}]
    assert body["data"][2]["meta"]["kind"] == "adapter" and body["data"][2]["meta"]["base"] == BASE


def test_an_adapter_loaded_at_run_time_serves_and_unloads(server, adapters):
    load = {"model": BASE, "name": "c", "path": str(adapters["c"])}
    status, _, body = server.post("/models/adapters/load", load, headers=USER)
    assert status in (401, 403), body  # the admin key only
    status, _, body = server.post("/models/adapters/load", load, headers=ADMIN)
    assert status == 201, body
    assert body["id"] == f"{BASE}:c" and body["adapter"]["id"] == 2
    with_c, model = text_of(server, model=f"{BASE}:c")
    assert model == f"{BASE}:c"
    assert with_c not in (text_of(server)[0], text_of(server, model=f"{BASE}:a")[0])
    assert text_of(server, lora=[{"id": 2}])[0] == with_c
    status, _, body = server.post("/models/adapters/unload", {"model": BASE, "name": "c"},
                                  headers=USER)
    assert status in (401, 403), body
    status, _, body = server.post("/models/adapters/unload", {"model": BASE, "name": "c"},
                                  headers=ADMIN)
    assert status == 200 and body["unloaded"], body
    status, _, body = complete(server, model=f"{BASE}:c")
    assert status == 404 and body["error"]["param"] == "model", body
    assert "'c'" in body["error"]["message"]
    assert text_of(server, model=f"{BASE}:a")[1] == f"{BASE}:a"  # the others stay


def test_unload_while_a_request_runs_on_the_adapter(adapters):
    with running_server("-m", STORIES, "-t", "1") as s:  # no keys: the stream helper sends none
        load = {"model": BASE, "name": "c", "path": str(adapters["c"])}
        status, _, body = s.post("/models/adapters/load", load)
        assert status == 201, body
        long = {"model": f"{BASE}:c", "max_tokens": 400, "ignore_eos": True}
        expected, _ = text_of(s, headers={}, **long)
        events = s.stream("/v1/completions", {"prompt": "Once upon a time", "temperature": 0,
                                              "stream": True, **long}, timeout=120)
        parts = [next(events)["choices"][0]["text"]]
        status, _, body = s.post("/models/adapters/unload", {"model": BASE, "name": "c"})
        assert status == 200 and body["unloaded"], body
        # The request was still running when the unload returned (400 tokens take far longer
        # than two local HTTP calls), so what follows is what it generated after the unload.
        status, _, listed = s.get("/v1/models")
        assert status == 200 and listed["data"][0]["meta"]["busy"] is True, listed
        assert [m["id"] for m in listed["data"]] == [BASE]
        finish = None
        for e in events:
            if e == "[DONE]" or not e["choices"]:
                continue
            parts.append(e["choices"][0]["text"])
            finish = e["choices"][0]["finish_reason"] or finish
        # It finished on the adapter it started with.
        assert "".join(parts) == expected
        assert finish == "length"
        status, _, body = complete(s, headers={}, lora="c")
        assert status == 404 and body["error"]["param"] == "lora", body
        # Loaded again under the same name, it serves again.
        status, _, body = s.post("/models/adapters/load", load)
        assert status == 201, body
        assert text_of(s, headers={}, **long)[0] == expected


def test_bad_requests_name_their_field(server, adapters):
    for extra, param in [({"lora": "zz"}, "lora"),
                         ({"model": f"{BASE}:zz"}, "model"),
                         ({"lora": [{"id": 7}]}, "lora[0].id"),
                         ({"lora": [{"name": "a", "scale": 99}]}, "lora[0].scale"),
                         ({"lora": [{"name": "a"}, {"id": 0}]}, "lora[1].id"),
                         ({"lora": [{"nme": "a"}]}, "lora[0].nme"),
                         ({"lora": 3}, "lora")]:
        status, _, body = complete(server, **extra)
        assert 400 <= status < 500 and body["error"]["param"] == param, (extra, body)
    status, _, body = server.post("/v1/inference", {"task": "text-gen", "input": "Once",
                                                    "parameters": {"lora": "zz"}}, headers=USER)
    assert status == 404 and body["error"]["param"] == "parameters.lora", body
    for load, param in [({"model": BASE, "name": "x", "path": "/nonexistent.gguf"}, "path"),
                        ({"model": BASE, "name": "x", "path": str(STORIES)}, "path"),
                        ({"model": BASE, "name": "x", "path": str(adapters["a"]), "scale": "big"},
                         "scale"),
                        ({"model": BASE, "name": "a", "path": str(adapters["a"])}, "name"),
                        ({"model": BASE, "name": "bad name", "path": str(adapters["a"])}, "name"),
                        ({"model": "nope", "name": "x", "path": str(adapters["a"])}, "model"),
                        ({"name": "x", "path": str(adapters["a"])}, "model")]:
        status, _, body = server.post("/models/adapters/load", load, headers=ADMIN)
        assert 400 <= status < 500 and body["error"]["param"] == param, (load, body)
    status, _, body = server.post("/models/adapters/unload", {"model": BASE, "name": "zz"},
                                  headers=ADMIN)
    assert status == 404 and body["error"]["param"] == "name", body


def test_bad_lora_flags_stop_the_server_with_a_message(adapters, tmp_path):
    for spec, words in [(f"a={tmp_path}/missing.gguf", "no file"),
                        (f"a={adapters['a']}:99", "scale"),
                        ("noequals", "NAME=FILE"),
                        (f"a:b={adapters['a']}", "adapter name")]:
        out = subprocess.run([BIN, "serve", "-m", str(STORIES), "--port", "0", "--lora", spec],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode != 0 and "--lora" in out.stderr and words in out.stderr, out.stderr
    out = subprocess.run([BIN, "serve", "-m", str(STORIES), "--port", "0", "--lora",
                          f"a={adapters['a']}", "--lora", f"a={adapters['b']}"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "twice" in out.stderr, out.stderr


def test_models_file_adapters(adapters, tmp_path):
    (tmp_path / "a.gguf").write_bytes(adapters["a"].read_bytes())
    models = tmp_path / "models.toml"
    models.write_text(f'[[model]]\nname = "tiny:1"\npath = "{STORIES}"\nparallel = 2\n'
                      f'lora = ["a=a.gguf", {{ name = "b", path = "{adapters["b"]}", scale = 0.5 }}]\n')
    with running_server("--models", models, "-t", "1") as s:
        status, _, body = s.post("/v1/completions", {"model": "tiny:1", "prompt": "Once upon a time",
                                                     "max_tokens": 16, "temperature": 0})
        assert status == 200 and body["model"] == "tiny:1", body
        base = body["choices"][0]["text"]
        # A model name with a ':' of its own: split at the last one.
        status, _, body = s.post("/v1/completions", {"model": "tiny:1:a", "prompt": "Once upon a time",
                                                     "max_tokens": 16, "temperature": 0})
        assert status == 200 and body["model"] == "tiny:1:a", body
        assert body["choices"][0]["text"] != base
        status, _, body = s.post("/v1/completions", {"model": "tiny:1:b", "prompt": "Once upon a time",
                                                     "max_tokens": 16, "temperature": 0})
        assert status == 200 and body["model"] == "tiny:1:b", body
        status, _, body = s.post("/v1/completions", {"model": "tiny:2", "prompt": "x"})
        assert status == 404 and body["error"]["param"] == "model", body
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[[model]]\nname = "m"\npath = "{STORIES}"\nlora = ["a=a.gguf:abc"]\n')
    out = subprocess.run([BIN, "serve", "--models", str(bad), "--port", "0"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "lora" in out.stderr, out.stderr
    bad.write_text(f'[[model]]\nname = "m"\npath = "{STORIES}"\nlora = [{{ name = "a" }}]\n')
    out = subprocess.run([BIN, "serve", "--models", str(bad), "--port", "0"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "path" in out.stderr, out.stderr
