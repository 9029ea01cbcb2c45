"""Capture, feedback and export (issue 21, items 1-3) against a real server on stories260K:
the capture policy per key and per request (`store`), no planted identifier anywhere in the
capture database's bytes (file and WAL) with placeholders in their place, a full or locked store
never failing a request (drops counted in /metrics), feedback joined to its capture, and every
export format parsing and round-tripping its records, with the report's numbers."""
import http.client
import json
import os
import re
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BIN, STORIES, running_server, needs_stories

pytestmark = needs_stories

CORPUS_GEN = os.environ.get("MMSERVE_CORPUS_GEN", str(Path(BIN).parent / "privacy_corpus_gen"))


def mmserve(*args):
    env = {k: v for k, v in os.environ.items() if k not in ("MMSERVE_DB", "MMSERVE_CAPTURE_DB")}
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, timeout=60, env=env)


def create_key(db, name, *flags):
    run = mmserve("keys", "create", name, *flags, "--json", "--db", db)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)["key"]


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def chat(server, key, text, **extra):
    body = {"messages": [{"role": "user", "content": text}], "max_tokens": 4, "temperature": 0, **extra}
    status, _, out = server.post("/v1/chat/completions", body, headers=auth(key))
    assert status == 200, out
    return out["id"]


def infer(server, key, text, **params):
    body = {"task": "text-gen", "input": text, "parameters": {"max_tokens": 4, **params}}
    status, _, out = server.post("/v1/inference", body, headers=auth(key))
    assert status == 200, out
    return out["id"]


def records(capture_db):
    run = mmserve("dataset", "list", "--json", "--capture-db", capture_db)
    assert run.returncode == 0, run.stderr
    return {r["id"]: r for r in json.loads(run.stdout)}


def wait_for(capture_db, ids, timeout=30):
    """The records once every id in `ids` is written (the writer is asynchronous, FIFO)."""
    deadline = time.time() + timeout
    while True:
        got = records(capture_db)
        if all(i in got for i in ids):
            return got
        assert time.time() < deadline, f"never captured: {set(ids) - set(got)}"
        time.sleep(0.05)


def metric(server, name, labels=""):
    status, _, text = server.get("/metrics")
    assert status == 200
    for line in text.splitlines():
        if line.startswith(name + labels + " ") or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("capture")
    db, cap = str(d / "keys.db"), str(d / "capture.db")
    keys = {"cap": create_key(db, "cap", "--capture"), "plain": create_key(db, "plain"),
            "admin": create_key(db, "boss", "--admin")}
    with running_server("-m", STORIES, "--threads", "1", "--db", db, "--capture-db", cap) as server:
        yield server, keys, cap, d


def test_capture_per_key_and_per_request(setup):
    server, keys, cap, _ = setup
    plain = chat(server, keys["plain"], "not captured")
    plain_store = chat(server, keys["plain"], "captured: store true", store=True)
    opted_out = chat(server, keys["cap"], "opted out", store=False)
    inf_out = infer(server, keys["cap"], "opted out too", store=False)
    captured = chat(server, keys["cap"], "captured by its key")
    inf = infer(server, keys["cap"], "Once upon a time")
    status, _, out = server.post("/v1/completions", {"prompt": "Once", "max_tokens": 3, "store": True},
                                 headers=auth(keys["plain"]))
    assert status == 200, out
    got = wait_for(cap, [plain_store, captured, inf, out["id"]])
    for absent in (plain, opted_out, inf_out):
        assert absent not in got
    r = got[captured]
    assert r["messages"] == [{"role": "user", "content": "captured by its key"}]
    assert r["key_name"] == "cap" and r["endpoint"] == "/v1/chat/completions"
    assert r["task"] == "text-gen" and r["route"] == "local" and r["model"] == "stories260K"
    assert r["completion_tokens"] > 0 and r["prompt_tokens"] > 0
    assert r["parameters"]["max_tokens"] == 4 and r["parameters"]["temperature"] == 0
    assert r["finish_reason"] in ("stop", "length")
    assert got[inf]["messages"] == [{"role": "user", "content": "Once upon a time"}]
    assert got[inf]["endpoint"] == "/v1/inference"
    # Failed calls are not captured.
    status, _, _ = server.post("/v1/chat/completions", {"messages": [], "store": True},
                               headers=auth(keys["cap"]))
    assert status == 400


def corpus(n, seed):
    run = subprocess.run([CORPUS_GEN, str(n), str(seed)], capture_output=True, text=True, check=True)
    wanted = {"cn_resident_id", "cn_mobile", "bank_card", "email", "cn_credit_code", "iban"}
    out = []
    for line in run.stdout.splitlines():
        r = json.loads(line)
        if r["planted"] and set(r["types"]) <= wanted:
            out.append(r)
    return out


