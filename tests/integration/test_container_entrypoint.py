"""The container image's entrypoint (deploy/docker/entrypoint.sh) and `mmserve healthcheck`, run
here with the real binary: which models a mounted directory's files become, and the healthcheck
that the image's HEALTHCHECK runs (the image itself: make test-deploy)."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import BIN, SHARED, STORIES, needs_stories, running_server

ENTRYPOINT = Path(__file__).resolve().parents[2] / "deploy/docker/entrypoint.sh"
WHISPER_FIXTURE = SHARED / "models" / "for-tests-ggml-tiny.bin"


def env_for(models):
    return {**os.environ, "PATH": f"{Path(BIN).parent}:{os.environ['PATH']}",
            "MMSERVE_MODELS_DIR": str(models), "MMSERVE_PORT": "0"}


def entrypoint(models, *args, timeout=60):
    return subprocess.run(["/bin/sh", str(ENTRYPOINT), *args], capture_output=True, text=True,
                          timeout=timeout, env=env_for(models))


def served_models(models, *args):
    """Starts the entrypoint's server, stops it once listening; the model lines of its log."""
    proc = subprocess.Popen(["/bin/sh", str(ENTRYPOINT), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env_for(models))
    line = proc.stdout.readline()
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert "listening on http://0.0.0.0:" in line, (line, err)
    return [l for l in err.splitlines() if l.startswith("mmserve: model '") and "': " in l]


@needs_stories
def test_the_first_text_model_of_the_directory_is_served(tmp_path):
    shutil.copy(STORIES, tmp_path / "b-stories.gguf")
    shutil.copy(STORIES, tmp_path / "a-stories.gguf")
    (tmp_path / "notes.txt").write_text("not a model")
    lines = served_models(tmp_path, "--parallel", "2")  # options go to serve
    assert len(lines) == 1 and "'a-stories': text" in lines[0] and "(parallel 2)" in lines[0], lines


@needs_stories
@pytest.mark.skipif(not WHISPER_FIXTURE.exists(), reason=f"needs {WHISPER_FIXTURE} (absent)")
def test_a_whisper_model_beside_it_is_served_too_and_a_models_file_wins(tmp_path):
    shutil.copy(STORIES, tmp_path / "stories.gguf")
    shutil.copy(WHISPER_FIXTURE, tmp_path / "ggml-tiny.bin")
    shutil.copy(SHARED / "models" / "for-tests-silero-v6.2.0-ggml.bin", tmp_path / "ggml-silero.bin")
    lines = served_models(tmp_path)
    assert any("'stories': text" in l for l in lines), lines
    assert any("'ggml-tiny': speech" in l for l in lines), lines
    # With a models file, it is what is served: a broken one says so, naming the file.
    (tmp_path / "models.toml").write_text("[[model]]\nname = 'x'\n")
    proc = entrypoint(tmp_path)
    assert proc.returncode != 0 and "models.toml" in proc.stderr and "'path' is required" in proc.stderr


def test_an_empty_directory_is_one_clear_line(tmp_path):
    proc = entrypoint(tmp_path)
    assert proc.returncode == 1 and "no model in" in proc.stderr, proc.stderr


def test_a_command_runs_that_command(tmp_path):
    proc = entrypoint(tmp_path, "healthcheck", "--help")
    assert proc.returncode == 0 and "usage: mmserve healthcheck" in proc.stdout


@needs_stories
def test_healthcheck_is_zero_only_when_the_server_is_ready():
    with running_server("-m", STORIES) as server:
        ok = subprocess.run([BIN, "healthcheck", "--url", f"{server.url}/ready"], capture_output=True, text=True)
        assert ok.returncode == 0, ok.stderr
        env = {**os.environ, "MMSERVE_HEALTHCHECK_URL": f"{server.url}/no-such-path"}
        bad = subprocess.run([BIN, "healthcheck"], capture_output=True, text=True, env=env)
        assert bad.returncode == 1 and "answered 404" in bad.stderr
        port = server.port
    gone = subprocess.run([BIN, "healthcheck", "--url", f"http://127.0.0.1:{port}/ready", "--timeout", "2"],
                          capture_output=True, text=True)
    assert gone.returncode == 1 and "no answer" in gone.stderr
    usage = subprocess.run([BIN, "healthcheck", "--url", "localhost:8080"], capture_output=True, text=True)
    assert usage.returncode == 2 and "--url" in usage.stderr
