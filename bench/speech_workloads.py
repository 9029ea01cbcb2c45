"""Speech workloads: concurrent transcriptions of clips of different lengths.

mmserve answers OpenAI's POST /v1/audio/transcriptions; whisper-server answers POST /inference;
both take a multipart form with the audio as `file`. Clips are 16 kHz mono WAV made from
../shared/media/jfk.wav (looped to the wanted length), so no decoder differences enter.
"""
import http.client
import io
import threading
import time
import uuid
import wave
from urllib.parse import urlparse


def make_clip(source_wav, seconds):
    with wave.open(source_wav, "rb") as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        frames = w.readframes(w.getnframes())
    need = int(seconds * 16000) * 2
    data = (frames * (need // len(frames) + 1))[:need]
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(data)
    return out.getvalue()


def multipart(fields, file_bytes):
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="clip.wav"\r\n'
                 f"Content-Type: audio/wav\r\n\r\n".encode() + file_bytes + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def transcribe(url, path, clip, fields):
    parsed = urlparse(url)
    body, ctype = multipart(fields, clip)
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=3600)
    conn.request("POST", path, body=body, headers={"Content-Type": ctype})
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {payload[:300]!r}")
    return time.perf_counter() - t0


def endpoint(kind):
    """The transcription path and form fields of each server. The language is named for both:
    whisper-server assumes English unless told otherwise, mmserve detects it as OpenAI's API does,
    and detection is one more encoder pass over each request's first window."""
    fields = {"response_format": "json", "temperature": "0", "language": "en"}
    return (("/inference", fields) if kind == "whisper-server"
            else ("/v1/audio/transcriptions", {"model": "whisper", **fields}))


ARRIVAL_GAP_S = 0.02


def concurrent_transcriptions(url, kind, clips, gap_s=ARRIVAL_GAP_S):
    """Sends the clips together, in their order `gap_s` apart; returns wall time, per-clip latency
    (from each clip's own send) and audio seconds/s. Why the gap: sent at the same instant, the
    order in which a server sees them is a race among the client's threads, and a server that
    takes the 8 s clip first finishes it sooner and the 3 s clip later; 20 ms apart (a few
    percent of the shortest clip's time) both servers see the same order."""
    path, fields = endpoint(kind)
    latencies = [None] * len(clips)
    errors = []

    def one(i):
        time.sleep(i * gap_s)
        try:
            latencies[i] = transcribe(url, path, clips[i][1], fields)
        except Exception as e:  # noqa: BLE001 - reported in the results
            errors.append(str(e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(clips))]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    audio = sum(seconds for seconds, _ in clips)
    return {"clips_s": [s for s, _ in clips], "wall_s": round(wall, 2),
            "latency_s": [round(x, 2) if x is not None else None for x in latencies],
            "audio_s_per_s": round(audio / wall, 2), "errors": errors}


def long_then_short(url, kind, long_clip, short_clip, delay_s=0.5):
    """A long recording, then `delay_s` later a short clip: the short clip's latency is what a
    user behind a long job waits (whisper-server runs one request at a time, so the whole
    recording)."""
    path, fields = endpoint(kind)
    latency, errors = {}, []

    def one(name, clip):
        try:
            latency[name] = transcribe(url, path, clip, fields)
        except Exception as e:  # noqa: BLE001 - reported in the results
            errors.append(str(e))

    first = threading.Thread(target=one, args=("long", long_clip[1]))
    second = threading.Thread(target=one, args=("short", short_clip[1]))
    first.start()
    time.sleep(delay_s)
    second.start()
    first.join()
    second.join()
    return {"long_s": long_clip[0], "short_s": short_clip[0], "delay_s": delay_s,
            "long_latency_s": round(latency.get("long", -1), 2),
            "short_latency_s": round(latency.get("short", -1), 2), "errors": errors}
