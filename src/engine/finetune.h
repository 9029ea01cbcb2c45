// Full-weight fine-tuning of a small dense model through libllama's public training API
// (llama_opt_init, llama_opt_epoch, llama_model_save_to_file): what `mmserve finetune` runs.
//
// Why here and not a folder of its own: like the rest of engine/ it wraps one libllama API, it
// reads the model with engine::TextModel (tokenizer, chat template) and nothing above the
// engine is involved; the request path never calls it.
//
// The run: the base is loaded again, into system memory without mmap (writable weights), as
// a training copy owned by this run alone, never a model a server serves. Each example is
// rendered with the model's chat template when it has one (the whole conversation, no
// assistant opener after it) or as plain text (contents joined by newlines, then EOS), and
// tokenized; examples are shuffled (seed) and split into training and validation by example,
// each side's tokens concatenated and cut into windows of `window` tokens (stride window/2;
// a validation side shorter than a window wraps around). One optimizer step per window
// (AdamW, constant learning rate, no weight decay); every window is seen once per epoch, in
// a new order each epoch. The loss is cross-entropy over every token of the window: libllama
// has no loss mask, so prompts are trained on too (why weight-0 turns are dropped, see
// finetune_data.h). After the last epoch (or the epoch during which a stop was asked for)
// the weights are saved, and the base's metadata the saver does not write (chat template,
// general.*, the original context length, which the trainer overwrites with the window) is
// put back.
//
// Limits: every weight F32 (libllama's optimizer updates F32 tensors; quantized bases are
// refused with "convert to F32 first"); Llama-architecture dense models (general.architecture
// "llama": the graph whose backward pass libllama implements and we test; MoE refused); full
// weights, not LoRA; token embeddings are not trained (libllama leaves tok_embd out); CPU
// only (weights in system memory; AdamW keeps gradients and two moments: about 4 times the
// F32 weights, plus the window's activations). Time with 2 threads: stories260K (293K parameters)
// about 0.07 s per 256-token window; an 11M-parameter synthetic Llama about 0.9 s; the cost grows
// with parameters times tokens, so a 1B model is hours per epoch of a small dataset.
//
// Threading: finetune() runs on the calling thread (ggml's own worker threads under it) and
// may run at most once at a time per process (llama's training state lives in the context it
// creates; nothing is shared).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "engine/finetune_data.h"

namespace mmserve::engine {

struct FinetuneOptions {
  std::string base_path;    // F32 Llama GGUF
  std::string data_path;    // JSONL (finetune_data.h) or plain text
  std::string output_path;  // the fine-tuned GGUF (written after training)
  FinetuneFormat format = FinetuneFormat::kAuto;
  int epochs = 2;
  float learning_rate = 1e-4F;
  // Tokens per training window, a multiple of kFinetuneWindowStep (libllama rounds every
  // context up to one); 0: kFinetuneWindowStep.
  int window = 0;
  float val_split = 0.05F;  // fraction of the examples held out for validation; 0: none
  int threads = 0;          // 0: every core
  uint32_t seed = 42;
};

constexpr int kFinetuneWindowStep = 256;

// What was prepared, before the first epoch.
struct FinetunePlan {
  std::string format;  // the data format read
  size_t examples = 0, train_examples = 0, val_examples = 0;
  size_t skipped_examples = 0, dropped_turns = 0;
  int64_t train_tokens = 0, val_tokens = 0;  // tokens of each side's stream
  int64_t train_windows = 0, val_windows = 0;
  int window = 0;
  bool chat_template = false;  // rendered with the model's chat template
  uint64_t parameters = 0;
};

struct EpochReport {
  int epoch = 0;  // 1-based
  int epochs = 0;
  double train_loss = 0;
  double val_loss = -1;  // -1 when there is no validation side
  int64_t tokens = 0;    // tokens trained on in this epoch
  double seconds = 0;
};

struct FinetuneResult {
  int epochs_done = 0;
  bool stopped = false;  // stop_requested said yes before the last epoch
  double seconds = 0;
  std::string output_path;
};

struct FinetuneCallbacks {
  std::function<void(const FinetunePlan&)> on_plan;
  std::function<void(const EpochReport&)> on_epoch;
  // Asked after each epoch: true stops training there (the completed epochs are saved).
  std::function<bool()> stop_requested;
};

// Checks the options (Error(kInvalidInput) naming the field: epochs, lr, ctx, val_split,
// threads, output, base, data), reads the data, trains and saves. Refusals before any training:
// a base that is not all F32 or not "llama" (field "base"), a malformed or empty dataset (the
// line named), fewer tokens than one window plus one (field "data"), an output that cannot be
// written (field "output", probed by creating it).
FinetuneResult finetune(const FinetuneOptions& options, const FinetuneCallbacks& callbacks = {});

// The option checks alone (also run by finetune()).
void validate_finetune_options(const FinetuneOptions& options);

}  // namespace mmserve::engine
