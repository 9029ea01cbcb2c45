// Images through the engine with a synthetic Gemma 3 VLM: tokenization, encode and embedding
// decode as scheduled units of TextBatch, determinism, text streams running on beside images,
// prefix reuse, validation and cancellation.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <optional>

#include "core/error.h"
#include "engine/text_batch.h"
#include "engine/vision_model.h"
#include "image_test_support.h"
#include "synth/vlm_synth.h"
#include "test_support.h"

using namespace mmserve;
using namespace mmserve::engine;
namespace fs = std::filesystem;

namespace {

constexpr int kImageTokens = 64;  // (224 / 14 / 2)^2

struct Vlm {
  std::shared_ptr<TextModel> model;
  std::shared_ptr<VisionModel> vision;
};

Vlm make_vlm(const fs::path& dir, int sliding_window) {
  synth::VlmSynthOptions o;
  o.shape.n_embd = 128;
  o.shape.n_layer = 2;
  o.shape.head_dim = 32;
  o.shape.n_ff = 256;
  o.shape.sliding_window = sliding_window;
  o.shape.image_size = 224;
  o.shape.v_embd = 64;
  o.shape.v_layer = 2;
  o.shape.v_ff = 128;
  o.model_path = (dir / "vlm.gguf").string();
  o.mmproj_path = (dir / "mmproj-vlm.gguf").string();
  synth::write_synthetic_vlm(o);
  Vlm vlm;
  vlm.model = TextModel::load(o.model_path);
  vlm.vision = VisionModel::load(o.mmproj_path, vlm.model);
  return vlm;
}

class VisionBatch : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("mmserve-vision-batch-" + std::to_string(getpid()));
    fs::create_directories(dir_);
    vlm_ = make_vlm(dir_, 0);
  }
  static void TearDownTestSuite() {
    vlm_ = {};
    fs::remove_all(dir_);
  }

  static GenerationRequest caption(const std::vector<media::Image>& images, int max_tokens,
                                   const std::string& prompt = "Describe this image.",
                                   const Vlm& vlm = vlm_) {
    GenerationRequest r;
    auto p = vlm.vision->tokenize(vlm.vision->caption_prompt(images.size(), prompt, false), images,
                                  true, "input");
    r.prompt = std::move(p.tokens);
    r.media = std::move(p.media);
    r.max_tokens = max_tokens;
    r.sampling.temperature = 0;
    return r;
  }

  static GenerationRequest text(const std::string& prompt, int max_tokens) {
    GenerationRequest r;
    r.prompt = vlm_.model->tokenize(prompt, true, false);
    r.max_tokens = max_tokens;
    r.sampling.temperature = 0;
    return r;
  }

  static SequenceResult run_one(TextBatch& batch, GenerationRequest r) {
    batch.validate(r);
    SequenceResult result;
    std::string streamed;
    batch.start(std::move(r), {.on_text = [&](std::string_view t) { streamed += t; },
                               .on_finish = [&](const SequenceResult& s) { result = s; }});
    while (batch.has_work()) batch.step();
    EXPECT_EQ(streamed, result.text);
    return result;
  }

  static BatchOptions options(int parallel = 1) {
    return {.n_ctx = 1024 * parallel, .n_parallel = parallel, .n_batch = 64};
  }

  static inline fs::path dir_;
  static inline Vlm vlm_;
};

media::Image flat(int width, int height, uint8_t r, uint8_t g, uint8_t b) {
  media::Image img{width, height, {}};
  for (int i = 0; i < width * height; ++i) img.rgb.insert(img.rgb.end(), {r, g, b});
  return img;
}

}  // namespace

TEST_F(VisionBatch, ProjectorFactsComeFromLibmtmd) {
  const auto& info = vlm_.vision->info();
  EXPECT_EQ(info.type, "gemma3");
  EXPECT_EQ(info.image_size, 224);
  EXPECT_EQ(info.tokens_per_image, kImageTokens);
  EXPECT_TRUE(info.non_causal);  // Gemma 3 attends both ways within an image
  EXPECT_FALSE(info.mrope);
  EXPECT_EQ(vlm_.vision->max_image_tokens(), kImageTokens);
}

