#!/usr/bin/env python3
"""Writes the seed corpora under tests/fuzz/corpus/ (committed; rerun to regenerate).

Tiny valid files made with ffmpeg and sox (Debian's), plus truncated and corrupted variants;
prefixes of the real models in ../shared/models when present. Every seed stays under 20 KB.
libFuzzer adds its own finds next to these (`make fuzz` merges only those that add coverage).
"""
import base64
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
SHARED = os.path.abspath(os.path.join(HERE, "..", "..", "..", "shared"))
MAX_SEED = 20 * 1024


def write(harness, name, data):
    assert len(data) < MAX_SEED, (harness, name, len(data))
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def variants(harness, name, data):
    """The file, its first half and a copy with a flipped byte in the middle."""
    write(harness, name, data)
    write(harness, "truncated-" + name, data[: max(1, len(data) // 2)])
    corrupt = bytearray(data)
    corrupt[len(data) // 2] ^= 0x5A
    write(harness, "corrupt-" + name, bytes(corrupt))


def ffmpeg(tmp, args, out):
    path = os.path.join(tmp, out)
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args, path], check=True)
    with open(path, "rb") as f:
        return f.read()


def images(tmp):
    src = ["-f", "lavfi", "-i", "testsrc=size=16x12:rate=1"]
    two = ["-f", "lavfi", "-i", "testsrc=size=16x12:rate=2:duration=1"]
    one = ["-frames:v", "1"]
    jpeg = {
        "rgb-16x12.jpg": src + one + ["-pix_fmt", "yuvj420p"],
        "gray-16x12.jpg": src + one + ["-pix_fmt", "gray"],
        "444-16x12.jpg": src + one + ["-pix_fmt", "yuvj444p"],
    }
    png = {
        "rgb-16x12.png": src + one + ["-pix_fmt", "rgb24"],
        "rgba-16x12.png": src + one + ["-pix_fmt", "rgba"],
        "gray-16x12.png": src + one + ["-pix_fmt", "gray"],
        "gray16-16x12.png": src + one + ["-pix_fmt", "gray16be"],
        "pal8-16x12.png": src + one + ["-pix_fmt", "pal8"],
        "rgb48-16x12.png": src + one + ["-pix_fmt", "rgb48be"],
    }
    gif = {
        "16x12.gif": src + one,
        "animated-16x12.gif": two,
    }
    webp = {
        "lossy-16x12.webp": src + one + ["-c:v", "libwebp"],
        "lossless-16x12.webp": src + one + ["-c:v", "libwebp", "-lossless", "1"],
        "alpha-16x12.webp": src + one + ["-c:v", "libwebp", "-pix_fmt", "yuva420p"],
        "animated-16x12.webp": two + ["-c:v", "libwebp_anim", "-loop", "0"],
    }
    bmp = {
        "rgb24-16x12.bmp": src + one + ["-pix_fmt", "bgr24"],
        "bgra-16x12.bmp": src + one + ["-pix_fmt", "bgra"],
        "pal8-16x12.bmp": src + one + ["-pix_fmt", "pal8"],
        "rgb555-16x12.bmp": src + one + ["-pix_fmt", "rgb555le"],
        "mono-16x12.bmp": src + one + ["-pix_fmt", "monob"],
    }
    made = {}
    for fmt, table in (("jpeg", jpeg), ("png", png), ("gif", gif), ("webp", webp), ("bmp", bmp)):
        for name, args in table.items():
            data = ffmpeg(tmp, args, name)
            variants("image_" + fmt, name, data)
            made[name] = data
    photo = os.path.join(SHARED, "media", "test-1.jpeg")
    if os.path.exists(photo):  # a real camera JPEG: its headers and the first scan lines
        with open(photo, "rb") as f:
            write("image_jpeg", "test-1-prefix.jpeg", f.read(16 * 1024))
    return made


def image_input(made):
    png = made["rgb-16x12.png"]
    gif = made["16x12.gif"]
    jpg = made["rgb-16x12.jpg"]
    b64 = lambda b: base64.b64encode(b).decode()
    seeds = {
        "data-url-png": "data:image/png;base64," + b64(png),
        "data-url-gif-upper": "DATA:IMAGE/GIF;BASE64," + b64(gif),
        "data-url-octet": "data:application/octet-stream;base64," + b64(jpg),
        "bare-base64-jpeg": b64(jpg),
        "url-safe-unpadded": base64.urlsafe_b64encode(png).decode().rstrip("="),
        "wrapped-base64": "\n".join(b64(gif)[i : i + 60] for i in range(0, len(b64(gif)), 60)),
        "data-url-text": "data:text/plain;base64,aGVsbG8=",
        "data-url-not-base64": "data:image/png," + b64(png)[:40],
        "data-url-no-comma": "data:image/png;base64",
        "bad-padding": "QUJD=A==",
        "http-url": "http://example.com/cat.png",
        "https-url-port": "https://[::1]:8443/x.png?a=b#frag",
        "url-userinfo": "http://user:pw@10.0.0.1/x.png",
    }
    for name, text in seeds.items():
        write("image_input", name, text.encode())


def audio(tmp):
    tone = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000:duration=0.25"]
    stereo = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=22050:duration=0.1", "-ac", "2"]
    table = {
        "s16-mono-8k.wav": tone + ["-c:a", "pcm_s16le"],
        "f32-stereo-22k.wav": stereo + ["-c:a", "pcm_f32le"],
        "u8-mono.wav": tone + ["-c:a", "pcm_u8"],
        "mulaw.wav": tone + ["-c:a", "pcm_mulaw"],
        "tone.w64": tone + ["-c:a", "pcm_s16le", "-f", "w64"],
        "tone.aiff": tone + ["-c:a", "pcm_s16be"],
        "tone.caf": tone + ["-c:a", "pcm_s16le"],
        "tone.mp3": tone + ["-c:a", "libmp3lame", "-b:a", "16k"],
        "tone.flac": tone + ["-c:a", "flac"],
        "vorbis.ogg": tone + ["-c:a", "libvorbis", "-ar", "16000"],
        "opus.ogg": tone + ["-c:a", "libopus", "-b:a", "16k"],
        "flac.ogg": tone + ["-c:a", "flac", "-f", "ogg"],
        "aac.m4a": tone + ["-c:a", "aac", "-b:a", "16k"],
        "alac.m4a": tone + ["-c:a", "alac"],
        "opus.webm": tone + ["-c:a", "libopus", "-b:a", "16k"],
        "pcm.mkv": tone + ["-c:a", "pcm_s16le"],
        "tone.aac": tone + ["-c:a", "aac", "-b:a", "16k", "-f", "adts"],
    }
    for name, args in table.items():
        variants("audio", name, ffmpeg(tmp, args, name))
    sox = os.path.join(tmp, "sox-s24.wav")  # sox writes WAVE_FORMAT_EXTENSIBLE for 24 bits
    subprocess.run(["sox", "-n", "-r", "8000", "-b", "24", "-c", "3", sox, "synth", "0.1",
                    "sine", "300"], check=True)
    with open(sox, "rb") as f:
        variants("audio", "s24-3ch-extensible.wav", f.read())


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def tiny_gguf():
    """A valid GGUF v3: two KVs and one 4-element f32 tensor."""
    kv = [
        gguf_string("general.architecture") + struct.pack("<I", 8) + gguf_string("llama"),
        gguf_string("llama.block_count") + struct.pack("<II", 4, 2),
    ]
    tensor = gguf_string("w") + struct.pack("<I", 1) + struct.pack("<Q", 4)
    tensor += struct.pack("<I", 0) + struct.pack("<Q", 0)  # type f32, offset 0
    head = b"GGUF" + struct.pack("<IQQ", 3, 1, len(kv)) + b"".join(kv) + tensor
    head += b"\0" * (-len(head) % 32)  # general.alignment defaults to 32
    return head + struct.pack("<4f", 1, 2, 3, 4)


def models():
    write("gguf", "tiny-valid.gguf", tiny_gguf())
    write("gguf", "empty-v3.gguf", b"GGUF" + struct.pack("<IQQ", 3, 0, 0))
    write("gguf", "v1.gguf", b"GGUF" + struct.pack("<III", 1, 0, 0))
    write("gguf", "not-gguf", b"GGML" + b"\0" * 28)
    stories = os.path.join(SHARED, "models", "stories260K.gguf")
    if os.path.exists(stories):
        with open(stories, "rb") as f:
            data = f.read(16 * 1024)
        for n in (24, 256, 2048, 8192, 16 * 1024 - 1):
            write("gguf", "stories260K-%d" % n, data[:n])
    for name in ("for-tests-ggml-tiny.bin", "for-tests-ggml-tiny.en.bin",
                 "for-tests-silero-v6.2.0-ggml.bin"):
        path = os.path.join(SHARED, "models", name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                data = f.read(4096)
            for n in (47, 48, 4096):
                write("speech_model_header", "%s-%d" % (name, n), data[:n])
    write("speech_model_header", "gguf", tiny_gguf())
    write("speech_model_header", "short", b"lmgg")


def multipart():
    b = "----mmserve-fuzz-boundary"
    crlf = "\r\n"
    def part(headers, content):
        return "--" + b + crlf + crlf.join(headers) + crlf + crlf + content + crlf
    end = "--" + b + "--" + crlf
    seeds = {
        "fields": part(['Content-Disposition: form-data; name="model"'], "whisper-1")
        + part(['Content-Disposition: form-data; name="prompt"'], "a\r\nb\n--not-a-boundary")
        + end,
        "file": part(['Content-Disposition: form-data; name="file"; filename="a.wav"',
                      "Content-Type: audio/wav"], "RIFF\0\0\0\0WAVEfmt ")
        + part(['Content-Disposition: form-data; name="response_format"'], "verbose_json")
        + end,
        "repeated": part(['Content-Disposition: form-data; name="timestamp_granularities[]"'], "word")
        + part(['Content-Disposition: form-data; name="timestamp_granularities[]"'], "segment")
        + part(['content-disposition: form-data; name=input; filename*=UTF-8\'\'%E2%82%AC.png'],
               "\x89PNG")
        + end,
        "preamble-epilogue": "preamble" + crlf + part(
            ['Content-Disposition: form-data; name="parameters"', "Content-Type: application/json"],
            '{"prompt": "describe"}') + end + "epilogue",
        "empty-part": part(['Content-Disposition: form-data; name=""'], "") + end,
        "unterminated": part(['Content-Disposition: form-data; name="file"; filename="x"'], "abc"),
    }
    for name, text in seeds.items():
        write("multipart", name, text.encode("latin-1"))


def text_stream():
    # FuzzedDataProvider: the last byte picks the number of stop strings (0-3); strings are read
    # from the front, each ended by a backslash and a non-backslash byte.
    seeds = {
        "ascii-stop": b"</s>\\xOnce upon a time\\x</s\\x>\\x and more\\x\x01",
        "multibyte-split": b"\xe4\xb8\\x\x96\xe7\x95\x8c \xf0\x9f\\x\x98\x80 done\\x\x00",
        "stop-across-pieces": b"STOP\\xab\\xST\\xOP\\xcd\\x\x01",
        "two-stops": b"\n\n\\xUser:\\xhello\n\\x\nUser:\\x bye\\x\x02",
        "replacement-char": b"\xef\xbf\xbd\\xa\xff\\xb\\x\x01",
        "overlong-c0": b"\xc0\xaf\\x\xc1\xbf\\x\x00",
        "surrogate": b"\xed\xa0\x80\\x\xed\xbf\xbf\\x\x00",
        "above-max": b"\xf4\x90\x80\x80\\x\xf5\x80\x80\x80\\x\xf7\xbf\xbf\xbf\\x\x00",
        "overlong-e0-f0": b"\xe0\x80\xaf\\x\xf0\x80\x80\xaf\\x\x00",
    }
    for name, data in seeds.items():
        write("text_stream", name, data)


def main():
    for tool in ("ffmpeg", "sox"):
        if shutil.which(tool) is None:
            sys.exit("make_seeds.py needs %s (scripts/deps.sh installs it)" % tool)
    with tempfile.TemporaryDirectory() as tmp:
        made = images(tmp)
        image_input(made)
        audio(tmp)
    models()
    multipart()
    text_stream()


if __name__ == "__main__":
    main()
