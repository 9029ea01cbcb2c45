// LoRA adapters in TextBatch (engine/lora_adapter.h) with the real stories260K model and
// synthetic adapters (synth/lora_synth.h): an adapter changes greedy text; sequences on two
// adapters and the base running together each equal their solo runs; no decode mixes adapter
// sets and every set keeps flowing; prefix reuse never crosses sets; an adapter dropped by its
// owner stays alive for the request using it; load errors name their field.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "engine/lora_adapter.h"
#include "engine/text_batch.h"
#include "synth/lora_synth.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace mmserve;
using namespace mmserve::engine;

namespace {

class LoraBatch : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(mmserve::testing::stories_model())) return;
    dir_ = fs::temp_directory_path() / ("mmserve_lora_batch_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    model_ = TextModel::load(mmserve::testing::stories_model());
    for (const uint64_t seed : {1, 2}) {
      synth::LoraSynthOptions options;
      options.seed = seed;
      const auto path = (dir_ / ("lora" + std::to_string(seed) + ".gguf")).string();
      synth::write_synthetic_lora(mmserve::testing::stories_model(), path, options);
    }
    a_ = LoraAdapter::load(model_, "a", (dir_ / "lora1.gguf").string());
    b_ = LoraAdapter::load(model_, "b", (dir_ / "lora2.gguf").string());
  }
  static void TearDownTestSuite() {
    a_.reset();
    b_.reset();
    model_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  void SetUp() override { MMSERVE_REQUIRE_SHARED(mmserve::testing::stories_model()); }

  static LoraSet set_of(const std::shared_ptr<const LoraAdapter>& adapter, float scale = 1) {
    if (!adapter) return {};
    return LoraSet({{adapter, scale}});
  }
  static GenerationRequest greedy(const std::string& prompt, int max_tokens, LoraSet lora = {}) {
    GenerationRequest r;
    r.prompt = model_->tokenize(prompt, true, false);
    r.max_tokens = max_tokens;
    r.sampling.temperature = 0;
    r.lora = std::move(lora);
    return r;
  }

  struct Run {
    std::vector<SequenceResult> results;
    std::vector<StepStats> steps;
    // For each step, the requests that received text in it.
    std::vector<std::vector<size_t>> touched;
    // For each step, the requests still running when it began.
    std::vector<std::vector<size_t>> running;
  };

  static Run run_all(TextBatch& batch, std::vector<GenerationRequest> rs) {
    Run run;
    run.results.resize(rs.size());
    std::vector<bool> done(rs.size(), false);
    std::vector<size_t> touched;
    for (size_t i = 0; i < rs.size(); ++i) {
      batch.start(std::move(rs[i]), {.on_text = [&, i](std::string_view) { touched.push_back(i); },
                                     .on_finish =
                                         [&, i](const SequenceResult& r) {
                                           run.results[i] = r;
                                           done[i] = true;
                                         }});
    }
    while (batch.has_work()) {
      std::vector<size_t> running;
      for (size_t i = 0; i < done.size(); ++i) {
        if (!done[i]) running.push_back(i);
      }
      touched.clear();
      run.steps.push_back(batch.step());
      run.touched.push_back(touched);
      run.running.push_back(running);
    }
    return run;
  }

  static void check_three_sets_together(int32_t turn);

  static std::string solo(const GenerationRequest& r) {
    TextBatch batch(model_, {.n_ctx = 256, .n_parallel = 1, .threads = 1});
    return run_all(batch, {r}).results[0].text;
  }

  static inline fs::path dir_;
  static inline std::shared_ptr<TextModel> model_;
  static inline std::shared_ptr<const LoraAdapter> a_, b_;
};

}  // namespace

TEST_F(LoraBatch, AnAdapterChangesTheGreedyText) {
  const auto base = solo(greedy("Once upon a time", 24));
  const auto with_a = solo(greedy("Once upon a time", 24, set_of(a_)));
  const auto with_b = solo(greedy("Once upon a time", 24, set_of(b_)));
  EXPECT_TRUE(base.starts_with(", there was a little girl")) << base;
  EXPECT_NE(with_a, base);
  EXPECT_NE(with_b, base);
  EXPECT_NE(with_a, with_b);
  // Scale 0 is the base; a half scale is another set.
  EXPECT_EQ(solo(greedy("Once upon a time", 24, set_of(a_, 0))), base);
  EXPECT_TRUE(set_of(a_, 0).empty());
  EXPECT_FALSE(set_of(a_, 0.5).same_as(set_of(a_)));
  EXPECT_EQ(set_of(a_, 0.5).label(), "a*0.5");
  EXPECT_EQ(LoraSet({{b_, 1}, {a_, 1}}).label(), "a+b");
}

