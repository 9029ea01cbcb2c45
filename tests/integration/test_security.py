"""API keys in the database, scopes, quotas, the audit log, TLS and CORS, through a real server.

Every route the server has is tried without a key (the server lists them: `serve --list-routes`),
so a route added later is covered without editing this file."""
import concurrent.futures
import http.client
import json
import os
import re
import signal
import select
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import BIN, STORIES, Server, needs_stories, running_server, start_server

pytestmark = needs_stories

TEXT = {"input": "Once", "task": "text-gen", "parameters": {"max_tokens": 1}}


def keys(db, *args, check=True):
    proc = subprocess.run([BIN, "keys", *map(str, args), "--db", str(db)], capture_output=True,
                          text=True, timeout=60)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def new_key(db, name, *args):
    """Creates a key; returns (secret, id)."""
    out = json.loads(keys(db, "create", name, *args, "--json").stdout)
    assert out["key"].startswith(out["id"] + "_"), out
    return out["key"], out["id"]


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def audit_rows(db, *args):
    proc = subprocess.run([BIN, "audit", "--db", str(db), "--format", "json", *map(str, args)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def list_routes(*args):
    proc = subprocess.run([BIN, "serve", "-m", STORIES, "--list-routes", *map(str, args)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def sample(pattern):
    """A path the route answers: its regex captures replaced by a value."""
    return re.sub(r"\([^)]*\)", "x", pattern)


def drain(server):
    """Reads the server's stderr in the background, so its log lines never fill the pipe."""
    lines = []
    threading.Thread(target=lambda: lines.extend(server.proc.stderr), daemon=True).start()
    return lines


def test_every_route_refuses_a_missing_or_wrong_key_in_openais_shape(tmp_path):
    db = tmp_path / "mmserve.db"
    user, _ = new_key(db, "user")
    admin, _ = new_key(db, "ops", "--admin")
    routes = list_routes("--db", db)
    public = {(r["method"], r["pattern"]) for r in routes if r["access"] == "public"}
    # Only the probes, the scrape and the built-in page's files (which hold no data) are open;
    # anything else new must take a key.
    page = {(m, p) for m, p in public if p == "/" or p.startswith("/ui/")}
    assert ("GET", "/") in page and ("GET", "/ui/app.js") in page and {m for m, _ in page} == {"GET"}
    assert public - page == {("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics")}, routes
    assert {r["access"] for r in routes} == {"public", "key", "admin"}
    assert len(routes) >= 12, routes
    with running_server("-m", STORIES, "--db", db) as server:
        drain(server)
        for r in routes:
            path = sample(r["pattern"])
            body = None if r["method"] == "GET" else {}
            if r["access"] == "public":
                assert server.request(r["method"], path, body)[0] in (200, 503), r
                continue
            for headers in ({}, bearer("wrong"), bearer(user + "x"), bearer("mms_abcdefgh_" + "a" * 32)):
                status, _, answer = server.request(r["method"], path, body, headers=headers)
                assert status == 401, (r, headers, status, answer)
                err = answer["error"]
                assert err["type"] == "authentication_error" and err["code"] == 401 and err["message"]
                assert "param" in err
            status, _, answer = server.request(r["method"], path, body, headers=bearer(user))
            if r["access"] == "admin":
                assert status == 403 and answer["error"]["type"] == "permission_error", (r, answer)
                assert server.request(r["method"], path, body, headers=bearer(admin))[0] not in (401, 403), r
            else:
                assert status not in (401, 403), (r, status, answer)


def test_revoked_and_rotated_keys_are_refused_by_the_running_server(tmp_path):
    db = tmp_path / "mmserve.db"
    a, a_id = new_key(db, "team-a")
    b, _ = new_key(db, "team-b")
    with running_server("-m", STORIES, "--db", db) as server:
        drain(server)
        assert server.post("/v1/inference", TEXT, headers=bearer(a))[0] == 200
        keys(db, "revoke", "team-a")
        status, _, body = server.post("/v1/inference", TEXT, headers=bearer(a))
        assert status == 401 and "revoked" in body["error"]["message"], body
        assert server.post("/v1/inference", TEXT, headers=bearer(b))[0] == 200
        rotated = json.loads(keys(db, "rotate", "team-b", "--json").stdout)["key"]
        assert rotated != b
        assert server.post("/v1/inference", TEXT, headers=bearer(b))[0] == 401
        assert server.post("/v1/inference", TEXT, headers=bearer(rotated))[0] == 200
    # The secrets are nowhere in the database; the ids are.
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("mmserve.db*"))
    assert a.encode() not in raw and rotated.encode() not in raw and a_id.encode() in raw


def test_scopes_limit_tasks_models_and_endpoints(tmp_path):
    db = tmp_path / "mmserve.db"
    chat_only, _ = new_key(db, "chat", "--endpoints", "/v1/chat/completions")
    speech_only, _ = new_key(db, "speech", "--tasks", "speech-transcribe")
    other_model, _ = new_key(db, "other", "--models", "some-other-model")
    with running_server("-m", STORIES, "--db", db) as server:
        drain(server)
        chat = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
        assert server.post("/v1/chat/completions", chat, headers=bearer(chat_only))[0] == 200
        status, _, body = server.post("/v1/inference", TEXT, headers=bearer(chat_only))
        assert status == 403 and "/v1/inference" in body["error"]["message"], body
        status, _, body = server.post("/v1/inference", TEXT, headers=bearer(speech_only))
        assert status == 403 and body["error"]["param"] == "task", body
        status, _, body = server.post("/v1/chat/completions", chat, headers=bearer(other_model))
        assert status == 403 and body["error"]["param"] == "model", body


def run_clients(server, keys_for_clients, requests_each):
    """Each client sends `requests_each` /v1/inference calls with its key; (status, headers) each."""
    def client(key):
        out = []
        for _ in range(requests_each):
            status, headers, body = server.post("/v1/inference", TEXT, headers=bearer(key))
            out.append((key, status, headers, body))
        return out
    with concurrent.futures.ThreadPoolExecutor(len(keys_for_clients)) as pool:
        return [r for rs in pool.map(client, keys_for_clients) for r in rs]


def test_requests_per_minute_are_exact_under_16_clients_on_4_keys_and_survive_a_restart(tmp_path):
    db = tmp_path / "mmserve.db"
    limits = {f"team-{i}": 5 + 3 * i for i in range(4)}  # 5, 8, 11, 14 per minute
    secrets = {name: new_key(db, name, "--rpm", rpm)[0] for name, rpm in limits.items()}
    clients = [secrets[name] for name in limits for _ in range(4)]  # 4 clients per key
    with running_server("-m", STORIES, "--db", db, "--parallel", "4") as server:
        drain(server)
        results = run_clients(server, clients, 5)  # 20 calls per key
    for name, rpm in limits.items():
        mine = [r for r in results if r[0] == secrets[name]]
        ok = [r for r in mine if r[1] == 200]
        limited = [r for r in mine if r[1] == 429]
        assert len(ok) == rpm and len(limited) == 20 - rpm, (name, [r[1] for r in mine])
        for _, _, headers, _ in ok:
            assert headers["x-ratelimit-limit-requests"] == str(rpm)
            assert 0 <= int(headers["x-ratelimit-remaining-requests"]) < rpm
            assert re.fullmatch(r"(\d+m)?\d+s|\d+ms", headers["x-ratelimit-reset-requests"])
        assert sorted(int(h["x-ratelimit-remaining-requests"]) for _, _, h, _ in ok) == list(range(rpm))
        for _, _, headers, body in limited:
            assert body["error"]["type"] == "rate_limit_exceeded", body
            assert int(headers["Retry-After"]) >= 1
            assert headers["x-ratelimit-remaining-requests"] == "0"
    # Every call has its audit row, refused ones included.
    rows = audit_rows(db)
    for name, rpm in limits.items():
        key_id = "_".join(secrets[name].split("_")[:2])  # mms_xxxxxxxx: the public part
        mine = [r for r in rows if r["key"] == key_id]
        assert len(mine) == 20 and sum(r["status"] == 200 for r in mine) == rpm, (name, mine[:3])
    # A restart within the minute: the used requests are still used.
    with running_server("-m", STORIES, "--db", db) as server:
        drain(server)
        status, headers, body = server.post("/v1/inference", TEXT, headers=bearer(secrets["team-0"]))
        assert status == 429 and body["error"]["type"] == "rate_limit_exceeded", body


def test_tokens_per_minute_and_concurrent_requests(tmp_path):
    db = tmp_path / "mmserve.db"
    tokens, _ = new_key(db, "tokens", "--tpm", 30)
    single, _ = new_key(db, "single", "--concurrency", 1)
    with running_server("-m", STORIES, "--db", db) as server:
        drain(server)
        long = {"input": "Once", "task": "text-gen", "parameters": {"max_tokens": 40, "ignore_eos": True}}
        status, headers, body = server.post("/v1/inference", long, headers=bearer(tokens))
        assert status == 200 and headers["x-ratelimit-limit-tokens"] == "30", body
        assert headers["x-ratelimit-remaining-tokens"] == "30"  # charged when it ends
        status, headers, body = server.post("/v1/inference", long, headers=bearer(tokens))
        assert status == 429 and "tokens per minute" in body["error"]["message"], body
        assert headers["x-ratelimit-remaining-tokens"] == "0" and int(headers["Retry-After"]) >= 50
        # A call whose body is still coming holds the key's only slot (admission comes before
        # the body is read); a second call is refused until the first is gone.
        def open_partial_call():
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(b"POST /v1/inference HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Authorization: Bearer " + single.encode() + b"\r\nContent-Length: 500\r\n\r\n{")
            return sock

        sock = open_partial_call()
        deadline = time.time() + 30
        while True:  # until the server has admitted the first (a loaded machine takes a while)
            time.sleep(0.05)
            status, _, body = server.post("/v1/inference", TEXT, headers=bearer(single))
            if status == 429:
                break
            assert status == 200 and time.time() < deadline, body
            if select.select([sock], [], [], 0)[0]:
                # Its headers arrived while our probe held the slot, so it was answered (429):
                # that is the limit working; start the held call again.
                sock.close()
                sock = open_partial_call()
        assert "concurrent" in body["error"]["message"], body
        sock.close()
        deadline = time.time() + 30
        while server.post("/v1/inference", TEXT, headers=bearer(single))[0] != 200:
            assert time.time() < deadline, "the slot never came back"
            time.sleep(0.05)


def test_audit_rows_for_every_request_and_usage_per_key(tmp_path):
    db = tmp_path / "mmserve.db"
    user, user_id = new_key(db, "user")
    admin, admin_id = new_key(db, "ops", "--admin")
    secret_prompt = "Zebra-7341 quarterly figures"
    with running_server("-m", STORIES, "--db", db) as server:
        drain(server)
        sent = []
        for path, body, headers in [
                ("/v1/inference", {**TEXT, "input": secret_prompt}, bearer(user)),
                ("/v1/inference", TEXT, {}),
                ("/v1/inference", {"task": "nope"}, bearer(user)),
                ("/v1/no-such-route", {}, bearer(user)),
                ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}, bearer(admin))]:
            status, h, _ = server.post(path, body, headers=headers)
            sent.append((h["X-Request-Id"], status))
        status, _, usage = server.get("/v1/usage", headers=bearer(user))
        assert status == 200 and [k["key"] for k in usage["keys"]] == [user_id], usage
        mine = usage["keys"][0]
        assert mine["requests"] == 3 and mine["refused"] == 2 and mine["name"] == "user", mine
        assert mine["completion_tokens"] == 1 and mine["prompt_tokens"] >= 1
        assert server.get(f"/v1/usage?key={admin_id}", headers=bearer(user))[0] == 403
        status, _, everyone = server.get("/v1/usage", headers=bearer(admin))
        assert {user_id, admin_id} <= {k["key"] for k in everyone["keys"]}, everyone
        assert server.get("/v1/usage?start_time=abc", headers=bearer(user))[2]["error"]["param"] == "start_time"
    rows = {r["request_id"]: r for r in audit_rows(db)}
    for request_id, status in sent:
        assert rows[request_id]["status"] == status, (request_id, rows.get(request_id))
    first = rows[sent[0][0]]
    assert first["key"] == user_id and first["path"] == "/v1/inference" and first["task"] == "text-gen"
    assert first["model"] and first["route"] == "local" and first["completion_tokens"] == 1
    assert first["client"] == "127.0.0.1" and first["duration_ms"] > 0
    assert rows[sent[1][0]]["key"] == "anonymous" and rows[sent[1][0]]["error_type"] == "authentication_error"
    # Never content: the prompt is nowhere in the database.
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("mmserve.db*"))
    assert secret_prompt.encode() not in raw
    csv = subprocess.run([BIN, "audit", "--db", db, "--key", "user"], capture_output=True, text=True)
    assert csv.returncode == 0 and csv.stdout.splitlines()[0].startswith("time,request_id,key")
    assert len(csv.stdout.splitlines()) == 1 + 3 + 3  # and its three GET /v1/usage


