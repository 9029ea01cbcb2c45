// The embedding engine over the synthetic BERT model (synth/embed_synth.h): detection from the
// file, unit vectors, determinism, the same vectors alone and batched with other inputs,
// pooling from the file, `dimensions`, and the refusals (empty, too long, bad token ids, a
// batch over its limits).
#include "engine/embedding_model.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "synth/embed_synth.h"
#include "synth/llm_synth.h"

namespace fs = std::filesystem;
using namespace mmserve;

namespace {

double norm(const std::vector<float>& v) {
  double s = 0;
  for (const float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s);
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float d = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

class EmbeddingModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("mmserve-embed-model-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    synth::EmbedSynthOptions o;
    o.shape.n_ctx = 64;
    synth::write_synthetic_embedding_model((dir_ / "mean.gguf").string(), o);
    o.pooling = "cls";
    synth::write_synthetic_embedding_model((dir_ / "cls.gguf").string(), o);
    model_ = engine::EmbeddingModel::load((dir_ / "mean.gguf").string(),
                                          {.batch_tokens = 256, .max_sequences = 8, .threads = 2})
                 .release();
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
    fs::remove_all(dir_);
  }

  static inline fs::path dir_;
  static inline engine::EmbeddingModel* model_ = nullptr;
};

}  // namespace

TEST_F(EmbeddingModelTest, DetectsEmbeddingFilesAndNotChatModels) {
  const auto facts = engine::embedding_file_facts((dir_ / "mean.gguf").string());
  EXPECT_EQ(facts.architecture, "bert");
  EXPECT_TRUE(facts.pooling_key);
  EXPECT_EQ(facts.pooling, 1);
  EXPECT_TRUE(facts.is_embedding_model);

  synth::LlmSynthOptions llm;
  llm.shape = synth::llm_preset("tiny");
  llm.shape.n_layer = 1;
  llm.shape.n_vocab = 1024;
  const auto chat = (dir_ / "chat.gguf").string();
  synth::write_synthetic_llm(chat, llm);
  EXPECT_FALSE(engine::embedding_file_facts(chat).is_embedding_model);
  EXPECT_THROW(engine::embedding_file_facts((dir_ / "missing.gguf").string()), Error);
}

TEST_F(EmbeddingModelTest, ShapesAndLimitsComeFromTheFile) {
  EXPECT_EQ(model_->dimensions(), 128);
  EXPECT_EQ(model_->max_input_tokens(), 64);  // the training context
  EXPECT_EQ(model_->batch_tokens(), 256);
  EXPECT_EQ(model_->max_sequences(), 8);
  EXPECT_STREQ(engine::pooling_name(model_->pooling()), "mean");
  const auto tokens = model_->tokenize("hello world");
  ASSERT_GE(tokens.size(), 4u);
  EXPECT_EQ(tokens.front(), 2);  // [CLS]
  EXPECT_EQ(tokens.back(), 3);   // [SEP]
}

TEST_F(EmbeddingModelTest, VectorsAreUnitLengthAndDeterministic) {
  const auto a = model_->embed({model_->tokenize("the quick brown fox")});
  const auto b = model_->embed({model_->tokenize("the quick brown fox")});
  const auto c = model_->embed({model_->tokenize("a lazy dog sat on the mat")});
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(a[0].size(), 128u);
  EXPECT_NEAR(norm(a[0]), 1.0, 1e-5);
  EXPECT_EQ(a[0], b[0]);
  EXPECT_GT(max_abs_diff(a[0], c[0]), 1e-3f);  // different text, different vector
}

TEST_F(EmbeddingModelTest, TheSameInputAloneAndInABatchGivesTheSameVector) {
  const auto x = model_->tokenize("hello world");
  const auto alone = model_->embed({x})[0];
  const auto batch = model_->embed({model_->tokenize("the cat sat on the mat and more words"), x,
                                    model_->tokenize("embedding search query"), x});
  ASSERT_EQ(batch.size(), 4u);
  // Separate sequences do not see each other (non-causal attention is masked per sequence);
  // only the summation order of the longer rows can differ in the last bits.
  EXPECT_LT(max_abs_diff(alone, batch[1]), 1e-5f);
  EXPECT_LT(max_abs_diff(alone, batch[3]), 1e-5f);
  EXPECT_EQ(batch[1], batch[3]);
}

TEST_F(EmbeddingModelTest, PoolingIsTheFilesCls) {
  auto cls = engine::EmbeddingModel::load((dir_ / "cls.gguf").string(), {.threads = 2});
  EXPECT_STREQ(engine::pooling_name(cls->pooling()), "cls");
  const auto x = cls->tokenize("hello world");
  EXPECT_GT(max_abs_diff(cls->embed({x})[0], model_->embed({x})[0]), 1e-3f);
}

TEST_F(EmbeddingModelTest, DimensionsTruncateAndRenormalise) {
  const auto v = model_->embed({model_->tokenize("vector")})[0];
  const auto s = engine::shorten_embedding(v, 32, "dimensions");
  ASSERT_EQ(s.size(), 32u);
  EXPECT_NEAR(norm(s), 1.0, 1e-5);
  EXPECT_GT(s[0] * v[0], 0);  // same direction, rescaled
  EXPECT_THROW(engine::shorten_embedding(v, 0, "dimensions"), Error);
  try {
    engine::shorten_embedding(v, 129, "dimensions");
    FAIL() << "129 dimensions of 128 were accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "dimensions");
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput);
  }
}

TEST_F(EmbeddingModelTest, RefusesEmptyTooLongAndForeignTokens) {
  const auto refused = [&](const std::vector<engine::Token>& t, const char* what) {
    try {
      model_->validate(t, "input[3]");
      ADD_FAILURE() << what << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidInput) << what;
      EXPECT_EQ(e.field(), "input[3]") << what;
    }
  };
  refused({}, "an empty input");
  refused(std::vector<engine::Token>(65, 10), "65 tokens of a 64-token model");
  refused({2, 1024, 3}, "token 1024 of a 1024-token vocabulary");
  refused({2, -1, 3}, "token -1");
  EXPECT_NO_THROW(model_->validate(std::vector<engine::Token>(64, 10), "input"));
  // More inputs than one decode takes: refused, not truncated.
  std::vector<std::vector<engine::Token>> nine(9, {2, 10, 3});
  EXPECT_THROW(model_->embed(nine), Error);
  std::vector<std::vector<engine::Token>> wide(5, std::vector<engine::Token>(60, 10));
  EXPECT_THROW(model_->embed(wide), Error);  // 300 tokens > 256
}
