#include "engine/speech_transcript.h"

#include <whisper.h>
#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace mmserve::engine {
namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// Cue text is one paragraph: a blank line would end the cue early.
std::string one_line(const std::string& s) {
  std::string out = trim(s);
  for (auto& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return out;
}

// WebVTT cue text is markup: '&' and '<' start entities and tags, and "-->" is reserved.
std::string vtt_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '&') {
      out += "&amp;";
    } else if (c == '<') {
      out += "&lt;";
    } else if (c == '>') {
      out += "&gt;";
    } else {
      out += c;
    }
  }
  return out;
}

// OpenAI's compression_ratio: text bytes over zlib-compressed bytes (high = repetitive).
double compression_ratio(const std::string& text) {
  if (text.empty()) return 0;
  uLongf size = compressBound(static_cast<uLong>(text.size()));
  std::vector<Bytef> buf(size);
  if (compress(buf.data(), &size, reinterpret_cast<const Bytef*>(text.data()),
               static_cast<uLong>(text.size())) != Z_OK ||
      size == 0) {
    return 0;
  }
  return static_cast<double>(text.size()) / static_cast<double>(size);
}

double round3(double x) {
  return std::round(x * 1000.0) / 1000.0;
}

std::string language_name(const std::string& code) {
  const int id = code.empty() ? -1 : whisper_lang_id(code.c_str());
  const char* full = id >= 0 ? whisper_lang_str_full(id) : nullptr;
  return full != nullptr ? full : code;
}

std::string render_json(const Transcript& t, bool verbose, bool words) {
  using Json = nlohmann::json;
  Json out = {{"text", t.text()}};
  if (verbose) {
    Json segments = Json::array();
    Json word_list = Json::array();
    for (size_t i = 0; i < t.segments.size(); ++i) {
      const auto& s = t.segments[i];
      segments.push_back({{"id", i},
                          {"seek", s.seek},
                          {"start", round3(s.start)},
                          {"end", round3(s.end)},
                          {"text", s.text},
                          {"tokens", s.tokens},
                          {"temperature", t.temperature},
                          {"avg_logprob", s.avg_logprob},
                          {"compression_ratio", compression_ratio(s.text)},
                          {"no_speech_prob", s.no_speech_prob}});
      for (const auto& w : s.words) {
        word_list.push_back(
            {{"word", trim(w.text)}, {"start", round3(w.start)}, {"end", round3(w.end)}});
      }
    }
    out = {{"task", t.task},
           {"language", language_name(t.language)},
           {"duration", round3(t.duration)},
           {"text", t.text()},
           {"segments", std::move(segments)}};
    if (words) out["words"] = std::move(word_list);
  }
  // Segment text is valid UTF-8 already; replace guards against anything that slipped through.
  return out.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

std::string Transcript::text() const {
  std::string all;
  for (const auto& s : segments) all += s.text;
  return trim(all);
}

std::string TranscriptDeltas::next(const SpeechSegment& segment) {
  std::string text = held_ + segment.text;
  held_.clear();
  if (!started_) {
    const auto b = text.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) {
      return {};
    }
    text.erase(0, b);
    started_ = true;
  }
  const auto e = text.find_last_not_of(" \t\r\n");
  const size_t keep = e == std::string::npos ? 0 : e + 1;
  held_ = text.substr(keep);
  text.resize(keep);
  return text;
}

TranscriptFormat parse_transcript_format(const std::string& name, const std::string& field) {
  if (name == "json") return TranscriptFormat::kJson;
  if (name == "text" || name == "txt") return TranscriptFormat::kText;
  if (name == "srt") return TranscriptFormat::kSrt;
  if (name == "vtt") return TranscriptFormat::kVtt;
  if (name == "verbose_json") return TranscriptFormat::kVerboseJson;
  throw Error(ErrorCode::kInvalidInput,
              "unknown response format '" + name + "'; valid: json, text, srt, vtt, verbose_json",
              field);
}

const char* transcript_content_type(TranscriptFormat format) {
  switch (format) {
    case TranscriptFormat::kJson:
    case TranscriptFormat::kVerboseJson: return "application/json";
    case TranscriptFormat::kText: return "text/plain; charset=utf-8";
    case TranscriptFormat::kSrt: return "application/x-subrip; charset=utf-8";
    case TranscriptFormat::kVtt: return "text/vtt; charset=utf-8";
  }
  return "application/json";
}

std::string cue_time(double seconds, char millis_separator) {
  const auto ms = static_cast<int64_t>(std::llround(std::max(0.0, seconds) * 1000.0));
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%02lld:%02lld:%02lld%c%03lld",
                static_cast<long long>(ms / 3600000), static_cast<long long>(ms / 60000 % 60),
                static_cast<long long>(ms / 1000 % 60), millis_separator,
                static_cast<long long>(ms % 1000));
  return buf;
}

std::string render_transcript(const Transcript& t, TranscriptFormat format, bool words) {
  switch (format) {
    case TranscriptFormat::kJson: return render_json(t, false, false);
    case TranscriptFormat::kVerboseJson: return render_json(t, true, words);
    case TranscriptFormat::kText: return t.text() + "\n";
    case TranscriptFormat::kSrt:
    case TranscriptFormat::kVtt: {
      const bool srt = format == TranscriptFormat::kSrt;
      std::string out = srt ? "" : "WEBVTT\n\n";
      int cue = 0;
      for (const auto& s : t.segments) {
        const std::string text = one_line(s.text);
        if (text.empty()) continue;  // an empty cue is malformed
        if (srt) out += std::to_string(++cue) + "\n";
        out += cue_time(s.start, srt ? ',' : '.') + " --> " + cue_time(s.end, srt ? ',' : '.') +
               "\n" + (srt ? text : vtt_escape(text)) + "\n\n";
      }
      return out;
    }
  }
  return {};
}

}  // namespace mmserve::engine