// Six requests on three sets in one batch of six slots, the sets taking turns of at most
// `turn` steps: each output equals its solo run, no step decodes two sets, and while three sets
// have work none waits more than two turns.
void LoraBatch::check_three_sets_together(int32_t turn) {
  const std::vector<std::string> prompts = {"Once upon a time", "The cat",
                                            "Tom and Sue went", "One day, a little bird",
                                            "Lily saw",         "The sun"};
  const std::vector<LoraSet> sets = {{}, set_of(a_), set_of(b_), set_of(a_), {}, set_of(b_)};
  std::vector<GenerationRequest> requests;
  std::vector<std::string> expected;
  for (size_t i = 0; i < prompts.size(); ++i) {
    requests.push_back(greedy(prompts[i], 40 + static_cast<int>(i), sets[i]));
    expected.push_back(solo(requests.back()));
  }
  TextBatch batch(model_, {.n_ctx = 512, .n_parallel = 6, .threads = 1, .max_adapter_turn = turn});
  const auto run = run_all(batch, requests);
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(run.results[i].text, expected[i]) << "request " << i << " turn " << turn;
    EXPECT_EQ(run.results[i].reason, FinishReason::kLength);
  }
  int switches = 0;
  for (size_t k = 0; k < run.steps.size(); ++k) {
    switches += run.steps[k].adapter_switches;
    // Every sequence that got text in this step has the set the step decoded.
    for (const size_t i : run.touched[k]) {
      EXPECT_TRUE(sets[i].same_as(run.steps[k].lora)) << "step " << k << " request " << i;
    }
    // One set per step: at most the requests of that set were decoded.
    size_t of_set = 0;
    for (const size_t i : run.running[k]) of_set += sets[i].same_as(run.steps[k].lora) ? 1 : 0;
    EXPECT_LE(static_cast<size_t>(run.steps[k].sequences), of_set) << "step " << k;
  }
  EXPECT_GE(switches, 3);  // at least one turn of each set
  if (turn == 1) {
    EXPECT_GE(switches, 3 * 40);  // strict alternation while all three run
  }
  // Bounded waits: in any window of 2 * turn + 1 steps ending at step e, every set that still
  // has work at e was served.
  const size_t window = 2 * static_cast<size_t>(turn) + 1;
  for (size_t e = window - 1; e < run.steps.size(); ++e) {
    std::vector<const LoraSet*> live;
    for (const size_t i : run.running[e]) {
      if (std::ranges::none_of(live, [&](const LoraSet* s) { return s->same_as(sets[i]); })) {
        live.push_back(&sets[i]);
      }
    }
    for (const LoraSet* s : live) {
      bool served = false;
      for (size_t k = e + 1 - window; k <= e; ++k) served = served || s->same_as(run.steps[k].lora);
      EXPECT_TRUE(served) << "a set got no step in steps " << e + 1 - window << ".." << e
                          << " (turn " << turn << ")";
    }
  }
}

TEST_F(LoraBatch, TwoAdaptersAndTheBaseTogetherEqualTheirSoloRuns) {
  check_three_sets_together(1);
  check_three_sets_together(8);  // the default: turns that amortize the switch
}

TEST_F(LoraBatch, OneSetForAllSequencesNeverSwitches) {
  TextBatch batch(model_, {.n_ctx = 512, .n_parallel = 3, .threads = 1});
  auto run = run_all(
      batch, {greedy("Once upon a time", 16), greedy("The cat", 16), greedy("Lily saw", 16)});
  for (const auto& s : run.steps) {
    EXPECT_EQ(s.adapter_switches, 0);
    EXPECT_TRUE(s.lora.empty());
  }
  // All on one adapter: one switch (to it) at the first step, then none, and every step
  // decodes every running sequence together.
  run = run_all(batch, {greedy("Once upon a time", 16, set_of(a_)),
                        greedy("The cat", 16, set_of(a_)), greedy("Lily saw", 16, set_of(a_))});
  int switches = 0;
  for (size_t k = 0; k < run.steps.size(); ++k) {
    switches += run.steps[k].adapter_switches;
    EXPECT_EQ(static_cast<size_t>(run.steps[k].sequences), run.running[k].size());
  }
  EXPECT_EQ(switches, 1);
  EXPECT_EQ(run.steps[0].adapter_switches, 1);
}

