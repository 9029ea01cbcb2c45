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

// Prefix reuse across sequences (text_batch.h): a system prompt shared by requests is computed
// once, and the answers are those of solo runs.
namespace {
constexpr const char* kSystem =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park "
    "with her friends. One day, she saw a big red ball";
const std::vector<std::string> kAfterSystem = {" and a dog.", ". The cat ran", ". Tom and Sue"};

size_t shared_tokens(const std::vector<Token>& a, const std::vector<Token>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}
}  // namespace

TEST_F(TextGeneration, SequencesStartedTogetherComputeASharedPromptOnce) {
  std::vector<GenerationRequest> rs;
  std::vector<std::string> solo;
  for (const auto& end : kAfterSystem) {
    rs.push_back(greedy(kSystem + end, 24));
    TextBatch alone(model_, {.n_ctx = 512, .n_parallel = 1});
    solo.push_back(run_all(alone, {rs.back()})[0].text);
  }
  // What each could take from one started before it (the ends may share a token or two).
  std::vector<size_t> shared(rs.size(), 0);
  for (size_t i = 1; i < rs.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      shared[i] = std::max(shared[i], shared_tokens(rs[i].prompt, rs[j].prompt));
    }
    ASSERT_GE(shared[i], 30u);
  }
  int64_t to_decode = 0;
  for (size_t i = 0; i < rs.size(); ++i) {
    to_decode += static_cast<int64_t>(rs[i].prompt.size() - shared[i]);
  }

  // A small batch, so that the shared part takes the first sequence several steps.
  TextBatch batch(model_, {.n_ctx = 512, .n_parallel = 3, .n_batch = 8});
  std::vector<SequenceResult> results(rs.size());
  for (size_t i = 0; i < rs.size(); ++i) {
    batch.start(rs[i], {.on_finish = [&, i](const SequenceResult& r) { results[i] = r; }});
  }
  int64_t decoded = 0;
  while (batch.has_work()) decoded += batch.step().tokens;
  for (size_t i = 0; i < rs.size(); ++i) {
    EXPECT_EQ(results[i].text, solo[i]) << kAfterSystem[i];
    EXPECT_EQ(results[i].cached_prompt_tokens, static_cast<int32_t>(shared[i])) << i;
  }
  // The shared tokens decoded once in all, plus the generated tokens (all but each sequence's
  // last, which is sampled and not decoded).
  for (const auto& r : results) to_decode += r.completion_tokens - 1;
  EXPECT_EQ(decoded, to_decode);
}

TEST_F(TextGeneration, ARunningSequenceLendsItsPrefixToANewOne) {
  const auto first = greedy(kSystem + kAfterSystem[0], 40);
  const auto second = greedy(kSystem + kAfterSystem[1], 16);
  TextBatch alone(model_, {.n_ctx = 512, .n_parallel = 1});
  const auto solo_first = run_all(alone, {first})[0].text;
  TextBatch fresh(model_, {.n_ctx = 512, .n_parallel = 1});
  const auto solo_second = run_all(fresh, {second})[0].text;

  TextBatch batch(model_, {.n_ctx = 512, .n_parallel = 2});
  SequenceResult a, b;
  batch.start(first, {.on_finish = [&](const SequenceResult& r) { a = r; }});
  for (int i = 0; i < 6; ++i) batch.step();  // its prompt done, generating
  ASSERT_TRUE(batch.has_work());
  batch.start(second, {.on_finish = [&](const SequenceResult& r) { b = r; }});
  while (batch.has_work()) batch.step();
  EXPECT_EQ(a.text, solo_first);
  EXPECT_EQ(b.text, solo_second);
  EXPECT_EQ(b.cached_prompt_tokens,
            static_cast<int32_t>(shared_tokens(first.prompt, second.prompt)));
  // The lender's cells outlive it: a third request finds them in the borrower's idle slot too.
  const auto third = run_all(batch, {greedy(kSystem + kAfterSystem[2], 8)})[0];
  EXPECT_GE(third.cached_prompt_tokens, 30);
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
