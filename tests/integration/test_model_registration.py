"""Models registered and unregistered while the server runs (POST /models/register and
/models/unregister): the flywheel's last step, a new model served beside the current one
without a restart."""
import shutil
import threading

import pytest

from conftest import STORIES, needs_stories, running_server

pytestmark = needs_stories
ADMIN = {"Authorization": "Bearer admin-key"}
USER = {"Authorization": "Bearer user-key"}


def models_file(tmp_path):
    path = tmp_path / "models.toml"
    path.write_text(f'[[model]]\nname = "stories"\npath = "{STORIES}"\nparallel = 2\n')
    return path


def complete(server, model, max_tokens=24, headers=ADMIN, **extra):
    return server.post("/v1/completions", {"model": model, "prompt": "Once upon a time",
                                           "max_tokens": max_tokens, "temperature": 0, **extra},
                       headers=headers)


def names(server):
    status, _, body = server.get("/v1/models", headers=ADMIN)
    assert status == 200, body
    return {m["id"]: m for m in body["data"]}


@pytest.fixture
def server(tmp_path):
    with running_server("--models", models_file(tmp_path), "--api-key", "user-key",
                        "--admin-key", "admin-key", "-t", "1",
                        env={"MMSERVE_MODELS_DIR": str(tmp_path)}) as s:
        yield s


def test_a_registered_model_serves_beside_the_current_one(server, tmp_path):
    tuned = tmp_path / "tuned.gguf"
    shutil.copy(STORIES, tuned)
    status, _, body = server.post("/models/register", {"name": "tuned", "path": str(tuned),
                                                      "aliases": ["candidate"]}, headers=ADMIN)
    assert status == 201, body
    assert body["id"] == "tuned" and body["meta"]["loaded"] and body["meta"]["aliases"] == ["candidate"]
    assert body["meta"]["busy"] is False
    assert set(names(server)) == {"stories", "tuned"}
    # Both at once, side by side: the same weights answer the same greedy text.
    results = {}

    def ask(model):
        results[model] = complete(server, model)

    threads = [threading.Thread(target=ask, args=(m,)) for m in ("stories", "tuned", "candidate")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for model, (status, _, body) in results.items():
        assert status == 200, (model, body)
    assert results["tuned"][2]["model"] == "tuned" and results["candidate"][2]["model"] == "tuned"
    texts = {m: r[2]["choices"][0]["text"] for m, r in results.items()}
    assert texts["stories"] == texts["tuned"] == texts["candidate"] and texts["stories"]


def test_relative_paths_are_the_model_directorys_and_preload_false_loads_at_first_use(server, tmp_path):
    shutil.copy(STORIES, tmp_path / "later.gguf")
    status, _, body = server.post("/models/register", {"name": "later", "path": "later.gguf",
                                                      "preload": False, "parallel": 1}, headers=ADMIN)
    assert status == 201 and body["meta"]["loaded"] is False, body
    status, _, body = complete(server, "later", max_tokens=4)
    assert status == 200 and body["model"] == "later", body
    assert names(server)["later"]["meta"]["loaded"] is True


def test_bad_registrations_name_the_field_and_leave_nothing_behind(server, tmp_path):
    def refused(body, param, code=400):
        status, _, answer = server.post("/models/register", body, headers=ADMIN)
        assert status == code and answer["error"]["param"] == param, (body, status, answer)
        return answer

    refused({"name": "stories", "path": str(STORIES)}, "name")  # taken
    refused({"name": "x", "path": str(tmp_path / "absent.gguf")}, "path")
    refused({"name": "x"}, "path")
    refused({"path": str(STORIES)}, "name")
    refused({"name": "a b", "path": str(STORIES)}, "name")
    refused({"name": "x", "path": str(STORIES), "kind": "video"}, "kind")
    refused({"name": "x", "path": str(STORIES), "parallel": 0}, "parallel")
    refused({"name": "x", "path": str(STORIES), "vad": "v.bin"}, "vad")
    refused({"name": "x", "path": str(STORIES), "threads": 2}, "threads")  # not a field here
    status, _, answer = server.post("/models/register", "not json", headers=ADMIN)
    assert status == 400, answer
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    status, _, answer = server.post("/models/register", {"name": "broken", "path": str(broken)},
                                    headers=ADMIN)
    assert 400 <= status < 600 and status != 201 and answer["error"]["param"] == "model", answer
    assert set(names(server)) == {"stories"}  # a model that cannot load is not registered
    status, _, answer = server.post("/models/register", {"name": "broken", "path": str(STORIES)},
                                    headers=ADMIN)
    assert status == 201, answer  # the name is free again
    assert server.get("/health")[0] == 200


def test_registration_is_for_the_admin_key_only(server):
    body = {"name": "x", "path": str(STORIES)}
    assert server.post("/models/register", body)[0] == 401
    assert server.post("/models/register", body, headers=USER)[0] == 403
    assert server.post("/models/unregister", {"model": "stories"}, headers=USER)[0] == 403
    assert set(names(server)) == {"stories"}


def test_an_unregistered_name_stops_answering(server, tmp_path):
    shutil.copy(STORIES, tmp_path / "old.gguf")
    assert server.post("/models/register", {"name": "old", "path": "old.gguf"}, headers=ADMIN)[0] == 201
    status, _, body = server.post("/models/unregister", {"model": "old"}, headers=ADMIN)
    assert status == 200 and body == {"model": "old", "unregistered": True, "unloaded": True,
                                      "in_use": False}, body
    status, _, body = complete(server, "old", max_tokens=4)
    assert status == 404 and body["error"]["param"] == "model", body
    assert set(names(server)) == {"stories"}
    status, _, body = server.post("/models/unregister", {"model": "old"}, headers=ADMIN)
    assert status == 404 and body["error"]["param"] == "model", body


def test_a_request_running_on_an_unregistered_model_completes(tmp_path):
    with running_server("--models", models_file(tmp_path), "-t", "1") as server:
        shutil.copy(STORIES, tmp_path / "old.gguf")
        status, _, body = server.post("/models/register", {"name": "old", "path": str(tmp_path / "old.gguf")})
        assert status == 201, body
        events, started = [], threading.Event()

        def long_request():
            for event in server.stream("/v1/completions", {"model": "old", "prompt": "Once",
                                                           "max_tokens": 300, "ignore_eos": True,
                                                           "temperature": 0, "stream": True}):
                events.append(event)
                started.set()

        worker = threading.Thread(target=long_request)
        worker.start()
        assert started.wait(30)
        status, _, body = server.post("/models/unregister", {"model": "old"})
        assert status == 200 and body["unloaded"] and body["in_use"], body
        assert complete(server, "old", headers={})[0] == 404
        worker.join(60)
        assert events and events[-1] == "[DONE]", events[-3:]
        finish = [e for e in events if e != "[DONE]" and e["choices"][0].get("finish_reason")]
        assert finish and finish[-1]["choices"][0]["finish_reason"] == "length", finish
        assert complete(server, "stories", headers={})[0] == 200