def test_sigkill_under_load_loses_no_row_of_a_completed_request(tmp_path):
    db = tmp_path / "mmserve.db"
    user, _ = new_key(db, "load")
    server = start_server("-m", STORIES, "--db", db, "--parallel", "4")
    drain(server)
    completed, stop = [], threading.Event()

    def client():
        while not stop.is_set():
            try:
                status, headers, _ = server.post("/v1/inference", TEXT, headers=bearer(user), timeout=10)
            except (OSError, http.client.HTTPException):
                return
            if status == 200:
                completed.append(headers["X-Request-Id"])

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    deadline = time.time() + 60
    while len(completed) < 40 and time.time() < deadline:
        time.sleep(0.05)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(timeout=10)
    stop.set()
    for t in threads:
        t.join(timeout=15)
    assert len(completed) >= 40
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    logged = {r["request_id"] for r in audit_rows(db)}
    missing = [r for r in completed if r not in logged]
    assert not missing, f"{len(missing)} of {len(completed)} completed requests have no audit row"


def test_metrics_protection_and_the_startup_warning(tmp_path):
    db = tmp_path / "mmserve.db"
    user, _ = new_key(db, "user")
    scraper, _ = new_key(db, "prometheus", "--endpoints", "/metrics")
    routes = list_routes("--db", db, "--metrics-auth")
    assert ("GET", "/metrics", "metrics") in {(r["method"], r["pattern"], r["access"]) for r in routes}
    with running_server("-m", STORIES, "--db", db, "--metrics-auth") as server:
        drain(server)
        assert server.get("/metrics")[0] == 401
        assert server.get("/metrics", headers=bearer(user))[0] == 403
        assert server.get("/metrics", headers=bearer(scraper))[0] == 200
        assert server.get("/health")[0] == 200  # probes stay open
    # Beyond loopback without a key: said loudly; with keys: not.
    server = start_server("-m", STORIES, "--host", "0.0.0.0", ready=False)
    server.proc.send_signal(signal.SIGTERM)
    _, err = server.proc.communicate(timeout=30)
    assert "WARNING: listening on 0.0.0.0 without any API key" in err, err[-2000:]
    server = start_server("-m", STORIES, "--host", "0.0.0.0", "--db", db, ready=False)
    server.proc.send_signal(signal.SIGTERM)
    _, err = server.proc.communicate(timeout=30)
    assert "WARNING" not in err, err[-2000:]


