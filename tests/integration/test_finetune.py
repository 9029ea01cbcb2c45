"""`mmserve finetune` on stories260K: the loss falls, the saved model loads, serves and continues
toward the data; bad inputs are refused before training; SIGINT stops between epochs."""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import BIN, STORIES, needs_stories, running_server

pytestmark = needs_stories

SENTENCE = "The little robot named Pip loved to paint blue stars on the old red barn."
PROMPT = "The little robot"
# The sentence's own words a trained model should continue the prompt with (not "to", "the").
TARGET_WORDS = {"named", "pip", "loved", "paint", "blue", "stars", "old", "red", "barn"}
# A down-voted answer (weight 0): never in the training text.
REJECTED = "Grumpy wizards eat cold purple soup."

EPOCH = re.compile(r"^epoch (\d+)/(\d+): train loss ([0-9.]+)(?:, val loss ([0-9.]+))?, "
                   r"(\d+) tokens, ([0-9.]+) s$")
THREADS = "1"  # the CI box's two cores are shared


def mmserve(*args, timeout=120):
    env = dict(os.environ)
    env.pop("MMSERVE_MODEL", None)
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def write_openai_data(path, n=40):
    questions = ["Tell me about Pip.", "Who paints the barn?", "What does the robot do?",
                 "Say something about the farm."]
    with open(path, "w") as f:
        for i in range(n):
            messages = [{"role": "user", "content": questions[i % len(questions)]},
                        {"role": "assistant", "content": SENTENCE, "weight": 1}]
            if i % 10 == 0:  # a later turn the user rated down
                messages += [{"role": "user", "content": "And then?"},
                             {"role": "assistant", "content": REJECTED, "weight": 0}]
            f.write(json.dumps({"messages": messages}) + "\n")
    return path


def epochs_of(stderr):
    return [EPOCH.match(line) for line in stderr.splitlines() if EPOCH.match(line)]


def greedy(model, prompt=PROMPT, n=24):
    proc = mmserve("generate", "-m", model, "--temp", "0", "-n", n, "-t", THREADS, prompt)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def target_words_in(text):
    return len(TARGET_WORDS & set(re.findall(r"\w+", text.lower())))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("finetune")
    data = write_openai_data(tmp / "data.jsonl")
    out = tmp / "pip.gguf"
    start = time.time()
    proc = mmserve("finetune", "--base", STORIES, "--data", data, "-o", out, "--epochs", "4",
                   "--lr", "3e-4", "--threads", THREADS)
    elapsed = time.time() - start
    assert proc.returncode == 0, proc.stderr
    print(f"\nfinetune of stories260K in {elapsed:.1f} s:\n{proc.stderr}")
    return {"out": out, "stderr": proc.stderr, "data": data, "tmp": tmp}


def test_loss_falls_epoch_by_epoch(trained):
    epochs = epochs_of(trained["stderr"])
    assert [int(m.group(1)) for m in epochs] == [1, 2, 3, 4], trained["stderr"]
    train = [float(m.group(3)) for m in epochs]
    val = [float(m.group(4)) for m in epochs]
    assert train[-1] < train[0], train
    assert val[-1] < val[0], val
    assert all(int(m.group(5)) > 0 for m in epochs)
    lines = trained["stderr"].strip().splitlines()
    assert lines[-1].startswith(f"finetune: wrote {trained['out']} (4 epochs")
    # The plan line: read as OpenAI chat, without a template (stories260K has none), the four
    # down-voted turns (and the questions before them) dropped.
    assert "openai: 40 examples as plain text" in lines[0], lines[0]
    assert "8 turns dropped" in lines[0], lines[0]


def test_saved_model_continues_toward_the_data(trained):
    before = greedy(STORIES)
    after = greedy(trained["out"])
    assert target_words_in(after) > target_words_in(before), (before, after)
    assert "Pip" in after, after
    assert "purple" not in after and "wizards" not in after


def test_saved_model_keeps_the_base_metadata(trained):
    base = mmserve("info", STORIES).stdout
    tuned = mmserve("info", trained["out"]).stdout
    field = lambda text, key: re.search(rf"^{key}:\s+(.*)$", text, re.M).group(1)  # noqa: E731
    for key in ("architecture", "context length", "vocabulary", "parameters", "file type"):
        assert field(tuned, key) == field(base, key), key


def test_saved_model_serves(trained):
    expected = greedy(trained["out"], n=16)
    with running_server("-m", trained["out"], "--threads", THREADS) as server:
        body = server.infer(PROMPT, max_tokens=16, temperature=0)
    text = json.dumps(body)
    assert "Pip" in text, body
    assert expected.split()[0] in text, (expected, body)


def test_plain_text_data_trains_too(trained):
    text = trained["tmp"] / "story.txt"
    text.write_text((SENTENCE + "\n") * 40)
    out = trained["tmp"] / "story.gguf"
    proc = mmserve("finetune", "--base", STORIES, "--data", text, "-o", out, "--epochs", "1",
                   "--val-split", "0", "--threads", THREADS)
    assert proc.returncode == 0, proc.stderr
    assert "text: 1 examples as plain text" in proc.stderr
    (epoch,) = epochs_of(proc.stderr)
    assert epoch.group(4) is None  # no validation side
    assert out.stat().st_size > 0


def refused(args, *needles, out=None):
    proc = mmserve("finetune", *args)
    assert proc.returncode not in (0, 130) and proc.returncode > 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[0].startswith("mmserve: error:"), proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr
    assert not epochs_of(proc.stderr), "trained before refusing"
    if out is not None:
        assert not os.path.exists(out), "wrote an output anyway"
    return proc


