"""serve --privacy-policy and --audit-log: rules that refuse requests holding personal data,
keywords, the dry run showing the same decision, reload without restart, and an audit line per
decision that never holds a value."""
import json
import subprocess
import time

from conftest import BIN, STORIES, running_server

POLICY = """
keywords = ["青龙"]

[[rule]]
name = "no-cards"
types = ["bank_card", "cn_resident_id"]
action = "refuse"
"""
CARD = "请从卡号6222021234567890128扣款"


def infer(server, text, rid):
    return server.post("/v1/inference", {"input": text, "task": "text-gen", "parameters": {"max_tokens": 2}},
                       headers={"X-Request-Id": rid})


def test_rules_refuse_and_every_decision_is_audited(tmp_path):
    policy, audit = tmp_path / "privacy.toml", tmp_path / "audit.jsonl"
    policy.write_text(POLICY, encoding="utf-8")
    with running_server("-m", STORIES, "--privacy-policy", policy, "--audit-log", audit) as server:
        status, headers, body = infer(server, CARD, "pol-1")
        assert status == 403 and body["error"]["type"] == "permission_error" and body["error"]["param"] == "input"
        assert "no-cards" in body["error"]["message"] and "6222" not in body["error"]["message"]
        assert "X-Mmserve-Route" not in headers
        status, headers, body = infer(server, "项目青龙 Once", "pol-2")
        assert status == 200 and body["route"] == "local"
        status, _, body = server.post("/v1/privacy/scan", {"input": CARD + "，项目青龙"})
        assert status == 200
        assert body["route"] == "refused" and body["rule"] == "no-cards"
        assert body["counts"] == {"bank_card": 1, "keyword": 1}

        # Reload: without the rule the card is let through (and stays local).
        policy.write_text('keywords = ["青龙"]\n', encoding="utf-8")
        deadline = time.time() + 10
        while infer(server, CARD, "pol-3")[0] != 200:
            assert time.time() < deadline, "the policy was not reloaded"
            time.sleep(0.2)
        # A broken file is reported and the last good policy stays in force.
        policy.write_text("rule = [\n", encoding="utf-8")
        time.sleep(1.2)
        assert infer(server, CARD, "pol-4")[0] == 200
    stderr = server.proc.stderr.read()
    assert "privacy policy" in stderr and "reloaded" in stderr and "the last good one stays" in stderr
    lines = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
    by_id = {}
    for line in lines:
        by_id.setdefault(line["request_id"], []).append(line)
    assert by_id["pol-1"] == [{**by_id["pol-1"][0], "outcome": "refused", "route": "refused", "rule": "no-cards",
                               "findings": {"bank_card": 1}}]
    [kept] = by_id["pol-2"]
    assert kept["outcome"] == "ok" and kept["route"] == "local" and kept["findings"] == {"keyword": 1}
    assert kept["model"] == "stories260K" and kept["caller"] == "anonymous"
    assert by_id["pol-4"][0]["rule"] == "default"
    text = audit.read_text(encoding="utf-8")
    assert "6222" not in text and "青龙" not in text  # decisions, never values


def test_a_bad_policy_stops_the_server_at_startup(tmp_path):
    policy = tmp_path / "privacy.toml"
    policy.write_text('[[rule]]\ntypes = ["credit_card"]\naction = "refuse"\n', encoding="utf-8")
    run = subprocess.run([BIN, "serve", "-m", STORIES, "--port", "0", "--privacy-policy", str(policy)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "unknown finding type 'credit_card'" in run.stderr
    assert f"{policy}:2" in run.stderr
