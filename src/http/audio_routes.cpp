// POST /v1/audio/transcriptions, POST /v1/audio/translations (OpenAI-compatible multipart), and
// the "speech-transcribe" task of POST /v1/inference.
#include "http/audio_routes.h"

#include "core/error.h"
#include "engine/speech_transcript.h"
#include "http/api_requests.h"
#include "http/json_fields.h"
#include "http/json_output.h"
#include "http/request_log.h"
#include "http/routes.h"
#include "http/streaming.h"

namespace mmserve::http {
namespace {

// Runs the call and waits for its transcript (a client that leaves cancels the job: its
// running window stops within one ggml graph and the rest are dropped).
scheduler::SpeechOutcome transcribe(const Services& services, Exchange& ex) {
  const pipeline::Submission s = submit_call(services, ex);
  note_submission(ex, s, "", false);
  pipeline::wait_unless_cancelled(*s.speech, *ex.call.cancellation);
  scheduler::SpeechOutcome outcome = s.speech->wait();
  if (outcome.error) {
    throw *outcome.error;
  }
  return outcome;
}

// OpenAI's streamed transcription: a transcript.text.delta event per window's new text, then
// transcript.text.done with the whole text (the deltas' concatenation) and the audio's duration.
void stream_openai_transcript(const Services& services, Exchange& ex, ApiResponse& res) {
  const pipeline::Submission s = submit_call(services, ex);
  note_submission(ex, s, "", true);
  auto deltas = std::make_shared<engine::TranscriptDeltas>();
  counted_stream_speech(
      ex.shared_from_this(), res, s.speech,
      {.keep_alive = s.keep_alive,
       .segment =
           [deltas](const engine::SpeechSegment& segment) {
             const std::string delta = deltas->next(segment);
             return delta.empty()
                        ? std::string()
                        : sse_event(Json{{"type", "transcript.text.delta"}, {"delta", delta}});
           },
       .closing =
           [](const scheduler::SpeechOutcome& o) {
             return sse_event(
                 Json{{"type", "transcript.text.done"},
                      {"text", o.transcript.text()},
                      {"usage", {{"type", "duration"}, {"seconds", o.transcript.duration}}}});
           }});
}

// OpenAI's form: file, model, language, prompt, temperature, response_format,
// timestamp_granularities[].
void openai_audio(const Services& services, const ApiRequest& req, ApiResponse& res, Exchange& ex,
                  bool translate) {
  note_task(ex, "speech-transcribe");
  if (!req.multipart) {
    throw Error(ErrorCode::kInvalidInput,
                "send multipart/form-data with the audio in the field 'file' (as OpenAI's API)",
                "file");
  }
  const FormPart* file = nullptr;
  SpeechParams args;
  args.translate = translate;
  std::string model_name;
  std::string format_name = "json";
  bool granularities = false;
  bool stream = false;
  // A text field sent as a file part (some clients do) is read as a text field.
  std::vector<std::pair<std::string, std::string>> text_parts;
  for (const auto& part : req.form) {
    if (!part.is_file || part.name != "file") {
      text_parts.emplace_back(part.name, part.content);
    } else if (file != nullptr) {
      throw Error(ErrorCode::kInvalidInput, "the form field 'file' is given twice", "file");
    } else {
      file = &part;
    }
  }
  for (const auto& [name, value] : text_parts) {
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
        if (used != value.size()) {
          t = -1;
        }
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
      if (value != "true" && value != "false") {
        throw Error(ErrorCode::kInvalidInput,
                    "the form field 'stream' must be true or false, not '" + value + "'", "stream");
      }
      stream = value == "true";
    } else {
      throw Error(ErrorCode::kInvalidInput,
                  "unknown form field '" + name + "'; fields: file, model, " +
                      (translate ? "" : "language, ") +
                      "prompt, temperature, response_format, timestamp_granularities[], stream",
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
  if (stream && format != engine::TranscriptFormat::kJson &&
      format != engine::TranscriptFormat::kText) {
    // OpenAI's stream is text deltas and the whole text: no cues or segments to stream.
    throw Error(ErrorCode::kInvalidInput,
                "stream=true sends text events (transcript.text.delta, transcript.text.done): "
                "use response_format json or text, not '" +
                    format_name + "'",
                "response_format");
  }
  auto& call = ex.call;
  call.task = runtime::Task::kSpeechTranscribe;
  call.model = model_name;
  call.stream = stream;
  call.speech = args;
  call.audio = pipeline::AudioInput{.data = std::string(file->content),
                                    .is_bytes = true,
                                    .field = "file",
                                    .language_field = "language",
                                    .translate_field = "translate"};
  if (stream) {
    stream_openai_transcript(services, ex, res);
    return;
  }
  const auto outcome = transcribe(services, ex);
  res.content_type = engine::transcript_content_type(format);
  res.body = engine::render_transcript(outcome.transcript, format, args.words);
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

// /v1/inference's stream for speech: an event per window's new text ({"id", "task", "output"},
// with the segment's times when timestamps were asked for), then the closing event (the
// non-streamed answer's fields, output "") and [DONE]. The outputs concatenated are the
// non-streamed output.
void stream_speech_inference(const Services& services, Exchange& ex, ApiResponse& res) {
  const pipeline::Submission s = submit_call(services, ex);
  const std::string id = new_request_id("inf-");
  note_submission(ex, s, id, true);
  auto deltas = std::make_shared<engine::TranscriptDeltas>();
  const auto args = ex.call.speech;
  counted_stream_speech(
      ex.shared_from_this(), res, s.speech,
      {.keep_alive = s.keep_alive,
       .segment =
           [deltas, id, args](const engine::SpeechSegment& segment) {
             const std::string delta = deltas->next(segment);
             if (delta.empty() && !args.timestamps) {
               return std::string();
             }
             Json event = {{"id", id}, {"task", "speech-transcribe"}, {"output", delta}};
             if (args.timestamps) {
               event["segment"] = segment_json(segment, args.words);
             }
             return sse_event(event);
           },
       .closing =
           [id, model = s.model, route = ex.call.executor](const scheduler::SpeechOutcome& o) {
             const Json end = {{"id", id},
                               {"task", "speech-transcribe"},
                               {"model", model},
                               {"route", route},
                               {"output", ""},
                               {"language", o.transcript.language},
                               {"duration", o.transcript.duration},
                               {"usage", {{"audio_seconds", o.transcript.duration}}},
                               {"timings",
                                {{"queue_ms", o.queue_ms},
                                 {"process_ms", o.process_ms},
                                 {"windows", o.windows}}}};
             return sse_event(end) + sse_done();
           }});
}

}  // namespace

void answer_speech_inference(const Services& services, Exchange& ex, ApiResponse& res) {
  const auto& args = ex.call.speech;
  if (ex.call.stream) {
    stream_speech_inference(services, ex, res);
    return;
  }
  const auto o = transcribe(services, ex);
  Json out = {{"id", new_request_id("inf-")},
              {"task", "speech-transcribe"},
              {"model", ex.record.model},
              {"route", ex.call.executor},
              {"output", o.transcript.text()},
              {"language", o.transcript.language},
              {"duration", o.transcript.duration},
              {"usage", {{"audio_seconds", o.transcript.duration}}},
              {"timings",
               {{"queue_ms", o.queue_ms}, {"process_ms", o.process_ms}, {"windows", o.windows}}}};
  if (args.timestamps) {
    Json segments = Json::array();
    for (const auto& s : o.transcript.segments) {
      segments.push_back(segment_json(s, args.words));
    }
    out["segments"] = std::move(segments);
  }
  write_json(res, out);
}

std::vector<Route> audio_routes(const Services& services) {
  return {{"POST", "/v1/audio/transcriptions",
           [&services](const ApiRequest& req, ApiResponse& res, Exchange& ex) {
             openai_audio(services, req, res, ex, false);
           }},
          {"POST", "/v1/audio/translations",
           [&services](const ApiRequest& req, ApiResponse& res, Exchange& ex) {
             openai_audio(services, req, res, ex, true);
           }}};
}

}  // namespace mmserve::http
