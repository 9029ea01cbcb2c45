#include "engine/finetune_data.h"

#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <utility>

#include "core/error.h"
#include "core/utf8.h"

namespace mmserve::engine {
namespace {

using nlohmann::json;

struct LineError {
  const std::string& source;
  size_t line;
  [[noreturn]] void fail(const std::string& why) const {
    throw Error(ErrorCode::kInvalidInput, source + " line " + std::to_string(line) + ": " + why,
                "data");
  }
};

bool blank(const std::string& line) {
  return line.find_first_not_of(" \t\r\n") == std::string::npos;
}

// A JSON object on one line, or nullopt when the line is not one (plain text).
std::optional<json> try_object(const std::string& line) {
  json value = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded() || !value.is_object()) return std::nullopt;
  return value;
}

json parse_object(const std::string& line, const LineError& at) {
  json value;
  try {
    value = json::parse(line);
  } catch (const json::exception& e) {
    std::string why = e.what();
    if (const auto colon = why.rfind("] "); colon != std::string::npos) why = why.substr(colon + 2);
    at.fail("not valid JSON (" + why + ")");
  }
  if (!value.is_object()) at.fail("expected a JSON object");
  return value;
}

std::string string_field(const json& object, const char* key, const LineError& at, bool required) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) {
    if (required) at.fail(std::string("missing \"") + key + "\"");
    return {};
  }
  if (!it->is_string()) at.fail(std::string("\"") + key + "\" must be a string");
  return it->get<std::string>();
}

// OpenAI content: a string, or an array of text parts.
std::string content_text(const json& message, const LineError& at, size_t index) {
  const auto it = message.find("content");
  const std::string where = "messages[" + std::to_string(index) + "].content";
  if (it == message.end() || it->is_null()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (!it->is_array()) at.fail(where + " must be a string or an array of text parts");
  std::string text;
  for (const auto& part : *it) {
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
        !part["text"].is_string()) {
      at.fail(where + ": only {\"type\": \"text\", \"text\": ...} parts can be trained on");
    }
    text += part["text"].get<std::string>();
  }
  return text;
}

bool known_role(const std::string& role) {
  return role == "system" || role == "developer" || role == "user" || role == "assistant" ||
         role == "tool";
}

void read_openai(const json& object, const LineError& at, FinetuneData& data) {
  const auto it = object.find("messages");
  if (it == object.end() || !it->is_array()) at.fail("missing \"messages\" array");
  if (it->empty()) at.fail("\"messages\" is empty");
  FinetuneExample example;
  example.line = at.line;
  size_t last_trained = 0;  // one past the last trained assistant turn
  bool any_assistant = false;
  size_t dropped = 0;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& message = (*it)[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!message.is_object()) at.fail(where + " must be an object");
    const auto role_it = message.find("role");
    if (role_it == message.end() || !role_it->is_string()) at.fail(where + ".role is missing");
    const std::string role = role_it->get<std::string>();
    if (!known_role(role)) at.fail(where + ".role \"" + role + "\" is not a chat role");
    bool trained = true;
    if (const auto w = message.find("weight"); w != message.end()) {
      if (role != "assistant") at.fail(where + ".weight is only allowed on assistant turns");
      if (!w->is_number_integer() || (w->get<int64_t>() != 0 && w->get<int64_t>() != 1))
        at.fail(where + ".weight must be 0 or 1");
      trained = w->get<int64_t>() == 1;
    }
    const std::string content = content_text(message, at, i);
    if (role == "assistant") {
      any_assistant = true;
      if (!trained) {
        ++dropped;
        continue;
      }
    }
    example.messages.push_back({role == "developer" ? "system" : role, content});
    if (role == "assistant") last_trained = example.messages.size();
  }
  if (!any_assistant) at.fail("no assistant message to train on");
  dropped += example.messages.size() - last_trained;
  example.messages.resize(last_trained);
  data.dropped_turns += dropped;
  if (example.messages.empty()) {
    ++data.skipped_examples;
    return;
  }
  data.examples.push_back(std::move(example));
}

void read_sharegpt(const json& object, const LineError& at, FinetuneData& data) {
  const auto it = object.find("conversations");
  if (it == object.end() || !it->is_array()) at.fail("missing \"conversations\" array");
  if (it->empty()) at.fail("\"conversations\" is empty");
  FinetuneExample example;
  example.line = at.line;
  bool any_assistant = false;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& turn = (*it)[i];
    const std::string where = "conversations[" + std::to_string(i) + "]";
    if (!turn.is_object()) at.fail(where + " must be an object");
    const auto from_it = turn.find("from");
    const auto value_it = turn.find("value");
    if (from_it == turn.end() || !from_it->is_string()) at.fail(where + ".from is missing");
    if (value_it == turn.end() || !value_it->is_string())
      at.fail(where + ".value must be a string");
    const std::string from = from_it->get<std::string>();
    std::string role;
    if (from == "human" || from == "user")
      role = "user";
    else if (from == "gpt" || from == "assistant" || from == "model" || from == "function_call")
      role = "assistant";
    else if (from == "system")
      role = "system";
    else if (from == "tool" || from == "observation" || from == "function_response")
      role = "tool";
    else
      at.fail(where + ".from \"" + from + "\" is not a ShareGPT speaker");
    any_assistant = any_assistant || role == "assistant";
    example.messages.push_back({role, value_it->get<std::string>()});
  }
  if (!any_assistant) at.fail("no \"gpt\" turn to train on");
  data.examples.push_back(std::move(example));
}

