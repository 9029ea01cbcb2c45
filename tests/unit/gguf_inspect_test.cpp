#include "engine/gguf_inspect.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "engine/text_model.h"
#include "test_support.h"

using mmserve::Error;
using mmserve::ErrorCode;
using mmserve::engine::inspect_gguf;
using mmserve::engine::TextModel;
namespace fs = std::filesystem;

namespace {

class GgufInspect : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("mmserve-gguf-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& bytes) {
    const auto path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  // Expects both the inspector and the full loader to fail with `code` and a message naming
  // the file and containing `needle`.
  static void expect_load_error(const std::string& path, ErrorCode code,
                                const std::string& needle) {
    for (int loader = 0; loader < 2; ++loader) {
      try {
        if (loader == 0) {
          inspect_gguf(path);
        } else {
          TextModel::load(path);
        }
        FAIL() << "expected an error for " << path;
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), code) << e.what();
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
        EXPECT_EQ(e.field(), "model");
      }
    }
  }

  fs::path dir_;
};

}  // namespace

TEST_F(GgufInspect, Stories260KFacts) {
  const auto path = mmserve::testing::stories_model();
  MMSERVE_REQUIRE_SHARED(path);
  const auto s = inspect_gguf(path);
  EXPECT_EQ(s.architecture, "llama");
  EXPECT_EQ(s.n_layer, 5);
  EXPECT_EQ(s.n_head, 8);
  EXPECT_EQ(s.n_head_kv, 4);
  EXPECT_EQ(s.n_vocab, 512);
  EXPECT_EQ(s.n_ctx_train, 512);
  EXPECT_EQ(s.n_embd, 64);
  EXPECT_EQ(s.file_type, "F32");
  ASSERT_EQ(s.tensor_types.size(), 1u);
  EXPECT_EQ(s.tensor_types[0].type, "f32");
  EXPECT_FALSE(s.is_moe());
  // 260K parameters, four bytes each.
  EXPECT_GT(s.n_params, 250'000u);
  EXPECT_LT(s.n_params, 300'000u);
  EXPECT_EQ(s.tensor_bytes, s.n_params * 4);
}

TEST_F(GgufInspect, MissingFileIsNotFound) {
  const auto path = (dir_ / "nope.gguf").string();
  try {
    inspect_gguf(path);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("not found"), std::string::npos);
  }
}

TEST_F(GgufInspect, DirectoryIsRejected) {
  expect_load_error(dir_.string(), ErrorCode::kModelLoad, "directory");
}

TEST_F(GgufInspect, EmptyFileIsTooShort) {
  expect_load_error(write("empty.gguf", ""), ErrorCode::kModelLoad, "too short");
}

TEST_F(GgufInspect, NonGgufIsRejectedByMagic) {
  expect_load_error(write("text.gguf", "this is not a model at all"), ErrorCode::kModelLoad,
                    "not a GGUF file");
}

TEST_F(GgufInspect, CorruptHeaderIsRejected) {
  expect_load_error(write("corrupt.gguf", std::string("GGUF\x03\0\0\0", 8) + "\xff\xff\xff"),
                    ErrorCode::kModelLoad, "corrupt or truncated GGUF header");
}

TEST_F(GgufInspect, TruncatedFileIsRejected) {
  const auto source = mmserve::testing::stories_model();
  MMSERVE_REQUIRE_SHARED(source);
  std::ifstream in(source, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  expect_load_error(write("truncated.gguf", bytes.substr(0, bytes.size() / 2)),
                    ErrorCode::kModelLoad, "truncated");
}

TEST_F(GgufInspect, UnreadableFileIsRejected) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads any file";
  const auto path = write("locked.gguf", "GGUF");
  fs::permissions(path, fs::perms::none);
  expect_load_error(path, ErrorCode::kModelLoad, "not readable");
}
