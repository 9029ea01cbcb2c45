// Fuzzes the JSON body of every JSON endpoint into its typed request (http/api_requests.h,
// http/responses_request.h): parse_json_object, then parse_chat_request (tools, tool_choice,
// response_format, tool turns), parse_completion_request, parse_responses_request and
// parse_inference_request (with and without an uploaded file).
//
// Invariants: a body that is not JSON, or nests deeper than 64 levels, is refused naming "body"
// or the field where it nests too deep; a refusal is Error(kInvalidInput), or kModelUnavailable for content kinds no model
// here reads, and always names a field; an accepted request is within the documented ranges
// (max_tokens 0 = not given or 1..1e6, top_logprobs 0..20, a known task, non-empty text inputs,
// a speech temperature in [0, 1], a required tool_choice with tools declared, a schema only as
// JSON text). Plus ASan and UBSan.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_support.h"
#include "http/api_requests.h"
#include "http/responses_request.h"

using namespace mmserve;

namespace {

void expect_refusal(const Error& e) {
  fuzz::expect_code(e, {ErrorCode::kInvalidInput, ErrorCode::kModelUnavailable});
  FUZZ_CHECK(!e.field().empty());
}

void check_format(const pipeline::AnswerFormat& f) {
  FUZZ_CHECK(f.tool_choice != engine::ToolChoice::kRequired || !f.tools.empty());
  for (const auto& t : f.tools) FUZZ_CHECK(!t.name.empty() && http::Json::accept(t.parameters));
  FUZZ_CHECK(!f.json_schema || http::Json::accept(*f.json_schema));
}

void check_messages(const std::vector<pipeline::Message>& messages) {
  FUZZ_CHECK(!messages.empty());
  for (const auto& m : messages) {
    FUZZ_CHECK(m.role == "system" || m.role == "user" || m.role == "assistant" || m.role == "tool");
    FUZZ_CHECK(m.role != "tool" || !m.tool_call_id.empty());
    for (const auto& p : m.parts) FUZZ_CHECK(!p.is_image || !p.value.empty());
    for (const auto& c : m.tool_calls) {
      FUZZ_CHECK(!c.name.empty() && http::Json::accept(c.arguments));
    }
  }
}

void check_generation(const engine::GenerationRequest& g) {
  FUZZ_CHECK(g.max_tokens == 0 || (g.max_tokens >= 1 && g.max_tokens <= 1'000'000));
  FUZZ_CHECK(g.prompt.empty() && g.media.empty());  // prompts are the route's, with a model
  FUZZ_CHECK(g.sampling.top_k >= 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  http::Json json;
  try {
    json = http::parse_json_object(body);
  } catch (const Error& e) {
    // "body", or the field where the body nests too deep.
    fuzz::expect_code(e, {ErrorCode::kInvalidInput});
    FUZZ_CHECK(!e.field().empty());
    return 0;
  }
  try {
    const auto chat = http::parse_chat_request(json);
    check_messages(chat.messages);
    check_format(chat.format);
    check_generation(chat.generation);
  } catch (const Error& e) {
    expect_refusal(e);
  }
  try {
    const auto r = http::parse_responses_request(json);
    check_messages(r.messages);
    check_format(r.format);
    check_generation(r.generation);
  } catch (const Error& e) {
    expect_refusal(e);
  }
  try {
    const auto completion = http::parse_completion_request(json);
    FUZZ_CHECK(!completion.prompt.empty());
    check_generation(completion.generation);
    FUZZ_CHECK(completion.generation.top_logprobs >= 0 && completion.generation.top_logprobs <= 20);
    FUZZ_CHECK(completion.generation.top_logprobs == 0 || !completion.stream.stream);
  } catch (const Error& e) {
    expect_refusal(e);
  }
  for (const bool upload : {false, true}) {
    try {
      const auto r = http::parse_inference_request(json, upload);
      FUZZ_CHECK(r.task == "text-gen" || r.task == "image-caption" ||
                 r.task == "speech-transcribe");
      if (r.task == "text-gen") FUZZ_CHECK(!upload && r.input && !r.input->empty());
      if (r.task != "text-gen") FUZZ_CHECK(upload || r.input);
      if (r.task == "speech-transcribe") {
        FUZZ_CHECK(!r.stream);
        FUZZ_CHECK(r.speech.temperature >= 0 && r.speech.temperature <= 1);
        FUZZ_CHECK(!r.speech.words || r.speech.timestamps);
      } else {
        check_generation(r.generation);
      }
    } catch (const Error& e) {
      expect_refusal(e);
    }
  }
  return 0;
}
