// The synthetic language model writer: shapes, determinism, quantization, and that the files
// load and generate through the same engine as real models.
#include "synth/llm_synth.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "engine/gguf_inspect.h"
#include "engine/text_batch.h"

namespace fs = std::filesystem;
using namespace mmserve;

namespace {

class LlmSynth : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("mmserve-llm-synth-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  static std::string bytes_of(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }

  static synth::LlmSynthOptions small(const std::string& type, uint64_t seed = 1) {
    synth::LlmSynthOptions o;
    o.shape = synth::llm_preset("tiny");
    o.shape.n_layer = 2;
    o.shape.n_vocab = 1024;
    o.type = type;
    o.seed = seed;
    return o;
  }

  fs::path dir_;
};

}  // namespace

TEST_F(LlmSynth, WritesTheRequestedShape) {
  const auto report = synth::write_synthetic_llm(path("a.gguf"), small("f16"));
  const auto s = engine::inspect_gguf(path("a.gguf"));
  EXPECT_EQ(s.architecture, "llama");
  EXPECT_EQ(s.n_layer, 2);
  EXPECT_EQ(s.n_embd, 256);
  EXPECT_EQ(s.n_head, 8);
  EXPECT_EQ(s.n_head_kv, 4);
  EXPECT_EQ(s.n_vocab, 1024);
  EXPECT_EQ(s.file_type, "F16");
  EXPECT_EQ(s.n_params, report.parameters);
  EXPECT_FALSE(s.is_moe());
}

TEST_F(LlmSynth, SameSeedSameBytesOtherSeedOtherBytes) {
  synth::write_synthetic_llm(path("a.gguf"), small("f16", 7));
  synth::write_synthetic_llm(path("b.gguf"), small("f16", 7));
  synth::write_synthetic_llm(path("c.gguf"), small("f16", 8));
  EXPECT_EQ(bytes_of(path("a.gguf")), bytes_of(path("b.gguf")));
  EXPECT_NE(bytes_of(path("a.gguf")), bytes_of(path("c.gguf")));
}

TEST_F(LlmSynth, QuantizedAndMixtureOfExpertsModelsLoadAndGenerate) {
  auto moe = small("q8_0");
  moe.shape.n_expert = 4;
  moe.shape.n_expert_used = 2;
  synth::write_synthetic_llm(path("moe.gguf"), moe);
  synth::write_synthetic_llm(path("q4.gguf"), small("q4_k_m"));
  const auto s = engine::inspect_gguf(path("moe.gguf"));
  EXPECT_EQ(s.file_type, "Q8_0");
  EXPECT_TRUE(s.is_moe());
  EXPECT_EQ(s.n_expert, 4);
  EXPECT_EQ(s.n_expert_used, 2);
  EXPECT_EQ(engine::inspect_gguf(path("q4.gguf")).file_type, "Q4_K - Medium");

  for (const char* name : {"moe.gguf", "q4.gguf"}) {
    auto model = engine::TextModel::load(path(name));
    engine::TextBatch batch(model, {.n_ctx = 256, .n_parallel = 1});
    engine::GenerationRequest r;
    r.prompt = model->tokenize("the cat", true, false);
    r.max_tokens = 8;
    r.sampling.temperature = 0;
    r.ignore_eos = true;
    engine::SequenceResult result;
    batch.start(r, {.on_finish = [&](const engine::SequenceResult& x) { result = x; }});
    while (batch.has_work()) batch.step();
    EXPECT_EQ(result.completion_tokens, 8) << name;
    EXPECT_EQ(result.reason, engine::FinishReason::kLength) << name;
  }
}

TEST_F(LlmSynth, BadPresetOrTypeNamesTheField) {
  try {
    synth::llm_preset("gpt-5");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "preset");
  }
  try {
    synth::write_synthetic_llm(path("x.gguf"), small("q3"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "type");
  }
  auto bad = small("f16");
  bad.shape.n_head = 7;
  try {
    synth::write_synthetic_llm(path("x.gguf"), bad);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "heads");
  }
}
