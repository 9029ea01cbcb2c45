"""The README's data-flywheel walk, end to end as a user runs it: a server capturing its calls,
feedback correcting its answers, the corrected conversations exported, a fine-tune on them, and
the fine-tuned model registered beside the current one without a restart, answering toward the
corrections while the base answers as before."""
import json
import os
import subprocess
import time

from conftest import BIN, STORIES, needs_stories, running_server

pytestmark = needs_stories
PIP = "The little robot named Pip loved to paint blue stars on the old red barn."
QUESTIONS = ["Tell me about the little robot.", "Who paints the barn?", "What did Pip love?",
             "A story about a robot, please.", "What is on the old red barn?"]


def mmserve(*args, timeout=120):
    env = {k: v for k, v in os.environ.items() if k not in ("MMSERVE_DB", "MMSERVE_CAPTURE_DB")}
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


def continuation(server, model):
    status, _, body = server.post("/v1/completions", {"model": model, "prompt": "The little robot",
                                                      "max_tokens": 16, "temperature": 0})
    assert status == 200, body
    return body["choices"][0]["text"]


def test_capture_feedback_export_finetune_and_serve_side_by_side(tmp_path):
    capture = tmp_path / "capture.db"
    with running_server("-m", STORIES, "--capture-db", capture, "--capture", "all",
                        "--threads", "1") as server:
        before = continuation(server, "stories260K")
        # 1. Calls are captured; 2. feedback corrects each answer.
        ids = []
        for round_ in range(8):
            for question in QUESTIONS:
                status, _, out = server.post("/v1/chat/completions", {
                    "messages": [{"role": "user", "content": question}], "max_tokens": 8,
                    "temperature": 0.8, "seed": round_})
                assert status == 200, out
                ids.append(out["id"])
        for response_id in ids:
            status, _, out = server.post("/v1/feedback", {"id": response_id, "rating": "down",
                                                          "correction": PIP})
            assert status == 200, out
        # 3. Export (the writer is asynchronous: wait until every record is there).
        deadline = time.monotonic() + 30
        while True:
            listed = mmserve("dataset", "list", "--json", "--capture-db", capture)
            assert listed.returncode == 0, listed.stderr
            # Every chat, and the completion before them: `all` captures every completed call.
            if len(json.loads(listed.stdout)) == len(ids) + 1 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        train = tmp_path / "train.jsonl"
        exported = mmserve("dataset", "export", "--format", "openai", "-o", train, "--capture-db", capture)
        assert exported.returncode == 0, exported.stderr
        lines = [json.loads(line) for line in train.read_text().splitlines()]
        assert len(lines) == len(ids) + 1
        corrected = [line for line in lines if line["messages"][0]["content"] in QUESTIONS]
        assert len(corrected) == len(ids)
        assert all(line["messages"][-1] == {"role": "assistant", "content": PIP, "weight": 1}
                   for line in corrected), corrected[0]
        # 4. Fine-tune a separate copy; the serving model is untouched.
        tuned = tmp_path / "pip.gguf"
        run = mmserve("finetune", "--base", STORIES, "--data", train, "-o", tuned, "--epochs", "4",
                      "--lr", "3e-4", "--threads", "1", timeout=300)
        assert run.returncode == 0, run.stderr
        losses = [float(line.split("train loss ")[1].split(",")[0])
                  for line in run.stderr.splitlines() if line.startswith("epoch ")]
        assert len(losses) == 4 and losses[-1] < losses[0], run.stderr
        # 5. Served beside the base without a restart.
        status, _, out = server.post("/models/register", {"name": "pip", "path": str(tuned)})
        assert status == 201, out
        after = continuation(server, "pip")
        assert continuation(server, "stories260K") == before
        assert after != before
        pip_words = set(PIP.lower().strip(".").split())
        hits = lambda text: sum(word.strip(".,") in pip_words for word in text.lower().split())
        assert hits(after) > hits(before), (before, after)
