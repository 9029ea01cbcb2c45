// Process-wide setup of ggml/llama.cpp: backend initialisation and log routing.
//
// llama.cpp logs to stderr by default; a CLI user should see one clear line instead. The log
// sink keeps the last error-level lines so a failed load can explain itself, and forwards
// everything to stderr only when verbose logging is on. Thread-safe.
#pragma once

#include <string>

namespace mmserve::engine {

// Initialises llama.cpp's backends once; safe to call from any thread, any number of times.
void ensure_backend_initialized();

// When true, llama.cpp/ggml/whisper log lines go to stderr. Default: false.
void set_verbose_engine_logs(bool verbose);

// The most recent error/warning lines logged by the engines (newline-separated, may be empty).
std::string recent_engine_errors();
void clear_recent_engine_errors();

}  // namespace mmserve::engine
