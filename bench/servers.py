"""Starting and stopping the servers a benchmark compares: mmserve, llama-server, whisper-server.

Each runs on 127.0.0.1 with a free port, the same model files and the same thread count, and is
stopped (SIGTERM, then SIGKILL) when the `with` block ends.
"""
import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port, path, timeout=300, proc=None):
    """Waits until GET path answers 200 (the server loaded its model)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server on port {port} never answered {path}")


@contextlib.contextmanager
def launched(cmd, ready_path, log_path):
    port = free_port()
    cmd = [c.replace("{port}", str(port)) for c in cmd]
    with open(log_path, "ab") as log:
        log.write(("\n$ " + " ".join(cmd) + "\n").encode())
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, env={**os.environ})
        try:
            wait_http(port, ready_path, proc=proc)
            yield f"http://127.0.0.1:{port}", cmd
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def mmserve_cmd(binary, threads, parallel, ctx, batch, model=None, whisper=None, speech_parallel=None):
    cmd = [binary, "serve", "--host", "127.0.0.1", "--port", "{port}", "--threads", str(threads),
           "--parallel", str(parallel), "--ctx-size", str(ctx), "--batch-size", str(batch),
           "--queue-size", "256"]
    if model:
        cmd += ["-m", model]
    if whisper:
        # Greedy only, as whisper-server runs with --no-fallback: with random synthetic weights
        # the fallback's sampled re-decodes would make the work differ between the servers.
        cmd += ["--whisper-model", whisper, "--no-speech-fallback"]
    if speech_parallel:
        cmd += ["--speech-parallel", str(speech_parallel)]
    return cmd


def llama_server_cmd(binary, model, threads, parallel, ctx, batch):
    return [binary, "-m", model, "--host", "127.0.0.1", "--port", "{port}", "-t", str(threads),
            "-tb", str(threads), "-np", str(parallel), "-c", str(ctx), "-b", str(batch),
            "-ub", str(batch), "--kv-unified", "--no-webui"]


def whisper_server_cmd(binary, model, threads):
    return [binary, "-m", model, "--host", "127.0.0.1", "--port", "{port}", "-t", str(threads),
            "--no-fallback"]
