#include "core/model_locator.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace fs = std::filesystem;

namespace {

class ModelLocator : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("mmserve-models-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    ::unsetenv("MMSERVE_MODEL");
    ::setenv("MMSERVE_MODELS_DIR", dir_.c_str(), 1);
  }
  void TearDown() override {
    ::unsetenv("MMSERVE_MODELS_DIR");
    fs::remove_all(dir_);
  }
  fs::path dir_;
};

}  // namespace

TEST_F(ModelLocator, ExplicitPathWins) {
  ::setenv("MMSERVE_MODEL", "/env/model.gguf", 1);
  EXPECT_EQ(mmserve::locate_text_model("/flag/model.gguf"), "/flag/model.gguf");
  ::unsetenv("MMSERVE_MODEL");
}

TEST_F(ModelLocator, EnvironmentBeforeDirectory) {
  std::ofstream(dir_ / "a.gguf") << "x";
  ::setenv("MMSERVE_MODEL", "/env/model.gguf", 1);
  EXPECT_EQ(mmserve::locate_text_model(""), "/env/model.gguf");
  ::unsetenv("MMSERVE_MODEL");
}

TEST_F(ModelLocator, FirstGgufInTheDirectorySkippingProjectors) {
  std::ofstream(dir_ / "b.gguf") << "x";
  std::ofstream(dir_ / "a-mmproj.gguf") << "x";
  std::ofstream(dir_ / "c.bin") << "x";
  EXPECT_EQ(mmserve::locate_text_model(""), (dir_ / "b.gguf").string());
}

TEST_F(ModelLocator, NothingFoundSaysWhereItLooked) {
  try {
    mmserve::locate_text_model("");
    FAIL();
  } catch (const mmserve::Error& e) {
    EXPECT_EQ(e.code(), mmserve::ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find(dir_.string()), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("MMSERVE_MODEL"), std::string::npos);
  }
}

// The companions `mmserve pull` leaves beside a model (the SDK's local mode looks for them when
// it found the text model in the directory).
TEST_F(ModelLocator, FindsTheProjectorAndTheWhisperModelBesideTheModel) {
  EXPECT_EQ(mmserve::find_projector_in_models_dir(), "");
  EXPECT_EQ(mmserve::find_whisper_in_models_dir(), "");
  std::ofstream(dir_ / "model.gguf") << "x";
  std::ofstream(dir_ / "mmproj-b.gguf") << "x";
  std::ofstream(dir_ / "mmproj-a.gguf") << "x";
  std::ofstream(dir_ / "ggml-silero-v6.2.0.bin") << "x";  // a VAD, not a speech model
  std::ofstream(dir_ / "ggml-base.en.bin") << "x";
  std::ofstream(dir_ / "ggml-tiny.bin") << "x";
  fs::create_directories(dir_ / "ggml-dir.bin");  // not a file
  EXPECT_EQ(mmserve::find_projector_in_models_dir(), (dir_ / "mmproj-a.gguf").string());
  EXPECT_EQ(mmserve::find_whisper_in_models_dir(), (dir_ / "ggml-base.en.bin").string());
  EXPECT_EQ(mmserve::locate_text_model(""), (dir_ / "model.gguf").string());
}

TEST_F(ModelLocator, TheModelComesFromTheDirectoryUnlessTheEnvironmentNamesOne) {
  EXPECT_TRUE(mmserve::text_model_from_models_dir());
  ::setenv("MMSERVE_MODEL", "/env/model.gguf", 1);
  EXPECT_FALSE(mmserve::text_model_from_models_dir());
  ::unsetenv("MMSERVE_MODEL");
}
