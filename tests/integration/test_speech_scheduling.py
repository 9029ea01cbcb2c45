"""Concurrency of speech requests on a real server with the synthetic Whisper-tiny-shaped model.

The orderings asserted here are what the scheduler guarantees, not timings: with one whisper
state, a 2-second request that arrives while a 60-second one runs gets the state as soon as the
long request's current window ends, so it finishes before the long request's next window does;
with two states and a thread for each, two requests run at the same time; with the default of
two threads per window, two threads run one window at a time."""
import threading
import time

import pytest
from conftest import STORIES, needs_stories, running_server
from prometheus_text import scrape
from speech_support import JFK, SMALL, infer_speech, needs_jfk, speech_like, synth_whisper, wav_bytes

pytestmark = needs_jfk
ENV = {"MMSERVE_MODEL": "", "MMSERVE_MODELS_DIR": "/nonexistent"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return synth_whisper(tmp_path_factory.mktemp("whisper") / "synth-tiny.bin")


def speech_health(server):
    return server.get("/health")[2]["speech"]


def wait_until(predicate, what, limit=120):
    deadline = time.monotonic() + limit  # only so that a bug fails instead of hanging
    while not predicate():
        assert time.monotonic() < deadline, f"never saw: {what}"
        time.sleep(0.01)


def test_a_short_request_finishes_before_a_long_one_that_started_first(tiny):
    long_audio = wav_bytes(speech_like(60.0))  # two or three windows (cut at quiet points)
    short_audio = wav_bytes(speech_like(2.0))
    with running_server("--whisper-model", tiny, "-t", "2", "--speech-parallel", "1",
                        env=ENV) as server:
        finished = []
        results = {}

        def send(name, audio):
            results[name] = infer_speech(server, audio, language="en", timeout=300)
            finished.append(name)

        long_thread = threading.Thread(target=send, args=("long", long_audio))
        long_thread.start()
        wait_until(lambda: speech_health(server)["running"] == 1, "the long request running")
        assert not finished
        send("short", short_audio)  # blocks until the short one is answered
        assert finished == ["short"], "the short request waited for the whole long one"
        long_thread.join()
        assert finished == ["short", "long"]
        for name, windows in (("short", 1), ("long", 2)):
            status, _, body = results[name]
            assert status == 200, body
            assert body["timings"]["windows"] >= windows
        assert results["long"][2]["duration"] == pytest.approx(60.0, abs=0.01)


def test_two_states_serve_two_requests_at_the_same_time(tiny):
    audio = wav_bytes(speech_like(45.0))  # two windows each
    # One thread per window at least: two windows may run beside each other on two threads.
    with running_server("--whisper-model", tiny, "-t", "2", "--speech-parallel", "2",
                        "--speech-window-threads", "1", env=ENV) as server:
        peak = {"running": 0}
        threads = [threading.Thread(target=infer_speech, args=(server, audio),
                                    kwargs={"language": "en", "timeout": 300})
                   for _ in range(2)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            peak["running"] = max(peak["running"], speech_health(server)["running"])
            time.sleep(0.01)
        assert peak["running"] == 2
        health = speech_health(server)
        assert health["windows"] == 4 and health["active"] == 0


def test_concurrent_requests_get_the_same_answers_as_one_at_a_time(tiny):
    clips = [wav_bytes(speech_like(s)) for s in (3.0, 5.0, 8.0)]
    with running_server("--whisper-model", tiny, "-t", "1", "--speech-parallel", "3",
                        env=ENV) as server:
        # One thread per window, alone or not: the same numbers, so the same words.
        alone = [infer_speech(server, c, language="en")[2]["output"] for c in clips]
        together = [None] * len(clips)

        def send(i):
            together[i] = infer_speech(server, clips[i], language="en", timeout=300)[2]["output"]

        threads = [threading.Thread(target=send, args=(i,)) for i in range(len(clips))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert together == alone


def test_a_burst_finishes_shortest_first_one_full_speed_window_at_a_time(tmp_path):
    small = synth_whisper(tmp_path / "synth-small.bin", *SMALL)
    with running_server("--whisper-model", small, "-t", "2", "--speech-parallel", "4",
                        env=ENV) as server:
        finished, peak = [], {"running": 0}

        def send(name, seconds):
            status, _, body = infer_speech(server, wav_bytes(speech_like(seconds)), language="en",
                                           timeout=300)
            assert status == 200, body
            finished.append(name)

        first = threading.Thread(target=send, args=("first", 40.0))
        first.start()
        wait_until(lambda: speech_health(server)["running"] == 1, "the first request running")
        burst = [threading.Thread(target=send, args=(f"{s:g}s", s)) for s in (15.0, 8.0, 3.0)]
        for t in burst:
            t.start()
        wait_until(lambda: speech_health(server)["active"] == 4, "the burst admitted")
        while any(t.is_alive() for t in [first, *burst]):
            peak["running"] = max(peak["running"], speech_health(server)["running"])
            # Not faster: each poll is a log line on the server's stderr, a pipe nobody reads
            # until it exits (a full pipe would block the server; ASan runs take long).
            time.sleep(0.25)
        # Two threads at two per window: one window at a time, whatever the states; the burst in
        # order of length, each ahead of the first request's second window (10 s left).
        assert peak["running"] == 1
        assert finished == ["3s", "8s", "first", "15s"] or finished == ["3s", "8s", "15s", "first"], finished


def engine_calls(server):
    """mmserve_engine_calls_total as {(model, threads): count}."""
    return {(d["model"], d["threads"]): v
            for d, v in scrape(server).series("mmserve_engine_calls_total")}


def moved(before, after):
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


@needs_stories
def test_the_process_threads_go_to_whichever_model_has_work(tiny):
    """README, CPU threads: with -t 2, a text model and a speech model, each runs with both
    threads while the other is idle, and text decode steps run with its share (one) while a
    transcription is in flight."""
    with running_server("-m", STORIES, "--whisper-model", tiny, "-t", "2", env=ENV) as server:
        before = engine_calls(server)
        status, _, body = infer_speech(server, wav_bytes(speech_like(45.0)), language="en", timeout=300)
        assert status == 200, body
        speech = moved(before, engine_calls(server))
        assert len(speech) == 1, speech  # the whisper model's windows only
        (whisper_name, threads), windows = next(iter(speech.items()))
        assert threads == "2" and windows >= 2, speech  # alone: both threads, every window

        before = engine_calls(server)
        status, _, body = server.post("/v1/inference", {"input": "Once upon a time", "task": "text-gen",
                                                        "parameters": {"max_tokens": 32}})
        assert status == 200, body
        text = moved(before, engine_calls(server))
        assert {threads for _, threads in text} == {"2"}, text  # alone: both threads
        text_name = next(iter(text))[0]
        assert text_name != whisper_name

        # Text requests back to back for as long as a recording is being transcribed (long ones:
        # each is a log line on the server's stderr, a pipe nobody reads until it exits).
        before, stop, failures = engine_calls(server), threading.Event(), []

        def text_loop():
            while not stop.is_set():
                status, _, body = server.post("/v1/inference", {
                    "input": "Once upon a time", "task": "text-gen",
                    "parameters": {"max_tokens": 400, "ignore_eos": True}})
                if status != 200:
                    failures.append(body)

        loop = threading.Thread(target=text_loop)
        loop.start()
        try:
            status, _, body = infer_speech(server, wav_bytes(speech_like(45.0)), language="en",
                                           timeout=300)
        finally:
            stop.set()
            loop.join()
        assert status == 200, body
        assert not failures, failures[:1]
        both = moved(before, engine_calls(server))
        # Steps decoded while the transcription was in flight ran on text's share.
        assert both.get((text_name, "1"), 0) > 0, both
        assert sum(v for (m, _), v in both.items() if m == whisper_name) >= 2, both
