// The memory estimator's arithmetic on hand-made headers, the suggestion search, the header-only
// GGUF parse of a prefix, and the published-shape scenarios.
#include "engine/memory_plan.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "core/error.h"
#include "engine/gguf_inspect.h"
#include "engine/hardware.h"
#include "engine/model_shapes.h"
#include "test_support.h"

using namespace mmserve::engine;
using mmserve::Error;
using mmserve::ErrorCode;

namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

// A llama-like header: 16 layers of 10 MiB, 2048 wide, 32 heads over 8 KV heads of 64.
GgufSummary hand_made() {
  GgufSummary s;
  s.architecture = "llama";
  s.n_layer = 16;
  s.n_embd = 2048;
  s.n_head = 32;
  s.n_head_kv = 8;
  s.n_ff = 8192;
  s.n_vocab = 128256;
  s.n_ctx_train = 131072;
  s.layer_bytes.assign(16, 10 * kMiB);
  s.token_embd_bytes = 100 * kMiB;
  s.output_bytes = 50 * kMiB;
  s.other_bytes = 1 * kMiB;
  s.tensor_bytes = 16 * 10 * kMiB + 151 * kMiB;
  return s;
}

const PlanComponent& component(const MemoryPlan& plan, const std::string& name) {
  for (const auto& c : plan.components) {
    if (c.name == name) return c;
  }
  throw std::runtime_error("no component " + name);
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace

TEST(MemoryPlan, KvPerTokenIsTwoTensorsOfF16PerLayer) {
  PlanInput in{.text = hand_made(), .parallel = 2, .ctx_size = 4096};
  const auto plan = plan_memory(in);
  // 2 (K and V) x n_layer x n_embd_kv (8 x 64) x 2 bytes.
  EXPECT_EQ(plan.kv_bytes_per_token, 2u * 16 * 512 * 2);
  EXPECT_EQ(plan.n_ctx, 4096);
  EXPECT_EQ(component(plan, "kv cache").ram, plan.kv_bytes_per_token * 4096);
  // key_length overrides n_embd / n_head (Mistral Small: 5120 wide, heads of 128).
  auto wide = hand_made();
  wide.head_dim_k = wide.head_dim_v = 128;
  EXPECT_EQ(plan_memory({.text = wide, .ctx_size = 256}).kv_bytes_per_token, 2u * 16 * 8 * 128 * 2);
}

TEST(MemoryPlan, DefaultContextIsParallelTimesTrainingCappedAt4096) {
  EXPECT_EQ(default_context_cells(0, 3, 131072), 3 * 4096);
  EXPECT_EQ(default_context_cells(0, 2, 512), 1024);
  EXPECT_EQ(default_context_cells(0, 1, -1), 4096);
  EXPECT_EQ(default_context_cells(777, 8, 131072), 777);
  EXPECT_EQ(plan_memory({.text = hand_made(), .parallel = 2}).n_ctx, 8192);
}

TEST(MemoryPlan, CpuOnlyTotalsAreTheSumOfComponents) {
  const auto plan = plan_memory({.text = hand_made(), .parallel = 4, .ctx_size = 8192});
  uint64_t ram = 0;
  for (const auto& c : plan.components) ram += c.ram;
  EXPECT_EQ(plan.ram, ram);
  EXPECT_TRUE(plan.gpu.empty());
  EXPECT_EQ(component(plan, "weights").ram, hand_made().tensor_bytes);
  // Host pages a full batch touches: the feed-forward width of 512 tokens and one logits row
  // per sequence; a GPU gets the whole reservation, logits for all 512 (vocab + 2 x embd).
  EXPECT_EQ(component(plan, "compute buffers").ram,
            512u * 4 * (4 * 2048 + 4 * 8192) + 4u * 4 * (128256 + 2 * 2048));
  const auto gpu = plan_memory(
      {.text = hand_made(), .parallel = 4, .ctx_size = 8192, .gpu_free = {uint64_t{80} << 30}});
  EXPECT_EQ(component(gpu, "compute buffers").gpu[0], 512u * 4 * (128256 + 2 * 2048));
  EXPECT_LT(plan.ram_at_load, plan.ram);
  // Without the process baseline, the registry's per-model figure.
  const auto bare = plan_memory(
      {.text = hand_made(), .parallel = 4, .ctx_size = 8192, .process_baseline = false});
  EXPECT_EQ(plan.ram - bare.ram, 40 * kMiB);
}

TEST(MemoryPlan, GpuLayersSplitWeightsAndCacheTheLlamaCppWay) {
  PlanInput in{.text = hand_made(),
               .parallel = 1,
               .ctx_size = 1024,
               .gpu_layers = 5,
               .gpu_free = {uint64_t{80} << 30}};
  const auto plan = plan_memory(in);
  const auto& w = component(plan, "weights");
  // 5 = the output head and the last 4 repeating layers; the embeddings stay on the CPU.
  EXPECT_EQ(plan.gpu_layers, 4);
  EXPECT_EQ(w.gpu[0], 4 * 10 * kMiB + 50 * kMiB);
  EXPECT_EQ(w.ram, 12 * 10 * kMiB + 101 * kMiB);
  const auto& kv = component(plan, "kv cache");
  EXPECT_EQ(kv.gpu[0], plan.kv_bytes_per_token / 16 * 4 * 1024);
  EXPECT_EQ(kv.ram + kv.gpu[0], plan.kv_bytes_per_token * 1024);
  // All layers (-1) on two GPUs, split by their free memory (3:1).
  in.gpu_layers = -1;
  in.gpu_free = {uint64_t{30} << 30, uint64_t{10} << 30};
  const auto two = plan_memory(in);
  const auto& w2 = component(two, "weights");
  EXPECT_EQ(w2.ram, 101 * kMiB);
  // As llama.cpp assigns them: layers 0-12 on the first, 13-15 and the head on the second.
  EXPECT_EQ(w2.gpu[0], 13 * 10 * kMiB);
  EXPECT_EQ(w2.gpu[1], 3 * 10 * kMiB + 50 * kMiB);
  EXPECT_TRUE(two.output_on_gpu);
  // gpu_layers 0 on a GPU machine: everything in RAM.
  in.gpu_layers = 0;
  EXPECT_EQ(component(plan_memory(in), "weights").ram, hand_made().tensor_bytes);
}

TEST(MemoryPlan, ProjectorAndWhisperStatesAreCounted) {
  GgufSummary proj;
  proj.architecture = "clip";
  proj.tensor_bytes = 300 * kMiB;
  proj.projector = {.type = "gemma3",
                    .has_vision = true,
                    .image_size = 448,
                    .patch_size = 14,
                    .n_embd = 768,
                    .n_layer = 12,
                    .n_head = 12,
                    .n_ff = 3072};
  SpeechModelShape whisper{.file_bytes = 487'567'686,
                           .n_audio_ctx = 1500,
                           .n_audio_state = 768,
                           .n_audio_layer = 12,
                           .n_text_ctx = 448,
                           .n_text_state = 768,
                           .n_text_layer = 12};
  PlanInput in{.text = hand_made(), .projector = proj, .speech = whisper, .ctx_size = 1024};
  in.speech_parallel = 1;
  const auto one = plan_memory(in);
  EXPECT_GT(component(one, "projector").ram, proj.tensor_bytes);
  EXPECT_EQ(component(one, "speech weights").ram, 487'567'686u);
  in.speech_parallel = 3;
  const auto three = plan_memory(in);
  // Each state holds its caches and compute buffers: Whisper small logs about 240 MB per state.
  const uint64_t per_state =
      (component(three, "whisper states").ram - component(one, "whisper states").ram) / 2;
  EXPECT_GT(per_state, 220'000'000u);
  EXPECT_LT(per_state, 260'000'000u);
}

TEST(MemoryPlan, SuggestionAlwaysFitsOrSaysNone) {
  PlanInput in{.text = hand_made(), .parallel = 8, .ctx_size = 131072};
  const auto big = plan_memory(in);
  for (const uint64_t budget : {big.ram, big.ram / 2, big.ram / 4, 600 * kMiB, 500 * kMiB}) {
    const auto s = suggest_fitting(in, budget);
    ASSERT_TRUE(s.has_value()) << budget;
    EXPECT_TRUE(plan_fits(s->plan, budget, {})) << budget;
    EXPECT_LE(s->plan.ram, budget);
    EXPECT_GE(s->parallel, 1);
    EXPECT_LE(s->parallel, 8);
    // The plan it returns is the plan of what it suggests.
    PlanInput again = in;
    again.parallel = s->parallel;
    again.ctx_size = s->ctx_size;
    again.batch_size = s->batch_size;
    EXPECT_EQ(plan_memory(again).ram, s->plan.ram);
  }
  EXPECT_EQ(suggest_fitting(in, big.ram)->ctx_size, 131072);  // already fits: unchanged
  // The weights alone (311 MiB) do not fit in 200 MiB: none.
  EXPECT_FALSE(suggest_fitting(in, 200 * kMiB).has_value());
  // With a GPU too small for every layer, fewer layers are offloaded.
  in.gpu_free = {150 * kMiB};
  const auto g = suggest_fitting(in, uint64_t{64} << 30);
  ASSERT_TRUE(g.has_value());
  EXPECT_LT(g->gpu_layers, 17);
  EXPECT_TRUE(plan_fits(g->plan, uint64_t{64} << 30, in.gpu_free));
}

TEST(MemoryPlan, HeaderOnlyPrefixParsesLikeTheFile) {
  const auto path = mmserve::testing::stories_model();
  MMSERVE_REQUIRE_SHARED(path);
  const std::string bytes = read_all(path);
  const auto full = inspect_gguf(path);
  // A too-short prefix says how many bytes it needs, and the count grows until it is enough.
  std::string prefix = bytes.substr(0, 64);
  uint64_t need = gguf_header_bytes_needed(prefix, "stories");
  EXPECT_GT(need, 64u);
  int rounds = 0;
  while (need > 0 && rounds++ < 10000) {
    ASSERT_LE(need, bytes.size());
    prefix = bytes.substr(0, need);
    need = gguf_header_bytes_needed(prefix, "stories");
  }
  EXPECT_EQ(need, 0u);
  EXPECT_LT(prefix.size(), bytes.size() / 4);  // the header only, not the weights
  const auto head = inspect_gguf_header(prefix, bytes.size(), "remote:stories");
  EXPECT_EQ(head.path, "remote:stories");
  EXPECT_EQ(head.n_params, full.n_params);
  EXPECT_EQ(head.tensor_bytes, full.tensor_bytes);
  EXPECT_EQ(head.n_layer, 5);
  EXPECT_EQ(head.n_vocab, 512);
  EXPECT_EQ(head.layer_bytes.size(), 5u);
  uint64_t sum = head.token_embd_bytes + head.output_bytes + head.other_bytes;
  for (const uint64_t b : head.layer_bytes) sum += b;
  EXPECT_EQ(sum, head.tensor_bytes);
  try {
    inspect_gguf_header(prefix.substr(0, prefix.size() - 1), bytes.size(), "remote:stories");
    FAIL() << "a prefix one byte short parsed";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kModelLoad);
    EXPECT_NE(std::string(e.what()).find("needs at least " + std::to_string(prefix.size())),
              std::string::npos)
        << e.what();
  }
  // A real file size smaller than the tensor table says: truncated.
  EXPECT_THROW(inspect_gguf_header(prefix, bytes.size() / 2, "remote:stories"), Error);
  EXPECT_THROW(gguf_header_bytes_needed("not a gguf at all", "x"), Error);
  // A corrupt type in the header is corrupt, not "read more".
  std::string corrupt = prefix;
  corrupt[20] = '\x7f';  // the first key's length jumps to gigabytes
  EXPECT_THROW(gguf_header_bytes_needed(corrupt, "x"), Error);
}

