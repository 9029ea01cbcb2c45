#include "stages/capture/capture_export.h"

#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"

namespace mmserve::stages {
namespace {

using Json = nlohmann::ordered_json;

Json parsed(const std::string& text, Json fallback) {
  Json j = Json::parse(text, nullptr, false);
  return j.is_discarded() ? fallback : j;
}

std::string dump(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

bool down(const store::CaptureEntry& e) {
  return e.feedback && e.feedback->rating && *e.feedback->rating < 0;
}
bool up(const store::CaptureEntry& e) {
  return e.feedback && e.feedback->rating && *e.feedback->rating > 0;
}
const std::string* correction(const store::CaptureEntry& e) {
  return e.feedback && e.feedback->correction && !e.feedback->correction->empty()
             ? &*e.feedback->correction
             : nullptr;
}

// The captured answer as an assistant message (the correction when there is one).
Json answer_message(const store::CaptureEntry& e) {
  Json m = {{"role", "assistant"}};
  if (const auto* c = correction(e)) {
    m["content"] = *c;
    return m;
  }
  const Json calls = parsed(e.record.tool_calls_json, Json::array());
  if (!e.record.answer.empty() || calls.empty()) m["content"] = e.record.answer;
  if (calls.is_array() && !calls.empty()) m["tool_calls"] = calls;
  return m;
}

Json messages_of(const store::CaptureEntry& e) {
  Json m = parsed(e.record.messages_json, Json::array());
  return m.is_array() ? m : Json::array();
}

std::string content_text(const Json& message) {
  const auto it = message.find("content");
  return it != message.end() && it->is_string() ? it->get<std::string>() : "";
}

void count_used(ExportReport& report, const store::CaptureEntry& e, std::set<const void*>& used) {
  if (!used.insert(&e).second) return;
  ++report.used;
  report.prompt_tokens += e.record.prompt_tokens;
  report.completion_tokens += e.record.completion_tokens;
  for (const std::string* counts :
       {&e.record.redactions_json, e.feedback ? &e.feedback->redactions_json : nullptr}) {
    if (counts == nullptr) continue;
    const Json j = parsed(*counts, Json::object());
    if (!j.is_object()) continue;
    for (const auto& [type, n] : j.items()) {
      if (n.is_number_integer()) report.redactions[type] += n.get<int64_t>();
    }
  }
}

Json openai_line(const store::CaptureEntry& e) {
  Json messages = Json::array();
  for (auto m : messages_of(e)) {
    if (m.value("role", "") == "assistant") m["weight"] = 0;
    messages.push_back(std::move(m));
  }
  Json answer = answer_message(e);
  answer["weight"] = correction(e) == nullptr && down(e) ? 0 : 1;
  messages.push_back(std::move(answer));
  Json line = {{"messages", std::move(messages)}};
  const Json params = parsed(e.record.parameters_json, Json::object());
  if (params.is_object() && params.contains("tools")) line["tools"] = params["tools"];
  return line;
}

Json sharegpt_line(const store::CaptureEntry& e) {
  Json turns = Json::array();
  const auto add = [&turns](const Json& m) {
    const std::string role = m.value("role", "");
    if (m.contains("tool_calls") && m["tool_calls"].is_array() && !m["tool_calls"].empty()) {
      if (!content_text(m).empty()) turns.push_back({{"from", "gpt"}, {"value", content_text(m)}});
      for (const auto& c : m["tool_calls"]) {
        const Json fn = c.value("function", Json::object());
        Json call = {{"name", fn.value("name", "")},
                     {"arguments", parsed(fn.value("arguments", "{}"), Json::object())}};
        turns.push_back({{"from", "function_call"}, {"value", dump(call)}});
      }
      return;
    }
    const char* from = role == "system"      ? "system"
                       : role == "assistant" ? "gpt"
                       : role == "tool"      ? "observation"
                                             : "human";
    turns.push_back({{"from", from}, {"value", content_text(m)}});
  };
  for (const auto& m : messages_of(e)) add(m);
  add(answer_message(e));
  return {{"conversations", std::move(turns)}};
}

// Empty when the record has no Alpaca shape.
std::optional<Json> alpaca_line(const store::CaptureEntry& e, std::string& why) {
  const Json messages = messages_of(e);
  const Json answer = answer_message(e);
  if (answer.contains("tool_calls")) {
    why = "tool calls";
    return std::nullopt;
  }
  std::string system;
  Json history = Json::array();
  std::string pending_user;
  bool have_user = false;
  for (const auto& m : messages) {
    const std::string role = m.value("role", "");
    if (role == "system") {
      system += content_text(m);
    } else if (role == "user") {
      if (have_user) history.push_back({pending_user, ""});
      pending_user = content_text(m);
      have_user = true;
    } else if (role == "assistant" && have_user) {
      history.push_back({pending_user, content_text(m)});
      have_user = false;
    } else if (role == "tool") {
      why = "tool calls";
      return std::nullopt;
    }
  }
  if (!have_user) {
    why = "no user turn";
    return std::nullopt;
  }
  Json line = {{"instruction", pending_user}, {"input", ""}, {"output", content_text(answer)}};
  if (!system.empty()) line["system"] = system;
  if (!history.empty()) line["history"] = std::move(history);
  return line;
}

Json assistant_output(const std::string& content) {
  return Json::array({{{"role", "assistant"}, {"content", content}}});
}

}  // namespace

ExportFormat parse_export_format(const std::string& text, const std::string& field) {
  if (text == "openai") return ExportFormat::kOpenAi;
  if (text == "sharegpt") return ExportFormat::kShareGpt;
  if (text == "alpaca") return ExportFormat::kAlpaca;
  if (text == "preference") return ExportFormat::kPreference;
  throw Error(ErrorCode::kInvalidInput,
              field + " must be openai, sharegpt, alpaca or preference, not '" + text + "'", field);
}

ExportReport export_dataset(const std::vector<store::CaptureEntry>& entries, ExportFormat format,
                            std::ostream& out) {
  ExportReport report;
  report.records = static_cast<int64_t>(entries.size());
  std::set<const void*> used;
  const auto write = [&](const Json& line) {
    out << dump(line) << "\n";
    ++report.lines;
  };
  if (format == ExportFormat::kPreference) {
    // Corrections first, then up over down for the same conversation.
    std::map<std::string, std::vector<const store::CaptureEntry*>> ups, downs;
    std::vector<std::string> order;
    for (const auto& e : entries) {
      const Json input = {{"messages", messages_of(e)}};
      if (const auto* c = correction(e)) {
        if (*c != e.record.answer) {
          write({{"input", input},
                 {"preferred_output", assistant_output(*c)},
                 {"non_preferred_output", assistant_output(e.record.answer)}});
          count_used(report, e, used);
          continue;
        }
      }
      auto& bucket = up(e) ? ups : downs;
      if (up(e) || down(e)) {
        if (!ups.contains(e.record.messages_json) && !downs.contains(e.record.messages_json)) {
          order.push_back(e.record.messages_json);
        }
        bucket[e.record.messages_json].push_back(&e);
      }
    }
    for (const auto& conversation : order) {
      const auto u = ups.find(conversation);
      const auto d = downs.find(conversation);
      if (u == ups.end() || d == downs.end()) continue;
      for (const auto* good : u->second) {
        for (const auto* bad : d->second) {
          write({{"input", {{"messages", messages_of(*good)}}},
                 {"preferred_output", assistant_output(good->record.answer)},
                 {"non_preferred_output", assistant_output(bad->record.answer)}});
          count_used(report, *good, used);
          count_used(report, *bad, used);
        }
      }
    }
    for (const auto& e : entries) {
      if (!used.contains(&e)) ++report.skipped["no preference pair"];
    }
    return report;
  }
  for (const auto& e : entries) {
    if (format == ExportFormat::kOpenAi) {
      write(openai_line(e));
    } else if (down(e) && correction(e) == nullptr) {
      ++report.skipped["rated down"];
      continue;
    } else if (format == ExportFormat::kShareGpt) {
      write(sharegpt_line(e));
    } else {
      std::string why;
      const auto line = alpaca_line(e, why);
      if (!line) {
        ++report.skipped[why];
        continue;
      }
      write(*line);
    }
    count_used(report, e, used);
  }
  return report;
}

std::string report_text(const ExportReport& r) {
  std::string out = "mmserve: exported " + std::to_string(r.lines) + " lines from " +
                    std::to_string(r.used) + " of " + std::to_string(r.records) + " records\n";
  for (const auto& [why, n] : r.skipped) {
    out += "  skipped " + std::to_string(n) + " (" + why + ")\n";
  }
  std::string redacted;
  int64_t total = 0;
  for (const auto& [type, n] : r.redactions) {
    redacted += (redacted.empty() ? "" : ", ") + type + " " + std::to_string(n);
    total += n;
  }
  out += "  redacted " + std::to_string(total) + " findings" +
         (redacted.empty() ? std::string() : ": " + redacted) + "\n";
  out += "  tokens: prompt " + std::to_string(r.prompt_tokens) + ", completion " +
         std::to_string(r.completion_tokens) + "\n";
  return out;
}

}  // namespace mmserve::stages
