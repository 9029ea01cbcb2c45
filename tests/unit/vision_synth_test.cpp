// The synthetic VLM writer: deterministic files of the requested shape that llama.cpp and
// libmtmd read as Gemma 3, and clear refusals of shapes they would reject.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "engine/gguf_inspect.h"
#include "synth/vlm_synth.h"

using namespace mmserve;
namespace fs = std::filesystem;

namespace {

class VisionSynth : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("mmserve-vlm-synth-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  synth::VlmSynthOptions options(const std::string& name, uint64_t seed = 42) const {
    synth::VlmSynthOptions o;
    o.seed = seed;
    o.shape.n_embd = 64;
    o.shape.n_layer = 2;
    o.shape.head_dim = 16;
    o.shape.n_ff = 128;
    o.shape.image_size = 112;
    o.shape.v_embd = 32;
    o.shape.v_layer = 1;
    o.shape.v_ff = 64;
    o.model_path = (dir_ / (name + ".gguf")).string();
    o.mmproj_path = (dir_ / ("mmproj-" + name + ".gguf")).string();
    return o;
  }

  static std::string read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  fs::path dir_;
};

std::string field_of(const synth::VlmSynthOptions& o) {
  try {
    synth::write_synthetic_vlm(o);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput);
    return e.field();
  }
  return "";
}

}  // namespace

TEST_F(VisionSynth, SameOptionsWriteTheSameBytes) {
  const auto a = options("a"), b = options("b"), c = options("c", 7);
  synth::write_synthetic_vlm(a);
  synth::write_synthetic_vlm(b);
  synth::write_synthetic_vlm(c);
  EXPECT_EQ(read(a.model_path), read(b.model_path));
  EXPECT_EQ(read(a.mmproj_path), read(b.mmproj_path));
  EXPECT_NE(read(a.model_path), read(c.model_path));
  EXPECT_NE(read(a.mmproj_path), read(c.mmproj_path));
}

TEST_F(VisionSynth, FilesHaveGemma3ShapesAsAsked) {
  auto o = options("m");
  o.shape.sliding_window = 32;
  synth::write_synthetic_vlm(o);
  const auto model = engine::inspect_gguf(o.model_path);
  EXPECT_EQ(model.architecture, "gemma3");
  EXPECT_EQ(model.n_embd, 64);
  EXPECT_EQ(model.n_layer, 2);
  EXPECT_TRUE(model.has_chat_template);
  EXPECT_GT(model.n_vocab, 256 + 8);  // specials, bytes, pieces
  const auto proj = engine::inspect_gguf(o.mmproj_path);
  EXPECT_EQ(proj.architecture, "clip");
  EXPECT_EQ(proj.projector.type, "gemma3");
  EXPECT_TRUE(proj.projector.has_vision);
  EXPECT_EQ(proj.projector.image_size, 112);
  EXPECT_EQ(proj.projector.projection_dim, 64);
  EXPECT_EQ(proj.projector.tokens_per_image, synth::vlm_tokens_per_image(o.shape));
  EXPECT_EQ(synth::vlm_tokens_per_image(o.shape), 16);  // (112 / 14 / 2)^2
}

TEST_F(VisionSynth, ImpossibleShapesAreRefusedNamingTheOption) {
  auto o = options("bad");
  o.shape.image_size = 100;  // not a multiple of 14
  EXPECT_EQ(field_of(o), "image-size");
  o = options("bad");
  o.shape.pool = 3;  // 8 patches per side
  EXPECT_EQ(field_of(o), "pool");
  o = options("bad");
  o.shape.n_head = 4;
  o.shape.n_head_kv = 3;
  EXPECT_EQ(field_of(o), "kv-heads");
  o = options("bad");
  o.shape.v_embd = 30;
  o.shape.v_head = 4;
  EXPECT_EQ(field_of(o), "vision-embd");
  EXPECT_FALSE(fs::exists(o.model_path));
}
