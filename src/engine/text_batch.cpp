#include "engine/text_batch.h"

#include <llama.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/utf8.h"
#include "engine/backend.h"
#include "engine/vision_model.h"

namespace mmserve::engine {
namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// Length of the common prefix of two token runs. Image placeholders never match: equal
// placeholders need not be equal images, so reuse stops at the first image.
size_t common_prefix(const std::vector<Token>& a, const std::vector<Token>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n] && a[n] != kMediaToken) ++n;
  return n;
}

}  // namespace

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kError: return "error";
  }
  return "error";
}

struct TextBatch::Slot {
  int32_t seq = 0;  // llama sequence id
  bool active = false;
  SequenceId id = 0;
  GenerationRequest request;
  SequenceCallbacks callbacks;
  SamplerPtr sampler;
  SamplerPtr grammar;                        // set when the request has a grammar
  std::vector<llama_token_data> candidates;  // the grammar's working array, reused per step
  std::string utf8_tail;  // the generated text's incomplete last character, under a grammar
  std::unique_ptr<TextStream> stream;
  std::vector<Token> cache;    // tokens whose KV is in this slot's sequence, in order
  LoraSet::Key cache_lora;     // the adapter set that KV was computed with
  size_t prompt_done = 0;      // prompt tokens decoded (cache holds them)
  llama_pos pos = 0;           // next position; after an M-RoPE image it runs ahead of cache.size()
  size_t media_next = 0;       // the next image in request.media to work on
  bool media_encoded = false;  // media_embd holds that image's embeddings
  std::vector<float> media_embd;
  Token next_token = -1;  // sampled, not yet decoded; -1 while prefilling
  int32_t cached_prompt = 0;
  int32_t generated = 0;
  std::vector<TokenLogprob> logprobs;  // when request.top_logprobs > 0
  uint64_t last_used = 0;
  Clock::time_point started, first_token;

  int64_t reservation() const { return TextBatch::reservation(request); }
  // Waiting at an image: every prompt token before it has been decoded (or is in this step).
  bool at_media() const {
    return media_next < request.media.size() && prompt_done == request.media[media_next].begin;
  }
};

struct TextBatch::StepBatch {
  explicit StepBatch(int32_t rows) : batch(llama_batch_init(rows, 0, 1)) {}
  ~StepBatch() { llama_batch_free(batch); }
  StepBatch(const StepBatch&) = delete;
  StepBatch& operator=(const StepBatch&) = delete;
  llama_batch batch;
};

TextBatch::TextBatch(std::shared_ptr<const TextModel> model, const BatchOptions& options,
                     std::shared_ptr<VisionModel> vision)
    : model_(std::move(model)), vision_(std::move(vision)) {
  ensure_backend_initialized();
  const int32_t parallel = std::max(1, options.n_parallel);
  auto params = llama_context_default_params();
  params.n_ctx = options.n_ctx > 0 ? static_cast<uint32_t>(options.n_ctx)
                                   : static_cast<uint32_t>(model_->n_ctx_train());
  params.n_batch = static_cast<uint32_t>(std::max(1, options.n_batch));
  // Models that attend bidirectionally within an image (Gemma 3) need the whole image in one
  // micro-batch; text steps still take at most options.n_batch tokens.
  if (vision_ != nullptr && vision_->info().non_causal) {
    params.n_batch = std::max(params.n_batch, static_cast<uint32_t>(vision_->max_image_tokens()));
  }
  params.n_ubatch = params.n_batch;
  params.n_seq_max = static_cast<uint32_t>(parallel);
  params.kv_unified = true;  // one pool shared by every sequence (see header)
  const int threads = options.threads > 0 ? options.threads : default_thread_count();
  params.n_threads = threads;
  params.n_threads_batch = threads;
  threads_ = threads;
  params.no_perf = true;
  clear_recent_engine_errors();
  ctx_ = llama_init_from_model(model_->raw(), params);
  if (ctx_ == nullptr) {
    throw Error(ErrorCode::kModelLoad,
                "cannot create a context of " + std::to_string(params.n_ctx) +
                    " tokens: " + recent_engine_errors(),
                "ctx_size");
  }
  n_ctx_ = static_cast<int32_t>(llama_n_ctx(ctx_));
  adapter_lock_ = &adapter_lock(*model_);
  n_batch_ = std::min(std::max(1, options.n_batch), static_cast<int32_t>(llama_n_batch(ctx_)));
  max_turn_ = std::max(1, options.max_adapter_turn);
  // Lending cells between sequences needs every cell of a prefix kept at positions equal to
  // indices: not so under a sliding window (cells leave it) or with recurrent state.
  const llama_model* raw = model_->raw();
  share_cells_ =
      !llama_model_is_recurrent(raw) && !llama_model_is_hybrid(raw) && llama_model_n_swa(raw) == 0;
  step_batch_ = std::make_unique<StepBatch>(n_batch_);
  for (int32_t i = 0; i < parallel; ++i) {
    auto slot = std::make_unique<Slot>();
    slot->seq = i;
    slots_.push_back(std::move(slot));
  }
}

