#include "engine/memory_plan.h"

#include <algorithm>
#include <numeric>

#include "engine/embedding_model.h"

namespace mmserve::engine {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
// The server process with no model: binary, shared libraries (ggml, llama, whisper, curl,
// sqlite), heap and thread stacks; measured as `serve` RSS with the 260K-parameter model.
constexpr uint64_t kProcessBaseline = 40 * kMiB;
// llama.cpp's vocabulary tables (token strings, maps): measured, per vocabulary entry.
constexpr uint64_t kVocabBytesPerToken = 160;
// Tokens the readiness probe decodes ("Hello" and one sampled token), rounded up.
constexpr uint64_t kProbeTokens = 8;
// whisper.cpp's per-state heap beside its ggml buffers (decoders, mel, token vectors).
constexpr uint64_t kWhisperStateHeap = 8 * kMiB;

uint64_t pad(uint64_t n, uint64_t to) {
  return (n + to - 1) / to * to;
}
uint64_t positive(int64_t v) {
  return v > 0 ? static_cast<uint64_t>(v) : 0;
}

// Splits `n_items` consecutive items over GPUs in proportion to their free memory, as
// llama.cpp's default tensor split does; returns the GPU index of item i.
std::vector<size_t> split_over(size_t n_items, const std::vector<uint64_t>& gpu_free) {
  std::vector<size_t> owner(n_items, 0);
  const long double total = std::accumulate(gpu_free.begin(), gpu_free.end(), 0.0L);
  if (gpu_free.size() < 2 || total <= 0) return owner;
  // llama.cpp: item i goes to the first device whose cumulative share exceeds i / n_items.
  long double cumulative = gpu_free[0] / total;
  size_t g = 0;
  for (size_t i = 0; i < n_items; ++i) {
    const long double at = static_cast<long double>(i) / static_cast<long double>(n_items);
    while (g + 1 < gpu_free.size() && at >= cumulative) cumulative += gpu_free[++g] / total;
    owner[i] = g;
  }
  return owner;
}

// Activations per token (f32) at the two widest points of llama.cpp's graph: the logits (the
// vocabulary and the residual stream), and a layer's feed-forward (gate, up, activation and
// product beside the residual stream; for a mixture of experts, the chosen experts' and the
// router's). Calibrated on the buffer sizes llama.cpp logs: it reserves the worst case, every
// token of a micro-batch an output: llama-3.2-1b at n_batch 512 reserves 258.5 MiB = 512 x 4 x
// (128256 + 2 x 2048); a 1024-wide Gemma 3 with n_ff 4096, 40.0 MiB = 512 x 4 x (4 x 1024 + 4 x
// 4096).
struct Widths {
  uint64_t logits = 0;
  uint64_t ffn = 0;
};
Widths widths(const GgufSummary& m) {
  const uint64_t embd = positive(m.n_embd);
  Widths w{.logits = 4 * (positive(m.n_vocab) + 2 * embd),
           .ffn = 4 * (4 * embd + 4 * positive(m.n_ff))};
  if (m.is_moe()) {
    const uint64_t ff = positive(m.n_ff_expert > 0 ? m.n_ff_expert : m.n_ff);
    w.ffn = 4 * (4 * embd + 4 * ff * positive(std::max<int64_t>(m.n_expert_used, 1)) +
                 positive(m.n_expert));
  }
  return w;
}

void add(MemoryPlan& plan, PlanComponent c) {
  c.gpu.resize(plan.gpu.size(), 0);
  plan.ram += c.ram;
  plan.ram_at_load += c.ram_at_load;
  for (size_t g = 0; g < c.gpu.size(); ++g) plan.gpu[g] += c.gpu[g];
  plan.components.push_back(std::move(c));
}

void plan_text(const PlanInput& in, const GgufSummary& m, MemoryPlan& plan) {
  const size_t n_gpus = in.gpu_free.size();
  const int64_t n_layer = std::max<int64_t>(m.n_layer, 0);
  // llama.cpp counts the output head as one more layer: n_gpu_layers = k puts it and the last
  // k - 1 repeating layers on the GPUs (-1: all of them).
  const int64_t requested = in.gpu_layers < 0 ? n_layer + 1 : in.gpu_layers;
  const int64_t offloaded = n_gpus == 0 ? 0 : std::min<int64_t>(requested, n_layer + 1);
  const int64_t first_gpu = n_layer + 1 - offloaded;
  plan.output_on_gpu = offloaded > 0;
  plan.gpu_layers = static_cast<int32_t>(n_layer - std::clamp<int64_t>(first_gpu, 0, n_layer));
  const auto owner = split_over(static_cast<size_t>(n_layer + 1), in.gpu_free);

  PlanComponent weights{.name = "weights"};
  weights.gpu.resize(n_gpus, 0);
  // Token embeddings stay in host memory (llama.cpp's input layer); so do the norms and rope
  // tables outside the repeating layers.
  weights.ram = m.token_embd_bytes + m.other_bytes;
  for (int64_t i = 0; i <= n_layer; ++i) {
    const uint64_t bytes =
        i == n_layer ? m.output_bytes
                     : (static_cast<size_t>(i) < m.layer_bytes.size() ? m.layer_bytes[i] : 0);
    if (i >= first_gpu) {
      weights.gpu[owner[i]] += bytes;
    } else {
      weights.ram += bytes;
    }
  }
  // Tied embeddings: the head reads token_embd; a model without "output" counts it once.
  weights.ram_at_load = weights.ram;  // the probe touches every mapped page
  add(plan, weights);

  plan.n_ctx = in.embedding
                   ? std::max(1, in.ctx_size)
                   : static_cast<int32_t>(
                         pad(default_context_cells(in.ctx_size, in.parallel, m.n_ctx_train), 256));
  int64_t n_batch = std::max(1, in.batch_size);
  if (in.projector && in.projector->projector.tokens_per_image > 0 && m.architecture == "gemma3") {
    n_batch = std::max(n_batch, in.projector->projector.tokens_per_image);  // whole image
  }
  plan.n_batch = static_cast<int32_t>(std::min<int64_t>(n_batch, plan.n_ctx));

  // K and V in f16, one cell per token of every layer; on the GPU of its layer.
  const uint64_t per_layer =
      in.encoder_only ? 0
                      : 2 * positive(m.n_head_kv) * (positive(m.head_k()) + positive(m.head_v()));
  plan.kv_bytes_per_token = per_layer * static_cast<uint64_t>(n_layer);
  PlanComponent kv{.name = "kv cache"};
  kv.gpu.resize(n_gpus, 0);
  for (int64_t i = 0; i < n_layer; ++i) {
    const uint64_t bytes = per_layer * static_cast<uint64_t>(plan.n_ctx);
    if (i >= first_gpu) {
      kv.gpu[owner[i]] += bytes;
    } else {
      kv.ram += bytes;
    }
  }
  kv.ram_at_load = kv.ram;  // llama.cpp clears the cache at creation: every page is touched
  add(plan, kv);

  // The reservation: a GPU allocates all of it. Host memory is only touched as far as a step
  // writes it: serving asks logits of one token per sequence, so a full batch reaches the
  // feed-forward width and `parallel` logit rows (the 1B model's RSS grows by 68 MiB of its
  // 258.5 MiB reservation under a 3200-token prompt).
  const auto w = widths(m);
  const uint64_t n_batch_u = static_cast<uint64_t>(plan.n_batch);
  const uint64_t n_par = static_cast<uint64_t>(std::max(1, in.parallel));
  const uint64_t reserved = std::max(w.logits, w.ffn) * n_batch_u;
  const uint64_t touched =
      std::min(reserved, w.ffn * n_batch_u + w.logits * std::min(n_par, n_batch_u));
  PlanComponent compute{.name = "compute buffers"};
  compute.gpu.resize(n_gpus, 0);
  if (offloaded == 0) {
    compute.ram = touched;
  } else {
    // Each GPU holding layers reserves the graph's width; the host keeps the input embeddings
    // (and the whole width when some layers stay on the CPU).
    for (int64_t i = first_gpu; i <= n_layer; ++i) compute.gpu[owner[i]] = reserved;
    compute.ram = first_gpu > 0 ? touched : 2 * 4 * positive(m.n_embd) * n_batch_u;
  }
  // After the probe only its few tokens' share has been written.
  compute.ram_at_load = std::min(compute.ram, (w.ffn + w.logits) * kProbeTokens);
  add(plan, compute);

  // Logits of each sequence's last token, and the vocabulary tables; in host memory.
  PlanComponent host{.name = "outputs, vocabulary"};
  host.ram = 4 * positive(m.n_vocab) * static_cast<uint64_t>(std::max(1, in.parallel)) +
             kVocabBytesPerToken * positive(m.n_vocab);
  host.ram_at_load = host.ram;
  add(plan, host);
}

// libmtmd's CLIP encoder: weights (read into memory, on the GPU when there is one) and the
// compute buffer of one image at the encoder's size (warmed up at load, so resident).
void plan_projector(const GgufSummary& p, MemoryPlan& plan) {
  const auto& v = p.projector;
  const uint64_t side = v.patch_size > 0 ? positive(v.image_size) / positive(v.patch_size) : 0;
  const uint64_t patches = side * side + 1;
  const uint64_t embd = positive(v.n_embd);
  // Per patch (f32): the residual, normed and attention outputs and the feed-forward; libmtmd
  // runs attention flash, without a scores matrix. Calibrated: a 768-wide, 12-layer encoder
  // at 448 pixels logs a 21.00 MiB compute buffer.
  const uint64_t compute = 4 * patches * (3 * embd + positive(v.n_ff));
  PlanComponent c{.name = "projector"};
  c.gpu.resize(plan.gpu.size(), 0);
  if (plan.gpu.empty()) {
    c.ram = p.tensor_bytes + compute;
  } else {
    c.gpu[0] = p.tensor_bytes + compute;
  }
  c.ram_at_load = c.ram;
  add(plan, c);
}

// whisper.cpp: the weights once, and per state (speech_parallel) its self- and cross-attention
// caches (f16, padded to 256 positions) and four compute buffers (mel convolution, encoder,
// cross-attention, decoder over the text context with its logits). Calibrated against the
// sizes whisper_init_state logs for Whisper small (kv self 18.87 MB, cross 56.62 MB, pad 4.72
// MB, conv 22.42 MB, encode 33.85 MB, cross 6.20 MB, decode 97.28 MB).
void plan_speech(const SpeechModelShape& s, int32_t speech_parallel, MemoryPlan& plan) {
  const uint64_t audio = pad(positive(s.n_audio_ctx), 256);
  const uint64_t text = pad(positive(s.n_text_ctx), 256);
  const uint64_t kv = 4 * positive(s.n_text_layer) * positive(s.n_text_state) * (text + audio) +
                      4 * audio * positive(s.n_audio_state);
  const uint64_t conv = 29200 * positive(s.n_audio_state);
  const uint64_t encode = 29 * positive(s.n_audio_ctx) * positive(s.n_audio_state);
  const uint64_t cross = 5 * positive(s.n_audio_ctx) * positive(s.n_audio_state);
  const uint64_t n_vocab = 51865;  // the header's vocabulary size is not in the shape
  const uint64_t decode = 4 * positive(s.n_text_ctx) * (n_vocab + 3 * positive(s.n_text_state));
  const uint64_t n_states = static_cast<uint64_t>(std::max(1, speech_parallel));
  const uint64_t per_state = kv + conv + encode + cross + decode + kWhisperStateHeap;

  PlanComponent w{.name = "speech weights"};
  PlanComponent st{.name = "whisper states"};
  w.gpu.resize(plan.gpu.size(), 0);
  st.gpu.resize(plan.gpu.size(), 0);
  if (plan.gpu.empty()) {
    w.ram = w.ram_at_load = positive(s.file_bytes);
    st.ram = n_states * per_state;
    // Every state's caches are cleared at creation; the probe ran one window on the first.
    st.ram_at_load = n_states * (kv + kWhisperStateHeap) + conv + encode + cross + decode / 5;
  } else {
    w.gpu[0] = positive(s.file_bytes);
    st.gpu[0] = n_states * (per_state - kWhisperStateHeap);
    st.ram = st.ram_at_load = n_states * kWhisperStateHeap;
  }
  add(plan, w);
  add(plan, st);
}

}  // namespace

