// The synthetic LoRA writer (synth/lora_synth.h) and `mmserve synth lora`: the files load with
// llama.cpp's adapter loader against their base (stories260K and a synthetic model), change its
// greedy text, are refused against another base, and bad options are refused by name.
#include "synth/lora_synth.h"

#include <gtest/gtest.h>
#include <llama.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>

#include "cli/commands.h"
#include "core/error.h"
#include "engine/backend.h"
#include "synth/llm_synth.h"

namespace fs = std::filesystem;
using namespace mmserve;

namespace {

const std::string kStories = std::string(MMSERVE_SHARED_DIR) + "/models/stories260K.gguf";

struct ModelFree {
  void operator()(llama_model* m) const { llama_model_free(m); }
};
struct ContextFree {
  void operator()(llama_context* c) const { llama_free(c); }
};
using ModelPtr = std::unique_ptr<llama_model, ModelFree>;

ModelPtr load(const std::string& path) {
  engine::ensure_backend_initialized();
  auto params = llama_model_default_params();
  params.n_gpu_layers = 0;
  return ModelPtr(llama_model_load_from_file(path.c_str(), params));
}

// Greedy tokens after a fixed prompt, with `adapter` at `scale` (none when null).
std::vector<llama_token> greedy(llama_model* model, llama_adapter_lora* adapter, float scale,
                                int n = 12) {
  auto cparams = llama_context_default_params();
  cparams.n_ctx = 64;
  cparams.n_batch = 64;
  cparams.n_threads = 1;
  cparams.n_threads_batch = 1;
  std::unique_ptr<llama_context, ContextFree> ctx(llama_init_from_model(model, cparams));
  EXPECT_NE(ctx, nullptr);
  if (!ctx) return {};
  if (adapter != nullptr) EXPECT_EQ(llama_set_adapters_lora(ctx.get(), &adapter, 1, &scale), 0);
  const llama_vocab* vocab = llama_model_get_vocab(model);
  const std::string prompt = "Once upon a time";
  std::vector<llama_token> tokens(64);
  const int np = llama_tokenize(vocab, prompt.data(), static_cast<int32_t>(prompt.size()),
                                tokens.data(), static_cast<int32_t>(tokens.size()), true, false);
  EXPECT_GT(np, 0);
  tokens.resize(static_cast<size_t>(np));
  const int n_vocab = llama_vocab_n_tokens(vocab);
  std::vector<llama_token> out;
  llama_batch batch = llama_batch_get_one(tokens.data(), np);
  llama_token next = 0;
  for (int i = 0; i < n; ++i) {
    if (llama_decode(ctx.get(), batch) != 0) {
      ADD_FAILURE() << "decode failed";
      break;
    }
    const float* logits = llama_get_logits_ith(ctx.get(), -1);
    next = 0;
    for (int v = 1; v < n_vocab; ++v) {
      EXPECT_TRUE(std::isfinite(logits[v])) << "logit " << v;
      if (logits[v] > logits[next]) next = v;
    }
    out.push_back(next);
    batch = llama_batch_get_one(&next, 1);
  }
  return out;
}

class LoraSynth : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("mmserve-lora-synth-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // A small synthetic base with untied embeddings (a tied random model mostly repeats itself).
  std::string synthetic_base() {
    synth::LlmSynthOptions o;
    o.shape = synth::llm_preset("tiny");
    o.shape.n_layer = 2;
    o.shape.n_vocab = 1024;
    o.shape.n_ctx = 256;
    o.shape.tied_embeddings = false;
    o.type = "f32";
    synth::write_synthetic_llm(path("base.gguf"), o);
    return path("base.gguf");
  }

  // The adapter loads against `base` and changes its greedy text; scale 0 gives the base's.
  static void expect_changes_output(const std::string& base, const std::string& lora) {
    ModelPtr model = load(base);
    ASSERT_NE(model, nullptr);
    llama_adapter_lora* adapter = llama_adapter_lora_init(model.get(), lora.c_str());
    ASSERT_NE(adapter, nullptr);
    char buf[64];
    ASSERT_GT(llama_adapter_meta_val_str(adapter, "adapter.type", buf, sizeof buf), 0);
    EXPECT_STREQ(buf, "lora");
    const auto plain = greedy(model.get(), nullptr, 0);
    const auto adapted = greedy(model.get(), adapter, 1.0F);
    const auto zero = greedy(model.get(), adapter, 0.0F);
    ASSERT_EQ(plain.size(), 12U);
    EXPECT_NE(adapted, plain);
    EXPECT_EQ(zero, plain);
    int differing = 0;
    for (size_t i = 0; i < plain.size(); ++i) differing += adapted[i] != plain[i] ? 1 : 0;
    EXPECT_GE(differing, 3) << "the adapter should change the text clearly";
  }

  static std::string bytes_of(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }

  // The option a failing `mmserve synth lora` names.
  static std::string cli_field(std::vector<std::string> args) {
    try {
      cli::run_synth_lora(args);
    } catch (const Error& e) {
      return e.field();
    }
    return "";
  }

  fs::path dir_;
};

}  // namespace

