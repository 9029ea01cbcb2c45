"""README claims about speech that no other test checked: AIFF, CAF and raw AAC decode; audio
decoding never opens a nested file or URL (HLS playlists, ffconcat scripts); the speech-transcribe
parameters `translate`, `words` and `prompt`; `--speech-threads`; and the server's `--vad-model`
(silence skipped, fewer windows)."""
import os
import socket
import subprocess
import threading
import time

import pytest

from conftest import BIN, running_server
from speech_support import (FFMPEG, JFK, SMALL, VAD, infer_speech, needs_ffmpeg, needs_jfk,
                            needs_vad, speech_like, synth_whisper, transcribe_http, wav_bytes)

NO_TEXT_MODEL = {"MMSERVE_MODEL": "", "MMSERVE_MODELS_DIR": "/nonexistent"}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return synth_whisper(tmp_path_factory.mktemp("whisper") / "synth-small.bin", *SMALL)


@pytest.fixture(scope="module")
def english(tmp_path_factory):
    return synth_whisper(tmp_path_factory.mktemp("whisper-en") / "synth-en.bin", *SMALL,
                         "--english")


@pytest.fixture(scope="module")
def server(model):
    with running_server("--whisper-model", model, "-t", "1", env=NO_TEXT_MODEL) as s:
        yield s


