"""Fixtures of the Python SDK tests: the package from python/ (this checkout), a real server on
loopback (the integration tests' helpers), and local mode through the extension CMake built.

Environment (set by CTest, tests/CMakeLists.txt): MMSERVE_BIN, MMSERVE_SHARED_DIR,
MMSERVE_EXTENSION_DIR (the build's python/ folder; unset when the extension was not built),
MMSERVE_BUILD_DIR (the CMake build directory, for `pip install ./python`).
"""
import importlib.util
import os
import socket
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))  # the package under test, not an installed one

# One source of truth for the binary, ../shared, the golden text and the server helpers.
_spec = importlib.util.spec_from_file_location("mmserve_integration_support",
                                               REPO / "tests" / "integration" / "conftest.py")
support = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(support)

BIN, SHARED, STORIES, GOLDEN = support.BIN, support.SHARED, support.STORIES, support.GOLDEN
# The integration tests' hooks that make skips visible (a session that skipped everything exits
# 77, which CTest reports as skipped).
pytest_runtest_logreport = support.pytest_runtest_logreport
pytest_sessionfinish = support.pytest_sessionfinish
pytest_terminal_summary = support.pytest_terminal_summary
running_server = support.running_server
needs_stories = support.needs_stories

import mmserve  # noqa: E402  (after the path above)

PROMPTS = ["Once upon a time", "The cat sat", "Tom and Sue went", "One day, a little bird",
           "分析市场趋势", "Café résumé naïve — 日本語 🙂"]


def extension_state():
    """(usable, why not)."""
    if mmserve.local_mode_available():
        return True, ""
    if os.environ.get("MMSERVE_EXTENSION_DIR"):
        return False, "broken"  # told where it is, yet it does not load: a failure, not a skip
    return False, ("the local-mode extension was not built in this build (pybind11 or the "
                   "Python headers missing, or a sanitizer build): MMSERVE_EXTENSION_DIR unset")


def require_extension():
    usable, why = extension_state()
    if usable:
        return
    if why == "broken":
        from mmserve.local import load_native
        load_native()  # raises LocalModeUnavailable with the loader's reason
    pytest.skip(why)


def require_stories():
    if not STORIES.exists():
        pytest.skip(f"needs {STORIES} (absent)")


def free_port():
    """A loopback port with nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    """`mmserve serve` with stories260K; one thread so a busy machine does not starve it."""
    require_stories()
    with running_server("-m", STORIES, "--parallel", "4", "--threads", "1") as s:
        yield s


@pytest.fixture(scope="module")
def remote(server):
    with mmserve.MultiModalModel(mode="remote", base_url=server.url, timeout=120) as model:
        yield model


@pytest.fixture(scope="module")
def local():
    require_extension()
    require_stories()
    with mmserve.MultiModalModel(mode="local", model=str(STORIES), threads=1,
                                 parallel=4) as model:
        yield model


@pytest.fixture(params=["remote", "local"])
def either(request):
    """Each test using it runs once per mode."""
    return request.getfixturevalue(request.param)
