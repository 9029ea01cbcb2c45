#include "executors/cloud/upstream_request.h"

#include <cmath>

namespace mmserve::executors {
namespace {

constexpr uint32_t kRandomSeed = 0xFFFFFFFF;  // engine/sampling.h: a random seed per request

// The engine keeps sampling values as float: 0.8f would go out as 0.800000011920929.
double decimal(float value) {
  return std::round(static_cast<double>(value) * 1e6) / 1e6;
}

nlohmann::json message(const std::string& role, const std::string& content) {
  return {{"role", role}, {"content", content}};
}

nlohmann::json upstream_messages(const pipeline::TextInput& text) {
  auto messages = nlohmann::json::array();
  switch (text.style) {
    case pipeline::PromptStyle::kChat:
      for (const auto& m : text.messages) {
        std::string content;
        for (const auto& part : m.parts) {
          if (!part.is_image) {
            content += part.value;
          }
        }
        messages.push_back(message(m.role, content));
      }
      break;
    case pipeline::PromptStyle::kInstruct:
      if (text.system) {
        messages.push_back(message("system", *text.system));
      }
      messages.push_back(message("user", text.prompt));
      break;
    case pipeline::PromptStyle::kRaw: messages.push_back(message("user", text.prompt)); break;
  }
  return messages;
}

}  // namespace

std::string upstream_model(const pipeline::Call& call, const CloudOptions& options) {
  if (const auto it = options.model_map.find(call.model); it != options.model_map.end()) {
    return it->second;
  }
  return options.default_model.empty() ? call.model : options.default_model;
}

nlohmann::json upstream_body(const pipeline::Call& call, const std::string& model) {
  const auto& g = call.generation;
  nlohmann::json body = {
      {"model", model},
      {"messages", upstream_messages(call.text)},
      {"stream", true},
      {"stream_options", {{"include_usage", true}}},
      {"temperature", decimal(g.sampling.temperature)},
      {"top_p", decimal(g.sampling.top_p)},
  };
  if (g.max_tokens > 0) {
    body["max_tokens"] = g.max_tokens;
  } else if (call.text.default_max_tokens) {
    body["max_tokens"] = *call.text.default_max_tokens;
  }
  if (g.sampling.seed != kRandomSeed) {
    body["seed"] = g.sampling.seed;
  }
  if (!g.stop.empty()) {
    body["stop"] = g.stop;
  }
  return body;
}

}  // namespace mmserve::executors