TEST_F(LoraBatch, PrefixReuseDoesNotCrossAdapterSets) {
  const std::string prompt = "Once upon a time, there was a little girl named Lily";
  TextBatch batch(model_, {.n_ctx = 256, .n_parallel = 1, .threads = 1});
  const auto on_a = run_all(batch, {greedy(prompt, 12, set_of(a_))}).results[0];
  EXPECT_EQ(on_a.cached_prompt_tokens, 0);
  // The slot holds KV computed with adapter a: the base must not reuse it.
  const auto base = run_all(batch, {greedy(prompt, 12)}).results[0];
  EXPECT_EQ(base.cached_prompt_tokens, 0);
  EXPECT_EQ(base.text, solo(greedy(prompt, 12)));
  const auto base_again = run_all(batch, {greedy(prompt, 12)}).results[0];
  EXPECT_GT(base_again.cached_prompt_tokens, 0);
  EXPECT_EQ(base_again.text, base.text);
  // Nor adapter a the base's, nor b a's, nor a at another scale.
  const auto a_again = run_all(batch, {greedy(prompt, 12, set_of(a_))}).results[0];
  EXPECT_EQ(a_again.cached_prompt_tokens, 0);
  EXPECT_EQ(a_again.text, on_a.text);
  const auto on_b = run_all(batch, {greedy(prompt, 12, set_of(b_))}).results[0];
  EXPECT_EQ(on_b.cached_prompt_tokens, 0);
  EXPECT_EQ(run_all(batch, {greedy(prompt, 12, set_of(b_, 0.5))}).results[0].cached_prompt_tokens,
            0);

  // Two idle slots, one cached on a, one on the base: each request finds its own.
  TextBatch two(model_, {.n_ctx = 256, .n_parallel = 2, .threads = 1});
  (void)run_all(two, {greedy(prompt, 8, set_of(a_)), greedy(prompt, 8)});
  const auto again = run_all(two, {greedy(prompt, 12, set_of(a_))}).results[0];
  EXPECT_GT(again.cached_prompt_tokens, 0);
  EXPECT_EQ(again.text, on_a.text);
  const auto base_two = run_all(two, {greedy(prompt, 12)}).results[0];
  EXPECT_GT(base_two.cached_prompt_tokens, 0);
  EXPECT_EQ(base_two.text, base.text);
}

TEST_F(LoraBatch, ARequestKeepsItsAdapterAliveAfterItsOwnerDropsIt) {
  auto adapter = LoraAdapter::load(model_, "c", (dir_ / "lora1.gguf").string());
  const std::weak_ptr<const LoraAdapter> weak = adapter;
  const auto expected = solo(greedy("The cat", 24, set_of(adapter)));
  TextBatch batch(model_, {.n_ctx = 256, .n_parallel = 2, .threads = 1});
  std::string text;
  batch.start(greedy("The cat", 24, set_of(adapter)),
              {.on_finish = [&](const SequenceResult& r) { text = r.text; }});
  batch.step();
  adapter.reset();  // the table forgets it (an unload) while it runs
  EXPECT_FALSE(weak.expired());
  while (batch.has_work()) batch.step();
  EXPECT_EQ(text, expected);
  // Still set on the context until a step with another set, then freed.
  batch.start(greedy("The cat", 4), {});
  while (batch.has_work()) batch.step();
  EXPECT_TRUE(weak.expired());
}

TEST_F(LoraBatch, LoadErrorsNameTheirField) {
  auto field_of = [&](const std::string& name, const std::string& path, float scale) {
    try {
      (void)LoraAdapter::load(model_, name, path, scale);
    } catch (const Error& e) {
      return std::string(error_code_name(e.code())) + ":" + e.field();
    }
    return std::string("loaded");
  };
  const auto good = (dir_ / "lora1.gguf").string();
  EXPECT_EQ(field_of("x", (dir_ / "missing.gguf").string(), 1), "not_found_error:path");
  EXPECT_EQ(field_of("x", good, std::nanf("")), "invalid_request_error:scale");
  EXPECT_EQ(field_of("x", good, 100), "invalid_request_error:scale");
  EXPECT_EQ(field_of("", good, 1), "invalid_request_error:name");
  EXPECT_EQ(field_of("a:b", good, 1), "invalid_request_error:name");
  // A model file is not an adapter.
  EXPECT_EQ(field_of("x", mmserve::testing::stories_model(), 1), "model_load_error:path");
  EXPECT_EQ(field_of("x", good, -1), "loaded");
}

TEST_F(LoraBatch, SequencesOnOneAdapterShareTheirPromptAndEqualTheirSoloRuns) {
  const std::string prompt = "Once upon a time, there was a little girl named Lily. She loved to";
  const std::vector<LoraSet> sets = {set_of(a_), set_of(a_), {}, set_of(b_), set_of(a_), {}};
  std::vector<GenerationRequest> requests;
  std::vector<std::string> expected;
  for (const auto& set : sets) {
    requests.push_back(greedy(prompt, 32, set));
    expected.push_back(solo(requests.back()));
  }
  TextBatch batch(model_, {.n_ctx = 1024, .n_parallel = 6, .n_batch = 8, .threads = 1});
  const auto run = run_all(batch, requests);
  for (size_t i = 0; i < sets.size(); ++i) {
    EXPECT_EQ(run.results[i].text, expected[i]) << "request " << i;
  }
  // The second on each set took the first's prompt; none took another set's.
  EXPECT_EQ(run.results[0].cached_prompt_tokens, 0);
  EXPECT_EQ(run.results[2].cached_prompt_tokens, 0);
  EXPECT_EQ(run.results[3].cached_prompt_tokens, 0);
  EXPECT_GT(run.results[1].cached_prompt_tokens, 0);
  EXPECT_GT(run.results[4].cached_prompt_tokens, 0);
  EXPECT_GT(run.results[5].cached_prompt_tokens, 0);
}
