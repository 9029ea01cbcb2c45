"""Helpers for the speech tests: synthetic whisper models, audio made here (Python's wave module,
Debian's ffmpeg and sox), multipart requests, and strict SRT/WebVTT parsers.

Servers and the CLI run with one or two threads: ggml's worker threads spin while they wait for
each other, so on a loaded two-core machine more threads than cores make every window slow."""
import base64
import json
import math
import re
import shutil
import struct
import subprocess
import uuid
import wave
from pathlib import Path

import pytest

from conftest import BIN, SHARED

JFK = SHARED / "media" / "jfk.wav"
VAD = SHARED / "models" / "for-tests-silero-v6.2.0-ggml.bin"
FIXTURE = SHARED / "models" / "for-tests-ggml-tiny.bin"
FFMPEG = shutil.which("ffmpeg")
SOX = shutil.which("sox")
RATE = 16000
# A much smaller model than Whisper tiny, for tests about inputs and errors rather than the model.
SMALL = ("--state", "64", "--heads", "2", "--layers", "1")

needs_jfk = pytest.mark.skipif(not JFK.exists(), reason=f"needs {JFK} (absent)")
needs_vad = pytest.mark.skipif(not VAD.exists(), reason=f"needs {VAD} (absent)")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="needs ffmpeg (scripts/deps.sh installs it)")
needs_sox = pytest.mark.skipif(SOX is None, reason="needs sox (scripts/deps.sh installs it)")


def synth_whisper(path, *args):
    """`mmserve synth whisper -o path ...` (Whisper tiny's shape unless args say otherwise)."""
    proc = subprocess.run([BIN, "synth", "whisper", "-o", str(path), *map(str, args)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(path)
    return Path(path)


def samples_of_wav(path):
    """Mono 16-bit samples of a WAV as floats, and its rate."""
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        raw = w.readframes(w.getnframes())
        return [v / 32768 for v in struct.unpack(f"<{len(raw) // 2}h", raw)], w.getframerate()


def wav_bytes(samples, rate=RATE):
    """A mono 16-bit WAV file of float samples, in memory."""
    import io
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(struct.pack(f"<{len(samples)}h",
                                  *(int(max(-1, min(1, s)) * 32767) for s in samples)))
    return buf.getvalue()


def tone(seconds, frequency=440.0, rate=RATE):
    return [0.5 * math.sin(2 * math.pi * frequency * i / rate) for i in range(int(seconds * rate))]


def speech_like(seconds):
    """jfk.wav repeated (or cut) to `seconds`."""
    samples, rate = samples_of_wav(JFK)
    assert rate == RATE
    n = int(seconds * RATE)
    return (samples * (n // len(samples) + 1))[:n]


def multipart(fields, files):
    """(body, content type) of a multipart/form-data request. `fields`: name -> value or list of
    values; `files`: name -> (filename, bytes)."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, values in fields.items():
        for value in values if isinstance(values, list) else [values]:
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                         .encode() + str(value).encode() + b"\r\n")
    for name, (filename, data) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                     f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                     .encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def transcribe_http(server, audio, path="/v1/audio/transcriptions", timeout=120, **fields):
    """POSTs OpenAI's form; returns (status, body: parsed JSON or text)."""
    fields = {"model": "whisper-1", **fields}
    body, ctype = multipart(fields, {"file": ("audio.bin", audio)})
    status, _, payload = server.post(path, body, headers={"Content-Type": ctype}, timeout=timeout)
    return status, payload


def infer_speech(server, audio, timeout=120, **params):
    body = {"task": "speech-transcribe", "input": base64.b64encode(audio).decode(),
            "parameters": params}
    return server.post("/v1/inference", body, timeout=timeout)


_SRT_TIME = r"(\d\d):(\d\d):(\d\d),(\d\d\d)"
_VTT_TIME = r"(\d\d):(\d\d):(\d\d)\.(\d\d\d)"


def _seconds(h, m, s, ms):
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def parse_srt(text):
    """[(start, end, text)]; asserts the SubRip grammar: numbered cues from 1, a time line,
    one or more non-empty text lines, a blank line."""
    assert text.endswith("\n\n") or text == "", repr(text[-20:])
    cues = []
    for number, block in enumerate(text.strip("\n").split("\n\n"), start=1):
        if not block:
            continue
        lines = block.split("\n")
        assert lines[0] == str(number), block
        m = re.fullmatch(_SRT_TIME + " --> " + _SRT_TIME, lines[1])
        assert m, lines[1]
        assert len(lines) >= 3 and all(line.strip() for line in lines[2:]), block
        start, end = _seconds(*m.groups()[:4]), _seconds(*m.groups()[4:])
        assert start <= end, block
        cues.append((start, end, "\n".join(lines[2:])))
    return cues


def parse_vtt(text):
    """[(start, end, text)]; asserts the WebVTT grammar we write: the header, then cues of a
    time line and text lines without "-->", separated by blank lines."""
    assert text.startswith("WEBVTT\n\n"), repr(text[:20])
    cues = []
    for block in text[len("WEBVTT\n\n"):].strip("\n").split("\n\n"):
        if not block:
            continue
        lines = block.split("\n")
        m = re.fullmatch(_VTT_TIME + " --> " + _VTT_TIME, lines[0])
        assert m, lines[0]
        assert len(lines) >= 2 and all(line.strip() and "-->" not in line for line in lines[1:])
        start, end = _seconds(*m.groups()[:4]), _seconds(*m.groups()[4:])
        assert start <= end, block
        cues.append((start, end, "\n".join(lines[1:])))
    return cues


def check_verbose(j, duration, task="transcribe"):
    """OpenAI's verbose_json shape, with segments inside the audio and in order."""
    assert j["task"] == task
    assert isinstance(j["language"], str) and j["language"]
    assert j["duration"] == pytest.approx(duration, abs=0.01)
    assert isinstance(j["text"], str)
    last_start = 0
    for i, s in enumerate(j["segments"]):
        assert s["id"] == i
        for key in ("seek", "start", "end", "text", "tokens", "temperature", "avg_logprob",
                    "compression_ratio", "no_speech_prob"):
            assert key in s, key
        assert last_start <= s["start"] <= s["end"] <= duration + 1e-6
        last_start = s["start"]
        assert all(isinstance(t, int) for t in s["tokens"])
    assert "".join(s["text"] for s in j["segments"]).strip() == j["text"]


def dumps(obj):
    return json.dumps(obj, sort_keys=True)
