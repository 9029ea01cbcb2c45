// The typed request: one call of the API, whatever endpoint it came through (/v1/inference,
// the OpenAI-compatible routes, the Python SDK's local mode). The edge fills it in two steps:
// its identity (request id, credentials, data-class hint, deadline, cancellation) before the
// body is read, so that authentication runs first; then, once the body is parsed and validated,
// what is asked (task, model, inputs, parameters). Stages read it and annotate it; an executor
// turns it into running work (executor.h). Plain data, owned by the edge for the request's
// lifetime; one thread at a time touches it, except its Cancellation, which is thread-safe.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/access.h"
#include "engine/chat_format.h"
#include "engine/text_batch.h"
#include "runtime/model_spec.h"

namespace mmserve::pipeline {

using Clock = std::chrono::steady_clock;

// What the edge was asked to do. Stages that only concern inference (privacy routing, capture)
// skip the others; authentication looks at every one.
enum class Operation {
  kInference,     // a task: text generation, image description, transcription, embedding
  kReadModels,    // GET /v1/models
  kManageModels,  // the admin endpoints (load, unload)
  kReadUsage,     // GET /v1/usage
  kReadMetrics,   // GET /metrics, when the server protects it (serve --metrics-auth)
};

// The client's hint of how sensitive its data is (header X-Data-Class, or parameters.data_class
// in /v1/inference). The privacy router keeps "personal" and "confidential" on this machine
// whatever the content; the others (and unspecified) are decided by the content.
enum class DataClass { kUnspecified, kPublic, kInternal, kPersonal, kConfidential };
// The stricter of two hints (the header and the body's parameter): a client cannot loosen one
// with the other.
DataClass stricter_data_class(DataClass a, DataClass b);
const char* data_class_name(DataClass data_class);
// "public", "internal", "personal" or "confidential" (any case); "" is kUnspecified. Else
// Error(kInvalidInput) naming `field`.
DataClass parse_data_class(std::string_view text, const std::string& field);

// What the client presented, unverified.
struct Credentials {
  std::string bearer;  // the token of "Authorization: Bearer <token>"; empty when none
};

// Who the authentication stage found the caller to be, and what it may do.
struct Caller {
  std::string id = "anonymous";  // a stable, non-secret name: a key's public id, "api-key", ...
  std::string name;              // a database key's name ("sales-team"); "" otherwise
  bool authenticated = false;    // a key was checked (false on a server without keys)
  bool admin = false;            // may use the admin endpoints and read every key's usage
  // What its key allows (empty lists: everything). Callers without a database key may use the
  // cloud route; a database key only when it was created with it.
  AccessScopes scopes{.tasks = {}, .models = {}, .endpoints = {}, .cloud = true, .admin = false};
  RateLimits limits;  // its key's quotas (none without a database key)
};

// Where a caller stands against its key's quotas after this call was admitted: what the edge
// reports in OpenAI's x-ratelimit-* headers. A limit of 0 is not reported.
struct RateLimitStatus {
  int64_t limit_requests = 0, remaining_requests = 0, reset_requests_ms = 0;
  int64_t limit_tokens = 0, remaining_tokens = 0, reset_tokens_ms = 0;
  int64_t limit_audio_seconds = 0, remaining_audio_seconds = 0, reset_audio_seconds_ms = 0;
};

// A request's cancellation, asked for by its client going away (the edge's probe) or by anyone
// holding the call. Thread-safe.
class Cancellation {
 public:
  Cancellation() = default;
  // `client_gone` is polled by requested(); it must be cheap and thread-safe.
  explicit Cancellation(std::function<bool()> client_gone) : client_gone_(std::move(client_gone)) {}
  void cancel() { cancelled_.store(true); }
  bool requested() const;