TEST_F(VisionBatch, ImagesBecomePlaceholderRunsAtTheirMarkers) {
  const auto r =
      caption({mmserve::testing::quadrants(50, 40), mmserve::testing::quadrants(30, 60)}, 8);
  ASSERT_EQ(r.media.size(), 2u);
  EXPECT_EQ(r.prompt.front(), llama_vocab_bos(vlm_.model->vocab()));
  size_t placeholders = 0;
  for (const Token t : r.prompt) placeholders += t == kMediaToken ? 1 : 0;
  EXPECT_EQ(placeholders, 2u * kImageTokens);
  for (const auto& m : r.media) {
    EXPECT_EQ(m.chunk->n_tokens(), kImageTokens);
    for (int i = 0; i < kImageTokens; ++i) EXPECT_EQ(r.prompt[m.begin + i], kMediaToken);
    // Gemma 3 wraps each image in <start_of_image> ... <end_of_image>.
    EXPECT_EQ(vlm_.model->token_to_piece(r.prompt[m.begin - 1]), "");  // a control token
  }
  EXPECT_GT(r.media[1].begin, r.media[0].begin + kImageTokens);
  EXPECT_NE(r.prompt.back(), kMediaToken);
}

TEST_F(VisionBatch, LibmtmdsDefaultMarkerTypedByAUserIsJustText) {
  const auto p = vlm_.vision->tokenize("look: <__media__> here", {}, true, "input");
  EXPECT_TRUE(p.media.empty());
  for (const Token t : p.tokens) EXPECT_NE(t, kMediaToken);
}

TEST_F(VisionBatch, GreedyCaptionIsDeterministicAndDependsOnThePicture) {
  TextBatch batch(vlm_.model, options(), vlm_.vision);
  const auto a = run_one(batch, caption({mmserve::testing::quadrants(64, 64)}, 24));
  const auto b = run_one(batch, caption({mmserve::testing::quadrants(64, 64)}, 24));
  const auto c = run_one(batch, caption({flat(64, 64, 20, 200, 90)}, 24));
  EXPECT_EQ(a.reason, FinishReason::kLength);
  EXPECT_EQ(a.completion_tokens, 24);
  EXPECT_FALSE(a.text.empty());
  EXPECT_EQ(a.text, b.text);
  EXPECT_NE(a.text, c.text);
  EXPECT_GT(a.prompt_tokens, kImageTokens);
}

TEST_F(VisionBatch, PrefixReuseStopsAtTheImage) {
  TextBatch batch(vlm_.model, options(), vlm_.vision);
  const auto r = caption({mmserve::testing::quadrants(64, 64)}, 12);
  const size_t before_image = r.media[0].begin;
  const auto first = run_one(batch, r);
  const auto second = run_one(batch, r);
  // The same picture again is not assumed to be the same image: everything from it on is redone.
  EXPECT_EQ(second.cached_prompt_tokens, static_cast<int32_t>(before_image));
  EXPECT_EQ(first.text, second.text);
}

TEST_F(VisionBatch, TextStreamsGetATokenEveryStepWhileImagesAreWorked) {
  const std::vector<std::string> prompts = {"Once upon a time", "The cat sat on", "A photo of",
                                            "In the street there"};
  std::vector<std::string> solo;
  std::string solo_image;
  {
    TextBatch batch(vlm_.model, options(), vlm_.vision);
    for (const auto& p : prompts) solo.push_back(run_one(batch, text(p, 60)).text);
    solo_image = run_one(batch, caption({mmserve::testing::quadrants(64, 64)}, 16)).text;
  }

  TextBatch batch(vlm_.model, options(8), vlm_.vision);
  std::vector<SequenceResult> results(prompts.size());
  std::vector<bool> done(prompts.size(), false);
  for (size_t i = 0; i < prompts.size(); ++i) {
    batch.start(text(prompts[i], 60), {.on_finish = [&, i](const SequenceResult& r) {
                  results[i] = r;
                  done[i] = true;
                }});
  }
  for (int i = 0; i < 3; ++i) batch.step();  // the streams are running
  std::vector<SequenceResult> images(4);
  int images_done = 0;
  for (size_t i = 0; i < images.size(); ++i) {
    batch.start(caption({mmserve::testing::quadrants(64, 64)}, 16),
                {.on_finish = [&, i](const SequenceResult& r) {
                  images[i] = r;
                  ++images_done;
                }});
  }
  int encodes = 0, image_decodes = 0;
  while (batch.has_work()) {
    const bool streams_running = std::ranges::none_of(done, [](bool d) { return d; });
    const StepStats s = batch.step();
    encodes += s.images_encoded;
    image_decodes += s.image_tokens > 0 ? 1 : 0;
    // At most one image unit per step: the bound on how long a stream waits.
    EXPECT_LE(s.images_encoded + (s.image_tokens > 0 ? 1 : 0), 1);
    // And the streams still got their token in that step.
    if (streams_running) {
      EXPECT_GE(s.sequences, static_cast<int32_t>(prompts.size()));
    }
  }
  EXPECT_EQ(images_done, 4);
  EXPECT_EQ(encodes, 4);
  EXPECT_EQ(image_decodes, 4);
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(results[i].text, solo[i]) << prompts[i];
    EXPECT_EQ(results[i].completion_tokens, 60);
  }
  for (const auto& r : images) EXPECT_EQ(r.text, solo_image);
}