TEST(MemoryPlan, HeaderWithOverflowingDimensionsIsCorrupt) {
  // GGUF v3, one tensor, no metadata: "a", 4 dimensions of 2^40 f32 elements each.
  std::string b = "GGUF";
  auto put = [&b](uint64_t v, int n) {
    for (int i = 0; i < n; ++i) b.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  put(3, 4);
  put(1, 8);
  put(0, 8);
  put(1, 8);
  b += "a";
  put(4, 4);
  for (int d = 0; d < 4; ++d) put(uint64_t{1} << 40, 8);
  put(0, 4);
  put(0, 8);
  try {
    inspect_gguf_header(b, uint64_t{1} << 62, "huge");
    FAIL() << "overflowing dimensions parsed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("corrupt"), std::string::npos) << e.what();
  }
  EXPECT_EQ(gguf_header_bytes_needed(b.substr(0, 30), "huge"), 32u);  // the name's length
  EXPECT_EQ(gguf_header_bytes_needed(b.substr(0, 32), "huge"), 33u);  // the name
}

TEST(MemoryPlan, HardwareParsersReadMeminfoAndCgroupLimits) {
  uint64_t total = 0, available = 0;
  parse_meminfo("MemTotal:       24000000 kB\nMemFree: 1 kB\nMemAvailable:   20000000 kB\n", total,
                available);
  EXPECT_EQ(total, uint64_t{24'000'000} * 1024);
  EXPECT_EQ(available, uint64_t{20'000'000} * 1024);
  EXPECT_EQ(parse_cgroup_limit("max\n", total), 0u);
  EXPECT_EQ(parse_cgroup_limit("9223372036854771712\n", total), 0u);  // v1 unlimited
  EXPECT_EQ(parse_cgroup_limit("4294967296\n", total), uint64_t{4} << 30);
  EXPECT_EQ(parse_cgroup_limit("", total), 0u);
  HardwareInfo hw{.ram_total = total,
                  .ram_available = available,
                  .cgroup_limit = uint64_t{4} << 30,
                  .cgroup_usage = uint64_t{1} << 30};
  EXPECT_EQ(hw.usable_ram(), uint64_t{3} << 30);
  const auto here = detect_hardware();
  EXPECT_GT(here.ram_total, 0u);
  EXPECT_GT(here.cpu_cores, 0);
}

TEST(MemoryPlan, ScenariosComeFromPublishedShapes) {
  const auto magistral = summary_from_shape(published_shapes().front(), "Q8_0");
  // About 23.6B parameters; Q8_0 at 8.5 bits is about 25 GB.
  EXPECT_GT(magistral.n_params, 23'000'000'000u);
  EXPECT_LT(magistral.n_params, 24'500'000'000u);
  EXPECT_NEAR(static_cast<double>(magistral.tensor_bytes) / 1e9, 25.0, 1.0);
  EXPECT_THROW(bits_per_weight("Q3_XYZ"), Error);
  const auto scenarios = sizing_scenarios();
  ASSERT_GE(scenarios.size(), 3u);
  for (const auto& s : scenarios) {
    const auto min = plan_memory(s.minimum);
    const auto rec = plan_memory(s.recommended);
    EXPECT_LT(min.ram, rec.ram) << s.models;
  }
}
