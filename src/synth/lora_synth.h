// Synthetic LoRA adapters for tests: a GGUF file llama.cpp loads with llama_adapter_lora_init
// against a given base model (general.type "adapter", adapter.type "lora", the base's
// general.architecture, adapter.lora.alpha), with a pair NAME.lora_a [n_in, rank] and
// NAME.lora_b [rank, n_out] (ggml order) for each adapted base matrix NAME. Unlike a freshly
// initialised real LoRA (B = 0), both A and B are random from a fixed seed, so the adapter
// visibly changes what the model generates. Stateless and thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mmserve::synth {

// The per-layer matrices an adapter may target: blk.N.<target>.weight in the base.
// attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down; "output" is the LM head
// (only in models with untied embeddings).
const std::vector<std::string>& lora_target_names();

struct LoraSynthOptions {
  int32_t rank = 8;
  float alpha = 16.0F;  // llama.cpp scales B·A by alpha / rank (here 2)
  std::vector<std::string> targets = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                      "ffn_gate", "ffn_up", "ffn_down"};
  // How large the update (alpha/rank)·B·A is relative to a unit-gain matrix: with inputs of
  // RMS 1 its outputs have RMS about `magnitude` (a trained base's own matrices have gain of
  // order 1). 0.5 changes greedy text within a few tokens and keeps logits finite.
  float magnitude = 0.5F;
  // The adapter scale its users should apply (written as mmserve.lora.scale_hint); llama.cpp
  // itself takes the scale per context (llama_set_adapters_lora), not from the file.
  float scale_hint = 1.0F;
  uint64_t seed = 42;
  std::string type = "f32";  // f32 or f16
  std::string name;          // general.name; empty: "synthetic-lora-r<rank>"
};

struct LoraSynthReport {
  std::string architecture;          // the base's, also the adapter's
  std::vector<std::string> adapted;  // base tensor names with a lora_a/lora_b pair, in order
  uint64_t parameters = 0;           // in all A and B tensors
  uint64_t file_bytes = 0;
};

// Writes an adapter for the base model at `base_path` to `out_path` (atomically). Throws
// Error(kNotFound, "base") when the base is missing, Error(kModelLoad, "base") when it is not
// GGUF or not a text model (a projector, an adapter, no per-layer matrices),
// Error(kInvalidInput, field) for a bad option ("rank", "alpha", "targets", "magnitude",
// "type"; rank must be 1..the smallest dimension of the adapted matrices), Error(kInternal,
// "out") when the file cannot be written.
LoraSynthReport write_synthetic_lora(const std::string& base_path, const std::string& out_path,
                                     const LoraSynthOptions& options);

}  // namespace mmserve::synth
