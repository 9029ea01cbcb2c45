// Fuzzes the whisper.cpp ggml .bin reader of `mmserve quantize` (engine/whisper_quantize.h):
// engine::quantize_whisper(input, output, Q8_0, one thread) on a scratch file in /dev/shm.
// There is no lower-level entry point (the reader is internal), so an accepted input is
// quantized for real; the seeds are tiny models (1+1 layers, rows of 32) so that stays fast.
//
// Invariants: a refusal is Error(kModelLoad) naming "model", or Error(kInvalidInput) naming
// "type" (rows that Q8_0's blocks do not divide), with a message; never kNotFound or kInternal.
// An accepted input gives an output that a reference reader (below) parses to the end: the
// input's header with file type Q8_0 (plus the quantization version), then the same tensors in
// order with the same names and shapes, 2-D weights Q8_0 (but the positional embeddings and
// convolution biases), 3-D F32 kernels F16, the rest unchanged, each with exactly its type's
// bytes; the result's counts and sizes match; and engine::check_speech_model_file accepts the
// output exactly when it accepts the input, with the same shape (the check reads the header
// only: loading into whisper.cpp would be too slow per input). Plus ASan and UBSan.
#include <ggml.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "engine/speech_model.h"
#include "engine/whisper_quantize.h"
#include "fuzz_support.h"

using namespace mmserve;

