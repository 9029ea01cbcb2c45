// The typed requests of the JSON endpoints, parsed and validated from the body alone, before any
// model is involved: /v1/chat/completions, /v1/completions and /v1/inference. Each field is
// checked once, here, and every failure is Error(kInvalidInput) naming it by its full path;
// fields the server does not implement are refused (json_fields.h), not ignored. Routes turn
// these into engine requests with the loaded model (templates, tokens, images, audio).
// Pure and thread-safe; the fuzzers (tests/fuzz) drive these functions.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/text_batch.h"
#include "http/json_fields.h"
#include "pipeline/call.h"

namespace mmserve::http {

struct StreamChoice {
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

using ChatContentPart = pipeline::ContentPart;
using ChatMessageRequest = pipeline::Message;

struct ChatRequest {
  std::string model;  // name or alias; "" = the default text model
  std::vector<ChatMessageRequest> messages;
  engine::GenerationRequest generation;  // sampling, stop, max_tokens (0: not given); no prompt
  StreamChoice stream;
  pipeline::AnswerFormat format;  // tools, response_format, reasoning
  std::optional<bool> store;      // capture it (stages/capture); unset: the server's policy
};

struct CompletionRequest {
  std::string model;  // name or alias; "" = the default text model
  std::string prompt;
  engine::GenerationRequest generation;  // top_logprobs from "logprobs"
  StreamChoice stream;
  std::optional<bool> store;  // as ChatRequest's
};

using SpeechParams = pipeline::SpeechParams;

struct InferenceRequest {
  std::string task;                  // text-gen, image-caption or speech-transcribe
  std::string model;                 // name or alias; "" = the task's default
  std::optional<std::string> input;  // the text, or the image/audio as base64 or a data URL
  bool stream = false;
  // parameters.data_class: the client's sensitivity hint, as the X-Data-Class header.
  pipeline::DataClass data_class = pipeline::DataClass::kUnspecified;
  // text-gen and image-caption:
  engine::GenerationRequest generation;
  bool raw = false;
  std::optional<std::string> system;
  std::string caption_prompt;              // image-caption: what to ask
  std::optional<std::string> json_schema;  // text-gen: parameters.json_schema
  std::optional<bool> store;               // parameters.store: as ChatRequest's
  // speech-transcribe:
  SpeechParams speech;
};

ChatRequest parse_chat_request(const Json& body);
// messages[]: system, user, assistant (with tool_calls, reasoning_content) and tool turns.
std::vector<ChatMessageRequest> read_messages(const Json& body);
CompletionRequest parse_completion_request(const Json& body);
// `has_upload`: the input came as an uploaded file of a multipart form, not in `body`.
InferenceRequest parse_inference_request(const Json& body, bool has_upload);

// A speech temperature (0..1); `field` names it in the error.
float checked_speech_temperature(double value, const std::string& field);

}  // namespace mmserve::http
