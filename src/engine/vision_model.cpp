#include "engine/vision_model.h"

#include <mtmd-helper.h>
#include <mtmd.h>

#include <algorithm>
#include <mutex>
#include <random>

#include "core/error.h"
#include "engine/backend.h"
#include "engine/gguf_inspect.h"

namespace mmserve::engine {
namespace {

struct ChunksDeleter {
  void operator()(mtmd_input_chunks* c) const { mtmd_input_chunks_free(c); }
};
using ChunksPtr = std::unique_ptr<mtmd_input_chunks, ChunksDeleter>;

struct BitmapDeleter {
  void operator()(mtmd_bitmap* b) const { mtmd_bitmap_free(b); }
};
using BitmapPtr = std::unique_ptr<mtmd_bitmap, BitmapDeleter>;

std::string last_line(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (const auto nl = text.rfind('\n'); nl != std::string::npos) text = text.substr(nl + 1);
  return text;
}

// libmtmd logs through its own hook; send it where llama.cpp's log goes (our sink).
void route_mtmd_logs() {
  static std::once_flag once;
  std::call_once(once, [] {
    ggml_log_callback callback = nullptr;
    void* user = nullptr;
    llama_log_get(&callback, &user);
    mtmd_helper_log_set(callback, user);
  });
}

std::string random_marker() {
  std::random_device rd;
  char buf[64];
  std::snprintf(buf, sizeof(buf), "<__mmserve_image_%08x%08x__>", rd(), rd());
  return buf;
}

// Tokens per chunk for a placeholder bitmap of the given size (no pixels are processed).
std::vector<int32_t> placeholder_chunk_tokens(const mtmd_context* ctx, uint32_t nx, uint32_t ny) {
  BitmapPtr bitmap(mtmd_bitmap_init(nx, ny, nullptr));
  const mtmd_input_part part{nullptr, bitmap.get()};
  const mtmd_input_part* parts[] = {&part};
  ChunksPtr chunks(mtmd_input_chunks_init());
  std::vector<int32_t> out;
  if (mtmd_tokenize_from_parts(ctx, chunks.get(), parts, 1, false) != 0) return out;
  for (size_t i = 0; i < mtmd_input_chunks_size(chunks.get()); ++i) {
    const auto* c = mtmd_input_chunks_get(chunks.get(), i);
    if (mtmd_input_chunk_get_type(c) == MTMD_INPUT_CHUNK_TYPE_IMAGE) {
      out.push_back(static_cast<int32_t>(mtmd_input_chunk_get_n_tokens(c)));
    }
  }
  return out;
}

}  // namespace

MediaChunk::MediaChunk(mtmd_input_chunk* chunk) : chunk_(chunk) {}

MediaChunk::~MediaChunk() {
  if (chunk_ != nullptr) mtmd_input_chunk_free(chunk_);
}

int32_t MediaChunk::n_tokens() const {
  return static_cast<int32_t>(mtmd_input_chunk_get_n_tokens(chunk_));
}

int32_t MediaChunk::n_pos() const {
  return static_cast<int32_t>(mtmd_input_chunk_get_n_pos(chunk_));
}

std::shared_ptr<VisionModel> VisionModel::load(const std::string& mmproj_path,
                                               std::shared_ptr<const TextModel> text,
                                               const VisionOptions& options) {
  GgufSummary summary;
  try {
    summary = inspect_gguf(mmproj_path);
  } catch (const Error& e) {
    std::string message = e.what();
    if (message.starts_with("model file not found"))
      message = "projector file not found: " + mmproj_path;
    throw Error(e.code(), message, "mmproj");
  }
  if (summary.architecture != "clip") {
    throw Error(
        ErrorCode::kModelLoad,
        "cannot load projector " + mmproj_path + ": it is a '" + summary.architecture +
            "' model, not a multimodal projector (pass the mmproj-*.gguf file with --mmproj)",
        "mmproj");
  }
  if (!summary.projector.has_vision) {
    throw Error(ErrorCode::kModelLoad,
                "cannot load projector " + mmproj_path + ": it has no vision encoder", "mmproj");
  }
  ensure_backend_initialized();
  route_mtmd_logs();
  clear_recent_engine_errors();

  std::shared_ptr<VisionModel> self(new VisionModel());
  self->path_ = mmproj_path;
  self->text_ = std::move(text);
  self->marker_ = random_marker();
  auto params = mtmd_context_params_default();
  params.use_gpu = options.use_gpu;
  params.print_timings = false;
  params.n_threads = options.threads > 0 ? options.threads : default_thread_count();
  params.warmup = options.warmup;
  self->ctx_ = mtmd_init_from_file(mmproj_path.c_str(), self->text_->raw(), params);
  if (self->ctx_ == nullptr) {
    std::string why = last_line(recent_engine_errors());
    if (why.empty()) why = "libmtmd could not load it";
    throw Error(ErrorCode::kModelLoad,
                "cannot load projector " + mmproj_path + " (" + summary.projector.type +
                    ") for model " + self->text_->id() + ": " + why,
                "mmproj");
  }
  if (!mtmd_support_vision(self->ctx_)) {
    throw Error(ErrorCode::kModelLoad,
                "cannot load projector " + mmproj_path + ": it has no vision encoder", "mmproj");
  }

  ProjectorInfo& info = self->info_;
  info.type = summary.projector.type;
  info.image_size = static_cast<int32_t>(summary.projector.image_size);
  info.patch_size = static_cast<int32_t>(summary.projector.patch_size);
  info.non_causal = mtmd_decode_use_non_causal(self->ctx_, nullptr);
  info.mrope = mtmd_decode_use_mrope(self->ctx_);
  const auto side = static_cast<uint32_t>(std::max(1, info.image_size));
  const auto nominal = placeholder_chunk_tokens(self->ctx_, side, side);
  for (const int32_t n : nominal) info.tokens_per_image += n;
  // Dynamic-resolution projectors make more (or more chunks) for big pictures.
  auto sizes = placeholder_chunk_tokens(self->ctx_, 4096, 4096);
  sizes.insert(sizes.end(), nominal.begin(), nominal.end());
  self->max_image_tokens_ = sizes.empty() ? 0 : *std::ranges::max_element(sizes);
  return self;
}

VisionModel::~VisionModel() {
  if (ctx_ != nullptr) mtmd_free(ctx_);
}

VisionPrompt VisionModel::tokenize(const std::string& text, std::span<const media::Image> images,
                                   bool add_special, const std::string& field) const {
  std::vector<std::string> pieces;
  for (size_t at = 0;;) {
    const size_t next = text.find(marker_, at);
    pieces.push_back(text.substr(at, next == std::string::npos ? std::string::npos : next - at));
    if (next == std::string::npos) break;
    at = next + marker_.size();
  }
  if (pieces.size() != images.size() + 1) {
    throw Error(ErrorCode::kInternal, "image slots and images do not match in the prompt", field);
  }

  std::vector<BitmapPtr> bitmaps;
  std::vector<mtmd_input_text> texts(pieces.size());
  std::vector<mtmd_input_part> parts;
  parts.reserve(pieces.size() + images.size());
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (!pieces[i].empty()) {
      texts[i] = {pieces[i].c_str(), pieces[i].size(), false, true};
      parts.push_back({&texts[i], nullptr});
    }
    if (i < images.size()) {
      const auto& image = images[i];
      bitmaps.emplace_back(mtmd_bitmap_init(static_cast<uint32_t>(image.width),
                                            static_cast<uint32_t>(image.height), image.rgb.data()));
      parts.push_back({nullptr, bitmaps.back().get()});
    }
  }
  std::vector<const mtmd_input_part*> part_ptrs;
  for (const auto& p : parts) part_ptrs.push_back(&p);

