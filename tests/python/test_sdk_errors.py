"""Errors map to the SDK's typed exceptions, carrying the server's (or engine's) message."""
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import STORIES, free_port, needs_stories, require_extension, running_server

import mmserve
from mmserve import (AuthenticationFailed, ConnectionFailed, DeviceUnavailable, InvalidInput,
                     ModelNotLoaded, MultiModalModel, ServerBusy)


def raw_error(server, body):
    """What the server itself answers to a request: (status, its error object)."""
    status, _, answer = server.post("/v1/inference", body)
    return status, answer["error"]


@needs_stories
@pytest.mark.parametrize("kwargs,param", [
    (dict(prompt=""), "input"),
    (dict(prompt="hi", max_tokens=0), "parameters.max_tokens"),
    (dict(prompt="hi", max_tokens=100000), "parameters.max_tokens"),
    (dict(prompt="hi", temperature=-1), "parameters.temperature"),
    (dict(prompt="hi", top_p=0), "parameters.top_p"),
    (dict(prompt="cat " * 700), "input"),
])
def test_bad_input_is_invalid_input_with_the_servers_message(server, remote, kwargs, param):
    parameters = {k: v for k, v in kwargs.items() if k != "prompt"}
    status, expected = raw_error(server, {"input": kwargs["prompt"], "task": "text-gen",
                                          "parameters": parameters})
    with pytest.raises(InvalidInput) as info:
        remote.generate(**kwargs)
    e = info.value
    assert status == 400 and e.status == 400
    assert e.message == expected["message"]
    assert e.param == expected["param"] == param
    assert e.type == "invalid_request_error"
    assert isinstance(e, ValueError)  # usable where a ValueError is expected


@needs_stories
@pytest.mark.parametrize("kwargs,param", [
    (dict(prompt=""), "prompt"),
    (dict(prompt="hi", max_tokens=0), "max_tokens"),
    (dict(prompt="hi", max_tokens=100000), "max_tokens"),
    (dict(prompt="hi", temperature=-1), "temperature"),
    (dict(prompt="hi", top_p=0), "top_p"),
    (dict(prompt="cat " * 700), "input"),
])
def test_bad_input_is_invalid_input_locally(local, kwargs, param):
    with pytest.raises(InvalidInput) as info:
        local.generate(**kwargs)
    assert info.value.param == param
    assert info.value.message
    assert info.value.status is None


@needs_stories
def test_wrong_types_are_refused_before_sending(either):
    for call, param in [(lambda: either.generate(42), "prompt"),
                        (lambda: either.generate("hi", max_tokens="many"), "max_tokens"),
                        (lambda: either.generate("hi", stop=[1]), "stop"),
                        (lambda: either.chat("hello"), "messages"),
                        (lambda: either.chat([{"role": "robot", "content": "x"}]), None),
                        (lambda: either.transcribe(b"RIFF", format="srt"), "format"),
                        (lambda: either.describe(b""), "image"),
                        (lambda: either.describe("/no/such/product.jpg"), "image")]:
        with pytest.raises(InvalidInput) as info:
            call()
        if param:
            assert info.value.param == param
    with pytest.raises(TypeError):
        either.generate("hi", temprature=0)  # a misspelt option is not silently ignored


