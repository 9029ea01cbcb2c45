// OpenAI-compatible endpoints: POST /v1/chat/completions and POST /v1/completions.
// Shapes follow the OpenAI API reference so that its client libraries work unchanged.
#include <chrono>

#include "core/error.h"
#include "core/utf8.h"
#include "engine/text_stream.h"
#include "http/api_requests.h"
#include "http/json_fields.h"
#include "http/json_output.h"
#include "http/request_log.h"
#include "http/routes.h"
#include "http/streaming.h"
#include "metrics/server_metrics.h"

namespace mmserve::http {
namespace {

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Json usage_json(const engine::SequenceResult& r) {
  return {{"prompt_tokens", r.prompt_tokens},
          {"completion_tokens", r.completion_tokens},
          {"total_tokens", r.prompt_tokens + r.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", r.cached_prompt_tokens}}}};
}

// OpenAI knows "stop" and "length" only; a failed or cancelled request ends with its error
// instead of a finish reason (streaming.h).
const char* openai_finish_reason(const engine::SequenceResult& r) {
  return r.reason == engine::FinishReason::kLength ? "length" : "stop";
}

// Runs the call; a chat or completion answers with its generation.
pipeline::Submission submit_text(const Services& services, Exchange& ex, const StreamChoice& stream,
                                 const char* id_prefix, std::string& id) {
  ex.call.task = runtime::Task::kTextGen;
  ex.call.stream = stream.stream;
  pipeline::Submission s = submit_call(services, ex);
  id = new_request_id(id_prefix);
  note_submission(ex, s, id, stream.stream);
  return s;
}

void chat_completions(const Services& services, const ApiRequest& req, ApiResponse& res,
                      Exchange& ex) {
  ChatRequest chat = parse_chat_request(parse_json_object(std::string(req.body)));
  auto& call = ex.call;
  call.model = chat.model;
  call.text.style = pipeline::PromptStyle::kChat;
  call.text.messages = std::move(chat.messages);
  call.generation = std::move(chat.generation);
  std::string id;
  const pipeline::Submission p = submit_text(services, ex, chat.stream, "chatcmpl-", id);
  const int64_t created = unix_now();
  const bool include_usage = chat.stream.include_usage;

  if (!call.stream) {
    const auto& o = wait_for_answer(call, *p.generation);
    throw_if_failed(o);
    const Json out = {{"id", id},
                      {"object", "chat.completion"},
                      {"created", created},
                      {"model", p.model},
                      {"choices",
                       {{{"index", 0},
                         {"message", {{"role", "assistant"}, {"content", o.result.text}}},
                         {"logprobs", nullptr},
                         {"finish_reason", openai_finish_reason(o.result)}}}},
                      {"usage", usage_json(o.result)}};
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
  counted_stream_generation(
      ex.shared_from_this(), res, p.generation,
      {.keep_alive = p.keep_alive,
       .opening =
           [chunk] {
             return sse_event(chunk({{"role", "assistant"}, {"content", ""}}, nullptr));
           },
       .piece =
           [chunk](std::string_view t) {
             return sse_event(chunk({{"content", t}}, nullptr));
           },
       .closing =
           [chunk, id, created, model = p.model,
            usage = include_usage](const scheduler::GenerationOutcome& o) {
             std::string out;
             out += sse_event(chunk(Json::object(), openai_finish_reason(o.result)));
             if (usage) {
               out += sse_event(Json{{"id", id},
                                     {"object", "chat.completion.chunk"},
                                     {"created", created},
                                     {"model", model},
                                     {"choices", Json::array()},
                                     {"usage", usage_json(o.result)}});
             }
             return out + sse_done();
           }});
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
  std::string id;
  const pipeline::Submission p = submit_text(services, ex, completion.stream, "cmpl-", id);
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
                {"usage", usage_json(o.result)}};
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
               last["usage"] = usage_json(o.result);
             }
             return sse_event(last) + sse_done();
           }});
}

}  // namespace

std::vector<Route> openai_routes(const Services& services) {
  return {{"POST", "/v1/chat/completions",
           [&services](const ApiRequest& req, ApiResponse& res, Exchange& ex) {
             chat_completions(services, req, res, ex);
           }},
          {"POST", "/v1/completions",
           [&services](const ApiRequest& req, ApiResponse& res, Exchange& ex) {
             completions(services, req, res, ex);
           }}};
}

}  // namespace mmserve::http
