"""The deployment tests (make test-deploy): the container image built and run with podman or
docker, and the Helm chart's Pod run with podman kube play. Not in `make test`: a cold image
build compiles the engines inside the build stage (tens of minutes on two cores)."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MMSERVE_SHARED_DIR", ROOT.parent / "shared"))
STORIES = SHARED / "models" / "stories260K.gguf"


def engine():
    if os.environ.get("MMSERVE_ENGINE"):
        return os.environ["MMSERVE_ENGINE"]
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        return "docker"
    return "podman"


def engine_env():
    env = dict(os.environ)
    conf = SHARED / "containers" / "containers.conf"
    if engine() == "podman" and conf.exists():
        env.setdefault("CONTAINERS_CONF", str(conf))
    return env


def run(*args, check=True, timeout=600, **kw):
    proc = subprocess.run([engine(), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=engine_env(), **kw)
    if check:
        assert proc.returncode == 0, f"{args}: {proc.stderr[-3000:]}"
    return proc


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port, method, path, body=None, timeout=60):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, raw
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, ConnectionError, OSError):
        return 0, b""


def wait_ready(port, timeout=300):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if http(port, "GET", "/ready", timeout=5)[0] == 200:
            return time.time() - t0
        time.sleep(0.2)
    raise AssertionError(f"not ready within {timeout} s")


@pytest.fixture(scope="session")
def image():
    """The CPU image, built (or reused when built from the same sources) by scripts/image.sh."""
    if not STORIES.exists():
        pytest.skip(f"needs {STORIES} (absent)")
    t0 = time.time()
    proc = subprocess.run([str(ROOT / "scripts/image.sh"), "cpu"], capture_output=True, text=True,
                          timeout=7200, env=engine_env())
    assert proc.returncode == 0, proc.stderr[-5000:]
    tag = proc.stdout.strip().splitlines()[-1]
    print(f"image {tag}: scripts/image.sh took {time.time() - t0:.0f} s", file=sys.stderr)
    return tag


@pytest.fixture
def model_dir(tmp_path):
    d = tmp_path / "models"
    d.mkdir()
    shutil.copy(STORIES, d / STORIES.name)
    d.chmod(0o755)
    (d / STORIES.name).chmod(0o644)
    return d
