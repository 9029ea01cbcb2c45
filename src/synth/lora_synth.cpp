#include "synth/lora_synth.h"

#include <ggml.h>
#include <gguf.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <system_error>

#include "core/error.h"
#include "engine/gguf_inspect.h"
#include "synth/gguf_stream_writer.h"

namespace mmserve::synth {
namespace {

struct GgufFree {
  void operator()(gguf_context* g) const { gguf_free(g); }
};
struct GgmlFree {
  void operator()(ggml_context* c) const { ggml_free(c); }
};

std::string kv_string(const gguf_context* g, const char* key) {
  const int64_t id = gguf_find_key(g, key);
  if (id < 0 || gguf_get_kv_type(g, id) != GGUF_TYPE_STRING) return {};
  return gguf_get_val_str(g, id);
}

// The target a base tensor name belongs to ("blk.3.attn_q.weight" -> "attn_q",
// "output.weight" -> "output"), or empty.
std::string target_of(const std::string& name) {
  if (name == "output.weight") return "output";
  constexpr const char* kBlk = "blk.";
  constexpr const char* kWeight = ".weight";
  if (name.rfind(kBlk, 0) != 0 || name.size() < 12 ||
      name.compare(name.size() - 7, 7, kWeight) != 0) {
    return {};
  }
  const size_t dot = name.find('.', 4);
  if (dot == std::string::npos || dot == 4) return {};
  for (size_t i = 4; i < dot; ++i) {
    if (name[i] < '0' || name[i] > '9') return {};
  }
  return name.substr(dot + 1, name.size() - 7 - dot - 1);
}

void check_options(const LoraSynthOptions& o) {
  if (o.rank < 1) {
    throw Error(ErrorCode::kInvalidInput, "rank must be at least 1, got " + std::to_string(o.rank),
                "rank");
  }
  if (!std::isfinite(o.alpha) || o.alpha < 0) {
    throw Error(ErrorCode::kInvalidInput, "alpha must be a finite number >= 0", "alpha");
  }
  if (!std::isfinite(o.magnitude) || o.magnitude <= 0 || o.magnitude > 100) {
    throw Error(ErrorCode::kInvalidInput, "magnitude must be in (0, 100]", "magnitude");
  }
  if (!std::isfinite(o.scale_hint)) {
    throw Error(ErrorCode::kInvalidInput, "scale hint must be a finite number", "scale_hint");
  }
  if (o.type != "f32" && o.type != "f16") {
    throw Error(ErrorCode::kInvalidInput, "type must be f32 or f16, got '" + o.type + "'", "type");
  }
  if (o.targets.empty()) {
    throw Error(ErrorCode::kInvalidInput, "targets must name at least one matrix", "targets");
  }
  const auto& known = lora_target_names();
  for (const auto& t : o.targets) {
    if (std::find(known.begin(), known.end(), t) == known.end()) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      throw Error(ErrorCode::kInvalidInput, "unknown target '" + t + "' (known: " + list + ")",
                  "targets");
    }
  }
}

}  // namespace

const std::vector<std::string>& lora_target_names() {
  static const std::vector<std::string> names = {"attn_q",   "attn_k", "attn_v",   "attn_output",
                                                 "ffn_gate", "ffn_up", "ffn_down", "output"};
  return names;
}