  ChunksPtr chunks(mtmd_input_chunks_init());
  const int32_t rc =
      mtmd_tokenize_from_parts(ctx_, chunks.get(), part_ptrs.data(), part_ptrs.size(), add_special);
  if (rc != 0) {
    throw Error(ErrorCode::kInvalidInput,
                "the image could not be preprocessed for projector " + info_.type, field);
  }

  VisionPrompt out;
  for (size_t i = 0; i < mtmd_input_chunks_size(chunks.get()); ++i) {
    const mtmd_input_chunk* c = mtmd_input_chunks_get(chunks.get(), i);
    switch (mtmd_input_chunk_get_type(c)) {
      case MTMD_INPUT_CHUNK_TYPE_TEXT: {
        size_t n = 0;
        const llama_token* tokens = mtmd_input_chunk_get_tokens_text(c, &n);
        out.tokens.insert(out.tokens.end(), tokens, tokens + n);
        break;
      }
      case MTMD_INPUT_CHUNK_TYPE_IMAGE: {
        auto chunk = std::make_shared<const MediaChunk>(mtmd_input_chunk_copy(c));
        out.media.push_back({out.tokens.size(), chunk});
        out.tokens.insert(out.tokens.end(), static_cast<size_t>(chunk->n_tokens()), kMediaToken);
        break;
      }
      default:
        throw Error(ErrorCode::kInvalidInput, "only images are supported in this prompt", field);
    }
  }
  return out;
}

std::string VisionModel::caption_prompt(size_t n_images, const std::string& prompt, bool raw,
                                        const std::string& system) const {
  std::string content;
  for (size_t i = 0; i < n_images; ++i) content += marker_;
  content += prompt;
  if (raw || !text_->has_chat_template()) return content;
  std::vector<ChatMessage> messages;
  if (!system.empty()) messages.push_back({"system", system});
  messages.push_back({"user", content});
  return text_->apply_chat_template(messages);
}

std::vector<float> VisionModel::encode(const MediaChunk& chunk) {
  clear_recent_engine_errors();
  if (mtmd_encode_chunk(ctx_, chunk.raw()) != 0) {
    std::string why = last_line(recent_engine_errors());
    throw Error(ErrorCode::kInternal,
                "the image encoder failed" + (why.empty() ? std::string() : ": " + why));
  }
  const float* embd = mtmd_get_output_embd(ctx_);
  const size_t n = static_cast<size_t>(chunk.n_tokens()) *
                   static_cast<size_t>(llama_model_n_embd_inp(text_->raw()));
  return {embd, embd + n};
}

int32_t VisionModel::decode(llama_context* ctx, const MediaChunk& chunk,
                            std::vector<float>& embeddings, llama_pos pos, llama_seq_id seq,
                            int32_t n_batch, llama_pos& next_pos) {
  llama_pos new_pos = pos;
  const int32_t rc = mtmd_helper_decode_image_chunk(ctx_, ctx, chunk.raw(), embeddings.data(), pos,
                                                    seq, n_batch, &new_pos, nullptr, nullptr);
  next_pos = new_pos;
  return rc;
}

}  // namespace mmserve::engine
