// OpenAI-compatible endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models.
// Shapes follow the OpenAI API reference so that its client libraries work unchanged.
#include <chrono>

#include "core/error.h"
#include "core/utf8.h"
#include "engine/text_stream.h"
#include "http/api_requests.h"
#include "http/image_input.h"
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

// The images of a chat request, in the order their markers appear in the messages.
struct ChatImages {
  runtime::Runtime& rt;
  const runtime::ModelLease& lease;
  std::vector<media::Image> images;

  // Decodes an image part and returns the marker that stands for it in the text.
  std::string add(const ChatContentPart& part) {
    const auto& vision = lease->vision();
    if (!vision) {
      throw Error(ErrorCode::kModelUnavailable,
                  "content of type 'image_url' needs a vision model and projector (--mmproj); "
                  "the model '" +
                      lease->name() + "' has none",
                  part.type_field);
    }
    images.push_back(image_from_string(part.value, image_policy(rt.options()), part.field));
    return vision->marker();
  }
};

// The messages with their images replaced by the projector's markers (decoded into `images`).
std::vector<engine::ChatMessage> template_messages(const std::vector<ChatMessageRequest>& in,
                                                   ChatImages& images) {
  std::vector<engine::ChatMessage> messages;
  for (const auto& m : in) {
    std::string text;
    for (const auto& part : m.parts) text += part.is_image ? images.add(part) : part.value;
    messages.push_back({m.role, std::move(text)});
  }
  return messages;
}

struct Prepared {
  std::shared_ptr<scheduler::Generation> generation;
  bool stream = false;
  bool include_usage = false;
  std::string model_id;
};

Prepared submit(const StreamChoice& stream, engine::GenerationRequest request,
                const runtime::ModelLease& lease, runtime::Runtime& rt,
                std::optional<int32_t> default_max_tokens) {
  auto& text = lease->text();
  Prepared p;
  p.stream = stream.stream;
  p.include_usage = stream.include_usage;
  if (request.max_tokens == 0 && default_max_tokens) {
    const auto room = text.sequence_capacity() - static_cast<int32_t>(request.prompt.size());
    request.max_tokens = std::max(1, std::min(*default_max_tokens, room));
  }
  p.model_id = lease->name();
  p.generation = text.submit(std::move(request),
                             scheduler::Generation::Clock::now() + rt.options().request_timeout);
  return p;
}

void chat_completions(const httplib::Request& req, httplib::Response& res, runtime::Runtime& rt) {
  ChatRequest chat = parse_chat_request(parse_json_object(req.body));
  const auto lease = acquire_model(rt, runtime::Task::kTextGen, chat.model);
  ChatImages images{rt, lease, {}};
  const auto messages = template_messages(chat.messages, images);
  auto& text = lease->text();
  engine::GenerationRequest request = std::move(chat.generation);
  // Like llama-server: a model without a chat template is prompted in ChatML.
  const std::string prompt = text.model().apply_chat_template(messages, "chatml");
  if (images.images.empty()) {
    request.prompt = text.model().tokenize(prompt, true, true);
  } else {
    auto tokenized = lease->vision()->tokenize(prompt, images.images, true, "messages");
    request.prompt = std::move(tokenized.tokens);
    request.media = std::move(tokenized.media);
    metrics::server_metrics().add_images(static_cast<int64_t>(images.images.size()));
  }
  Prepared p = submit(chat.stream, std::move(request), lease, rt, std::nullopt);
  const std::string id = new_request_id("chatcmpl-");
  const int64_t created = unix_now();
  note_generation(p.generation, id, p.stream);

  if (!p.stream) {
    const auto& o = wait_for_answer(req, *p.generation);
    throw_if_failed(o);
    const Json out = {{"id", id},
                      {"object", "chat.completion"},
                      {"created", created},
                      {"model", p.model_id},
                      {"choices",
                       {{{"index", 0},
                         {"message", {{"role", "assistant"}, {"content", o.result.text}}},
                         {"logprobs", nullptr},
                         {"finish_reason", openai_finish_reason(o.result)}}}},
                      {"usage", usage_json(o.result)}};
    write_json(res, out);
    return;
  }
  auto chunk = [id, created, model = p.model_id](const Json& delta, const Json& finish) {
    return Json{
        {"id", id},
        {"object", "chat.completion.chunk"},
        {"created", created},
        {"model", model},
        {"choices",
         {{{"index", 0}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", finish}}}}};
  };
  counted_stream_generation(
      res, p.generation,
      {.keep_alive = lease,
       .opening =
           [chunk] {
             return sse_event(chunk({{"role", "assistant"}, {"content", ""}}, nullptr));
           },
       .piece =
           [chunk](std::string_view t) {
             return sse_event(chunk({{"content", t}}, nullptr));
           },
       .closing =
           [chunk, id, created, model = p.model_id,
            usage = p.include_usage](const scheduler::GenerationOutcome& o) {
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
    for (const auto& [piece, lp] : t.top) alternatives[sanitize_utf8(piece)] = lp;
    top.push_back(alternatives);
    offsets.push_back(offset);
    offset += t.piece.size();
  }
  return {{"tokens", tokens},
          {"token_logprobs", token_logprobs},
          {"top_logprobs", top},
          {"text_offset", offsets}};
}

void completions(const httplib::Request& req, httplib::Response& res, runtime::Runtime& rt) {
  CompletionRequest completion = parse_completion_request(parse_json_object(req.body));
  const auto lease = acquire_model(rt, runtime::Task::kTextGen, completion.model);
  auto& text = lease->text();
  engine::GenerationRequest request = std::move(completion.generation);
  request.prompt = text.model().tokenize(completion.prompt, true, false);
  Prepared p =
      submit(completion.stream, std::move(request), lease, rt, 16);  // OpenAI's documented default
  const std::string id = new_request_id("cmpl-");
  const int64_t created = unix_now();
  note_generation(p.generation, id, p.stream);
  auto choice = [](std::string_view t, const Json& finish) {
    return Json{{"text", t}, {"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish}};
  };
  if (!p.stream) {
    const auto& o = wait_for_answer(req, *p.generation);
    throw_if_failed(o);
    Json out = {{"id", id},
                {"object", "text_completion"},
                {"created", created},
                {"model", p.model_id},
                {"choices", Json::array({choice(o.result.text, openai_finish_reason(o.result))})},
                {"usage", usage_json(o.result)}};
    if (!o.result.logprobs.empty()) out["choices"][0]["logprobs"] = legacy_logprobs(o.result);
    write_json(res, out);
    return;
  }
  auto event = [id, created, model = p.model_id](const Json& choices) {
    return Json{{"id", id},
                {"object", "text_completion"},
                {"created", created},
                {"model", model},
                {"choices", choices}};
  };
  counted_stream_generation(
      res, p.generation,
      {.keep_alive = lease,
       .opening = nullptr,
       .piece =
           [event, choice](std::string_view t) {
             return sse_event(event(Json::array({choice(t, nullptr)})));
           },
       .closing =
           [event, choice, usage = p.include_usage](const scheduler::GenerationOutcome& o) {
             Json last = event(Json::array({choice("", openai_finish_reason(o.result))}));
             if (usage) last["usage"] = usage_json(o.result);
             return sse_event(last) + sse_done();
           }});
}

}  // namespace

void register_openai_routes(httplib::Server& server, runtime::Runtime& rt) {
  server.Post("/v1/chat/completions", [&rt](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { chat_completions(req, res, rt); });
  });
  server.Post("/v1/completions", [&rt](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { completions(req, res, rt); });
  });
}

}  // namespace mmserve::http
