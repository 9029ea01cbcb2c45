// whisper.cpp ggml model quantization: a checked reader of the .bin layout, then a writer that
// copies the header (with the new file type) and quantizes the weight matrices row-parallel.
#include "engine/whisper_quantize.h"

#include <ggml.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/error.h"
#include "engine/backend.h"
#include "engine/text_model.h"

namespace mmserve::engine {
namespace {

constexpr uint32_t kMagic = 0x67676d6c;  // "ggml", as whisper.cpp writes it
constexpr int kHparams = 11;             // n_vocab ... n_mels, ftype (int32 each)
constexpr size_t kFtypeOffset = 4 + 10 * 4;
constexpr int32_t kVersionFactor = GGML_QNT_VERSION_FACTOR;

struct WhisperType {
  GgufTypeInfo info;
  ggml_type type;
  ggml_ftype ftype;
};

// What whisper.cpp's loader accepts as the weights' type (ggml_ftype_to_ggml_type) and ggml
// quantizes without an importance matrix.
const std::vector<WhisperType>& type_table() {
  static const std::vector<WhisperType> table = {
      {{"Q8_0", "8.5 bits per weight"}, GGML_TYPE_Q8_0, GGML_FTYPE_MOSTLY_Q8_0},
      {{"Q5_0", "5.5 bits per weight"}, GGML_TYPE_Q5_0, GGML_FTYPE_MOSTLY_Q5_0},
      {{"Q5_1", "6.0 bits per weight"}, GGML_TYPE_Q5_1, GGML_FTYPE_MOSTLY_Q5_1},
      {{"Q4_0", "4.5 bits per weight"}, GGML_TYPE_Q4_0, GGML_FTYPE_MOSTLY_Q4_0},
      {{"Q4_1", "5.0 bits per weight"}, GGML_TYPE_Q4_1, GGML_FTYPE_MOSTLY_Q4_1},
      {{"Q6_K", "6.56 bits per weight (rows a multiple of 256 wide: base and up)"},
       GGML_TYPE_Q6_K,
       GGML_FTYPE_MOSTLY_Q6_K},
      {{"Q5_K", "5.5 bits per weight (rows a multiple of 256 wide)"},
       GGML_TYPE_Q5_K,
       GGML_FTYPE_MOSTLY_Q5_K},
      {{"Q4_K", "4.5 bits per weight (rows a multiple of 256 wide)"},
       GGML_TYPE_Q4_K,
       GGML_FTYPE_MOSTLY_Q4_K},
      {{"Q3_K", "3.44 bits per weight (rows a multiple of 256 wide)"},
       GGML_TYPE_Q3_K,
       GGML_FTYPE_MOSTLY_Q3_K},
      {{"Q2_K", "2.63 bits per weight (rows a multiple of 256 wide)"},
       GGML_TYPE_Q2_K,
       GGML_FTYPE_MOSTLY_Q2_K},
  };
  return table;
}

const WhisperType& find_type(const std::string& name) {
  std::string u = name;
  for (auto& c : u) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::string list;
  for (const auto& t : type_table()) {
    if (u == t.info.name) return t;
    list += (list.empty() ? "" : ", ") + std::string(t.info.name);
  }
  throw Error(ErrorCode::kInvalidInput,
              "unknown whisper.cpp quantization type '" + name + "'; valid types: " + list, "type");
}

// whisper.cpp's quantizer leaves these 2-D tensors as they are: its loader creates them F32.
bool never_quantized(const std::string& name) {
  return name == "encoder.conv1.bias" || name == "encoder.conv2.bias" ||
         name == "encoder.positional_embedding" || name == "decoder.positional_embedding";
}

struct Tensor {
  std::string name;
  int32_t n_dims = 0;
  int32_t ne[4] = {1, 1, 1, 1};
  int32_t ttype = 0;
  uint64_t elements = 0;
  uint64_t offset = 0;  // of its data in the input
};

struct Layout {
  std::string header;  // magic .. end of vocabulary, copied with the new file type
  int32_t ftype = 0;   // the input's, without the quantization version
  std::vector<Tensor> tensors;
};

// Reads a little-endian file with every read checked against its size.
class Reader {
 public:
  Reader(const std::string& path) : path_(path), in_(path, std::ios::binary) {
    std::error_code ec;
    size_ = std::filesystem::file_size(path, ec);
    if (ec || !in_) throw Error(ErrorCode::kModelLoad, "cannot read " + path, "model");
  }
  uint64_t pos() const { return pos_; }
  uint64_t left() const { return size_ - pos_; }
  void bytes(void* out, uint64_t n, const std::string& what) {
    if (n > left()) fail("truncated: the file ends inside " + what);
    if (n > 0 && !in_.read(static_cast<char*>(out), static_cast<std::streamsize>(n))) {
      fail("cannot read " + what);
    }
    pos_ += n;
  }
  int32_t i32(const std::string& what) {
    int32_t v = 0;
    bytes(&v, 4, what);
    return v;
  }
  void skip(uint64_t n, const std::string& what) {
    if (n > left()) fail("truncated: the file ends inside " + what);
    pos_ += n;
    in_.seekg(static_cast<std::streamoff>(pos_));
  }
  void seek(uint64_t at) {
    pos_ = at;
    in_.clear();
    in_.seekg(static_cast<std::streamoff>(at));
  }
  [[noreturn]] void fail(const std::string& why) const {
    throw Error(ErrorCode::kModelLoad, "whisper.cpp model " + path_ + ": " + why, "model");
  }

