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

}  // namespace mmserve
