"""The CPU image as a user runs it: `docker run -d -v /data/models:/models -p 8080:8080 IMAGE`,
here with a read-only root filesystem, answering /v1/inference, /metrics and its healthcheck, and
draining on SIGTERM."""
import json
import threading
import time
import urllib.request

from conftest import free_port, http, run, wait_ready


def start(image, model_dir, *args, name):
    port = free_port()
    run("rm", "-f", name, check=False)
    run("run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp",
        "-v", f"{model_dir}:/models:ro", "-p", f"127.0.0.1:{port}:8080", image, *args)
    return port


def test_the_image_serves_the_mounted_model_and_drains_on_sigterm(image, model_dir):
    name = "mmserve-test-image"
    port = start(image, model_dir, "--parallel", "2", "--drain-timeout", "20", name=name)
    try:
        ready_s = wait_ready(port)
        print(f"start to ready: {ready_s:.1f} s")
        status, raw = http(port, "POST", "/v1/inference",
                           {"input": "Once upon a time", "task": "text-gen", "parameters": {"max_tokens": 8, "temperature": 0}})
        assert status == 200 and json.loads(raw)["output"], raw
        status, raw = http(port, "GET", "/metrics")
        assert status == 200 and b"mmserve_requests_total" in raw
        assert run("healthcheck", "run", name, check=False).returncode == 0  # mmserve healthcheck, no curl
        assert run("exec", name, "id", "-u").stdout.strip() == "10001"
        # A stream running when SIGTERM comes finishes; the container then exits 0.
        events = []

        def stream():
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/completions", method="POST",
                data=json.dumps({"prompt": "Once", "max_tokens": 400, "stream": True, "ignore_eos": True}).encode(),
                headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=120) as resp:
                for line in resp:
                    if line.startswith(b"data: "):
                        events.append(line[6:].strip())

        t = threading.Thread(target=stream)
        t.start()
        while not events:
            time.sleep(0.01)
        run("stop", "-t", "30", name)
        t.join(timeout=60)
        assert events[-1] == b"[DONE]", events[-3:]
        state = json.loads(run("inspect", name).stdout)[0]["State"]
        assert state["ExitCode"] == 0, state
        logs = run("logs", name).stderr + run("logs", name).stdout
        assert "draining" in logs, logs[-2000:]
    finally:
        run("rm", "-f", name, check=False)


def test_an_empty_models_directory_is_one_clear_line(image, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run("run", "--rm", "-v", f"{empty}:/models:ro", image, check=False, timeout=120)
    assert proc.returncode == 1 and "no model in /models" in proc.stderr, proc.stderr


def test_other_commands_run_through_the_entrypoint_and_the_size(image):
    proc = run("run", "--rm", image, "info", "--help")
    assert "usage: mmserve info" in proc.stdout + proc.stderr
    # ggml's CPU backends are found beside the binary (the portable build loads them at start).
    backends = [l for l in run("run", "--rm", image, "version").stdout.splitlines() if l.startswith("backends")]
    assert backends and "CPU" in backends[0], backends
    size = int(run("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())
    print(f"image size: {size / 2**20:.0f} MiB")
    assert size < 1 << 30  # a sanity bound; the aim (200 MB) is reported, not asserted
