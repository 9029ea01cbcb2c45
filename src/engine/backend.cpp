#include "engine/backend.h"

#include <ggml-backend.h>
#include <ggml.h>
#include <llama.h>
#include <whisper.h>

#include <atomic>
#include <cstdio>
#include <deque>
#include <mutex>

namespace mmserve::engine {
namespace {

std::atomic<bool> g_verbose{false};
std::mutex g_errors_mutex;
std::deque<std::string> g_errors;  // guarded by g_errors_mutex
std::string g_partial;             // a line logged in several calls; guarded by g_errors_mutex

void log_sink(ggml_log_level level, const char* text, void* /*user*/) {
  if (g_verbose.load(std::memory_order_relaxed)) std::fputs(text, stderr);
  if (level != GGML_LOG_LEVEL_ERROR && level != GGML_LOG_LEVEL_WARN &&
      level != GGML_LOG_LEVEL_CONT) {
    return;
  }
  std::lock_guard lock(g_errors_mutex);
  if (level == GGML_LOG_LEVEL_CONT && g_partial.empty()) return;
  g_partial += text;
  if (!g_partial.empty() && g_partial.back() == '\n') {
    g_partial.pop_back();
    g_errors.push_back(std::move(g_partial));
    g_partial.clear();
    if (g_errors.size() > 8) g_errors.pop_front();
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
  std::lock_guard lock(g_errors_mutex);
  std::string out;
  for (const auto& line : g_errors) {
    if (!out.empty()) out += '\n';
    out += line;
  }
  return out;
}

void clear_recent_engine_errors() {
  std::lock_guard lock(g_errors_mutex);
  g_errors.clear();
  g_partial.clear();
}

}  // namespace mmserve::engine
