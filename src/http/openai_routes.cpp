// OpenAI-compatible endpoint POST /v1/completions (chat_routes.cpp has chat completions).
// Shapes follow the OpenAI API reference so that its client libraries work unchanged.
#include <chrono>

#include "core/error.h"
#include "core/utf8.h"
#include "engine/text_stream.h"
#include "http/api_requests.h"
#include "http/chat_answer.h"
#include "http/json_fields.h"
#include "http/json_output.h"
#include "http/request_log.h"
#include "http/routes.h"
#include "http/streaming.h"
#include "metrics/server_metrics.h"

namespace mmserve::http {
namespace {

// OpenAI knows "stop" and "length" only; a failed or cancelled request ends with its error
// instead of a finish reason (streaming.h).
const char* openai_finish_reason(const engine::SequenceResult& r) {
  return r.reason == engine::FinishReason::kLength ? "length" : "stop";
}

// The legacy completions "logprobs" object: per generated token its text, logprob, the most
// likely alternatives and its offset in the text. Pieces of a split character show as U+FFFD.
Json legacy_logprobs(const engine::SequenceResult& r) {
  Json tokens = Json::array(), token_logprobs = Json::array(), top = Json::array(),
       offsets = Json::array();
  size_t offset = 0;
  for (const auto& t : r.logprobs) {
    tokens.push_back(sanitize_utf8(t.piece));
    token_logprobs.push_back(t.logprob);
    Json alternatives = Json::object();
    for (const auto& [piece, lp] : t.top) {
      alternatives[sanitize_utf8(piece)] = lp;
    }
    top.push_back(alternatives);
    offsets.push_back(offset);
    offset += t.piece.size();
  }
  return {{"tokens", tokens},
          {"token_logprobs", token_logprobs},
          {"top_logprobs", top},
          {"text_offset", offsets}};
}

void completions(const Services& services, const ApiRequest& req, ApiResponse& res, Exchange& ex) {
  CompletionRequest completion = parse_completion_request(parse_json_object(std::string(req.body)));
  auto& call = ex.call;
  call.model = completion.model;
  call.text.style = pipeline::PromptStyle::kRaw;
  call.text.prompt = std::move(completion.prompt);
  call.text.default_max_tokens = 16;  // OpenAI's documented default
  call.generation = std::move(completion.generation);
  call.store = completion.store;
  std::string id;
  const pipeline::Submission p =
      submit_text_call(services, ex, completion.stream.stream, "cmpl-", id);
  const int64_t created = unix_now();
  const bool include_usage = completion.stream.include_usage;
  auto choice = [](std::string_view t, const Json& finish) {
    return Json{{"text", t}, {"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish}};
  };
  if (!call.stream) {
    const auto& o = wait_for_answer(call, *p.generation);
    throw_if_failed(o);
    Json out = {{"id", id},
                {"object", "text_completion"},
                {"created", created},
                {"model", p.model},
                {"choices", Json::array({choice(o.result.text, openai_finish_reason(o.result))})},
                {"usage", openai_usage_json(o.result)}};
    if (!o.result.logprobs.empty()) {
      out["choices"][0]["logprobs"] = legacy_logprobs(o.result);
    }
    write_json(res, out);
    return;
  }
  auto event = [id, created, model = p.model](const Json& choices) {
    return Json{{"id", id},
                {"object", "text_completion"},
                {"created", created},
                {"model", model},
                {"choices", choices}};
  };
  counted_stream_generation(
      ex.shared_from_this(), res, p.generation,
      {.keep_alive = p.keep_alive,
       .opening = nullptr,
       .piece =
           [event, choice](std::string_view t) {
             return sse_event(event(Json::array({choice(t, nullptr)})));
           },
       .closing =
           [event, choice, usage = include_usage](const scheduler::GenerationOutcome& o) {
             Json last = event(Json::array({choice("", openai_finish_reason(o.result))}));
             if (usage) {
               last["usage"] = openai_usage_json(o.result);
             }
             return sse_event(last) + sse_done();
           }});
}

}  // namespace

std::vector<Route> openai_routes(const Services& services) {
  return {{"POST", "/v1/completions",
           [&services](const ApiRequest& req, ApiResponse& res, Exchange& ex) {
             completions(services, req, res, ex);
           }}};
}

}  // namespace mmserve::http
