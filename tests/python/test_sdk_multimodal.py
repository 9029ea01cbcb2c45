"""describe and transcribe end to end with synthetic models, once the server and the engine can
run them (the Vision and Speech issues). Until then each test skips saying which capability is
missing; the errors they give meanwhile are checked in test_sdk_errors.py."""
import base64
import subprocess

import pytest
from conftest import BIN, SHARED, STORIES, require_extension, require_stories, running_server

from mmserve import MultiModalModel

IMAGE = SHARED / "media" / "test-1.jpeg"
AUDIO = SHARED / "media" / "jfk.wav"


def cli_help(*command):
    proc = subprocess.run([BIN, *command, "--help"], capture_output=True, text=True, timeout=60)
    return proc.stdout + proc.stderr if proc.returncode == 0 else ""


def require_server_capability(option, synth):
    if option not in cli_help("serve"):
        pytest.skip(f"the server cannot load this model kind yet (`mmserve serve --help` has no "
                    f"{option})")
    if not cli_help("synth", synth):
        pytest.skip(f"no synthetic model to test with yet (`mmserve synth {synth}` is missing)")


def synthesize(kind, directory):
    proc = subprocess.run([BIN, "synth", kind, "-o", str(directory)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return sorted(directory.iterdir())


def require_server_answers(server, body):
    """The server's own answer to `body`; skips when the server cannot serve it yet (its own
    tests, not these, are where a server-side failure is judged)."""
    status, _, raw = server.post("/v1/inference", body, timeout=300)
    if status != 200:
        pytest.skip(f"the server does not serve task {body['task']!r} yet: {status} "
                    f"{raw['error']['message'] if isinstance(raw, dict) else raw}")
    return raw


def test_describe_remote_with_a_synthetic_vision_model(tmp_path):
    if not IMAGE.exists():
        pytest.skip(f"needs {IMAGE} (absent)")
    require_server_capability("--mmproj", "vlm")
    files = synthesize("vlm", tmp_path)
    mmproj = next(f for f in files if f.name.startswith("mmproj"))
    model = next(f for f in files if f.suffix == ".gguf" and f != mmproj)
    parameters = {"prompt": "Describe this image.", "max_tokens": 16, "temperature": 0}
    with running_server("-m", model, "--mmproj", mmproj, "--threads", "1") as server:
        raw = require_server_answers(server, {
            "input": base64.b64encode(IMAGE.read_bytes()).decode(), "task": "image-caption",
            "parameters": parameters})
        sdk = MultiModalModel(mode="remote", base_url=server.url)
        caption = sdk.describe(IMAGE, **parameters)
        assert isinstance(caption, str) and caption == raw["output"]
        with open(IMAGE, "rb") as f:
            assert sdk.describe(f, **parameters) == caption


def test_transcribe_remote_with_a_synthetic_speech_model(tmp_path):
    if not AUDIO.exists():
        pytest.skip(f"needs {AUDIO} (absent)")
    require_server_capability("--whisper-model", "whisper")
    require_stories()
    whisper = synthesize("whisper", tmp_path)[0]
    audio = base64.b64encode(AUDIO.read_bytes()).decode()
    with running_server("-m", STORIES, "--whisper-model", whisper, "--threads", "1") as server:
        raw = require_server_answers(server, {"input": audio, "task": "speech-transcribe",
                                              "parameters": {"language": "en"}})
        sdk = MultiModalModel(mode="remote", base_url=server.url)
        assert sdk.transcribe(AUDIO, language="en") == raw["output"]
        assert sdk.transcribe(AUDIO.read_bytes(), language="en") == raw["output"]
        raw = require_server_answers(server, {"input": audio, "task": "speech-transcribe",
                                              "parameters": {"language": "en",
                                                             "timestamps": True}})
        segments = sdk.transcribe(AUDIO, language="en", format="segments")
        assert segments == raw["segments"]
        assert all({"start", "end", "text"} <= set(s) for s in segments)


def require_local_capability(capability):
    require_extension()
    import mmserve._native
    if not mmserve._native.capabilities()[capability]:
        pytest.skip(f"the engine has no in-process {capability} path yet "
                    f"(mmserve._native.capabilities()['{capability}'] is False)")


def test_describe_is_the_same_locally_and_remotely(tmp_path):
    require_local_capability("vision")
    require_server_capability("--mmproj", "vlm")
    files = synthesize("vlm", tmp_path)
    mmproj = next(f for f in files if f.name.startswith("mmproj"))
    model = next(f for f in files if f.suffix == ".gguf" and f != mmproj)
    with MultiModalModel(mode="local", model=str(model), mmproj=str(mmproj), threads=1) as local:
        caption = local.describe(IMAGE, max_tokens=16, temperature=0)
    with running_server("-m", model, "--mmproj", mmproj, "--threads", "1") as server:
        remote = MultiModalModel(mode="remote", base_url=server.url)
        assert remote.describe(IMAGE, max_tokens=16, temperature=0) == caption


def test_transcribe_is_the_same_locally_and_remotely(tmp_path):
    require_local_capability("speech")
    require_stories()
    require_server_capability("--whisper-model", "whisper")
    whisper = synthesize("whisper", tmp_path)[0]
    with MultiModalModel(mode="local", model=str(STORIES), whisper_model=str(whisper),
                         threads=1) as local:
        text = local.transcribe(AUDIO, language="en")
    with running_server("-m", STORIES, "--whisper-model", whisper, "--threads", "1") as server:
        remote = MultiModalModel(mode="remote", base_url=server.url)
        assert remote.transcribe(AUDIO, language="en") == text
