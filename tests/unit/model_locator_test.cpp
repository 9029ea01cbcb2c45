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