 private:
  std::string path_;
  std::ifstream in_;
  uint64_t size_ = 0;
  uint64_t pos_ = 0;
};

// The whole file's structure, checked before anything is written.
Layout read_layout(Reader& r) {
  Layout layout;
  uint32_t magic = 0;
  r.bytes(&magic, 4, "the magic number");
  if (magic != kMagic) r.fail("not a whisper.cpp ggml model (bad magic)");
  int32_t hp[kHparams];
  for (int i = 0; i < kHparams; ++i) hp[i] = r.i32("the hyperparameters");
  for (int i = 0; i < kHparams - 1; ++i) {
    if (hp[i] <= 0 || hp[i] > (1 << 20)) r.fail("corrupt hyperparameters");
  }
  layout.ftype = hp[kHparams - 1] % kVersionFactor;
  if (hp[kHparams - 1] < 0) r.fail("corrupt file type");
  if (layout.ftype != GGML_FTYPE_ALL_F32 && layout.ftype != GGML_FTYPE_MOSTLY_F16) {
    r.fail("already quantized (file type " + std::to_string(layout.ftype) +
           "); quantize from the F16 or F32 model");
  }
  const int32_t n_mel = r.i32("the mel filter size");
  const int32_t n_fft = r.i32("the mel filter size");
  if (n_mel < 0 || n_fft < 0 || n_mel > 4096 || n_fft > (1 << 20)) r.fail("corrupt mel filters");
  r.skip(static_cast<uint64_t>(n_mel) * static_cast<uint64_t>(n_fft) * 4, "the mel filters");
  const int32_t n_vocab = r.i32("the vocabulary size");
  if (n_vocab < 0 || n_vocab > (1 << 22)) r.fail("corrupt vocabulary size");
  for (int32_t i = 0; i < n_vocab; ++i) {
    const int32_t len = r.i32("the vocabulary");
    if (len < 0 || len > (1 << 16)) r.fail("corrupt vocabulary (token " + std::to_string(i) + ")");
    r.skip(static_cast<uint64_t>(len), "the vocabulary");
  }
  const uint64_t header_end = r.pos();
  while (r.left() > 0) {
    Tensor t;
    const std::string at = "tensor " + std::to_string(layout.tensors.size() + 1);
    t.n_dims = r.i32(at + "'s header");
    const int32_t name_len = r.i32(at + "'s header");
    t.ttype = r.i32(at + "'s header");
    if (t.n_dims < 1 || t.n_dims > 4)
      r.fail(at + " has " + std::to_string(t.n_dims) + " dimensions");
    if (name_len < 1 || name_len > 1024) r.fail(at + " has a corrupt name length");
    t.elements = 1;
    for (int d = 0; d < t.n_dims; ++d) {
      t.ne[d] = r.i32(at + "'s shape");
      if (t.ne[d] < 1) r.fail(at + " has a corrupt shape");
      t.elements *= static_cast<uint64_t>(t.ne[d]);
      if (t.elements > (uint64_t{1} << 40)) r.fail(at + " has a corrupt shape");
    }
    t.name.resize(static_cast<size_t>(name_len));
    r.bytes(t.name.data(), t.name.size(), at + "'s name");
    if (t.ttype != GGML_TYPE_F32 && t.ttype != GGML_TYPE_F16) {
      if (t.ttype >= 0 && t.ttype < GGML_TYPE_COUNT) {
        r.fail("tensor '" + t.name + "' is " + ggml_type_name(static_cast<ggml_type>(t.ttype)) +
               "; quantize from the F16 or F32 model");
      }
      r.fail("tensor '" + t.name + "' has an unknown type " + std::to_string(t.ttype));
    }
    t.offset = r.pos();
    r.skip(t.elements * ggml_type_size(static_cast<ggml_type>(t.ttype)),
           "tensor '" + t.name + "'s data");
    layout.tensors.push_back(std::move(t));
  }
  if (layout.tensors.empty()) {
    r.fail("holds no weights (a vocabulary-only file?); nothing to quantize");
  }
  // No tensor count in the format: a file cut between two tensors reads as a shorter model.
  // whisper.cpp's loader wants exactly these: 7 encoder-wide tensors, 15 per encoder layer, 4
  // decoder-wide, 24 per decoder layer (self and cross attention).
  const uint64_t expected =
      11 + 15 * static_cast<uint64_t>(hp[4]) + 24 * static_cast<uint64_t>(hp[8]);
  if (layout.tensors.size() < expected) {
    r.fail("truncated: it holds " + std::to_string(layout.tensors.size()) + " of the " +
           std::to_string(expected) + " tensors a model of this shape has");
  }
  if (layout.tensors.size() > expected) {
    r.fail("corrupt: it holds " + std::to_string(layout.tensors.size()) +
           " tensors, a model of this shape has " + std::to_string(expected));
  }
  layout.header.resize(header_end);
  r.seek(0);
  r.bytes(layout.header.data(), header_end, "the header");
  return layout;
}

// Quantizes `rows` rows of `per_row` floats into `dst`, split over up to `threads` threads.
size_t quantize_rows(ggml_type type, const float* src, void* dst, int64_t rows, int64_t per_row,
                     int threads) {
  const int n = static_cast<int>(std::clamp<int64_t>(rows, 1, std::max(1, threads)));
  std::vector<size_t> sizes(static_cast<size_t>(n), 0);
  std::vector<std::thread> workers;
  const int64_t per = (rows + n - 1) / n;
  for (int w = 0; w < n; ++w) {
    const int64_t first = w * per;
    const int64_t count = std::min<int64_t>(per, rows - first);
    if (count <= 0) break;
    workers.emplace_back([=, &sizes] {
      sizes[static_cast<size_t>(w)] =
          ggml_quantize_chunk(type, src, dst, first * per_row, count, per_row, nullptr);
    });
  }
  for (auto& t : workers) t.join();
  size_t total = 0;
  for (size_t s : sizes) total += s;
  return total;
}

void write(std::ofstream& out, const void* data, size_t n, const std::string& path) {
  if (!out.write(static_cast<const char*>(data), static_cast<std::streamsize>(n))) {
    throw Error(ErrorCode::kInternal, "cannot write " + path, "output");
  }
}

}  // namespace

bool is_whisper_ggml_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  uint32_t magic = 0;
  return in.read(reinterpret_cast<char*>(&magic), 4) && magic == kMagic;
}

