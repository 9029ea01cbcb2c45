"""systemd: the unit in deploy/systemd passes `systemd-analyze verify` and `security`, and
`mmserve serve` speaks the sd_notify protocol for real (READY=1 once /ready is 200, STOPPING=1 at
the drain) on a path or an abstract $NOTIFY_SOCKET, and serves unchanged without a usable one.

No service manager runs here: the unit is checked offline, and the notify socket is this test's
own AF_UNIX datagram socket, read as systemd would read it."""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from conftest import BIN, STORIES, Server, needs_stories, running_server, sanitized, start_server

SYSTEMD = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
UNIT = SYSTEMD / "mmserve.service"
GPU_DROP_IN = SYSTEMD / "mmserve-gpu.conf"
SYSUSERS = SYSTEMD / "mmserve.sysusers.conf"
# `systemd-analyze security` scores 0 (locked down) to 10 (unprotected); "OK" is below 4.5.
# The unit scores 1.2 and with the GPU drop-in 1.4 (systemd 252); the settings that matter most
# are also checked one by one, as a single lost one moves the score by as little as 0.1.
MAX_EXPOSURE = 1.5
MUST_PASS = ["User=/DynamicUser=", "NoNewPrivileges=", "ProtectSystem=", "ProtectHome=", "PrivateTmp=",
             "CapabilityBoundingSet=~CAP_SYS_ADMIN", "SystemCallFilter=~@privileged",
             "SystemCallArchitectures=", "RestrictAddressFamilies=~AF_NETLINK", "RestrictNamespaces=~user"]


def systemd_version():
    if shutil.which("systemd-analyze") is None:
        return 0
    out = subprocess.run(["systemd-analyze", "--version"], capture_output=True, text=True).stdout
    match = re.match(r"systemd (\d+)", out)
    return int(match.group(1)) if match else 0


needs_analyze = pytest.mark.skipif(systemd_version() < 250,
                                   reason="needs systemd-analyze 250+ (security --offline)")


def unit_copy(directory, gpu=False):
    """The unit as installed, but running the binary under test (verify checks ExecStart exists);
    with gpu, the drop-in appended, which is how systemd applies a drop-in: parsed after the
    unit, its [Service] assignments override the unit's and its DeviceAllow= adds."""
    text = UNIT.read_text()
    assert text.count("/usr/local/bin/mmserve serve") == 1
    text = text.replace("/usr/local/bin/mmserve", str(Path(BIN).resolve()))
    if gpu:
        text += "\n" + GPU_DROP_IN.read_text()
    path = Path(directory) / "mmserve.service"  # verify wants the unit's own name
    path.write_text(text)
    return path


@needs_analyze
@pytest.mark.parametrize("gpu", [False, True], ids=["cpu", "gpu-drop-in"])
def test_the_unit_passes_systemd_analyze_verify(tmp_path, gpu):
    path = unit_copy(tmp_path, gpu)
    proc = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    # Warnings (an unknown or misspelt setting, a bad value) leave the return code at 0.
    ours = [line for line in proc.stderr.splitlines() if "mmserve" in line]
    assert ours == [], proc.stderr


@needs_analyze
@pytest.mark.parametrize("gpu", [False, True], ids=["cpu", "gpu-drop-in"])
def test_the_unit_is_hardened_by_systemd_analyze_security(tmp_path, gpu):
    path = unit_copy(tmp_path, gpu)
    proc = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(path)],
                          capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for mmserve\.service: (\d+\.\d+) (\S+)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE and match.group(2) == "OK", proc.stdout
    passed = {line.split()[1] for line in proc.stdout.splitlines() if line.startswith("✓")}
    must = MUST_PASS + ([] if gpu else ["PrivateDevices=", "MemoryDenyWriteExecute="])
    assert [name for name in must if name not in passed] == [], proc.stdout