def test_no_planted_identifier_reaches_the_capture_database(setup):
    server, keys, cap, _ = setup
    planted = ["11010519491231002X", "13812345678", "6222021234567890128", "zhang.san@example.com"]
    hand = (f"身份证{planted[0]}，手机{planted[1]}，卡号{planted[2]}，邮箱{planted[3]}，"
            f"再说一次{planted[1]}")
    ids = [chat(server, keys["cap"], hand), infer(server, keys["cap"], f"call {planted[1]}")]
    # Streamed answers are captured too.
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("POST", "/v1/chat/completions", body=json.dumps({
        "messages": [{"role": "system", "content": f"mail {planted[3]}"},
                     {"role": "user", "content": hand}], "max_tokens": 4, "stream": True}),
        headers={"Content-Type": "application/json", **auth(keys["plain"])})
    resp = conn.getresponse()
    assert resp.status == 200
    events = [l[6:] for l in resp.read().decode().splitlines() if l.startswith("data: ")]
    conn.close()
    assert events[-1] == "[DONE]"
    stream_id = json.loads(events[0])["id"]
    # The plain key's stream is captured only when it says store: true.
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("POST", "/v1/chat/completions", body=json.dumps({
        "messages": [{"role": "system", "content": f"mail {planted[3]}"},
                     {"role": "user", "content": hand}], "max_tokens": 4, "stream": True,
        "store": True}), headers={"Content-Type": "application/json", **auth(keys["plain"])})
    resp = conn.getresponse()
    assert resp.status == 200
    events = [l[6:] for l in resp.read().decode().splitlines() if l.startswith("data: ")]
    conn.close()
    assert events[-1] == "[DONE]"
    unstored_id, stream_id = stream_id, json.loads(events[0])["id"]
    records_ = corpus(400, 11)[:24]
    assert len(records_) >= 10
    for i, r in enumerate(records_):
        planted += r["planted"]
        ids.append((chat if i % 2 else infer)(server, keys["cap"], r["text"]))
    got = wait_for(cap, ids + [stream_id])
    assert unstored_id not in got
    raw = b"".join(Path(p).read_bytes() for p in (cap, cap + "-wal") if Path(p).exists())
    leaked = [p for p in planted if p.encode() in raw]
    assert leaked == []
    hand_record = got[ids[0]]["messages"][0]["content"]
    assert hand_record == ("身份证<CN_ID_1>，手机<PHONE_1>，卡号<BANK_CARD_1>，邮箱<EMAIL_1>，"
                           "再说一次<PHONE_1>")
    assert got[ids[0]]["redactions"] == {"bank_card": 1, "cn_mobile": 2, "cn_resident_id": 1, "email": 1}
    assert got[ids[1]]["messages"] == [{"role": "user", "content": "call <PHONE_1>"}]
    assert got[stream_id]["messages"][0] == {"role": "system", "content": "mail <EMAIL_1>"}
    assert got[stream_id]["parameters"]["stream"] is True
    assert b"<CN_ID_1>" in raw and b"<PHONE_1>" in raw


def test_feedback_joins_its_capture(setup):
    server, keys, cap, _ = setup
    rid = chat(server, keys["cap"], "rate me")
    # At once: the capture may still be queued.
    status, _, out = server.post("/v1/feedback", {"id": rid, "rating": "up"}, headers=auth(keys["cap"]))
    assert status == 200, out
    assert out["object"] == "feedback" and out["id"] == rid and out["rating"] == 1
    status, _, out = server.post("/v1/feedback", {"id": rid, "rating": "down",
                                                  "correction": "call 13912345678", "comment": "wrong"},
                                 headers=auth(keys["cap"]))
    assert status == 200, out
    assert out["correction"] == "call <PHONE_1>" and out["redactions"] == {"cn_mobile": 1}
    for bad, field in (({"id": rid, "rating": 2}, "rating"), ({"id": rid, "rating": "meh"}, "rating"),
                       ({"id": rid}, "rating"), ({"rating": "up"}, "id"),
                       ({"id": rid, "rating": "up", "extra": 1}, "extra"),
                       ({"id": rid, "correction": 5}, "correction")):
        status, _, out = server.post("/v1/feedback", bad, headers=auth(keys["cap"]))
        assert status == 400 and out["error"]["param"] == field, (bad, out)
    status, _, out = server.post("/v1/feedback", {"id": "chatcmpl-nope", "rating": "up"},
                                 headers=auth(keys["cap"]))
    assert status == 404 and out["error"]["param"] == "id"
    # Another key does not see it; an admin may rate it.
    status, _, out = server.post("/v1/feedback", {"id": rid, "rating": "up"}, headers=auth(keys["plain"]))
    assert status == 404 and out["error"]["param"] == "id"
    status, _, out = server.post("/v1/feedback", {"id": rid, "rating": -0.5}, headers=auth(keys["admin"]))
    assert status == 200, out
    r = wait_for(cap, [rid])[rid]
    assert r["feedback"]["rating"] == -0.5  # the latest
    show = mmserve("dataset", "show", rid, "--capture-db", cap)
    assert show.returncode == 0 and json.loads(show.stdout)["feedback"]["rating"] == -0.5
    assert b"13912345678" not in Path(cap).read_bytes() + Path(cap + "-wal").read_bytes()