int32_t default_context_cells(int32_t ctx_size, int32_t parallel, int64_t n_ctx_train) {
  if (ctx_size > 0) return ctx_size;
  const int64_t train = n_ctx_train > 0 ? n_ctx_train : 4096;
  return static_cast<int32_t>(std::max(1, parallel) * std::min<int64_t>(train, 4096));
}

void plan_as_embedding(PlanInput& input, int32_t max_input_tokens, int32_t batch_tokens) {
  const EmbeddingOptions options{.max_input_tokens = max_input_tokens,
                                 .batch_tokens = batch_tokens};
  input.embedding = true;
  input.encoder_only = is_encoder_architecture(input.text->architecture);
  input.parallel = 1;
  input.ctx_size = options.batch_tokens_for(input.text->n_ctx_train);
  input.batch_size = input.ctx_size;
}

MemoryPlan plan_memory(const PlanInput& in) {
  MemoryPlan plan;
  plan.gpu.assign(in.gpu_free.size(), 0);
  if (in.process_baseline) {
    add(plan, {.name = "process", .ram = kProcessBaseline, .ram_at_load = kProcessBaseline});
  }
  if (in.text) plan_text(in, *in.text, plan);
  if (in.text && in.projector) plan_projector(*in.projector, plan);
  if (in.speech) plan_speech(*in.speech, in.speech_parallel, plan);
  return plan;
}

