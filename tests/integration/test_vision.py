"""Vision through the real executable with a synthetic Gemma 3 VLM (`mmserve synth vlm`): the
whole image path (decode, preprocess, encode, embed, generate) from the CLI, /v1/inference and
chat completions alike, every image format, every bad-image case, and the image URL policy."""
import filecmp
import json
import subprocess

import pytest

from conftest import BIN, running_server
from prometheus_text import scrape
from vision_support import (picture, server, vlm,  # noqa: F401 (fixtures)
                            FFMPEG, PHOTO, SMALL, caption, caption_body, chat_body, convert,
                            data_url, describe, needs_ffmpeg, needs_photo, source_picture,
                            synth_vlm, upload)


def mime_of(path):
    return {"jpeg": "image/jpeg", "jpg": "image/jpeg", "png": "image/png"}.get(
        path.suffix.lstrip("."), "image/octet-stream")


def test_synth_writes_the_same_files_for_the_same_options(tmp_path):
    a = synth_vlm(tmp_path / "a", "--seed", "7", "--embd", "64", "--vision-embd", "32")
    b = synth_vlm(tmp_path / "b", "--seed", "7", "--embd", "64", "--vision-embd", "32")
    c = synth_vlm(tmp_path / "c", "--seed", "8", "--embd", "64", "--vision-embd", "32")
    assert filecmp.cmp(a[0], b[0], shallow=False) and filecmp.cmp(a[1], b[1], shallow=False)
    assert not filecmp.cmp(a[0], c[0], shallow=False)
    bad = subprocess.run([BIN, "synth", "vlm", "-o", str(tmp_path / "d"), "--image-size", "100"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "multiple of patch-size" in bad.stderr


def test_info_reports_the_projector(vlm):
    out = subprocess.run([BIN, "info", "-m", str(vlm[0]), "--mmproj", str(vlm[1])],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert "architecture:       gemma3" in out
    assert "projector type:     gemma3" in out
    assert "image size:         224x224 pixels (patch 14)" in out
    assert "tokens per image:   64" in out
    facts = json.loads(subprocess.run([BIN, "info", str(vlm[1]), "--json"], capture_output=True,
                                      text=True, timeout=60, check=True).stdout)
    assert facts["projector"]["type"] == "gemma3"
    assert facts["projector"]["tokens_per_image"] == 64


@needs_photo
def test_real_photo_goes_the_whole_path_alike_everywhere(vlm, server):
    cli = describe(*vlm, PHOTO)
    assert cli.returncode == 0, cli.stderr
    text = cli.stdout[:-1]
    assert text.strip(), "no tokens came out"
    assert describe(*vlm, PHOTO).stdout[:-1] == text  # deterministic at temperature 0

    photo = PHOTO.read_bytes()
    by_data_url = caption(server, data_url(photo, "image/jpeg"))
    assert by_data_url["output"] == text
    assert by_data_url["task"] == "image-caption"
    assert by_data_url["finish_reason"] == "length"
    assert by_data_url["usage"]["completion_tokens"] == 24
    assert by_data_url["usage"]["prompt_tokens"] > 64  # the image's embeddings count
    assert caption(server, data_url(photo).split(",", 1)[1])["output"] == text  # bare base64

    status, _, body = upload(server, "test-1.jpeg", photo,
                             {"task": "image-caption",
                              "parameters": json.dumps({"max_tokens": 24, "temperature": 0})})
    assert status == 200, body
    assert body["output"] == text

    status, _, body = server.post("/v1/chat/completions", chat_body(data_url(photo, "image/jpeg")))
    assert status == 200, body
    assert body["choices"][0]["message"]["content"] == text

    vision = server.get("/v1/models")[2]["data"][0]["meta"]["vision"]
    assert vision["projector"] == "gemma3" and vision["tokens_per_image"] == 64


def test_the_picture_matters(server, picture, tmp_path):
    if FFMPEG is None:
        pytest.skip("needs ffmpeg to draw a second picture")
    other = tmp_path / "red.png"
    subprocess.run([FFMPEG, "-loglevel", "error", "-y", "-f", "lavfi", "-i", "color=c=red:s=320x240",
                    "-frames:v", "1", str(other)], check=True, timeout=60)
    assert (caption(server, data_url(picture, mime_of(picture)))["output"]
            != caption(server, data_url(other))["output"])


def test_streamed_caption_equals_the_whole_answer(server, picture):
    whole = caption(server, data_url(picture, mime_of(picture)))["output"]
    body = {**caption_body(data_url(picture, mime_of(picture))), "stream": True}
    events = list(server.stream("/v1/inference", body))
    assert events[-1] == "[DONE]"
    assert events[-2]["finish_reason"] == "length"
    assert "".join(e["output"] for e in events[:-1]) == whole


def test_several_images_in_one_message(server, picture):
    url = data_url(picture, mime_of(picture))
    body = chat_body(url)
    body["messages"][0]["content"].insert(1, {"type": "image_url", "image_url": {"url": url}})
    before = scrape(server).value("mmserve_images_total")
    status, _, one = server.post("/v1/chat/completions", chat_body(url))
    status2, _, two = server.post("/v1/chat/completions", body)
    assert status == 200 and status2 == 200, (one, two)
    assert two["usage"]["prompt_tokens"] >= one["usage"]["prompt_tokens"] + 64
    assert scrape(server).value("mmserve_images_total") - before == 3


@needs_ffmpeg
def test_every_format_decodes(server, picture, tmp_path):
    png = convert(picture, tmp_path / "p.png", "-pix_fmt", "rgb24")
    files = {  # from the PNG, so that the lossless ones hold exactly its pixels
        "jpeg": convert(png, tmp_path / "p.jpg"),
        "png": png,
        "bmp": convert(png, tmp_path / "p.bmp", "-pix_fmt", "bgr24"),
        "gif": convert(png, tmp_path / "p.gif"),
        "webp": convert(png, tmp_path / "p.webp", "-c:v", "libwebp", "-lossless", "1",
                        "-pix_fmt", "bgra"),
        "webp-lossy": convert(png, tmp_path / "q.webp", "-c:v", "libwebp", "-quality", "80"),
    }
    outputs = {}
    for name, path in files.items():
        status, _, body = server.post("/v1/inference", caption_body(data_url(path, "image/x")))
        assert status == 200, (name, body)
        assert body["usage"]["completion_tokens"] == 24, name
        outputs[name] = body["output"]
    # The lossless files hold the same pixels, so the model sees the same picture.
    assert outputs["png"] == outputs["bmp"] == outputs["webp"]


@needs_ffmpeg
def test_animated_gif_is_read_from_its_first_frame(server, tmp_path):
    first = tmp_path / "first.png"
    subprocess.run([FFMPEG, "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120",
                    "-frames:v", "1", str(first)], check=True, timeout=60)
    second = tmp_path / "second.png"
    subprocess.run([FFMPEG, "-loglevel", "error", "-y", "-f", "lavfi", "-i", "color=c=blue:s=160x120",
                    "-frames:v", "1", str(second)], check=True, timeout=60)
    single = convert(first, tmp_path / "single.gif")
    animated = tmp_path / "animated.gif"
    subprocess.run([FFMPEG, "-loglevel", "error", "-y", "-i", str(first), "-i", str(second),
                    "-filter_complex", "[0][1]concat=n=2:v=1:a=0", str(animated)],
                   check=True, timeout=60)
    assert (caption(server, data_url(animated, "image/gif"))["output"]
            == caption(server, data_url(single, "image/gif"))["output"])


def test_describe_takes_a_prompt_and_several_images(vlm, picture):
    one = describe(*vlm, picture)
    other_prompt = describe(*vlm, picture, extra=("--prompt", "What colour is it?"))
    two = describe(*vlm, picture, picture)
    assert one.returncode == other_prompt.returncode == two.returncode == 0
    assert one.stdout != other_prompt.stdout
    assert two.stdout.strip()