TextBatch::~TextBatch() {
  if (ctx_ != nullptr) llama_free(ctx_);
}

void TextBatch::validate(const GenerationRequest& r) const {
  if (r.prompt.empty()) throw Error(ErrorCode::kInvalidInput, "the prompt is empty", "input");
  if (r.max_tokens < 1) {
    throw Error(ErrorCode::kInvalidInput, "max_tokens must be at least 1", "max_tokens");
  }
  const int64_t need = static_cast<int64_t>(r.prompt.size()) + r.max_tokens;
  if (static_cast<int64_t>(r.prompt.size()) >= n_ctx_) {
    throw Error(ErrorCode::kInvalidInput,
                "the prompt is " + std::to_string(r.prompt.size()) +
                    " tokens, longer than the context of " + std::to_string(n_ctx_),
                "input");
  }
  if (need > n_ctx_) {
    throw Error(ErrorCode::kInvalidInput,
                "prompt (" + std::to_string(r.prompt.size()) + " tokens) plus max_tokens (" +
                    std::to_string(r.max_tokens) + ") exceeds the context of " +
                    std::to_string(n_ctx_) + " tokens",
                "max_tokens");
  }
  engine::validate(r.sampling);
  const int32_t n_vocab = llama_vocab_n_tokens(model_->vocab());
  for (const auto& bias : r.sampling.logit_bias) {
    if (bias.first >= n_vocab) {
      throw Error(ErrorCode::kInvalidInput,
                  "logit_bias names token " + std::to_string(bias.first) + "; the vocabulary has " +
                      std::to_string(n_vocab),
                  "logit_bias");
    }
  }
  for (const auto& use : r.lora.uses()) {
    if (&use.adapter->model() != model_.get()) {
      throw Error(ErrorCode::kInvalidInput,
                  "adapter '" + use.adapter->name() + "' was loaded for another model", "lora");
    }
  }
  // Compiled once here, off the scheduler thread, so that start() cannot fail on it.
  if (!r.grammar.empty()) (void)make_grammar_sampler(model_->vocab(), r.grammar);
  if (r.media.empty()) return;
  if (vision_ == nullptr) {
    throw Error(
        ErrorCode::kModelUnavailable,
        "model " + model_->id() + " has no projector loaded (--mmproj), so it cannot read images",
        "input");
  }
  size_t end = 0;
  for (const auto& m : r.media) {
    if (!m.chunk || m.begin < end || m.begin + m.chunk->n_tokens() > r.prompt.size()) {
      throw Error(ErrorCode::kInternal, "the images of the prompt are misplaced", "input");
    }
    end = m.begin + static_cast<size_t>(m.chunk->n_tokens());
  }
  if (end == r.prompt.size()) {
    throw Error(ErrorCode::kInvalidInput, "the prompt must end with text after its last image",
                "input");
  }
}

int64_t TextBatch::cells_in_use(const Slot* except) const {
  int64_t used = 0;
  for (const auto& s : slots_) {
    if (s.get() == except) continue;
    used += s->active ? s->reservation() : static_cast<int64_t>(s->cache.size());
  }
  return used;
}

