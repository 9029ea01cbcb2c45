// engine/gguf_quantize and engine/whisper_quantize: option validation, the importance matrix
// reader's checks, and the whisper.cpp writer on a hand-built model: which tensors become
// which type, the file type written, and every truncation of the input failing cleanly.
#include <ggml.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "engine/gguf_quantize.h"
#include "engine/whisper_quantize.h"
#include "test_support.h"

namespace mmserve::engine {
namespace {

namespace fs = std::filesystem;

class QuantizeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("mmserve-quantize-" + std::string(info->name()) + "-" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void put_i32(std::string& out, int32_t v) {
  out.append(reinterpret_cast<const char*>(&v), 4);
}

ErrorCode code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "no Error thrown";
  return ErrorCode::kInternal;
}

TEST_F(QuantizeTest, TypeTablesNameTheCommonTypes) {
  std::vector<std::string> gguf, whisper;
  for (const auto& t : gguf_quantize_types()) gguf.push_back(t.name);
  for (const auto& t : whisper_quantize_types()) whisper.push_back(t.name);
  for (const char* t :
       {"Q4_0", "Q5_K_M", "Q4_K_M", "Q6_K", "Q8_0", "IQ4_XS", "F16", "BF16", "F32"}) {
    EXPECT_NE(std::find(gguf.begin(), gguf.end(), t), gguf.end()) << t;
  }
  EXPECT_EQ(whisper.front(), "Q8_0");
  EXPECT_EQ(std::find(whisper.begin(), whisper.end(), "Q4_K_M"), whisper.end());
}

TEST_F(QuantizeTest, GgufOptionsAreValidatedWithTheirField) {
  GgufQuantizeOptions o;
  o.type = "q4_k_m";
  EXPECT_NO_THROW(validate_gguf_quantize_options(o));
  o.type = "Q4_K_X";
  try {
    validate_gguf_quantize_options(o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput);
    EXPECT_EQ(e.field(), "type");
    EXPECT_NE(std::string(e.what()).find("Q5_K_S"), std::string::npos);
  }
  o.type = "Q8_0";
  for (const char* bad : {"attn_v", "=q8_0", "attn_v=", "attn_v=q3_x", "(attn=q8_0"}) {
    o.tensor_types = {bad};
    EXPECT_EQ(code_of([&] { validate_gguf_quantize_options(o); }), ErrorCode::kInvalidInput) << bad;
  }
  o.tensor_types = {"blk\\.[0-3]\\.attn_v=Q6_K", "ffn_down=f16"};
  EXPECT_NO_THROW(validate_gguf_quantize_options(o));
  o.imatrix_path = path("absent.dat");
  EXPECT_EQ(code_of([&] { validate_gguf_quantize_options(o); }), ErrorCode::kNotFound);
}

TEST_F(QuantizeTest, LegacyImatrixIsBoundsChecked) {
  GgufQuantizeOptions o;
  o.type = "Q4_K_M";
  std::string good;
  put_i32(good, 1);
  put_i32(good, 4);
  good += "blk0";
  put_i32(good, 2);  // ncall
  put_i32(good, 3);  // values
  for (float f : {1.0f, 2.0f, 3.0f}) good.append(reinterpret_cast<const char*>(&f), 4);
  o.imatrix_path = path("im.dat");
  write_file(o.imatrix_path, good);
  EXPECT_NO_THROW(validate_gguf_quantize_options(o));
  for (size_t cut = 0; cut < good.size(); ++cut) {
    write_file(o.imatrix_path, good.substr(0, cut));
    EXPECT_EQ(code_of([&] { validate_gguf_quantize_options(o); }), ErrorCode::kModelLoad) << cut;
  }
  std::string huge_name = good;
  const int32_t len = 1 << 30;
  std::memcpy(huge_name.data() + 4, &len, 4);
  write_file(o.imatrix_path, huge_name);
  EXPECT_EQ(code_of([&] { validate_gguf_quantize_options(o); }), ErrorCode::kModelLoad);
  std::string negative = good;
  const int32_t nval = -3;
  std::memcpy(negative.data() + 16, &nval, 4);
  write_file(o.imatrix_path, negative);
  EXPECT_EQ(code_of([&] { validate_gguf_quantize_options(o); }), ErrorCode::kModelLoad);
}

// A whisper.cpp model small enough to build by hand, in the layout whisper.cpp reads: one
// encoder and one decoder layer, 32 wide, every tensor whisper.cpp's loader wants.
struct TinyWhisper {
  std::string bytes;
  size_t header_end = 0;
};

struct Spec {
  std::string name;
  std::vector<int32_t> ne;
};

std::vector<Spec> whisper_tensors() {
  const int32_t s = 32, vocab = 4, ctx = 2, mels = 2;
  std::vector<Spec> out = {{"encoder.positional_embedding", {s, ctx}},
                           {"encoder.conv1.weight", {3, mels, s}},
                           {"encoder.conv1.bias", {1, s}},
                           {"encoder.conv2.weight", {3, s, s}},
                           {"encoder.conv2.bias", {1, s}},
                           {"encoder.ln_post.weight", {s}},
                           {"encoder.ln_post.bias", {s}},
                           {"decoder.positional_embedding", {s, ctx}},
                           {"decoder.token_embedding.weight", {s, vocab}},
                           {"decoder.ln.weight", {s}},
                           {"decoder.ln.bias", {s}}};
  const auto block = [&](const std::string& p, const std::vector<std::string>& attns) {
    for (const char* n : {"mlp_ln.weight", "mlp_ln.bias", "mlp.0.bias", "mlp.2.bias"}) {
      out.push_back({p + n, {std::string(n) == "mlp.0.bias" ? 4 * s : s}});
    }
    out.push_back({p + "mlp.0.weight", {s, 4 * s}});
    out.push_back({p + "mlp.2.weight", {4 * s, s}});
    for (const auto& a : attns) {
      out.push_back({p + a + "_ln.weight", {s}});
      out.push_back({p + a + "_ln.bias", {s}});
      for (const char* w : {".query.weight", ".key.weight", ".value.weight", ".out.weight"}) {
        out.push_back({p + a + w, {s, s}});
      }
      for (const char* b : {".query.bias", ".value.bias", ".out.bias"})
        out.push_back({p + a + b, {s}});
    }
  };
  block("encoder.blocks.0.", {"attn"});
  block("decoder.blocks.0.", {"attn", "cross_attn"});
  return out;
}

void add_tensor(std::string& out, const Spec& t, int32_t type) {
  put_i32(out, static_cast<int32_t>(t.ne.size()));
  put_i32(out, static_cast<int32_t>(t.name.size()));
  put_i32(out, type);
  int64_t n = 1;
  for (int32_t d : t.ne) {
    put_i32(out, d);
    n *= d;
  }
  out += t.name;
  for (int64_t i = 0; i < n; ++i) {
    const float v = static_cast<float>((i * 37) % 17) / 17.0f - 0.5f;
    if (type == 0) {
      out.append(reinterpret_cast<const char*>(&v), 4);
    } else {
      const uint16_t h = 0x3c00;  // 1.0 in F16: the value does not matter here
      out.append(reinterpret_cast<const char*>(&h), 2);
    }
  }
}

TinyWhisper tiny_whisper(int32_t ftype = 1) {
  TinyWhisper w;
  put_i32(w.bytes, 0x67676d6c);
  for (int32_t v : {4, 2, 32, 1, 1, 2, 32, 1, 1, 2}) put_i32(w.bytes, v);
  put_i32(w.bytes, ftype);
  put_i32(w.bytes, 2);  // mel filters 2 x 3
  put_i32(w.bytes, 3);
  for (int i = 0; i < 6; ++i) w.bytes.append(4, '\0');
  put_i32(w.bytes, 2);  // vocabulary
  put_i32(w.bytes, 1);
  w.bytes += "a";
  put_i32(w.bytes, 2);
  w.bytes += "bc";
  w.header_end = w.bytes.size();
  for (const auto& t : whisper_tensors()) {
    // As published models: F16 matrices and kernels, F32 vectors and positional embeddings.
    const bool f16 = ftype == 1 && t.ne.size() >= 2 && t.ne[0] > 1 &&
                     t.name.find("positional") == std::string::npos;
    add_tensor(w.bytes, t, f16 ? 1 : 0);
  }
  return w;
}

struct ReadTensor {
  std::string name;
  int32_t type;
};

// The tensors of a whisper.cpp file, checking that their data sizes add up to the file's.
std::vector<ReadTensor> tensors_of(const std::string& bytes, size_t at) {
  std::vector<ReadTensor> out;
  while (at < bytes.size()) {
    int32_t head[3], ne[4] = {1, 1, 1, 1};
    std::memcpy(head, bytes.data() + at, 12);
    std::memcpy(ne, bytes.data() + at + 12, 4 * static_cast<size_t>(head[0]));
    at += 12 + 4 * static_cast<size_t>(head[0]);
    out.push_back({bytes.substr(at, static_cast<size_t>(head[1])), head[2]});
    at += static_cast<size_t>(head[1]);
    at += ggml_row_size(static_cast<ggml_type>(head[2]), ne[0]) * static_cast<size_t>(ne[1]) *
          static_cast<size_t>(ne[2]) * static_cast<size_t>(ne[3]);
  }
  EXPECT_EQ(at, bytes.size());
  return out;
}

TEST_F(QuantizeTest, WhisperWeightsBecomeTheTypeAndTheRestStays) {
  const TinyWhisper w = tiny_whisper();
  write_file(path("in.bin"), w.bytes);
  EXPECT_TRUE(is_whisper_ggml_file(path("in.bin")));
  std::vector<QuantizeProgress> seen;
  WhisperQuantizeOptions o;
  o.type = "q8_0";
  o.threads = 3;  // more threads than rows in some tensors
  o.progress = [&](const QuantizeProgress& p) { seen.push_back(p); };
  const QuantizeResult r = quantize_whisper(path("in.bin"), path("out.bin"), o);
  const std::string out = read_file(path("out.bin"));
  ASSERT_GT(out.size(), w.header_end);
  int32_t ftype = 0;
  std::memcpy(&ftype, out.data() + 44, 4);
  EXPECT_EQ(ftype, GGML_QNT_VERSION * 1000 + 7);  // Q8_0, with the quantization version
  EXPECT_EQ(out.compare(48, w.header_end - 48, w.bytes, 48, w.header_end - 48), 0);
  const auto tensors = tensors_of(out, w.header_end);
  ASSERT_EQ(tensors.size(), 50u);
  int quantized = 0;
  for (const auto& t : tensors) {
    const bool matrix = t.name.ends_with("weight") && t.name.find("ln") == std::string::npos &&
                        t.name.find("conv") == std::string::npos;
    if (matrix) {
      ++quantized;
      EXPECT_EQ(t.type, GGML_TYPE_Q8_0) << t.name;
    }
    if (t.name.find("conv") != std::string::npos && t.name.ends_with("weight")) {
      EXPECT_EQ(t.type, GGML_TYPE_F16) << t.name;
    }
    if (t.name.ends_with("bias") || t.name.find("positional") != std::string::npos) {
      EXPECT_EQ(t.type, GGML_TYPE_F32) << t.name;
    }
  }
  EXPECT_EQ(quantized, 1 + 6 + 10);  // token embedding, encoder layer, decoder layer
  EXPECT_EQ(r.tensors, 50);
  EXPECT_EQ(r.quantized_tensors, quantized);
  ASSERT_EQ(seen.size(), 50u);
  EXPECT_EQ(seen[8].index, 9);
  EXPECT_EQ(seen[8].total, 50);
  EXPECT_EQ(seen[8].tensor, "decoder.token_embedding.weight");
  EXPECT_EQ(seen[8].type, "q8_0");
}

TEST_F(QuantizeTest, WhisperF32ModelsGetF16ConvolutionKernels) {
  write_file(path("in.bin"), tiny_whisper(0).bytes);
  WhisperQuantizeOptions o;
  o.type = "Q5_0";
  std::vector<std::string> types;
  o.progress = [&](const QuantizeProgress& p) { types.push_back(p.type); };
  quantize_whisper(path("in.bin"), path("out.bin"), o);
  ASSERT_EQ(types.size(), 50u);
  EXPECT_EQ(types[0], "f32");   // positional embedding
  EXPECT_EQ(types[1], "f16");   // conv1 kernel: F32 in, F16 out
  EXPECT_EQ(types[2], "f32");   // conv1 bias
  EXPECT_EQ(types[8], "q5_0");  // token embedding
}

TEST_F(QuantizeTest, WhisperRejectsWhatItCannotWrite) {
  write_file(path("in.bin"), tiny_whisper().bytes);
  WhisperQuantizeOptions o;
  o.type = "Q4_K";  // 256-wide blocks: rows of 32 do not divide
  EXPECT_EQ(code_of([&] { quantize_whisper(path("in.bin"), path("out.bin"), o); }),
            ErrorCode::kInvalidInput);
  o.type = "Q4_K_M";
  EXPECT_EQ(code_of([&] { validate_whisper_quantize_type(o.type); }), ErrorCode::kInvalidInput);
  o.type = "Q8_0";
  write_file(path("q.bin"), tiny_whisper(7).bytes);
  EXPECT_EQ(code_of([&] { quantize_whisper(path("q.bin"), path("out.bin"), o); }),
            ErrorCode::kModelLoad);
  EXPECT_EQ(code_of([&] { quantize_whisper(path("none.bin"), path("out.bin"), o); }),
            ErrorCode::kNotFound);
}

TEST_F(QuantizeTest, EveryTruncationOfAWhisperModelFailsCleanly) {
  const std::string bytes = tiny_whisper().bytes;
  WhisperQuantizeOptions o;
  o.type = "Q8_0";
  // Every byte through the header and the first tensors, then a spread of cuts (tensor
  // boundaries included: the tensor count gives those away).
  std::vector<size_t> cuts;
  for (size_t cut = 0; cut < bytes.size(); cut += cut < 1024 ? 1 : 61) cuts.push_back(cut);
  for (size_t at = tiny_whisper().header_end, i = 0; i < 49; ++i) {
    int32_t head[3], ne[4] = {1, 1, 1, 1};
    std::memcpy(head, bytes.data() + at, 12);
    std::memcpy(ne, bytes.data() + at + 12, 4 * static_cast<size_t>(head[0]));
    at += 12 + 4 * static_cast<size_t>(head[0]) + static_cast<size_t>(head[1]) +
          static_cast<size_t>(ne[0]) * ne[1] * ne[2] * ne[3] * (head[2] == 0 ? 4 : 2);
    cuts.push_back(at);
  }
  for (size_t cut : cuts) {
    write_file(path("cut.bin"), bytes.substr(0, cut));
    EXPECT_EQ(code_of([&] { quantize_whisper(path("cut.bin"), path("out.bin"), o); }),
              ErrorCode::kModelLoad)
        << "cut at " << cut;
  }
}

TEST_F(QuantizeTest, CorruptWhisperFieldsFailCleanly) {
  const TinyWhisper w = tiny_whisper();
  WhisperQuantizeOptions o;
  o.type = "Q8_0";
  // Each int32 field of the header and the first tensor header, set to hostile values.
  for (size_t at = 4; at + 4 <= w.header_end + 12 + 8; at += 4) {
    for (int32_t v : {-1, 0, 1 << 30, INT32_MIN}) {
      std::string bad = w.bytes;
      std::memcpy(bad.data() + at, &v, 4);
      write_file(path("bad.bin"), bad);
      try {
        quantize_whisper(path("bad.bin"), path("out.bin"), o);
      } catch (const Error& e) {
        EXPECT_TRUE(e.code() == ErrorCode::kModelLoad || e.code() == ErrorCode::kInvalidInput)
            << at << " " << e.what();
      }
    }
  }
}

}  // namespace
}  // namespace mmserve::engine
