// POST /v1/audio/transcriptions, POST /v1/audio/translations (OpenAI-compatible multipart), and
// the "speech-transcribe" task of POST /v1/inference.
#include "http/audio_routes.h"

#include <span>

#include "core/error.h"
#include "engine/speech_transcript.h"
#include "http/image_input.h"
#include "http/json_output.h"
#include "http/request_log.h"
#include "http/routes.h"
#include "http/streaming.h"
#include "media/audio_decode.h"

namespace mmserve::http {
namespace {

// Field names differ between the two APIs ("language" vs "parameters.language").
struct SpeechFields {
  std::string audio, language, translate;
};

struct SpeechAnswer {
  scheduler::SpeechOutcome outcome;
  std::string model_id;
};

SpeechAnswer transcribe(const runtime::ModelLease& lease, runtime::Runtime& rt,
                        const httplib::Request& req, std::span<const uint8_t> audio,
                        const SpeechParams& args, const SpeechFields& fields) {
  auto& speech = lease->speech();
  const auto& model = lease->speech_model();
  scheduler::SpeechRequest request;
  request.language = model->resolve_language(args.language, fields.language);
  request.translate = args.translate;
  if (args.translate && !model->multilingual()) {
    throw Error(ErrorCode::kInvalidInput,
                "the speech model " + model->id() + " is English-only; it cannot translate",
                fields.translate);
  }
  request.temperature = args.temperature;
  request.word_timestamps = args.words;
  if (!args.prompt.empty()) request.prompt = model->tokenize(args.prompt);
  request.samples = media::decode_audio(audio, rt.options().audio_limits, fields.audio).samples;

  const auto job = speech.submit(std::move(request),
                                 scheduler::SpeechJob::Clock::now() + rt.options().request_timeout);
  // A client that closes its connection cancels the job: its running window stops within one
  // ggml graph and the rest are dropped.
  wait_while_connected(req, *job);
  SpeechAnswer answer{job->wait(), lease->name()};
  if (answer.outcome.error) throw *answer.outcome.error;
  return answer;
}

std::span<const uint8_t> bytes_of(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// OpenAI's form: file, model, language, prompt, temperature, response_format,
// timestamp_granularities[].
void openai_audio(const httplib::Request& req, httplib::Response& res, runtime::Runtime& rt,
                  bool translate) {
  note_task("speech-transcribe");
  if (!req.is_multipart_form_data()) {
    throw Error(ErrorCode::kInvalidInput,
                "send multipart/form-data with the audio in the field 'file' (as OpenAI's API)",
                "file");
  }
  const httplib::FormData* file = nullptr;
  SpeechParams args;
  args.translate = translate;
  std::string model_name;
  std::string format_name = "json";
  bool granularities = false;
  // Text fields arrive in req.form.fields, parts with a filename in req.form.files; a field
  // sent as a file part (some clients do) is read the same way.
  std::vector<std::pair<std::string, const std::string*>> text_parts;
  for (const auto& [name, field] : req.form.fields) text_parts.emplace_back(name, &field.content);
  for (const auto& [name, part] : req.form.files) {
    if (name != "file") {
      text_parts.emplace_back(name, &part.content);
    } else if (file != nullptr) {
      throw Error(ErrorCode::kInvalidInput, "the form field 'file' is given twice", "file");
    } else {
      file = &part;
    }
  }
  for (const auto& [name, content] : text_parts) {
    const std::string& value = *content;
    if (name == "file") {
      throw Error(ErrorCode::kInvalidInput, "the form field 'file' must be an uploaded file",
                  "file");
    } else if (name == "model") {
      model_name = value;  // a single-model server takes any name ("whisper-1"), as clients expect
    } else if (name == "language" && !translate) {
      args.language = value;
    } else if (name == "prompt") {
      args.prompt = value;
    } else if (name == "temperature") {
      double t = -1;
      try {
        size_t used = 0;
        t = std::stod(value, &used);
        if (used != value.size()) t = -1;
      } catch (const std::exception&) {
      }
      args.temperature = checked_speech_temperature(t, "temperature");
    } else if (name == "response_format") {
      format_name = value;
    } else if (name == "timestamp_granularities[]" || name == "timestamp_granularities") {
      if (value == "word") {
        args.words = true;
      } else if (value != "segment") {
        throw Error(ErrorCode::kInvalidInput,
                    "timestamp_granularities[] takes 'segment' and 'word', not '" + value + "'",
                    "timestamp_granularities[]");
      }
      granularities = true;
    } else if (name == "stream") {
      if (value == "true") {
        throw Error(ErrorCode::kInvalidInput, "streamed transcriptions are not supported",
                    "stream");
      }
    } else {
      throw Error(ErrorCode::kInvalidInput,
                  "unknown form field '" + name + "'; fields: file, model, " +
                      (translate ? "" : "language, ") +
                      "prompt, temperature, response_format, timestamp_granularities[]",
                  name);
    }
  }
  if (file == nullptr) {
    throw Error(ErrorCode::kInvalidInput, "the form field 'file' (the audio) is required", "file");
  }
  const auto format = engine::parse_transcript_format(format_name, "response_format");
  if (format_name == "txt") {  // our CLI's name, not OpenAI's
    throw Error(ErrorCode::kInvalidInput,
                "unknown response format 'txt'; valid: json, text, srt, vtt, verbose_json",
                "response_format");
  }
  if (granularities && format != engine::TranscriptFormat::kVerboseJson) {
    throw Error(ErrorCode::kInvalidInput,
                "timestamp_granularities[] needs response_format 'verbose_json'",
                "timestamp_granularities[]");
  }
  const auto lease = acquire_model(rt, runtime::Task::kSpeechTranscribe, model_name);
  const auto answer =
      transcribe(lease, rt, req, bytes_of(file->content), args, {"file", "language", "translate"});
  res.set_content(engine::render_transcript(answer.outcome.transcript, format, args.words),
                  engine::transcript_content_type(format));
}

Json segment_json(const engine::SpeechSegment& s, bool words) {
  Json j = {{"start", s.start}, {"end", s.end}, {"text", s.text}};
  if (words) {
    Json list = Json::array();
    for (const auto& w : s.words) {
      list.push_back(
          {{"word", w.text}, {"start", w.start}, {"end", w.end}, {"probability", w.probability}});
    }
    j["words"] = std::move(list);
  }
  return j;
}

}  // namespace

void handle_speech_transcribe(const std::string& model_name, const SpeechParams& args,
                              const std::optional<std::string>& input,
                              std::optional<std::string> upload, runtime::Runtime& rt,
                              const httplib::Request& req, httplib::Response& res) {
  // Without a speech model: say so before looking at the input.
  const auto lease = acquire_model(rt, runtime::Task::kSpeechTranscribe, model_name);
  std::vector<uint8_t> decoded;
  std::span<const uint8_t> audio;
  if (upload) {
    audio = bytes_of(*upload);
  } else {
    std::string_view text = *input;  // parse_inference_request made sure there is one
    if (text.starts_with("data:")) {
      const auto comma = text.find(',');
      if (comma == std::string_view::npos ||
          text.substr(0, comma).find(";base64") == std::string_view::npos) {
        throw Error(ErrorCode::kInvalidInput,
                    "field 'input' is a data URL without ';base64,': send the audio base64-encoded",
                    "input");
      }
      text.remove_prefix(comma + 1);
    }
    decoded = decode_base64(text, "input");
    audio = decoded;
  }
  const bool timestamps = args.timestamps;
  const auto answer = transcribe(lease, rt, req, audio, args,
                                 {"input", "parameters.language", "parameters.translate"});
  const auto& o = answer.outcome;
  Json out = {{"id", new_request_id("inf-")},
              {"task", "speech-transcribe"},
              {"model", answer.model_id},
              {"output", o.transcript.text()},
              {"language", o.transcript.language},
              {"duration", o.transcript.duration},
              {"usage", {{"audio_seconds", o.transcript.duration}}},
              {"timings",
               {{"queue_ms", o.queue_ms}, {"process_ms", o.process_ms}, {"windows", o.windows}}}};
  if (timestamps) {
    Json segments = Json::array();
    for (const auto& s : o.transcript.segments) segments.push_back(segment_json(s, args.words));
    out["segments"] = std::move(segments);
  }
  write_json(res, out);
}

void register_audio_routes(httplib::Server& server, runtime::Runtime& rt) {
  server.Post("/v1/audio/transcriptions",
              [&rt](const httplib::Request& req, httplib::Response& res) {
                guarded(res, [&] { openai_audio(req, res, rt, false); });
              });
  server.Post("/v1/audio/translations", [&rt](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { openai_audio(req, res, rt, true); });
  });
}

}  // namespace mmserve::http