 private:
  std::atomic<bool> cancelled_{false};
  std::function<bool()> client_gone_;
};

// Waits until `job` (a scheduler::Generation or SpeechJob) has its outcome, cancelling it when
// `cancellation` is requested; the caller then reads the outcome with job.wait().
inline constexpr std::chrono::milliseconds kCancelPoll{25};
template <class Job>
void wait_unless_cancelled(Job& job, const Cancellation& cancellation) {
  while (!job.wait_for(kCancelPoll)) {
    if (cancellation.requested()) {
      job.cancel();
      return;
    }
  }
}

// One part of a chat message's content: text, or an image still to decode (a data URL, bare
// base64 or an http(s) URL, checked against the fetch policy by the executor).
struct ContentPart {
  bool is_image = false;
  std::string value;       // the text, or the image reference
  std::string field;       // where it came from, for errors about the image
  std::string type_field;  // the part's "type", for errors about its kind
};

struct Message {
  std::string role;  // system, user, assistant or tool
  std::vector<ContentPart> parts;
  std::vector<engine::ToolCall> tool_calls;  // assistant: the calls it made
  std::string tool_call_id;                  // tool: the call this message answers
  std::string name;                          // tool: the function's name
  std::string reasoning_content;             // assistant: its earlier reasoning, when sent back
};

// What a call asks of its answer's form: functions it may call, a JSON schema it must follow,
// how its reasoning comes back (engine/chat_format.h does each).
struct AnswerFormat {
  std::vector<engine::ToolSpec> tools;
  engine::ToolChoice tool_choice = engine::ToolChoice::kAuto;
  bool parallel_tool_calls = false;
  std::optional<std::string> json_schema;  // a JSON schema, as text
  std::string schema_field = "response_format";
  engine::ReasoningFormat reasoning = engine::ReasoningFormat::kSeparate;
  bool enable_thinking = true;

  // Whether the answer is constrained or may hold tool calls (the cloud route sends neither).
  bool shapes_answer() const {
    return json_schema.has_value() || (!tools.empty() && tool_choice != engine::ToolChoice::kNone);
  }
};

// How the text of a call becomes a prompt (the rules live in one place, the local executor's
// text_prompt.h, for the server and the SDK alike).
enum class PromptStyle {
  kInstruct,  // `prompt` as a user turn (after `system`) when the model has a chat template
  kRaw,       // `prompt` as is: a plain completion
  kChat,      // `messages` through the model's chat template (ChatML when it has none)
};

struct TextInput {
  PromptStyle style = PromptStyle::kRaw;
  std::string prompt;                 // kInstruct, kRaw; image-caption: what to ask
  std::optional<std::string> system;  // kInstruct
  std::vector<Message> messages;      // kChat
  // Without max_tokens: this many at most (OpenAI's completions default to 16); unset: what is
  // left of the sequence's context.
  std::optional<int32_t> default_max_tokens;
  AnswerFormat format;
};

// image-caption's picture, undecoded.
struct ImageInput {
  std::string data;  // the bytes (upload), or a data URL, bare base64 or an http(s) URL
  bool is_bytes = false;
  std::string field = "input";
};

// speech-transcribe's parameters.
struct SpeechParams {
  std::string language;  // as given; "" = detect
  bool translate = false;
  std::string prompt;
  float temperature = 0;
  bool words = false;
  bool timestamps = false;  // also set by words
};

// The audio, undecoded (any container FFmpeg reads), and the fields errors name.
struct AudioInput {
  std::string data;  // the bytes (upload), or base64, bare or in a data URL
  bool is_bytes = false;
  std::string field = "input";
  std::string language_field = "language";
  std::string translate_field = "translate";
};

// embed's inputs, untokenized texts or token arrays (one of the two), and what errors name.
struct EmbedInput {
  std::vector<std::string> texts;
  std::vector<std::vector<int32_t>> tokens;
  std::string field = "input";        // each input's error names field[i] when there are several
  bool listed = false;                // the inputs came as an array (errors name "input[i]")
  std::optional<int32_t> dimensions;  // OpenAI's Matryoshka truncation; unset: the model's
  std::string dimensions_field = "dimensions";
};

// What a stage noted about a call: the route it chose and why, what it found, what it counted.
// Shown in the request log and to later stages.
struct Annotation {
  std::string stage;
  std::string key;
  std::string value;
};

struct Call {
  // Identity: set by the edge before the body is read.
  std::string request_id;
  Operation operation = Operation::kInference;
  std::string endpoint;  // the path asked for ("/v1/chat/completions"); "" outside HTTP
  Credentials credentials;
  DataClass data_class = DataClass::kUnspecified;
  Clock::time_point deadline = Clock::time_point::max();
  std::shared_ptr<Cancellation> cancellation = std::make_shared<Cancellation>();

