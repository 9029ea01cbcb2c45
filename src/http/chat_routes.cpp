// POST /v1/chat/completions in OpenAI's shapes: content, reasoning_content (llama-server's and
// vLLM's field for reasoning models) and tool_calls, whole or as streamed deltas.
#include <memory>

#include "core/error.h"
#include "http/api_requests.h"
#include "http/chat_answer.h"
#include "http/json_fields.h"
#include "http/json_output.h"
#include "http/request_log.h"
#include "http/routes.h"
#include "http/streaming.h"

namespace mmserve::http {
namespace {

void chat_completions(const Services& services, const ApiRequest& req, ApiResponse& res,
                      Exchange& ex) {
  ChatRequest chat = parse_chat_request(parse_json_object(std::string(req.body)));
  auto& call = ex.call;
  fill_chat_call(call, std::move(chat.model), std::move(chat.messages), std::move(chat.format),
                 std::move(chat.generation));
  call.store = chat.store;
  std::string id;
  const pipeline::Submission p =
      submit_text_call(services, ex, chat.stream.stream, "chatcmpl-", id);
  const int64_t created = unix_now();
  const bool include_usage = chat.stream.include_usage;

  if (!call.stream) {
    const auto& o = wait_for_answer(call, *p.generation);
    throw_if_failed(o);
    const engine::ParsedMessage message = read_answer(p, o.result.text);
    const Json out = {{"id", id},
                      {"object", "chat.completion"},
                      {"created", created},
                      {"model", p.model},
                      {"choices",
                       {{{"index", 0},
                         {"message", chat_message_json(message)},
                         {"logprobs", nullptr},
                         {"finish_reason", chat_finish_reason(o.result, message)}}}},
                      {"usage", openai_usage_json(o.result)}};
    write_json(res, out);
    return;
  }
  auto chunk = [id, created, model = p.model](const Json& delta, const Json& finish) {
    return Json{
        {"id", id},
        {"object", "chat.completion.chunk"},
        {"created", created},
        {"model", model},
        {"choices",
         {{{"index", 0}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", finish}}}}};
  };
  auto deltas = std::make_shared<ChatDeltaStream>(p.parser);
  auto events = [chunk](const std::vector<engine::ChatDelta>& ds) {
    std::string out;
    for (const auto& d : ds) out += sse_event(chunk(chat_delta_json(d), nullptr));
    return out;
  };
  counted_stream_generation(
      ex.shared_from_this(), res, p.generation,
      {.keep_alive = p.keep_alive,
       .opening =
           [chunk] {
             return sse_event(chunk({{"role", "assistant"}, {"content", ""}}, nullptr));
           },
       .piece = [deltas, events](std::string_view t) { return events(deltas->push(t)); },
       .closing =
           [chunk, events, deltas, id, created, model = p.model,
            usage = include_usage](const scheduler::GenerationOutcome& o) {
             std::string out = events(deltas->finish());
             out +=
                 sse_event(chunk(Json::object(), chat_finish_reason(o.result, deltas->message())));
             if (usage) {
               out += sse_event(Json{{"id", id},
                                     {"object", "chat.completion.chunk"},
                                     {"created", created},
                                     {"model", model},
                                     {"choices", Json::array()},
                                     {"usage", openai_usage_json(o.result)}});
             }
             return out + sse_done();
           }});
}

}  // namespace

std::vector<Route> chat_routes(const Services& services) {
  return {{"POST", "/v1/chat/completions",
           [&services](const ApiRequest& req, ApiResponse& res, Exchange& ex) {
             chat_completions(services, req, res, ex);
           }}};
}

}  // namespace mmserve::http
