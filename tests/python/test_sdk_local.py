"""Local mode's own duties: the GIL is released while computing, the model is freed by the
context manager or close(), and a closed model says so."""
import sys
import threading

import pytest
from conftest import GOLDEN, STORIES, require_extension, require_stories

from mmserve import ModelNotLoaded, MultiModalModel


@pytest.fixture(autouse=True)
def _needs():
    require_extension()
    require_stories()


def native():
    import mmserve._native
    return mmserve._native


def test_the_context_manager_frees_the_model():
    before = native().live_engines()
    with MultiModalModel(mode="local", model=str(STORIES), threads=1) as model:
        assert native().live_engines() == before + 1
        assert model.generate("Once upon a time", max_tokens=48, temperature=0).startswith(GOLDEN)
    assert native().live_engines() == before
    with pytest.raises(ModelNotLoaded, match="closed"):
        model.generate("Once upon a time")
    model.close()  # idempotent


def test_the_extension_is_this_version_of_mmserve():
    import mmserve
    assert native().version() == mmserve.__version__
    versions = native().engine_versions()
    assert versions["llama.cpp"] and versions["whisper.cpp"] and "CPU" in versions["backends"]


def test_info_names_the_model_and_device():
    with MultiModalModel(mode="local", model=str(STORIES), threads=1, parallel=2) as model:
        info = model.info()
    assert info["model"] == "stories260K" and info["device"] == "cpu"
    assert info["architecture"] == "llama"
    assert info["sequence_capacity"] == 512 and info["n_ctx"] == 1024 and info["parallel"] == 2
    assert info["capabilities"]["text"] is True


def test_the_model_comes_from_mmserve_model_when_not_given(monkeypatch):
    monkeypatch.setenv("MMSERVE_MODEL", str(STORIES))
    with MultiModalModel(mode="local", threads=1) as model:
        assert model.info()["path"] == str(STORIES)


def test_the_gil_is_released_while_computing():
    # A thread waits inside the extension for a long generation. With the switch interval
    # raised, Python never takes the GIL from that thread by force, so this thread runs before
    # the generation ends only if the extension released the GIL. It then finds the request
    # still running and cancels it, which ends the other thread's wait.
    with MultiModalModel(mode="local", model=str(STORIES), threads=1) as model:
        completion = model._backend._engine.generate("Once upon a time", max_tokens=500,
                                                     ignore_eos=True)
        started = threading.Event()
        waited = []

        def waiter():
            started.set()
            waited.append(completion.wait(600_000))

        interval = sys.getswitchinterval()
        sys.setswitchinterval(1000)
        try:
            thread = threading.Thread(target=waiter)
            thread.start()
            started.wait()
            running = not completion.wait(0)
            completion.cancel()
            thread.join()
        finally:
            sys.setswitchinterval(interval)
        assert running, "the generation was over before this thread could run: GIL held"
        assert waited == [True]
        with pytest.raises(Exception, match="cancelled"):
            completion.result()


def test_close_cuts_what_is_queued_or_running_with_model_not_loaded():
    model = MultiModalModel(mode="local", model=str(STORIES), threads=1, parallel=1)
    first = model.generate("Once upon a time", max_tokens=500, ignore_eos=True, stream=True)
    second = model.generate("The cat sat", max_tokens=500, ignore_eos=True, stream=True)
    model.close()
    with pytest.raises(ModelNotLoaded, match="closed while generating"):
        second.read()
    try:
        first.read()  # may have finished before close(); cut otherwise
    except ModelNotLoaded:
        pass
    with pytest.raises(ModelNotLoaded, match="closed"):
        model.chat([{"role": "user", "content": "hi"}])
