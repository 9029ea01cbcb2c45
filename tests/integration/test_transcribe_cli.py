"""`mmserve transcribe` and `mmserve synth whisper`: the synthetic Whisper-tiny-shaped model
transcribes jfk.wav end to end in every output format; bad input fails with one clear line."""
import json
import subprocess

import pytest
from conftest import BIN, STORIES
from speech_support import (FIXTURE, JFK, SMALL, VAD, check_verbose, needs_jfk, needs_vad,
                            parse_srt, parse_vtt, synth_whisper, tone, wav_bytes)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return synth_whisper(tmp_path_factory.mktemp("whisper") / "synth-tiny.bin")


@pytest.fixture(scope="module")
def small_en(tmp_path_factory):
    return synth_whisper(tmp_path_factory.mktemp("whisper") / "synth-en.bin", "--english", *SMALL)


def transcribe(model, audio, *args, ok=True):
    proc = subprocess.run([BIN, "transcribe", "-m", str(model), "-t", "1", str(audio), *args],
                          capture_output=True, text=True, timeout=240)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


@needs_jfk
def test_every_format_is_well_formed_and_agrees(tiny):
    text = transcribe(tiny, JFK).stdout
    assert text.endswith("\n") and text.count("\n") == 1 and text.strip()
    verbose = json.loads(transcribe(tiny, JFK, "--format", "verbose_json").stdout)
    check_verbose(verbose, 11.0)
    assert verbose["segments"], "a random model still writes segments"
    assert verbose["text"] == text.strip()
    assert json.loads(transcribe(tiny, JFK, "-f", "json").stdout) == {"text": text.strip()}
    srt = parse_srt(transcribe(tiny, JFK, "-f", "srt").stdout)
    vtt = parse_vtt(transcribe(tiny, JFK, "-f", "vtt").stdout)
    segments = [(s["start"], s["end"]) for s in verbose["segments"] if s["text"].strip()]
    assert [(a, b) for a, b, _ in srt] == pytest.approx(segments, abs=0.001)
    assert [(a, b) for a, b, _ in vtt] == pytest.approx(segments, abs=0.001)
    assert all(0 <= a <= b <= 11.0 for a, b, _ in srt)


@needs_jfk
def test_same_input_at_temperature_zero_gives_the_same_output(tiny, tmp_path):
    out = tmp_path / "a.json"
    transcribe(tiny, JFK, "-f", "verbose_json", "-o", out, "--language", "en", "--words")
    again = transcribe(tiny, JFK, "-f", "verbose_json", "--language", "en", "--words").stdout
    first = json.loads(out.read_text())
    assert first == json.loads(again)
    assert first["language"] == "english"
    assert first["words"], "--words adds word timestamps"
    for w in first["words"]:
        assert 0 <= w["start"] <= w["end"] <= 11.0


@needs_jfk
@needs_vad
def test_the_vad_skips_the_leading_silence(tiny):
    srt = parse_srt(transcribe(tiny, JFK, "-f", "srt", "--vad-model", VAD).stdout)
    assert srt
    # Speech starts at about 0.32 s: the one window begins there, so no cue can start earlier.
    assert srt[0][0] >= 0.25
    assert srt[-1][1] <= 10.7


def test_a_generated_tone_transcribes_with_the_small_model(small_en, tmp_path):
    audio = tmp_path / "tone.wav"
    audio.write_bytes(wav_bytes(tone(2.0)))
    out = json.loads(transcribe(small_en, audio, "-f", "verbose_json").stdout)
    check_verbose(out, 2.0)
    assert out["language"] == "english"  # an English-only model detects nothing


def test_bad_input_gives_one_line_and_the_right_exit_code(small_en, tmp_path):
    garbage = tmp_path / "notes.mp3"
    garbage.write_text("this is not audio at all\n")
    proc = transcribe(small_en, garbage, ok=False)
    assert proc.returncode == 2
    assert "not audio in a supported format" in proc.stderr
    assert proc.stderr.count("\n") == 1

    proc = transcribe(small_en, tmp_path / "missing.wav", ok=False)
    assert proc.returncode == 1 and "cannot open the audio file" in proc.stderr

    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    proc = transcribe(small_en, empty, ok=False)
    assert proc.returncode == 2 and "empty" in proc.stderr

    audio = tmp_path / "tone.wav"
    audio.write_bytes(wav_bytes(tone(1.0)))
    for args, message in [(["--format", "docx"], "unknown response format"),
                          (["--translate"], "English-only"),
                          (["--language", "fr"], "English-only"),
                          (["--temp", "3"], "--temp")]:
        proc = transcribe(small_en, audio, *args, ok=False)
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr

    proc = subprocess.run([BIN, "transcribe", str(audio)], capture_output=True, text=True,
                          env={"PATH": "/usr/bin"})
    assert proc.returncode == 2 and "-m MODEL.bin" in proc.stderr


@pytest.mark.skipif(not STORIES.exists(), reason=f"needs {STORIES} (absent)")
def test_a_gguf_is_not_a_speech_model(tmp_path):
    audio = tmp_path / "tone.wav"
    audio.write_bytes(wav_bytes(tone(1.0)))
    proc = transcribe(STORIES, audio, ok=False)
    assert proc.returncode == 1
    assert "not a whisper.cpp speech model" in proc.stderr


def test_synth_whisper_options(tmp_path):
    proc = subprocess.run([BIN, "synth", "whisper"], capture_output=True, text=True)
    assert proc.returncode == 2 and "-o FILE is required" in proc.stderr
    proc = subprocess.run([BIN, "synth", "whisper", "-o", tmp_path / "x.bin", "--size", "huge"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "tiny, base, small" in proc.stderr
    proc = subprocess.run([BIN, "synth", "whisper", "-o", tmp_path / "x.bin", "--layers", "2"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "distil-whisper" in proc.stderr
    a = synth_whisper(tmp_path / "a.bin", *SMALL, "--seed", "5")
    b = synth_whisper(tmp_path / "b.bin", *SMALL, "--seed", "5")
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.skipif(not FIXTURE.exists(), reason=f"needs {FIXTURE} (absent)")
def test_synth_whisper_like_a_fixture(tmp_path):
    proc = subprocess.run([BIN, "synth", "whisper", "-o", tmp_path / "like.bin", "--like", FIXTURE,
                           *SMALL], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"from {FIXTURE}" in proc.stderr
    audio = tmp_path / "tone.wav"
    audio.write_bytes(wav_bytes(tone(1.5)))
    out = json.loads(transcribe(tmp_path / "like.bin", audio, "-f", "verbose_json").stdout)
    check_verbose(out, 1.5)
