// The model registry with real models (stories260K): names and defaults per task, load on first
// use, least-recently-used unloads within the budget, leases across an unload, pinning; and the
// models file parser.
#include "runtime/model_registry.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "runtime/models_file.h"

namespace mmserve::runtime {
namespace {

const std::string kStories = std::string(MMSERVE_SHARED_DIR) + "/models/stories260K.gguf";

ModelSpec text_spec(const std::string& name, bool preload = false) {
  ModelSpec s;
  s.name = name;
  s.path = kStories;
  s.parallel = 1;
  s.ctx_size = 256;
  s.preload = preload;
  s.threads = 1;
  return s;
}

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kStories)) GTEST_SKIP() << "needs " << kStories << " (absent)";
  }

  // A registry whose loads are counted, per model name.
  std::unique_ptr<ModelRegistry> make(std::vector<ModelSpec> specs, RegistryOptions options) {
    return std::make_unique<ModelRegistry>(
        std::move(specs), options, [this](const ModelSpec& spec, const LoadSettings& settings) {
          {
            std::lock_guard lock(loads_mutex_);  // loads of different models run at once
            loads_[spec.name]++;
          }
          return ServedModel::load(spec, settings);
        });
  }

  std::mutex loads_mutex_;
  std::map<std::string, int> loads_;
};

Error error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no error";
  return Error(ErrorCode::kInternal, "none");
}

TEST_F(RegistryTest, NamesAliasesAndDefaultsPerTask) {
  auto a = text_spec("a");
  a.aliases = {"gpt-4o-mini"};
  auto registry = make({a, text_spec("b")}, {});
  EXPECT_EQ(registry->acquire(Task::kTextGen, "")->name(), "a");  // the first text model
  EXPECT_EQ(registry->acquire(Task::kTextGen, "gpt-4o-mini")->name(), "a");
  EXPECT_EQ(registry->acquire(Task::kTextGen, "b")->name(), "b");
  const auto unknown = error_of([&] { registry->acquire(Task::kTextGen, "c"); });
  EXPECT_EQ(unknown.code(), ErrorCode::kNotFound);
  EXPECT_EQ(unknown.field(), "model");
  EXPECT_NE(std::string(unknown.what()).find("a, b"), std::string::npos);
  EXPECT_EQ(error_of([&] { registry->acquire(Task::kSpeechTranscribe, ""); }).code(),
            ErrorCode::kModelUnavailable);
  EXPECT_EQ(error_of([&] { registry->acquire(Task::kImageCaption, "a"); }).field(), "model");
  EXPECT_EQ(loads_["a"], 1);  // loaded once, at its first request
}

TEST_F(RegistryTest, UnknownNamesUseTheDefaultOnSingleModelServers) {
  auto registry = make({text_spec("only")}, {.unknown_names_use_default = true});
  EXPECT_EQ(registry->acquire(Task::kTextGen, "gpt-4o")->name(), "only");
}

TEST_F(RegistryTest, TheLeastRecentlyUsedIdleModelMakesRoom) {
  auto registry = make({text_spec("a"), text_spec("b"), text_spec("c")}, {.max_models = 2});
  registry->acquire(Task::kTextGen, "a");
  registry->acquire(Task::kTextGen, "b");
  registry->acquire(Task::kTextGen, "a");  // b is now the least recently used
  registry->acquire(Task::kTextGen, "c");
  std::vector<std::string> loaded;
  for (const auto& m : registry->loaded()) loaded.push_back(m->name());
  EXPECT_EQ(loaded, (std::vector<std::string>{"a", "c"}));
  registry->acquire(Task::kTextGen, "b");  // back again: a goes
  EXPECT_EQ(loads_["b"], 2);
  EXPECT_EQ(loads_["a"], 1);
}

TEST_F(RegistryTest, ALeaseKeepsItsModelAndItsRoom) {
  auto registry = make({text_spec("a"), text_spec("b")}, {.max_models = 1});
  ModelLease held = registry->acquire(Task::kTextGen, "a");
  // a is in use: b cannot take its room, and nothing was unloaded.
  const auto busy = error_of([&] { registry->acquire(Task::kTextGen, "b"); });
  EXPECT_EQ(busy.code(), ErrorCode::kBusy);
  EXPECT_EQ(registry->loaded().size(), 1u);
  // Unloaded by an admin, a keeps serving its holder, and still counts against the budget.
  const auto unloaded = registry->unload("a");
  EXPECT_TRUE(unloaded.unloaded);
  EXPECT_TRUE(unloaded.in_use);
  EXPECT_EQ(error_of([&] { registry->acquire(Task::kTextGen, "b"); }).code(), ErrorCode::kBusy);
  engine::GenerationRequest request;
  request.prompt = held->text().model().tokenize("Once", true, false);
  request.max_tokens = 8;
  const auto generation =
      held->text().submit(request, scheduler::Generation::Clock::now() + std::chrono::hours(1));
  const auto& outcome = generation->wait();
  EXPECT_FALSE(outcome.error.has_value());
  EXPECT_EQ(outcome.result.completion_tokens, 8);
  held.reset();  // the last lease: a is freed, and b fits
  EXPECT_EQ(registry->acquire(Task::kTextGen, "b")->name(), "b");
  EXPECT_FALSE(registry->unload("a").unloaded);
}

