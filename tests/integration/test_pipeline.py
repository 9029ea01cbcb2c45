"""The pipeline over HTTP: every API call is admitted (authenticated) before its body is read,
carries the client's data-class hint and who called, and the admin key is the authentication
stage's business rather than each route's."""
import json

from conftest import STORIES, running_server

AUTH = {"Authorization": "Bearer user-key"}
ADMIN = {"Authorization": "Bearer admin-key"}
TEXT = {"input": "Once", "task": "text-gen", "parameters": {"max_tokens": 2}}


def log_lines(stderr):
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_authentication_comes_before_the_body_is_read():
    with running_server("-m", STORIES, "--api-key", "user-key", "--admin-key", "admin-key") as server:
        # A body that is not even JSON: without a key the answer is 401, not 400.
        status, _, body = server.post("/v1/inference", "{not json")
        assert status == 401 and body["error"]["type"] == "authentication_error"
        status, _, body = server.post("/v1/inference", "{not json", headers=AUTH)
        assert status == 400 and body["error"]["type"] == "invalid_request_error"
        # Unknown routes under /v1 are not revealed to a client without a key.
        assert server.get("/v1/no-such-route")[0] == 401
        assert server.get("/v1/no-such-route", headers=AUTH)[0] == 404
        # The admin key opens the API too; the user key does not open the admin endpoints.
        assert server.post("/v1/inference", TEXT, headers=ADMIN)[0] == 200
        status, _, body = server.post("/models/unload", {"model": "stories260K"}, headers=AUTH)
        assert status == 403 and "admin key" in body["error"]["message"]
        # Probes and the scrape need no key.
        assert server.get("/ready")[0] == 200 and server.get("/metrics")[0] == 200


def test_the_data_class_hint_is_checked_and_logged_with_the_caller():
    with running_server("-m", STORIES, "--api-key", "user-key") as server:
        status, _, body = server.post("/v1/inference", TEXT, headers={**AUTH, "X-Data-Class": "top-secret"})
        assert status == 400 and body["error"]["param"] == "X-Data-Class"
        assert "public, internal, personal or confidential" in body["error"]["message"]
        status, _, body = server.post("/v1/inference", TEXT,
                                      headers={**AUTH, "X-Data-Class": "Personal", "X-Request-Id": "dc-1"})
        assert status == 200, body
        status, _, _ = server.post("/v1/chat/completions",
                                   {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
                                   headers={**AUTH, "X-Request-Id": "dc-2"})
        assert status == 200
    by_id = {line["id"]: line for line in log_lines(server.proc.stderr.read())}
    assert by_id["dc-1"]["data_class"] == "personal" and by_id["dc-1"]["caller"] == "api-key"
    assert by_id["dc-1"]["route"] == "local" and by_id["dc-1"]["model"] == "stories260K"
    assert "data_class" not in by_id["dc-2"] and by_id["dc-2"]["caller"] == "api-key"
    assert all("user-key" not in json.dumps(line) for line in by_id.values())  # never the secret


def test_without_keys_callers_are_anonymous():
    with running_server("-m", STORIES) as server:
        status, _, _ = server.post("/v1/inference", TEXT, headers={"X-Request-Id": "anon-1"})
        assert status == 200
    [line] = [line for line in log_lines(server.proc.stderr.read()) if line["id"] == "anon-1"]
    assert line["caller"] == "anonymous"


def test_the_privacy_stage_notes_findings_and_every_answer_says_where_it_ran():
    secret = "我的手机13812345678，卡号6222021234567890128"
    with running_server("-m", STORIES) as server:
        status, headers, body = server.post("/v1/inference", {**TEXT, "input": secret},
                                            headers={"X-Request-Id": "pii-1"})
        assert status == 200 and body["route"] == "local" and headers["X-Mmserve-Route"] == "local"
        status, headers, _ = server.post("/v1/chat/completions",
                                         {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
                                         headers={"X-Request-Id": "pii-2"})
        assert status == 200 and headers["X-Mmserve-Route"] == "local"
        events = list(server.stream("/v1/inference", {**TEXT, "stream": True}))
        assert events[-1] == "[DONE]" and events[-2]["route"] == "local"
        status, headers, _ = server.post("/v1/inference", {"task": "text-gen"})
        assert status == 400 and "X-Mmserve-Route" not in headers  # refused before any route
    by_id = {line["id"]: line for line in log_lines(server.proc.stderr.read())}
    assert by_id["pii-1"]["findings"] == "cn_mobile:1,bank_card:1"
    assert "findings" not in by_id["pii-2"]
    assert "13812345678" not in json.dumps(by_id["pii-1"])


def test_privacy_scan_is_a_dry_run_with_spans_and_the_decision():
    text = "身份证:110101199003071233 发票金额¥1,234.56"
    with running_server("-m", STORIES, "--api-key", "user-key") as server:
        assert server.post("/v1/privacy/scan", {"input": text})[0] == 401
        status, _, body = server.post("/v1/privacy/scan", {"input": text}, headers=AUTH)
        assert status == 200, body
        [finding] = body["findings"]
        raw = text.encode()
        assert finding["type"] == "cn_resident_id" and finding["checksum_verified"] is True
        assert raw[finding["begin"]:finding["end"]] == b"110101199003071233"
        assert body["counts"] == {"cn_resident_id": 1}
        assert body["route"] == "local" and body["reason"] == "findings"
        status, _, body = server.post("/v1/privacy/scan", {"text": text}, headers=AUTH)
        assert status == 400 and body["error"]["param"] == "text"
        status, _, body = server.post("/v1/privacy/scan", {}, headers=AUTH)
        assert status == 400 and body["error"]["param"] == "input"
