// A loaded GGUF language model: weights, vocabulary and chat template.
//
// Ownership: TextModel owns the llama_model and frees it on destruction. After construction it
// is read-only, so one instance may be shared by any number of threads and TextBatch contexts
// (tokenize, detokenize and chat formatting are thread-safe; llama.cpp's vocab is immutable).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/chat_format.h"
#include "engine/gguf_inspect.h"

struct llama_model;
struct llama_vocab;

namespace mmserve::engine {

using Token = int32_t;

struct ModelOptions {
  int32_t gpu_layers = -1;  // layers offloaded to a GPU when one is present; -1 = all
  // Mixture of experts: the routed experts of the first N layers stay in system memory while
  // the rest of those layers goes to the GPU (llama.cpp's --n-cpu-moe); -1 = every layer's
  // (--cpu-moe). The experts are most of such a model's bytes but few of its FLOPs per token.
  int32_t cpu_moe_layers = 0;
  bool use_mmap = true;
};

// Number of CPU threads to use when the user does not say: every logical core the process may
// run on (sched_getaffinity-aware, so container CPU limits set by cpusets are respected).
int default_thread_count();

class TextModel {
 public:
  // Validates the file (see inspect_gguf) and loads it. Throws Error on failure.
  static std::shared_ptr<TextModel> load(const std::string& path, const ModelOptions& options = {});
  ~TextModel();
  TextModel(const TextModel&) = delete;
  TextModel& operator=(const TextModel&) = delete;

  const std::string& path() const { return summary_.path; }
  // A short name for APIs (/v1/models): the file name without ".gguf".
  const std::string& id() const { return id_; }
  const GgufSummary& summary() const { return summary_; }
  llama_model* raw() const { return model_; }
  const llama_vocab* vocab() const { return vocab_; }
  int32_t n_ctx_train() const;
  // Expert tensors the load kept in system memory by ModelOptions::cpu_moe_layers.
  int64_t cpu_expert_tensors() const { return cpu_expert_tensors_; }

  // Tokenizes text; `add_special` adds BOS/EOS as the model wants for a fresh prompt, and
  // `parse_special` turns written special tokens (e.g. "<|im_start|>") into their ids.
  std::vector<Token> tokenize(const std::string& text, bool add_special, bool parse_special) const;
  // The bytes of one token (may be an incomplete UTF-8 character). Special tokens render empty
  // unless `special` (a chat format's preserved tokens, which its parser reads).
  std::string token_to_piece(Token token, bool special = false) const;
  bool is_end_of_generation(Token token) const;

  bool has_chat_template() const { return !chat_template_.empty(); }
  // The model's chat format (its Jinja template; ChatML when it has none): prompts with tools,
  // schemas and reasoning, and the parser of the answers (chat_format.h).
  const ChatTemplates& chat_templates() const { return *chat_templates_; }
  // Why the model's own template is not used ("" when it is), for the load log.
  const std::string& chat_template_fallback() const { return chat_template_fallback_; }
  // Formats plain messages with the chat template and adds the assistant turn opener. Throws
  // Error(kInvalidInput, field "messages") when the model has no template and `allow_chatml`
  // is false, or when the template refuses the messages.
  std::string apply_chat_template(const std::vector<ChatMessage>& messages,
                                  bool allow_chatml = false) const;

 private:
  TextModel() = default;
  GgufSummary summary_;
  std::string id_;
  std::string chat_template_;
  std::string chat_template_fallback_;
  std::unique_ptr<ChatTemplates> chat_templates_;
  llama_model* model_ = nullptr;
  const llama_vocab* vocab_ = nullptr;
  int64_t cpu_expert_tensors_ = 0;
};

}  // namespace mmserve::engine
