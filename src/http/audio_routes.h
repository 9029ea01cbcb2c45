// Speech over HTTP: the "speech-transcribe" task of POST /v1/inference and OpenAI's
// POST /v1/audio/transcriptions and /v1/audio/translations (multipart/form-data), all served by
// the runtime's SpeechScheduler. Stateless and thread-safe.
#pragma once

#include <httplib.h>

#include <optional>
#include <string>

#include "http/api_requests.h"
#include "http/json_fields.h"
#include "runtime/runtime.h"

namespace mmserve::http {

// task "speech-transcribe": `body.input` is the audio as base64 or a data URL, or `upload` holds
// the uploaded file. Parameters: language, translate, timestamps, words, prompt, temperature.
// Answers {"id", "task", "model", "output", "language", "duration", "segments"?, "usage",
// "timings"}.
void handle_speech_transcribe(const std::string& model, const SpeechParams& params,
                              const std::optional<std::string>& input,
                              std::optional<std::string> upload, runtime::Runtime& rt,
                              const httplib::Request& req, httplib::Response& res);

}  // namespace mmserve::http
