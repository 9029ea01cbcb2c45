// Speech over HTTP: the "speech-transcribe" task of POST /v1/inference and OpenAI's
// POST /v1/audio/transcriptions and /v1/audio/translations (multipart/form-data), all run by
// the pipeline on a speech model. Stateless and thread-safe.
#pragma once

#include "http/routes.h"

namespace mmserve::http {

// task "speech-transcribe" of /v1/inference, its call filled (audio, speech parameters).
// Answers {"id", "task", "model", "output", "language", "duration", "segments"?, "usage",
// "timings"}.
void answer_speech_inference(const Services& services, Exchange& exchange, ApiResponse& res);

}  // namespace mmserve::http
