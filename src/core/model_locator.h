// Where a model comes from when the user does not name one. Order: the explicit path (flag),
// then $MMSERVE_MODEL, then the first *.gguf (by name) in the model directory
// ($MMSERVE_MODELS_DIR, else $XDG_DATA_HOME/mmserve/models, else ~/.local/share/mmserve/models).
// Stateless; reads the environment on each call.
#pragma once

#include <string>

namespace mmserve {

std::string default_models_dir();

// Returns the model path to use. Throws Error(kNotFound, field "model") saying where it looked
// and how to provide one when nothing is found.
std::string locate_text_model(const std::string& explicit_path);

// True when locate_text_model("") would answer from the model directory (no $MMSERVE_MODEL).
bool text_model_from_models_dir();

// The companions `mmserve pull` puts beside a model in the model directory, for callers that
// found the text model there: the first mmproj*.gguf by name (a projector), or the first
// ggml-*.bin by name that is not a Silero VAD (a whisper.cpp model). "" when there is none.
std::string find_projector_in_models_dir();
std::string find_whisper_in_models_dir();

}  // namespace mmserve