namespace {

struct Tensor {
  std::string name;
  std::vector<int32_t> ne;
  int32_t type = 0;
  uint64_t elements = 1;
  uint64_t bytes = 0;
};

struct Model {
  std::string header;  // magic .. end of the vocabulary
  std::vector<Tensor> tensors;
};

// A plain reader of the layout (the input was accepted, the output must be well formed):
// nullopt when the bytes do not parse to their end.
std::optional<Model> parse(const std::string& b) {
  size_t p = 0;
  auto i32 = [&](int32_t& v) {
    if (b.size() - p < 4) return false;
    std::memcpy(&v, b.data() + p, 4);
    p += 4;
    return true;
  };
  auto skip = [&](uint64_t n) {
    if (b.size() - p < n) return false;
    p += n;
    return true;
  };
  int32_t v = 0, n_mel = 0, n_fft = 0, n_vocab = 0;
  if (!skip(4 + 11 * 4) || !i32(n_mel) || !i32(n_fft) || n_mel < 0 || n_fft < 0 ||
      !skip(uint64_t(n_mel) * uint64_t(n_fft) * 4) || !i32(n_vocab) || n_vocab < 0) {
    return std::nullopt;
  }
  for (int32_t i = 0; i < n_vocab; ++i) {
    if (!i32(v) || v < 0 || !skip(uint64_t(v))) return std::nullopt;
  }
  Model m;
  m.header = b.substr(0, p);
  while (p < b.size()) {
    Tensor t;
    int32_t n_dims = 0, name_len = 0;
    if (!i32(n_dims) || !i32(name_len) || !i32(t.type) || n_dims < 1 || n_dims > 4 ||
        name_len < 1 || t.type < 0 || t.type >= GGML_TYPE_COUNT) {
      return std::nullopt;
    }
    t.ne.resize(size_t(n_dims));
    for (auto& d : t.ne) {
      if (!i32(d) || d < 1) return std::nullopt;
      t.elements *= uint64_t(d);
    }
    if (b.size() - p < uint64_t(name_len)) return std::nullopt;
    t.name = b.substr(p, size_t(name_len));
    p += size_t(name_len);
    const auto type = static_cast<ggml_type>(t.type);
    if (t.ne[0] % ggml_blck_size(type) != 0) return std::nullopt;
    t.bytes = ggml_row_size(type, t.ne[0]) * (t.elements / uint64_t(t.ne[0]));
    if (!skip(t.bytes)) return std::nullopt;
    m.tensors.push_back(std::move(t));
  }
  return m;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

bool never_quantized(const std::string& name) {
  return name == "encoder.conv1.bias" || name == "encoder.conv2.bias" ||
         name == "encoder.positional_embedding" || name == "decoder.positional_embedding";
}

std::optional<engine::SpeechModelShape> speech_shape(const std::string& path) {
  try {
    return engine::check_speech_model_file(path, "model");
  } catch (const Error& e) {
    fuzz::expect_code(e, {ErrorCode::kModelLoad});
    return std::nullopt;
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ggml_log_set([](ggml_log_level, const char*, void*) {}, nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::ScratchFile in_file("whisper-in");
  static fuzz::ScratchFile out_file("whisper-out");
  const std::string& input = in_file.write(data, size);
  const std::string& output = out_file.write(nullptr, 0);
  engine::QuantizeResult result;
  try {
    result = engine::quantize_whisper(input, output, {.type = "q8_0", .threads = 1});
  } catch (const Error& e) {
    fuzz::expect_code(e, {ErrorCode::kModelLoad, ErrorCode::kInvalidInput});
    fuzz::expect_field(e, e.code() == ErrorCode::kModelLoad ? "model" : "type");
    FUZZ_CHECK(*e.what() != '\0');
    return 0;
  }
  const std::string in_bytes(reinterpret_cast<const char*>(data), size);
  const std::string out_bytes = read_file(output);
  const auto in = parse(in_bytes);
  const auto out = parse(out_bytes);
  FUZZ_CHECK(in && out);

  // The header: the input's, with the new file type.
  FUZZ_CHECK(in->header.size() == out->header.size() && in->header.size() >= 48);
  int32_t ftype = 0;
  std::memcpy(&ftype, out->header.data() + 44, 4);
  FUZZ_CHECK(ftype == GGML_QNT_VERSION * GGML_QNT_VERSION_FACTOR + GGML_FTYPE_MOSTLY_Q8_0);
  FUZZ_CHECK(in->header.compare(0, 44, out->header, 0, 44) == 0);
  FUZZ_CHECK(in->header.compare(48, std::string::npos, out->header, 48, std::string::npos) == 0);

  // The tensors: same order, names and shapes; types as the quantizer's rule says.
  FUZZ_CHECK(in->tensors.size() == out->tensors.size());
  FUZZ_CHECK(result.tensors == static_cast<int>(out->tensors.size()));
  uint64_t parameters = 0, weights = 0, input_weights = 0;
  int quantized = 0;
  for (size_t i = 0; i < in->tensors.size(); ++i) {
    const Tensor &a = in->tensors[i], &b = out->tensors[i];
    FUZZ_CHECK(a.name == b.name && a.ne == b.ne);
    FUZZ_CHECK(a.type == GGML_TYPE_F32 || a.type == GGML_TYPE_F16);
    int32_t want = a.type;
    if (a.ne.size() == 2 && !never_quantized(a.name)) want = GGML_TYPE_Q8_0;
    if (a.ne.size() == 3 && a.type == GGML_TYPE_F32) want = GGML_TYPE_F16;
    FUZZ_CHECK(b.type == want);
    quantized += want != a.type ? 1 : 0;
    parameters += a.elements;
    weights += b.bytes;
    input_weights += a.bytes;
  }
  FUZZ_CHECK(result.parameters == parameters && result.weights_bytes == weights);
  FUZZ_CHECK(result.input_weights_bytes == input_weights);
  FUZZ_CHECK(result.quantized_tensors == quantized);

  // The serve-time header check sees the same model.
  const auto in_shape = speech_shape(input);
  const auto out_shape = speech_shape(output);
  FUZZ_CHECK(in_shape.has_value() == out_shape.has_value());
  if (in_shape) {
    FUZZ_CHECK(out_shape->file_bytes == static_cast<int64_t>(out_bytes.size()));
    FUZZ_CHECK(in_shape->n_audio_ctx == out_shape->n_audio_ctx &&
               in_shape->n_audio_state == out_shape->n_audio_state &&
               in_shape->n_audio_layer == out_shape->n_audio_layer &&
               in_shape->n_text_ctx == out_shape->n_text_ctx &&
               in_shape->n_text_state == out_shape->n_text_state &&
               in_shape->n_text_layer == out_shape->n_text_layer);
  }
  return 0;
}
