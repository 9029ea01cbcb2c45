"""Speech through the server: task "speech-transcribe" on /v1/inference and OpenAI's
/v1/audio/transcriptions and /v1/audio/translations, with the synthetic Whisper-tiny-shaped model
on jfk.wav; a speech-only server; bad audio answers 400 and oversized audio 413."""
import base64
import json

import pytest
from conftest import STORIES, running_server
from speech_support import (JFK, SMALL, check_verbose, dumps, infer_speech, needs_jfk, parse_srt,
                            parse_vtt, synth_whisper, tone, transcribe_http, wav_bytes)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("whisper")
    return synth_whisper(d / "synth-tiny.bin"), synth_whisper(d / "synth-small.bin", *SMALL)


@pytest.fixture(scope="module")
def server(models):
    """Speech only: no text model at all."""
    with running_server("--whisper-model", models[0], "-t", "1", "--speech-parallel", "2",
                        env={"MMSERVE_MODEL": "", "MMSERVE_MODELS_DIR": "/nonexistent"}) as s:
        yield s


@pytest.fixture(scope="module")
def jfk():
    if not JFK.exists():
        pytest.skip(f"needs {JFK} (absent)")
    return JFK.read_bytes()


def test_a_speech_only_server_is_ready_and_says_what_it_serves(server, models):
    status, _, ready = server.get("/ready")
    assert status == 200 and ready["speech"]["parallel"] == 2
    assert "text" not in ready
    _, _, listing = server.get("/v1/models")
    assert [m["id"] for m in listing["data"]] == ["synth-tiny"]
    meta = listing["data"][0]["meta"]
    assert meta["architecture"] == "whisper" and meta["size"] == "tiny"
    assert meta["multilingual"] is True
    status, _, body = server.post("/v1/inference", {"task": "text-gen", "input": "hi"})
    assert status == 400 and body["error"]["type"] == "model_not_loaded"
    status, _, body = server.post("/v1/chat/completions",
                                  {"messages": [{"role": "user", "content": "hi"}]})
    assert status == 400


def test_inference_task_transcribes_jfk_with_segments(server, jfk):
    status, _, out = infer_speech(server, jfk, timestamps=True, language="en")
    assert status == 200, out
    assert out["task"] == "speech-transcribe" and out["model"] == "synth-tiny"
    assert isinstance(out["output"], str) and out["output"]
    assert out["language"] == "en"
    assert out["duration"] == pytest.approx(11.0, abs=0.01)
    assert out["usage"]["audio_seconds"] == pytest.approx(11.0, abs=0.01)
    assert out["timings"]["windows"] == 1
    assert out["segments"]
    last = 0
    for s in out["segments"]:
        assert last <= s["start"] <= s["end"] <= 11.0
        last = s["start"]
    assert "".join(s["text"] for s in out["segments"]).strip() == out["output"]
    # Without "timestamps", just the text; the same text (temperature 0 is deterministic).
    status, _, plain = infer_speech(server, jfk, language="en")
    assert status == 200 and "segments" not in plain
    assert plain["output"] == out["output"]


def test_inference_takes_data_urls_uploads_and_detects_the_language(server, jfk):
    url = "data:audio/wav;base64," + base64.b64encode(jfk).decode()
    status, _, a = server.post("/v1/inference", {"task": "speech-transcribe", "input": url})
    assert status == 200, a
    assert a["language"]  # detected
    from speech_support import multipart
    body, ctype = multipart({"task": "speech-transcribe"}, {"file": ("jfk.wav", jfk)})
    status, _, b = server.post("/v1/inference", body, headers={"Content-Type": ctype})
    assert status == 200, b
    assert b["output"] == a["output"] and b["language"] == a["language"]


def test_every_openai_response_format_is_well_formed(server, jfk):
    status, j = transcribe_http(server, jfk, response_format="json", language="en")
    assert status == 200 and set(j) == {"text"}
    status, text = transcribe_http(server, jfk, response_format="text", language="en")
    assert status == 200 and text == j["text"] + "\n"
    status, srt = transcribe_http(server, jfk, response_format="srt", language="en")
    assert status == 200
    cues = parse_srt(srt)
    status, vtt = transcribe_http(server, jfk, response_format="vtt", language="en")
    assert status == 200
    assert [(a, b) for a, b, _ in parse_vtt(vtt)] == [(a, b) for a, b, _ in cues]
    status, verbose = transcribe_http(server, jfk, response_format="verbose_json", language="en",
                                      **{"timestamp_granularities[]": ["word", "segment"]})
    assert status == 200
    check_verbose(verbose, 11.0)
    assert verbose["text"] == j["text"]
    assert [(s["start"], s["end"]) for s in verbose["segments"] if s["text"].strip()] == \
        pytest.approx([(a, b) for a, b, _ in cues], abs=0.001)
    assert verbose["words"] and all(0 <= w["start"] <= w["end"] <= 11 for w in verbose["words"])
    # The product's own API and OpenAI's agree on the same audio.
    _, _, inferred = infer_speech(server, jfk, language="en")
    assert inferred["output"] == j["text"]


def test_translations_endpoint(server, jfk):
    status, verbose = transcribe_http(server, jfk, "/v1/audio/translations",
                                      response_format="verbose_json", temperature="0")
    assert status == 200, verbose
    check_verbose(verbose, 11.0, task="translate")
    status, body = transcribe_http(server, jfk, "/v1/audio/translations", language="de")
    assert status == 400 and body["error"]["param"] == "language"  # translations take none


BAD_AUDIO = [
    (b"", "empty"),
    (b"just some text, definitely not audio\n" * 20, "not audio in a supported format"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x80\x3e\x00\x00"
     b"\x00\x7d\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x00", "no samples"),
    (b"OggS\x00\x02" + bytes(range(256)) * 8, "audio"),
]


