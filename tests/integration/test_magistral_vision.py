"""Image chat with a synthetic model of Magistral Small 1.2's shape (`mmserve synth vlm --family
magistral`): a "llama" language model with Magistral's own chat template (from the pinned
llama.cpp tree) and Mistral's special tokens, and a Pixtral projector with the 2 x 2 patch
merger, served through libmtmd: images keep their aspect ratio, each row of image tokens is
followed by [IMG_BREAK], and [IMG_END] closes the image."""
import struct
import zlib

import pytest

from chat_family_support import FAMILIES, llama_templates_dir
from conftest import running_server
from vision_support import PHOTO, PROMPT, caption, chat_body, data_url, synth_vlm


def image_tokens(width, height):
    """Pixtral's count: libmtmd rounds each side to a multiple of 28 (14-pixel patches merged
    2 x 2), one token per 28 x 28 cell, plus an [IMG_BREAK] after each row but the last."""
    cols, rows = round(width / 28), round(height / 28)
    return cols * rows + rows - 1


def gradient_png(width, height):
    """An RGB PNG of a diagonal gradient, written here (no ffmpeg needed)."""
    rows = b"".join(b"\0" + b"".join(bytes((x * 255 // width, y * 255 // height, (x + y) % 256))
                                      for x in range(width))
                    for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def photo():
    """(data URL, image tokens): ../shared's test-1.jpeg (640 x 488), else a drawn 640 x 488."""
    if PHOTO.exists():
        return data_url(PHOTO.read_bytes(), "image/jpeg"), image_tokens(640, 488)
    return data_url(gradient_png(640, 488)), image_tokens(640, 488)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    template = llama_templates_dir() / FAMILIES["magistral"][0]
    return synth_vlm(tmp_path_factory.mktemp("magistral"), "--family", "magistral",
                     "--chat-template-file", template, "--vision-layers", "2")


@pytest.fixture(scope="module")
def server(pair):
    with running_server("-m", pair[0], "--threads", 1, "--mmproj", pair[1]) as s:
        yield s


def test_the_pair_declares_magistral_and_pixtral(server, pair):
    assert pair[0].name == "synth-magistral.gguf" and pair[1].name == "mmproj-synth-magistral.gguf"
    meta = server.get("/v1/models")[2]["data"][0]["meta"]
    assert meta["vision"]["projector"] == "pixtral"
    assert meta["vision"]["tokens_per_image"] == 16 * 16 + 15  # a 448 x 448 picture


def test_image_chat_counts_the_image_tokens_and_streams_the_same(server, photo):
    url, n_image = photo
    status, _, body = server.post("/v1/chat/completions", chat_body(url))
    assert status == 200, body
    text = body["choices"][0]["message"]["content"]
    assert text.strip(), "no tokens came out"
    assert body["usage"]["completion_tokens"] == 24

    status, _, plain = server.post("/v1/chat/completions", {
        "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 1, "temperature": 0})
    assert status == 200, plain
    # The same turn with the photo: its embeddings and libmtmd's [IMG_END] token more.
    assert body["usage"]["prompt_tokens"] == plain["usage"]["prompt_tokens"] + n_image + 1

    events = list(server.stream("/v1/chat/completions", {**chat_body(url), "stream": True}))
    assert events[-1] == "[DONE]"
    streamed = "".join(e["choices"][0]["delta"].get("content") or ""
                       for e in events[:-1] if e.get("choices"))
    assert streamed == text


def test_image_caption_task_asks_what_chat_asks(server, photo):
    url, _ = photo
    first = caption(server, url)
    assert first["task"] == "image-caption" and first["finish_reason"] == "length"
    assert first["output"].strip() and first["usage"]["completion_tokens"] == 24
    assert caption(server, url)["output"] == first["output"]  # deterministic at temperature 0
    status, _, chat = server.post("/v1/chat/completions", chat_body(url))
    assert status == 200, chat
    assert chat["choices"][0]["message"]["content"] == first["output"]
    assert chat["usage"]["prompt_tokens"] == first["usage"]["prompt_tokens"]


def test_images_keep_their_aspect_and_matter(server, photo):
    url, n_photo = photo
    tall = caption(server, data_url(gradient_png(320, 480)))
    # 11 x 17 tokens + 16 breaks for a 320 x 480 picture, against the photo's 23 x 17 + 16.
    assert (caption(server, url)["usage"]["prompt_tokens"] - tall["usage"]["prompt_tokens"]
            == n_photo - image_tokens(320, 480))
    assert tall["output"] != caption(server, url)["output"]