  // A dry run (Pipeline::review): stages decide and annotate but leave no trace (audit lines).
  bool dry_run = false;

  // Set by stages.
  Caller caller;
  std::string executor = "local";  // the executor that runs it; a stage may hand it elsewhere
  std::vector<Annotation> annotations;
  std::optional<RateLimitStatus> rate_limit;  // set by the quota stage for keys with quotas
  // What stages hold for as long as the call lives (a quota's concurrent-request slot), released
  // when the edge drops the call, however the request ended.
  std::vector<std::shared_ptr<void>> holds;

  // What is asked: set by the edge from the validated body.
  runtime::Task task = runtime::Task::kTextGen;
  std::string model;  // name or alias; "" = the task's default
  bool stream = false;
  TextInput text;                        // text-gen, image-caption
  std::optional<ImageInput> image;       // image-caption
  engine::GenerationRequest generation;  // sampling, stop, max_tokens (0: not given); no prompt
  // The path under which the endpoint's body keeps the generation parameters ("parameters" for
  // /v1/inference, "" for the OpenAI routes): it prefixes the field of errors the engine raises.
  std::string parameters_path;
  std::optional<AudioInput> audio;  // speech-transcribe
  SpeechParams speech;
  std::optional<EmbedInput> embed;  // embed
  // The client's "store" (OpenAI's chat and Responses field; parameters.store on /v1/inference):
  // whether it wants the call captured (stages/capture); unset: the server's capture policy.
  std::optional<bool> store;

  void annotate(std::string_view stage, std::string_view key, std::string value);
  // The value of the latest annotation with `key`; nullptr when none.
  const std::string* annotation(std::string_view key) const;
};

// The call's deadline as the engines take it: a call without one (the SDK) gets one far enough
// that it never fires (it ends when cancelled), so that deadline arithmetic cannot overflow.
inline Clock::time_point bounded_deadline(const Call& call) {
  constexpr auto kNoDeadline = std::chrono::hours(24 * 365);
  return std::min(call.deadline, Clock::now() + kNoDeadline);
}

// What a finished call used, for the stages that count (quotas, audit, capture).
struct Usage {
  std::string model;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  double audio_seconds = 0;
  std::optional<ErrorCode> error;  // set when it did not complete
};

// How a call's response ended, for the stages that keep records of every request, refused ones
// included (the audit log, quotas). Given just before the response's last bytes are sent.
struct Completion {
  int64_t started_unix_ms = 0;
  std::string method;      // "POST"
  int status = 0;          // the HTTP status the client gets
  std::string error_type;  // the error's type ("authentication_error"); "" when it succeeded
  std::string task;        // "" when the request never named a valid one
  std::string route;       // the executor that ran it; "" when none did
  std::string client;      // the remote address
  double duration_ms = 0;
  Usage usage;
  // A text answer that completed (text-gen, image-caption), for the capture stage; unset for the
  // others and for calls that failed. Filled by the edge, streamed and plain answers alike.
  struct Answer {
    std::string response_id;  // the id the client got ("chatcmpl-...", "inf-...", "resp_...")
    std::string text;         // the generated text, unparsed
    // Reads `text` back into content and tool calls (the model's chat format); null: as is.
    std::shared_ptr<const engine::ChatOutputParser> parser;
    std::string finish_reason;  // "stop", "length", ... (engine::finish_reason_name)
    double ttft_ms = 0;         // submitted to first token; 0 when none came
  };
  std::optional<Answer> answer;
};

}  // namespace mmserve::pipeline
