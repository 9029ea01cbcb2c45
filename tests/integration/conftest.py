"""Shared fixtures: the mmserve binary, ../shared paths, and a real server on loopback."""
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

BIN = os.environ.get("MMSERVE_BIN", str(Path(__file__).resolve().parents[2] / "build/default/mmserve"))
SHARED = Path(os.environ.get("MMSERVE_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared"))
STORIES = SHARED / "models" / "stories260K.gguf"
GOLDEN = (", there was a little girl named Lily. She loved to play outside in the park. "
          "One day, she saw a big, red ball.")

needs_stories = pytest.mark.skipif(not STORIES.exists(), reason=f"needs {STORIES} (absent)")


def sanitized(binary):
    """Whether the binary is a sanitizer build (preset asan or tsan): its runtime makes calls of
    its own (LeakSanitizer ptraces the process at exit) and holds memory of its own (shadow
    memory, quarantine) that no deployed binary does."""
    if not os.path.exists(binary):
        return False
    data = Path(binary).read_bytes()
    return b"__asan_init" in data or b"__tsan_init" in data


def free_port():
    """A port nothing listens on now (a child process binds it next: it may be taken between)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running `mmserve serve` on 127.0.0.1 with a port the kernel picked."""

    def __init__(self, proc, port):
        self.proc, self.port = proc, port
        self.url = f"http://127.0.0.1:{port}"

    def request(self, method, path, body=None, headers=None, timeout=120):
        """Returns (status, headers, parsed JSON or raw text). The timeout catches a hang, not
        slowness: beside another test's busy 2-thread server, CI's 2-core machine once took over
        60 s for 400 stories260K tokens that take 0.25 s alone."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        raw = resp.read()
        conn.close()
        ctype = resp.getheader("Content-Type", "")
        payload = json.loads(raw) if ctype.startswith("application/json") else raw.decode("utf-8")
        return resp.status, dict(resp.getheaders()), payload

    def post(self, path, body, **kw):
        return self.request("POST", path, body, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def infer(self, text, **params):
        status, _, body = self.post("/v1/inference", {"input": text, "task": "text-gen", "parameters": params})
        assert status == 200, body
        return body

    def stream(self, path, body, timeout=120):
        """Yields the decoded JSON (or "[DONE]") of each SSE event, checking each is UTF-8."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        assert resp.getheader("Content-Type").startswith("text/event-stream")
        try:
            for raw in resp:
                line = raw.decode("utf-8")  # strict: a split character would raise here
                if not line.startswith("data: "):
                    continue
                data = line[len("data: "):].strip()
                yield data if data == "[DONE]" else json.loads(data)
        finally:
            conn.close()

    def health(self):
        return self.get("/health")[2]


def start_server(*args, env=None, ready=True):
    cmd = [BIN, "serve", "--port", "0", *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise AssertionError(f"server did not start: {line!r} {proc.stderr.read()}")
    server = Server(proc, int(line.strip().rsplit(":", 1)[1]))
    if ready:
        deadline = time.time() + 60
        while server.get("/ready")[0] != 200:
            assert proc.poll() is None, proc.stderr.read()
            assert time.time() < deadline, "server never became ready"
            time.sleep(0.02)
    return server


@contextlib.contextmanager
def running_server(*args, **kw):
    server = start_server(*args, **kw)
    try:
        yield server
    finally:
        if server.proc.poll() is None:
            server.proc.send_signal(signal.SIGTERM)
            try:
                server.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                raise


@pytest.fixture(scope="module")
def stories_server():
    if not STORIES.exists():
        pytest.skip(f"needs {STORIES} (absent)")
    with running_server("-m", STORIES, "--parallel", "4") as server:
        yield server


def generate_cli(prompt, max_tokens):
    proc = subprocess.run([BIN, "generate", "-m", str(STORIES), "--temp", "0", "-n", str(max_tokens), prompt],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout[:-1]  # generate ends with a newline


# Skips are visible: pytest exits 0 when every test skipped, which CTest would show as a pass.
# A session whose tests all skipped exits ALL_SKIPPED instead (CTest's SKIP_RETURN_CODE,
# tests/CMakeLists.txt, so it is listed as skipped), and the summary counts the skips.
# tests/python/conftest.py uses the same hooks.
ALL_SKIPPED = 77
_OUTCOMES = {"passed": 0, "failed": 0, "skipped": 0}


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        _OUTCOMES["skipped"] += 1
    elif report.failed:
        _OUTCOMES["failed"] += 1
    elif report.when == "call" and report.passed:
        _OUTCOMES["passed"] += 1


def pytest_sessionfinish(session, exitstatus):
    if exitstatus == 0 and _OUTCOMES["skipped"] and not _OUTCOMES["passed"] and \
            not _OUTCOMES["failed"]:
        session.exitstatus = ALL_SKIPPED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _OUTCOMES["skipped"]:
        total = sum(_OUTCOMES.values())
        every = " (all of them: exit status 77, skipped in CTest)" \
            if _OUTCOMES["skipped"] == total else ""
        terminalreporter.write_line(f"mmserve: {_OUTCOMES['skipped']} of {total} tests "
                                    f"skipped{every}")
