#include "engine/text_stream.h"

#include <algorithm>

#include "core/utf8.h"

namespace mmserve::engine {

TextStream::TextStream(std::vector<std::string> stop_strings) : stops_(std::move(stop_strings)) {
  std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
}

std::string TextStream::push(std::string_view piece) {
  if (stopped_) return {};
  pending_.append(piece);

  // A complete stop string ends the text at its first occurrence.
  size_t stop_at = std::string::npos;
  for (const auto& stop : stops_) stop_at = std::min(stop_at, pending_.find(stop));
  if (stop_at != std::string::npos) {
    stopped_ = true;
    std::string out = sanitize_utf8(std::string_view(pending_).substr(0, stop_at));
    pending_.clear();
    emitted_ += out;
    return out;
  }

  // Hold back the longest tail that could still grow into a stop string...
  size_t hold = 0;
  for (const auto& stop : stops_) {
    for (size_t len = std::min(stop.size() - 1, pending_.size()); len > hold; --len) {
      if (pending_.compare(pending_.size() - len, len, stop, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  // ...and any unfinished UTF-8 character before that.
  const size_t ready =
      complete_utf8_prefix(std::string_view(pending_).substr(0, pending_.size() - hold));
  std::string out = sanitize_utf8(std::string_view(pending_).substr(0, ready));
  pending_.erase(0, ready);
  emitted_ += out;
  return out;
}

std::string TextStream::flush() {
  if (stopped_) return {};
  std::string out =
      sanitize_utf8(std::string_view(pending_).substr(0, complete_utf8_prefix(pending_)));
  pending_.clear();
  emitted_ += out;
  return out;
}

}  // namespace mmserve::engine