def tone_file(path, *options):
    subprocess.run([FFMPEG, "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "sine=frequency=440:sample_rate=48000:duration=3", *options, str(path)],
                   check=True, timeout=60)
    return path.read_bytes()


@needs_ffmpeg
@pytest.mark.parametrize("name,options", [
    ("tone.aiff", ["-c:a", "pcm_s16be"]),
    ("tone.caf", ["-c:a", "pcm_s16le"]),
    ("tone.aac", ["-c:a", "aac", "-f", "adts"]),
], ids=["aiff", "caf", "raw-aac"])
def test_aiff_caf_and_raw_aac_decode(server, tmp_path, name, options):
    status, _, body = infer_speech(server, tone_file(tmp_path / name, *options))
    assert status == 200, body
    assert body["duration"] == pytest.approx(3.0, abs=0.08)


class Listener:
    """A TCP port that records whether anything connected to it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
                self.connections += 1
                conn.close()
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.thread.join()
        self.sock.close()


@needs_jfk
def test_audio_that_names_other_files_or_urls_is_refused_without_reading_them(server,
                                                                            tmp_path):
    listener = Listener()
    try:
        url = f"http://127.0.0.1:{listener.port}/jfk.wav"
        nested = {
            "hls-url": f"#EXTM3U\n#EXT-X-TARGETDURATION:11\n#EXTINF:11.0,\n{url}\n"
                       f"#EXT-X-ENDLIST\n",
            "hls-file": f"#EXTM3U\n#EXT-X-TARGETDURATION:11\n#EXTINF:11.0,\nfile://{JFK}\n"
                        f"#EXT-X-ENDLIST\n",
            "hls-relative": f"#EXTM3U\n#EXTINF:11.0,\n{JFK}\n#EXT-X-ENDLIST\n",
            "ffconcat": f"ffconcat version 1.0\nfile '{JFK}'\n",
            "ffconcat-url": f"ffconcat version 1.0\nfile '{url}'\n",
            "playlist-m3u": f"{JFK}\n",
        }
        for name, text in nested.items():
            status, _, body = infer_speech(server, text.encode())
            assert status == 400, (name, status, body)
            assert body["error"]["param"] == "input", (name, body)
            status, body = transcribe_http(server, text.encode())
            assert status == 400, (name, status, body)
        assert listener.connections == 0
    finally:
        listener.close()


@needs_jfk
def test_words_add_word_timestamps_to_the_segments(server):
    status, _, plain = infer_speech(server, JFK.read_bytes(), language="en")
    assert status == 200 and "segments" not in plain, plain
    status, _, body = infer_speech(server, JFK.read_bytes(), language="en", words=True)
    assert status == 200, body
    segments = body["segments"]  # words implies timestamps
    assert segments and all("words" in s for s in segments), segments
    words = [w for s in segments for w in s["words"]]
    assert words and all({"word", "start", "end", "probability"} <= set(w) for w in words)
    assert all(0 <= w["start"] <= w["end"] <= body["duration"] + 0.01 for w in words)
    assert "".join(w["word"] for w in words).strip() == body["output"].strip()
    status, _, body = infer_speech(server, JFK.read_bytes(), language="en", timestamps=True)
    assert status == 200 and all("words" not in s for s in body["segments"]), body


@needs_jfk
def test_translate_is_a_translation_task_and_needs_a_multilingual_model(server, english):
    status, body = transcribe_http(server, JFK.read_bytes(), path="/v1/audio/translations",
                                   response_format="verbose_json")
    assert status == 200 and body["task"] == "translate", body
    status, body = transcribe_http(server, JFK.read_bytes(), language="de",
                                   response_format="verbose_json")
    assert status == 200 and body["task"] == "transcribe", body
    status, _, body = infer_speech(server, JFK.read_bytes(), language="de", translate=True)
    assert status == 200, body
    with running_server("--whisper-model", english, "-t", "1", env=NO_TEXT_MODEL) as en:
        status, _, body = infer_speech(en, JFK.read_bytes(), translate=True)
        assert status == 400 and body["error"]["param"] == "parameters.translate", body
        assert "English-only" in body["error"]["message"]


@needs_jfk
def test_prompt_conditions_the_first_window(server):
    """The prompt's tokens precede the first window's decode: a prompt changes what the
    (synthetic, so suggestible) model writes, and the same prompt gives the same text."""
    audio = JFK.read_bytes()
    status, _, plain = infer_speech(server, audio, language="en")
    assert status == 200, plain
    outputs = set()
    for prompt in ("Ask not what your country can do for you.", "Zebra quantum 1234 xylophone",
                   "Ich bin ein Berliner."):
        status, _, a = infer_speech(server, audio, language="en", prompt=prompt)
        status2, _, b = infer_speech(server, audio, language="en", prompt=prompt)
        assert status == status2 == 200, (a, b)
        assert a["output"] == b["output"]
        outputs.add(a["output"])
    assert outputs != {plain["output"]}, "no prompt changed the transcript"


@needs_vad
def test_the_vad_model_skips_silence(model):
    """35 s of silence, then speech: without VAD two 30-second windows are transcribed; with
    --vad-model the silence is skipped and the speech fits one."""
    audio = wav_bytes([0.0] * (35 * 16000) + speech_like(8))
    with running_server("--whisper-model", model, "-t", "1", env=NO_TEXT_MODEL) as plain:
        status, _, without = infer_speech(plain, audio, language="en", timestamps=True)
        assert status == 200, without
    with running_server("--whisper-model", model, "--vad-model", VAD, "-t", "1",
                        env=NO_TEXT_MODEL) as vad:
        status, _, body = infer_speech(vad, audio, language="en", timestamps=True)
        assert status == 200, body
    assert without["timings"]["windows"] >= 2, without["timings"]
    assert body["timings"]["windows"] == 1, body["timings"]
    assert body["duration"] == pytest.approx(43, abs=0.1)


def test_speech_threads_must_be_a_count_and_vad_needs_a_speech_model(model, tmp_path):
    """--speech-threads and --speech-window-threads are checked as the other counts; --vad-model alone is refused; both
    are bad arguments: exit 2."""
    for value in ("-1", "x"):
        proc = subprocess.run([BIN, "serve", "--port", "0", "--whisper-model", str(model),
                               "--speech-threads", value], capture_output=True, text=True,
                              timeout=30, env={**os.environ, **NO_TEXT_MODEL})
        assert proc.returncode == 2 and "--speech-threads" in proc.stderr, proc.stderr
    for value in ("0", "x"):
        proc = subprocess.run([BIN, "serve", "--port", "0", "--whisper-model", str(model),
                               "--speech-window-threads", value], capture_output=True, text=True,
                              timeout=30, env={**os.environ, **NO_TEXT_MODEL})
        assert proc.returncode == 2 and "--speech-window-threads" in proc.stderr, proc.stderr
    proc = subprocess.run([BIN, "serve", "--port", "0", "--vad-model", str(model)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "--vad-model needs --whisper-model" in proc.stderr, \
        proc.stderr


def threads_of(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def settled_threads(pid, still_s=0.3, timeout_s=10):
    """The process's thread count once it has not changed for `still_s`."""
    deadline = time.monotonic() + timeout_s
    count, since = threads_of(pid), time.monotonic()
    while time.monotonic() - since < still_s:
        assert time.monotonic() < deadline, "the thread count never settled"
        time.sleep(0.01)
        now = threads_of(pid)
        if now != count:
            count, since = now, time.monotonic()
    return count


@needs_jfk
def test_speech_threads_sets_the_threads_a_window_runs_on(model):
    """A window runs on a thread of its own, and ggml's CPU backend adds an OpenMP team of the
    window's threads less that one, both gone when the window ends. So while JFK is transcribed
    the process has one thread more with --speech-threads 1 and three more with 3 (the most seen,
    sampling /proc as it runs), and none more once it is done."""
    extra = {}
    for count in (1, 3):
        with running_server("--whisper-model", model, "-t", "4", "--speech-threads", str(count),
                            env=NO_TEXT_MODEL) as server:
            if "libgomp" not in open(f"/proc/{server.proc.pid}/maps").read():
                pytest.skip("this build's ggml does not use OpenMP: its threads leave no trace")
            # A first transcription starts whatever the server starts lazily.
            assert infer_speech(server, JFK.read_bytes(), language="en")[0] == 200
            before = settled_threads(server.proc.pid)
            most, done = [before], threading.Event()

            def sample():
                while not done.is_set():
                    most[0] = max(most[0], threads_of(server.proc.pid))
                    time.sleep(0.001)
            sampler = threading.Thread(target=sample)
            sampler.start()
            try:
                status, _, body = infer_speech(server, JFK.read_bytes(), language="en")
            finally:
                done.set()
                sampler.join()
            assert status == 200, body
            extra[count] = most[0] - before
            assert settled_threads(server.proc.pid) == before  # the window's threads are gone
    assert extra == {1: 1, 3: 3}, extra


@needs_jfk
def test_no_speech_fallback_is_a_serve_flag_that_still_transcribes(model):
    """`serve --no-speech-fallback` (whisper-server's --no-fallback) is documented and serves;
    that it turns the fallback off for temperature 0 is checked in the scheduler's unit test
    (SpeechScheduler.FallbackIsForTemperatureZeroAndCanBeTurnedOff)."""
    help_text = subprocess.run([BIN, "serve", "--help"], capture_output=True, text=True, timeout=30)
    assert "--no-speech-fallback" in help_text.stdout + help_text.stderr
    outputs = []
    for extra in ([], ["--no-speech-fallback"]):
        with running_server("--whisper-model", model, "-t", "1", *extra, env=NO_TEXT_MODEL) as server:
            status, _, body = infer_speech(server, JFK.read_bytes(), language="en")
            assert status == 200, body
            outputs.append(body["output"])
    # On this clip the synthetic model gives the same text either way (measured, deterministic).
    assert outputs[0] == outputs[1] and outputs[0], outputs
