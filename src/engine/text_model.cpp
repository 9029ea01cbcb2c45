#include "engine/text_model.h"

#include <ggml-backend.h>
#include <llama.h>
#include <sched.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "engine/backend.h"

namespace mmserve::engine {
namespace {

// The routed experts' tensors (ffn_up_exps, ffn_gate_up_exps, ...; the chunked "chexps"
// too), as llama.cpp's own --cpu-moe matches them. Shared experts ("shexp") are not matched.
constexpr const char* kExpertTensorPattern = "\\.ffn_(up|down|gate|gate_up)_(ch|)exps";

}  // namespace

int default_thread_count() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return std::max(1U, std::thread::hardware_concurrency());
}

std::shared_ptr<TextModel> TextModel::load(const std::string& path, const ModelOptions& options) {
  GgufSummary summary = inspect_gguf(path);  // clear messages for the common failures
  ensure_backend_initialized();
  clear_recent_engine_errors();

  auto params = llama_model_default_params();
  params.n_gpu_layers = options.gpu_layers;
  if (!options.use_mmap) params.load_mode = LLAMA_LOAD_MODE_NONE;
  // The patterns llama.cpp matches (std::regex_search) against each tensor's name; they must
  // live until the load returns. A null pattern ends the list.
  std::vector<std::string> patterns;
  if (options.cpu_moe_layers < 0) {
    patterns.emplace_back(kExpertTensorPattern);
  }
  for (int32_t layer = 0; layer < options.cpu_moe_layers; ++layer) {
    patterns.push_back("^blk\\." + std::to_string(layer) + kExpertTensorPattern);
  }
  std::vector<llama_model_tensor_buft_override> overrides;
  for (const auto& pattern : patterns) {
    overrides.push_back({pattern.c_str(), ggml_backend_cpu_buffer_type()});
  }
  overrides.push_back({nullptr, nullptr});
  if (!patterns.empty()) params.tensor_buft_overrides = overrides.data();
  const int64_t overridden_before = tensor_overrides_logged();
  llama_model* model = llama_model_load_from_file(path.c_str(), params);
  if (model == nullptr) {
    std::string why = recent_engine_errors();
    if (why.empty()) why = "llama.cpp could not load it";
    if (const auto nl = why.rfind('\n'); nl != std::string::npos) why = why.substr(nl + 1);
    throw Error(ErrorCode::kModelLoad,
                "cannot load model " + path + " (" + summary.architecture + "): " + why, "model");
  }

  std::shared_ptr<TextModel> self(new TextModel());
  self->summary_ = std::move(summary);
  self->id_ = std::filesystem::path(path).stem().string();
  self->model_ = model;
  self->vocab_ = llama_model_get_vocab(model);
  self->cpu_expert_tensors_ = tensor_overrides_logged() - overridden_before;
  if (const char* tmpl = llama_model_chat_template(model, nullptr)) self->chat_template_ = tmpl;
  self->chat_templates_ = std::make_unique<ChatTemplates>(model, self->chat_template_fallback_);
  return self;
}

TextModel::~TextModel() {
  if (model_ != nullptr) llama_model_free(model_);
}

int32_t TextModel::n_ctx_train() const {
  return llama_model_n_ctx_train(model_);
}

std::vector<Token> TextModel::tokenize(const std::string& text, bool add_special,
                                       bool parse_special) const {
  std::vector<Token> tokens(text.size() + 8);
  int32_t n = llama_tokenize(vocab_, text.data(), static_cast<int32_t>(text.size()), tokens.data(),
                             static_cast<int32_t>(tokens.size()), add_special, parse_special);
  if (n < 0) {
    tokens.resize(static_cast<size_t>(-n));
    n = llama_tokenize(vocab_, text.data(), static_cast<int32_t>(text.size()), tokens.data(),
                       static_cast<int32_t>(tokens.size()), add_special, parse_special);
  }
  if (n < 0) throw Error(ErrorCode::kInvalidInput, "the prompt could not be tokenized", "input");
  tokens.resize(static_cast<size_t>(n));
  return tokens;
}

std::string TextModel::token_to_piece(Token token, bool special) const {
  char buf[256];
  int32_t n = llama_token_to_piece(vocab_, token, buf, sizeof(buf), 0, special);
  if (n >= 0) return std::string(buf, static_cast<size_t>(n));
  std::string big(static_cast<size_t>(-n), '\0');
  n = llama_token_to_piece(vocab_, token, big.data(), static_cast<int32_t>(big.size()), 0, special);
  big.resize(static_cast<size_t>(std::max(0, n)));
  return big;
}

bool TextModel::is_end_of_generation(Token token) const {
  return llama_vocab_is_eog(vocab_, token);
}

std::string TextModel::apply_chat_template(const std::vector<ChatMessage>& messages,
                                           bool allow_chatml) const {
  if (chat_template_.empty() && !allow_chatml) {
    throw Error(ErrorCode::kInvalidInput,
                "model " + id_ + " has no chat template; use a plain completion instead",
                "messages");
  }
  ChatFormatRequest request;
  request.messages = messages;
  return chat_templates_->apply(request).text;
}

}  // namespace mmserve::engine