def read_lines(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_exports_parse_and_round_trip(setup):
    server, keys, _, d = setup
    cap = str(d / "export.db")
    # A fresh store of known records: the server's, copied after these are written.
    good = chat(server, keys["cap"], "export good")
    bad = chat(server, keys["cap"], "export bad")
    fixed = chat(server, keys["cap"], "export fixed")
    for rid, fb in ((good, {"rating": "up"}), (bad, {"rating": "down"}),
                    (fixed, {"rating": "down", "correction": "the fixed answer"})):
        status, _, out = server.post("/v1/feedback", {"id": rid, **fb}, headers=auth(keys["cap"]))
        assert status == 200, out
    all_ = wait_for(setup[2], [good, bad, fixed])
    src = sqlite3.connect(setup[2])
    dst = sqlite3.connect(cap)
    src.backup(dst)
    src.close()
    dst.close()
    # Keep only the three.
    others = [i for i in all_ if i not in (good, bad, fixed)]
    run = mmserve("dataset", "delete", *others, "--capture-db", cap)
    assert run.returncode == 0, run.stderr
    assert set(records(cap)) == {good, bad, fixed}

    out = d / "openai.jsonl"
    run = mmserve("dataset", "export", "--format", "openai", "-o", out, "--capture-db", cap)
    assert run.returncode == 0, run.stderr
    lines = read_lines(out)
    assert len(lines) == 3
    by_user = {l["messages"][0]["content"]: l["messages"][-1] for l in lines}
    assert by_user["export good"]["weight"] == 1
    assert by_user["export bad"]["weight"] == 0
    assert by_user["export fixed"] == {"role": "assistant", "content": "the fixed answer", "weight": 1}
    tokens = sum(r["prompt_tokens"] for r in records(cap).values())
    assert f"exported 3 lines from 3 of 3 records" in run.stderr
    assert f"prompt {tokens}," in run.stderr

    run = mmserve("dataset", "export", "--format", "sharegpt", "-o", "-", "--capture-db", cap)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(l) for l in run.stdout.splitlines()]
    assert len(lines) == 2 and "skipped 1 (rated down)" in run.stderr
    assert {l["conversations"][0]["value"] for l in lines} == {"export good", "export fixed"}
    assert all(l["conversations"][-1]["from"] == "gpt" for l in lines)

    run = mmserve("dataset", "export", "--format", "alpaca", "-o", "-", "--capture-db", cap)
    lines = [json.loads(l) for l in run.stdout.splitlines()]
    assert sorted(l["instruction"] for l in lines) == ["export fixed", "export good"]
    assert all(set(l) >= {"instruction", "input", "output"} for l in lines)

    run = mmserve("dataset", "export", "--format", "preference", "-o", "-", "--capture-db", cap)
    lines = [json.loads(l) for l in run.stdout.splitlines()]
    assert len(lines) == 1  # the correction (the up and down ratings are of different prompts)
    assert lines[0]["preferred_output"] == [{"role": "assistant", "content": "the fixed answer"}]
    assert lines[0]["input"]["messages"] == [{"role": "user", "content": "export fixed"}]

    # Filters and bulk delete.
    assert set(records(cap)) == {good, bad, fixed}
    run = mmserve("dataset", "list", "--rating", "down", "--json", "--capture-db", cap)
    assert {r["id"] for r in json.loads(run.stdout)} == {bad, fixed}
    assert mmserve("dataset", "delete", "--capture-db", cap).returncode != 0  # no filter, no --all
    run = mmserve("dataset", "delete", "--rating", "up", "--capture-db", cap)
    assert run.returncode == 0 and set(records(cap)) == {bad, fixed}


