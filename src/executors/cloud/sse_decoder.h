// Reading what an OpenAI-compatible endpoint answers to a chat-completions request: the
// server-sent events of a streamed answer (text/event-stream), fed as the bytes arrive in
// chunks of any size (a line, even a "\r\n", may be split across two), and the single JSON
// document of an endpoint that ignores "stream".
//
// Each event's data is decoded into an UpstreamEvent: a chunk (choices[0].delta.content,
// finish_reason, usage), the "[DONE]" marker, or an error: the endpoint's own error object, or
// data that is not the JSON it should be. Nothing throws on what the endpoint sends.
//
// Threading: an SseDecoder is one stream's state, used by one thread; the functions are pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mmserve::executors {

struct UpstreamUsage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

struct UpstreamEvent {
  enum class Kind { kChunk, kDone, kError };
  Kind kind = Kind::kChunk;
  std::string content;                 // kChunk: the text it adds ("" when none)
  std::string finish_reason;           // kChunk: "stop", "length", ...; "" while running
  std::optional<UpstreamUsage> usage;  // kChunk: when it carries the usage
  std::string error;                   // kError: what the endpoint said, or what was wrong
};

// The longest line (and event) accepted: past it the stream is an error, not a memory sink.
inline constexpr size_t kMaxEventBytes = 4 << 20;

class SseDecoder {
 public:
  // Decodes `bytes`, appending to `events` one event per complete SSE event they end.
  // Comments (":...") and fields other than "data" are skipped; an event's data lines are
  // joined with "\n", as the SSE specification says.
  void feed(std::string_view bytes, std::vector<UpstreamEvent>& events);
  // The stream ended: decodes an event whose closing blank line never came.
  void finish(std::vector<UpstreamEvent>& events);
  // Bytes held for an incomplete line or event.
  size_t buffered() const { return line_.size() + data_.size(); }

 private:
  void take_line(std::vector<UpstreamEvent>& events);
  void dispatch(std::vector<UpstreamEvent>& events);

  std::string line_;  // the line being read
  std::string data_;  // the current event's data lines, joined
  bool has_data_ = false;
  bool after_cr_ = false;  // the last byte was a '\r': a '\n' next is the same line end
  bool overflowed_ = false;
};

// One event's data: "[DONE]", a chat.completion.chunk, or {"error": ...}.
UpstreamEvent decode_sse_data(std::string_view data);

// A non-streamed answer (a chat.completion): choices[0].message.content as `content`, its
// finish_reason and usage; or kError.
UpstreamEvent decode_json_answer(std::string_view body);

}  // namespace mmserve::executors
