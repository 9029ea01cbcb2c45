#include "engine/backend.h"

#include <ggml-backend.h>
#include <ggml.h>
#include <llama.h>
#include <whisper.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>

namespace mmserve::engine {
namespace {

std::atomic<bool> g_verbose{false};

// Per thread: the engines log on the thread that called them (a load, a decode, a whisper
// window), so each caller reads and clears only its own lines, never another thread's.
struct EngineErrors {
  std::deque<std::string> lines;
  std::string partial;  // a line logged in several calls
};
thread_local EngineErrors t_errors;
thread_local int64_t t_tensor_overrides = 0;

void log_sink(ggml_log_level level, const char* text, void* /*user*/) {
  if (g_verbose.load(std::memory_order_relaxed)) std::fputs(text, stderr);
  if (level == GGML_LOG_LEVEL_DEBUG && std::strstr(text, "buffer type overridden to") != nullptr) {
    ++t_tensor_overrides;
  }
  if (level != GGML_LOG_LEVEL_ERROR && level != GGML_LOG_LEVEL_WARN &&
      level != GGML_LOG_LEVEL_CONT) {
    return;
  }
  auto& e = t_errors;
  if (level == GGML_LOG_LEVEL_CONT && e.partial.empty()) return;
  e.partial += text;
  if (!e.partial.empty() && e.partial.back() == '\n') {
    e.partial.pop_back();
    e.lines.push_back(std::move(e.partial));
    e.partial.clear();
    if (e.lines.size() > 8) e.lines.pop_front();
  }
}

}  // namespace

void ensure_backend_initialized() {
  static std::once_flag once;
  std::call_once(once, [] {
    llama_log_set(log_sink, nullptr);
    whisper_log_set(log_sink, nullptr);  // whisper.cpp logs to stderr by default too
    // Portable builds ship backends as loadable modules; native builds link them in.
    if (ggml_backend_reg_count() == 0) ggml_backend_load_all();
    llama_backend_init();
  });
}

void set_verbose_engine_logs(bool verbose) {
  g_verbose.store(verbose);
}

std::string recent_engine_errors() {
  std::string out;
  for (const auto& line : t_errors.lines) {
    if (!out.empty()) out += '\n';
    out += line;
  }
  return out;
}

int64_t tensor_overrides_logged() {
  return t_tensor_overrides;
}

void clear_recent_engine_errors() {
  t_errors.lines.clear();
  t_errors.partial.clear();
}

}  // namespace mmserve::engine