bool TextBatch::can_start(const GenerationRequest& request, int64_t also_reserved) const {
  int64_t reserved = also_reserved;
  bool free_slot = false;
  for (const auto& s : slots_) {
    if (s->active) {
      reserved += s->reservation();
    } else {
      free_slot = true;
    }
  }
  // Idle caches can always be evicted, so only running reservations constrain a start.
  return free_slot && reserved + reservation(request) <= static_cast<int64_t>(n_ctx_);
}

TextBatch::SequenceId TextBatch::start(GenerationRequest request, SequenceCallbacks callbacks) {
  // Prefer the idle slot sharing the longest prefix with the prompt (prefix reuse), then the
  // least recently used one.
  Slot* best = nullptr;
  size_t best_prefix = 0;
  for (auto& s : slots_) {
    if (s->active) continue;
    // KV computed with other adapters is of no use to this request.
    const size_t prefix =
        request.lora.same_as(s->cache_lora) ? common_prefix(s->cache, request.prompt) : 0;
    if (best == nullptr || prefix > best_prefix ||
        (prefix == best_prefix && s->last_used < best->last_used)) {
      best = s.get();
      best_prefix = prefix;
    }
  }
  if (best == nullptr) throw Error(ErrorCode::kBusy, "no free sequence slot");
  Slot& slot = *best;
  llama_memory_t mem = llama_get_memory(ctx_);

  // At least the last prompt token must be decoded again to get its logits.
  size_t keep = request.reuse_prefix ? std::min(best_prefix, request.prompt.size() - 1) : 0;
  if (!llama_memory_seq_rm(mem, slot.seq, static_cast<llama_pos>(keep), -1)) {
    llama_memory_seq_rm(mem, slot.seq, -1, -1);  // this model cannot trim: start over
    keep = 0;
  }
  slot.cache.resize(keep);
  if (!request.lora.same_as(slot.cache_lora)) slot.cache_lora = request.lora.key();

  // Make room: evict idle caches, least recently used first.
  const int64_t need = reservation(request);
  while (cells_in_use(&slot) + need > n_ctx_) {
    Slot* victim = nullptr;
    for (auto& s : slots_) {
      if (!s->active && s.get() != &slot && !s->cache.empty() &&
          (victim == nullptr || s->last_used < victim->last_used)) {
        victim = s.get();
      }
    }
    if (victim == nullptr) break;  // can_start guaranteed this cannot happen
    llama_memory_seq_rm(mem, victim->seq, -1, -1);
    victim->cache.clear();
  }

  slot.active = true;
  slot.id = next_id_++;
  slot.sampler = make_sampler(request.sampling, llama_vocab_n_tokens(model_->vocab()));
  for (const Token t : request.prompt) {
    if (t != kMediaToken) llama_sampler_accept(slot.sampler.get(), t);
  }
  slot.grammar =
      request.grammar.empty() ? nullptr : make_grammar_sampler(model_->vocab(), request.grammar);
  slot.utf8_tail.clear();
  slot.stream = std::make_unique<TextStream>(request.stop);
  slot.request = std::move(request);
  slot.callbacks = std::move(callbacks);
  slot.prompt_done = keep;
  slot.pos = static_cast<llama_pos>(keep);  // reuse stops before any image: positions = indices
  slot.media_next = 0;
  slot.media_encoded = false;
  slot.media_embd.clear();
  slot.cached_prompt = static_cast<int32_t>(keep);
  slot.next_token = -1;
  slot.generated = 0;
  slot.logprobs.clear();
  slot.last_used = ++use_clock_;
  slot.started = Clock::now();
  return slot.id;
}

