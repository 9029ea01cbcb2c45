// The engines' error lines are kept per thread: a thread that clears or reads its own never
// touches another's (a load failing on one thread while a decode fails on another).
#include <gtest/gtest.h>
#include <llama.h>

#include <thread>

#include "engine/backend.h"

namespace mmserve::engine {
namespace {

// Logs through the sink the engine installed, as llama.cpp does from inside a call.
void engine_logs(const char* line) {
  ggml_log_callback sink = nullptr;
  void* user = nullptr;
  llama_log_get(&sink, &user);
  ASSERT_NE(sink, nullptr);
  sink(GGML_LOG_LEVEL_ERROR, line, user);
}

TEST(EngineErrors, EachThreadKeepsAndClearsItsOwnLines) {
  ensure_backend_initialized();
  clear_recent_engine_errors();
  engine_logs("failed here\n");
  std::string seen_there;
  std::thread other([&] {
    clear_recent_engine_errors();  // must not erase this thread's line
    engine_logs("failed there\n");
    seen_there = recent_engine_errors();
  });
  other.join();
  EXPECT_EQ(recent_engine_errors(), "failed here");
  EXPECT_EQ(seen_there, "failed there");
  engine_logs("in two ");
  ggml_log_callback sink = nullptr;
  void* user = nullptr;
  llama_log_get(&sink, &user);
  sink(GGML_LOG_LEVEL_CONT, "parts\n", user);
  EXPECT_EQ(recent_engine_errors(), "failed here\nin two parts");
  clear_recent_engine_errors();
  EXPECT_EQ(recent_engine_errors(), "");
}

}  // namespace
}  // namespace mmserve::engine
