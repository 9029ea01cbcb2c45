// Process-wide setup of ggml/llama.cpp: backend initialisation and log routing.
//
// llama.cpp logs to stderr by default; a CLI user should see one clear line instead. The log
// sink keeps the last error-level lines of each thread, so a failed load or decode can explain
// itself without reading or clearing another thread's lines, and forwards everything to stderr
// only when verbose logging is on. Thread-safe. (A line logged by one of ggml's worker threads
// stays with that thread; the engines log their failures from the calling thread.)
#pragma once

#include <cstdint>
#include <string>

namespace mmserve::engine {

// Initialises llama.cpp's backends once; safe to call from any thread, any number of times.
void ensure_backend_initialized();

// When true, llama.cpp/ggml/whisper log lines go to stderr. Default: false.
void set_verbose_engine_logs(bool verbose);

// The most recent error/warning lines the engines logged on this thread (newline-separated,
// may be empty), and forgetting them.
std::string recent_engine_errors();
void clear_recent_engine_errors();

// How many tensors llama.cpp placed by a buffer-type override (its load logs each one) on
// this thread so far: the evidence that --cpu-moe took effect, counted across a load.
int64_t tensor_overrides_logged();

}  // namespace mmserve::engine