bool TextBatch::borrow_prefix(Slot& s) {
  // Here s.cache is prompt[0, prompt_done) at positions equal to indices (common_prefix never
  // crosses an image), and so is any other sequence's cache up to its common prefix with it.
  const std::vector<Token>& prompt = s.request.prompt;
  const size_t limit = prompt.size() - 1;  // the last prompt token is decoded for its logits
  const Slot* donor = nullptr;
  size_t longest = s.prompt_done;
  for (const auto& d : slots_) {
    if (d.get() == &s || !s.request.lora.same_as(d->cache_lora)) continue;
    const size_t have = std::min(common_prefix(d->cache, prompt), limit);
    if (have > longest) {
      donor = d.get();
      longest = have;
    }
  }
  if (donor != nullptr) {
    // On the unified cache this shares the cells (the destination is added to their
    // sequences): nothing is copied or computed, and the cells live while either holds them.
    llama_memory_seq_cp(llama_get_memory(ctx_), donor->seq, s.seq,
                        static_cast<llama_pos>(s.prompt_done), static_cast<llama_pos>(longest));
    s.cache.insert(s.cache.end(), prompt.begin() + static_cast<std::ptrdiff_t>(s.prompt_done),
                   prompt.begin() + static_cast<std::ptrdiff_t>(longest));
    s.cached_prompt += static_cast<int32_t>(longest - s.prompt_done);
    s.prompt_done = longest;
    s.pos = static_cast<llama_pos>(longest);
  }
  // Another sequence at the same point whose prompt goes on like this one's computes the next
  // tokens for both (the one started first leads; ids only grow, so there is no cycle): this
  // one borrows them at a later step instead of decoding them again beside it. Not for prompts
  // that share only a few tokens (BOS): a step of waiting costs more than they do.
  constexpr size_t kWorthWaiting = 16;
  return std::ranges::any_of(slots_, [&](const auto& d) {
    if (d.get() == &s || !d->active || d->id > s.id || d->prompt_done != s.prompt_done ||
        d->prompt_done >= d->request.prompt.size() || !s.request.lora.same_as(d->cache_lora)) {
      return false;
    }
    const size_t common = std::min(common_prefix(d->request.prompt, prompt), limit);
    return common >= kWorthWaiting && common > s.prompt_done;
  });
}

void TextBatch::cancel(SequenceId id) {
  for (auto& s : slots_) {
    if (s->active && s->id == id) finish(*s, FinishReason::kCancelled);
  }
}

bool TextBatch::has_work() const {
  return std::ranges::any_of(slots_, [](const auto& s) { return s->active; });
}

int32_t TextBatch::running() const {
  return static_cast<int32_t>(
      std::ranges::count_if(slots_, [](const auto& s) { return s->active; }));
}

double TextBatch::kv_usage() const {
  return static_cast<double>(cells_in_use(nullptr)) / static_cast<double>(n_ctx_);
}

void TextBatch::finish(Slot& slot, FinishReason reason, std::optional<Error> error) {
  const auto now = Clock::now();
  SequenceResult result;
  result.reason = reason;
  if (reason == FinishReason::kStop || reason == FinishReason::kLength) {
    if (auto tail = slot.stream->flush(); !tail.empty() && slot.callbacks.on_text) {
      slot.callbacks.on_text(tail);
    }
  }
  result.text = slot.stream->emitted();
  result.prompt_tokens = static_cast<int32_t>(slot.request.prompt.size());
  result.cached_prompt_tokens = slot.cached_prompt;
  result.completion_tokens = slot.generated;
  if (slot.generated > 0) {
    result.prompt_ms = ms_between(slot.started, slot.first_token);
    result.generate_ms = ms_between(slot.first_token, now);
  } else {
    result.prompt_ms = ms_between(slot.started, now);
  }
  result.error = std::move(error);
  result.logprobs = std::move(slot.logprobs);
  slot.logprobs.clear();
  if (reason == FinishReason::kError) {
    // The sequence's KV state is unknown after a failed decode: drop it.
    llama_memory_seq_rm(llama_get_memory(ctx_), slot.seq, -1, -1);
    slot.cache.clear();
  }
  slot.active = false;
  slot.sampler.reset();
  slot.grammar.reset();
  slot.stream.reset();
  slot.media_embd = {};
  slot.media_encoded = false;
  slot.last_used = ++use_clock_;
  auto on_finish = std::move(slot.callbacks.on_finish);
  slot.callbacks = {};
  slot.request = {};
  if (on_finish) on_finish(result);
}

