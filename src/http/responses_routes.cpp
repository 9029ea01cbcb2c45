// POST /v1/responses: OpenAI's Responses API over the same chat call as /v1/chat/completions.
// The answer's reasoning, text and function calls become output items (reasoning, message,
// function_call); a stream sends OpenAI's typed events (response.created, ...output_item.added,
// ...output_text.delta, ...function_call_arguments.delta, ..., response.completed), each with
// its sequence_number. Nothing is stored: previous_response_id is refused at parsing.
#include <memory>

#include "core/error.h"
#include "http/chat_answer.h"
#include "http/json_output.h"
#include "http/request_log.h"
#include "http/responses_request.h"
#include "http/routes.h"
#include "http/streaming.h"

namespace mmserve::http {
namespace {

Json usage_of(const engine::SequenceResult& r) {
  return {{"input_tokens", r.prompt_tokens},
          {"input_tokens_details", {{"cached_tokens", r.cached_prompt_tokens}}},
          {"output_tokens", r.completion_tokens},
          {"output_tokens_details", {{"reasoning_tokens", 0}}},
          {"total_tokens", r.prompt_tokens + r.completion_tokens}};
}

Json reasoning_item(const std::string& id, const std::string& text, const char* status) {
  Json content = Json::array();
  if (!text.empty()) content.push_back({{"type", "reasoning_text"}, {"text", text}});
  return {{"type", "reasoning"},
          {"id", id},
          {"summary", Json::array()},
          {"content", content},
          {"status", status}};
}

Json text_part(const std::string& text) {
  return {{"type", "output_text"}, {"text", text}, {"annotations", Json::array()}};
}

Json message_item(const std::string& id, const std::string& text, const char* status) {
  Json content = Json::array();
  if (status == std::string("completed")) content.push_back(text_part(text));
  return {{"type", "message"},
          {"id", id},
          {"status", status},
          {"role", "assistant"},
          {"content", content}};
}

Json call_item(const std::string& id, const engine::ToolCall& call, const char* status) {
  return {{"type", "function_call"},     {"id", id},
          {"call_id", call.id},          {"name", call.name},
          {"arguments", call.arguments}, {"status", status}};
}

// The response object; `output` and `result` absent while in progress.
struct ResponseShell {
  std::string id;
  int64_t created = 0;
  std::string model;
  Json echo;

  Json make(const char* status, const Json& output, const engine::SequenceResult* result) const {
    Json out = {{"id", id},
                {"object", "response"},
                {"created_at", created},
                {"status", status},
                {"model", model},
                {"output", output},
                {"error", nullptr},
                {"incomplete_details", nullptr},
                {"parallel_tool_calls", true},
                {"tool_choice", "auto"},
                {"tools", Json::array()},
                {"text", {{"format", {{"type", "text"}}}}},
                {"metadata", Json::object()}};
    for (const auto& [k, v] : echo.items()) out[k] = v;
    if (result != nullptr) {
      out["usage"] = usage_of(*result);
      if (result->reason == engine::FinishReason::kLength) {
        out["status"] = "incomplete";
        out["incomplete_details"] = {{"reason", "max_output_tokens"}};
      }
    }
    return out;
  }
};

Json output_items(const engine::ParsedMessage& m, const std::string& id) {
  Json output = Json::array();
  if (!m.reasoning_content.empty()) {
    output.push_back(reasoning_item("rs_" + id, m.reasoning_content, "completed"));
  }
  if (!m.content.empty() || m.tool_calls.empty()) {
    output.push_back(message_item("msg_" + id, m.content, "completed"));
  }
  for (size_t i = 0; i < m.tool_calls.size(); ++i) {
    output.push_back(call_item("fc_" + id + "_" + std::to_string(i), m.tool_calls[i], "completed"));
  }
  return output;
}

// The stream's events as the answer grows: one output item open at a time, closed when the
// next kind of output starts or the answer ends.
class ResponseEvents {
 public:
  explicit ResponseEvents(ResponseShell shell) : shell_(std::move(shell)) {}

  std::string opening() {
    const Json r = shell_.make("in_progress", Json::array(), nullptr);
    std::string out = event("response.created", {{"response", r}});  // numbered in this order
    return out + event("response.in_progress", {{"response", r}});
  }

  std::string deltas(const std::vector<engine::ChatDelta>& ds) {
    std::string out;
    for (const auto& d : ds) {
      if (d.tool_index) {
        out += call_delta(d);
      } else if (!d.reasoning_content.empty()) {
        out += open(Kind::kReasoning);
        reasoning_ += d.reasoning_content;
        out += event("response.reasoning_text.delta", {{"item_id", item_id_},
                                                       {"output_index", index_},
                                                       {"content_index", 0},
                                                       {"delta", d.reasoning_content}});
      } else if (!d.content.empty()) {
        out += open(Kind::kMessage);
        text_ += d.content;
        out += event("response.output_text.delta", {{"item_id", item_id_},
                                                    {"output_index", index_},
                                                    {"content_index", 0},
                                                    {"delta", d.content},
                                                    {"logprobs", Json::array()}});
      }
    }
    return out;
  }

  std::string closing(const engine::SequenceResult& result) {
    std::string out = close();
    if (output_.empty()) {  // an empty answer is still one (empty) message
      out += open(Kind::kMessage);
      out += close();
    }
    const Json r = shell_.make("completed", output_, &result);
    out += event(r["status"] == "incomplete" ? "response.incomplete" : "response.completed",
                 {{"response", r}});
    return out;
  }

 private:
  enum class Kind { kNone, kReasoning, kMessage, kCall };