bool plan_fits(const MemoryPlan& plan, uint64_t ram_budget, const std::vector<uint64_t>& gpu_free) {
  if (plan.ram > ram_budget) return false;
  for (size_t g = 0; g < plan.gpu.size(); ++g) {
    if (g >= gpu_free.size() || plan.gpu[g] > gpu_free[g]) return false;
  }
  return true;
}

std::optional<PlanSuggestion> suggest_fitting(const PlanInput& input, uint64_t ram_budget) {
  PlanInput in = input;
  const int64_t n_layer = in.text ? std::max<int64_t>(in.text->n_layer, 0) : 0;
  const int32_t max_layers = static_cast<int32_t>(
      in.gpu_free.empty()
          ? 0
          : (in.gpu_layers < 0 ? n_layer + 1 : std::min<int64_t>(in.gpu_layers, n_layer + 1)));
  const int32_t parallel0 = std::max(1, in.parallel);
  const int32_t ctx0 =
      in.text ? default_context_cells(in.ctx_size, parallel0, in.text->n_ctx_train) : 0;
  // A smaller batch shrinks the compute buffers (logits for every token of a micro-batch): the
  // last resort, down to 64 tokens.
  for (int32_t batch = std::max(1, in.batch_size); batch >= 1; batch /= 2) {
    in.batch_size = batch;
    for (int32_t layers = max_layers; layers >= 0; --layers) {
      in.gpu_layers = layers;
      for (int32_t parallel = parallel0; parallel >= 1; parallel /= 2) {
        in.parallel = parallel;
        // Keep the context per sequence the request implied, then halve it.
        int32_t ctx = static_cast<int32_t>(static_cast<int64_t>(ctx0) * parallel / parallel0);
        for (;; ctx /= 2) {
          // Halved sizes rounded down to llama.cpp's 256-cell padding (the request as given).
          in.ctx_size = ctx == ctx0 || ctx < 256 ? std::max(ctx, 1) : ctx / 256 * 256;
          auto plan = plan_memory(in);
          if (plan_fits(plan, ram_budget, in.gpu_free)) {
            return PlanSuggestion{.parallel = parallel,
                                  .ctx_size = in.ctx_size,
                                  .gpu_layers = layers,
                                  .batch_size = batch,
                                  .plan = std::move(plan)};
          }
          if (!in.text || ctx / 2 < 512 * parallel) break;
        }
      }
    }
    if (batch <= 64) break;
  }
  return std::nullopt;
}

}  // namespace mmserve::engine