TEST_F(RegistryTest, PinnedModelsStayAndPreloadsDoNotEvictEachOther) {
  auto a = text_spec("a", true);
  a.pinned = true;
  auto registry = make({a, text_spec("b", true)}, {.max_models = 1});
  registry->preload();  // b does not fit beside a: it waits for its first request
  ASSERT_EQ(registry->loaded().size(), 1u);
  EXPECT_EQ(registry->loaded().front()->name(), "a");
  EXPECT_EQ(error_of([&] { registry->acquire(Task::kTextGen, "b"); }).code(), ErrorCode::kBusy);
}

TEST_F(RegistryTest, TheMemoryBudgetCountsEstimates) {
  const int64_t one = estimate_model_bytes(text_spec("a"));
  EXPECT_GT(one, 1'000'000);  // weights plus 256 KV cells
  auto registry = make({text_spec("a"), text_spec("b")}, {.max_memory_bytes = one + one / 2});
  registry->acquire(Task::kTextGen, "a");
  registry->acquire(Task::kTextGen, "b");  // a unloaded for room
  EXPECT_EQ(registry->loaded().size(), 1u);
  auto small = make({text_spec("a")}, {.max_memory_bytes = one / 2});
  EXPECT_EQ(error_of([&] { small->acquire(Task::kTextGen, "a"); }).code(), ErrorCode::kModelLoad);
}

TEST_F(RegistryTest, AFailedLoadIsReportedAndRetried) {
  auto broken = text_spec("broken");
  broken.path = "/nonexistent/model.gguf";
  auto registry = make({broken}, {});
  EXPECT_EQ(error_of([&] { registry->acquire(Task::kTextGen, ""); }).code(), ErrorCode::kNotFound);
  EXPECT_EQ(error_of([&] { registry->acquire(Task::kTextGen, ""); }).code(), ErrorCode::kNotFound);
  EXPECT_FALSE(registry->list().front().last_error.empty());
}

TEST_F(RegistryTest, ConcurrentRequestsAcrossModelsWithinTheBudget) {
  auto registry = make({text_spec("a"), text_spec("b"), text_spec("c")}, {.max_models = 2});
  std::atomic<int> served{0}, busy{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 12; ++i) {
        const std::string name(1, static_cast<char>('a' + (t + i) % 3));
        try {
          const auto lease = registry->acquire(Task::kTextGen, name);
          EXPECT_EQ(lease->name(), name);
          engine::GenerationRequest request;
          request.prompt = lease->text().model().tokenize("Once", true, false);
          request.max_tokens = 4;
          const auto generation = lease->text().submit(
              request, scheduler::Generation::Clock::now() + std::chrono::hours(1));
          EXPECT_FALSE(generation->wait().error.has_value());
          served++;
        } catch (const Error& e) {
          EXPECT_EQ(e.code(), ErrorCode::kBusy) << e.what();  // both slots held by others
          busy++;
        }
        EXPECT_LE(registry->loaded().size(), 2u);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(served + busy, 48);
  EXPECT_GT(served, 0);
}

TEST_F(RegistryTest, ModelsRegisterAndUnregisterWhileServing) {
  auto registry = make({text_spec("a", /*preload=*/true)}, {.max_models = 2});
  registry->preload();
  auto b = text_spec("b");
  b.aliases = {"candidate"};
  const auto status = registry->register_model(b, /*load=*/true);
  EXPECT_TRUE(status.model != nullptr);
  EXPECT_EQ(registry->acquire(Task::kTextGen, "candidate")->name(), "b");
  ASSERT_EQ(registry->specs().size(), 2u);
  // A name or alias already answering is refused, naming the field.
  auto clash = text_spec("c");
  clash.aliases = {"candidate"};
  EXPECT_EQ(error_of([&] { registry->register_model(clash, false); }).field(), "name");
  // A registration whose load fails is taken back: the name is free again.
  auto broken = text_spec("d");
  broken.path = "/nonexistent/model.gguf";
  error_of([&] { registry->register_model(broken, true); });
  EXPECT_EQ(registry->specs().size(), 2u);
  EXPECT_EQ(error_of([&] { registry->acquire(Task::kTextGen, "d"); }).code(), ErrorCode::kNotFound);
  EXPECT_TRUE(registry->register_model(text_spec("d"), /*load=*/false).model == nullptr);
  // Unregistering keeps a held lease serving and frees the name and its room.
  const auto held = registry->acquire(Task::kTextGen, "b");
  const auto gone = registry->unregister_model("candidate");
  EXPECT_TRUE(gone.unloaded && gone.in_use);
  EXPECT_EQ(error_of([&] { registry->acquire(Task::kTextGen, "b"); }).code(), ErrorCode::kNotFound);
  EXPECT_EQ(error_of([&] { registry->unregister_model("b"); }).code(), ErrorCode::kNotFound);
  EXPECT_EQ(held->name(), "b");
  EXPECT_EQ(registry->specs().size(), 2u);  // a and d
  EXPECT_TRUE(registry->register_model(text_spec("b"), /*load=*/false).model == nullptr);
}

TEST(ModelsFile, ReadsEveryKeyAndResolvesPathsBesideTheFile) {
  const auto specs = parse_models_text(R"(
[[model]]
name = "chat"
aliases = ["gpt-4o-mini", "default"]
path = "models/chat.gguf"
mmproj = "/abs/mmproj.gguf"
parallel = 2
ctx_size = 8192
batch_size = 256
gpu_layers = 0
pinned = true
preload = false

[[model]]
name = "ears"
kind = "speech"
path = "whisper.bin"
vad = "vad.bin"
parallel = 3
threads = 2
)",
                                       "models.toml", "/etc/mmserve", {.parallel = 7});
  ASSERT_EQ(specs.size(), 2u);
  EXPECT_EQ(specs[0].path, "/etc/mmserve/models/chat.gguf");
  EXPECT_EQ(specs[0].mmproj_path, "/abs/mmproj.gguf");
  EXPECT_EQ(specs[0].aliases, (std::vector<std::string>{"gpt-4o-mini", "default"}));
  EXPECT_EQ(specs[0].parallel, 2);
  EXPECT_EQ(specs[0].ctx_size, 8192);
  EXPECT_EQ(specs[0].batch_size, 256);
  EXPECT_EQ(specs[0].gpu_layers, 0);
  EXPECT_EQ(specs[1].gpu_layers, -1);  // speech models have no such key; the default stands
  EXPECT_TRUE(specs[0].pinned);
  EXPECT_TRUE(specs[0].preload);  // pinned models load at startup
  EXPECT_TRUE(specs[0].serves(Task::kImageCaption));
  EXPECT_EQ(specs[1].kind, ModelKind::kSpeech);
  EXPECT_EQ(specs[1].speech_parallel, 3);
  EXPECT_EQ(specs[1].threads, 2);
  EXPECT_TRUE(specs[1].serves(Task::kSpeechTranscribe));
  EXPECT_FALSE(specs[1].serves(Task::kTextGen));
}

