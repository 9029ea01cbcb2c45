"""The README's "Every endpoint, one curl each" block, run as written (curl, ../shared paths)
against a server with the tiny text model, a synthetic whisper model and a synthetic embedding
model: each line must answer 200."""
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import BIN, SHARED, STORIES, needs_stories, running_server
from speech_support import synth_whisper

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_curls():
    text = README.read_text()
    block = text.split("### Every endpoint, one curl each", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.startswith("curl ")]


def test_the_block_lists_every_api_route():
    paths = {re.search(r"localhost:8080(/\S*)", line).group(1).rstrip("'") for line in readme_curls()}
    for route in ("/v1/inference", "/v1/chat/completions", "/v1/completions", "/v1/responses",
                  "/v1/embeddings", "/v1/audio/transcriptions", "/v1/audio/translations",
                  "/v1/models", "/health", "/ready", "/metrics", "/v1/privacy/scan", "/"):
        assert route in paths, route


@needs_stories
def test_each_readme_curl_answers_200(tmp_path):
    if shutil.which("curl") is None:
        pytest.skip("needs curl")
    whisper = synth_whisper(tmp_path / "whisper.bin")
    embed = tmp_path / "embed.gguf"
    subprocess.run([BIN, "synth", "embed", "-o", str(embed)], check=True, capture_output=True)
    with running_server("-m", STORIES, "--whisper-model", whisper, "--embedding-model", embed,
                        "--threads", "1") as server:
        for line in readme_curls():
            args = shlex.split(line.replace("localhost:8080", f"127.0.0.1:{server.port}")
                               .replace("../shared", str(SHARED)))
            out = subprocess.run(args + ["-o", "/dev/null", "-w", "%{http_code}"], capture_output=True,
                                 text=True, timeout=120)
            assert out.stdout == "200", (line, out.stdout, out.stderr)
