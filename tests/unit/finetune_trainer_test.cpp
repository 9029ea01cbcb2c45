// The trainer (engine/finetune.h) on stories260K through the library: options refused by
// field, the plan, the loss falling, a stop between epochs, the saved file's metadata.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "engine/finetune.h"
#include "engine/gguf_inspect.h"

namespace mmserve::engine {
namespace {

namespace fs = std::filesystem;
const std::string kStories = std::string(MMSERVE_SHARED_DIR) + "/models/stories260K.gguf";

std::string field_of(const FinetuneOptions& o) {
  try {
    validate_finetune_options(o);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput);
    return e.field();
  }
  return "";
}

TEST(FinetuneTrainer, OptionsAreRefusedByField) {
  FinetuneOptions ok;
  ok.base_path = "b.gguf";
  ok.data_path = "d.jsonl";
  ok.output_path = "o.gguf";
  EXPECT_EQ(field_of(ok), "");
  auto with = [&](auto change) {
    FinetuneOptions o = ok;
    change(o);
    return field_of(o);
  };
  EXPECT_EQ(with([](auto& o) { o.base_path.clear(); }), "base");
  EXPECT_EQ(with([](auto& o) { o.data_path.clear(); }), "data");
  EXPECT_EQ(with([](auto& o) { o.epochs = 0; }), "epochs");
  EXPECT_EQ(with([](auto& o) { o.learning_rate = 0; }), "lr");
  EXPECT_EQ(with([](auto& o) { o.learning_rate = std::numeric_limits<float>::quiet_NaN(); }), "lr");
  EXPECT_EQ(with([](auto& o) { o.window = 100; }), "ctx");
  EXPECT_EQ(with([](auto& o) { o.window = 512; }), "");
  EXPECT_EQ(with([](auto& o) { o.val_split = 0.6F; }), "val_split");
  EXPECT_EQ(with([](auto& o) { o.threads = -1; }), "threads");
}

class FinetuneTrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kStories)) GTEST_SKIP() << "needs " << kStories << " (absent)";
    dir_ = fs::temp_directory_path() / ("finetune_trainer_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    std::ofstream data(dir_ / "data.jsonl");
    for (int i = 0; i < 40; ++i) {
      data << R"({"messages": [{"role": "user", "content": "Tell me about Pip."}, )"
           << R"({"role": "assistant", "content": "The little robot named Pip loved to paint )"
           << R"(blue stars on the old red barn."}]})"
           << "\n";
    }
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }
  FinetuneOptions options() const {
    FinetuneOptions o;
    o.base_path = kStories;
    o.data_path = (dir_ / "data.jsonl").string();
    o.output_path = (dir_ / "out.gguf").string();
    o.threads = 1;
    o.learning_rate = 3e-4F;
    return o;
  }
  fs::path dir_;
};

TEST_F(FinetuneTrainerTest, LossFallsAndTheSavedModelKeepsTheBaseMetadata) {
  FinetuneOptions o = options();
  o.epochs = 3;
  FinetunePlan plan;
  std::vector<EpochReport> epochs;
  const FinetuneResult result =
      finetune(o, {.on_plan = [&](const FinetunePlan& p) { plan = p; },
                   .on_epoch = [&](const EpochReport& r) { epochs.push_back(r); }});
  EXPECT_EQ(plan.format, "openai");
  EXPECT_EQ(plan.examples, 40U);
  EXPECT_EQ(plan.val_examples, 2U);  // 5% of 40
  EXPECT_EQ(plan.window, 256);
  EXPECT_FALSE(plan.chat_template);
  EXPECT_GT(plan.train_windows, 1);
  EXPECT_EQ(plan.val_windows, 1);  // the held-out side, shorter than a window, wraps
  ASSERT_EQ(epochs.size(), 3U);
  EXPECT_LT(epochs.back().train_loss, epochs.front().train_loss);
  EXPECT_LT(epochs.back().val_loss, epochs.front().val_loss);
  EXPECT_EQ(epochs.front().tokens, plan.train_windows * plan.window);
  EXPECT_EQ(result.epochs_done, 3);
  EXPECT_FALSE(result.stopped);

  const GgufSummary base = inspect_gguf(kStories);
  const GgufSummary out = inspect_gguf(o.output_path);
  EXPECT_EQ(out.n_ctx_train, base.n_ctx_train);  // not the training window
  EXPECT_EQ(out.n_params, base.n_params);
  EXPECT_EQ(out.name, base.name);
  EXPECT_EQ(out.file_type, base.file_type);
  for (const auto& entry : fs::directory_iterator(dir_)) {
    EXPECT_EQ(entry.path().string().find(".partial"), std::string::npos) << entry.path();
  }
}

TEST_F(FinetuneTrainerTest, AStopBetweenEpochsSavesTheCompletedOnes) {
  FinetuneOptions o = options();
  o.epochs = 50;
  int seen = 0;
  const FinetuneResult result = finetune(o, {.on_epoch = [&](const EpochReport&) { ++seen; },
                                             .stop_requested = [&] { return seen >= 1; }});
  EXPECT_TRUE(result.stopped);
  EXPECT_EQ(result.epochs_done, 1);
  EXPECT_EQ(seen, 1);
  EXPECT_TRUE(fs::exists(o.output_path));
}

TEST_F(FinetuneTrainerTest, TooFewTokensIsRefusedBeforeTraining) {
  FinetuneOptions o = options();
  {
    std::ofstream data(o.data_path, std::ios::trunc);
    data
        << R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]})"
        << "\n";
  }
  try {
    finetune(o);
    FAIL() << "trained on one short example";
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "data");
    EXPECT_NE(std::string(e.what()).find("fewer than one window"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(o.output_path));
}

TEST_F(FinetuneTrainerTest, AnUnwritableOutputIsRefusedBeforeTraining) {
  FinetuneOptions o = options();
  o.output_path = (dir_ / "missing" / "out.gguf").string();
  try {
    finetune(o);
    FAIL() << "accepted an output in a missing directory";
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "output");
  }
  o.output_path = kStories;
  try {
    finetune(o);
    FAIL() << "accepted the base as the output";
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "output");
  }
}

}  // namespace
}  // namespace mmserve::engine
