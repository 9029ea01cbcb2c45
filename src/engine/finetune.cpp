#include "engine/finetune.h"

#include <ggml-opt.h>
#include <gguf.h>
#include <llama.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "engine/backend.h"
#include "engine/text_model.h"

namespace mmserve::engine {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// ---- options and the base ------------------------------------------------------------------

void check_output_writable(const FinetuneOptions& o) {
  if (o.output_path.empty()) {
    throw Error(ErrorCode::kInvalidInput, "no output file given (-o OUT.gguf)", "output");
  }
  std::error_code ec;
  const fs::path out(o.output_path);
  if (fs::is_directory(out, ec)) {
    throw Error(ErrorCode::kInvalidInput, "output " + o.output_path + " is a directory", "output");
  }
  if (fs::exists(o.base_path, ec) && fs::exists(out, ec) && fs::equivalent(o.base_path, out, ec)) {
    throw Error(ErrorCode::kInvalidInput, "the output must not overwrite the base model", "output");
  }
  // Probe by creating a file next to it: the directory must exist and be writable.
  const std::string probe = o.output_path + ".probe-" + std::to_string(::getpid());
  {
    std::ofstream f(probe, std::ios::binary);
    if (!f) {
      throw Error(ErrorCode::kInvalidInput,
                  "cannot write the output " + o.output_path +
                      " (its directory is missing or not writable)",
                  "output");
    }
  }
  fs::remove(probe, ec);
}

void check_base(const GgufSummary& s) {
  if (s.architecture != "llama") {
    throw Error(ErrorCode::kInvalidInput,
                "cannot fine-tune " + s.path + ": architecture '" + s.architecture +
                    "' is not supported (only Llama-style dense models, general.architecture "
                    "'llama')",
                "base");
  }
  if (s.is_moe()) {
    throw Error(ErrorCode::kInvalidInput,
                "cannot fine-tune " + s.path + ": mixture-of-experts models are not supported",
                "base");
  }
  std::string others;
  for (const auto& t : s.tensor_types) {
    if (t.type != "f32") others += (others.empty() ? "" : ", ") + t.type;
  }
  if (!others.empty()) {
    throw Error(ErrorCode::kInvalidInput,
                "cannot fine-tune " + s.path + ": its weights are " + others +
                    ", and training needs every weight in F32; convert to F32 first (e.g. "
                    "llama.cpp's convert_hf_to_gguf.py --outtype f32)",
                "base");
  }
}

// ---- examples to tokens --------------------------------------------------------------------

// The whole conversation with libllama's template engine (no assistant opener after the last
// turn); nullopt when libllama does not know the template.
std::optional<std::string> render_with_libllama(const char* tmpl,
                                                const std::vector<ChatMessage>& messages) {
  std::vector<llama_chat_message> chat;
  chat.reserve(messages.size());
  for (const auto& m : messages) chat.push_back({m.role.c_str(), m.content.c_str()});
  size_t total = 0;
  for (const auto& m : messages) total += m.content.size() + 64;
  std::vector<char> buf(total * 2 + 256);
  int32_t n = llama_chat_apply_template(tmpl, chat.data(), chat.size(), false, buf.data(),
                                        static_cast<int32_t>(buf.size()));
  if (n < 0) return std::nullopt;
  if (static_cast<size_t>(n) > buf.size()) {
    buf.resize(static_cast<size_t>(n));
    n = llama_chat_apply_template(tmpl, chat.data(), chat.size(), false, buf.data(),
                                  static_cast<int32_t>(buf.size()));
    if (n < 0) return std::nullopt;
  }
  return std::string(buf.data(), static_cast<size_t>(n));
}

std::vector<Token> example_tokens(const TextModel& model, const FinetuneExample& example) {
  const llama_vocab* vocab = model.vocab();
  const Token eos = llama_vocab_eos(vocab);
  const Token bos = llama_vocab_bos(vocab);
  const char* tmpl = llama_model_chat_template(model.raw(), nullptr);
  std::vector<Token> tokens;
  if (model.has_chat_template() && !example.messages.empty() && tmpl != nullptr) {
    std::optional<std::string> text = render_with_libllama(tmpl, example.messages);
    bool close_with_eos = false;
    if (!text) {
      // A template only the Jinja engine knows: the conversation up to the last answer with
      // the assistant opener, then the answer and EOS.
      std::vector<ChatMessage> prefix(example.messages.begin(), example.messages.end() - 1);
      text = model.apply_chat_template(prefix) + example.messages.back().content;
      close_with_eos = true;
    }
    tokens = model.tokenize(*text, false, true);
    if (llama_vocab_get_add_bos(vocab) && bos != LLAMA_TOKEN_NULL &&
        (tokens.empty() || tokens.front() != bos)) {
      tokens.insert(tokens.begin(), bos);
    }
    if (close_with_eos && eos != LLAMA_TOKEN_NULL) tokens.push_back(eos);
    return tokens;
  }
  tokens = model.tokenize(plain_training_text(example), true, false);
  if (eos != LLAMA_TOKEN_NULL) tokens.push_back(eos);
  return tokens;
}

// ---- windows -------------------------------------------------------------------------------

// Window starts over a stream of at least window + 1 tokens, stride window/2, the last window
// ending at the stream's end.
std::vector<size_t> window_starts(size_t stream, size_t window) {
  std::vector<size_t> starts;
  if (stream < window + 1) return starts;
  const size_t stride = std::max<size_t>(1, window / 2);
  const size_t last = stream - window - 1;
  for (size_t s = 0; s <= last; s += stride) starts.push_back(s);
  if (starts.back() != last) starts.push_back(last);
  return starts;
}

void put_window(ggml_opt_dataset_t dataset, int64_t idata, const std::vector<Token>& stream,
                size_t start, size_t window) {
  auto* data = static_cast<int32_t*>(ggml_opt_dataset_data(dataset)->data);
  auto* labels = static_cast<int32_t*>(ggml_opt_dataset_labels(dataset)->data);
  const size_t base = static_cast<size_t>(idata) * window;
  for (size_t j = 0; j < window; ++j) {  // wraps around a stream shorter than a window
    data[base + j] = stream[(start + j) % stream.size()];
    labels[base + j] = stream[(start + j + 1) % stream.size()];
  }
}

// ---- saving --------------------------------------------------------------------------------

struct GgufDeleter {
  void operator()(gguf_context* c) const { gguf_free(c); }
};
struct GgmlDeleter {
  void operator()(ggml_context* c) const { ggml_free(c); }
};
using GgufPtr = std::unique_ptr<gguf_context, GgufDeleter>;
using GgmlPtr = std::unique_ptr<ggml_context, GgmlDeleter>;

// Writes `out`: the saved file's metadata over the base's (the base's keys the saver does not
// write come back: chat template, general.*), the base's context length, the saved tensors.
void write_with_base_metadata(const std::string& base, const std::string& saved,
                              const std::string& out, const std::string& architecture,
                              int64_t n_ctx_train) {
  ggml_context* tensors_raw = nullptr;
  GgufPtr saved_ctx(gguf_init_from_file(saved.c_str(), {true, &tensors_raw}));
  GgmlPtr tensors(tensors_raw);
  GgufPtr base_ctx(gguf_init_from_file(base.c_str(), {true, nullptr}));
  if (!saved_ctx || !base_ctx) {
    throw Error(ErrorCode::kInternal, "cannot read back the saved model " + saved, "output");
  }
  GgufPtr meta(gguf_init_empty());
  gguf_set_kv(meta.get(), base_ctx.get());
  gguf_set_kv(meta.get(), saved_ctx.get());
  // The offsets below are computed with the default alignment, which the saver used.
  if (gguf_find_key(saved_ctx.get(), "general.alignment") < 0)
    gguf_remove_key(meta.get(), "general.alignment");
  if (n_ctx_train > 0) {
    gguf_set_val_u32(meta.get(), (architecture + ".context_length").c_str(),
                     static_cast<uint32_t>(n_ctx_train));
  }
  const int64_t n = gguf_get_n_tensors(saved_ctx.get());
  for (int64_t i = 0; i < n; ++i) {
    const char* name = gguf_get_tensor_name(saved_ctx.get(), i);
    gguf_add_tensor(meta.get(), ggml_get_tensor(tensors.get(), name));
    if (gguf_get_tensor_offset(meta.get(), i) != gguf_get_tensor_offset(saved_ctx.get(), i)) {
      throw Error(ErrorCode::kInternal, "tensor layout of the saved model differs", "output");
    }
  }
  std::vector<char> header(gguf_get_meta_size(meta.get()));
  gguf_get_meta_data(meta.get(), header.data());

  std::ifstream in(saved, std::ios::binary);
  std::ofstream o(out, std::ios::binary | std::ios::trunc);
  if (!in || !o) throw Error(ErrorCode::kInternal, "cannot write " + out, "output");
  o.write(header.data(), static_cast<std::streamsize>(header.size()));
  in.seekg(static_cast<std::streamoff>(gguf_get_data_offset(saved_ctx.get())));
  std::vector<char> chunk(1 << 20);
  while (in) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    o.write(chunk.data(), in.gcount());
  }
  o.flush();
  if (!o) throw Error(ErrorCode::kInternal, "cannot write " + out + " (disk full?)", "output");
}

