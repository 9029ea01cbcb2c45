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

namespace mmserve::http {

struct StreamChoice {
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

// One part of a chat message's content: text, or an image to decode (data URL, base64 or an
// http(s) URL, checked against the fetch policy later).
struct ChatContentPart {
  bool is_image = false;
  std::string value;       // the text, or the image reference
  std::string field;       // where it came from, for errors about the image
  std::string type_field;  // the part's "type", for errors about its kind
};

struct ChatMessageRequest {
  std::string role;  // system, user or assistant ("developer" is read as system)
  std::vector<ChatContentPart> parts;
};

struct ChatRequest {
  std::string model;  // name or alias; "" = the default text model
  std::vector<ChatMessageRequest> messages;
  engine::GenerationRequest generation;  // sampling, stop, max_tokens (0: not given); no prompt
  StreamChoice stream;
};

struct CompletionRequest {
  std::string model;  // name or alias; "" = the default text model
  std::string prompt;
  engine::GenerationRequest generation;  // top_logprobs from "logprobs"
  StreamChoice stream;
};

// parameters of task "speech-transcribe".
struct SpeechParams {
  std::string language;  // as given; "" = detect
  bool translate = false;
  std::string prompt;
  float temperature = 0;
  bool words = false;
  bool timestamps = false;  // also set by words
};

struct InferenceRequest {
  std::string task;                  // text-gen, image-caption or speech-transcribe
  std::string model;                 // name or alias; "" = the task's default
  std::optional<std::string> input;  // the text, or the image/audio as base64 or a data URL
  bool stream = false;
  // text-gen and image-caption:
  engine::GenerationRequest generation;
  bool raw = false;
  std::optional<std::string> system;
  std::string caption_prompt;  // image-caption: what to ask
  // speech-transcribe:
  SpeechParams speech;
};

ChatRequest parse_chat_request(const Json& body);
CompletionRequest parse_completion_request(const Json& body);
// `has_upload`: the input came as an uploaded file of a multipart form, not in `body`.
InferenceRequest parse_inference_request(const Json& body, bool has_upload);

// A speech temperature (0..1); `field` names it in the error.
float checked_speech_temperature(double value, const std::string& field);

}  // namespace mmserve::http
