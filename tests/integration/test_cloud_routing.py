"""The hybrid-cloud router (issue 13) end to end: a real server with --cloud-url pointing at a
fake OpenAI-compatible endpoint on loopback (fake_cloud.py) that records every byte it is sent.

No personal data ever reaches the cloud (a generated corpus with planted identifiers and
look-alikes, through the real detectors), streams through the cloud are what the cloud sent,
failures are retried, fall back to the local model or answer 503, the circuit breaker stops
calling a failing endpoint, the client's data class keeps calls local, overflow sends clean calls
to the cloud when the local queue is busy, route rules per caller, reload of the route, and the
audit log and metrics account for every decision."""
import base64
import collections
import contextlib
import http.client
import json
import os
import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import BIN, GOLDEN, STORIES, needs_stories, running_server, sanitized
from fake_cloud import ANSWER, ANSWER_CHUNKS, MID_STREAM_CHUNKS, FakeCloud
from prometheus_text import scrape

pytestmark = needs_stories

CORPUS_GEN = os.environ.get("MMSERVE_CORPUS_GEN",
                            str(Path(__file__).resolve().parents[2] / "build/default/privacy_corpus_gen"))
PHONE = "13812345678"
CARD = "6222021234567890128"
CLEAN = "Once upon a time"
MODEL = "stories260K"


# ---- helpers ------------------------------------------------------------------------------------

@contextlib.contextmanager
def cloud_server(cloud, tmp_path, policy, *extra, audit=True, env=None):
    """A server with `policy` (TOML text) and the fake cloud as its endpoint. Its stderr is
    drained as it comes (server.stderr_lines), so thousands of request log lines never fill the
    pipe. server.audit is the audit log's path (or None)."""
    policy_path = tmp_path / "privacy.toml"
    policy_path.write_text(policy, encoding="utf-8")
    args = ["-m", STORIES, "--privacy-policy", policy_path]
    audit_path = None
    if audit:
        audit_path = tmp_path / "audit.jsonl"
        args += ["--audit-log", audit_path]
    if cloud is not None:
        args += ["--cloud-url", cloud.url, "--cloud-model", "remote-default", "--cloud-backoff", "10"]
    with running_server(*args, *extra, env=env) as server:
        server.policy, server.audit, server.stderr_lines = policy_path, audit_path, []
        drain = threading.Thread(target=lambda: server.stderr_lines.extend(server.proc.stderr), daemon=True)
        drain.start()
        yield server
    drain.join(timeout=30)


def chat(server, content, headers=None, timeout=60, **extra):
    body = {"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": 4, **extra}
    return server.post("/v1/chat/completions", body, headers=headers, timeout=timeout)


def infer(server, text, headers=None, **params):
    return server.post("/v1/inference", {"input": text, "task": "text-gen", "parameters": params}, headers=headers)


def route_of(headers):
    return headers.get("X-Mmserve-Route")


def sse(server, path, body, headers=None, timeout=60):
    """(status, headers, events): each event's JSON, or "[DONE]"."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    status, hdrs = resp.status, dict(resp.getheaders())
    events = []
    try:
        if status != 200:
            return status, hdrs, resp.read()
        for raw in resp:
            line = raw.decode("utf-8")
            if line.startswith("data: "):
                data = line[len("data: "):].strip()
                events.append(data if data == "[DONE]" else json.loads(data))
    except (http.client.IncompleteRead, ConnectionError):
        events.append("<connection cut>")
    finally:
        conn.close()
    return status, hdrs, events


def chat_pieces(events):
    return [e["choices"][0]["delta"].get("content") for e in events
            if isinstance(e, dict) and e.get("choices") and e["choices"][0].get("delta", {}).get("content")]


def audit_lines(server):
    """(text, parsed lines) of the audit log's complete lines so far."""
    text = server.audit.read_text(encoding="utf-8") if server.audit.exists() else ""
    text = text[:text.rfind("\n") + 1]
    return text, [json.loads(line) for line in text.splitlines() if line.strip()]


def audit_by_id(server):
    by_id = collections.defaultdict(list)
    for line in audit_lines(server)[1]:
        by_id[line.get("request_id")].append(line)
    return by_id


def wait_audit(server, rid, timeout=10):
    """The audit line of request `rid` (written when the call ends, maybe after the answer)."""
    deadline = time.time() + timeout
    while True:
        lines = audit_by_id(server).get(rid)
        if lines:
            assert len(lines) == 1, lines
            return lines[0]
        assert time.time() < deadline, f"no audit line for {rid}"
        time.sleep(0.05)


def findings_of(line):
    """The audit line's findings as {type: count}, whether written as a dict or "type:count,..."."""
    f = line.get("findings")
    if not f:
        return {}
    if isinstance(f, dict):
        return f
    return {k: int(v) for k, v in (part.split(":") for part in f.split(","))}


