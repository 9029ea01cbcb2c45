"""describe and transcribe in both modes with the synthetic VLM and whisper model: the product
brief's own example, the same outputs locally and remotely at temperature 0, the speech options,
chat image parts, and the model-directory lookup of the projector and the speech model.

Nothing here skips because the product misbehaves: the only skips are for absent media in
../shared (the photo, jfk.wav) or a build without the extension."""
import base64
import shutil
import subprocess

import pytest
from conftest import BIN, SHARED, STORIES, require_extension, require_stories, running_server

from mmserve import DeviceUnavailable, InvalidInput, ModelNotLoaded, MultiModalModel

IMAGE = SHARED / "media" / "test-1.jpeg"
AUDIO = SHARED / "media" / "jfk.wav"
# A smaller whisper than tiny's shape: the tests are about the SDK, not the model.
SMALL_WHISPER = ("--state", "64", "--heads", "2", "--layers", "1")
TEMP0 = {"max_tokens": 12, "temperature": 0}


def needs_media():
    for path in (IMAGE, AUDIO):
        if not path.exists():
            pytest.skip(f"needs {path} (absent)")


def synth_vlm(directory):
    proc = subprocess.run([BIN, "synth", "vlm", "-o", str(directory)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    model, mmproj = proc.stdout.split()
    return model, mmproj


def synth_whisper(path):
    proc = subprocess.run([BIN, "synth", "whisper", "-o", str(path), *SMALL_WHISPER],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return str(path)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """A model directory as `mmserve pull` leaves it: the VLM, its projector, a whisper model."""
    directory = tmp_path_factory.mktemp("models")
    model, mmproj = synth_vlm(directory)
    whisper = synth_whisper(directory / "ggml-synth.bin")
    return directory, model, mmproj, whisper


@pytest.fixture(scope="module")
def vlm_server(models_dir):
    _, model, mmproj, whisper = models_dir
    with running_server("-m", model, "--mmproj", mmproj, "--whisper-model", whisper,
                        "--threads", "1", "--parallel", "2") as server:
        yield server


@pytest.fixture(scope="module")
def local_vlm(models_dir):
    require_extension()
    _, model, mmproj, whisper = models_dir
    with MultiModalModel(mode="local", model=model, mmproj=mmproj, whisper_model=whisper,
                         threads=1, parallel=2) as sdk:
        yield sdk


def cuda_in_this_build():
    import mmserve._native
    return "CUDA" in mmserve._native.engine_versions()["backends"].upper().split(",")


def brief_example(mode, **options):
    """The product brief's example, each call at temperature 0 so both modes can be compared."""
    model = MultiModalModel(mode=mode, **options)
    with model:
        text_output = model.generate("解释量子计算的基本原理", **TEMP0)
        caption = model.describe("product.jpg", **TEMP0)
        transcript = model.transcribe("meeting.wav")
    return text_output, caption, transcript


def test_the_briefs_example_gives_the_same_outputs_in_both_modes(models_dir, vlm_server,
                                                                 tmp_path, monkeypatch):
    require_extension()
    needs_media()
    directory, _, _, _ = models_dir
    shutil.copy(IMAGE, tmp_path / "product.jpg")
    shutil.copy(AUDIO, tmp_path / "meeting.wav")
    monkeypatch.chdir(tmp_path)
    # Local mode finds all three models as the brief's one-liner expects: in the model directory.
    monkeypatch.delenv("MMSERVE_MODEL", raising=False)
    monkeypatch.setenv("MMSERVE_MODELS_DIR", str(directory))
    if cuda_in_this_build():
        device = "cuda:0"
    else:
        # This build has no CUDA backend: the brief's device says so, clearly, and "cpu" runs.
        with pytest.raises(DeviceUnavailable, match="built without CUDA"):
            MultiModalModel(mode="local", device="cuda:0")
        device = "cpu"
    local = brief_example("local", device=device, threads=1)
    remote = brief_example("remote", base_url=vlm_server.url, timeout=300)
    assert local == remote
    text_output, caption, transcript = local
    assert all(isinstance(x, str) for x in local) and text_output and caption
    # The remote answers are the server's own (the SDK adds nothing of its own).
    status, _, raw = vlm_server.post("/v1/inference", {
        "input": base64.b64encode(IMAGE.read_bytes()).decode(), "task": "image-caption",
        "parameters": TEMP0}, timeout=300)
    assert status == 200 and raw["output"] == caption, raw


def test_local_mode_loads_what_it_finds_in_the_model_directory(models_dir, monkeypatch):
    require_extension()
    directory, model, mmproj, whisper = models_dir
    monkeypatch.delenv("MMSERVE_MODEL", raising=False)
    monkeypatch.setenv("MMSERVE_MODELS_DIR", str(directory))
    with MultiModalModel(mode="local", threads=1) as sdk:
        info = sdk.info()
    assert (info["path"], info["mmproj"], info["whisper_model"]) == (model, mmproj, whisper)
    assert info["capabilities"] == {"text": True, "vision": True, "speech": True}
    # "" loads none; a model given by path gets no companions it did not ask for.
    with MultiModalModel(mode="local", threads=1, mmproj="", whisper_model="") as sdk:
        assert sdk.info()["capabilities"] == {"text": True, "vision": False, "speech": False}
    with MultiModalModel(mode="local", model=model, threads=1) as sdk:
        assert sdk.info()["mmproj"] is None and sdk.info()["whisper_model"] is None


def test_the_xdg_model_directory_is_where_both_modes_look(models_dir, tmp_path, monkeypatch):
    """Without $MMSERVE_MODELS_DIR the model directory is $XDG_DATA_HOME/mmserve/models, for the
    server and for local mode alike."""
    require_extension()
    _, model, mmproj, _ = models_dir
    xdg = tmp_path / "xdg"
    (xdg / "mmserve" / "models").mkdir(parents=True)
    target = xdg / "mmserve" / "models" / "tiny.gguf"
    shutil.copy(STORIES if STORIES.exists() else model, target)
    for name in ("MMSERVE_MODEL", "MMSERVE_MODELS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(xdg))
    with MultiModalModel(mode="local", threads=1) as sdk:
        assert sdk.info()["path"] == str(target)
        local = sdk.generate("Once upon a time", **TEMP0)
    with running_server("--threads", "1", env={"XDG_DATA_HOME": str(xdg),
                                               "MMSERVE_MODELS_DIR": "", "MMSERVE_MODEL": ""}) \
            as server:
        status, _, models = server.get("/v1/models")
        assert status == 200 and [m["id"] for m in models["data"]][0] == "tiny", models
        assert MultiModalModel(mode="remote", base_url=server.url).generate(
            "Once upon a time", **TEMP0) == local


def test_describe_takes_a_path_bytes_or_a_file_and_options_alike(local_vlm, vlm_server):
    needs_media()
    remote = MultiModalModel(mode="remote", base_url=vlm_server.url, timeout=300)
    for sdk in (local_vlm, remote):
        caption = sdk.describe(IMAGE, **TEMP0)
        assert sdk.describe(IMAGE.read_bytes(), **TEMP0) == caption
        with open(IMAGE, "rb") as f:
            assert sdk.describe(f, **TEMP0) == caption
    options = dict(prompt="What is in the picture?", system="Answer briefly.", **TEMP0)
    assert local_vlm.describe(IMAGE, **options) == remote.describe(IMAGE, **options)
    raw = dict(prompt="A photo of", raw=True, **TEMP0)
    assert local_vlm.describe(IMAGE, **raw) == remote.describe(IMAGE, **raw)
    assert local_vlm.describe(IMAGE, **raw) != local_vlm.describe(IMAGE, prompt="A photo of",
                                                                 **TEMP0)


def test_chat_with_an_image_part_is_the_same_in_both_modes(local_vlm, vlm_server):
    needs_media()
    url = "data:image/jpeg;base64," + base64.b64encode(IMAGE.read_bytes()).decode()
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                             {"type": "text", "text": "Describe this image."}]}]
    remote = MultiModalModel(mode="remote", base_url=vlm_server.url, timeout=300)
    answer = local_vlm.chat(messages, **TEMP0)
    assert answer == remote.chat(messages, **TEMP0)
    # The same question as describe's default, asked the same way: the same answer.
    assert answer == local_vlm.describe(IMAGE, **TEMP0)


def test_a_bad_image_is_invalid_input_in_both_modes(local_vlm, vlm_server):
    remote = MultiModalModel(mode="remote", base_url=vlm_server.url, timeout=300)
    errors = []
    for sdk in (local_vlm, remote):
        with pytest.raises(InvalidInput) as info:
            sdk.describe(b"\xff\xd8\xff\xe0 not really a jpeg", **TEMP0)
        errors.append(info.value.message)
    assert errors[0] == errors[1].replace("'input'", "'image'"), errors


def test_transcribe_options_are_the_same_in_both_modes(local_vlm, vlm_server):
    needs_media()
    remote = MultiModalModel(mode="remote", base_url=vlm_server.url, timeout=300)
    for kwargs in ({"language": "en"}, {"format": "segments"},
                   {"language": "en", "format": "segments", "words": True},
                   {"language": "de", "translate": True},
                   {"language": "en", "prompt": "Ask not what your country can do"}):
        assert local_vlm.transcribe(AUDIO, **kwargs) == remote.transcribe(AUDIO, **kwargs), kwargs
    segments = local_vlm.transcribe(AUDIO, language="en", format="segments", words=True)
    assert segments and all({"start", "end", "text", "words"} <= set(s) for s in segments)
    assert all(s["start"] <= s["end"] for s in segments)
    with pytest.raises(InvalidInput, match="segments"):
        local_vlm.transcribe(AUDIO, words=True)


def test_the_speech_options_reach_the_server_and_change_the_request(vlm_server, monkeypatch):
    """translate, prompt and words are sent as the server's parameters of the same names."""
    needs_media()
    import mmserve.remote
    sent = []
    original = mmserve.remote.RemoteClient.request

    def spy(self, method, path, body=None):
        sent.append(body)
        return original(self, method, path, body)

    monkeypatch.setattr(mmserve.remote.RemoteClient, "request", spy)
    remote = MultiModalModel(mode="remote", base_url=vlm_server.url, timeout=300)
    remote.transcribe(AUDIO, language="de", format="segments", translate=True, prompt="Hi",
                      words=True)
    assert sent[-1]["parameters"] == {"language": "de", "timestamps": True, "translate": True,
                                      "prompt": "Hi", "words": True}


def test_without_the_companion_models_describe_and_transcribe_say_what_is_missing(tmp_path):
    """The same ModelNotLoaded, with the server's own message, in both modes."""
    require_extension()
    require_stories()
    image = b"\xff\xd8\xff\xe0 not really a jpeg"
    with running_server("-m", STORIES, "--threads", "1") as server:
        remote = MultiModalModel(mode="remote", base_url=server.url)
        with MultiModalModel(mode="local", model=str(STORIES), threads=1) as local:
            for call in (lambda m: m.describe(image), lambda m: m.transcribe(b"RIFF....WAVE")):
                messages = []
                for sdk in (local, remote):
                    with pytest.raises(ModelNotLoaded) as info:
                        call(sdk)
                    messages.append(info.value.message)
                assert messages[0] == messages[1], messages


def test_a_speech_only_local_model_transcribes(models_dir, monkeypatch, tmp_path):
    """As `serve --whisper-model` alone: no text model needed."""
    require_extension()
    needs_media()
    _, _, _, whisper = models_dir
    monkeypatch.delenv("MMSERVE_MODEL", raising=False)
    monkeypatch.setenv("MMSERVE_MODELS_DIR", str(tmp_path))  # empty
    with MultiModalModel(mode="local", whisper_model=whisper, threads=1) as sdk:
        assert sdk.info()["capabilities"] == {"text": False, "vision": False, "speech": True}
        text = sdk.transcribe(AUDIO, language="en")
        with pytest.raises(ModelNotLoaded):
            sdk.generate("hi")
    with running_server("--whisper-model", whisper, "--threads", "1",
                        env={"MMSERVE_MODELS_DIR": str(tmp_path), "MMSERVE_MODEL": ""}) as server:
        assert MultiModalModel(mode="remote", base_url=server.url).transcribe(
            AUDIO, language="en") == text


def test_speech_threads_and_the_vad_model_are_the_servers_options(models_dir):
    require_extension()
    _, model, _, whisper = models_dir
    with pytest.raises(InvalidInput, match="speech_threads"):
        MultiModalModel(mode="local", model=model, whisper_model=whisper, speech_threads=-1)
    with pytest.raises(ModelNotLoaded, match="vad_model file not found") as info:
        MultiModalModel(mode="local", model=model, whisper_model=whisper,
                        vad_model="/no/such/vad.bin")
    assert info.value.param == "vad_model"
    vad = SHARED / "models" / "for-tests-silero-v6.2.0-ggml.bin"
    if vad.exists():
        with MultiModalModel(mode="local", model=model, whisper_model=whisper,
                             vad_model=str(vad), threads=2, speech_threads=1) as sdk:
            assert sdk.info()["capabilities"]["speech"] is True
