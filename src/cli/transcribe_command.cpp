// `mmserve transcribe`: one audio file to text, subtitles or JSON, through the same decoder,
// windowing and whisper states as the server.
#include <cstdio>
#include <fstream>
#include <iostream>

#include "cli/arg_parser.h"
#include "cli/commands.h"
#include "core/error.h"
#include "engine/backend.h"
#include "engine/speech_model.h"
#include "engine/speech_transcript.h"
#include "engine/text_model.h"
#include "media/audio_decode.h"
#include "scheduler/speech_scheduler.h"

namespace mmserve::cli {
namespace {

constexpr const char* kUsage = R"(usage: mmserve transcribe -m MODEL.bin [options] AUDIO
Transcribes a WAV, MP3, FLAC, OGG/Opus, M4A/AAC or WebM file with a whisper.cpp model.
  -m, --model FILE        whisper.cpp ggml model (else $MMSERVE_WHISPER_MODEL)
  -f, --format F          txt (default), srt, vtt, json or verbose_json
  -l, --language L        spoken language, e.g. en, de (default: detected)
      --translate         translate into English
      --prompt TEXT       text the first window is conditioned on (names, spelling, style)
      --temp T            temperature (default 0: greedy, with Whisper's fallback)
      --words             word timestamps (in verbose_json)
      --vad-model FILE    Silero VAD model (ggml): skip silence, cut windows at pauses
  -o, --output FILE       write the result here instead of to stdout
  -t, --threads N         CPU threads (default: all cores)
      --max-audio-seconds S  refuse longer audio (default: no limit)
      --no-gpu            run on the CPU even when a GPU backend is present
  -v, --verbose           whisper.cpp's own log, and per-window timings on stderr
)";

}  // namespace

int run_transcribe(const std::vector<std::string>& args) {
  ArgParser p({"-m|--model", "-f|--format", "-l|--language", "--prompt", "--temp", "--vad-model",
               "-o|--output", "-t|--threads", "--max-audio-seconds"},
              {"--translate", "--words", "--no-gpu", "-v|--verbose", "-h|--help"});
  p.parse(args);
  if (p.flag("--help")) {
    std::cout << kUsage;
    return 0;
  }
  engine::set_verbose_engine_logs(p.flag("--verbose"));
  if (p.positionals().size() != 1) {
    throw Error(ErrorCode::kInvalidInput, "give exactly one audio file\n" + std::string(kUsage),
                "audio");
  }
  std::string model_path = p.get("--model");
  if (model_path.empty()) {
    const char* env = std::getenv("MMSERVE_WHISPER_MODEL");
    if (env == nullptr || *env == 0) {
      throw Error(ErrorCode::kInvalidInput,
                  "no speech model: give -m MODEL.bin or set MMSERVE_WHISPER_MODEL", "--model");
    }
    model_path = env;
  }
  const auto format = engine::parse_transcript_format(p.get("--format", "txt"), "--format");
  const float temperature = p.get_float("--temp", 0.0f);
  if (temperature < 0 || temperature > 1) {
    throw Error(ErrorCode::kInvalidInput, "option --temp must be in 0..1", "--temp");
  }
  const int threads = p.get_int("--threads", 0);
  if (threads < 0)
    throw Error(ErrorCode::kInvalidInput, "option --threads must be >= 0", "--threads");
  media::AudioLimits limits;
  limits.max_seconds = p.get_float("--max-audio-seconds", 0.0f);

  // Decode first: a bad file fails in milliseconds, before the model loads.
  auto audio = media::decode_audio_file(p.positionals()[0], limits);

  auto model = engine::SpeechModel::load(model_path, {.use_gpu = !p.flag("--no-gpu")});
  scheduler::SpeechRequest request;
  request.language = model->resolve_language(p.get("--language"), "--language");
  request.translate = p.flag("--translate");
  if (request.translate && !model->multilingual()) {
    throw Error(ErrorCode::kInvalidInput,
                "the speech model " + model->id() + " is English-only; it cannot translate",
                "--translate");
  }
  request.temperature = temperature;
  request.word_timestamps = p.flag("--words");
  if (p.has("--prompt")) request.prompt = model->tokenize(p.get("--prompt"));
  std::shared_ptr<const engine::VadModel> vad;
  if (p.has("--vad-model")) vad = engine::VadModel::load(p.get("--vad-model"));

  std::vector<std::unique_ptr<engine::WindowRunner>> states;
  states.push_back(std::make_unique<engine::SpeechState>(model));
  scheduler::SpeechScheduler speech(
      std::move(states), vad,
      {.threads = threads > 0 ? threads : engine::default_thread_count(), .queue_size = 1});
  request.samples = std::move(audio.samples);
  const bool words = request.word_timestamps;
  const auto job =
      speech.submit(std::move(request), scheduler::SpeechJob::Clock::time_point::max());
  const auto& outcome = job->wait();
  if (outcome.error) throw *outcome.error;
  if (p.flag("--verbose")) {
    for (size_t i = 0; i < outcome.window_ms.size(); ++i) {
      std::fprintf(stderr, "mmserve: window %zu: %.0f ms\n", i + 1, outcome.window_ms[i]);
    }
  }
  const std::string rendered = engine::render_transcript(outcome.transcript, format, words);
  if (p.has("--output")) {
    std::ofstream out(p.get("--output"), std::ios::binary);
    out << rendered;
    if (!out) {
      throw Error(ErrorCode::kInternal, "cannot write " + p.get("--output"), "--output");
    }
  } else {
    std::fwrite(rendered.data(), 1, rendered.size(), stdout);
    if (format == engine::TranscriptFormat::kJson ||
        format == engine::TranscriptFormat::kVerboseJson) {
      std::fputc('\n', stdout);
    }
  }
  return 0;
}

}  // namespace mmserve::cli
