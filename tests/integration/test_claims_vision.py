"""README: "images share the continuous batch with text ... at most one unit runs after each text
step, so running streams keep getting a token every step ... while images are processed."

Counted, not timed: text streams long enough to outlast the images must receive pieces while
the images are being worked on, about one per image unit (two units per image). A scheduler that
ran the images' units back to back would leave the streams silent meanwhile."""
import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import running_server
from vision_support import FFMPEG, PHOTO, caption_body, data_url, source_picture, synth_vlm

IMAGES = 4
STREAMS = 2


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    if FFMPEG is None and not PHOTO.exists():
        pytest.skip("needs ffmpeg or ../shared/media/test-1.jpeg to have a picture")
    picture = source_picture(tmp_path_factory.mktemp("picture"))
    return synth_vlm(tmp_path_factory.mktemp("vlm")), picture


def timed_stream(server, prompt, times, started):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
    conn.request("POST", "/v1/inference", body=json.dumps({
        "input": prompt, "task": "text-gen", "stream": True,
        "parameters": {"max_tokens": 1500, "ignore_eos": True, "temperature": 0}}),
        headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    for raw in resp:
        line = raw.decode("utf-8")
        if line.startswith("data: {") and json.loads(line[6:]).get("output"):
            times.append(time.monotonic())
            started.set()
    conn.close()


def test_streams_keep_getting_tokens_while_images_are_processed(setup):
    (model, mmproj), picture = setup
    image = data_url(picture, "image/jpeg" if picture.suffix == ".jpeg" else "image/png")
    with running_server("-m", model, "--mmproj", mmproj, "--threads", 1, "--parallel",
                        STREAMS + IMAGES, "--ctx-size", 8192) as server:
        times = [[] for _ in range(STREAMS)]
        started = [threading.Event() for _ in range(STREAMS)]
        with ThreadPoolExecutor(max_workers=STREAMS + IMAGES) as pool:
            streams = [pool.submit(timed_stream, server, f"Story {i}:", times[i], started[i])
                       for i in range(STREAMS)]
            for event in started:
                assert event.wait(120), "a text stream never started"
            t0 = time.monotonic()
            images = [pool.submit(server.post, "/v1/inference", caption_body(image, max_tokens=1),
                                  timeout=300) for _ in range(IMAGES)]
            results = [f.result() for f in images]
            t1 = time.monotonic()
            for f in streams:
                f.result()
    for status, _, body in results:
        assert status == 200, body
    for i, stream_times in enumerate(times):
        assert stream_times[-1] > t1, f"stream {i} ended before the images did: lengthen it"
        during = sum(1 for t in stream_times if t0 < t < t1)
        # Two units per image, at most one unit between two text steps: a piece per unit, give
        # or take the first and last.
        assert during >= 2 * IMAGES - 2, (i, during, t1 - t0)