void save_model(llama_model* model, const FinetuneOptions& o, const GgufSummary& base) {
  const std::string stem = o.output_path + ".partial-" + std::to_string(::getpid());
  const std::string raw = stem + ".raw";
  std::error_code ec;
  llama_model_save_to_file(model, raw.c_str());
  try {
    write_with_base_metadata(o.base_path, raw, stem, base.architecture, base.n_ctx_train);
    fs::remove(raw, ec);
    fs::rename(stem, o.output_path);
  } catch (...) {
    fs::remove(raw, ec);
    fs::remove(stem, ec);
    throw;
  }
}

ggml_opt_optimizer_params optimizer_params(void* userdata) {
  ggml_opt_optimizer_params p = ggml_opt_get_default_optimizer_params(nullptr);
  p.adamw.alpha = *static_cast<const float*>(userdata);
  p.adamw.wd = 0.0F;
  return p;
}

struct ContextDeleter {
  void operator()(llama_context* c) const { llama_free(c); }
};
struct DatasetDeleter {
  void operator()(ggml_opt_dataset* d) const { ggml_opt_dataset_free(d); }
};
struct ResultDeleter {
  void operator()(ggml_opt_result* r) const { ggml_opt_result_free(r); }
};

}  // namespace

void validate_finetune_options(const FinetuneOptions& o) {
  if (o.base_path.empty())
    throw Error(ErrorCode::kInvalidInput, "no base model given (--base)", "base");
  if (o.data_path.empty())
    throw Error(ErrorCode::kInvalidInput, "no training data given (--data)", "data");
  if (o.epochs < 1 || o.epochs > 1000)
    throw Error(ErrorCode::kInvalidInput, "--epochs must be between 1 and 1000", "epochs");
  if (!std::isfinite(o.learning_rate) || o.learning_rate <= 0 || o.learning_rate > 1)
    throw Error(ErrorCode::kInvalidInput, "--lr must be a number in (0, 1]", "lr");
  if (o.window != 0 &&
      (o.window < kFinetuneWindowStep || o.window > 8192 || o.window % kFinetuneWindowStep != 0)) {
    throw Error(ErrorCode::kInvalidInput,
                "--ctx must be a multiple of 256 tokens between 256 and 8192 (libllama rounds "
                "every context up to a multiple of 256)",
                "ctx");
  }
  if (!std::isfinite(o.val_split) || o.val_split < 0 || o.val_split > 0.5F)
    throw Error(ErrorCode::kInvalidInput, "--val-split must be between 0 and 0.5", "val_split");
  if (o.threads < 0 || o.threads > 1024)
    throw Error(ErrorCode::kInvalidInput, "--threads must be between 0 and 1024", "threads");
}

