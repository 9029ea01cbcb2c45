#include "engine/versions.h"

#include <ggml-backend.h>
#include <ggml.h>
#include <llama.h>
#include <whisper.h>

#include "engine/backend.h"

#ifndef MMSERVE_VERSION
#define MMSERVE_VERSION "0.0.0-dev"
#endif

namespace mmserve {

const char* version() {
  return MMSERVE_VERSION;
}
std::string llama_cpp_version() {
  return llama_version();
}
std::string whisper_cpp_version() {
  return whisper_version();
}
std::string ggml_version_string() {
  return ggml_version();
}

std::string backend_names() {
  engine::ensure_backend_initialized();
  std::string out;
  for (size_t i = 0; i < ggml_backend_reg_count(); ++i) {
    if (!out.empty()) out += ',';
    out += ggml_backend_reg_name(ggml_backend_reg_get(i));
  }
  return out;
}

}  // namespace mmserve
