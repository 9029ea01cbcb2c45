"""Every accepted audio format decodes through the server: a 3-second 440 Hz tone made here with
Debian's ffmpeg and sox, posted as a file, comes back 3 seconds long. (The unit tests check the
pitch after resampling on files made with the FFmpeg libraries themselves.)"""
import subprocess

import pytest
from conftest import running_server
from speech_support import (FFMPEG, SMALL, SOX, check_verbose, infer_speech, needs_ffmpeg,
                            needs_sox, synth_whisper, transcribe_http)

FORMATS = [
    # (file name, ffmpeg output options)
    ("tone.wav", ["-ar", "44100", "-ac", "2", "-c:a", "pcm_s16le"]),
    ("tone.mp3", ["-ar", "44100", "-ac", "2", "-c:a", "libmp3lame", "-b:a", "128k"]),
    ("tone.flac", ["-ar", "48000", "-ac", "1", "-c:a", "flac"]),
    ("tone.opus.ogg", ["-ar", "48000", "-ac", "2", "-c:a", "libopus", "-f", "ogg"]),
    ("tone.vorbis.ogg", ["-ar", "22050", "-ac", "1", "-c:a", "libvorbis", "-f", "ogg"]),
    ("tone.m4a", ["-ar", "44100", "-ac", "2", "-c:a", "aac", "-b:a", "128k"]),
    ("tone.webm", ["-ar", "48000", "-ac", "1", "-c:a", "libopus"]),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    model = synth_whisper(tmp_path_factory.mktemp("whisper") / "synth-small.bin", *SMALL)
    with running_server("--whisper-model", model, "-t", "1",
                        env={"MMSERVE_MODEL": "", "MMSERVE_MODELS_DIR": "/nonexistent"}) as s:
        yield s


@needs_ffmpeg
@pytest.mark.parametrize("name,options", FORMATS, ids=[f[0] for f in FORMATS])
def test_ffmpeg_made_files_decode_with_their_duration(server, tmp_path, name, options):
    path = tmp_path / name
    subprocess.run([FFMPEG, "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "sine=frequency=440:sample_rate=48000:duration=3", *options, str(path)],
                   check=True, timeout=60)
    status, body = transcribe_http(server, path.read_bytes(), response_format="verbose_json")
    assert status == 200, body
    # Lossy codecs add or trim a few milliseconds of priming and padding.
    assert body["duration"] == pytest.approx(3.0, abs=0.08)
    check_verbose(body, body["duration"])


@needs_sox
@pytest.mark.parametrize("suffix", ["wav", "flac", "ogg"])
def test_sox_made_files_decode_too(server, tmp_path, suffix):
    path = tmp_path / f"tone.{suffix}"
    subprocess.run([SOX, "-n", "-r", "32000", "-c", "1", str(path), "synth", "3", "sine", "440"],
                   check=True, timeout=60)
    status, _, body = infer_speech(server, path.read_bytes())
    assert status == 200, body
    assert body["duration"] == pytest.approx(3.0, abs=0.08)


@needs_ffmpeg
def test_a_video_without_sound_is_not_audio(server, tmp_path):
    path = tmp_path / "silent.webm"
    subprocess.run([FFMPEG, "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "color=c=red:s=32x32:d=1", "-c:v", "libvpx", str(path)], check=True,
                   timeout=60)
    status, body = transcribe_http(server, path.read_bytes())
    assert status == 400
    assert "no audio stream" in body["error"]["message"]
