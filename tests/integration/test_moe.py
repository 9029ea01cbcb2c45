"""Mixture of experts: total and active parameters per token (`mmserve info`, /v1/models), and
--cpu-moe / --n-cpu-moe keeping the routed experts in system memory (libllama's tensor buffer
overrides), on a synthetic MoE model of the moe-small preset's widths, two layers deep."""
import json
import subprocess

import pytest

from conftest import BIN, STORIES, running_server

LAYERS, EMBD, FF, EXPERTS, USED = 2, 768, 1536, 8, 2  # the moe-small preset's, two layers


@pytest.fixture(scope="module")
def moe_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("moe") / "moe.gguf"
    subprocess.run([BIN, "synth", "llm", "--preset", "moe-small", "--layers", str(LAYERS), "-o", str(path)],
                   check=True, capture_output=True, timeout=120)
    return path


def info(path):
    proc = subprocess.run([BIN, "info", str(path), "--json"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_info_counts_the_experts_a_token_is_not_routed_to_out_of_the_active_parameters(moe_model):
    facts = info(moe_model)
    # Each layer's routed experts: up, gate and down, EXPERTS of them, EMBD x FF each.
    experts = LAYERS * 3 * EXPERTS * EMBD * FF
    assert facts["mixture_of_experts"] and facts["experts"] == EXPERTS and facts["experts_used"] == USED
    assert facts["active_parameters"] == facts["parameters"] - experts + experts * USED // EXPERTS
    text = subprocess.run([BIN, "info", str(moe_model)], capture_output=True, text=True).stdout
    assert "2 used per token" in text and "parameters active per token" in text


def test_a_dense_model_has_all_its_parameters_active():
    facts = info(STORIES)
    assert not facts["mixture_of_experts"] and facts["active_parameters"] == facts["parameters"]


def served_meta(*args):
    with running_server(*args, "--parallel", "1", "-c", "256") as server:
        status, _, body = server.post("/v1/inference", {"task": "text-gen", "input": "Once",
                                                        "parameters": {"max_tokens": 3, "ignore_eos": True}})
        assert status == 200 and body["usage"]["completion_tokens"] == 3, body
        return server.get("/v1/models")[2]["data"][0]["meta"]


@pytest.mark.parametrize("flags,tensors", [(["--cpu-moe"], LAYERS * 3), (["--n-cpu-moe", "1"], 3)])
def test_cpu_moe_keeps_the_experts_in_system_memory_and_still_generates(moe_model, flags, tensors):
    meta = served_meta("-m", moe_model, *flags)
    assert meta["experts"] == EXPERTS and meta["active_parameters"] < meta["parameters"]
    # Counted from what libllama's load placed by the override, one per expert tensor.
    assert meta["cpu_expert_tensors"] == tensors, meta
    assert meta["cpu_moe_layers"] == (-1 if flags == ["--cpu-moe"] else 1)


def test_without_the_flag_nothing_is_overridden(moe_model):
    meta = served_meta("-m", moe_model)
    assert "cpu_expert_tensors" not in meta and meta["experts_used"] == USED


def test_a_models_file_says_it_per_model(moe_model, tmp_path):
    models = tmp_path / "models.toml"
    models.write_text(f"[[model]]\nname = 'moe'\npath = '{moe_model}'\nn_cpu_moe = 2\n")
    assert served_meta("--models", models)["cpu_expert_tensors"] == 6
    models.write_text(f"[[model]]\nname = 'moe'\npath = '{moe_model}'\nn_cpu_moe = -3\n")
    proc = subprocess.run([BIN, "serve", "--port", "0", "--models", str(models)], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode != 0 and "n_cpu_moe" in proc.stderr, proc.stderr


@pytest.mark.parametrize("flags,field", [(["--n-cpu-moe", "-1"], "--n-cpu-moe"),
                                          (["--n-cpu-moe", "x"], "--n-cpu-moe"),
                                          (["--cpu-moe", "--n-cpu-moe", "2"], "--n-cpu-moe"),
                                          (["--gpu-layers", "-2"], "--gpu-layers")])
def test_bad_flags_are_one_line_naming_the_option(moe_model, flags, field):
    proc = subprocess.run([BIN, "serve", "--port", "0", "-m", str(moe_model), *flags], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 2 and field in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