def upstream_models(cloud):
    return [b.get("model") for b in cloud.bodies() if isinstance(b, dict)]


def is_local_answer(output):
    """A greedy answer of stories260K to CLEAN (never the cloud's text)."""
    return bool(output) and GOLDEN.startswith(output) and output != ANSWER


def local_inference(server, rid, headers=None):
    status, hdrs, body = infer(server, CLEAN, headers={"X-Request-Id": rid, **(headers or {})},
                               max_tokens=12, temperature=0)
    return status, hdrs, body


@pytest.fixture
def cloud():
    with FakeCloud() as fake:
        yield fake


ROUTE_CLOUD = 'route = "cloud"\n'


# ---- zero leak ----------------------------------------------------------------------------------

FULL_WIDTH = {c: chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)}
FULL_WIDTH[0x3000] = " "


def leak_forms(planted, kind):
    """What a leaked identifier could look like on the wire: as written, folded to ASCII, without
    separators, and (numbers) its digits alone."""
    folded = planted.translate(FULL_WIDTH)
    forms = {planted, folded}
    compact = re.sub(r"[\s\-·]", "", folded)
    if len(compact) >= 6:
        forms.add(compact)
    digits = re.sub(r"[^0-9]", "", folded)
    if len(digits) >= 11 and kind in ("cn_mobile", "bank_card", "cn_resident_id"):
        forms.add(digits)
        if kind == "cn_mobile":
            forms.add(digits[-11:])  # without +86 / 0086
    return forms


def load_corpus(count, seed):
    assert Path(CORPUS_GEN).exists(), f"the corpus generator {CORPUS_GEN} is not built (target privacy_corpus_gen)"
    out = subprocess.run([CORPUS_GEN, str(count), str(seed)], capture_output=True, timeout=120, check=True)
    records = [json.loads(line) for line in out.stdout.decode("utf-8").splitlines()]
    assert len(records) == count
    return records


def test_no_planted_identifier_ever_reaches_the_cloud(cloud, tmp_path):
    # The first 5000 of the unit test's corpus; 1500 on a sanitizer build, where the same calls
    # take twice as long and what ASan checks (the server's memory) is the same for each record.
    records = load_corpus(1500 if sanitized(BIN) else 5000, 20261201)
    policy = 'route = "auto"\n\n[overflow]\nqueued = 0\n'  # every clean call overflows to the cloud
    results = [None] * len(records)
    with cloud_server(cloud, tmp_path, policy, "--parallel", "4") as server:
        def send(i):
            status, headers, body = server.post(
                "/v1/chat/completions",
                {"model": MODEL, "messages": [{"role": "user", "content": records[i]["text"]}], "max_tokens": 1},
                headers={"X-Request-Id": f"leak-{i}"}, timeout=120)
            results[i] = (status, route_of(headers), body)

        started = time.time()
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(send, range(len(records))))
        elapsed = time.time() - started
        metrics = scrape(server)
        # Audit lines are written as calls end; every call has ended once its answer is read.
        deadline = time.time() + 10
        while len(audit_lines(server)[1]) < len(records) and time.time() < deadline:
            time.sleep(0.1)
        audit_text, audit = audit_lines(server)
    stderr = "".join(server.stderr_lines)

    bad = [(i, r[0], r[2]) for i, r in enumerate(results) if r[0] != 200]
    assert not bad, bad[:5]

    # What the cloud was sent: every byte of every request, and the parsed bodies (the server may
    # escape non-ASCII text in JSON, so the raw bytes alone could hide a leak).
    sent = cloud.requests()
    haystack = "\n".join([r.raw.decode("utf-8", errors="replace") for r in sent] +
                         [json.dumps(r.json, ensure_ascii=False) for r in sent if r.json is not None])
    per_type = collections.defaultdict(collections.Counter)
    leaks, misrouted = [], []
    clean_total = clean_cloud = 0
    clean_local = []
    for i, (record, (status, route, body)) in enumerate(zip(records, results)):
        if record["planted"]:
            for planted, kind in zip(record["planted"], record["types"]):
                per_type[kind]["planted"] += 1
                per_type[kind][route] += 1
                for form in leak_forms(planted, kind):
                    if form in haystack:
                        leaks.append((i, kind, form))
                    if form in audit_text:
                        leaks.append((i, kind, "audit: " + form))
                    if form in stderr:
                        leaks.append((i, kind, "log: " + form))
            if route != "local":
                misrouted.append((i, route, record["text"]))
        else:
            clean_total += 1
            if route == "cloud":
                clean_cloud += 1
                assert body["choices"][0]["message"]["content"] == ANSWER, (i, body)
            else:
                clean_local.append((i, route, record["text"]))

    print(f"\nzero-leak corpus: {len(records)} records in {elapsed:.1f} s; cloud saw {len(sent)} requests")
    print(f"{'type':18} {'planted':>8} {'local':>6} {'cloud':>6}")
    for kind in sorted(per_type):
        c = per_type[kind]
        print(f"{kind:18} {c['planted']:8} {c['local']:6} {c['cloud']:6}")
    print(f"clean (look-alike) records: {clean_total}, to the cloud {clean_cloud}, kept local {len(clean_local)}")
    print(f"leaked forms found: {len(leaks)}")

    assert not leaks, leaks[:10]
    assert not misrouted, misrouted[:10]
    # The look-alikes carry no finding: every clean record went to the cloud, and the cloud saw
    # exactly those texts, each once.
    assert not clean_local, clean_local[:10]
    assert clean_total > len(records) // 5 and clean_cloud == clean_total
    sent_texts = collections.Counter(m["content"] for b in cloud.bodies() for m in b["messages"] if m["role"] == "user")
    assert sent_texts == collections.Counter(r["text"] for r in records if not r["planted"])
    assert len(sent) == clean_total

    # Every decision audited with its reason; the metrics count the same.
    by_id = {line["request_id"]: line for line in audit}
    assert len(by_id) == len(records) == len(audit), (len(by_id), len(audit))
    for i, record in enumerate(records):
        line = by_id[f"leak-{i}"]
        expected = ("local", "findings") if record["planted"] else ("cloud", "overflow")
        assert (line["route"], line["route_reason"]) == expected, (i, line)
        if record["planted"]:
            assert findings_of(line) == dict(collections.Counter(record["types"])), (i, line)
    planted_total = len(records) - clean_total
    assert metrics.value("mmserve_route_decisions_total", route="local", reason="findings") == planted_total
    assert metrics.value("mmserve_route_decisions_total", route="cloud", reason="overflow") == clean_total
    for kind, c in per_type.items():
        assert metrics.value("mmserve_privacy_findings_total", type=kind) == c["planted"], kind
    assert metrics.value("mmserve_cloud_requests_total", outcome="ok") == clean_total