FinetuneResult finetune(const FinetuneOptions& o, const FinetuneCallbacks& callbacks) {
  const auto start = Clock::now();
  validate_finetune_options(o);
  const GgufSummary summary = inspect_gguf(o.base_path);
  check_base(summary);
  check_output_writable(o);
  FinetuneData data = read_finetune_file(o.data_path, o.format);

  ModelOptions load;
  load.gpu_layers = 0;    // training runs on the CPU, weights in system memory
  load.use_mmap = false;  // writable weights: the optimizer updates them in place
  const auto model = TextModel::load(o.base_path, load);  // this run's own copy

  FinetunePlan plan;
  plan.format = finetune_format_name(data.format);
  plan.examples = data.examples.size();
  plan.skipped_examples = data.skipped_examples;
  plan.dropped_turns = data.dropped_turns;
  plan.chat_template = model->has_chat_template();
  plan.parameters = summary.n_params;

  // Shuffle examples, hold out the validation ones.
  std::mt19937 rng(o.seed);
  std::vector<size_t> order(data.examples.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  size_t n_val = 0;
  if (o.val_split > 0 && order.size() >= 2) {
    n_val = std::max<size_t>(1, static_cast<size_t>(std::lround(o.val_split * order.size())));
    n_val = std::min(n_val, order.size() - 1);
  }
  std::vector<Token> train_stream, val_stream;
  for (size_t k = 0; k < order.size(); ++k) {
    const auto tokens = example_tokens(*model, data.examples[order[k]]);
    auto& stream = k < order.size() - n_val ? train_stream : val_stream;
    stream.insert(stream.end(), tokens.begin(), tokens.end());
  }
  plan.train_examples = order.size() - n_val;
  plan.val_examples = n_val;
  plan.train_tokens = static_cast<int64_t>(train_stream.size());
  plan.val_tokens = static_cast<int64_t>(val_stream.size());

  // The training context: one window per step, F32 KV cache (no F16 backward), no flash
  // attention (no backward either).
  int window = o.window > 0 ? o.window : kFinetuneWindowStep;
  auto params = llama_context_default_params();
  params.n_ctx = static_cast<uint32_t>(window);
  params.n_batch = static_cast<uint32_t>(window);
  params.n_ubatch = static_cast<uint32_t>(window);
  params.n_seq_max = 1;
  params.type_k = GGML_TYPE_F32;
  params.type_v = GGML_TYPE_F32;
  params.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
  const int threads = o.threads > 0 ? o.threads : default_thread_count();
  params.n_threads = threads;
  params.n_threads_batch = threads;
  params.no_perf = true;
  params.op_offload = false;  // CPU only, GPU present or not (see the header)
  clear_recent_engine_errors();
  std::unique_ptr<llama_context, ContextDeleter> ctx(llama_init_from_model(model->raw(), params));
  if (!ctx) {
    throw Error(ErrorCode::kModelLoad,
                "cannot create a training context of " + std::to_string(window) +
                    " tokens: " + recent_engine_errors(),
                "ctx");
  }
  window = static_cast<int>(llama_n_ctx(ctx.get()));  // what libllama made of it
  plan.window = window;

  const auto train_starts = window_starts(train_stream.size(), static_cast<size_t>(window));
  if (train_starts.empty()) {
    throw Error(ErrorCode::kInvalidInput,
                o.data_path + " has " + std::to_string(train_stream.size()) +
                    " training tokens, fewer than one window of " + std::to_string(window) +
                    " + 1: add data or give a smaller --ctx",
                "data");
  }
  std::vector<size_t> val_starts;
  if (val_stream.size() >= 2) {
    val_starts = window_starts(val_stream.size(), static_cast<size_t>(window));
    if (val_starts.empty()) val_starts.push_back(0);  // one window, wrapping around
  }
  plan.train_windows = static_cast<int64_t>(train_starts.size());
  plan.val_windows = static_cast<int64_t>(val_starts.size());
  const int64_t ndata = plan.train_windows + plan.val_windows;
  std::unique_ptr<ggml_opt_dataset, DatasetDeleter> dataset(ggml_opt_dataset_init(
      GGML_TYPE_I32, GGML_TYPE_I32, window, window, ndata, /*ndata_shard=*/1));
  for (size_t i = 0; i < val_starts.size(); ++i) {
    put_window(dataset.get(), plan.train_windows + static_cast<int64_t>(i), val_stream,
               val_starts[i], static_cast<size_t>(window));
  }
  if (callbacks.on_plan) callbacks.on_plan(plan);

  float lr = o.learning_rate;
  llama_opt_params opt{};
  opt.n_ctx_train = 0;  // the context's: one window
  opt.param_filter = llama_opt_param_filter_all;
  opt.param_filter_ud = nullptr;
  opt.get_opt_pars = optimizer_params;
  opt.get_opt_pars_ud = &lr;
  opt.optimizer_type = GGML_OPT_OPTIMIZER_TYPE_ADAMW;
  llama_opt_init(ctx.get(), model->raw(), opt);

  std::unique_ptr<ggml_opt_result, ResultDeleter> train_result(ggml_opt_result_init());
  std::unique_ptr<ggml_opt_result, ResultDeleter> val_result(ggml_opt_result_init());
  FinetuneResult result;
  std::vector<size_t> epoch_order = train_starts;
  for (int epoch = 1; epoch <= o.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    std::shuffle(epoch_order.begin(), epoch_order.end(), rng);
    for (size_t i = 0; i < epoch_order.size(); ++i) {
      put_window(dataset.get(), static_cast<int64_t>(i), train_stream, epoch_order[i],
                 static_cast<size_t>(window));
    }
    llama_opt_epoch(ctx.get(), dataset.get(), train_result.get(), val_result.get(),
                    plan.train_windows, nullptr, nullptr);
    EpochReport report;
    report.epoch = epoch;
    report.epochs = o.epochs;
    double unc = 0;
    ggml_opt_result_loss(train_result.get(), &report.train_loss, &unc);
    if (plan.val_windows > 0) ggml_opt_result_loss(val_result.get(), &report.val_loss, &unc);
    report.tokens = plan.train_windows * window;
    report.seconds = seconds_since(epoch_start);
    ggml_opt_result_reset(train_result.get());
    ggml_opt_result_reset(val_result.get());
    if (!std::isfinite(report.train_loss)) {
      throw Error(ErrorCode::kInvalidInput,
                  "the training loss diverged (" + std::to_string(report.train_loss) +
                      ") in epoch " + std::to_string(epoch) +
                      ": try a smaller --lr; nothing written",
                  "lr");
    }
    result.epochs_done = epoch;
    if (callbacks.on_epoch) callbacks.on_epoch(report);
    if (epoch < o.epochs && callbacks.stop_requested && callbacks.stop_requested()) {
      result.stopped = true;
      break;
    }
  }
  save_model(model->raw(), o, summary);
  result.output_path = o.output_path;
  result.seconds = seconds_since(start);
  return result;
}

}  // namespace mmserve::engine
