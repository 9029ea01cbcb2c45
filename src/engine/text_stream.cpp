#include "engine/text_stream.h"

#include <algorithm>

namespace mmserve::engine {
namespace {

// Expected length of a UTF-8 sequence from its lead byte; 0 for a continuation or invalid byte.
size_t utf8_sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 0;
}

}  // namespace

size_t complete_utf8_prefix(std::string_view bytes) {
  // Only the last (up to 3) bytes can be an unfinished character: find the last lead byte.
  const size_t n = bytes.size();
  for (size_t back = 1; back <= std::min<size_t>(4, n); ++back) {
    const auto c = static_cast<unsigned char>(bytes[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    const size_t need = utf8_sequence_length(c);
    if (need == 0 || need <= back) return n;  // invalid lead, or the character is complete
    return n - back;                          // lead byte waiting for more continuation bytes
  }
  return n;
}

namespace {
// Length of the well-formed character at text[i], or 0 when the bytes there are not one.
size_t valid_character_at(std::string_view text, size_t i) {
  const size_t len = utf8_sequence_length(static_cast<unsigned char>(text[i]));
  if (len == 0 || i + len > text.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) return 0;
  }
  return len;
}
}  // namespace

bool is_valid_utf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const size_t len = valid_character_at(text, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

std::string sanitize_utf8(std::string_view text) {
  if (is_valid_utf8(text)) return std::string(text);
  std::string out;
  for (size_t i = 0; i < text.size();) {
    const size_t len = valid_character_at(text, i);
    if (len == 0) {
      out += "\xEF\xBF\xBD";
      i += 1;
    } else {
      out.append(text.substr(i, len));
      i += len;
    }
  }
  return out;
}

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