# ---- the cloud path ------------------------------------------------------------------------------

def test_streams_through_the_cloud_are_what_the_cloud_sent(cloud, tmp_path):
    key_file = tmp_path / "cloud.key"
    key_file.write_text("sk-from-the-key-file-123\n", encoding="utf-8")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "讲个故事 about a cat"}]
    with cloud_server(cloud, tmp_path, ROUTE_CLOUD, "--cloud-model-map", f"{MODEL}=remote-mini",
                      "--cloud-api-key-file", key_file) as server:
        status, headers, events = sse(server, "/v1/chat/completions", {
            "model": MODEL, "messages": messages, "max_tokens": 16, "stream": True,
            "stream_options": {"include_usage": True}})
        assert status == 200 and route_of(headers) == "cloud", (status, headers, events)
        assert headers["Content-Type"].startswith("text/event-stream")
        assert events[-1] == "[DONE]", events
        # The text as the cloud sent it, and streamed as it came (pieces may merge when they
        # arrive in one read, never wait for the whole answer).
        assert "".join(chat_pieces(events)) == ANSWER and len(chat_pieces(events)) >= 2, events
        assert [e["choices"][0]["finish_reason"] for e in events if isinstance(e, dict) and e.get("choices")][-1] == "stop"
        assert any(isinstance(e, dict) and e.get("usage") for e in events), events  # include_usage honoured

        [upstream] = cloud.requests()
        assert upstream.method == "POST" and upstream.path == "/v1/chat/completions"
        assert upstream.headers["authorization"] == "Bearer sk-from-the-key-file-123"
        assert upstream.json["model"] == "remote-mini"
        assert upstream.json["messages"] == messages
        assert upstream.json["stream"] is True and upstream.json["stream_options"] == {"include_usage": True}

        # /v1/inference, streamed and not, through the same path.
        status, headers, events = sse(server, "/v1/inference", {
            "input": "写一首诗", "task": "text-gen", "model": MODEL, "stream": True, "parameters": {"max_tokens": 16}})
        assert status == 200 and route_of(headers) == "cloud", (status, headers, events)
        assert events[-1] == "[DONE]", events
        assert "".join(e.get("output", "") for e in events[:-1]) == ANSWER, events
        assert len([e for e in events[:-1] if e.get("output")]) >= 2, events
        assert events[-2]["route"] == "cloud" and events[-2]["finish_reason"] == "stop", events[-2]
        upstream = cloud.requests()[1]
        assert upstream.json["model"] == "remote-mini"
        assert upstream.json["messages"][-1] == {"role": "user", "content": "写一首诗"}, upstream.json
        assert upstream.headers["authorization"] == "Bearer sk-from-the-key-file-123"

        status, headers, body = infer(server, "写一首诗", max_tokens=16)
        assert status == 200 and body["route"] == "cloud" and route_of(headers) == "cloud", body
        assert body["output"] == ANSWER
        status, headers, body = chat(server, "hello")
        assert status == 200 and route_of(headers) == "cloud", body
        assert body["choices"][0]["message"]["content"] == ANSWER
        assert cloud.count() == 4
    assert "sk-from-the-key-file-123" not in "".join(server.stderr_lines)  # never logged
    assert "sk-from-the-key-file-123" not in server.audit.read_text(encoding="utf-8")


