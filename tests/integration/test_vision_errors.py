"""Vision inputs that must be refused, and the image policy: every bad-image case answers 400
naming the problem and the field, size limits are configurable, remote image URLs are fetched
only from allowed hosts, a server without a projector says so, and `mmserve describe` reports
its errors. Uses a small synthetic Gemma 3 VLM (`mmserve synth vlm`)."""
import functools
import http.server
import subprocess
import threading

import pytest

from conftest import BIN, running_server
from vision_support import (picture, server, vlm,  # noqa: F401 (fixtures)
                            FFMPEG, PHOTO, SMALL, caption, caption_body, chat_body, convert,
                            data_url, describe, png_claiming, source_picture, synth_vlm, upload)


def bad_image_cases(picture, tmp_path):
    """(name, input string) pairs that must each be refused with 400."""
    cases = [
        ("not an image", data_url(b"hello world, this is text")),
        ("bad base64", "@@@not-base64@@@"),
        ("text data URL", "data:text/plain;base64,aGVsbG8="),
        ("data URL without base64", "data:image/png,abc"),
        ("empty", ""),
        ("decompression bomb", data_url(png_claiming(100000, 100000))),
        ("remote URL", "http://169.254.169.254/latest/meta-data/photo.jpg"),
    ]
    sources = {"jpeg": picture} if picture.suffix in (".jpeg", ".jpg") else {}
    if FFMPEG is not None:
        sources.update({
            "jpeg": sources.get("jpeg") or convert(picture, tmp_path / "b.jpg"),
            "png": convert(picture, tmp_path / "b.png"),
            "bmp": convert(picture, tmp_path / "b.bmp"),
            "gif": convert(picture, tmp_path / "b.gif"),
            "webp": convert(picture, tmp_path / "b.webp", "-c:v", "libwebp"),
        })
    for name, path in sources.items():
        data = path.read_bytes()
        cases.append((f"truncated {name}", data_url(data[: len(data) // 2])))
    return cases


def test_each_bad_image_answers_400_naming_the_problem(server, picture, tmp_path):
    for name, value in bad_image_cases(picture, tmp_path):
        status, _, body = server.post("/v1/inference", caption_body(value))
        assert status == 400, (name, body)
        assert body["error"]["param"] == "input", (name, body)
        assert body["error"]["type"] == "invalid_request_error", (name, body)
        message = body["error"]["message"]
        if name.startswith("truncated"):
            assert "truncated" in message, (name, message)
        if name == "decompression bomb":
            assert "100000x100000" in message and "--max-image-pixels" in message, message
        if name == "remote URL":
            assert "--allow-image-hosts" in message, message

        status, _, body = server.post("/v1/chat/completions", chat_body(value))
        assert status == 400, (name, body)
        assert body["error"]["param"] == "messages[0].content[0].image_url.url", (name, body)

    status, _, body = server.post("/v1/inference", {"task": "image-caption"})
    assert status == 400 and body["error"]["param"] == "input"
    status, _, body = server.post("/v1/chat/completions", {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {}}]}]})
    assert status == 400 and body["error"]["param"] == "messages[0].content[0].image_url.url"
    half = picture.read_bytes()[:2000]
    status, _, body = upload(server, "cut.jpg", half, {"task": "image-caption"})
    assert status == 400 and "invalid image" in body["error"]["message"], body
    status, _, body = upload(server, "cut.jpg", half, {"task": "text-gen"})
    assert status == 400 and body["error"]["param"] == "input", body


def test_image_limits_are_configurable(vlm, picture):
    size = picture.stat().st_size
    with running_server("-m", vlm[0], "--threads", 1, "--mmproj", vlm[1], "--parallel", "1",
                        "--max-image-bytes", size - 1, "--max-image-pixels", 1000) as server:
        status, _, body = server.post("/v1/inference", caption_body(data_url(picture)))
        assert status == 400 and "--max-image-bytes" in body["error"]["message"], body
        status, _, body = server.post("/v1/inference", caption_body(data_url(png_claiming(100, 100))))
        assert status == 400 and "--max-image-pixels" in body["error"]["message"], body


def test_remote_images_only_from_allowed_hosts(vlm, picture, tmp_path):
    (tmp_path / "photo.img").write_bytes(picture.read_bytes())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    try:
        with running_server("-m", vlm[0], "--threads", 1, "--mmproj", vlm[1], "--parallel", "1",
                            "--allow-image-hosts", "127.0.0.1") as server:
            expected = caption(server, data_url(picture))["output"]
            fetched = caption(server, f"http://127.0.0.1:{port}/photo.img")
            assert fetched["output"] == expected
            status, _, body = server.post("/v1/chat/completions",
                                          chat_body(f"http://127.0.0.1:{port}/photo.img"))
            assert status == 200 and body["choices"][0]["message"]["content"] == expected
            for url, why in [(f"http://localhost:{port}/photo.img", "does not fetch"),
                             (f"http://127.0.0.1:{port}/missing.png", "HTTP 404")]:
                status, _, body = server.post("/v1/inference", caption_body(url))
                assert status == 400 and why in body["error"]["message"], body
    finally:
        httpd.shutdown()


def test_a_text_only_server_says_it_has_no_projector(vlm, picture):
    with running_server("-m", vlm[0], "--threads", 1, "--parallel", "1") as server:
        status, _, body = server.post("/v1/inference", caption_body(data_url(picture)))
        assert status == 400 and body["error"]["type"] == "model_not_loaded", body
        assert "--mmproj" in body["error"]["message"]
        status, _, body = server.post("/v1/chat/completions", chat_body(data_url(picture)))
        assert status == 400 and "--mmproj" in body["error"]["message"], body
        # Text still works.
        status, _, body = server.post("/v1/inference", {"input": "Hello", "task": "text-gen",
                                                        "parameters": {"max_tokens": 4}})
        assert status == 200 and body["usage"]["completion_tokens"] == 4


def test_describe_cli_errors(vlm, picture, tmp_path):
    no_proj = subprocess.run([BIN, "describe", "-m", str(vlm[0]), str(picture)],
                             capture_output=True, text=True, timeout=60)
    assert no_proj.returncode == 2 and "--mmproj" in no_proj.stderr
    missing = describe(*vlm, tmp_path / "nope.jpg")
    assert missing.returncode == 1 and "image file not found" in missing.stderr
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(picture.read_bytes()[:1500])
    bad = describe(*vlm, broken)
    assert bad.returncode == 2 and "invalid image" in bad.stderr, bad.stderr
    wrong = subprocess.run([BIN, "describe", "-m", str(vlm[0]), "--mmproj", str(vlm[0]), str(picture)],
                           capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 1 and "not a multimodal projector" in wrong.stderr, wrong.stderr


