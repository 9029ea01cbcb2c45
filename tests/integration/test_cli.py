"""The mmserve executable as a user runs it: outputs, exit codes and one-line errors."""
import os
import subprocess
from pathlib import Path

import pytest

from conftest import BIN, GOLDEN, STORIES, needs_stories  # noqa: E402



def mmserve(*args, env=None):
    full_env = dict(os.environ)
    full_env.pop("MMSERVE_MODEL", None)
    full_env.update(env or {})
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, timeout=120,
                          env=full_env)


def assert_one_line_error(proc, *needles):
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mmserve: error:"), proc.stderr
    for needle in needles:
        assert needle in lines[0], proc.stderr
    assert "Aborted" not in proc.stderr and proc.returncode > 0


@needs_stories
def test_generate_greedy_prints_the_golden_continuation():
    proc = mmserve("generate", "-m", STORIES, "--temp", "0", "Once upon a time")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(GOLDEN)
    assert proc.stderr == ""


@needs_stories
def test_generate_from_environment_model():
    proc = mmserve("generate", "--temp", "0", "-n", "8", "Once upon a time",
                   env={"MMSERVE_MODEL": str(STORIES)})
    assert proc.returncode == 0, proc.stderr
    assert GOLDEN.startswith(proc.stdout.strip()[:20])


@needs_stories
def test_generate_seeded_sampling_is_reproducible():
    args = ("generate", "-m", STORIES, "--temp", "1", "--seed", "1234", "-n", "32", "Once")
    first, second = mmserve(*args), mmserve(*args)
    assert first.returncode == 0 and first.stdout == second.stdout


@needs_stories
def test_generate_chat_without_template_is_a_clear_error():
    assert_one_line_error(mmserve("generate", "-m", STORIES, "--chat", "hi"), "no chat template")


@needs_stories
def test_info_reports_the_model_facts():
    proc = mmserve("info", STORIES)
    assert proc.returncode == 0, proc.stderr
    facts = dict(line.split(":", 1) for line in proc.stdout.splitlines())
    facts = {k.strip(): v.strip() for k, v in facts.items()}
    assert facts["architecture"] == "llama"
    assert facts["layers"] == "5"
    assert facts["attention heads"] == "8"
    assert facts["kv heads"] == "4"
    assert facts["vocabulary"] == "512"
    assert facts["context length"] == "512"
    assert facts["file type"] == "F32"
    assert facts["tensor types"].startswith("f32")
    assert facts["mixture of experts"] == "no"
    assert facts["chat template"] == "no"


def test_version_names_the_engines():
    proc = mmserve("--version")
    assert proc.returncode == 0
    assert "llama.cpp" in proc.stdout and "whisper.cpp 1.9.1" in proc.stdout
    assert "ggml 0.25.1" in proc.stdout


def test_missing_model_file(tmp_path):
    assert_one_line_error(mmserve("generate", "-m", tmp_path / "none.gguf", "hi"), "not found")


def test_not_a_gguf_file(tmp_path):
    bogus = tmp_path / "bogus.gguf"
    bogus.write_text("hello, I am a text file\n")
    assert_one_line_error(mmserve("generate", "-m", bogus, "hi"), "not a GGUF file")
    assert_one_line_error(mmserve("info", bogus), "not a GGUF file")


@needs_stories
def test_truncated_model_file(tmp_path):
    data = STORIES.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: len(data) * 2 // 3])
    assert_one_line_error(mmserve("generate", "-m", cut, "hi"), "truncated")


def test_no_model_anywhere_says_where_it_looked(tmp_path):
    proc = mmserve("generate", "hi", env={"MMSERVE_MODELS_DIR": str(tmp_path)})
    assert_one_line_error(proc, str(tmp_path), "MMSERVE_MODEL")


def test_bad_arguments_exit_2():
    proc = mmserve("generate", "--temp", "hot", "hi")
    assert proc.returncode == 2 and "--temp" in proc.stderr
    assert mmserve("frobnicate").returncode == 2


@needs_stories
def test_out_of_range_sampling_is_rejected():
    proc = mmserve("generate", "-m", STORIES, "--top-p", "0", "hi")
    assert proc.returncode == 2 and "top_p" in proc.stderr
