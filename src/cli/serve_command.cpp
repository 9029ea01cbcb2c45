// `mmserve serve`: the HTTP server. Loads the model in the background (so /health answers and
// /ready says 503 meanwhile), serves until SIGTERM/SIGINT, then drains: new requests get 503,
// in-flight ones finish within --drain-timeout, after which they are cancelled; exit 0.
#include <pthread.h>
#include <signal.h>

#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include "cli/arg_parser.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/model_locator.h"
#include "engine/backend.h"
#include "engine/gguf_inspect.h"
#include "engine/speech_model.h"
#include "http/http_server.h"
#include "http/routes.h"
#include "runtime/process_memory.h"
#include "runtime/runtime.h"

namespace mmserve::cli {
namespace {

constexpr const char* kUsage = R"(usage: mmserve serve [-m MODEL.gguf] [options]
  -m, --model FILE        GGUF text model (else $MMSERVE_MODEL, else the model directory)
      --mmproj FILE       multimodal projector for the model (mmproj GGUF): enables images in
                          task "image-caption" and in chat messages (image_url parts)
      --max-image-bytes N   largest image accepted, encoded (default 20971520)
      --max-image-pixels N  largest picture accepted, width x height (default 50000000)
      --allow-image-hosts H,...  hosts whose http(s) image URLs may be fetched (default none:
                          remote image URLs are refused; data URLs and base64 always work)
      --whisper-model FILE  whisper.cpp speech model (ggml-*.bin): enables task
                          "speech-transcribe" and /v1/audio/*; with it, -m is optional
      --vad-model FILE    Silero VAD model (ggml): skip silence, cut audio windows at pauses
      --speech-parallel N   transcription windows run at once, one whisper state each (default 2)
      --speech-threads N  CPU threads for speech beside a text model (default: half of -t; the
                          text model gets the rest)
      --max-audio-bytes N   largest audio file accepted, encoded (default 26214400)
      --max-audio-seconds S longest audio accepted (default 3600)
      --host ADDR         listen address (default 127.0.0.1; 0.0.0.0 for all interfaces)
      --port N            listen port (default 8080; 0 picks a free one and prints it)
  -np, --parallel N       sequences decoded together (default 4)
  -c, --ctx-size N        KV cache cells shared by all sequences, unified
                          (default: parallel x min(model context, 4096))
  -b, --batch-size N      most tokens per decode step; longer prompts go in chunks (default 512)
  -t, --threads N         CPU threads (default: all cores)
      --queue-size N      requests that may wait for a free sequence (default 64); more get 429
      --timeout S         per-request deadline in seconds (default 600)
      --max-body-size N   largest request body in bytes (default 33554432)
      --drain-timeout S   on SIGTERM, how long in-flight requests may run on (default 30)
      --api-key KEY       require "Authorization: Bearer KEY" on /v1/* (or $MMSERVE_API_KEY)
      --log-prompts       debug: request log lines carry request bodies and generated text
                          (off by default: the log never holds prompts or outputs)
  -v, --verbose           show llama.cpp's own log
)";

int positive(const ArgParser& p, const std::string& name, int fallback, int min = 1) {
  const int v = p.get_int(name, fallback);
  if (v < min) {
    throw Error(ErrorCode::kInvalidInput,
                "option " + name + " must be at least " + std::to_string(min), name);
  }
  return v;
}

}  // namespace

int run_serve(const std::vector<std::string>& args) {
  // Before any thread starts: a few arenas keep the heap of ~100 HTTP threads compact.
  runtime::limit_malloc_arenas(4);
  ArgParser p({"-m|--model",
               "--mmproj",
               "--max-image-bytes",
               "--max-image-pixels",
               "--allow-image-hosts",
               "--host",
               "--port",
               "-np|--parallel",
               "-c|--ctx-size",
               "-b|--batch-size",
               "-t|--threads",
               "--queue-size",
               "--timeout",
               "--max-body-size",
               "--drain-timeout",
               "--api-key",
               "--whisper-model",
               "--vad-model",
               "--speech-parallel",
               "--speech-threads",
               "--max-audio-bytes",
               "--max-audio-seconds"},
              {"-v|--verbose", "-h|--help", "--log-prompts"});
  p.parse(args);
  if (p.flag("--help")) {
    std::cout << kUsage;
    return 0;
  }
  engine::set_verbose_engine_logs(p.flag("--verbose"));

  runtime::RuntimeOptions ro;
  ro.whisper_model_path = p.get("--whisper-model");
  ro.vad_model_path = p.get("--vad-model");
  if (!ro.vad_model_path.empty() && ro.whisper_model_path.empty()) {
    throw Error(ErrorCode::kInvalidInput, "--vad-model needs --whisper-model", "--vad-model");
  }
  if (ro.whisper_model_path.empty() || p.has("--model")) {
    ro.model_path = locate_text_model(p.get("--model"));
  } else {
    try {  // with a speech model, a text model is optional: take one only if one is configured
      ro.model_path = locate_text_model("");
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kNotFound) throw;
    }
  }
  ro.speech_parallel = positive(p, "--speech-parallel", ro.speech_parallel);
  ro.speech_threads = positive(p, "--speech-threads", 0, 0);
  ro.audio_limits.max_bytes = static_cast<size_t>(
      positive(p, "--max-audio-bytes", static_cast<int>(ro.audio_limits.max_bytes)));
  ro.audio_limits.max_seconds =
      positive(p, "--max-audio-seconds", static_cast<int>(ro.audio_limits.max_seconds));
  ro.mmproj_path = p.get("--mmproj");
  ro.image_limits.max_bytes = static_cast<size_t>(
      positive(p, "--max-image-bytes", static_cast<int>(ro.image_limits.max_bytes)));
  ro.image_limits.max_pixels =
      positive(p, "--max-image-pixels", static_cast<int>(ro.image_limits.max_pixels));
  std::stringstream hosts(p.get("--allow-image-hosts"));
  for (std::string host; std::getline(hosts, host, ',');) {
    if (!host.empty()) ro.image_hosts.push_back(host);
  }
  ro.parallel = positive(p, "--parallel", 4);
  ro.ctx_size = positive(p, "--ctx-size", 0, 0);
  ro.batch_size = positive(p, "--batch-size", 512);
  ro.threads = positive(p, "--threads", 0, 0);
  ro.queue_size = positive(p, "--queue-size", 64, 0);
  ro.request_timeout = std::chrono::seconds(positive(p, "--timeout", 600));
  http::HttpOptions ho;
  ho.host = p.get("--host", "127.0.0.1");
  ho.port = positive(p, "--port", 8080, 0);
  if (ho.port > 65535)
    throw Error(ErrorCode::kInvalidInput, "option --port must be at most 65535", "--port");
  ho.max_body_bytes = static_cast<size_t>(positive(p, "--max-body-size", 32 << 20));
  const char* env_key = std::getenv("MMSERVE_API_KEY");
  ho.api_key = p.get("--api-key", env_key != nullptr ? env_key : "");
  ho.log_prompts = p.flag("--log-prompts");
  const auto drain_timeout = std::chrono::seconds(positive(p, "--drain-timeout", 30, 0));

  // Signals are taken by one thread with sigwait; block them everywhere else first.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a client that vanished must not kill the process

  // Fail fast, with one line, on a model file that cannot work; the full load is in background.
  if (!ro.model_path.empty()) engine::inspect_gguf(ro.model_path);
  if (!ro.whisper_model_path.empty()) {
    engine::check_speech_model_file(ro.whisper_model_path, "--whisper-model");
  }
  if (!ro.vad_model_path.empty()) engine::check_vad_model_file(ro.vad_model_path, "--vad-model");
  if (!ro.mmproj_path.empty() && ro.model_path.empty()) {
    throw Error(ErrorCode::kInvalidInput, "--mmproj needs a text model (-m)", "--mmproj");
  }
  if (!ro.mmproj_path.empty()) {
    if (!std::filesystem::exists(ro.mmproj_path)) {
      throw Error(ErrorCode::kNotFound, "projector file not found: " + ro.mmproj_path, "--mmproj");
    }
    const auto proj = engine::inspect_gguf(ro.mmproj_path);
    if (proj.architecture != "clip") {
      throw Error(ErrorCode::kModelLoad,
                  "--mmproj " + ro.mmproj_path + " is a '" + proj.architecture +
                      "' model, not a multimodal projector (mmproj-*.gguf)",
                  "--mmproj");
    }
  }

  runtime::Runtime runtime(ro);
  http::HttpServer server(runtime, ho);
  const int port = server.bind();
  if (!ro.model_path.empty()) {
    std::fprintf(stderr, "mmserve: loading %s (parallel %d)\n", ro.model_path.c_str(), ro.parallel);
  }
  if (!ro.whisper_model_path.empty()) {
    std::fprintf(stderr, "mmserve: loading speech model %s (speech parallel %d)\n",
                 ro.whisper_model_path.c_str(), ro.speech_parallel);
  }
  runtime.start_loading();
  std::printf("mmserve listening on http://%s:%d\n", ho.host.c_str(), port);
  std::fflush(stdout);

  std::mutex mutex;
  bool done = false;
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    {
      std::lock_guard lock(mutex);
      if (done) return;
    }
    std::fprintf(stderr, "mmserve: signal %d: draining (up to %llds)\n", sig,
                 static_cast<long long>(drain_timeout.count()));
    runtime.begin_drain();  // new work gets 503 and /ready turns 503
    auto wait_idle = [](std::chrono::milliseconds limit) {
      const auto until = std::chrono::steady_clock::now() + limit;
      while (http::in_flight_requests().load() > 0 && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      return http::in_flight_requests().load() == 0;
    };
    if (!wait_idle(drain_timeout)) {
      std::fprintf(stderr, "mmserve: drain timeout: cancelling what is still running\n");
      try {
        runtime.cancel_all();
      } catch (const Error&) {
      }
      wait_idle(std::chrono::seconds(5));
    }
    server.stop();  // httplib cuts open streams on stop, hence the wait above
  });

  std::thread ready_log([&] {
    while (runtime.state() == runtime::State::kLoading) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (runtime.state() == runtime::State::kFailed) {
      std::fprintf(stderr, "mmserve: error: %s\n", runtime.detail().c_str());
    } else {
      std::fprintf(stderr, "mmserve: ready\n");
    }
  });

  server.serve();
  {
    std::lock_guard lock(mutex);
    done = true;
  }
  pthread_kill(signal_thread.native_handle(), SIGTERM);  // wake sigwait if no signal came
  signal_thread.join();
  ready_log.join();
  std::fprintf(stderr, "mmserve: stopped\n");
  return runtime.state() == runtime::State::kFailed ? 1 : 0;
}

}  // namespace mmserve::cli
