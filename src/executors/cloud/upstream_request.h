// What the cloud executor sends upstream for a call: the OpenAI chat-completions body built
// from a pipeline::Call, and the upstream model it names. Pure functions, thread-safe; they
// only read the call (a fallback to the local executor needs call.generation intact).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "executors/cloud/cloud_options.h"
#include "pipeline/call.h"

namespace mmserve::executors {

// The upstream model of `call`: options.model_map[call.model], else options.default_model,
// else call.model; "" when all three are empty (the call cannot be sent).
std::string upstream_model(const pipeline::Call& call, const CloudOptions& options);

// The streamed chat-completions request for `call` to `model`:
//   messages: kChat: one per Message, its text parts concatenated as content; kInstruct: the
//     system message when given, then the prompt as the user's; kRaw: the prompt as the user's.
//   "stream": true, "stream_options": {"include_usage": true}; max_tokens (call.generation's,
//   else call.text.default_max_tokens, else omitted: the endpoint's default), temperature,
//   top_p, seed (omitted when random: 0xFFFFFFFF), stop (when any).
// Image parts are not sent (the executor never sends a call that has any).
nlohmann::json upstream_body(const pipeline::Call& call, const std::string& model);

}  // namespace mmserve::executors