LoraSynthReport write_synthetic_lora(const std::string& base_path, const std::string& out_path,
                                     const LoraSynthOptions& options) {
  check_options(options);
  // Validates the file with one clear message (missing, not GGUF, truncated).
  engine::GgufSummary summary;
  try {
    summary = engine::inspect_gguf(base_path);
  } catch (const Error& e) {
    throw Error(e.code(), e.what(), "base");
  }
  if (summary.architecture.empty() || summary.architecture == "clip") {
    throw Error(
        ErrorCode::kModelLoad,
        base_path + " is not a text model (general.architecture '" + summary.architecture + "')",
        "base");
  }
  ggml_context* raw = nullptr;
  std::unique_ptr<gguf_context, GgufFree> base(
      gguf_init_from_file(base_path.c_str(), {/*no_alloc=*/true, &raw}));
  std::unique_ptr<ggml_context, GgmlFree> meta(raw);
  if (!base || !meta) {
    throw Error(ErrorCode::kModelLoad, "cannot read the tensors of " + base_path, "base");
  }
  if (const std::string type = kv_string(base.get(), "general.type");
      !type.empty() && type != "model") {
    throw Error(ErrorCode::kModelLoad,
                base_path + " is not a base model (general.type '" + type + "')", "base");
  }
  std::error_code ec;
  if (std::filesystem::equivalent(base_path, out_path, ec)) {
    throw Error(ErrorCode::kInvalidInput, "the output would overwrite the base model", "out");
  }

  // The base matrices to adapt, in file order.
  std::vector<const ggml_tensor*> adapted;
  std::vector<bool> target_found(options.targets.size(), false);
  int64_t min_dim = std::numeric_limits<int64_t>::max();
  for (ggml_tensor* t = ggml_get_first_tensor(meta.get()); t != nullptr;
       t = ggml_get_next_tensor(meta.get(), t)) {
    const std::string target = target_of(t->name);
    const auto it = std::find(options.targets.begin(), options.targets.end(), target);
    if (target.empty() || it == options.targets.end() || ggml_n_dims(t) != 2) continue;
    target_found[static_cast<size_t>(it - options.targets.begin())] = true;
    adapted.push_back(t);
    min_dim = std::min({min_dim, t->ne[0], t->ne[1]});
  }
  if (adapted.empty()) {
    throw Error(ErrorCode::kModelLoad,
                base_path +
                    " has none of the target matrices (blk.N.<target>.weight): not a "
                    "text model of a supported architecture?",
                "base");
  }
  for (size_t i = 0; i < options.targets.size(); ++i) {
    if (!target_found[i]) {
      throw Error(ErrorCode::kInvalidInput,
                  "target '" + options.targets[i] + "' matches no 2-D matrix of " + base_path,
                  "targets");
    }
  }
  if (options.rank > min_dim) {
    throw Error(ErrorCode::kInvalidInput,
                "rank " + std::to_string(options.rank) +
                    " is larger than the smallest adapted dimension (" + std::to_string(min_dim) +
                    ")",
                "rank");
  }

  GgufStreamWriter w(2 * adapted.size());
  gguf_context* kv = w.kv();
  gguf_set_val_str(kv, "general.type", "adapter");
  gguf_set_val_str(kv, "general.architecture", summary.architecture.c_str());
  const std::string name =
      options.name.empty() ? "synthetic-lora-r" + std::to_string(options.rank) : options.name;
  gguf_set_val_str(kv, "general.name", name.c_str());
  gguf_set_val_str(kv, "adapter.type", "lora");
  gguf_set_val_f32(kv, "adapter.lora.alpha", options.alpha);
  gguf_set_val_u32(kv, "mmserve.lora.rank", static_cast<uint32_t>(options.rank));
  gguf_set_val_f32(kv, "mmserve.lora.scale_hint", options.scale_hint);
  gguf_set_val_f32(kv, "mmserve.lora.magnitude", options.magnitude);
  gguf_set_val_u64(kv, "mmserve.lora.seed", options.seed);

  // Entries uniform in [-s, s) have standard deviation s / sqrt(3). A has std 1/sqrt(n_in), so
  // A·x has entries of RMS 1 for inputs of RMS 1; B's std is chosen so that
  // (alpha/rank)·B·A·x has entries of RMS `magnitude` (llama.cpp uses scale 1 when alpha = 0).
  const int type = options.type == "f16" ? GGML_TYPE_F16 : GGML_TYPE_F32;
  const float rank = static_cast<float>(options.rank);
  const float gain = options.alpha > 0 ? options.alpha / rank : 1.0F;
  const float b_std = options.magnitude / (gain * std::sqrt(rank));
  LoraSynthReport report;
  report.architecture = summary.architecture;
  for (const ggml_tensor* t : adapted) {
    const int64_t n_in = t->ne[0];
    const int64_t n_out = t->ne[1];
    const float a_scale = std::sqrt(3.0F / static_cast<float>(n_in));
    w.add(std::string(t->name) + ".lora_a", type, {n_in, options.rank},
          random_fill(options.seed, a_scale));
    w.add(std::string(t->name) + ".lora_b", type, {options.rank, n_out},
          random_fill(options.seed, b_std * std::sqrt(3.0F)));
    report.adapted.emplace_back(t->name);
    report.parameters += static_cast<uint64_t>((n_in + n_out) * options.rank);
  }
  w.write(out_path);
  report.file_bytes = std::filesystem::file_size(out_path);
  return report;
}

}  // namespace mmserve::synth
