"""`mmserve keys` and `mmserve audit` end to end on a real database file: a key is printed once
and never stored or listed, the JSON shapes, revoke, rotate, update, usage errors (exit 2 naming
the option), and the audit log as CSV (RFC 4180 quoting) and JSON lines with its filters."""
import csv
import io
import json
import os
import re
import sqlite3
import subprocess
import time

import pytest

from conftest import BIN

KEY = re.compile(r"^mms_[a-z0-9]{8}_[A-Za-z0-9]{32}$")
AUDIT_FIELDS = ["time", "request_id", "key", "method", "path", "task", "model", "route", "status",
                "error_type", "prompt_tokens", "completion_tokens", "audio_seconds", "duration_ms",
                "client", "charged"]


def mmserve(*args, env=None):
    environment = {k: v for k, v in os.environ.items() if k != "MMSERVE_DB"}
    environment.update(env or {})
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, timeout=60,
                          env=environment)


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "mmserve.db")


def keys(db, *args):
    return mmserve("keys", *args, "--db", db)


def create(db, name, *args):
    run = keys(db, "create", name, *args, "--json")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_create_prints_the_key_once_and_stores_only_its_hash(db):
    run = keys(db, "create", "sales", "--tasks", "text-gen,image-caption", "--rpm", "60")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 1 and KEY.match(lines[0]), run.stdout
    key = lines[0]
    key_id = key[:12]
    assert f"key 'sales' ({key_id}) created" in run.stderr
    assert "only time the key is shown" in run.stderr

    listed = keys(db, "list")
    assert listed.returncode == 0, listed.stderr
    assert key_id in listed.stdout and "sales" in listed.stdout and "active" in listed.stdout
    assert "rpm=60" in listed.stdout and "tasks=text-gen,image-caption" in listed.stdout
    as_json = keys(db, "list", "--json")
    for out in (listed.stdout, listed.stderr, as_json.stdout):
        assert key[13:] not in out  # the secret part never again
    [entry] = json.loads(as_json.stdout)
    assert "hash" not in entry and "key" not in entry

    with sqlite3.connect(db) as conn:
        stored_hash, = conn.execute("SELECT hash FROM keys WHERE id = ?", (key_id,)).fetchone()
    assert len(stored_hash) == 32
    raw = b"".join(open(p, "rb").read() for p in (db, db + "-wal") if os.path.exists(p))
    assert key.encode() not in raw and key[13:].encode() not in raw


def test_json_shapes(db):
    made = create(db, "ops", "--admin", "--cloud", "--models", "stories,qwen", "--endpoints",
                  "/v1/chat/completions,/v1/audio/*", "--tpm", "1000",
                  "--audio-seconds-per-day", "3600", "--concurrency", "2")
    assert set(made) == {"id", "name", "key", "scopes", "limits", "created"}
    assert KEY.match(made["key"]) and made["key"].startswith(made["id"] + "_")
    assert made["name"] == "ops"
    assert made["scopes"] == {"tasks": [], "models": ["stories", "qwen"],
                              "endpoints": ["/v1/chat/completions", "/v1/audio/*"],
                              "cloud": True, "admin": True, "capture": False}
    assert made["limits"] == {"rpm": 0, "tpm": 1000, "audio_seconds_per_day": 3600,
                              "concurrency": 2}
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", made["created"])

    run = keys(db, "list", "--json")
    assert run.returncode == 0, run.stderr
    [entry] = json.loads(run.stdout)
    assert entry["id"] == made["id"] and entry["state"] == "active"
    assert entry["scopes"] == made["scopes"] and entry["limits"] == made["limits"]
    assert entry["created"] == made["created"]
    assert entry["rotated"] is None and entry["revoked"] is None
    assert entry["last_used"] is None and entry["requests_24h"] == 0


def test_an_empty_database_lists_nothing(db):
    run = keys(db, "list", "--json")
    assert run.returncode == 0 and json.loads(run.stdout) == []
    run = keys(db, "list")
    assert run.returncode == 0 and run.stdout.startswith("ID ") and len(run.stdout.splitlines()) == 1


def test_revoke(db):
    made = create(db, "sales")
    run = keys(db, "revoke", "sales")
    assert run.returncode == 0, run.stderr
    assert "revoked" in run.stdout and made["id"] in run.stdout
    [entry] = json.loads(keys(db, "list", "--json").stdout)
    assert entry["state"] == "revoked" and entry["revoked"] is not None
    again = keys(db, "revoke", made["id"])  # by id; idempotent
    assert again.returncode == 0 and "already revoked" in again.stdout
    # The name stays taken, and a revoked key cannot be rotated.
    dup = keys(db, "create", "sales")
    assert dup.returncode == 2 and "already exists" in dup.stderr
    rot = keys(db, "rotate", "sales")
    assert rot.returncode == 2 and "revoked" in rot.stderr
    missing = keys(db, "revoke", "nobody")
    assert missing.returncode == 1 and "nobody" in missing.stderr