void read_alpaca(const json& object, const LineError& at, FinetuneData& data) {
  const std::string instruction = string_field(object, "instruction", at, true);
  const std::string input = string_field(object, "input", at, false);
  const std::string output = string_field(object, "output", at, true);
  const std::string system = string_field(object, "system", at, false);
  FinetuneExample example;
  example.line = at.line;
  if (!system.empty()) example.messages.push_back({"system", system});
  // LLaMA-Factory's "history": earlier [instruction, answer] pairs.
  if (const auto h = object.find("history"); h != object.end() && !h->is_null()) {
    if (!h->is_array()) at.fail("\"history\" must be an array of [instruction, answer] pairs");
    for (size_t i = 0; i < h->size(); ++i) {
      const json& pair = (*h)[i];
      if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() || !pair[1].is_string())
        at.fail("history[" + std::to_string(i) + "] must be a pair of strings");
      example.messages.push_back({"user", pair[0].get<std::string>()});
      if (!pair[1].get<std::string>().empty())
        example.messages.push_back({"assistant", pair[1].get<std::string>()});
    }
  }
  example.messages.push_back({"user", input.empty() ? instruction : instruction + "\n\n" + input});
  example.messages.push_back({"assistant", output});
  data.examples.push_back(std::move(example));
}

void read_text_line(const json& object, const LineError& at, FinetuneData& data) {
  FinetuneExample example;
  example.line = at.line;
  example.text = string_field(object, "text", at, true);
  if (!example.text.empty()) data.examples.push_back(std::move(example));
}

FinetuneFormat detect(const json& object) {
  if (object.contains("messages")) return FinetuneFormat::kOpenAI;
  if (object.contains("conversations")) return FinetuneFormat::kShareGPT;
  if (object.contains("instruction")) return FinetuneFormat::kAlpaca;
  if (object.contains("text")) return FinetuneFormat::kText;
  return FinetuneFormat::kAuto;
}

}  // namespace

FinetuneFormat parse_finetune_format(const std::string& name) {
  if (name == "auto" || name.empty()) return FinetuneFormat::kAuto;
  if (name == "openai") return FinetuneFormat::kOpenAI;
  if (name == "sharegpt") return FinetuneFormat::kShareGPT;
  if (name == "alpaca") return FinetuneFormat::kAlpaca;
  if (name == "text") return FinetuneFormat::kText;
  throw Error(ErrorCode::kInvalidInput,
              "unknown data format '" + name + "' (openai, sharegpt, alpaca, text)", "format");
}

const char* finetune_format_name(FinetuneFormat format) {
  switch (format) {
    case FinetuneFormat::kAuto: return "auto";
    case FinetuneFormat::kOpenAI: return "openai";
    case FinetuneFormat::kShareGPT: return "sharegpt";
    case FinetuneFormat::kAlpaca: return "alpaca";
    case FinetuneFormat::kText: return "text";
  }
  return "auto";
}

FinetuneData read_finetune_data(std::istream& in, FinetuneFormat format,
                                const std::string& source) {
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  FinetuneData data;
  // The first non-blank line decides plain text against JSON lines.
  std::istringstream probe(all);
  std::string line;
  size_t first_line = 0;
  std::optional<json> first;
  for (size_t n = 1; std::getline(probe, line); ++n) {
    if (blank(line)) continue;
    first_line = n;
    first = try_object(line);
    break;
  }
  if (first_line == 0) {
    throw Error(ErrorCode::kInvalidInput, source + " is empty: no training examples", "data");
  }
  const bool json_lines = first.has_value() && (format != FinetuneFormat::kText ||
                                                detect(*first) == FinetuneFormat::kText);
  if (!json_lines) {
    if (format != FinetuneFormat::kAuto && format != FinetuneFormat::kText) {
      LineError{source, first_line}.fail(std::string("expected a JSON object (format ") +
                                         finetune_format_name(format) + ")");
    }
    if (!is_valid_utf8(all)) {
      throw Error(ErrorCode::kInvalidInput, source + " is not valid UTF-8 text", "data");
    }
    data.format = FinetuneFormat::kText;
    data.examples.push_back({{}, std::move(all), first_line});
    return data;
  }
  data.format = format;
  if (format == FinetuneFormat::kAuto) {
    data.format = detect(*first);
    if (data.format == FinetuneFormat::kAuto) {
      LineError{source, first_line}.fail(
          "cannot tell the format: expected \"messages\" (openai), \"conversations\" (sharegpt), "
          "\"instruction\" (alpaca) or \"text\"; say --format");
    }
  }
  std::istringstream lines(all);
  for (size_t n = 1; std::getline(lines, line); ++n) {
    if (blank(line)) continue;
    const LineError at{source, n};
    const json object = parse_object(line, at);
    switch (data.format) {
      case FinetuneFormat::kOpenAI: read_openai(object, at, data); break;
      case FinetuneFormat::kShareGPT: read_sharegpt(object, at, data); break;
      case FinetuneFormat::kAlpaca: read_alpaca(object, at, data); break;
      default: read_text_line(object, at, data); break;
    }
  }
  if (data.examples.empty()) {
    throw Error(ErrorCode::kInvalidInput,
                source + ": no example to train on (" + std::to_string(data.skipped_examples) +
                    " skipped: every assistant turn has weight 0)",
                "data");
  }
  return data;
}

FinetuneData read_finetune_file(const std::string& path, FinetuneFormat format) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kNotFound, "cannot open training data " + path, "data");
  return read_finetune_data(in, format, path);
}

std::string plain_training_text(const FinetuneExample& example) {
  if (example.messages.empty()) return example.text;
  std::string text;
  for (const auto& message : example.messages) {
    if (!text.empty()) text += '\n';
    text += message.content;
  }
  return text;
}

}  // namespace mmserve::engine
