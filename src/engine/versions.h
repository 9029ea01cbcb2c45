// Version strings of mmserve and of the engines it is linked with (read at run time, so they
// describe the libraries actually loaded). Thread-safe.
#pragma once

#include <string>

namespace mmserve {

const char* version();
std::string llama_cpp_version();
std::string whisper_cpp_version();
std::string ggml_version_string();
// The ggml backends available in this process, e.g. "CPU" or "CUDA,CPU".
std::string backend_names();

}  // namespace mmserve