def test_rotate(db):
    made = create(db, "sales", "--rpm", "5")
    run = keys(db, "rotate", "sales")
    assert run.returncode == 0, run.stderr
    new = run.stdout.strip()
    assert KEY.match(new) and new != made["key"] and new[:12] == made["id"]
    assert "rotated" in run.stderr and "only time" in run.stderr
    as_json = keys(db, "rotate", made["id"], "--json")
    assert as_json.returncode == 0, as_json.stderr
    rotated = json.loads(as_json.stdout)
    assert rotated["id"] == made["id"] and rotated["key"] not in (made["key"], new)
    assert rotated["limits"]["rpm"] == 5 and rotated["rotated"]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM keys").fetchone() == (1,)


def test_update_changes_only_what_is_given(db):
    made = create(db, "sales", "--tasks", "text-gen", "--cloud", "--rpm", "10", "--tpm", "99")
    run = keys(db, "update", "sales", "--rpm", "20", "--no-cloud", "--models", "stories")
    assert run.returncode == 0, run.stderr
    assert "updated" in run.stdout and "rpm=20" in run.stdout
    [entry] = json.loads(keys(db, "list", "--json").stdout)
    assert entry["scopes"]["tasks"] == ["text-gen"] and entry["scopes"]["models"] == ["stories"]
    assert entry["scopes"]["cloud"] is False
    assert entry["limits"]["rpm"] == 20 and entry["limits"]["tpm"] == 99
    run = keys(db, "update", made["id"], "--tasks", "", "--admin")  # "" allows all again
    assert run.returncode == 0, run.stderr
    [entry] = json.loads(keys(db, "list", "--json").stdout)
    assert entry["scopes"]["tasks"] == [] and entry["scopes"]["admin"] is True
    nothing = keys(db, "update", "sales")
    assert nothing.returncode == 2 and "nothing to update" in nothing.stderr
    both = keys(db, "update", "sales", "--cloud", "--no-cloud")
    assert both.returncode == 2 and "--cloud" in both.stderr
    missing = keys(db, "update", "nobody", "--rpm", "1")
    assert missing.returncode == 1 and "nobody" in missing.stderr


@pytest.mark.parametrize("args, option", [
    (["--rpm", "ten"], "--rpm"),
    (["--rpm", "-1"], "--rpm"),
    (["--tpm", "1.5"], "--tpm"),
    (["--concurrency", ""], "--concurrency"),
    (["--audio-seconds-per-day", "99999999999999999999"], "--audio-seconds-per-day"),
    (["--tasks", "text-gen,dance"], "--tasks"),
    (["--endpoints", "v1/chat"], "--endpoints"),
])
def test_bad_options_exit_2_naming_the_option(db, args, option):
    run = keys(db, "create", "x", *args)
    assert run.returncode == 2, run.stderr
    assert option in run.stderr and run.stderr.count("\n") == 1
    assert json.loads(keys(db, "list", "--json").stdout) == []


def test_usage_errors(db, tmp_path):
    run = mmserve("keys", "create", "x")
    assert run.returncode == 2 and "--db" in run.stderr and "MMSERVE_DB" in run.stderr
    run = mmserve("keys", "list", env={"MMSERVE_DB": db})  # the environment names it
    assert run.returncode == 0, run.stderr
    run = mmserve("audit")
    assert run.returncode == 2 and "--db" in run.stderr
    run = keys(db, "create", "has space")
    assert run.returncode == 2 and "name" in run.stderr
    run = keys(db, "create")
    assert run.returncode == 2 and "NAME" in run.stderr
    run = mmserve("keys", "frobnicate")
    assert run.returncode == 2 and "unknown keys subcommand" in run.stderr
    run = mmserve("keys")
    assert run.returncode == 2 and "usage" in run.stderr
    run = keys(db, "list", "--bogus")
    assert run.returncode == 2 and "--bogus" in run.stderr
    run = mmserve("keys", "create", "x", "--db", str(tmp_path / "no" / "such.db"))
    assert run.returncode == 2 and "does not exist" in run.stderr
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 100)
    run = mmserve("keys", "list", "--db", str(text))
    assert run.returncode == 2 and "is not an SQLite database" in run.stderr


def test_help_exits_0():
    for args in (["keys", "--help"], ["keys", "create", "--help"], ["keys", "list", "--help"],
                 ["keys", "revoke", "--help"], ["keys", "rotate", "--help"],
                 ["keys", "update", "--help"], ["audit", "--help"]):
        run = mmserve(*args)
        assert run.returncode == 0 and run.stdout.startswith("usage: mmserve"), args


def test_audit_on_an_empty_database_prints_only_the_header(db):
    run = mmserve("audit", "--db", db)
    assert run.returncode == 0, run.stderr
    assert run.stdout == ",".join(AUDIT_FIELDS) + "\n"
    run = mmserve("audit", "--db", db, "--format", "json")
    assert run.returncode == 0 and run.stdout == ""


