"""The built-in web page (web/, compiled into the binary, served at /) end to end: its files and
headers from the server, its Markdown renderer in Node, and the page itself in Debian's chromium
(headless, driven by the pinned playwright-core) against a real server with a key, the synthetic
VLM and the synthetic whisper model: a chat streams and stops, an image gets an answer, jfk.wav
gets a transcript and an SRT download, a wrong key shows a clear message. Every view is
screenshotted at desktop and phone width into the test's directory, and into docs/screenshots/
with MMSERVE_UPDATE_SCREENSHOTS=1."""
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from conftest import BIN, running_server
from speech_support import JFK, multipart, parse_srt, parse_vtt, synth_whisper
from vision_support import PHOTO, SMALL, synth_vlm

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
UI_DIR = Path(__file__).parent / "web_ui"
DOCS_SHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
KEY = "web-ui-test-key"


def node_tools():
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("needs node and npm (scripts/deps.sh installs them)")


def installed_driver():
    """Installs the pinned playwright-core (npm ci) once into the cache, keyed by the lock file."""
    node_tools()
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    lock = (UI_DIR / "package-lock.json").read_bytes()
    cache = Path(os.environ.get("MMSERVE_CACHE", Path.home() / ".cache/mmserve"))
    target = cache / f"web-ui-{hashlib.sha256(lock).hexdigest()[:12]}"
    if not (target / "node_modules" / "playwright-core").exists():
        target.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(UI_DIR / name, target / name)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=target, check=True,
                       timeout=300)
    shutil.copy(UI_DIR / "drive.mjs", target / "drive.mjs")
    return target


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    model, mmproj = synth_vlm(d / "vlm", *SMALL)
    whisper = synth_whisper(d / "whisper.bin")
    with running_server("-m", model, "--mmproj", mmproj, "--whisper-model", whisper, "-t", "2",
                        "--parallel", "2", "--api-key", KEY) as s:
        # Its log lines go nowhere, so that a full pipe never blocks the server.
        threading.Thread(target=lambda: [None for _ in s.proc.stderr], daemon=True).start()
        yield s


def auth():
    return {"Authorization": f"Bearer {KEY}"}


def test_the_page_and_its_files_come_from_the_binary_without_a_key(server):
    status, headers, page = server.get("/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "http" not in csp and "*" not in csp  # no remote origin of any kind
    assert headers["X-Content-Type-Options"] == "nosniff"
    # every file the page names is served, with its type; every file of web/ is embedded
    referenced = set(re.findall(r'(?:src|href)="(/ui/[^"]+)"', page))
    assert {"/ui/app.js", "/ui/style.css"} <= referenced
    types = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
             ".html": "text/html; charset=utf-8"}
    for source in sorted(WEB.iterdir()):
        status, headers, body = server.get(f"/ui/{source.name}")
        assert status == 200, source.name
        assert headers["Content-Type"] == types[source.suffix]
        assert body == source.read_text(), f"{source.name}: the binary serves an older copy"
        etag = headers["ETag"]
        assert etag == '"' + hashlib.sha256(source.read_bytes()).hexdigest()[:20] + '"'
        assert server.get(f"/ui/{source.name}", headers={"If-None-Match": etag})[0] == 304
        # nothing is fetched from elsewhere: no remote script, style, font, image or import
        text = source.read_text()
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|"""
                             r"""import[^;]*from\s*["'](https?:)?//|@import""", text), source.name
    # a path that only the route's regex would match is not a file
    assert server.get("/ui/appxjs")[0] == 404
    assert server.get("/ui/nothing.js")[0] == 404
    # the page is public, the API it calls is not
    assert server.get("/v1/models")[0] == 401
    assert server.get("/v1/models", headers=auth())[0] == 200


