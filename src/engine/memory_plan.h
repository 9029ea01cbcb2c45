// The one memory estimate of the product: what a text model (with its projector) and a speech
// model need on system RAM and on each GPU for a serving configuration, component by component
// (weights, KV cache, compute buffers, projector, whisper states, the process itself). Used by
// `mmserve plan` and by the registry's memory budget (runtime::estimate_model_bytes). The
// formulas follow llama.cpp's and whisper.cpp's allocations and were calibrated against the
// buffer sizes they log and the server's measured RSS (docs/sizing.md). Pure arithmetic on
// headers; stateless and thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/gguf_inspect.h"
#include "engine/speech_model.h"

namespace mmserve::engine {

struct PlanInput {
  std::optional<GgufSummary> text;       // the text model's header
  std::optional<GgufSummary> projector;  // its mmproj, if any
  std::optional<SpeechModelShape> speech;
  int32_t parallel = 4;
  int32_t ctx_size = 0;  // KV cells; 0 = parallel x min(training context, 4096), as serve does
  int32_t batch_size = 512;
  int32_t gpu_layers = -1;  // -1 = all; ignored without GPUs
  int32_t speech_parallel = 2;
  // Free memory of each GPU the model may use (llama.cpp splits layers in proportion to it);
  // empty = CPU only.
  std::vector<uint64_t> gpu_free;
  bool process_baseline = true;  // count the server process itself (binary, libraries, heap)
  // An embedding model: one context of ctx_size tokens decoded as one batch (batch_size), one
  // pooled vector per input; `encoder_only` (BERT and the like) keeps no KV cache.
  bool embedding = false;
  bool encoder_only = false;
};

struct PlanComponent {
  std::string name;           // "weights", "kv cache", "compute", ...
  uint64_t ram = 0;           // system RAM at its peak (a full batch)
  uint64_t ram_at_load = 0;   // resident after load and the readiness probe
  std::vector<uint64_t> gpu;  // per GPU of PlanInput::gpu_free
};

struct MemoryPlan {
  std::vector<PlanComponent> components;
  int32_t n_ctx = 0;       // KV cells
  int32_t n_batch = 0;     // tokens per micro-batch
  int32_t gpu_layers = 0;  // repeating layers actually offloaded
  bool output_on_gpu = false;
  uint64_t kv_bytes_per_token = 0;  // one KV cell, all layers (f16 K and V)
  uint64_t ram = 0, ram_at_load = 0;
  std::vector<uint64_t> gpu;  // per GPU, peak
};

// The default KV size serve uses: --ctx-size, else parallel x min(training context, 4096).
int32_t default_context_cells(int32_t ctx_size, int32_t parallel, int64_t n_ctx_train);

MemoryPlan plan_memory(const PlanInput& input);

// Makes `input` (its text model set) the plan of an embedding model served with these options
// (EmbeddingOptions': 0 = the defaults): one sequence, the context of one decode.
void plan_as_embedding(PlanInput& input, int32_t max_input_tokens, int32_t batch_tokens);

// Whether `plan` fits in `ram_budget` and each GPU's budget (gpu_free of its input).
bool plan_fits(const MemoryPlan& plan, uint64_t ram_budget, const std::vector<uint64_t>& gpu_free);

// A configuration that fits, searched with plan_memory from the requested one downwards: most
// GPU layers first, then the largest context at the requested parallel, halving it (to 512
// cells per sequence at least) before halving parallel; a smaller --batch-size (to 64) last.
// nullopt when nothing fits (the weights alone do not).
struct PlanSuggestion {
  int32_t parallel = 0, ctx_size = 0, gpu_layers = 0, batch_size = 0;
  MemoryPlan plan;
};
std::optional<PlanSuggestion> suggest_fitting(const PlanInput& input, uint64_t ram_budget);

}  // namespace mmserve::engine