const std::vector<GgufTypeInfo>& whisper_quantize_types() {
  static const std::vector<GgufTypeInfo> types = [] {
    std::vector<GgufTypeInfo> out;
    for (const auto& t : type_table()) out.push_back(t.info);
    return out;
  }();
  return types;
}

void validate_whisper_quantize_type(const std::string& type) {
  find_type(type);
}

QuantizeResult quantize_whisper(const std::string& input, const std::string& output,
                                const WhisperQuantizeOptions& options) {
  const WhisperType& target = find_type(options.type);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(input, ec)) {
    throw Error(ErrorCode::kNotFound, "model file not found: " + input, "model");
  }
  Reader r(input);
  Layout layout = read_layout(r);
  const int64_t block = ggml_blck_size(target.type);
  for (const auto& t : layout.tensors) {
    if (t.n_dims == 2 && !never_quantized(t.name) && t.ne[0] % block != 0) {
      throw Error(ErrorCode::kInvalidInput,
                  std::string(target.info.name) + " needs rows a multiple of " +
                      std::to_string(block) + " wide; tensor '" + t.name + "' has rows of " +
                      std::to_string(t.ne[0]) + " (use Q8_0, Q5_0, Q5_1, Q4_0 or Q4_1)",
                  "type");
    }
  }
  ensure_backend_initialized();  // ggml's fp16 tables
  ggml_quantize_init(target.type);
  const int threads = options.threads > 0 ? options.threads : default_thread_count();

  std::ofstream out(output, std::ios::binary | std::ios::trunc);
  if (!out) throw Error(ErrorCode::kInternal, "cannot create " + output, "output");
  const int32_t ftype = GGML_QNT_VERSION * kVersionFactor + target.ftype;
  std::memcpy(layout.header.data() + kFtypeOffset, &ftype, 4);
  write(out, layout.header.data(), layout.header.size(), output);

  QuantizeResult result;
  result.type = target.info.name;
  std::vector<float> f32;
  std::vector<uint8_t> raw, packed;
  const int total = static_cast<int>(layout.tensors.size());
  for (int i = 0; i < total; ++i) {
    const Tensor& t = layout.tensors[static_cast<size_t>(i)];
    const auto src_type = static_cast<ggml_type>(t.ttype);
    raw.resize(t.elements * ggml_type_size(src_type));
    r.seek(t.offset);
    r.bytes(raw.data(), raw.size(), "tensor '" + t.name + "'s data");
    // Weight matrices become the target type; an F32 model's convolution kernels become F16,
    // the type whisper.cpp's loader expects next to quantized weights; the rest stays.
    ggml_type dst_type = src_type;
    if (t.n_dims == 2 && !never_quantized(t.name)) dst_type = target.type;
    if (t.n_dims == 3 && src_type == GGML_TYPE_F32) dst_type = GGML_TYPE_F16;
    const uint8_t* data = raw.data();
    size_t bytes = raw.size();
    if (dst_type != src_type) {
      f32.resize(t.elements);
      if (src_type == GGML_TYPE_F16) {
        ggml_fp16_to_fp32_row(reinterpret_cast<const ggml_fp16_t*>(raw.data()), f32.data(),
                              static_cast<int64_t>(t.elements));
      } else {
        std::memcpy(f32.data(), raw.data(), raw.size());
      }
      const int64_t per_row = t.ne[0];
      const int64_t rows = static_cast<int64_t>(t.elements) / per_row;
      packed.resize(static_cast<size_t>(rows) * ggml_row_size(dst_type, per_row));
      if (dst_type == GGML_TYPE_F16) {
        ggml_fp32_to_fp16_row(f32.data(), reinterpret_cast<ggml_fp16_t*>(packed.data()),
                              static_cast<int64_t>(t.elements));
      } else {
        quantize_rows(dst_type, f32.data(), packed.data(), rows, per_row, threads);
      }
      data = packed.data();
      bytes = packed.size();
      ++result.quantized_tensors;
    }
    const int32_t head[3] = {t.n_dims, static_cast<int32_t>(t.name.size()),
                             static_cast<int32_t>(dst_type)};
    write(out, head, sizeof(head), output);
    write(out, t.ne, static_cast<size_t>(t.n_dims) * 4, output);
    write(out, t.name.data(), t.name.size(), output);
    write(out, data, bytes, output);
    result.parameters += t.elements;
    result.weights_bytes += bytes;
    result.input_weights_bytes += raw.size();
    ++result.tensors;
    if (options.progress) options.progress({i + 1, total, t.name, ggml_type_name(dst_type)});
  }
  out.close();
  if (!out) throw Error(ErrorCode::kInternal, "cannot write " + output, "output");
  return result;
}

}  // namespace mmserve::engine
