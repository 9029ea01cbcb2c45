// `mmserve info`: what a GGUF model is, read from its header without loading the weights.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/arg_parser.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/human_units.h"
#include "core/model_locator.h"
#include "engine/gguf_inspect.h"

namespace mmserve::cli {
namespace {

std::string or_unknown(int64_t v) {
  return v < 0 ? "unknown" : std::to_string(v);
}

nlohmann::json to_json(const engine::GgufSummary& s) {
  nlohmann::json types = nlohmann::json::array();
  for (const auto& t : s.tensor_types) {
    types.push_back({{"type", t.type}, {"tensors", t.tensors}, {"bytes", t.bytes}});
  }
  return {{"path", s.path},
          {"file_bytes", s.file_bytes},
          {"architecture", s.architecture},
          {"name", s.name},
          {"file_type", s.file_type},
          {"parameters", s.n_params},
          {"active_parameters", s.n_active_params()},
          {"weights_bytes", s.tensor_bytes},
          {"tensor_types", types},
          {"layers", s.n_layer},
          {"embedding_length", s.n_embd},
          {"heads", s.n_head},
          {"kv_heads", s.n_head_kv},
          {"vocab_size", s.n_vocab},
          {"context_length", s.n_ctx_train},
          {"mixture_of_experts", s.is_moe()},
          {"experts", s.n_expert},
          {"experts_used", s.n_expert_used},
          {"chat_template", s.has_chat_template}};
}

nlohmann::json projector_json(const engine::ProjectorSummary& p) {
  return {{"type", p.type},
          {"vision", p.has_vision},
          {"audio", p.has_audio},
          {"image_size", p.image_size},
          {"patch_size", p.patch_size},
          {"tokens_per_image", p.tokens_per_image},
          {"vision_layers", p.n_layer},
          {"vision_embedding_length", p.n_embd},
          {"vision_heads", p.n_head},
          {"projection_dim", p.projection_dim}};
}

// The facts of a projector ("mmproj") file, after its file lines.
void print_projector(const engine::ProjectorSummary& p) {
  std::printf("projector type:     %s\n", p.type.empty() ? "unknown" : p.type.c_str());
  std::printf("inputs:             %s%s%s\n", p.has_vision ? "images" : "",
              p.has_vision && p.has_audio ? ", " : "", p.has_audio ? "audio" : "");
  if (p.has_vision) {
    std::printf("vision encoder:     %s layers, %s wide, %s heads\n", or_unknown(p.n_layer).c_str(),
                or_unknown(p.n_embd).c_str(), or_unknown(p.n_head).c_str());
    std::printf("image size:         %sx%s pixels (patch %s)\n", or_unknown(p.image_size).c_str(),
                or_unknown(p.image_size).c_str(), or_unknown(p.patch_size).c_str());
    std::printf("tokens per image:   %s\n", p.tokens_per_image > 0
                                                ? std::to_string(p.tokens_per_image).c_str()
                                                : "depends on the image size (dynamic resolution)");
  }
  std::printf("projects to:        %s-wide language model embeddings\n",
              or_unknown(p.projection_dim).c_str());
}

void print_summary(const engine::GgufSummary& s) {
  std::string types;
  for (const auto& t : s.tensor_types) {
    if (!types.empty()) types += ", ";
    types += t.type + " x" + std::to_string(t.tensors) + " (" + human_bytes(t.bytes) + ")";
  }
  std::printf("file:               %s (%s)\n", s.path.c_str(), human_bytes(s.file_bytes).c_str());
  std::printf("architecture:       %s\n", s.architecture.c_str());
  if (!s.name.empty()) std::printf("name:               %s\n", s.name.c_str());
  std::printf("parameters:         %s (%llu)\n", human_count(s.n_params).c_str(),
              static_cast<unsigned long long>(s.n_params));
  std::printf("file type:          %s\n", s.file_type.empty() ? "unknown" : s.file_type.c_str());
  std::printf("tensor types:       %s\n", types.c_str());
  std::printf("weights memory:     %s\n", human_bytes(s.tensor_bytes).c_str());
  if (s.architecture == "clip") {
    print_projector(s.projector);
    return;
  }
  std::string moe = "no";
  if (s.is_moe()) {
    moe = "yes: " + std::to_string(s.n_expert) + " experts, " + or_unknown(s.n_expert_used) +
          " used per token; " + human_count(s.n_active_params()) + " of " +
          human_count(s.n_params) + " parameters active per token";
  }
  std::printf("layers:             %s\n", or_unknown(s.n_layer).c_str());
  std::printf("embedding length:   %s\n", or_unknown(s.n_embd).c_str());
  std::printf("attention heads:    %s\n", or_unknown(s.n_head).c_str());
  std::printf("kv heads:           %s\n", or_unknown(s.n_head_kv).c_str());
  std::printf("vocabulary:         %s\n", or_unknown(s.n_vocab).c_str());
  std::printf("context length:     %s\n", or_unknown(s.n_ctx_train).c_str());
  std::printf("mixture of experts: %s\n", moe.c_str());
  std::printf("chat template:      %s\n", s.has_chat_template ? "yes" : "no");
}

nlohmann::json full_json(const engine::GgufSummary& s) {
  auto j = to_json(s);
  if (s.architecture == "clip") j["projector"] = projector_json(s.projector);
  return j;
}

}  // namespace

int run_info(const std::vector<std::string>& args) {
  ArgParser p({"-m|--model", "--mmproj"}, {"--json", "-h|--help"});
  p.parse(args);
  if (p.flag("--help")) {
    std::cout << "usage: mmserve info [-m] MODEL.gguf [--mmproj MMPROJ.gguf] [--json]\n"
                 "A projector (mmproj) file may also be given as the model: its type, image size\n"
                 "and tokens per image are reported.\n";
    return 0;
  }
  std::string path = p.get("--model");
  if (path.empty() && !p.positionals().empty()) path = p.positionals().front();
  const auto s = engine::inspect_gguf(locate_text_model(path));
  std::optional<engine::GgufSummary> proj;
  if (p.has("--mmproj")) {
    if (!std::filesystem::exists(p.get("--mmproj"))) {
      throw Error(ErrorCode::kNotFound, "projector file not found: " + p.get("--mmproj"),
                  "--mmproj");
    }
    proj = engine::inspect_gguf(p.get("--mmproj"));
    if (proj->architecture != "clip") {
      throw Error(ErrorCode::kInvalidInput,
                  "--mmproj " + proj->path + " is a '" + proj->architecture +
                      "' model, not a multimodal projector",
                  "--mmproj");
    }
  }
  if (p.flag("--json")) {
    auto j = full_json(s);
    if (proj) j["mmproj"] = full_json(*proj);
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  print_summary(s);
  if (proj) {
    std::printf("\n");
    print_summary(*proj);
  }
  return 0;
}

}  // namespace mmserve::cli
