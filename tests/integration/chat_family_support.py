"""Synthetic models of real chat families for the format tests: `mmserve synth llm` with the
family's own Jinja template from the pinned llama.cpp tree (models/templates) and its special
tokens. Random weights write gibberish, so tests steer them with logit_bias toward a family's
markup tokens (the ids synth prints); grammars and parsers do the rest, as with a real model."""
import contextlib
import glob
import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import BIN, running_server


def llama_templates_dir():
    """models/templates of the pinned llama.cpp tree: CMake passes it; else the deps cache."""
    given = os.environ.get("MMSERVE_LLAMA_TEMPLATES")
    if given and Path(given).is_dir():
        return Path(given)
    cache = Path(os.environ.get("MMSERVE_CACHE", Path.home() / ".cache/mmserve"))
    found = sorted(glob.glob(str(cache / "deps-*/src/llama.cpp/models/templates")))
    if not found:
        pytest.skip("needs the pinned llama.cpp tree (scripts/deps.sh) for its chat templates")
    return Path(found[-1])


# Each family: its template file in llama.cpp's tree and the special tokens that template writes.
# "\n" is listed to learn its id (an existing token keeps its id and type).
FAMILIES = {
    # Qwen3: <think> reasoning, <tool_call>{json}</tool_call> calls (Hermes style).
    "qwen3": ("Qwen-Qwen3-0.6B.jinja",
              ["<|im_start|>", "<|im_end|>", "<think>", "</think>", "<tool_call>", "</tool_call>",
               "<tool_response>", "</tool_response>", "\n"]),
    # Magistral Small 1.2's format (the reasoning Mistral template in the tree, with Magistral's
    # default system prompt): [THINK]...[/THINK], [TOOL_CALLS]name[ARGS]{json}.
    "magistral": ("mistralai-Ministral-3-14B-Reasoning-2512.jinja",
                  ["[INST]", "[/INST]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[THINK]", "[/THINK]",
                   "[TOOL_CALLS]", "[ARGS]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
                   "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[IMG]", "[IMG_BREAK]", "[IMG_END]"]),
    # No template: the server's ChatML, and tools in the generic JSON format.
    "plain": (None, []),
}


def make_family_model(family, directory):
    """Writes the family's model; returns (path, {token: id})."""
    template, tokens = FAMILIES[family]
    path = Path(directory) / f"{family}.gguf"
    cmd = [BIN, "synth", "llm", "-o", str(path), "--untied", "--vocab", "1024"]
    if template:
        cmd += ["--chat-template-file", str(llama_templates_dir() / template),
                "--special-tokens", ",".join(tokens)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # re.S: the line of "\n" is printed across two lines.
    ids = {m.group(1): int(m.group(2))
           for m in re.finditer(r"^special token (.+?) = (\d+)$", out.stdout, re.M | re.S)}
    return path, ids


@contextlib.contextmanager
def family_server(family, directory, parallel=2):
    """A server of the family's model, one thread (grammar-heavy tests stay fast beside others:
    ggml's threads spin at each barrier when a core is taken); `server.ids` are its token ids."""
    path, ids = make_family_model(family, directory)
    with running_server("-m", path, "--parallel", parallel, "--threads", "1") as server:
        server.ids = ids
        yield server
