// Generation through TextBatch with the real stories260K model: golden output, determinism,
// batching invariance, prefix reuse, stop strings, limits and cancellation.
#include <gtest/gtest.h>

#include <map>

#include "core/error.h"
#include "engine/text_batch.h"
#include "test_support.h"

using namespace mmserve::engine;
using mmserve::testing::kStoriesGolden;

namespace {

class TextGeneration : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (std::filesystem::exists(mmserve::testing::stories_model())) {
      model_ = TextModel::load(mmserve::testing::stories_model());
    }
  }
  static void TearDownTestSuite() { model_.reset(); }
  void SetUp() override { MMSERVE_REQUIRE_SHARED(mmserve::testing::stories_model()); }

  static GenerationRequest greedy(const std::string& prompt, int max_tokens) {
    GenerationRequest r;
    r.prompt = model_->tokenize(prompt, true, false);
    r.max_tokens = max_tokens;
    r.sampling.temperature = 0;
    return r;
  }

  // Runs requests together in one batch until all finish; returns their results in order.
  static std::vector<SequenceResult> run_all(TextBatch& batch, std::vector<GenerationRequest> rs) {
    std::vector<SequenceResult> results(rs.size());
    std::vector<std::string> streamed(rs.size());
    for (size_t i = 0; i < rs.size(); ++i) {
      batch.start(std::move(rs[i]),
                  {.on_text = [&, i](std::string_view t) { streamed[i] += t; },
                   .on_finish = [&, i](const SequenceResult& r) { results[i] = r; }});
    }
    while (batch.has_work()) batch.step();
    for (size_t i = 0; i < results.size(); ++i) EXPECT_EQ(streamed[i], results[i].text);
    return results;
  }

  static std::shared_ptr<TextModel> model_;
};
std::shared_ptr<TextModel> TextGeneration::model_;

}  // namespace

TEST_F(TextGeneration, GreedyContinuationMatchesTheReference) {
  TextBatch batch(model_, {.n_ctx = 512, .n_parallel = 1});
  const auto r = run_all(batch, {greedy("Once upon a time", 64)});
  EXPECT_TRUE(r[0].text.starts_with(kStoriesGolden)) << r[0].text;
  EXPECT_EQ(r[0].reason, FinishReason::kLength);
  EXPECT_EQ(r[0].completion_tokens, 64);
}

TEST_F(TextGeneration, SeededSamplingIsReproducible) {
  TextBatch batch(model_, {.n_ctx = 512, .n_parallel = 1});
  auto sampled = [&](uint32_t seed) {
    auto r = greedy("Once upon a time", 48);
    r.sampling.temperature = 1.0f;
    r.sampling.seed = seed;
    return run_all(batch, {r})[0].text;
  };
  const auto a = sampled(42);
  EXPECT_EQ(a, sampled(42));
  EXPECT_NE(a, sampled(7));
}

TEST_F(TextGeneration, BatchedSequencesEqualTheirSoloRuns) {
  const std::vector<std::string> prompts = {"Once upon a time", "The cat", "Tom and Sue went",
                                            "One day, a little bird"};
  std::vector<std::string> solo;
  {
    TextBatch batch(model_, {.n_ctx = 512, .n_parallel = 1});
    for (const auto& p : prompts) solo.push_back(run_all(batch, {greedy(p, 40)})[0].text);
  }
  TextBatch batch(model_, {.n_ctx = 512, .n_parallel = 4, .n_batch = 8});
  std::vector<GenerationRequest> rs;
  for (const auto& p : prompts) rs.push_back(greedy(p, 40));
  const auto together = run_all(batch, rs);
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(together[i].text, solo[i]) << prompts[i];
}

TEST_F(TextGeneration, RepeatedPromptReusesTheCachedPrefix) {
  TextBatch batch(model_, {.n_ctx = 512, .n_parallel = 2});
  const auto first = run_all(batch, {greedy("Once upon a time there was a dog", 16)})[0];
  const auto second = run_all(batch, {greedy("Once upon a time there was a dog", 16)})[0];
  EXPECT_EQ(first.cached_prompt_tokens, 0);
  EXPECT_EQ(second.cached_prompt_tokens, second.prompt_tokens - 1);
  EXPECT_EQ(first.text, second.text);
}

TEST_F(TextGeneration, StopStringEndsGeneration) {
  TextBatch batch(model_, {.n_ctx = 512, .n_parallel = 1});
  auto r = greedy("Once upon a time", 64);
  r.stop = {"Lily"};
  const auto out = run_all(batch, {r})[0];
  EXPECT_EQ(out.text, ", there was a little girl named ");
  EXPECT_EQ(out.reason, FinishReason::kStop);
}

TEST_F(TextGeneration, LimitsAreValidatedWithTheirField) {
  TextBatch batch(model_, {.n_ctx = 256, .n_parallel = 1});
  auto field_of = [&](const GenerationRequest& r) -> std::string {
    try {
      batch.validate(r);
    } catch (const mmserve::Error& e) {
      return e.field();
    }
    return "";
  };
  EXPECT_EQ(field_of(greedy("Once", 0)), "max_tokens");
  EXPECT_EQ(field_of(greedy("Once", 100000)), "max_tokens");
  std::string long_prompt;
  for (int i = 0; i < 400; ++i) long_prompt += "cat ";
  EXPECT_EQ(field_of(greedy(long_prompt, 1)), "input");
  GenerationRequest empty;
  EXPECT_EQ(field_of(empty), "input");
  EXPECT_EQ(field_of(greedy("Once", 8)), "");
}

TEST_F(TextGeneration, CancelFinishesAtOnceAndFreesTheSlot) {
  TextBatch batch(model_, {.n_ctx = 512, .n_parallel = 1});
  std::optional<SequenceResult> result;
  const auto id = batch.start(greedy("Once upon a time", 200),
                              {.on_finish = [&](const SequenceResult& r) { result = r; }});
  batch.step();
  batch.step();
  EXPECT_FALSE(result.has_value());
  batch.cancel(id);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->reason, FinishReason::kCancelled);
  EXPECT_FALSE(batch.has_work());
  EXPECT_TRUE(batch.can_start(greedy("Once", 8)));
}
