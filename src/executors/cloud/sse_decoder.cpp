#include "executors/cloud/sse_decoder.h"

#include <nlohmann/json.hpp>

namespace mmserve::executors {
namespace {

using Json = nlohmann::json;

UpstreamEvent error_event(std::string message) {
  UpstreamEvent e;
  e.kind = UpstreamEvent::Kind::kError;
  e.error = std::move(message);
  return e;
}

// The endpoint's {"error": {"message": ...}} (or {"error": "text"}) as one line.
std::string error_message(const Json& error) {
  if (error.is_object()) {
    const auto message = error.find("message");
    if (message != error.end() && message->is_string()) {
      std::string out = message->get<std::string>();
      const auto code = error.find("code");
      if (code != error.end() && (code->is_string() || code->is_number())) {
        out += " (" + (code->is_string() ? code->get<std::string>() : code->dump()) + ")";
      }
      return out;
    }
  }
  if (error.is_string()) {
    return error.get<std::string>();
  }
  return error.dump().substr(0, 512);
}

// Reads a string member that may be absent or null; false when it has another type.
bool optional_string(const Json& object, const char* key, std::string& out) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) {
    return true;
  }
  if (!it->is_string()) {
    return false;
  }
  out = it->get<std::string>();
  return true;
}

bool read_usage(const Json& document, std::optional<UpstreamUsage>& out) {
  const auto it = document.find("usage");
  if (it == document.end() || it->is_null()) {
    return true;
  }
  if (!it->is_object()) {
    return false;
  }
  UpstreamUsage usage;
  for (const auto& [key, field] : {std::pair{"prompt_tokens", &usage.prompt_tokens},
                                   std::pair{"completion_tokens", &usage.completion_tokens}}) {
    const auto value = it->find(key);
    if (value == it->end() || value->is_null()) {
      continue;
    }
    if (!value->is_number_integer()) {
      return false;
    }
    *field = value->get<int64_t>();
  }
  out = usage;
  return true;
}

// A chunk or a completion: `member` is "delta" (streamed) or "message" (not).
UpstreamEvent decode_choice_document(std::string_view text, const char* member) {
  const Json document = Json::parse(text, nullptr, false);
  if (document.is_discarded()) {
    return error_event("the endpoint sent data that is not JSON: '" +
                       std::string(text.substr(0, 120)) + "'");
  }
  if (!document.is_object()) {
    return error_event("the endpoint sent JSON that is not an object");
  }
  if (const auto error = document.find("error"); error != document.end() && !error->is_null()) {
    return error_event("the endpoint reported an error: " + error_message(*error));
  }
  UpstreamEvent e;
  const auto bad = [&](const std::string& what) {
    return error_event("the endpoint sent a malformed " + what);
  };
  if (!read_usage(document, e.usage)) {
    return bad("usage");
  }
  const auto choices = document.find("choices");
  if (choices == document.end() || choices->is_null()) {
    return e;  // e.g. the usage chunk of stream_options.include_usage
  }
  if (!choices->is_array()) {
    return bad("choices");
  }
  if (choices->empty()) {
    return e;
  }
  const auto& choice = choices->front();
  if (!choice.is_object() || !optional_string(choice, "finish_reason", e.finish_reason)) {
    return bad("choice");
  }
  const auto body = choice.find(member);
  if (body == choice.end() || body->is_null()) {
    return e;
  }
  if (!body->is_object() || !optional_string(*body, "content", e.content)) {
    return bad(std::string("choices[0].") + member);
  }
  return e;
}

}  // namespace

void SseDecoder::feed(std::string_view bytes, std::vector<UpstreamEvent>& events) {
  if (overflowed_) {
    return;
  }
  for (const char c : bytes) {
    if (after_cr_) {
      after_cr_ = false;
      if (c == '\n') {
        continue;  // the "\n" of a "\r\n" split across two chunks
      }
    }
    if (c == '\r' || c == '\n') {
      after_cr_ = c == '\r';
      take_line(events);
      continue;
    }
    line_.push_back(c);
    if (buffered() > kMaxEventBytes) {
      overflowed_ = true;
      events.push_back(error_event("the endpoint sent an event over " +
                                   std::to_string(kMaxEventBytes >> 20) + " MiB"));
      return;
    }
  }
}

void SseDecoder::finish(std::vector<UpstreamEvent>& events) {
  if (overflowed_) {
    return;
  }
  if (!line_.empty()) {
    take_line(events);
  }
  dispatch(events);
}

void SseDecoder::take_line(std::vector<UpstreamEvent>& events) {
  const std::string_view line = line_;
  if (line.empty()) {
    dispatch(events);
  } else if (line.starts_with("data")) {
    std::string_view value = line.substr(4);
    if (value.empty() || value.front() == ':') {  // "data" alone is an empty data line
      if (!value.empty()) {
        value.remove_prefix(1);
      }
      if (value.starts_with(' ')) {
        value.remove_prefix(1);
      }
      if (has_data_) {
        data_.push_back('\n');
      }
      data_.append(value);
      has_data_ = true;
    }
  }
  // Anything else: a comment (":" keep-alives), or "event:", "id:", "retry:", all ignored.
  line_.clear();
}

void SseDecoder::dispatch(std::vector<UpstreamEvent>& events) {
  if (!has_data_) {
    return;
  }
  events.push_back(decode_sse_data(data_));
  data_.clear();
  has_data_ = false;
}

UpstreamEvent decode_sse_data(std::string_view data) {
  while (!data.empty() && (data.back() == ' ' || data.back() == '\t')) {
    data.remove_suffix(1);
  }
  if (data == "[DONE]") {
    UpstreamEvent e;
    e.kind = UpstreamEvent::Kind::kDone;
    return e;
  }
  return decode_choice_document(data, "delta");
}

UpstreamEvent decode_json_answer(std::string_view body) {
  return decode_choice_document(body, "message");
}

}  // namespace mmserve::executors
