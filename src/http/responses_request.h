// The typed request of POST /v1/responses (OpenAI's Responses API), parsed and validated from
// the body: input as a string or a list of items (messages with input_text / input_image /
// output_text parts, function_call and function_call_output items, reasoning items),
// instructions, max_output_tokens, sampling, tools in the API's flat form, tool_choice and
// text.format. It becomes the same chat call as /v1/chat/completions. Every failure is
// Error(kInvalidInput) naming the field by its full path; state the server does not keep
// (previous_response_id, conversation) is refused. Pure and thread-safe.
#pragma once

#include <string>
#include <vector>

#include "http/api_requests.h"
#include "http/json_fields.h"

namespace mmserve::http {

struct ResponsesRequest {
  std::string model;
  std::vector<ChatMessageRequest> messages;  // instructions first (as a system message)
  std::optional<std::string> instructions;
  engine::GenerationRequest generation;
  pipeline::AnswerFormat format;
  bool stream = false;
  std::optional<bool> store;  // capture it (stages/capture); unset: the server's policy
  Json echo;  // the request's settings the response object repeats (tools, text, ...)
};

ResponsesRequest parse_responses_request(const Json& body);

}  // namespace mmserve::http