def make_certificate(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


def test_tls_through_curl_and_the_python_sdk(tmp_path):
    cert, key = make_certificate(tmp_path)
    db = tmp_path / "mmserve.db"
    user, _ = new_key(db, "tls")
    server = start_server("-m", STORIES, "--db", db, "--tls-cert", cert, "--tls-key", key, ready=False)
    drain(server)
    try:
        url = f"https://127.0.0.1:{server.port}"
        deadline = time.time() + 60
        while True:
            ready = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", cert,
                                    url + "/ready"], capture_output=True, text=True)
            if ready.stdout == "200":
                break
            assert time.time() < deadline, ready
            time.sleep(0.1)
        out = subprocess.run(["curl", "-s", "--cacert", cert, "-H", f"Authorization: Bearer {user}",
                              url + "/v1/models"], capture_output=True, text=True, check=True)
        assert json.loads(out.stdout)["data"], out.stdout
        # Without trusting the certificate, curl refuses it; plain HTTP gets no answer.
        assert subprocess.run(["curl", "-s", url + "/v1/models"]).returncode != 0
        assert subprocess.run(["curl", "-s", "-m", "5", f"http://127.0.0.1:{server.port}/v1/models"],
                              capture_output=True).stdout == b""
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))
        from mmserve import AuthenticationFailed, ConnectionFailed, MultiModalModel
        model = MultiModalModel(mode="remote", base_url=url, api_key=user, ca_file=str(cert))
        assert model.generate("Once upon a time", max_tokens=4, temperature=0)
        with pytest.raises(AuthenticationFailed):
            MultiModalModel(mode="remote", base_url=url, api_key="wrong", ca_file=str(cert)).generate("x", max_tokens=1)
        with pytest.raises(ConnectionFailed):  # the system's authorities do not know this one
            MultiModalModel(mode="remote", base_url=url, api_key=user).generate("x", max_tokens=1)
    finally:
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=30)


