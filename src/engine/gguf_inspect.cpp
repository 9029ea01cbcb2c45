#include "engine/gguf_inspect.h"

#include <ggml.h>
#include <gguf.h>
#include <llama.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

#include "core/error.h"

namespace mmserve::engine {
namespace {

namespace fs = std::filesystem;

struct GgufDeleter {
  void operator()(gguf_context* ctx) const { gguf_free(ctx); }
};

[[noreturn]] void fail(const std::string& path, const std::string& why) {
  throw Error(ErrorCode::kModelLoad, "cannot load model " + path + ": " + why, "model");
}

int64_t integer_value(const gguf_context* ctx, const std::string& key) {
  const int64_t id = gguf_find_key(ctx, key.c_str());
  if (id < 0) return -1;
  switch (gguf_get_kv_type(ctx, id)) {
    case GGUF_TYPE_UINT8: return gguf_get_val_u8(ctx, id);
    case GGUF_TYPE_INT8: return gguf_get_val_i8(ctx, id);
    case GGUF_TYPE_UINT16: return gguf_get_val_u16(ctx, id);
    case GGUF_TYPE_INT16: return gguf_get_val_i16(ctx, id);
    case GGUF_TYPE_UINT32: return gguf_get_val_u32(ctx, id);
    case GGUF_TYPE_INT32: return gguf_get_val_i32(ctx, id);
    case GGUF_TYPE_UINT64: return static_cast<int64_t>(gguf_get_val_u64(ctx, id));
    case GGUF_TYPE_INT64: return gguf_get_val_i64(ctx, id);
    // Per-layer arrays (e.g. head_count_kv in some models): report the first layer's value.
    case GGUF_TYPE_ARRAY:
      if (gguf_get_arr_n(ctx, id) > 0 && gguf_get_arr_type(ctx, id) == GGUF_TYPE_INT32) {
        return static_cast<const int32_t*>(gguf_get_arr_data(ctx, id))[0];
      }
      if (gguf_get_arr_n(ctx, id) > 0 && gguf_get_arr_type(ctx, id) == GGUF_TYPE_UINT32) {
        return static_cast<const uint32_t*>(gguf_get_arr_data(ctx, id))[0];
      }
      return -1;
    default: return -1;
  }
}

std::string string_value(const gguf_context* ctx, const char* key) {
  const int64_t id = gguf_find_key(ctx, key);
  if (id < 0 || gguf_get_kv_type(ctx, id) != GGUF_TYPE_STRING) return {};
  return gguf_get_val_str(ctx, id);
}

bool bool_value(const gguf_context* ctx, const char* key) {
  const int64_t id = gguf_find_key(ctx, key);
  return id >= 0 && gguf_get_kv_type(ctx, id) == GGUF_TYPE_BOOL && gguf_get_val_bool(ctx, id);
}

ProjectorSummary projector_summary(const gguf_context* ctx) {
  ProjectorSummary p;
  p.type = string_value(ctx, "clip.projector_type");
  if (p.type.empty()) p.type = string_value(ctx, "clip.vision.projector_type");
  p.has_vision = bool_value(ctx, "clip.has_vision_encoder");
  p.has_audio = bool_value(ctx, "clip.has_audio_encoder");
  p.image_size = integer_value(ctx, "clip.vision.image_size");
  p.patch_size = integer_value(ctx, "clip.vision.patch_size");
  p.scale_factor = integer_value(ctx, "clip.vision.projector.scale_factor");
  p.n_embd = integer_value(ctx, "clip.vision.embedding_length");
  p.n_layer = integer_value(ctx, "clip.vision.block_count");
  p.n_head = integer_value(ctx, "clip.vision.attention.head_count");
  p.projection_dim = integer_value(ctx, "clip.vision.projection_dim");
  // Gemma 3 resizes every image to image_size and average-pools the patch grid by the scale
  // factor (4 unless the file says otherwise, as libmtmd does); other types vary per image.
  if (p.type == "gemma3" && p.image_size > 0 && p.patch_size > 0) {
    const int64_t merge = p.scale_factor > 0 ? p.scale_factor : 4;
    const int64_t side = p.image_size / p.patch_size / merge;
    p.tokens_per_image = side * side;
  }
  return p;
}

}  // namespace

GgufSummary inspect_gguf(const std::string& path) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (!fs::exists(status)) {
    throw Error(ErrorCode::kNotFound, "model file not found: " + path, "model");
  }
  if (fs::is_directory(status)) fail(path, "is a directory, not a GGUF file");

