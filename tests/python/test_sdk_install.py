"""`pip install ./python` into a fresh virtual environment, offline, and what it installs:
a self-contained local mode, the issue's example with only the import line written for
mmserve, and a remote-only install with no third-party package."""
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest
from conftest import GOLDEN, REPO, SHARED, STORIES, needs_stories, require_extension

ISSUE_EXAMPLE = textwrap.dedent("""\
    from mmserve import MultiModalModel

    model = MultiModalModel(mode="local", device="cuda:0")
    text_output = model.generate("解释量子计算的基本原理")
    caption = model.describe("product.jpg")
    transcript = model.transcribe("meeting.wav")
    """)


def offline_env(**extra):
    """No pip configuration, no index, no proxy: anything pip tried to download would fail."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "MMSERVE_", "PYTHON")) and "proxy" not in k.lower()}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
               PIP_NO_CACHE_DIR="1", http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")
    env.update(extra)
    return env


def make_venv(path, **env):
    try:
        import ensurepip  # noqa: F401  (Debian: python3-venv)
    except ImportError:
        pytest.skip("python3-venv is not installed (the venv module cannot bootstrap pip)")
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
    python = path / "bin" / "python"
    proc = subprocess.run([str(python), "-m", "pip", "install", str(REPO / "python")],
                          capture_output=True, text=True, timeout=900, env=offline_env(**env))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return python


def run(python, code, cwd, **env):
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env=offline_env(**env))


@pytest.fixture(scope="module")
def full_venv(tmp_path_factory):
    require_extension()
    build_dir = os.environ.get("MMSERVE_BUILD_DIR")
    if not build_dir:
        pytest.skip("MMSERVE_BUILD_DIR is unset (CTest sets it to the build directory, whose "
                    "extension the install reuses)")
    return make_venv(tmp_path_factory.mktemp("venv") / "full", MMSERVE_BUILD_DIR=build_dir)


def package_dir(python):
    out = subprocess.run([str(python), "-c", "import mmserve, os; "
                          "print(os.path.dirname(mmserve.__file__))"],
                         capture_output=True, text=True, env=offline_env(), check=True)
    return out.stdout.strip()


def test_the_extension_and_engine_libraries_are_installed_together(full_venv):
    pkg = package_dir(full_venv)
    assert pkg.startswith(str(full_venv.parent.parent) + os.sep)
    extension = [f for f in os.listdir(pkg) if f.startswith("_native")]
    assert len(extension) == 1
    ldd = subprocess.run(["ldd", os.path.join(pkg, extension[0])], capture_output=True,
                         text=True, check=True).stdout
    engine = re.findall(r"^\s*(lib(?:ggml|llama|mtmd|whisper)\S*) => (\S+)", ldd, re.M)
    assert {name.split(".so")[0] for name, _ in engine} >= {"libllama", "libggml",
                                                            "libggml-base"}
    for name, path in engine:
        assert os.path.dirname(path) == pkg, f"{name} resolves outside the package: {path}"
    assert "not found" not in ldd


@needs_stories
def test_local_mode_runs_from_the_installed_package(full_venv, tmp_path):
    code = textwrap.dedent(f"""\
        import mmserve
        assert mmserve.local_mode_available()
        with mmserve.MultiModalModel(mode="local", model={str(STORIES)!r}, threads=1) as m:
            print(m.generate("Once upon a time", max_tokens=48, temperature=0))
        """)
    proc = run(full_venv, code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(GOLDEN)


def test_the_issue_example_runs_with_only_the_import_line_changed(full_venv, tmp_path):
    """The example verbatim, its three models found in the model directory (the synthetic VLM,
    its projector and a synthetic whisper model, named as `mmserve pull` names them)."""
    from test_sdk_multimodal import synth_vlm, synth_whisper
    for name, source in (("product.jpg", SHARED / "media" / "test-1.jpeg"),
                         ("meeting.wav", SHARED / "media" / "jfk.wav")):
        if not source.exists():
            pytest.skip(f"needs {source} (absent)")
        shutil.copy(source, tmp_path / name)
    models = tmp_path / "models"
    models.mkdir()
    synth_vlm(models)
    synth_whisper(models / "ggml-synth.bin")
    env = offline_env(MMSERVE_MODELS_DIR=str(models))
    (tmp_path / "example.py").write_text(ISSUE_EXAMPLE, encoding="utf-8")
    probe = run(full_venv, "import mmserve; "
                "print(sum(d['backend'] == 'CUDA' for d in mmserve.devices()))", tmp_path)
    cuda = probe.stdout.strip()

    proc = subprocess.run([str(full_venv), "example.py"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600, env=env)
    last = (proc.stderr.strip().splitlines() or [""])[-1]
    if cuda != "1":
        # No CUDA device here: a typed error that says why and what to do.
        assert last.startswith("mmserve.errors.DeviceUnavailable: device 'cuda:0' is not "
                               "available"), proc.stderr
        assert "fallback=True" in last
    else:
        assert proc.returncode == 0, proc.stderr

    # The CPU form of the same example (fallback=True) runs all three calls.
    cpu = ISSUE_EXAMPLE.replace('device="cuda:0")', 'device="cuda:0", fallback=True)')
    cpu += ("print(*(type(x).__name__ + str(bool(x)) for x in (text_output, caption)), "
            "type(transcript).__name__)\n")
    (tmp_path / "example_cpu.py").write_text(cpu, encoding="utf-8")
    proc = subprocess.run([str(full_venv), "example_cpu.py"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["strTrue", "strTrue", "str"], proc.stdout + proc.stderr


def test_a_remote_only_install_needs_nothing_else(server, tmp_path):
    python = make_venv(tmp_path / "remote", MMSERVE_REMOTE_ONLY="1")
    listing = run(python, "import importlib.metadata as m; d = m.distribution('mmserve'); "
                  "print(d.read_text('WHEEL')); print(*d.files)", tmp_path)
    assert "Tag: py3-none-any" in listing.stdout, listing.stderr
    assert "mmserve/model.py" in listing.stdout
    assert "_native" not in listing.stdout and ".so" not in listing.stdout
    code = textwrap.dedent(f"""\
        import importlib.util, sys
        assert importlib.util.find_spec("requests") is None  # no third-party package here
        import mmserve
        assert not mmserve.local_mode_available()
        try:
            mmserve.MultiModalModel(mode="local")
        except mmserve.LocalModeUnavailable as e:
            print("local:", e)
        model = mmserve.MultiModalModel(mode="remote", base_url={server.url!r})
        print(model.generate("Once upon a time", max_tokens=48, temperature=0))
        print(mmserve.infer("Once upon a time", parameters={{"max_tokens": 48, "temperature": 0}},
                            base_url={server.url!r})["output"])
        """)
    proc = run(python, code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("local: local mode is unavailable: this installation of mmserve "
                               "has no compiled extension")
    assert lines[1].startswith(GOLDEN) and lines[2] == lines[1]