namespace {

// log-softmax of one logits row.
std::vector<float> log_softmax(const float* logits, int32_t n) {
  std::vector<float> out(logits, logits + n);
  const float max = *std::max_element(out.begin(), out.end());
  double sum = 0;
  for (const float x : out) sum += std::exp(static_cast<double>(x - max));
  const auto log_sum = static_cast<float>(std::log(sum)) + max;
  for (float& x : out) x -= log_sum;
  return out;
}

}  // namespace

// The grammar masks the logits first, then the request's chain samples what is left: what
// llama_sampler_sample does for one sampler, done for two.
Token TextBatch::sample_constrained(Slot& slot, int32_t batch_index) {
  const float* logits = llama_get_logits_ith(ctx_, batch_index);
  const int32_t n_vocab = llama_vocab_n_tokens(model_->vocab());
  auto& c = slot.candidates;
  c.resize(static_cast<size_t>(n_vocab));
  for (int32_t i = 0; i < n_vocab; ++i) c[static_cast<size_t>(i)] = {i, logits[i], 0.0f};
  llama_token_data_array array{c.data(), c.size(), -1, false};
  llama_sampler_apply(slot.grammar.get(), &array);
  // The grammar counts what it decodes as characters: a token the client would not get as the
  // same text (a control token rendered empty, bytes that make the text ill-formed, which the
  // client gets as U+FFFD) would break the lengths and patterns it enforces.
  if (special_pieces_.empty()) build_piece_tables();
  const auto& preserved = slot.request.preserved_tokens;
  std::string tail;
  for (auto& d : c) {
    if (std::isinf(d.logit) || model_->is_end_of_generation(d.id)) continue;
    const auto id = static_cast<size_t>(d.id);
    if (renders_empty_[id] &&
        std::find(preserved.begin(), preserved.end(), d.id) == preserved.end()) {
      d.logit = -INFINITY;
    } else if (!extends_utf8(slot.utf8_tail, special_pieces_[id], tail)) {
      d.logit = -INFINITY;
    }
  }
  llama_sampler_apply(slot.sampler.get(), &array);
  if (array.selected < 0 || static_cast<size_t>(array.selected) >= array.size) {
    throw Error(ErrorCode::kInternal, "the output grammar allowed no token");
  }
  if (std::isinf(array.data[array.selected].logit)) {
    throw Error(ErrorCode::kInternal, "the output grammar allowed no token");
  }
  const Token token = array.data[array.selected].id;
  llama_sampler_accept(slot.sampler.get(), token);
  // The answer ends at an end-of-generation token: the grammar never sees it (libllama aborts
  // when one comes before the grammar is complete).
  if (!model_->is_end_of_generation(token)) {
    llama_sampler_accept(slot.grammar.get(), token);
    (void)extends_utf8(std::string(slot.utf8_tail), special_pieces_[static_cast<size_t>(token)],
                       slot.utf8_tail);
  }
  return token;
}

void TextBatch::build_piece_tables() {
  const int32_t n_vocab = llama_vocab_n_tokens(model_->vocab());
  special_pieces_.resize(static_cast<size_t>(n_vocab));
  renders_empty_.resize(static_cast<size_t>(n_vocab));
  for (int32_t t = 0; t < n_vocab; ++t) {
    special_pieces_[static_cast<size_t>(t)] = model_->token_to_piece(t, true);
    renders_empty_[static_cast<size_t>(t)] = model_->token_to_piece(t, false).empty();
  }
}

