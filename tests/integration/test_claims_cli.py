"""README: "A missing, unreadable, non-GGUF or truncated model file gives one line on stderr and
exit 1; bad arguments give exit 2." Exactly those codes, for each command that loads a model."""
import os
import subprocess

import pytest

from conftest import BIN, STORIES, needs_stories

COMMANDS = [["generate", "-n", "1", "hi", "-m"], ["info"], ["serve", "--port", "0", "-m"]]


def mmserve(*args, **extra_env):
    env = {k: v for k, v in os.environ.items() if k != "MMSERVE_MODEL"}
    env.update(extra_env)
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, timeout=60,
                          env=env)


def bad_files(tmp_path):
    files = {"missing": tmp_path / "missing.gguf"}
    files["not-gguf"] = tmp_path / "text.gguf"
    files["not-gguf"].write_text("not a model at all\n" * 10)
    files["directory"] = tmp_path / "dir.gguf"  # unreadable as a file (root reads any file)
    files["directory"].mkdir()
    if STORIES.exists():
        files["truncated"] = tmp_path / "truncated.gguf"
        files["truncated"].write_bytes(STORIES.read_bytes()[:4096])
    return files


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_bad_model_file_is_one_line_and_exit_1(tmp_path, command):
    for kind, path in bad_files(tmp_path).items():
        proc = mmserve(*command, path)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1, (kind, proc.returncode, proc.stderr)
        assert len(lines) == 1 and lines[0].startswith("mmserve: error:"), (kind, proc.stderr)
        assert str(path) in lines[0] or path.name in lines[0], (kind, lines)


@needs_stories
@pytest.mark.parametrize("args", [
    ["generate", "-m", STORIES, "--no-such-option", "hi"],
    ["generate", "-m", STORIES, "-n", "lots", "hi"],
    ["serve", "-m", STORIES, "--parallel", "0"],
    ["serve", "-m", STORIES, "--port"],
], ids=["unknown-option", "not-a-number", "out-of-range", "missing-value"])
def test_bad_arguments_exit_2(args):
    proc = mmserve(*args)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stderr.strip().splitlines()[-1].startswith("mmserve: error:"), proc.stderr


@pytest.mark.parametrize("command", [["generate", "hi"], ["info"], ["serve", "--port", "0"]],
                         ids=lambda c: c[0])
def test_no_model_anywhere_is_one_line_and_exit_1(tmp_path, command):
    proc = mmserve(*command, MMSERVE_MODELS_DIR=str(tmp_path))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert len(lines) == 1 and "none found" in lines[0] and str(tmp_path) in lines[0], lines
