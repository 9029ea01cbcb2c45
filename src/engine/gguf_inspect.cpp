#include "engine/gguf_inspect.h"

#include <ggml.h>
#include <llama.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>

#include "core/error.h"

namespace mmserve::engine {
namespace {

namespace fs = std::filesystem;

// GGUF value types, as the format defines them (gguf.h's enum gguf_type).
enum : uint32_t {
  kU8 = 0,
  kI8,
  kU16,
  kI16,
  kU32,
  kI32,
  kF32,
  kBool,
  kString,
  kArray,
  kU64,
  kI64,
  kF64,
  kTypeEnd
};

[[noreturn]] void fail(const std::string& path, const std::string& why) {
  throw Error(ErrorCode::kModelLoad, "cannot load model " + path + ": " + why, "model");
}

// What one parse reached when the bytes ran out: read at least `total` bytes and try again.
struct NeedMore {
  uint64_t total;
};
struct Corrupt {};

struct Value {
  uint32_t type = kTypeEnd;
  std::optional<int64_t> integer;  // integers and bools; an int array's first element
  std::string text;                // strings
  uint64_t array_n = 0;
};

struct Tensor {
  std::string name;
  uint32_t type = 0;
  int64_t ne[4] = {1, 1, 1, 1};
  uint64_t offset = 0;
  uint64_t elements = 0;
  uint64_t bytes = 0;
};

struct Header {
  uint32_t version = 0;
  std::map<std::string, Value, std::less<>> kv;
  std::vector<Tensor> tensors;
  uint64_t data_offset = 0;  // where tensor data starts: the header's end, aligned
};

// Reads little-endian fields from a prefix; running out throws NeedMore with the length that
// would have been enough for this field.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}
  uint64_t pos() const { return pos_; }
  void need(uint64_t n) {
    if (n > bytes_.size() || pos_ > bytes_.size() - n) throw NeedMore{pos_ + n};
  }
  template <typename T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string string() {
    const auto n = get<uint64_t>();
    if (n > (uint64_t{1} << 30)) throw Corrupt{};  // no header string is a gigabyte
    need(n);
    std::string s(bytes_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  void skip(uint64_t n) {
    need(n);
    pos_ += n;
  }

 private:
  std::string_view bytes_;
  uint64_t pos_ = 0;
};

uint64_t scalar_size(uint32_t type) {
  switch (type) {
    case kU8:
    case kI8:
    case kBool: return 1;
    case kU16:
    case kI16: return 2;
    case kU32:
    case kI32:
    case kF32: return 4;
    case kU64:
    case kI64:
    case kF64: return 8;
    default: return 0;
  }
}

std::optional<int64_t> read_integer(Reader& r, uint32_t type) {
  switch (type) {
    case kU8: return r.get<uint8_t>();
    case kI8: return r.get<int8_t>();
    case kU16: return r.get<uint16_t>();
    case kI16: return r.get<int16_t>();
    case kU32: return r.get<uint32_t>();
    case kI32: return r.get<int32_t>();
    case kU64: return static_cast<int64_t>(r.get<uint64_t>());
    case kI64: return r.get<int64_t>();
    case kBool: return r.get<uint8_t>() != 0 ? 1 : 0;
    default: r.skip(scalar_size(type)); return std::nullopt;  // floats: not needed
  }
}

Value read_value(Reader& r, uint32_t type) {
  Value v;
  v.type = type;
  if (type == kString) {
    v.text = r.string();
  } else if (type == kArray) {
    const auto elem = r.get<uint32_t>();
    v.array_n = r.get<uint64_t>();
    if (elem == kString) {
      for (uint64_t i = 0; i < v.array_n; ++i) r.string();
    } else if (elem == kArray || scalar_size(elem) == 0) {
      throw Corrupt{};
    } else {
      if (v.array_n > (uint64_t{1} << 40)) throw Corrupt{};
      // Per-layer arrays (e.g. head_count_kv in some models): keep the first layer's value.
      if (v.array_n > 0 && (elem == kI32 || elem == kU32)) {
        v.integer = read_integer(r, elem);
        r.skip((v.array_n - 1) * scalar_size(elem));
      } else {
        r.skip(v.array_n * scalar_size(elem));
      }
    }
  } else if (scalar_size(type) > 0) {
    v.integer = read_integer(r, type);
  } else {
    throw Corrupt{};
  }
  return v;
}

// The one GGUF header parser (the layout ggml's gguf.cpp writes, versions 2 and 3).
Header parse_header(std::string_view bytes) {
  Reader r(bytes);
  r.skip(4);  // magic, checked by the caller
  Header h;
  h.version = r.get<uint32_t>();
  if (h.version < 2 || h.version > 3) throw Corrupt{};
  const auto n_tensors = r.get<uint64_t>();
  const auto n_kv = r.get<uint64_t>();
  if (n_tensors > (uint64_t{1} << 24) || n_kv > (uint64_t{1} << 24)) throw Corrupt{};
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = r.string();
    const auto type = r.get<uint32_t>();
    h.kv[std::move(key)] = read_value(r, type);
  }
  uint64_t alignment = 32;
  if (const auto it = h.kv.find("general.alignment"); it != h.kv.end()) {
    if (!it->second.integer || *it->second.integer <= 0 ||
        (*it->second.integer & (*it->second.integer - 1)) != 0) {
      throw Corrupt{};
    }
    alignment = static_cast<uint64_t>(*it->second.integer);
  }
  // No reserve(n_tensors): the count is untrusted (a 24-byte file could ask for gigabytes).
  uint64_t next_offset = 0;  // ggml's loader wants the tensors back to back, each aligned
  for (uint64_t i = 0; i < n_tensors; ++i) {
    Tensor t;
    t.name = r.string();
    const auto n_dims = r.get<uint32_t>();
    if (n_dims == 0 || n_dims > 4) throw Corrupt{};
    for (uint32_t d = 0; d < n_dims; ++d) {
      t.ne[d] = r.get<int64_t>();
      if (t.ne[d] < 0 || t.ne[d] > (int64_t{1} << 40)) throw Corrupt{};
    }
    t.type = r.get<uint32_t>();
    t.offset = r.get<uint64_t>();
    if (t.type >= GGML_TYPE_COUNT) throw Corrupt{};
    const auto type = static_cast<ggml_type>(t.type);
    const int64_t block = ggml_blck_size(type);
    if (block <= 0 || ggml_type_size(type) == 0 || t.ne[0] % block != 0 ||
        t.offset % alignment != 0) {
      throw Corrupt{};
    }
    // Products of untrusted dimensions: an overflow is a corrupt header, never a wrap.
    uint64_t rows = 1;
    t.elements = static_cast<uint64_t>(t.ne[0]);
    for (int d = 1; d < 4; ++d) {
      if (__builtin_mul_overflow(rows, static_cast<uint64_t>(t.ne[d]), &rows) ||
          __builtin_mul_overflow(t.elements, static_cast<uint64_t>(t.ne[d]), &t.elements)) {
        throw Corrupt{};
      }
    }
    uint64_t end = 0;
    if (__builtin_mul_overflow(ggml_row_size(type, t.ne[0]), rows, &t.bytes) ||
        __builtin_add_overflow(t.offset, t.bytes, &end) || end > (uint64_t{1} << 56) ||
        t.offset != next_offset) {
      throw Corrupt{};
    }
    next_offset = (end + alignment - 1) / alignment * alignment;  // end < 2^56: no overflow
    h.tensors.push_back(std::move(t));
  }
  h.data_offset = (r.pos() + alignment - 1) / alignment * alignment;
  return h;
}

void check_magic(std::string_view bytes, const std::string& name) {
  if (bytes.size() < 4) fail(name, "file is too short to be GGUF");
  if (bytes.substr(0, 4) != "GGUF") fail(name, "not a GGUF file (bad magic)");
}

int64_t integer_value(const Header& h, std::string_view key) {
  const auto it = h.kv.find(key);
  return it != h.kv.end() && it->second.integer ? *it->second.integer : -1;
}

std::string string_value(const Header& h, std::string_view key) {
  const auto it = h.kv.find(key);
  return it != h.kv.end() && it->second.type == kString ? it->second.text : std::string();
}

bool bool_value(const Header& h, std::string_view key) {
  const auto it = h.kv.find(key);
  return it != h.kv.end() && it->second.type == kBool && it->second.integer.value_or(0) != 0;
}

ProjectorSummary projector_summary(const Header& h) {
  ProjectorSummary p;
  p.type = string_value(h, "clip.projector_type");
  if (p.type.empty()) p.type = string_value(h, "clip.vision.projector_type");
  p.has_vision = bool_value(h, "clip.has_vision_encoder");
  p.has_audio = bool_value(h, "clip.has_audio_encoder");
  p.image_size = integer_value(h, "clip.vision.image_size");
  p.patch_size = integer_value(h, "clip.vision.patch_size");
  p.scale_factor = integer_value(h, "clip.vision.projector.scale_factor");
  p.n_embd = integer_value(h, "clip.vision.embedding_length");
  p.n_layer = integer_value(h, "clip.vision.block_count");
  p.n_head = integer_value(h, "clip.vision.attention.head_count");
  p.projection_dim = integer_value(h, "clip.vision.projection_dim");
  p.n_ff = integer_value(h, "clip.vision.feed_forward_length");
  // Gemma 3 resizes every image to image_size and average-pools the patch grid by the scale
  // factor (4 unless the file says otherwise, as libmtmd does); other types vary per image.
  if (p.type == "gemma3" && p.image_size > 0 && p.patch_size > 0) {
    const int64_t merge = p.scale_factor > 0 ? p.scale_factor : 4;
    const int64_t side = p.image_size / p.patch_size / merge;
    p.tokens_per_image = side * side;
  }
  return p;
}

// "blk.12.attn_q.weight" -> 12; -1 for a tensor outside the repeating layers.
int64_t layer_of(const std::string& name) {
  if (!name.starts_with("blk.")) return -1;
  int64_t n = 0;
  size_t i = 4;
  for (; i < name.size() && name[i] >= '0' && name[i] <= '9'; ++i) {
    if (n < 100000) n = n * 10 + (name[i] - '0');  // capped: untrusted digits never overflow
  }
  return i > 4 && i < name.size() && name[i] == '.' && n < 100000 ? n : -1;
}

GgufSummary summarize(const Header& h, uint64_t file_bytes, const std::string& path) {
  GgufSummary s;
  s.path = path;
  s.file_bytes = file_bytes;
  s.gguf_version = h.version;
  s.architecture = string_value(h, "general.architecture");
  s.name = string_value(h, "general.name");
  if (const int64_t ft = integer_value(h, "general.file_type"); ft >= 0) {
    s.file_type = llama_ftype_name(static_cast<llama_ftype>(ft));
    if (s.file_type.starts_with("all ")) s.file_type = s.file_type.substr(4);
  }

  std::map<std::string, TensorTypeStats> by_type;
  uint64_t data_end = 0;
  s.n_tensors = static_cast<int64_t>(h.tensors.size());
  for (const auto& t : h.tensors) {
    s.n_params += t.elements;
    s.tensor_bytes += t.bytes;
    const std::string type = ggml_type_name(static_cast<ggml_type>(t.type));
    auto& stats = by_type[type];
    stats.type = type;
    stats.tensors += 1;
    stats.bytes += t.bytes;
    data_end = std::max(data_end, t.offset + t.bytes);
    if (t.name.find("_exps.") != std::string::npos) {  // routed experts: "blk.N.ffn_up_exps.*"
      s.n_expert_params += t.elements;
      s.expert_bytes += t.bytes;
    }
    if (const int64_t layer = layer_of(t.name); layer >= 0) {
      if (static_cast<size_t>(layer) >= s.layer_bytes.size()) s.layer_bytes.resize(layer + 1);
      s.layer_bytes[layer] += t.bytes;
    } else if (t.name.starts_with("token_embd.")) {
      s.token_embd_bytes += t.bytes;
    } else if (t.name.starts_with("output.")) {
      s.output_bytes += t.bytes;
    } else {
      s.other_bytes += t.bytes;
    }
  }
  for (auto& [name, stats] : by_type) s.tensor_types.push_back(stats);
  std::ranges::sort(s.tensor_types, [](const auto& a, const auto& b) { return a.bytes > b.bytes; });

  const uint64_t needed = h.data_offset + data_end;
  if (s.n_tensors > 0 && needed > file_bytes) {
    fail(path, "file is truncated: its tensors need " + std::to_string(needed) +
                   " bytes, the file has " + std::to_string(file_bytes));
  }

  const std::string a = s.architecture + ".";
  s.n_layer = integer_value(h, a + "block_count");
  s.n_embd = integer_value(h, a + "embedding_length");
  s.n_head = integer_value(h, a + "attention.head_count");
  s.n_head_kv = integer_value(h, a + "attention.head_count_kv");
  if (s.n_head_kv < 0) s.n_head_kv = s.n_head;  // GGUF omits it when equal to head_count
  s.n_ctx_train = integer_value(h, a + "context_length");
  s.n_expert = integer_value(h, a + "expert_count");
  s.n_expert_used = integer_value(h, a + "expert_used_count");
  s.n_ff = integer_value(h, a + "feed_forward_length");
  s.n_ff_expert = integer_value(h, a + "expert_feed_forward_length");
  s.head_dim_k = integer_value(h, a + "attention.key_length");
  s.head_dim_v = integer_value(h, a + "attention.value_length");
  s.sliding_window = integer_value(h, a + "attention.sliding_window");
  s.pooling_type = integer_value(h, a + "pooling_type");
  if (const auto it = h.kv.find("tokenizer.ggml.tokens"); it != h.kv.end()) {
    s.n_vocab = static_cast<int64_t>(it->second.array_n);
  }
  s.has_chat_template = h.kv.contains("tokenizer.chat_template");
  if (s.architecture == "clip") s.projector = projector_summary(h);
  return s;
}

// Parses `bytes`; nullopt with `need` set when they end inside the header.
std::optional<Header> try_parse(std::string_view bytes, const std::string& name, uint64_t& need) {
  check_magic(bytes, name);
  try {
    return parse_header(bytes);
  } catch (const NeedMore& more) {
    need = more.total;
    return std::nullopt;
  } catch (const Corrupt&) {
    fail(name, "corrupt or truncated GGUF header");
  }
}

}  // namespace

int64_t GgufSummary::head_k() const {
  return head_dim_k > 0 ? head_dim_k : n_head > 0 && n_embd > 0 ? n_embd / n_head : 0;
}

int64_t GgufSummary::head_v() const {
  return head_dim_v > 0 ? head_dim_v : head_k();
}

GgufSummary inspect_gguf(const std::string& path) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (!fs::exists(status)) {
    throw Error(ErrorCode::kNotFound, "model file not found: " + path, "model");
  }
  if (fs::is_directory(status)) fail(path, "is a directory, not a GGUF file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "file is not readable (check permissions)");
  const uint64_t file_bytes = fs::file_size(path, ec);

  // Read the header in growing pieces: most are well under 4 MiB, big vocabularies more.
  std::string bytes;
  uint64_t want = std::min<uint64_t>(file_bytes, uint64_t{4} << 20);
  for (;;) {
    const size_t have = bytes.size();
    bytes.resize(want);
    in.read(bytes.data() + have, static_cast<std::streamsize>(want - have));
    bytes.resize(have + static_cast<size_t>(in.gcount()));
    uint64_t need = 0;
    if (auto header = try_parse(bytes, path, need)) return summarize(*header, file_bytes, path);
    if (need > file_bytes || bytes.size() < want) fail(path, "corrupt or truncated GGUF header");
    want = std::min(file_bytes, std::max(need, want * 2));
  }
}

uint64_t gguf_header_bytes_needed(std::string_view prefix, const std::string& name) {
  if (prefix.size() < 4) return 4;
  uint64_t need = 0;
  return try_parse(prefix, name, need) ? 0 : need;
}

GgufSummary inspect_gguf_header(std::string_view prefix, uint64_t file_bytes,
                                const std::string& name) {
  uint64_t need = 0;
  const auto header = try_parse(prefix, name, need);
  if (!header) {
    if (need > file_bytes) fail(name, "corrupt or truncated GGUF header");
    fail(name, "the GGUF header needs at least " + std::to_string(need) + " bytes, only " +
                   std::to_string(prefix.size()) + " were read");
  }
  return summarize(*header, file_bytes, name);
}

}  // namespace mmserve::engine
