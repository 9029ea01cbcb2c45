// The models file of `mmserve serve --models FILE`: several models served at once.
//
// TOML, not YAML: a models file is a short flat list that IT staff edit by hand, and TOML has no
// significant indentation, no implicit typing ("no" becoming false, 1.10 becoming 1.1) and one
// way to write each thing; Debian packages a parser (toml++). The format:
//
//   [[model]]
//   name = "chat"                 # required; what requests put in "model"
//   aliases = ["gpt-4o-mini"]     # optional
//   path = "models/qwen.gguf"     # required; relative paths are relative to the file
//   mmproj = "models/mmproj.gguf" # optional: images too
//   parallel = 4                  # optional: sequences decoded together (text)
//   ctx_size = 8192               # optional: KV cells (text)
//   batch_size = 512              # optional (text)
//   pinned = true                 # optional: never unloaded for room
//   preload = false               # optional: load at its first request, not at startup
//
//   [[model]]
//   name = "whisper"
//   kind = "speech"               # "text" (default), "speech" or "embedding"
//   path = "models/ggml-base.bin"
//   vad = "models/silero.bin"     # optional (speech)
//   parallel = 2                  # optional: whisper states (speech)
//
//   [[model]]
//   name = "embed"
//   kind = "embedding"            # /v1/embeddings and task "embed" (BERT, bge, nomic, ...)
//   path = "models/bge-small.gguf"
//   ctx_size = 512                # optional: most tokens of one input (embedding)
//   batch_size = 2048             # optional: most tokens of one decode (embedding)
//
// The first model of each kind is the default for its tasks. Unknown keys are refused.
#pragma once

#include <string>
#include <vector>

#include "runtime/model_spec.h"

namespace mmserve::runtime {

// Parses and checks a models file: every failure is Error(kInvalidInput) naming the file, the
// line and the key. Paths are resolved but not opened.
// `defaults` holds what an entry does not set (the command line's -np, -c, -b, ...).
std::vector<ModelSpec> parse_models_file(const std::string& path, const ModelSpec& defaults = {});
std::vector<ModelSpec> parse_models_text(const std::string& text, const std::string& origin,
                                         const std::string& base_dir,
                                         const ModelSpec& defaults = {});

// Names and aliases unique, at least one model: Error(kInvalidInput) naming the duplicate.
void check_model_names(const std::vector<ModelSpec>& specs, const std::string& origin);

}  // namespace mmserve::runtime
