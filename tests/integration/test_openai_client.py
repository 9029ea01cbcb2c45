"""OpenAI's official Node.js client library works against mmserve unchanged."""
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import generate_cli, needs_stories

pytestmark = needs_stories

CLIENT_DIR = Path(__file__).parent / "openai_client"


def installed_client():
    """Installs the pinned client (npm ci) once into the cache, keyed by the lock file."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("needs node and npm")
    lock = (CLIENT_DIR / "package-lock.json").read_bytes()
    cache = Path(os.environ.get("MMSERVE_CACHE", Path.home() / ".cache/mmserve"))
    target = cache / f"openai-client-{hashlib.sha256(lock).hexdigest()[:12]}"
    if not (target / "node_modules" / "openai").exists():
        target.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(CLIENT_DIR / name, target / name)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=target, check=True, timeout=300)
    shutil.copy(CLIENT_DIR / "client.mjs", target / "client.mjs")
    return target


def test_official_openai_client(stories_server):
    target = installed_client()
    proc = subprocess.run(["node", "client.mjs", f"{stories_server.url}/v1"], cwd=target,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["models"] == ["stories260K"]
    assert got["chat"]["finish"] == "length" and got["chat"]["usage"]["completion_tokens"] == 16
    assert got["chat_stream"]["text"] == got["chat"]["text"]
    assert got["chat_stream"]["finish"] == "length"
    assert got["chat_stream"]["usage"]["completion_tokens"] == 16
    assert got["completion"]["text"] == generate_cli("Once upon a time", 24)
    assert got["error"]["status"] == 400 and got["error"]["param"] == "messages"


def test_official_client_structured_output_tools_and_responses(tmp_path):
    """json_schema, tools (with the tool's result sent back), streamed tool calls and
    responses.create, on a synthetic model without a chat template (ChatML, generic tools)."""
    from chat_family_support import make_family_model
    from conftest import running_server
    target = installed_client()
    path, _ = make_family_model("plain", tmp_path)
    with running_server("-m", path, "--parallel", "2", "--threads", "1") as server:
        proc = subprocess.run(["node", "client.mjs", f"{server.url}/v1", "formats"], cwd=target,
                              capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["structured"]["finish"] == "stop"
    person = json.loads(got["structured"]["content"])
    assert set(person) == {"name", "age"} and 0 <= person["age"] <= 120 and len(person["name"]) <= 10
    assert got["tools"]["finish"] == "tool_calls"
    (call,) = got["tools"]["calls"]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather" and call["id"]
    assert set(json.loads(call["function"]["arguments"])) == {"city"}
    assert got["followed"]["finish"] in ("stop", "length", "tool_calls")
    assert [(c["name"], json.loads(c["arguments"])) for c in got["tool_stream"]] == \
        [(call["function"]["name"], json.loads(call["function"]["arguments"]))]
    assert got["response"]["status"] == "incomplete" and got["response"]["text"]
    assert got["response"]["usage"]["output_tokens"] == 12
    assert got["response_stream"] == {"text": got["response"]["text"], "first": "response.created",
                                      "last": "response.incomplete"}
    assert [c["name"] for c in got["response_call"]] == ["get_weather"]


@pytest.mark.skipif(not (Path(__file__).resolve().parents[3] / "shared/media/jfk.wav").exists(),
                    reason="needs ../shared/media/jfk.wav (absent)")
def test_official_client_streams_a_transcription(tmp_path):
    """audio.transcriptions.create with stream: true: the client reads the delta events and the
    done event, whose text is the deltas' and the plain call's."""
    from conftest import running_server
    from speech_support import SMALL, speech_like, synth_whisper, wav_bytes
    target = installed_client()
    model = synth_whisper(tmp_path / "synth-small.bin", *SMALL)
    audio = tmp_path / "long.wav"
    audio.write_bytes(wav_bytes(speech_like(65)))
    with running_server("--whisper-model", model, "-t", "1",
                        env={"MMSERVE_MODEL": "", "MMSERVE_MODELS_DIR": "/nonexistent"}) as server:
        proc = subprocess.run(["node", "client.mjs", f"{server.url}/v1", "transcribe", str(audio)],
                              cwd=target, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)["transcribe"]
    assert got["types"][-1] == "transcript.text.done" and got["types"].count("transcript.text.delta") >= 2, got
    assert got["deltas"] == got["done"] == got["plain"]
    assert got["usage"]["type"] == "duration" and abs(got["usage"]["seconds"] - 65) < 0.01
