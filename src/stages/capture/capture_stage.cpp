#include "stages/capture/capture_stage.h"

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace mmserve::stages {
namespace {

using Json = nlohmann::ordered_json;

std::string joined_parts(const std::vector<pipeline::ContentPart>& parts) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty() && !out.ends_with('\n')) out += "\n";
    out += p.is_image ? std::string("<image>") : p.value;
  }
  return out;
}

std::string parameters_json(const pipeline::Call& call) {
  const auto& g = call.generation;
  const auto& s = g.sampling;
  Json j = {{"temperature", s.temperature},
            {"top_p", s.top_p},
            {"top_k", s.top_k},
            {"min_p", s.min_p},
            {"seed", s.seed},
            {"max_tokens", g.max_tokens},
            {"stream", call.stream}};
  if (s.repeat_penalty != 1.0f) j["repeat_penalty"] = s.repeat_penalty;
  if (!g.stop.empty()) j["stop"] = g.stop;
  if (call.text.style == pipeline::PromptStyle::kRaw) j["raw"] = true;
  if (call.text.format.json_schema) {
    j["json_schema"] = Json::parse(*call.text.format.json_schema, nullptr, false);
  }
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

CaptureMode parse_capture_mode(const std::string& text, const std::string& field) {
  if (text == "off") return CaptureMode::kOff;
  if (text == "opt-in") return CaptureMode::kOptIn;
  if (text == "all") return CaptureMode::kAll;
  throw Error(ErrorCode::kInvalidInput, field + " must be off, opt-in or all, not '" + text + "'",
              field);
}

const char* capture_mode_name(CaptureMode mode) {
  switch (mode) {
    case CaptureMode::kOff: return "off";
    case CaptureMode::kOptIn: return "opt-in";
    case CaptureMode::kAll: return "all";
  }
  return "off";
}

bool capture_wanted(CaptureMode mode, const pipeline::Call& call, bool model_marked) {
  if (mode == CaptureMode::kOff || call.store == std::optional<bool>(false)) {
    return false;
  }
  if (mode == CaptureMode::kAll) {
    return true;
  }
  return call.store == std::optional<bool>(true) || call.caller.scopes.capture || model_marked;
}

PendingCapture pending_capture(const pipeline::Call& call, const pipeline::Completion& completion) {
  PendingCapture p;
  auto& r = p.record;
  const auto& answer = *completion.answer;
  r.response_id = answer.response_id;
  r.request_id = call.request_id;
  r.time_ms = completion.started_unix_ms;
  r.model = completion.usage.model;
  r.key_id = call.caller.id;
  r.key_name = call.caller.name;
  r.endpoint = call.endpoint;
  r.task = runtime::task_name(call.task);
  r.route = completion.route;
  r.parameters_json = parameters_json(call);
  r.prompt_tokens = completion.usage.prompt_tokens;
  r.completion_tokens = completion.usage.completion_tokens;
  r.duration_ms = completion.duration_ms;
  r.ttft_ms = answer.ttft_ms;
  r.finish_reason = answer.finish_reason;
  const auto& text = call.text;
  if (call.task == runtime::Task::kImageCaption) {
    p.messages.push_back(
        {.role = "user", .content = text.prompt.empty() ? "<image>" : "<image>\n" + text.prompt});
  } else if (text.style == pipeline::PromptStyle::kChat) {
    for (const auto& m : text.messages) {
      p.messages.push_back({.role = m.role,
                            .content = joined_parts(m.parts),
                            .tool_calls = m.tool_calls,
                            .tool_call_id = m.tool_call_id,
                            .name = m.name});
    }
  } else {
    if (text.system && !text.system->empty()) {
      p.messages.push_back({.role = "system", .content = *text.system});
    }
    p.messages.push_back({.role = "user", .content = text.prompt});
  }
  p.answer_text = answer.text;
  p.parser = answer.parser;
  p.tools = text.format.tools;
  return p;
}

CaptureStage::CaptureStage(CaptureMode mode, CaptureWriter& writer, ModelCapturePolicy models)
    : mode_(mode), writer_(writer), models_(std::move(models)) {}

void CaptureStage::on_complete(const pipeline::Call& call,
                               const pipeline::Completion& completion) const noexcept {
  if (mode_ == CaptureMode::kOff || call.operation != pipeline::Operation::kInference ||
      call.dry_run || !completion.answer || completion.status != 200 ||
      completion.answer->response_id.empty() ||
      (call.task != runtime::Task::kTextGen && call.task != runtime::Task::kImageCaption)) {
    return;
  }
  try {
    const bool model_marked = models_ && models_(completion.usage.model);
    if (!capture_wanted(mode_, call, model_marked)) {
      return;
    }
    writer_.enqueue(pending_capture(call, completion));
  } catch (const std::exception&) {
    // Out of memory copying the call: not captured; the response goes out.
  }
}

}  // namespace mmserve::stages
