// The synthetic VLM writer: deterministic files of the requested shape that llama.cpp and
// libmtmd read as Gemma 3 or as Magistral (llama + Pixtral), and clear refusals of shapes they
// would reject.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "engine/gguf_inspect.h"
#include "engine/text_model.h"
#include "engine/vision_model.h"
#include "image_test_support.h"
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

// The magistral family: a "llama" language model with the given template and Mistral's special
// tokens, and a Pixtral projector libmtmd loads and runs at each picture's own aspect.
namespace {

// A minimal Mistral-style template (the integration test uses Magistral's real one).
constexpr const char* kMistralTemplate =
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST]{{ m['content'] }}"
    "[/INST]{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}";

synth::VlmSynthOptions magistral(const synth::VlmSynthOptions& base) {
  auto o = base;
  o.family = synth::VlmFamily::kMagistral;
  o.chat_template = kMistralTemplate;
  o.shape.v_head = 2;  // 16-wide heads: Pixtral's 2D RoPE turns quarters of a head
  return o;
}

bool same_row(const std::vector<float>& e, int64_t n_embd, int64_t a, int64_t b) {
  return std::equal(e.begin() + a * n_embd, e.begin() + (a + 1) * n_embd, e.begin() + b * n_embd);
}

}  // namespace

TEST_F(VisionSynth, MagistralPairHasLlamaAndPixtralShapes) {
  const auto o = magistral(options("mag"));
  synth::write_synthetic_vlm(o);
  const auto model = engine::inspect_gguf(o.model_path);
  EXPECT_EQ(model.architecture, "llama");
  EXPECT_EQ(model.n_embd, 64);
  EXPECT_TRUE(model.has_chat_template);
  const auto proj = engine::inspect_gguf(o.mmproj_path);
  EXPECT_EQ(proj.projector.type, "pixtral");
  EXPECT_EQ(proj.projector.projection_dim, 64);
  EXPECT_EQ(synth::vlm_tokens_per_image(o.shape, o.family), 19);  // 4 rows of 4 + 3 breaks

  auto again = magistral(options("mag2"));
  synth::write_synthetic_vlm(again);
  EXPECT_EQ(read(o.model_path), read(again.model_path));
  EXPECT_EQ(read(o.mmproj_path), read(again.mmproj_path));
}

TEST_F(VisionSynth, MagistralPairEncodesImagesAtTheirAspectWithRowBreaks) {
  const auto o = magistral(options("enc"));
  synth::write_synthetic_vlm(o);
  auto text = engine::TextModel::load(o.model_path);
  for (const char* t : {"[INST]", "[IMG_BREAK]", "[IMG_END]"}) {
    EXPECT_EQ(text->tokenize(t, false, true).size(), 1u) << t << " is one control token";
  }
  engine::VisionOptions vo;
  vo.threads = 1;
  vo.use_gpu = false;
  auto vision = engine::VisionModel::load(o.mmproj_path, text, vo);
  EXPECT_EQ(vision->info().type, "pixtral");
  EXPECT_EQ(vision->info().tokens_per_image, synth::vlm_tokens_per_image(o.shape, o.family));

  // 224 x 112: 8 x 4 merged tokens (2 x 2 patches of 14 px each), an [IMG_BREAK] after each row
  // but the last; the template's [INST] and libmtmd's [IMG_END] around it.
  const std::vector<media::Image> images = {mmserve::testing::quadrants(224, 112)};
  const std::string prompt =
      vision->caption_prompt(1, engine::kDefaultCaptionPrompt, /*raw=*/false);
  EXPECT_NE(prompt.find("[INST]" + vision->marker()), std::string::npos) << prompt;
  const auto tokenized = vision->tokenize(prompt, images, true, "input");
  ASSERT_EQ(tokenized.media.size(), 1u);
  const auto& chunk = *tokenized.media[0].chunk;
  ASSERT_EQ(chunk.n_tokens(), 8 * 4 + 3);
  const auto end_token = text->tokenize("[IMG_END]", false, true);
  ASSERT_EQ(end_token.size(), 1u);
  const size_t after = tokenized.media[0].begin + static_cast<size_t>(chunk.n_tokens());
  ASSERT_LT(after, tokenized.tokens.size());
  EXPECT_EQ(tokenized.tokens[after], end_token[0]);

  const auto embd = vision->encode(chunk);
  const int64_t n = o.shape.n_embd;
  ASSERT_EQ(embd.size(), static_cast<size_t>(chunk.n_tokens() * n));
  EXPECT_TRUE(std::all_of(embd.begin(), embd.end(), [](float v) { return std::isfinite(v); }));
  // Rows of 8 image tokens, then the (same) [IMG_BREAK] embedding: at 8, 17 and 26.
  EXPECT_TRUE(same_row(embd, n, 8, 17));
  EXPECT_TRUE(same_row(embd, n, 8, 26));
  EXPECT_FALSE(same_row(embd, n, 0, 8));
  EXPECT_FALSE(same_row(embd, n, 0, 7));  // red and green quadrants
  // The same image encodes to the same embeddings.
  EXPECT_EQ(vision->encode(chunk), embd);
}

TEST_F(VisionSynth, MagistralNeedsATemplateAndRopeFriendlyHeads) {
  auto o = magistral(options("bad"));
  o.chat_template.clear();
  EXPECT_EQ(field_of(o), "chat-template-file");
  o = magistral(options("bad"));
  o.shape.v_head = 4;
  o.shape.v_embd = 24;  // 6-wide heads: not a multiple of 4
  EXPECT_EQ(field_of(o), "vision-heads");
  EXPECT_THROW(synth::vlm_family("pixtral"), Error);
}