def insert_rows(db, rows):
    keys(db, "list")  # makes the schema
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO audit (time_ms, request_id, key, method, path, task, model, route, status,"
            " error_type, prompt_tokens, completion_tokens, audio_seconds, duration_ms, client,"
            " charged) VALUES (?, ?, ?, 'POST', ?, 'text-gen', 'stories', 'local', ?, ?, 3, 4, 0.5,"
            " 12.25, '127.0.0.1', 1)", rows)


T0 = 1_764_583_200_000  # 2025-12-01T10:00:00Z


def test_audit_filters_and_formats(db):
    made = create(db, "sales")
    insert_rows(db, [
        (T0 - 3_600_000, "r1", made["id"], "/v1/chat/completions", 200, ""),
        (T0, "r2", "admin", "/v1/models/load", 200, ""),
        (T0 + 60_000 + 7, "r3", made["id"], '/v1/odd,path "quoted"', 429, "rate_limited"),
        (T0 + 120_000, "r4", "anonymous", "/v1/chat/completions", 401, "authentication_error"),
    ])
    run = mmserve("audit", "--db", db)
    assert run.returncode == 0, run.stderr
    table = list(csv.reader(io.StringIO(run.stdout)))
    assert table[0] == AUDIT_FIELDS
    assert [r[1] for r in table[1:]] == ["r1", "r2", "r3", "r4"]  # oldest first
    r3 = dict(zip(AUDIT_FIELDS, table[3]))
    assert r3["path"] == '/v1/odd,path "quoted"'  # quoted and read back as it was
    assert '"/v1/odd,path ""quoted"""' in run.stdout
    assert r3["time"] == "2025-12-01T10:01:00.007Z"
    assert r3["status"] == "429" and r3["error_type"] == "rate_limited"
    assert r3["audio_seconds"] == "0.5" and r3["duration_ms"] == "12.25"
    assert r3["charged"] == "true"

    def ids(*args):
        out = mmserve("audit", "--db", db, "--format", "json", *args)
        assert out.returncode == 0, out.stderr
        return [json.loads(line)["request_id"] for line in out.stdout.splitlines()]

    assert ids("--since", "2025-12-01T10:00:00Z") == ["r2", "r3", "r4"]
    assert ids("--since", "2025-12-01T10:00") == ["r2", "r3", "r4"]
    assert ids("--since", str(T0 // 1000), "--until", "2025-12-01T10:02:00") == ["r2", "r3"]
    assert ids("--until", "2025-12-01") == []
    assert ids("--since", "2025-12-01") == ["r1", "r2", "r3", "r4"]
    assert ids("--key", "sales") == ["r1", "r3"]  # a name, mapped to its id
    assert ids("--key", made["id"]) == ["r1", "r3"]
    assert ids("--key", "admin") == ["r2"]
    assert ids("--key", "mms_zzzzzzzz") == []  # an id no stored key has: as is
    assert ids("--limit", "2") == ["r3", "r4"]  # the newest two, oldest first
    assert ids("--key", "sales", "--limit", "1") == ["r3"]
    assert ids("--since", "30m") == []  # these rows are long ago
    assert ids("--since", "100000d") == ["r1", "r2", "r3", "r4"]

    first = json.loads(mmserve("audit", "--db", db, "--format", "json").stdout.splitlines()[0])
    assert list(first) == AUDIT_FIELDS
    assert first["status"] == 200 and first["prompt_tokens"] == 3 and first["charged"] is True
    assert first["time"] == "2025-12-01T09:00:00.000Z"


def test_keys_list_reports_recent_use(db):
    made = create(db, "sales")
    now = int(time.time() * 1000)
    insert_rows(db, [(now - 1000, "a", made["id"], "/v1/chat/completions", 200, ""),
                     (now - 500, "b", made["id"], "/v1/chat/completions", 429, "rate_limited"),
                     (now - 3 * 86_400_000, "c", made["id"], "/v1/chat/completions", 200, "")])
    [entry] = json.loads(keys(db, "list", "--json").stdout)
    assert entry["requests_24h"] == 2
    assert entry["last_used"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((now - 500) // 1000))
    assert mmserve("audit", "--db", db, "--since", "12h", "--format", "json").stdout.count("\n") == 2


@pytest.mark.parametrize("args, option", [
    (["--since", "yesterday"], "--since"),
    (["--since", "2025-13-01"], "--since"),
    (["--since", "2025-02-30"], "--since"),
    (["--until", "2025-12-01T25:00"], "--until"),
    (["--until", "12x"], "--until"),
    (["--format", "xml"], "--format"),
    (["--limit", "-3"], "--limit"),
    (["--key", "nobody"], "--key"),
])
def test_audit_bad_options_exit_2_naming_the_option(db, args, option):
    run = mmserve("audit", "--db", db, *args)
    assert run.returncode == 2, run.stderr
    assert option in run.stderr
