"""Streamed transcripts: `stream: true` on /v1/inference's speech task and `stream=true` on
OpenAI's /v1/audio/transcriptions (transcript.text.delta events, then transcript.text.done), a
segment's text sent as each window ends; the deltas concatenated are the non-streamed text."""
import base64
import http.client
import json

import pytest
from conftest import running_server
from speech_support import (SMALL, infer_speech, multipart, needs_jfk, speech_like, synth_whisper,
                            transcribe_http, wav_bytes)

pytestmark = needs_jfk


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    model = synth_whisper(tmp_path_factory.mktemp("whisper") / "synth-small.bin", *SMALL)
    with running_server("--whisper-model", model, "-t", "1", "--speech-parallel", "2",
                        env={"MMSERVE_MODEL": "", "MMSERVE_MODELS_DIR": "/nonexistent"}) as s:
        yield s


@pytest.fixture(scope="module")
def long_audio():
    return wav_bytes(speech_like(75))  # three windows of at most 30 s


def events_of(server, path, body, headers):
    """Every SSE event's data, raw (the stream is read to its end)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    conn.request("POST", path, body=body, headers=headers)
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    assert resp.getheader("Content-Type").startswith("text/event-stream")
    out = [line.decode("utf-8")[len("data: "):].strip() for line in resp if line.startswith(b"data: ")]
    conn.close()
    return out


def openai_stream(server, audio, **fields):
    body, ctype = multipart({"model": "whisper-1", "stream": "true", **fields},
                            {"file": ("audio.wav", audio)})
    return [json.loads(e) for e in events_of(server, "/v1/audio/transcriptions", body,
                                             {"Content-Type": ctype})]


def test_openai_stream_sends_deltas_per_window_that_add_up_to_the_text(server, long_audio):
    status, plain = transcribe_http(server, long_audio, language="en")
    assert status == 200, plain
    events = openai_stream(server, long_audio, language="en")
    deltas = [e for e in events if e["type"] == "transcript.text.delta"]
    done = events[-1]
    assert done["type"] == "transcript.text.done", events[-3:]
    assert [e["type"] for e in events[:-1]] == ["transcript.text.delta"] * (len(events) - 1)
    assert len(deltas) >= 2, events  # several windows, each sent as it ended
    assert "".join(d["delta"] for d in deltas) == done["text"] == plain["text"]
    assert done["usage"] == {"type": "duration", "seconds": pytest.approx(75, abs=0.01)}
    # The text format streams the same events.
    assert openai_stream(server, long_audio, language="en", response_format="text") == events


def test_inference_stream_sends_the_output_in_pieces_with_segments(server, long_audio):
    status, _, plain = infer_speech(server, long_audio, language="en", timestamps=True)
    assert status == 200, plain
    body = json.dumps({"task": "speech-transcribe", "stream": True,
                       "input": base64.b64encode(long_audio).decode(),
                       "parameters": {"language": "en", "timestamps": True}})
    raw = events_of(server, "/v1/inference", body, {"Content-Type": "application/json"})
    assert raw[-1] == "[DONE]"
    events = [json.loads(e) for e in raw[:-1]]
    pieces, end = events[:-1], events[-1]
    assert all(e["id"] == end["id"] and e["task"] == "speech-transcribe" for e in events)
    assert "".join(e["output"] for e in pieces) == plain["output"]
    assert [e["segment"] for e in pieces] == plain["segments"]
    assert end["output"] == "" and end["duration"] == pytest.approx(75, abs=0.01)
    assert end["usage"]["audio_seconds"] == pytest.approx(75, abs=0.01)
    assert end["timings"]["windows"] == plain["timings"]["windows"] >= 3
    assert end["language"] == "en" and end["model"] == "synth-small"


def test_a_client_that_leaves_mid_stream_frees_the_server(server, long_audio):
    body, ctype = multipart({"model": "whisper-1", "stream": "true", "language": "en"},
                            {"file": ("audio.wav", long_audio)})
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    conn.request("POST", "/v1/audio/transcriptions", body=body, headers={"Content-Type": ctype})
    resp = conn.getresponse()
    assert resp.status == 200
    first = next(line for line in resp if line.startswith(b"data: "))
    assert json.loads(first[len("data: "):])["type"] == "transcript.text.delta"
    conn.sock.close()  # gone after the first window
    conn.close()
    status, plain = transcribe_http(server, wav_bytes(speech_like(3)), language="en")
    assert status == 200 and isinstance(plain["text"], str), plain
    _, _, metrics = server.get("/metrics")
    assert "mmserve_" in metrics


def test_stream_refusals_name_the_field(server):
    short = wav_bytes(speech_like(1))
    for fields, param in [({"stream": "1"}, "stream"),
                          ({"stream": "true", "response_format": "verbose_json"}, "response_format"),
                          ({"stream": "true", "response_format": "vtt"}, "response_format")]:
        status, body = transcribe_http(server, short, **fields)
        assert status == 400 and body["error"]["param"] == param, (fields, body)
    status, _, body = server.post("/v1/inference", {"task": "speech-transcribe", "stream": 1,
                                                    "input": base64.b64encode(short).decode()})
    assert status == 400 and body["error"]["param"] == "stream", body