@pytest.mark.parametrize("args, option", [
    (["export", "--format", "csv", "-o", "-"], "--format"),
    (["list", "--rating", "sideways"], "--rating"),
    (["list", "--since", "yesterday"], "--since"),
    (["list", "--limit", "0"], "--limit"),
    (["frobnicate"], "frobnicate"),
])
def test_bad_dataset_flags_exit_non_zero(tmp_path, args, option):
    run = mmserve("dataset", *args, "--capture-db", tmp_path / "c.db")
    assert run.returncode != 0 and option in run.stderr, run.stderr


def test_a_full_store_never_fails_a_request(tmp_path):
    cap = str(tmp_path / "full.db")
    con = sqlite3.connect(cap)
    con.execute("CREATE TABLE filler (b BLOB)")
    con.execute("INSERT INTO filler VALUES (?)", (b"x" * (2 * 1024 * 1024),))
    con.commit()
    con.close()
    with running_server("-m", STORIES, "--threads", "1", "--capture-db", cap, "--capture", "all",
                        "--capture-max-mb", "1") as server:
        for i in range(5):
            assert server.infer(f"full {i}", max_tokens=3)["output"] is not None
        deadline = time.time() + 30
        while metric(server, "mmserve_capture_dropped_total", '{reason="store_full"}') < 5:
            assert time.time() < deadline, "drops never counted"
            time.sleep(0.05)
        assert metric(server, "mmserve_capture_records_total") == 0
    assert records(cap) == {}


def test_a_locked_store_never_fails_a_request(tmp_path):
    cap = str(tmp_path / "locked.db")
    with running_server("-m", STORIES, "--threads", "1", "--capture-db", cap, "--capture", "all") as server:
        lock = sqlite3.connect(cap, timeout=0, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")  # nobody else may write (nor read) the file now
        try:
            for i in range(4):
                assert server.infer(f"locked {i}", max_tokens=3)["output"] is not None
            deadline = time.time() + 60
            while metric(server, "mmserve_capture_dropped_total", '{reason="error"}') < 1:
                assert time.time() < deadline, "the failing write was never counted"
                time.sleep(0.1)
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        # Writable again: the next records are written.
        server.infer("unlocked", max_tokens=3)
        deadline = time.time() + 60
        while metric(server, "mmserve_capture_records_total") < 1:
            assert time.time() < deadline
            time.sleep(0.1)


def test_capture_off(tmp_path):
    with running_server("-m", STORIES, "--threads", "1") as server:
        status, _, out = server.post("/v1/feedback", {"id": "x", "rating": "up"})
        assert status == 404 and out["error"]["param"] == "capture"
    cap = str(tmp_path / "off.db")
    with running_server("-m", STORIES, "--threads", "1", "--capture-db", cap, "--capture", "off") as server:
        rid = server.infer("off", max_tokens=3, store=True)["id"]
        marker = server.infer("off marker", max_tokens=3)["id"]
        time.sleep(0.2)
        assert rid not in records(cap) and marker not in records(cap)
    run = mmserve("serve", "-m", STORIES, "--capture", "all")
    assert run.returncode != 0 and "--capture-db" in run.stderr
    run = mmserve("serve", "-m", STORIES, "--capture-db", cap, "--capture", "sometimes")
    assert run.returncode != 0 and "--capture" in run.stderr


def test_capture_per_model_and_keys_update(tmp_path):
    db, cap = str(tmp_path / "keys.db"), str(tmp_path / "cap.db")
    key = create_key(db, "k")
    models = tmp_path / "models.toml"
    models.write_text(f'[[model]]\nname = "kept"\npath = "{STORIES}"\ncapture = true\n\n'
                      f'[[model]]\nname = "free"\npath = "{STORIES}"\n')
    with running_server("--models", models, "--threads", "1", "--db", db, "--capture-db", cap) as server:
        free = chat(server, key, "free model", model="free")
        kept = chat(server, key, "kept model", model="kept")
        got = wait_for(cap, [kept])
        assert free not in got and got[kept]["model"] == "kept"
        # The key marked for capture from its next request on.
        run = mmserve("keys", "update", "k", "--capture", "--db", db)
        assert run.returncode == 0 and "capture" in run.stdout, run.stderr
        now = chat(server, key, "free model, key captured", model="free")
        assert now in wait_for(cap, [now])
        run = mmserve("keys", "update", "k", "--no-capture", "--db", db)
        assert run.returncode == 0, run.stderr
        again = chat(server, key, "free model again", model="free")
        marker = chat(server, key, "kept marker", model="kept")
        assert again not in wait_for(cap, [marker])