def test_the_unit_runs_as_the_user_the_sysusers_snippet_creates(tmp_path):
    unit = UNIT.read_text()
    user = re.search(r"^User=(\S+)$", unit, re.M).group(1)
    assert re.search(r"^Group=(\S+)$", unit, re.M).group(1) == user
    assert re.search(rf"^u {user} - ", SYSUSERS.read_text(), re.M), "the snippet creates the unit's user"
    if shutil.which("systemd-sysusers") is None:
        pytest.skip("needs systemd-sysusers")
    (tmp_path / "etc").mkdir()
    proc = subprocess.run(["systemd-sysusers", f"--root={tmp_path}", str(SYSUSERS)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    passwd = (tmp_path / "etc" / "passwd").read_text().splitlines()
    entry = next(line.split(":") for line in passwd if line.startswith(f"{user}:"))
    assert int(entry[2]) < 1000 and entry[5] == "/var/lib/mmserve" and entry[6].endswith("nologin"), entry
    assert "/var/lib/mmserve/mmserve.db" in unit and "StateDirectory=mmserve" in unit


class NotifySocket:
    """What systemd listens on: an AF_UNIX datagram socket, at a path or in the abstract
    namespace; `name` is what $NOTIFY_SOCKET says."""

    def __init__(self, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            self.name = f"@mmserve-test-{uuid.uuid4().hex}"
            self.sock.bind("\0" + self.name[1:])
        else:
            self.dir = tempfile.mkdtemp(prefix="mmsd-")  # short: sun_path holds 108 bytes
            self.name = os.path.join(self.dir, "notify")
            self.sock.bind(self.name)
        self.messages = []

    def wait_for(self, prefix, timeout=60):
        """Reads datagrams until one has an assignment starting with prefix; returns it."""
        deadline = time.time() + timeout
        while True:
            for message in self.messages:
                for line in message.split("\n"):
                    if line.startswith(prefix):
                        return line
            remaining = deadline - time.time()
            assert remaining > 0, f"no {prefix!r} in {self.messages}"
            self.sock.settimeout(remaining)
            try:
                self.messages.append(self.sock.recv(65536).decode("utf-8"))
            except socket.timeout:
                pass

    def assignments(self):
        return [line for message in self.messages for line in message.split("\n")]

    def close(self):
        self.sock.close()
        if hasattr(self, "dir"):
            shutil.rmtree(self.dir, ignore_errors=True)


@needs_stories
@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_ready_after_the_model_loads_and_stopping_at_the_drain(abstract):
    notify = NotifySocket(abstract)
    try:
        server = start_server("-m", STORIES, env={"NOTIFY_SOCKET": notify.name}, ready=False)
        try:
            assert notify.wait_for("STATUS=") == "STATUS=loading models"
            notify.wait_for("READY=1")
            status, _, body = server.get("/ready")  # sent only once the runtime is ready
            assert status == 200, body
            assert notify.wait_for("STATUS=ready") == f"STATUS=ready, listening on port {server.port}"
            server.infer("Once", max_tokens=2)
            server.proc.send_signal(signal.SIGTERM)
            notify.wait_for("STOPPING=1")
            assert server.proc.wait(timeout=60) == 0
        finally:
            if server.proc.poll() is None:
                server.proc.kill()
        lines = notify.assignments()
        assert lines.index("STATUS=loading models") < lines.index("READY=1") < lines.index("STOPPING=1"), lines
        assert lines.count("READY=1") == 1, lines
    finally:
        notify.close()


@needs_stories
def test_a_model_that_fails_to_load_says_why_and_never_reports_ready(tmp_path):
    # Two pinned models and room for one: the second's load fails after the server started.
    (tmp_path / "models.toml").write_text("".join(
        f'[[model]]\nname = "{name}"\npath = "{STORIES}"\npinned = true\n\n' for name in ("a", "b")))
    notify = NotifySocket()
    try:
        with running_server("--models", tmp_path / "models.toml", "--max-models", "1",
                            env={"NOTIFY_SOCKET": notify.name}, ready=False) as server:
            line = notify.wait_for("STATUS=model failed to load: ")
            assert "no room to load the model 'b'" in line and "\n" not in line, line
            assert server.get("/ready")[0] == 503
        assert "READY=1" not in notify.assignments(), notify.messages
    finally:
        notify.close()


@needs_stories
@pytest.mark.parametrize("value", [None, "", "relative/notify", "/nonexistent-mmserve-dir/notify",
                                   "@mmserve-nobody-listens-" + uuid.uuid4().hex, "/" + "x" * 200])
def test_without_a_usable_notify_socket_the_server_serves_as_ever(monkeypatch, value):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    env = None if value is None else {"NOTIFY_SOCKET": value}
    with running_server("-m", STORIES, env=env) as server:
        assert server.get("/ready")[0] == 200
        assert server.infer("Once", max_tokens=2)
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=60) == 0


def syscall_group(name):
    """The system calls of a seccomp group, as `systemd-analyze syscall-filter` lists them."""
    out = subprocess.run(["systemd-analyze", "syscall-filter", name], capture_output=True, text=True,
                         timeout=60).stdout
    calls = set()
    for line in out.splitlines()[1:]:
        item = line.strip()
        if item and not item.startswith("#"):
            calls |= syscall_group(item) if item.startswith("@") else {item}
    return calls


@needs_analyze
@needs_stories
@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
@pytest.mark.skipif(sanitized(BIN), reason="a sanitizer build makes calls of its own")
def test_every_system_call_the_server_makes_passes_the_units_filter(tmp_path):
    """The unit's SystemCallFilter= (@system-service, less @privileged) refuses what it does not
    list; this runs the server under strace through load, the probes, metrics, a streamed and a
    plain generation, the database and a notify message, and checks each call it made is listed."""
    unit = UNIT.read_text()
    assert re.findall(r"^SystemCallFilter=(.+)$", unit, re.M) == ["@system-service", "~@privileged"]
    allowed = syscall_group("@system-service") - syscall_group("@privileged")
    notify = NotifySocket()
    summary = tmp_path / "strace.txt"
    cmd = ["strace", "-f", "-qq", "-c", "-o", str(summary), "--", BIN, "serve", "--port", "0", "-m", str(STORIES),
           "--db", str(tmp_path / "mmserve.db"), "--api-key", "k"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "NOTIFY_SOCKET": notify.name})
    try:
        line = proc.stdout.readline()
        if "listening on" not in line:
            pytest.skip(f"strace cannot trace here: {line!r} {proc.stderr.read()[-500:]}")
        mmserve = int(Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()[0])
        server = Server(proc, int(line.strip().rsplit(":", 1)[1]))
        notify.wait_for("READY=1")
        auth = {"Authorization": "Bearer k"}
        for path in ("/ready", "/health", "/metrics", "/v1/models"):
            assert server.get(path, headers=auth)[0] == 200, path
        status, _, body = server.post("/v1/inference", {"input": "Once", "task": "text-gen",
                                                        "parameters": {"max_tokens": 2}}, headers=auth)
        assert status == 200, body
        assert server.post("/v1/inference", {"input": "Once", "task": "text-gen"})[0] == 401
        chat = server.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}],
                                                    "max_tokens": 2, "stream": True}, headers=auth)
        assert chat[0] == 200 and "[DONE]" in chat[2], chat
        os.kill(mmserve, signal.SIGTERM)  # not strace's: it would stop tracing, not the server
        notify.wait_for("STOPPING=1")
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        notify.close()
    used = {row.split()[-1] for row in summary.read_text().splitlines()[2:]
            if row.strip() and not row.startswith("-") and not row.rstrip().endswith("total")}
    # SQLite fchown()s the files it creates when, and only when, it runs as root; the unit's
    # User=mmserve never is.
    tolerated = {"fchown"} if os.geteuid() == 0 else set()
    assert len(used) > 20 and sorted(used - allowed - tolerated) == [], used