TEST_F(LoraSynth, Stories260KAdapterLoadsAndChangesGreedyText) {
  const auto report = synth::write_synthetic_lora(kStories, path("s.gguf"), {});
  EXPECT_EQ(report.architecture, "llama");
  EXPECT_EQ(report.adapted.size(), 5U * 7U);  // 5 layers, 7 matrices each
  EXPECT_EQ(report.adapted.front(), "blk.0.attn_q.weight");
  expect_changes_output(kStories, path("s.gguf"));
}

TEST_F(LoraSynth, SyntheticModelAdapterLoadsAndChangesGreedyText) {
  const std::string base = synthetic_base();
  synth::LoraSynthOptions o;
  o.targets = {"attn_q", "attn_v", "output"};
  o.type = "f16";
  o.rank = 4;
  o.alpha = 8;
  const auto report = synth::write_synthetic_lora(base, path("l.gguf"), o);
  EXPECT_EQ(report.adapted.size(), 2U * 2U + 1U);
  expect_changes_output(base, path("l.gguf"));
}

TEST_F(LoraSynth, SameSeedSameBytesAndAnotherBaseRefusesIt) {
  synth::LoraSynthOptions o;
  synth::write_synthetic_lora(kStories, path("a.gguf"), o);
  synth::write_synthetic_lora(kStories, path("b.gguf"), o);
  o.seed = 7;
  synth::write_synthetic_lora(kStories, path("c.gguf"), o);
  EXPECT_EQ(bytes_of(path("a.gguf")), bytes_of(path("b.gguf")));
  EXPECT_NE(bytes_of(path("a.gguf")), bytes_of(path("c.gguf")));
  // Same architecture, other shapes: llama.cpp refuses the pair.
  ModelPtr other = load(synthetic_base());
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(llama_adapter_lora_init(other.get(), path("a.gguf").c_str()), nullptr);
}

TEST_F(LoraSynth, CliWritesAndRefusesBadOptionsByName) {
  ::testing::internal::CaptureStdout();
  const int rc = cli::run_synth_lora({"--base", kStories, "-o", path("cli.gguf"), "--rank", "2"});
  ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(rc, 0);
  EXPECT_TRUE(fs::exists(path("cli.gguf")));

  const std::string out = path("x.gguf");
  EXPECT_EQ(cli_field({"-o", out}), "--base");
  EXPECT_EQ(cli_field({"--base", kStories}), "--out");
  EXPECT_EQ(cli_field({"--base", kStories, "-o", out, "--rank", "0"}), "--rank");
  EXPECT_EQ(cli_field({"--base", kStories, "-o", out, "--rank", "33"}), "--rank");  // kv dim 32
  EXPECT_EQ(cli_field({"--base", kStories, "-o", out, "--targets", "attn_x"}), "--targets");
  EXPECT_EQ(cli_field({"--base", kStories, "-o", out, "--targets", "attn_q,"}), "--targets");
  EXPECT_EQ(cli_field({"--base", kStories, "-o", out, "--magnitude", "0"}), "--magnitude");
  EXPECT_EQ(cli_field({"--base", kStories, "-o", out, "--type", "q8_0"}), "--type");
  EXPECT_EQ(cli_field({"--base", kStories, "-o", path("no/such/dir/x.gguf")}), "--out");
  EXPECT_EQ(cli_field({"--base", path("missing.gguf"), "-o", out}), "--base");
  std::ofstream(path("text.gguf")) << "not a model";
  EXPECT_EQ(cli_field({"--base", path("text.gguf"), "-o", out}), "--base");
  // An adapter is not a base.
  EXPECT_EQ(cli_field({"--base", path("cli.gguf"), "-o", out}), "--base");
  EXPECT_FALSE(fs::exists(out));
}