void TextBatch::sample_and_emit(Slot& slot, int32_t batch_index) {
  std::vector<float> distribution;  // read before sampling, which may work on the logits
  if (slot.request.top_logprobs > 0) {
    distribution =
        log_softmax(llama_get_logits_ith(ctx_, batch_index), llama_vocab_n_tokens(model_->vocab()));
  }
  Token token = 0;
  try {
    token = slot.grammar ? sample_constrained(slot, batch_index)
                         : llama_sampler_sample(slot.sampler.get(), ctx_, batch_index);
  } catch (const Error& e) {
    finish(slot, FinishReason::kError, e);
    return;
  } catch (const std::exception& e) {  // libllama's grammar throws on a refused token
    finish(slot, FinishReason::kError, Error(ErrorCode::kInternal, e.what()));
    return;
  }
  if (slot.generated == 0) slot.first_token = Clock::now();
  if (!slot.request.ignore_eos && model_->is_end_of_generation(token)) {
    finish(slot, FinishReason::kStop);
    return;
  }
  slot.generated += 1;
  if (!distribution.empty()) {
    TokenLogprob lp{.piece = model_->token_to_piece(token),
                    .logprob = distribution[static_cast<size_t>(token)]};
    std::vector<int32_t> ids(distribution.size());
    std::iota(ids.begin(), ids.end(), 0);
    const auto k = std::min<size_t>(static_cast<size_t>(slot.request.top_logprobs), ids.size());
    std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(),
                      [&](int32_t a, int32_t b) {
                        return distribution[static_cast<size_t>(a)] >
                               distribution[static_cast<size_t>(b)];
                      });
    for (size_t i = 0; i < k; ++i) {
      lp.top.emplace_back(model_->token_to_piece(ids[i]),
                          distribution[static_cast<size_t>(ids[i])]);
    }
    slot.logprobs.push_back(std::move(lp));
  }
  const auto& preserved = slot.request.preserved_tokens;
  const bool special = std::find(preserved.begin(), preserved.end(), token) != preserved.end();
  const std::string text = slot.stream->push(model_->token_to_piece(token, special));
  if (!text.empty() && slot.callbacks.on_text) slot.callbacks.on_text(text);
  if (slot.stream->stopped()) {
    finish(slot, FinishReason::kStop);
  } else if (slot.generated >= slot.request.max_tokens) {
    finish(slot, FinishReason::kLength);
  } else {
    slot.next_token = token;
  }
}

const LoraSet* TextBatch::choose_group(bool* mixed) const {
  *mixed = false;
  const Slot* first = nullptr;
  for (const auto& s : slots_) {
    if (!s->active) continue;
    if (first == nullptr) {
      first = s.get();
    } else if (!s->request.lora.same_as(first->request.lora)) {
      *mixed = true;
      break;
    }
  }
  if (first == nullptr) return nullptr;
  if (!*mixed) return &first->request.lora;
  // Several sets. The one on the context keeps its turn for its quantum (switching costs a
  // graph rebuild); then the one served longest ago (never: at once), ties in slot order.
  if (turn_left_ > 0) {
    for (const auto& s : slots_) {
      if (s->active && s->request.lora.same_as(applied_)) return &s->request.lora;
    }
  }
  const LoraSet* best = nullptr;
  uint64_t best_at = 0;
  for (const auto& s : slots_) {
    if (!s->active) continue;
    const LoraSet& set = s->request.lora;
    uint64_t at = 0;
    for (const auto& [key, when] : served_at_) {
      if (set.same_as(key)) {
        at = when;
        break;
      }
    }
    if (best == nullptr || at < best_at) {
      best = &set;
      best_at = at;
    }
  }
  return best;
}

void TextBatch::note_served(const LoraSet& set, bool switched) {
  if (switched) {
    // A turn: enough steps that the switch's extra cost is at most about one plain step per
    // step of the turn, within [1, max_adapter_turn].
    const double extra = std::max(0.0, switch_ms_ - plain_ms_);
    // Before a plain step was timed: the longest turn, whose steps time one.
    const double turn = plain_ms_ > 0 ? std::ceil(extra / plain_ms_) : max_turn_;
    turn_left_ = static_cast<int32_t>(std::clamp(turn, 1.0, static_cast<double>(max_turn_))) - 1;
  } else if (turn_left_ > 0) {
    --turn_left_;
  }
  const uint64_t now = ++group_clock_;
  for (auto& [key, when] : served_at_) {
    if (set.same_as(key)) {
      when = now;
      return;
    }
  }
  // Forget sets no running sequence has any more, then remember this one.
  std::erase_if(served_at_, [&](const auto& entry) {
    return std::ranges::none_of(
        slots_, [&](const auto& s) { return s->active && s->request.lora.same_as(entry.first); });
  });
  served_at_.emplace_back(set.key(), now);
}