@needs_stories
def test_missing_models_are_model_not_loaded_with_the_servers_message(server, remote):
    _, expected = raw_error(server, {"input": "aGk=", "task": "image-caption"})
    with pytest.raises(ModelNotLoaded) as info:
        remote.describe(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert info.value.message == expected["message"] and "--mmproj" in info.value.message
    assert info.value.status == 400 and info.value.type == "model_not_loaded"

    _, expected = raw_error(server, {"input": "aGk=", "task": "speech-transcribe"})
    with pytest.raises(ModelNotLoaded) as info:
        remote.transcribe(b"RIFF....WAVE", language="en")
    assert info.value.message == expected["message"] and "--whisper-model" in info.value.message


@needs_stories
def test_missing_models_are_model_not_loaded_locally(local, tmp_path):
    # A text model alone: the tasks that need the projector or a speech model say which; the
    # same messages as the server's (test_sdk_multimodal compares them).
    image = tmp_path / "product.jpg"
    image.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ModelNotLoaded, match="--mmproj"):
        local.describe(image)
    with pytest.raises(ModelNotLoaded, match="--whisper-model"):
        local.transcribe(b"RIFF....WAVE")
    with pytest.raises(ModelNotLoaded, match="vision model") as info:
        local.chat([{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGk="}}]}])
    assert info.value.param == "messages[0].content[0].type"


def test_a_missing_model_file_is_model_not_loaded(tmp_path):
    require_extension()
    with pytest.raises(ModelNotLoaded, match="not found") as info:
        MultiModalModel(mode="local", model=str(tmp_path / "nope.gguf"))
    assert info.value.param == "model"
    bogus = tmp_path / "bogus.gguf"
    bogus.write_text("not a model")
    with pytest.raises(ModelNotLoaded, match="bogus.gguf"):
        MultiModalModel(mode="local", model=str(bogus))
    if STORIES.exists():
        with pytest.raises(ModelNotLoaded, match="mmproj file not found"):
            MultiModalModel(mode="local", model=str(STORIES), mmproj=str(tmp_path / "p.gguf"))


def test_no_model_anywhere_says_where_it_looked(tmp_path, monkeypatch):
    require_extension()
    monkeypatch.delenv("MMSERVE_MODEL", raising=False)
    monkeypatch.setenv("MMSERVE_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelNotLoaded, match="MMSERVE_MODEL") as info:
        MultiModalModel(mode="local")
    assert str(tmp_path) in info.value.message


def test_no_server_is_connection_failed():
    url = f"http://127.0.0.1:{free_port()}"
    model = MultiModalModel(mode="remote", base_url=url, timeout=10)
    with pytest.raises(ConnectionFailed, match="cannot reach") as info:
        model.generate("Once upon a time")
    assert url in info.value.message
    assert isinstance(info.value, ConnectionError)
    with pytest.raises(ConnectionFailed):
        model.generate("Once upon a time", stream=True)
    with pytest.raises(ConnectionFailed):
        mmserve.infer("hi", base_url=url)


@needs_stories
def test_a_full_queue_is_server_busy_with_the_servers_message():
    # One sequence, room for one waiting request: of eight long requests sent at once, at most
    # two are taken. Rounds repeat only in the unlikely case the server outran every sender.
    with running_server("-m", STORIES, "--parallel", "1", "--queue-size", "1",
                        "--threads", "1") as server:
        model = MultiModalModel(mode="remote", base_url=server.url)
        for _ in range(5):
            barrier = threading.Barrier(8)

            def send(_):
                barrier.wait()
                try:
                    return model.generate("Once upon a time", max_tokens=480, ignore_eos=True)
                except ServerBusy as e:
                    return e

            with ThreadPoolExecutor(max_workers=8) as pool:
                results = list(pool.map(send, range(8)))
            busy = [r for r in results if isinstance(r, ServerBusy)]
            if busy:
                break
        assert busy, "no request was refused in 5 rounds"
        e = busy[0]
        assert e.status == 429 and e.type == "server_busy"
        assert e.message == "the wait queue is full (1 requests); retry later"
        assert e.retry_after == 1.0
        assert any(isinstance(r, str) and len(r) > 0 for r in results)


@needs_stories
def test_the_api_key_is_sent_and_a_wrong_one_refused(monkeypatch):
    with running_server("-m", STORIES, "--api-key", "s3cret", "--threads", "1") as server:
        with pytest.raises(AuthenticationFailed, match="API key") as info:
            MultiModalModel(mode="remote", base_url=server.url).generate("hi", max_tokens=2)
        assert info.value.status == 401
        with pytest.raises(AuthenticationFailed):
            MultiModalModel(mode="remote", base_url=server.url,
                            api_key="wrong").generate("hi", max_tokens=2)
        ok = MultiModalModel(mode="remote", base_url=server.url, api_key="s3cret")
        assert ok.generate("Once upon a time", max_tokens=4, temperature=0)
        monkeypatch.setenv("MMSERVE_API_KEY", "s3cret")
        assert MultiModalModel(mode="remote", base_url=server.url).generate(
            "Once upon a time", max_tokens=4, temperature=0)


def test_cuda_without_a_cuda_device_is_a_clear_error_unless_fallback():
    require_extension()
    if not STORIES.exists():
        pytest.skip(f"needs {STORIES} (absent)")
    cuda = [d for d in mmserve.devices() if d["backend"] == "CUDA"]
    if len(cuda) == 1:
        with MultiModalModel(mode="local", model=str(STORIES), device="cuda:0") as model:
            assert model.info()["device"] == "cuda:0"
        return
    with pytest.raises(DeviceUnavailable) as info:
        MultiModalModel(mode="local", model=str(STORIES), device="cuda:0")
    message = info.value.message
    assert "cuda:0" in message and "fallback=True" in message and "device='cpu'" in message
    assert info.value.param == "device"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with MultiModalModel(mode="local", model=str(STORIES), device="cuda:0", fallback=True,
                             threads=1) as model:
            assert model.info()["device"] == "cpu"
            assert model.generate("Once upon a time", max_tokens=8, temperature=0)
    assert any("falling back to the CPU" in str(w.message) for w in caught)
    with pytest.raises(InvalidInput, match="'cpu' or 'cuda:N'"):
        MultiModalModel(mode="local", model=str(STORIES), device="tpu")


def test_options_of_the_other_mode_are_refused():
    with pytest.raises(TypeError, match="base_url"):
        MultiModalModel(mode="local", base_url="http://localhost:8080")
    with pytest.raises(TypeError, match="device"):
        MultiModalModel(mode="remote", device="cuda:0")
    with pytest.raises(InvalidInput, match="mode"):
        MultiModalModel(mode="cloud")
    with pytest.raises(InvalidInput, match="base_url"):
        MultiModalModel(mode="remote", base_url="localhost:8080")


def test_error_types_follow_the_servers_error_types():
    from mmserve.errors import (PermissionDenied, RateLimited, ServerUnavailable, RequestTimeout,
                                error_from_response)
    cases = {("permission_error", 403): PermissionDenied,
             ("rate_limit_exceeded", 429): RateLimited,
             ("invalid_request_error", 400): InvalidInput,
             ("payload_too_large", 413): InvalidInput,
             ("model_not_loaded", 400): ModelNotLoaded,
             ("server_busy", 429): ServerBusy,
             ("unavailable", 503): ServerUnavailable,
             ("authentication_error", 401): AuthenticationFailed,
             ("timeout", 504): RequestTimeout}
    for (etype, status), cls in cases.items():
        e = error_from_response(status, {"error": {"message": "m", "type": etype, "param": None,
                                                   "code": status}})
        assert type(e) is cls and e.message == "m" and e.status == status
    # A body that is not mmserve's (a proxy's HTML page) still maps by status.
    assert type(error_from_response(429, None, fallback_message="<html>")) is ServerBusy
    assert type(error_from_response(403, None)) is PermissionDenied
    limited = error_from_response(429, {"error": {"message": "m", "type": "rate_limit_exceeded"}},
                                  retry_after="17")
    assert isinstance(limited, ServerBusy) and limited.retry_after == 17.0
    assert isinstance(error_from_response(502, None), mmserve.MMServeError)


@needs_stories
def test_a_streamed_request_fails_at_the_call_not_later(either):
    with pytest.raises(InvalidInput):
        either.generate("", stream=True)
    with pytest.raises(InvalidInput):
        either.chat([{"role": "user", "content": "hi"}], max_tokens=100000, stream=True)
