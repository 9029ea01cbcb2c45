"""Helpers for the vision tests: the synthetic VLM, test images made with ffmpeg, and requests.

Servers and the CLI run with one thread here: ggml's worker threads spin while they wait for
each other, so on a loaded two-core machine more threads than cores make every step very slow."""
import base64
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from conftest import BIN, SHARED, running_server

PHOTO = SHARED / "media" / "test-1.jpeg"
FFMPEG = shutil.which("ffmpeg")
PROMPT = "Describe this image."
# A smaller synthetic VLM for tests that need many requests: 224-pixel images, 64 tokens each.
SMALL = ("--image-size", "224", "--vision-layers", "2")

needs_photo = pytest.mark.skipif(not PHOTO.exists(), reason=f"needs {PHOTO} (absent)")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="needs ffmpeg (scripts/deps.sh installs it)")


def synth_vlm(directory, *args):
    """Writes a synthetic Gemma 3 VLM into `directory`; returns (model, mmproj) paths."""
    proc = subprocess.run([BIN, "synth", "vlm", "-o", str(directory), *map(str, args)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    model, mmproj = proc.stdout.split()
    return Path(model), Path(mmproj)


def convert(source, target, *args):
    """ffmpeg: `source` image -> `target` (format from its extension)."""
    subprocess.run([FFMPEG, "-loglevel", "error", "-y", "-i", str(source), *args, str(target)],
                   check=True, timeout=60)
    return target


def source_picture(directory):
    """The real photo when ../shared has it, else a picture ffmpeg draws."""
    if PHOTO.exists():
        return PHOTO
    target = Path(directory) / "testsrc.png"
    subprocess.run([FFMPEG, "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240",
                    "-frames:v", "1", str(target)], check=True, timeout=60)
    return target


def data_url(path_or_bytes, mime="image/png"):
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def png_claiming(width, height):
    """A PNG of a few dozen bytes whose header claims width x height (a decompression bomb)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
            + chunk(b"IEND", b""))


def caption_body(image, max_tokens=24, **params):
    return {"task": "image-caption", "input": image,
            "parameters": {"max_tokens": max_tokens, "temperature": 0, **params}}


def chat_body(url, prompt=PROMPT, max_tokens=24):
    return {"messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": url}},
                {"type": "text", "text": prompt}]}],
            "max_tokens": max_tokens, "temperature": 0}


def caption(server, image, **params):
    status, _, body = server.post("/v1/inference", caption_body(image, **params))
    assert status == 200, body
    return body


def describe(model, mmproj, *images, max_tokens=24, extra=()):
    proc = subprocess.run([BIN, "describe", "-m", str(model), "--mmproj", str(mmproj),
                           *map(str, images), "--temp", "0", "-n", str(max_tokens), "-t", "1",
                           *extra],
                          capture_output=True, text=True, timeout=120)
    return proc


def upload(server, filename, content, fields=None, path="/v1/inference"):
    """POST a multipart/form-data request with one file field "input"."""
    boundary = "mmserve-test-boundary"
    parts = []
    for name, value in (fields or {}).items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                     f"{value}\r\n".encode())
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="input"; '
                 f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
                 + content + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return server.request("POST", path, body,
                          headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})


# Module-scoped fixtures the vision test files share (imported there by name).
@pytest.fixture(scope="module")
def vlm(tmp_path_factory):
    return synth_vlm(tmp_path_factory.mktemp("vlm"), *SMALL)


@pytest.fixture(scope="module")
def server(vlm):
    with running_server("-m", vlm[0], "--threads", 1, "--mmproj", vlm[1], "--parallel", "2") as s:
        yield s


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    if FFMPEG is None and not PHOTO.exists():
        pytest.skip("needs ffmpeg or ../shared/media/test-1.jpeg to have a picture")
    return source_picture(tmp_path_factory.mktemp("picture"))