TEST_F(VisionBatch, ImagesNeedAProjectorAndTextAfterThem) {
  TextBatch plain(vlm_.model, options());
  try {
    plain.validate(caption({mmserve::testing::quadrants(32, 32)}, 8));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kModelUnavailable);
    EXPECT_NE(std::string(e.what()).find("--mmproj"), std::string::npos);
  }
  TextBatch batch(vlm_.model, options(), vlm_.vision);
  // A raw prompt that ends with the image has nothing to take the first token's logits from.
  GenerationRequest r;
  const std::vector<media::Image> image = {mmserve::testing::quadrants(32, 32)};
  auto p = vlm_.vision->tokenize("look" + vlm_.vision->marker(), image, true, "input");
  // Gemma 3 closes an image with <end_of_image> text, so cut the prompt right after the image.
  r.prompt.assign(p.tokens.begin(),
                  p.tokens.begin() + static_cast<std::ptrdiff_t>(p.media[0].begin + kImageTokens));
  r.media = p.media;
  r.max_tokens = 4;
  try {
    batch.validate(r);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("end with text"), std::string::npos);
  }
}

TEST_F(VisionBatch, CancelAfterTheEncodeFreesTheSlot) {
  TextBatch batch(vlm_.model, options(), vlm_.vision);
  std::optional<SequenceResult> result;
  const auto id = batch.start(caption({mmserve::testing::quadrants(64, 64)}, 16),
                              {.on_finish = [&](const SequenceResult& r) { result = r; }});
  const auto s = batch.step();  // the text before the image, then its encode
  EXPECT_EQ(s.images_encoded, 1);
  batch.cancel(id);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->reason, FinishReason::kCancelled);
  EXPECT_FALSE(batch.has_work());
  EXPECT_EQ(run_one(batch, text("Once upon a time", 8)).completion_tokens, 8);
}

TEST_F(VisionBatch, RealPhotoGoesTheWholePath) {
  const std::string path = mmserve::testing::shared_path("media/test-1.jpeg");
  MMSERVE_REQUIRE_SHARED(path);
  const auto photo = media::load_image_file(path, {});
  TextBatch batch(vlm_.model, options(), vlm_.vision);
  const auto a = run_one(batch, caption({photo}, 20));
  const auto b = run_one(batch, caption({photo}, 20));
  EXPECT_EQ(a.completion_tokens, 20);
  EXPECT_FALSE(a.text.empty());
  EXPECT_EQ(a.text, b.text);
}

TEST(VisionSlidingWindow, GemmaLocalAttentionModelCaptions) {
  const fs::path dir =
      fs::temp_directory_path() / ("mmserve-vision-swa-" + std::to_string(getpid()));
  fs::create_directories(dir);
  {
    const Vlm vlm = make_vlm(dir, 32);  // a window shorter than the image
    TextBatch batch(vlm.model, {.n_ctx = 1024, .n_parallel = 2, .n_batch = 64}, vlm.vision);
    auto once = [&] {
      const std::vector<media::Image> image = {mmserve::testing::quadrants(64, 64)};
      auto p = vlm.vision->tokenize(vlm.vision->caption_prompt(1, "Describe.", false), image, true,
                                    "input");
      GenerationRequest r;
      r.prompt = std::move(p.tokens);
      r.media = std::move(p.media);
      r.max_tokens = 40;
      r.sampling.temperature = 0;
      SequenceResult out;
      batch.start(std::move(r), {.on_finish = [&](const SequenceResult& s) { out = s; }});
      while (batch.has_work()) batch.step();
      return out;
    };
    const auto a = once(), b = once();
    EXPECT_EQ(a.reason, FinishReason::kLength) << (a.error ? a.error->what() : "");
    EXPECT_EQ(a.text, b.text);
  }
  fs::remove_all(dir);
}