TEST(ModelsFile, RefusesWhatItDoesNotKnowNamingLineAndKey) {
  struct Case {
    const char* text;
    const char* field;
    const char* needle;
  };
  const Case cases[] = {
      {"", "model", "no [[model]] tables"},
      {"title = 1\n", "title", "unknown key 'title'"},
      {"[[model]]\npath = \"a\"\n", "name", "'name' is required"},
      {"[[model]]\nname = \"a\"\npath = \"a\"\nvad = \"v\"\n", "vad", "models.toml:4"},
      {"[[model]]\nname = \"a\"\nkind = \"speech\"\npath = \"a\"\nmmproj = \"m\"\n", "mmproj",
       "unknown key 'mmproj' for a speech model"},
      {"[[model]]\nname = \"a\"\npath = \"a\"\nparallel = \"4\"\n", "parallel", "integer"},
      {"[[model]]\nname = \"a\"\npath = \"a\"\npinned = 1\n", "pinned", "true or false"},
      {"[[model]]\nname = \"a\"\npath = \"a\"\naliases = \"b\"\n", "aliases", "array"},
      {"[[model]]\nname = \"a\"\npath = \"a\"\naliases = [\"a\"]\n", "name", "used twice"},
      {"[[model]]\nname = \"\"\npath = \"a\"\n", "name", "non-empty"},
      {"model = 3\n", "model", "list of tables"},
      {"[[model]\n", "models", "models.toml:1"},
  };
  for (const auto& c : cases) {
    try {
      parse_models_text(c.text, "models.toml", "");
      ADD_FAILURE() << "accepted: " << c.text;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidInput) << c.text;
      EXPECT_EQ(e.field(), c.field) << c.text << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(c.needle), std::string::npos) << e.what();
    }
  }
}

TEST(ByteSize, ReadsUnitsAndRefusesTheRest) {
  EXPECT_EQ(parse_byte_size("1048576", "--max-memory"), 1048576);
  EXPECT_EQ(parse_byte_size("512M", "--max-memory"), 512LL << 20);
  EXPECT_EQ(parse_byte_size("8G", "--max-memory"), 8LL << 30);
  EXPECT_EQ(parse_byte_size("1.5GiB", "--max-memory"), 3LL << 29);
  for (const char* bad : {"", "G", "-1G", "8X", "0", "nan", "1e300", "8 G"}) {
    EXPECT_THROW(parse_byte_size(bad, "--max-memory"), Error) << bad;
  }
}

}  // namespace
}  // namespace mmserve::runtime