def test_a_bad_certificate_is_one_clear_line_and_exit_2(tmp_path):
    bogus = tmp_path / "cert.pem"
    bogus.write_text("not a certificate")
    proc = subprocess.run([BIN, "serve", "-m", STORIES, "--port", "0", "--tls-cert", bogus, "--tls-key", bogus],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--tls-cert" in proc.stderr, proc.stderr
    proc = subprocess.run([BIN, "serve", "-m", STORIES, "--port", "0", "--tls-cert", bogus],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "go together" in proc.stderr, proc.stderr


def test_cors_allow_list(tmp_path):
    with running_server("-m", STORIES, "--cors-origin", "https://intranet.example.com") as server:
        drain(server)
        status, headers, _ = server.request("OPTIONS", "/v1/chat/completions", headers={
            "Origin": "https://intranet.example.com", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert status == 204 and headers["Access-Control-Allow-Origin"] == "https://intranet.example.com"
        assert "Authorization" in headers["Access-Control-Allow-Headers"]
        status, _, body = server.request("OPTIONS", "/v1/chat/completions", headers={"Origin": "https://evil.example"})
        assert status == 403 and body["error"]["param"] == "Origin"
        _, headers, _ = server.post("/v1/inference", TEXT, headers={"Origin": "https://intranet.example.com"})
        assert headers["Access-Control-Allow-Origin"] == "https://intranet.example.com"
        assert "X-Request-Id" in headers["Access-Control-Expose-Headers"]
        _, headers, _ = server.post("/v1/inference", TEXT, headers={"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in headers
    with running_server("-m", STORIES) as server:
        _, headers, _ = server.post("/v1/inference", TEXT, headers={"Origin": "https://intranet.example.com"})
        assert "Access-Control-Allow-Origin" not in headers


def test_audio_seconds_per_day_refuse_transcriptions_once_used(tmp_path):
    from speech_support import synth_whisper, tone, wav_bytes
    import base64
    whisper = synth_whisper(tmp_path / "synth-tiny.bin")
    db = tmp_path / "mmserve.db"
    speech, _ = new_key(db, "speech", "--audio-seconds-per-day", 3)
    audio = {"task": "speech-transcribe", "input": base64.b64encode(wav_bytes(tone(2.0))).decode()}
    with running_server("--whisper-model", whisper, "--db", db, "-t", "2") as server:
        drain(server)
        for remaining in ("3", "1"):  # admitted while under the limit; charged when it ends
            status, headers, body = server.post("/v1/inference", audio, headers=bearer(speech), timeout=120)
            assert status == 200 and body["usage"]["audio_seconds"] == pytest.approx(2.0, abs=0.01), body
            assert headers["x-ratelimit-limit-audio-seconds"] == "3"
            assert headers["x-ratelimit-remaining-audio-seconds"] == remaining
        status, headers, body = server.post("/v1/inference", audio, headers=bearer(speech), timeout=120)
        assert status == 429 and "audio seconds per day" in body["error"]["message"], body
        assert int(headers["Retry-After"]) > 80000  # a day's window
    rows = audit_rows(db)
    assert [r["audio_seconds"] for r in rows] == pytest.approx([2.0, 2.0, 0.0], abs=0.01)
    assert [r["task"] for r in rows] == ["speech-transcribe"] * 3


def test_audit_retention_deletes_old_rows_at_start_up(tmp_path):
    db = tmp_path / "mmserve.db"
    user, user_id = new_key(db, "user")
    now_ms = int(time.time() * 1000)
    conn = sqlite3.connect(db)
    for days in (40, 10):
        conn.execute("INSERT INTO audit (time_ms, request_id, key, method, path, status) VALUES (?, ?, ?, 'GET', '/v1/models', 200)",
                     (now_ms - days * 86_400_000, f"old-{days}", user_id))
    conn.commit()
    conn.close()
    with running_server("-m", STORIES, "--db", db, "--audit-retention-days", 30) as server:
        drain(server)
        assert server.get("/v1/models", headers=bearer(user))[0] == 200
    ids = [r["request_id"] for r in audit_rows(db)]
    assert "old-40" not in ids and "old-10" in ids and len(ids) == 2, ids
    proc = subprocess.run([BIN, "serve", "-m", STORIES, "--audit-retention-days", "0", "--db", db],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--audit-retention-days" in proc.stderr