  GgufSummary s;
  s.path = path;
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(path, "file is not readable (check permissions)");
    std::array<char, 4> magic{};
    in.read(magic.data(), magic.size());
    if (in.gcount() < 4) fail(path, "file is too short to be GGUF");
    if (std::string(magic.data(), 4) != "GGUF") fail(path, "not a GGUF file (bad magic)");
    s.file_bytes = fs::file_size(path, ec);
  }

  gguf_init_params params{.no_alloc = true, .ctx = nullptr};
  std::unique_ptr<gguf_context, GgufDeleter> ctx(gguf_init_from_file(path.c_str(), params));
  if (!ctx) fail(path, "corrupt or truncated GGUF header");

  s.gguf_version = gguf_get_version(ctx.get());
  s.architecture = string_value(ctx.get(), "general.architecture");
  s.name = string_value(ctx.get(), "general.name");
  if (const int64_t ft = integer_value(ctx.get(), "general.file_type"); ft >= 0) {
    s.file_type = llama_ftype_name(static_cast<llama_ftype>(ft));
    if (s.file_type.starts_with("all ")) s.file_type = s.file_type.substr(4);
  }

  std::map<std::string, TensorTypeStats> by_type;
  uint64_t data_end = 0;
  s.n_tensors = gguf_get_n_tensors(ctx.get());
  for (int64_t i = 0; i < s.n_tensors; ++i) {
    const auto type = gguf_get_tensor_type(ctx.get(), i);
    const int64_t* ne = gguf_get_tensor_ne(ctx.get(), i);
    uint64_t elements = 1;
    for (int d = 0; d < GGML_MAX_DIMS; ++d) elements *= static_cast<uint64_t>(ne[d]);
    const uint64_t bytes = gguf_get_tensor_size(ctx.get(), i);
    s.n_params += elements;
    s.tensor_bytes += bytes;
    auto& stats = by_type[ggml_type_name(type)];
    stats.type = ggml_type_name(type);
    stats.tensors += 1;
    stats.bytes += bytes;
    data_end = std::max<uint64_t>(data_end, gguf_get_tensor_offset(ctx.get(), i) + bytes);
  }
  for (auto& [name, stats] : by_type) s.tensor_types.push_back(stats);
  std::ranges::sort(s.tensor_types, [](const auto& a, const auto& b) { return a.bytes > b.bytes; });

  const uint64_t needed = gguf_get_data_offset(ctx.get()) + data_end;
  if (s.n_tensors > 0 && needed > s.file_bytes) {
    fail(path, "file is truncated: its tensors need " + std::to_string(needed) +
                   " bytes, the file has " + std::to_string(s.file_bytes));
  }

  const std::string a = s.architecture + ".";
  s.n_layer = integer_value(ctx.get(), a + "block_count");
  s.n_embd = integer_value(ctx.get(), a + "embedding_length");
  s.n_head = integer_value(ctx.get(), a + "attention.head_count");
  s.n_head_kv = integer_value(ctx.get(), a + "attention.head_count_kv");
  if (s.n_head_kv < 0) s.n_head_kv = s.n_head;  // GGUF omits it when equal to head_count
  s.n_ctx_train = integer_value(ctx.get(), a + "context_length");
  s.n_expert = integer_value(ctx.get(), a + "expert_count");
  s.n_expert_used = integer_value(ctx.get(), a + "expert_used_count");
  if (const int64_t id = gguf_find_key(ctx.get(), "tokenizer.ggml.tokens"); id >= 0) {
    s.n_vocab = static_cast<int64_t>(gguf_get_arr_n(ctx.get(), id));
  }
  s.has_chat_template = gguf_find_key(ctx.get(), "tokenizer.chat_template") >= 0;
  if (s.architecture == "clip") s.projector = projector_summary(ctx.get());
  return s;
}

}  // namespace mmserve::engine