@pytest.mark.parametrize("audio,message", BAD_AUDIO)
def test_bad_audio_answers_400_naming_the_problem(server, audio, message):
    status, body = transcribe_http(server, audio)
    assert status == 400, body
    assert body["error"]["param"] == "file"
    assert message in body["error"]["message"]
    status, _, body = infer_speech(server, audio)
    assert status == 400 and body["error"]["param"] == "input"
    assert message in body["error"]["message"]


BAD_REQUESTS = [
    ({"response_format": "docx"}, "response_format"),
    ({"language": "klingon"}, "language"),
    ({"temperature": "hot"}, "temperature"),
    ({"temperature": "1.5"}, "temperature"),
    ({"timestamp_granularities[]": "word"}, "timestamp_granularities[]"),  # needs verbose_json
    ({"timestamp_granularities[]": "phoneme", "response_format": "verbose_json"},
     "timestamp_granularities[]"),
    ({"stream": "yes"}, "stream"),
    ({"stream": "true", "response_format": "srt"}, "response_format"),  # streams text events
    ({"speaker": "alice"}, "speaker"),
]


@pytest.mark.parametrize("fields,param", BAD_REQUESTS)
def test_bad_openai_requests_name_the_field(server, fields, param):
    status, body = transcribe_http(server, wav_bytes(tone(0.5)), **fields)
    assert status == 400, body
    assert body["error"]["param"] == param


def test_bad_inference_requests_name_the_field(server):
    wav = base64.b64encode(wav_bytes(tone(0.5))).decode()
    cases = [
        ({"task": "speech-transcribe"}, "input"),
        ({"task": "speech-transcribe", "input": "%%% not base64 %%%"}, "input"),
        ({"task": "speech-transcribe", "input": "data:audio/wav,raw"}, "input"),
        ({"task": "speech-transcribe", "input": wav, "stream": "yes"}, "stream"),
        ({"task": "speech-transcribe", "input": wav, "parameters": {"language": 5}},
         "parameters.language"),
        ({"task": "speech-transcribe", "input": wav, "parameters": {"temperature": -1}},
         "parameters.temperature"),
        ({"task": "speech-transcribe", "input": wav, "parameters": {"translate": "yes"}},
         "parameters.translate"),
    ]
    for body, param in cases:
        status, _, got = server.post("/v1/inference", body)
        assert status == 400, (body, got)
        assert got["error"]["param"] == param, got
    status, _, got = server.post("/v1/audio/transcriptions", {"file": wav})
    assert status == 400 and got["error"]["param"] == "file"
    body, ctype = __import__("speech_support").multipart({"model": "whisper-1"}, {})
    status, _, got = server.post("/v1/audio/transcriptions", body, headers={"Content-Type": ctype})
    assert status == 400 and "'file'" in got["error"]["message"]


def test_audio_limits_answer_413(models, jfk):
    with running_server("--whisper-model", models[1], "-t", "1", "--max-audio-bytes", "300000",
                        "--max-audio-seconds", "5",
                        env={"MMSERVE_MODEL": "", "MMSERVE_MODELS_DIR": "/nonexistent"}) as s:
        status, body = transcribe_http(s, jfk)  # 352 kB
        assert status == 413 and "--max-audio-bytes" in body["error"]["message"]
        assert body["error"]["param"] == "file"
        status, body = transcribe_http(s, wav_bytes(tone(6.0), rate=8000))  # 96 kB, 6 s
        assert status == 413 and "--max-audio-seconds" in body["error"]["message"]
        status, body = transcribe_http(s, wav_bytes(tone(3.0)), response_format="verbose_json")
        assert status == 200
        check_verbose(body, 3.0)


@pytest.mark.skipif(not STORIES.exists(), reason=f"needs {STORIES} (absent)")
def test_text_and_speech_in_one_server(models):
    with running_server("-m", STORIES, "--whisper-model", models[1], "-t", "2") as s:
        _, _, listing = s.get("/v1/models")
        assert [m["id"] for m in listing["data"]] == ["stories260K", "synth-small"]
        status, _, text = s.post("/v1/inference", {"task": "text-gen", "input": "Once upon a time",
                                                   "parameters": {"max_tokens": 8,
                                                                  "temperature": 0}})
        assert status == 200 and text["output"]
        status, _, speech = infer_speech(s, wav_bytes(tone(1.0)), timestamps=True)
        assert status == 200 and speech["task"] == "speech-transcribe"
        _, _, health = s.get("/health")
        assert health["speech"]["windows"] == 1 and "text" in health


def test_without_a_speech_model_the_task_names_the_flag(models):
    if not STORIES.exists():
        pytest.skip(f"needs {STORIES} (absent)")
    with running_server("-m", STORIES, "-t", "1") as s:
        status, body = transcribe_http(s, wav_bytes(tone(0.5)))
        assert status == 400 and "--whisper-model" in body["error"]["message"]
        _, _, listing = s.get("/v1/models")
        assert dumps([m["id"] for m in listing["data"]]) == json.dumps(["stories260K"])


def test_transcribed_audio_is_counted_in_the_metrics(server):
    def audio_seconds():
        _, _, text = server.get("/metrics")
        lines = [l for l in text.splitlines() if l.startswith("mmserve_audio_seconds_total")]
        assert len(lines) == 1, lines
        return float(lines[0].split()[-1])

    before = audio_seconds()
    status, _ = transcribe_http(server, wav_bytes(tone(1.5)))
    assert status == 200
    assert audio_seconds() == pytest.approx(before + 1.5, abs=0.01)