void TextBatch::apply_lora(const LoraSet& set, StepStats& stats) {
  if (applied_.same_as(set)) return;
  std::vector<llama_adapter_lora*> adapters;
  std::vector<float> scales;
  for (const auto& use : set.uses()) {
    adapters.push_back(use.adapter->raw());
    scales.push_back(use.scale);
  }
  llama_set_adapters_lora(ctx_, adapters.empty() ? nullptr : adapters.data(), adapters.size(),
                          scales.empty() ? nullptr : scales.data());
  applied_ = set;
  stats.adapter_switches = 1;
  reserve_pending_ = true;
}

int32_t TextBatch::decode(const llama_batch& batch) {
  if (!reserve_pending_) return llama_decode(ctx_, batch);
  MutexLock lock(*adapter_lock_);
  reserve_pending_ = false;
  return llama_decode(ctx_, batch);
}

void TextBatch::set_threads(int32_t threads) {
  threads = std::max(1, threads);
  if (threads == threads_) return;
  llama_set_n_threads(ctx_, threads, threads);
  threads_ = threads;
}

StepStats TextBatch::step() {
  StepStats stats;
  stats.threads = threads_;
  // Every active slot has work (a token to decode, prompt left, or an image).
  bool mixed = false;
  const LoraSet* group = choose_group(&mixed);
  if (group == nullptr) return stats;
  apply_lora(*group, stats);
  if (!group->empty()) stats.lora = group->key();
  // With one set every active slot is in the group; with several, only that set's slots (a
  // copy: `group` lives in a slot's request, which a finish in this step resets).
  LoraSet chosen;
  if (mixed) {
    chosen = *group;
    note_served(chosen, stats.adapter_switches > 0);
  } else {
    turn_left_ = 0;
  }
  auto in_group = [&](const Slot& s) { return !mixed || s.request.lora.same_as(chosen); };
  llama_batch& batch = step_batch_->batch;
  batch.n_tokens = 0;
  struct Row {
    Slot* slot;
    int32_t index;
  };
  std::vector<Row> rows;  // batch rows whose logits are sampled after the decode
  std::vector<Slot*> in_batch;

  auto add = [&](Slot& s, Token token, bool logits) {
    const int32_t i = batch.n_tokens++;
    batch.token[i] = token;
    batch.pos[i] = s.pos++;
    batch.n_seq_id[i] = 1;
    batch.seq_id[i][0] = s.seq;
    batch.logits[i] = logits ? 1 : 0;
    s.cache.push_back(token);
    if (logits) rows.push_back({&s, i});
  };

  // Prefix reuse across sequences, before this step adds anything: every cache is decoded.
  std::vector<const Slot*> waiting;  // prefilling slots whose next tokens another one decodes
  for (auto& s : slots_) {
    if (share_cells_ && s->active && s->request.reuse_prefix && in_group(*s) &&
        s->prompt_done < s->request.prompt.size() && borrow_prefix(*s)) {
      waiting.push_back(s.get());
    }
  }
  // Running sequences first: each gets its one token per step, so prompts never stall them.
  for (auto& s : slots_) {
    if (s->active && s->next_token >= 0 && batch.n_tokens < n_batch_ && in_group(*s)) {
      add(*s, s->next_token, true);
      s->next_token = -1;
      in_batch.push_back(s.get());
    }
  }
  // Then prompt chunks, round-robin, in what is left of the batch.
  const size_t n = slots_.size();
  for (size_t k = 0; k < n && batch.n_tokens < n_batch_; ++k) {
    Slot& s = *slots_[(prefill_cursor_ + k) % n];
    if (!s.active || s.prompt_done >= s.request.prompt.size() || !in_group(s) ||
        std::ranges::find(in_batch, &s) != in_batch.end()) {
      continue;
    }
    if (s.at_media() || std::ranges::find(waiting, &s) != waiting.end()) continue;
    in_batch.push_back(&s);
    // Text up to the next image; the image itself is a unit of media_step.
    while (s.prompt_done < s.request.prompt.size() && batch.n_tokens < n_batch_ && !s.at_media()) {
      const bool last = s.prompt_done + 1 == s.request.prompt.size();
      add(s, s.request.prompt[s.prompt_done], last);
      s.prompt_done += 1;
    }
  }
  prefill_cursor_ = (prefill_cursor_ + 1) % n;

  if (batch.n_tokens == 0) {
    if (vision_ != nullptr) media_step(stats, mixed ? &chosen : nullptr);
    return stats;
  }
  const auto t0 = Clock::now();
  const int32_t rc = decode(batch);
  stats.decode_ms = ms_between(t0, Clock::now());
  // What a switch costs over a plain step, for the turns of note_served (moving averages).
  double& average = stats.adapter_switches > 0 ? switch_ms_ : plain_ms_;
  average = average == 0 ? stats.decode_ms : 0.8 * average + 0.2 * stats.decode_ms;
  stats.tokens = batch.n_tokens;
  stats.sequences = static_cast<int32_t>(in_batch.size());

  if (rc != 0) {
    const Error why(ErrorCode::kInternal, rc == 1
                                              ? "no room left in the KV cache"
                                              : "decode failed (code " + std::to_string(rc) + ")");
    for (Slot* s : in_batch) {
      if (s->active) finish(*s, FinishReason::kError, why);
    }
    return stats;
  }
  for (const Row& row : rows) {
    if (row.slot->active) sample_and_emit(*row.slot, row.index);
  }
  // After the text decode, so that running streams got their token before any image work.
  if (vision_ != nullptr) media_step(stats, mixed ? &chosen : nullptr);
  return stats;
}