def test_bad_inputs_are_refused_before_training(trained, tmp_path):
    data = trained["data"]
    out = tmp_path / "never.gguf"
    base = ["--base", STORIES, "-o", out, "--threads", THREADS]
    # Quantized weights: llama_opt trains F32 only.
    q8 = tmp_path / "q8.gguf"
    assert mmserve("quantize", STORIES, q8, "Q8_0").returncode == 0
    refused(["--base", q8, "--data", data, "-o", out], "q8_0", "convert to F32 first", out=out)
    # Architectures libllama's trainer is not driven on here.
    bert = tmp_path / "bert.gguf"
    assert mmserve("synth", "embed", "-o", bert, "--type", "f32").returncode == 0
    refused(["--base", bert, "--data", data, "-o", out], "architecture 'bert' is not supported",
            out=out)
    refused(["--base", tmp_path / "none.gguf", "--data", data, "-o", out], "not found", out=out)
    # Malformed datasets name their line.
    bad = tmp_path / "bad.jsonl"
    lines = data.read_text().splitlines()
    bad.write_text("\n".join(lines[:2] + ["{\"messages\": [oops"] + lines[2:]) + "\n")
    refused([*base, "--data", bad], "bad.jsonl line 3: not valid JSON", out=out)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    refused([*base, "--data", empty], "empty", out=out)
    short = tmp_path / "short.jsonl"
    short.write_text(lines[1] + "\n")
    refused([*base, "--data", short], "fewer than one window of 256", out=out)
    refused([*base, "--data", tmp_path / "missing.jsonl"], "cannot open training data", out=out)
    # Outputs that cannot be written, checked before training.
    refused(["--base", STORIES, "--data", data, "-o", tmp_path / "no" / "dir" / "x.gguf"],
            "cannot write the output")
    refused(["--base", STORIES, "--data", data, "-o", tmp_path], "is a directory")
    # Bad numbers and names.
    for flag, value, needle in [("--epochs", "0", "--epochs"), ("--lr", "-1", "--lr"),
                                ("--lr", "fast", "--lr"), ("--val-split", "0.9", "--val-split"),
                                ("--ctx", "100", "multiple of 256"),
                                ("--threads", "-2", "--threads"),
                                ("--format", "csv", "unknown data format")]:
        refused([*base, "--data", data, flag, value], needle, out=out)
    # Missing required options: a usage error (exit 2).
    proc = refused(["--base", STORIES, "--data", data], "-o are required")
    assert proc.returncode == 2


def start_training(tmp_path, epochs=200):
    out = tmp_path / "stopped.gguf"
    data = write_openai_data(tmp_path / "data.jsonl")
    proc = subprocess.Popen([BIN, "finetune", "--base", str(STORIES), "--data", str(data), "-o",
                             str(out), "--epochs", str(epochs), "--threads", THREADS],
                            stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:  # wait for the first epoch to end
        seen.append(line)
        if line.startswith("epoch 1/"):
            break
    else:
        raise AssertionError("no epoch line: " + "".join(seen))
    return proc, out, seen


def test_sigint_stops_after_the_epoch_and_saves(tmp_path):
    proc, out, seen = start_training(tmp_path)
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130, rest
    stderr = "".join(seen) + rest
    assert "stopping after this epoch" in stderr
    done = epochs_of(stderr)
    assert 1 <= len(done) < 200
    assert f"finetune: stopped: wrote {out} ({len(done)} of 200 epochs" in stderr, stderr
    assert greedy(out)  # loads and generates


def test_second_signal_exits_at_once_without_writing(tmp_path):
    proc, out, _ = start_training(tmp_path)
    # Both at once (two kinds: two pending signals of one kind merge into one). Waiting between
    # them races the save: a first signal that lands just before the check after an epoch makes
    # the save start at once, and it can be done before a later second one arrives.
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130, rest
    assert "exiting without writing" in rest, rest
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name]


CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|im_start|>assistant\\n' }}{% endif %}")


def test_a_model_with_a_chat_template_trains_on_rendered_chats_and_keeps_it(tmp_path):
    template = tmp_path / "chatml.jinja"
    template.write_text(CHATML)
    base = tmp_path / "chat32.gguf"
    made = mmserve("synth", "llm", "-o", base, "--type", "f32", "--layers", "1", "--embd", "64",
                   "--vocab", "1024", "--context", "512", "--chat-template-file", template,
                   "--special-tokens", "<|im_start|>,<|im_end|>")
    assert made.returncode == 0, made.stderr
    out = tmp_path / "chat-tuned.gguf"
    data = write_openai_data(tmp_path / "data.jsonl")
    proc = mmserve("finetune", "--base", base, "--data", data, "-o", out, "--epochs", "2",
                   "--threads", THREADS)
    assert proc.returncode == 0, proc.stderr
    assert "40 examples as chat" in proc.stderr, proc.stderr
    train = [float(m.group(3)) for m in epochs_of(proc.stderr)]
    assert train[-1] < train[0], train
    info = mmserve("info", out).stdout
    assert re.search(r"^chat template:\s+yes", info, re.M), info
    assert re.search(r"^context length:\s+512", info, re.M), info
    chat = mmserve("generate", "-m", out, "--chat", "--temp", "0", "-n", "4", "-t", THREADS, "hi")
    assert chat.returncode == 0, chat.stderr