  std::string event(const char* type, Json payload) {
    payload["type"] = type;
    payload["sequence_number"] = sequence_++;
    return std::string("event: ") + type + "\n" + sse_event(payload);
  }

  std::string open(Kind kind) {
    if (kind_ == kind && kind != Kind::kCall) return {};
    std::string out = close();
    kind_ = kind;
    index_ = static_cast<int>(output_.size());
    const std::string n = std::to_string(index_);
    if (kind == Kind::kReasoning) {
      item_id_ = "rs_" + shell_.id + "_" + n;
      out +=
          event("response.output_item.added",
                {{"output_index", index_}, {"item", reasoning_item(item_id_, "", "in_progress")}});
    } else if (kind == Kind::kMessage) {
      item_id_ = "msg_" + shell_.id + "_" + n;
      out += event("response.output_item.added",
                   {{"output_index", index_}, {"item", message_item(item_id_, "", "in_progress")}});
      out += event("response.content_part.added", {{"item_id", item_id_},
                                                   {"output_index", index_},
                                                   {"content_index", 0},
                                                   {"part", text_part("")}});
    }
    return out;
  }

  std::string call_delta(const engine::ChatDelta& d) {
    std::string out;
    if (!d.tool_call.id.empty()) {  // a new call
      out += close();
      kind_ = Kind::kCall;
      index_ = static_cast<int>(output_.size());
      item_id_ = "fc_" + shell_.id + "_" + std::to_string(index_);
      call_ = {.id = d.tool_call.id, .name = d.tool_call.name, .arguments = {}};
      out += event("response.output_item.added",
                   {{"output_index", index_}, {"item", call_item(item_id_, call_, "in_progress")}});
    }
    if (!d.tool_call.arguments.empty()) {
      call_.arguments += d.tool_call.arguments;
      out += event(
          "response.function_call_arguments.delta",
          {{"item_id", item_id_}, {"output_index", index_}, {"delta", d.tool_call.arguments}});
    }
    return out;
  }

  std::string close() {
    std::string out;
    switch (kind_) {
      case Kind::kNone: break;
      case Kind::kReasoning: {
        out += event("response.reasoning_text.done", {{"item_id", item_id_},
                                                      {"output_index", index_},
                                                      {"content_index", 0},
                                                      {"text", reasoning_}});
        Json item = reasoning_item(item_id_, reasoning_, "completed");
        out += event("response.output_item.done", {{"output_index", index_}, {"item", item}});
        output_.push_back(std::move(item));
        reasoning_.clear();
        break;
      }
      case Kind::kMessage: {
        out += event("response.output_text.done", {{"item_id", item_id_},
                                                   {"output_index", index_},
                                                   {"content_index", 0},
                                                   {"text", text_},
                                                   {"logprobs", Json::array()}});
        out += event("response.content_part.done", {{"item_id", item_id_},
                                                    {"output_index", index_},
                                                    {"content_index", 0},
                                                    {"part", text_part(text_)}});
        Json item = message_item(item_id_, text_, "completed");
        out += event("response.output_item.done", {{"output_index", index_}, {"item", item}});
        output_.push_back(std::move(item));
        text_.clear();
        break;
      }
      case Kind::kCall: {
        out += event(
            "response.function_call_arguments.done",
            {{"item_id", item_id_}, {"output_index", index_}, {"arguments", call_.arguments}});
        Json item = call_item(item_id_, call_, "completed");
        out += event("response.output_item.done", {{"output_index", index_}, {"item", item}});
        output_.push_back(std::move(item));
        break;
      }
    }
    kind_ = Kind::kNone;
    return out;
  }

  ResponseShell shell_;
  int64_t sequence_ = 0;
  Kind kind_ = Kind::kNone;
  int index_ = 0;
  std::string item_id_;
  std::string reasoning_, text_;
  engine::ToolCall call_;
  Json output_ = Json::array();
};

void responses(const Services& services, const ApiRequest& req, ApiResponse& res, Exchange& ex) {
  ResponsesRequest r = parse_responses_request(parse_json_object(std::string(req.body)));
  auto& call = ex.call;
  fill_chat_call(call, std::move(r.model), std::move(r.messages), std::move(r.format),
                 std::move(r.generation));
  call.store = r.store;
  std::string id;
  const pipeline::Submission p = submit_text_call(services, ex, r.stream, "resp_", id);
  const ResponseShell shell{.id = id, .created = unix_now(), .model = p.model, .echo = r.echo};

  if (!call.stream) {
    const auto& o = wait_for_answer(call, *p.generation);
    throw_if_failed(o);
    const engine::ParsedMessage message = read_answer(p, o.result.text);
    write_json(res, shell.make("completed", output_items(message, id), &o.result));
    return;
  }
  auto deltas = std::make_shared<ChatDeltaStream>(p.parser);
  auto events = std::make_shared<ResponseEvents>(shell);
  counted_stream_generation(
      ex.shared_from_this(), res, p.generation,
      {.keep_alive = p.keep_alive,
       .opening = [events] { return events->opening(); },
       .piece = [deltas, events](std::string_view t) { return events->deltas(deltas->push(t)); },
       .closing =
           [deltas, events](const scheduler::GenerationOutcome& o) {
             std::string out = events->deltas(deltas->finish());
             return out + events->closing(o.result) + sse_done();
           }});
}

}  // namespace

std::vector<Route> responses_routes(const Services& services) {
  return {
      {"POST", "/v1/responses", [&services](const ApiRequest& req, ApiResponse& res, Exchange& ex) {
         responses(services, req, res, ex);
       }}};
}

}  // namespace mmserve::http