void TextBatch::media_step(StepStats& stats, const LoraSet* group) {
  const size_t n = slots_.size();
  for (size_t k = 0; k < n; ++k) {
    Slot& s = *slots_[(media_cursor_ + k) % n];
    if (!s.active || !s.at_media()) continue;
    if (group != nullptr && !s.request.lora.same_as(*group)) continue;  // the set on ctx_
    media_cursor_ = (media_cursor_ + k + 1) % n;  // the next unit goes to the next sequence
    const MediaChunk& chunk = *s.request.media[s.media_next].chunk;
    const auto t0 = Clock::now();
    if (!s.media_encoded) {
      try {
        s.media_embd = vision_->encode(chunk);
      } catch (const Error& e) {
        finish(s, FinishReason::kError, e);
        return;
      }
      s.media_encoded = true;
      stats.images_encoded += 1;
      stats.image_encode_ms += ms_between(t0, Clock::now());
      return;
    }
    llama_pos next = s.pos;
    auto decode_media = [&] {
      return vision_->decode(ctx_, chunk, s.media_embd, s.pos, s.seq,
                             static_cast<int32_t>(llama_n_batch(ctx_)), next);
    };
    int32_t rc = 0;
    if (reserve_pending_) {
      MutexLock lock(*adapter_lock_);
      reserve_pending_ = false;
      rc = decode_media();
    } else {
      rc = decode_media();
    }
    stats.image_tokens += chunk.n_tokens();
    stats.image_decode_ms += ms_between(t0, Clock::now());
    if (rc != 0) {
      finish(s, FinishReason::kError,
             Error(ErrorCode::kInternal, rc == 1 ? "no room left in the KV cache for the image"
                                                 : "decoding the image embeddings failed (code " +
                                                       std::to_string(rc) + ")"));
      return;
    }
    s.pos = next;
    s.prompt_done += static_cast<size_t>(chunk.n_tokens());
    s.cache.insert(s.cache.end(), static_cast<size_t>(chunk.n_tokens()), kMediaToken);
    s.media_next += 1;
    s.media_encoded = false;
    s.media_embd = {};
    return;
  }
}

}  // namespace mmserve::engine
