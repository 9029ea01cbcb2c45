// Helpers shared by the unit tests: where ../shared is, and skipping when it is absent.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace mmserve::testing {

inline std::string shared_path(const std::string& relative) {
  const char* env = std::getenv("MMSERVE_SHARED_DIR");
  return std::string(env != nullptr ? env : MMSERVE_SHARED_DIR) + "/" + relative;
}

inline std::string stories_model() {
  return shared_path("models/stories260K.gguf");
}

// The continuation quoted in ../shared/README.md for greedy decoding of "Once upon a time".
inline constexpr const char* kStoriesGolden =
    ", there was a little girl named Lily. She loved to play outside in the park. One day, she "
    "saw a big, red ball.";

// A fresh directory under the test's temporary directory, removed with everything in it when
// destroyed.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& prefix = "mmserve") {
    std::string pattern =
        (std::filesystem::path(::testing::TempDir()) / (prefix + "-XXXXXX")).string();
    if (::mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  bool ok() const { return !path_.empty(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace mmserve::testing

#define MMSERVE_REQUIRE_SHARED(path)                                                       \
  do {                                                                                     \
    if (!std::filesystem::exists(path)) GTEST_SKIP() << "needs " << (path) << " (absent)"; \
  } while (0)