def test_model_map_is_repeatable_and_the_key_comes_from_the_named_variable(cloud, tmp_path):
    env = {"MY_CLOUD_KEY": "sk-env-456"}
    with cloud_server(cloud, tmp_path, ROUTE_CLOUD, "--cloud-model-map", f"{MODEL}=remote-a",
                      "--cloud-model-map", "other=remote-b", "--cloud-api-key-env", "MY_CLOUD_KEY",
                      env=env) as server:
        status, headers, _ = chat(server, "hello")
        assert status == 200 and route_of(headers) == "cloud"
    [upstream] = cloud.requests()
    assert upstream.headers["authorization"] == "Bearer sk-env-456"
    assert upstream.json["model"] == "remote-a", (
        "two --cloud-model-map flags: the first mapping was lost", upstream.json["model"])


def test_a_stream_cut_by_the_cloud_is_never_passed_off_as_complete(cloud, tmp_path):
    with cloud_server(cloud, tmp_path, ROUTE_CLOUD, "--cloud-retries", "0") as server:
        cloud.script("close_mid_stream")
        status, headers, events = sse(server, "/v1/chat/completions", {
            "model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, "stream": True})
        assert status == 200, events
        pieces = chat_pieces(events)
        if route_of(headers) == "cloud" and events[-1] == "[DONE]":
            # Nothing was forwarded before the cut and the call was tried again from scratch:
            # then the whole answer, once.
            assert "".join(pieces) == ANSWER and cloud.count() == 2, (events, cloud.requests())
        elif route_of(headers) == "cloud":
            # Forwarded as it came, then ended as a failed stream (README: one error event, no
            # finish_reason, no [DONE]).
            assert "".join(pieces) == "".join(ANSWER_CHUNKS[:MID_STREAM_CHUNKS]), events
            assert isinstance(events[-1], dict) and "error" in events[-1], events
        else:
            # Or nothing was forwarded yet and the call ran here instead: a whole local answer.
            assert route_of(headers) == "local" and events[-1] == "[DONE]", (headers, events)
            assert not "".join(pieces).startswith("".join(ANSWER_CHUNKS[:MID_STREAM_CHUNKS])), events


# ---- failures, retries, fallback, breaker ---------------------------------------------------------

def test_retries_on_500_and_429_then_fallback_to_local(cloud, tmp_path):
    with cloud_server(cloud, tmp_path, ROUTE_CLOUD, "--cloud-retries", "2") as server:
        cloud.script(("status", 500), "ok")
        status, headers, body = chat(server, "hello", headers={"X-Request-Id": "r-500"})
        assert status == 200 and route_of(headers) == "cloud", (status, headers, body)
        assert body["choices"][0]["message"]["content"] == ANSWER
        assert cloud.count() == 2, cloud.requests()

        cloud.reset()
        cloud.script(("status", 429, 1), "ok")
        status, headers, body = chat(server, "hello", headers={"X-Request-Id": "r-429"})
        assert status == 200 and route_of(headers) == "cloud", (status, headers, body)
        assert body["choices"][0]["message"]["content"] == ANSWER
        first, second = cloud.requests()
        # --cloud-backoff is 10 ms: only Retry-After: 1 explains a second's wait.
        assert second.time - first.time >= 0.9, second.time - first.time

        cloud.reset()
        cloud.set_default(("status", 500))
        status, headers, body = local_inference(server, "r-fallback")
        assert status == 200 and route_of(headers) == "local" and body["route"] == "local", body
        assert is_local_answer(body["output"]), body["output"]
        assert cloud.count() == 3  # the attempt and its 2 retries
        line = wait_audit(server, "r-fallback")
        assert line["route"] == "local" and line["route_reason"] == "cloud_failed", line
        assert str(line["upstream_status"]) == "500", line
        m = scrape(server)
        assert m.value("mmserve_cloud_requests_total", outcome="http_5xx") == 4
        assert m.value("mmserve_cloud_requests_total", outcome="http_429") == 1
        assert m.value("mmserve_cloud_requests_total", outcome="ok") == 2
        assert m.value("mmserve_cloud_fallbacks_total", reason="cloud_failed") == 1


def test_cloud_fallback_error_answers_503(cloud, tmp_path):
    with cloud_server(cloud, tmp_path, ROUTE_CLOUD, "--cloud-retries", "1", "--cloud-fallback", "error") as server:
        cloud.set_default(("status", 500))
        status, headers, body = chat(server, "hello")
        assert status == 503, (status, headers, body)
        assert isinstance(body, dict) and set(body["error"]) >= {"message", "type"}, body
        assert cloud.count() == 2
        status, headers, body = infer(server, CLEAN, max_tokens=4)
        assert status == 503 and "error" in body, (status, body)


def test_timeouts_and_dropped_connections_fall_back(cloud, tmp_path):
    with cloud_server(cloud, tmp_path, ROUTE_CLOUD, "--cloud-retries", "0", "--cloud-read-timeout", "300",
                      "--cloud-breaker-failures", "10") as server:
        # A 20 s wait, cut by the 300 ms read timeout: the margin is wide so that a loaded machine
        # (the local fallback's generation) cannot make a cut wait look uncut.
        cloud.script(("slow_headers", 20))
        started = time.time()
        status, headers, body = local_inference(server, "t-slow")
        elapsed = time.time() - started
        assert status == 200 and route_of(headers) == "local", (status, headers, body)
        assert is_local_answer(body["output"]), body
        assert elapsed < 10, f"the 300 ms read timeout did not cut a 20 s wait ({elapsed:.2f} s)"
        assert cloud.count() == 1

        cloud.script("close")
        status, headers, body = local_inference(server, "t-close")
        assert status == 200 and route_of(headers) == "local", (status, headers, body)
        assert is_local_answer(body["output"]), body
        assert cloud.count() == 2
        for rid in ("t-slow", "t-close"):
            assert wait_audit(server, rid)["route_reason"] == "cloud_failed"
        m = scrape(server)
        assert m.value("mmserve_cloud_requests_total", outcome="timeout") == 1
        assert m.value("mmserve_cloud_requests_total", outcome="connect_error") + \
            m.value("mmserve_cloud_requests_total", outcome="bad_response") == 1
        # The endpoint is healthy again: the next call goes there.
        status, headers, body = chat(server, "hello")
        assert status == 200 and route_of(headers) == "cloud" and cloud.count() == 3


def test_the_breaker_opens_after_consecutive_failures(cloud, tmp_path):
    with cloud_server(cloud, tmp_path, ROUTE_CLOUD, "--cloud-retries", "0", "--cloud-breaker-failures", "3",
                      "--cloud-breaker-cooldown", "60000") as server:
        cloud.set_default(("status", 500))
        assert scrape(server).value("mmserve_cloud_breaker_open") == 0
        for n in range(3):
            status, headers, body = local_inference(server, f"b-{n}")
            assert status == 200 and route_of(headers) == "local", body
            assert cloud.count() == n + 1
        status, headers, body = local_inference(server, "b-open")
        assert status == 200 and route_of(headers) == "local", body
        assert is_local_answer(body["output"])
        assert cloud.count() == 3, "the open breaker still called the cloud"
        line = wait_audit(server, "b-open")
        assert line["route"] == "local" and line["route_reason"] == "breaker_open", line
        m = scrape(server)
        assert m.value("mmserve_cloud_breaker_open") == 1
        assert m.value("mmserve_cloud_fallbacks_total", reason="breaker_open") == 1
        assert m.value("mmserve_route_decisions_total", route="local", reason="breaker_open") == 1


# ---- what never leaves ---------------------------------------------------------------------------

def test_findings_and_data_class_keep_calls_local_even_with_route_cloud(cloud, tmp_path):
    with cloud_server(cloud, tmp_path, ROUTE_CLOUD) as server:
        status, headers, _ = chat(server, f"请给{PHONE}回电话", headers={"X-Request-Id": "d-phone"})
        assert status == 200 and route_of(headers) == "local"
        # Nothing the client sends moves a call with findings to the cloud.
        status, headers, _ = chat(server, f"call {PHONE}", headers={"X-Data-Class": "public", "X-Request-Id": "d-pub"})
        assert status == 200 and route_of(headers) == "local"
        for data_class in ("confidential", "personal"):
            status, headers, body = chat(server, "hello", headers={"X-Data-Class": data_class,
                                                                    "X-Request-Id": f"d-{data_class}"})
            assert status == 200 and route_of(headers) == "local", (data_class, status, body)
        status, headers, body = infer(server, "hello", headers={"X-Request-Id": "d-param"},
                                      data_class="confidential", max_tokens=4)
        assert status == 200 and body["route"] == "local" and route_of(headers) == "local", body
        # A looser header does not undo the parameter.
        status, headers, body = infer(server, "hello", headers={"X-Data-Class": "public", "X-Request-Id": "d-both"},
                                      data_class="personal", max_tokens=4)
        assert status == 200 and body["route"] == "local", body
        status, headers, events = sse(server, "/v1/chat/completions", {
            "model": MODEL, "messages": [{"role": "user", "content": f"手机{PHONE}"}], "max_tokens": 4, "stream": True})
        assert status == 200 and route_of(headers) == "local" and events[-1] == "[DONE]"
        assert cloud.count() == 0, [r.json for r in cloud.requests()]
        # The route works: a clean call without a hint does go to the cloud.
        status, headers, _ = chat(server, "hello", headers={"X-Request-Id": "d-clean"})
        assert status == 200 and route_of(headers) == "cloud"
        assert cloud.count() == 1
        reasons = {rid: wait_audit(server, rid)["route_reason"] for rid in
                   ("d-phone", "d-pub", "d-confidential", "d-personal", "d-param", "d-both", "d-clean")}
    assert reasons == {"d-phone": "findings", "d-pub": "findings", "d-confidential": "data_class",
                       "d-personal": "data_class", "d-param": "data_class", "d-both": "data_class",
                       "d-clean": "route_cloud"}, reasons
    assert PHONE not in cloud.raw_bytes().decode("utf-8", errors="replace")


# ---- overflow --------------------------------------------------------------------------------------

def test_overflow_sends_clean_calls_to_the_cloud_only_when_the_queue_is_busy(cloud, tmp_path):
    policy = 'route = "auto"\n\n[overflow]\nqueued = 1\n'
    long_body = {"input": CLEAN, "task": "text-gen", "parameters": {"max_tokens": 480, "ignore_eos": True}}
    with cloud_server(cloud, tmp_path, policy, "--parallel", "1", "--threads", "1") as server:
        status, headers, body = local_inference(server, "o-idle")
        assert status == 200 and route_of(headers) == "local" and cloud.count() == 0
        assert wait_audit(server, "o-idle")["route_reason"] == "not_saturated"

        def text_health():
            return server.health()["text"]

        def timed_post(rid):
            result = server.post("/v1/inference", long_body, headers={"X-Request-Id": rid}, timeout=120)
            return result, time.time()

        attempts = []
        for attempt in range(3):
            sent_before = cloud.count()
            with ThreadPoolExecutor(max_workers=2) as pool:
                running = pool.submit(timed_post, f"o-run-{attempt}")
                deadline = time.time() + 30
                while text_health()["running"] < 1:
                    assert time.time() < deadline and not running.done(), "the long call never ran"
                    time.sleep(0.002)
                waiting = pool.submit(timed_post, f"o-wait-{attempt}")
                while text_health()["waiting"] < 1:
                    assert time.time() < deadline and not waiting.done(), "the second call never waited"
                    time.sleep(0.002)
                status, headers, body = chat(server, "hello", headers={"X-Request-Id": f"o-over-{attempt}"})
                answered = time.time()
                (first, first_ended), (second, _) = running.result(), waiting.result()
            assert first[0] == 200 and second[0] == 200
            assert route_of(first[1]) == "local" and route_of(second[1]) == "local"
            # With --parallel 1 the second long call waits until the first ends: a try where the
            # first was still running when the third call was answered proves that one was
            # waiting at the third's decision. (Otherwise the window was missed: try again.)
            attempts.append((route_of(headers), first_ended - answered))
            if first_ended > answered:
                assert status == 200 and route_of(headers) == "cloud", (status, headers, body)
                assert body["choices"][0]["message"]["content"] == ANSWER
                assert wait_audit(server, f"o-over-{attempt}")["route_reason"] == "overflow"
                assert wait_audit(server, f"o-wait-{attempt}")["route_reason"] == "not_saturated"
                break
        else:
            pytest.fail(f"the long generation always ended before the third call was answered: {attempts}")
        assert cloud.count() == sent_before + 1
        # Nothing waiting any more: clean calls stay here.
        status, headers, _ = chat(server, "hello", headers={"X-Request-Id": "o-after"})
        assert status == 200 and route_of(headers) == "local" and cloud.count() == sent_before + 1
        assert wait_audit(server, "o-after")["route_reason"] == "not_saturated"


# ---- rules per caller, reload ----------------------------------------------------------------------

def test_a_route_rule_sends_only_its_callers_clean_calls_to_the_cloud(cloud, tmp_path):
    # Callers are named by their key: "api-key" (--api-key) and "admin" (--admin-key).
    policy = 'route = "local"\n\n[[rule]]\nname = "admin-to-cloud"\ncallers = ["admin"]\naction = "cloud"\n'
    user, admin = {"Authorization": "Bearer user-key"}, {"Authorization": "Bearer admin-key"}
    with cloud_server(cloud, tmp_path, policy, "--api-key", "user-key", "--admin-key", "admin-key") as server:
        status, headers, _ = chat(server, "from the user", headers={**user, "X-Request-Id": "k-user"})
        assert status == 200 and route_of(headers) == "local"
        status, headers, body = chat(server, "from the admin", headers={**admin, "X-Request-Id": "k-admin"})
        assert status == 200 and route_of(headers) == "cloud", body
        assert body["choices"][0]["message"]["content"] == ANSWER
        status, headers, _ = chat(server, f"admin: {PHONE}", headers={**admin, "X-Request-Id": "k-admin-pii"})
        assert status == 200 and route_of(headers) == "local"
        status, headers, body = infer(server, "user inference", headers={**user, "X-Request-Id": "k-user-2"},
                                      max_tokens=4)
        assert status == 200 and body["route"] == "local"
        sent = [m["content"] for b in cloud.bodies() for m in b["messages"] if m["role"] == "user"]
        assert sent == ["from the admin"], sent
        lines = {rid: wait_audit(server, rid) for rid in ("k-user", "k-admin", "k-admin-pii", "k-user-2")}
    assert lines["k-admin"]["caller"] == "admin" and lines["k-admin"]["rule"] == "admin-to-cloud"
    assert lines["k-admin"]["route_reason"] == "route_cloud", lines["k-admin"]
    assert lines["k-user"]["caller"] == "api-key" and lines["k-user"]["route_reason"] == "route_local"
    assert lines["k-admin-pii"]["route_reason"] == "findings"
    # The cloud got the endpoint's key (none configured here), never the client's.
    assert "user-key" not in cloud.raw_bytes().decode() and "admin-key" not in cloud.raw_bytes().decode()


def test_changing_the_route_in_the_file_moves_the_next_calls(cloud, tmp_path):
    with cloud_server(cloud, tmp_path, 'route = "local"\n') as server:
        status, headers, _ = chat(server, "hello")
        assert status == 200 and route_of(headers) == "local" and cloud.count() == 0
        time.sleep(1.1)  # a new modification time, whatever the file system's resolution
        server.policy.write_text(ROUTE_CLOUD, encoding="utf-8")
        deadline = time.time() + 5
        while route_of(chat(server, "hello")[1]) != "cloud":
            assert time.time() < deadline, "route = cloud was not picked up"
            time.sleep(0.1)
        assert cloud.count() == 1
        status, headers, _ = chat(server, "hello")
        assert status == 200 and route_of(headers) == "cloud" and cloud.count() == 2
        time.sleep(1.1)
        server.policy.write_text('route = "local"\n', encoding="utf-8")
        deadline = time.time() + 5
        while route_of(chat(server, "hello")[1]) != "local":
            assert time.time() < deadline, "route = local was not picked up"
            time.sleep(0.1)
        sent = cloud.count()
        for _ in range(3):
            assert route_of(chat(server, "hello")[1]) == "local"
        assert cloud.count() == sent


# ---- accountability --------------------------------------------------------------------------------

POLICY_WITH_REFUSAL = ROUTE_CLOUD + """
[[rule]]
name = "no-cards"
types = ["bank_card"]
action = "refuse"
"""


def test_every_decision_is_audited_with_route_reason_and_upstream_status(cloud, tmp_path):
    with cloud_server(cloud, tmp_path, POLICY_WITH_REFUSAL, "--cloud-retries", "0") as server:
        assert chat(server, "clean", headers={"X-Request-Id": "a-cloud"})[0] == 200
        assert chat(server, f"手机{PHONE}", headers={"X-Request-Id": "a-pii"})[0] == 200
        assert chat(server, f"卡号{CARD}", headers={"X-Request-Id": "a-card"})[0] == 403
        assert chat(server, "clean", headers={"X-Request-Id": "a-class", "X-Data-Class": "confidential"})[0] == 200
        cloud.script(("status", 500))
        assert chat(server, "clean", headers={"X-Request-Id": "a-failed"})[0] == 200
        cloud.script(("status", 429, 0))
        assert chat(server, "clean", headers={"X-Request-Id": "a-busy"})[0] == 200
        rids = ("a-cloud", "a-pii", "a-card", "a-class", "a-failed", "a-busy")
        lines = {rid: wait_audit(server, rid) for rid in rids}
        text, every = audit_lines(server)
    expected = {
        "a-cloud": ("cloud", "route_cloud", 200, "ok"),
        "a-pii": ("local", "findings", None, "ok"),
        "a-card": ("refused", "rule", None, "refused"),
        "a-class": ("local", "data_class", None, "ok"),
        "a-failed": ("local", "cloud_failed", 500, "ok"),
        "a-busy": ("local", "cloud_failed", 429, "ok"),
    }
    got = {}
    for rid, line in lines.items():
        for key in ("route", "route_reason", "upstream_status"):
            assert key in line, (rid, key, line)
        # The HTTP status of the last upstream answer, as a number or its text; no upstream
        # call: null, 0 or "".
        status = int(line["upstream_status"]) if line["upstream_status"] not in (None, "", 0, "0") else None
        got[rid] = (line["route"], line["route_reason"], status, line["outcome"])
    assert got == expected
    assert findings_of(lines["a-pii"]) == {"cn_mobile": 1} and findings_of(lines["a-card"]) == {"bank_card": 1}
    assert lines["a-card"]["rule"] == "no-cards" and lines["a-class"]["data_class"] == "confidential"
    for line in every:
        assert {"route", "route_reason", "upstream_status"} <= set(line), line
    assert PHONE not in text and CARD not in text and "6222" not in text  # decisions, never values


def test_metrics_count_decisions_findings_attempts_and_what_stayed_local(cloud, tmp_path):
    with cloud_server(cloud, tmp_path, POLICY_WITH_REFUSAL, "--cloud-retries", "0",
                      "--cloud-price-per-1k", "2.5") as server:
        before = scrape(server)

        def delta(after, name, **labels):
            return after.value(name, **labels) - before.value(name, **labels)

        for _ in range(2):
            assert route_of(chat(server, "clean")[1]) == "cloud"
        assert route_of(chat(server, f"手机{PHONE}")[1]) == "local"
        assert route_of(chat(server, f"手机{PHONE}，另一个13912345678")[1]) == "local"
        assert chat(server, f"卡号{CARD}，手机{PHONE}")[0] == 403
        assert route_of(chat(server, "clean", headers={"X-Data-Class": "personal"})[1]) == "local"
        cloud.script(("status", 500))
        assert route_of(chat(server, "clean")[1]) == "local"
        time.sleep(0.3)  # counters of ended calls
        after = scrape(server)
    d = lambda name, **labels: delta(after, name, **labels)  # noqa: E731
    assert d("mmserve_route_decisions_total", route="cloud", reason="route_cloud") == 2
    assert d("mmserve_route_decisions_total", route="local", reason="findings") == 2
    assert d("mmserve_route_decisions_total", route="refused", reason="rule") == 1
    assert d("mmserve_route_decisions_total", route="local", reason="data_class") == 1
    assert d("mmserve_route_decisions_total", route="local", reason="cloud_failed") == 1
    assert after.total("mmserve_route_decisions_total") - before.total("mmserve_route_decisions_total") == 7
    assert d("mmserve_privacy_findings_total", type="cn_mobile") == 4
    assert d("mmserve_privacy_findings_total", type="bank_card") == 1
    assert d("mmserve_cloud_requests_total", outcome="ok") == 2
    assert d("mmserve_cloud_requests_total", outcome="http_5xx") == 1
    assert d("mmserve_cloud_request_seconds_count") == 3
    assert d("mmserve_cloud_fallbacks_total", reason="cloud_failed") == 1
    assert after.value("mmserve_cloud_breaker_open") == 0
    kept = d("mmserve_tokens_kept_local_total")
    assert kept > 0  # four calls ran here, prompt and completion tokens
    assert d("mmserve_cloud_cost_saved_total") == pytest.approx(kept * 2.5 / 1000, rel=1e-6)


# ---- only text goes out ----------------------------------------------------------------------------

def test_speech_calls_stay_local_under_route_cloud(cloud, tmp_path):
    from speech_support import FIXTURE, multipart, tone, wav_bytes
    if not FIXTURE.exists():
        pytest.skip(f"needs {FIXTURE} (absent)")
    with cloud_server(cloud, tmp_path, ROUTE_CLOUD, "--whisper-model", FIXTURE, "-t", "1") as server:
        audio = wav_bytes(tone(1.0))
        status, headers, body = server.post("/v1/inference", {
            "task": "speech-transcribe", "input": base64.b64encode(audio).decode(), "parameters": {}},
            headers={"X-Request-Id": "s-infer"}, timeout=120)
        assert status == 200, body
        assert route_of(headers) == "local" and body["route"] == "local", (headers, body)
        form, ctype = multipart({"model": "whisper-1"}, {"file": ("audio.wav", audio)})
        status, headers, body = server.post("/v1/audio/transcriptions", form, timeout=120,
                                            headers={"Content-Type": ctype, "X-Request-Id": "s-form"})
        assert status == 200 and route_of(headers) == "local", (status, headers, body)
        assert cloud.count() == 0, cloud.requests()
        # The route itself works: text goes out.
        status, headers, _ = chat(server, "hello")
        assert status == 200 and route_of(headers) == "cloud" and cloud.count() == 1
        assert wait_audit(server, "s-infer")["route_reason"] == "task"
        assert wait_audit(server, "s-form")["route_reason"] == "task"