def test_the_markdown_renderer_escapes_everything_first(tmp_path):
    node_tools()
    shutil.copy(WEB / "markdown.js", tmp_path / "markdown.mjs")  # ESM by name: web/ has no package.json
    proc = subprocess.run(["node", str(UI_DIR / "markdown_check.mjs"), str(tmp_path / "markdown.mjs")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def server_transcript(server, fmt):
    body, ctype = multipart({"model": "whisper", "response_format": fmt},
                            {"file": ("jfk.wav", JFK.read_bytes())})
    status, _, payload = server.post("/v1/audio/transcriptions", body,
                                     headers={"Content-Type": ctype, **auth()}, timeout=180)
    assert status == 200, payload
    return payload


def sse_text(sse):
    """The content deltas of a chat completion stream, joined."""
    text = ""
    for line in sse.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            for choice in json.loads(line[6:]).get("choices", []):
                text += choice.get("delta", {}).get("content") or ""
    return text


@pytest.mark.skipif(not PHOTO.exists() or not JFK.exists(), reason=f"needs {PHOTO} and {JFK}")
def test_the_page_in_a_real_browser(server, tmp_path):
    driver = installed_driver()
    config = {"url": server.url, "key": KEY, "image": str(PHOTO), "audio": str(JFK),
              "out": str(tmp_path), "chromium": CHROMIUM}
    proc = subprocess.run(["node", "drive.mjs", json.dumps(config)], cwd=driver,
                          capture_output=True, text=True, timeout=280)  # under CTest's 300 s
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = json.loads(proc.stdout)
    assert got["steps"] == ["key", "keyboard", "chat", "reasoning", "describe", "transcribe",
                            "microphone", "status", "phone", "zh"]

    # a missing and a wrong key: a message that says what to do, in the browser's language
    for message in (got["no_key_message"], got["wrong_key_message"]):
        assert "refused the API key" in message and "“API key” button" in message, message
    assert got["zh_tabs"] == ["对话", "看图", "转写", "状态"] and got["zh_lang"] == "zh-CN"
    assert "API 密钥" in got["zh_key_message"]

    # chat: streamed, stopped (and the server let the sequence go), then one to the end
    assert got["chat_models"] == ["synth-vlm"]
    assert got["stopped_note"] == "stopped" and got["stopped_chars"] > 0
    assert got["running_after_stop"] == 0
    assert re.fullmatch(r"12 tokens, [\d.]+ tokens/s · finish: length", got["finished_note"])
    assert got["messages_after_reload"] == 4 and got["history_items"] == 1
    # reasoning folded, code blocks, and model output that holds markup stays text
    assert got["reasoning_folded"] and got["reasoning_text"] == "The user wants code. A loop will do."
    assert got["code_block"] == "for i in range(3):\n    print(i)"
    assert got["script_elements"] == 0 and got["pwned"] is False and got["strong"] == "Python"

    # describe: the page sent the photo itself, and what it showed is the model's answer
    request = got["describe_request"]
    parts = request["messages"][0]["content"]
    assert parts[0]["image_url"]["url"] == ("data:image/jpeg;base64," +
                                            base64.b64encode(PHOTO.read_bytes()).decode())
    assert parts[1] == {"type": "text", "text": "What is in this picture?"}
    assert request["stream"] is True and request["temperature"] == 0 and request["max_tokens"] == 16
    replay = {k: v for k, v in request.items() if k not in ("stream", "stream_options")}
    status, _, answer = server.post("/v1/chat/completions", replay, headers=auth(), timeout=180)
    assert status == 200, answer
    expected = answer["choices"][0]["message"]["content"]
    assert sse_text(got["describe_sse"]) == expected  # deterministic at temperature 0
    # and the page shows it (rendered as Markdown: markup characters become formatting)
    plain = lambda t: re.sub(r"[\s*_`#>~-]", "", t)  # noqa: E731
    assert plain(got["describe_answer"]) == plain(expected) != ""
    assert re.match(r"16 tokens, [\d.]+ tokens/s · finish: length", got["describe_stats"])

    # transcribe: progress shown, segments with timestamps, and downloads identical to what the
    # server itself writes for the same file
    progress = got["transcribe_progress"]
    assert any(p.startswith("Uploading…") for p in progress), progress
    assert any(p.startswith("Transcribing…") for p in progress), progress
    assert got["transcribe_state"] == "done" and got["segment_rows"]
    for start, end, text in got["segment_rows"]:
        assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}", start) and re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}", end)
    srt = Path(got["download_srt"]).read_text()
    assert got["download_srt_name"] == "jfk.srt"
    assert srt == server_transcript(server, "srt")
    assert parse_srt(srt)
    vtt = Path(got["download_vtt"]).read_text()
    assert vtt == server_transcript(server, "vtt") and parse_vtt(vtt)
    assert Path(got["download_txt"]).read_text() == server_transcript(server, "text")

    # the microphone (chromium's fake device): recorded with MediaRecorder, transcribed
    assert got["recording_name"].startswith("Recording (") and got["recording_state"] == "done", got

    # status: live figures while an answer streams
    assert got["status_running"]["running"] == "1", got["status_running"]
    live = got["status_live"]
    assert live["state"] == "ready" and float(live["tokens"]) > 0, live
    assert re.fullmatch(r"[\d.]+ (MiB|GiB)", live["memory"]), live
    names = [row[0] for row in got["status_models"]]
    assert names == ["synth-vlm", "whisper"], got["status_models"]

    # phone width: nothing wider than the screen
    for view in ("chat", "describe", "transcribe", "status"):
        assert got[f"{view}_phone_overflow"] <= 0, (view, got[f"{view}_phone_overflow"])
    # the only console errors are the refused requests of the key step
    assert all("401" in e for e in got["console_errors"]), got["console_errors"]

    shots = sorted(Path(p).name for p in got["screenshots"])
    for view in ("chat", "describe", "transcribe", "status"):
        assert f"{view}-desktop.png" in shots and f"{view}-phone.png" in shots
    if os.environ.get("MMSERVE_UPDATE_SCREENSHOTS") == "1":
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        for name in shots:
            shutil.copy(tmp_path / name, DOCS_SHOTS / name)


def test_keys_from_the_database_and_their_scopes(tmp_path):
    """A --db server (`mmserve keys`): a key chats; a speech-only key gets the 403 that names why."""
    driver = installed_driver()
    db = tmp_path / "mmserve.db"

    def new_key(name, *args):
        proc = subprocess.run([BIN, "keys", "create", name, "--db", str(db), *args, "--json"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)["key"]

    keys = {"full": new_key("web"), "speech": new_key("speech", "--tasks", "speech-transcribe")}
    model, _ = synth_vlm(tmp_path / "vlm", *SMALL)
    with running_server("-m", model, "-t", "1", "--db", db) as server:
        threading.Thread(target=lambda: [None for _ in server.proc.stderr], daemon=True).start()
        config = {"url": server.url, "keys": keys, "out": str(tmp_path), "chromium": CHROMIUM}
        proc = subprocess.run(["node", "drive.mjs", json.dumps(config)], cwd=driver,
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = json.loads(proc.stdout)
    assert got["steps"] == ["db-keys"]
    assert got["scoped_error"].startswith("This key may not do that (") and "[task]" in got["scoped_error"]
    assert got["full_key_note"].endswith("finish: length"), got
