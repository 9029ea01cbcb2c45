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


# A whisper.cpp ggml model of the real tensor layout (1+1 layers) at toy sizes: rows of 32 (Q8_0's
# block), short contexts, a 3-token vocabulary; its hyperparameters are a real model's shape
# (multilingual vocabulary size, 80 mels), so the speech header check accepts it.
WHISPER_LAYER = ["mlp_ln.weight:32", "mlp_ln.bias:32", "mlp.0.weight:32x4", "mlp.0.bias:4",
                 "mlp.2.weight:32x4", "mlp.2.bias:32", "attn_ln.weight:32", "attn_ln.bias:32",
                 "attn.query.weight:32x4", "attn.query.bias:32", "attn.key.weight:32x4",
                 "attn.value.weight:32x4", "attn.value.bias:32", "attn.out.weight:32x4",
                 "attn.out.bias:32"]
WHISPER_CROSS = ["cross_attn_ln.weight:32", "cross_attn_ln.bias:32",
                 "cross_attn.query.weight:32x4", "cross_attn.query.bias:32",
                 "cross_attn.key.weight:32x4", "cross_attn.value.weight:32x4",
                 "cross_attn.value.bias:32", "cross_attn.out.weight:32x4", "cross_attn.out.bias:32"]


def whisper_tensors():
    names = ["encoder.positional_embedding:32x4", "encoder.conv1.weight:3x2x32",
             "encoder.conv1.bias:1x32", "encoder.conv2.weight:3x32x2", "encoder.conv2.bias:1x32"]
    names += ["encoder.blocks.0." + t for t in WHISPER_LAYER]
    names += ["encoder.ln_post.weight:32", "encoder.ln_post.bias:32",
              "decoder.positional_embedding:32x4", "decoder.token_embedding.weight:32x8"]
    names += ["decoder.blocks.0." + t for t in WHISPER_LAYER + WHISPER_CROSS]
    names += ["decoder.ln.weight:32", "decoder.ln.bias:32"]
    return [(n, [int(d) for d in shape.split("x")]) for n, shape in
            (t.split(":") for t in names)]


def tiny_whisper(f32=False, row=32):
    hp = [51865, 4, 32, 1, 1, 4, 32, 1, 1, 80, 0 if f32 else 1]
    out = struct.pack("<I11i", 0x67676D6C, *hp)
    out += struct.pack("<ii", 2, 3) + struct.pack("<6f", *[0.5] * 6)  # mel filters
    out += struct.pack("<i", 3) + b"".join(struct.pack("<i", len(t)) + t for t in (b"a", b"b", b""))
    for i, (name, ne) in enumerate(whisper_tensors()):
        if len(ne) == 2 and ne[0] == 32:
            ne = [row, ne[1]]
        ttype = 0 if f32 or len(ne) == 1 or name.endswith("bias") or "positional" in name else 1
        count = 1
        for d in ne:
            count *= d
        out += struct.pack("<iii", len(ne), len(name), ttype) + struct.pack("<%di" % len(ne), *ne)
        out += name.encode()
        vals = [((i * 7 + k * 13) % 29 - 14) / 8.0 for k in range(count)]
        out += struct.pack("<%d%s" % (count, "f" if ttype == 0 else "e"), *vals)
    return out


def whisper_quantize():
    f16 = tiny_whisper()
    write("whisper_quantize", "tiny-f16.bin", f16)
    write("whisper_quantize", "tiny-f32.bin", tiny_whisper(f32=True))
    write("whisper_quantize", "rows-48-not-q8_0.bin", tiny_whisper(row=48))
    write("whisper_quantize", "truncated-tiny-f16.bin", f16[: len(f16) * 2 // 3])
    write("whisper_quantize", "header-only.bin", f16[:120])
    quantized = bytearray(f16)
    quantized[44:48] = struct.pack("<i", 2008)
    write("whisper_quantize", "already-q8_0.bin", bytes(quantized))
    tiny = os.path.join(SHARED, "models", "for-tests-ggml-tiny.bin")
    if os.path.exists(tiny):
        with open(tiny, "rb") as f:
            write("whisper_quantize", "for-tests-ggml-tiny-head.bin", f.read(4096))


def main():
    for tool in ("ffmpeg", "sox"):
        if shutil.which(tool) is None:
            sys.exit("make_seeds.py needs %s (scripts/deps.sh installs it)" % tool)
    with tempfile.TemporaryDirectory() as tmp:
        made = images(tmp)
        image_input(made)
        audio(tmp)
    models()
    whisper_quantize()
    multipart()
    text_stream()


if __name__ == "__main__":
    main()
