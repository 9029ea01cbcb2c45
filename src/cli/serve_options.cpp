// `mmserve serve`'s command line into typed options: the models (flags or a models file), the
// registry's budget, the request policy and the HTTP edge's settings.
#include "cli/serve_options.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "cli/arg_parser.h"
#include "core/error.h"
#include "core/model_locator.h"
#include "engine/embedding_model.h"
#include "engine/gguf_inspect.h"
#include "engine/speech_model.h"
#include "runtime/lora_table.h"
#include "runtime/models_file.h"

namespace mmserve::cli {
namespace {

constexpr const char* kServeUsage =
    R"(usage: mmserve serve [-m MODEL.gguf | --models MODELS.toml] [options]
  -m, --model FILE        GGUF text model (else $MMSERVE_MODEL, else the model directory);
                          an embedding model (BERT, bge, nomic, ...: pooling in its file) serves
                          /v1/embeddings and task "embed" instead
      --embedding-model FILE  GGUF embedding model beside -m: /v1/embeddings, task "embed"
      --models FILE       several models at once, declared in a TOML file (docs/models.md);
                          requests choose one by "model". Instead of -m/--mmproj/--whisper-model
                          and --vad-model; -np, -c, -b, --speech-parallel are its defaults
      --max-memory SIZE   memory budget for loaded models (8G, 512M); least recently used idle
                          models are unloaded to load another (default: no budget)
      --max-models N      most models loaded at once (default: no limit)
      --lora NAME=FILE[:SCALE]  a LoRA adapter (GGUF) for the -m model, asked for per request
                          as "model": "MODEL:NAME" or "lora": "NAME" (scale default 1);
                          repeatable. A models file gives a model's `lora = [...]`
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
      --speech-threads N  CPU threads for speech while a text model also has work (default:
                          half of -t; text gets the rest; alone, either takes every thread);
                          without a text model, the threads speech runs with (default -t)
      --speech-window-threads N  the least threads a transcription window runs with (default
                          2): at most speech threads / N windows run at once, each at full
                          speed; the next window is the request with the least audio left
      --no-speech-fallback  no re-decoding at rising temperatures of a window that looks
                          wrong (Whisper's fallback, on by default at temperature 0 as in
                          OpenAI's API; whisper-server's --no-fallback)
      --max-audio-bytes N   largest audio file accepted, encoded (default 26214400)
      --max-audio-seconds S longest audio accepted (default 3600)
      --host ADDR         listen address (default 127.0.0.1; 0.0.0.0 for all interfaces)
      --port N            listen port (default 8080; 0 picks a free one and prints it)
  -np, --parallel N       sequences decoded together (default 4)
  -c, --ctx-size N        KV cache cells shared by all sequences, unified
                          (default: parallel x min(model context, 4096))
  -b, --batch-size N      most tokens per decode step; longer prompts go in chunks (default 512)
  -ngl, --gpu-layers N    layers offloaded to a GPU when there is one (default: all; 0: none)
      --cpu-moe           mixture of experts: keep every layer's expert weights in system
                          memory, the rest on the GPU (a big MoE model on a small GPU)
      --n-cpu-moe N       the same for the experts of the first N layers only
  -t, --threads N         CPU threads (default: all cores)
      --queue-size N      requests that may wait for a free sequence (default 64); more get 429
      --timeout S         per-request deadline in seconds (default 600)
      --max-body-size N   largest request body in bytes (default 33554432)
      --drain-timeout S   on SIGTERM, how long in-flight requests may run on (default 30)
      --db FILE           the SQLite database of API keys, quotas and the audit log (or
                          $MMSERVE_DB; made by `mmserve keys create`): every request then needs
                          a key, and every request is recorded (docs/security.md)
      --audit-retention-days N  audit rows kept this long (default 90, at least 1)
      --capture-db FILE   capture completed calls for fine-tuning into this SQLite file (or
                          $MMSERVE_CAPTURE_DB), personal data replaced by placeholders first;
                          review and export with `mmserve dataset`
      --capture MODE      off, opt-in (default with --capture-db: keys made with --capture,
                          models with capture = true, requests with "store": true) or all
                          (every completed call); "store": false always opts a request out
      --capture-max-mb N  the capture file's cap (default 1024); new records are dropped past it
      --capture-retention-days N  captures kept this long (default 30, at least 1)
      --api-key KEY       require "Authorization: Bearer KEY" on /v1/* (or $MMSERVE_API_KEY)
      --admin-key KEY     the key of POST /models/load and /models/unload when --api-key is set
                          (or $MMSERVE_ADMIN_KEY; without it those are refused)
      --metrics-auth      /metrics needs a key too (an admin key, or one whose endpoints list
                          /metrics); else it is open, as the probes are
      --tls-cert FILE     serve HTTPS with this PEM certificate (chain) ...
      --tls-key FILE      ... and its PEM private key
      --cors-origin URL   an origin browser pages may call the API from (repeatable, or
                          comma-separated; * for any); without it no CORS headers are sent
      --list-routes       print every route with who may call it (JSON lines), then exit
      --privacy-policy F  the privacy policy (TOML): keywords, and rules that refuse or keep local
                          requests holding personal data (reloaded when the file changes)
      --audit-log F       append one JSON line per privacy decision to F (never the values)
      --cloud-url URL     an OpenAI-compatible API (https://api.openai.com/v1, a LiteLLM or vLLM
                          server) where calls without personal data may run, as the privacy
                          policy's route says (route = "cloud" or "auto"; docs/privacy.md)
      --cloud-model NAME  the upstream model (required with --cloud-url)
      --cloud-model-map LOCAL=REMOTE,...  upstream models by the request's "model"
                          (repeatable)
      --cloud-api-key-file F  the endpoint's key, from a file (else $MMSERVE_CLOUD_API_KEY, or
                          the variable --cloud-api-key-env names)
      --cloud-connect-timeout MS  (default 3000)   --cloud-read-timeout MS  (default 30000)
      --cloud-retries N   retries on 429, 5xx and network errors, with backoff (default 2)
      --cloud-backoff MS  first retry's wait, doubled each time (default 200)
      --cloud-breaker-failures N  consecutive failures that stop trying the cloud (default 5)
      --cloud-breaker-cooldown MS  how long before it is tried again (default 30000)
      --cloud-fallback local|error  when the cloud fails: run locally (default) or answer 503
      --cloud-price-per-1k X  the cloud's price per 1K tokens, for the cost-saved metric
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

// The single-model flags: -m (with --mmproj) and --whisper-model (with --vad-model), each named
// after its file as before. They are pinned: a single-model server never unloads.
std::vector<runtime::ModelSpec> models_from_flags(const ArgParser& p,
                                                  const runtime::ModelSpec& defaults) {
  std::vector<runtime::ModelSpec> models;
  const std::string whisper = p.get("--whisper-model");
  const std::string vad = p.get("--vad-model");
  if (!vad.empty() && whisper.empty()) {
    throw Error(ErrorCode::kInvalidInput, "--vad-model needs --whisper-model", "--vad-model");
  }
  const std::string embedding = p.get("--embedding-model");
  std::string text;
  if ((whisper.empty() && embedding.empty()) || p.has("--model")) {
    text = locate_text_model(p.get("--model"));
  } else {
    try {  // with a speech or embedding model, a text model is optional: only if configured
      text = locate_text_model("");
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kNotFound) throw;
    }
  }
  const std::string mmproj = p.get("--mmproj");
  if (!mmproj.empty() && text.empty()) {
    throw Error(ErrorCode::kInvalidInput, "--mmproj needs a text model (-m)", "--mmproj");
  }
  if (!text.empty()) {
    runtime::ModelSpec spec = defaults;
    spec.name = std::filesystem::path(text).stem().string();
    spec.path = text;
    spec.mmproj_path = mmproj;
    spec.pinned = true;
    // An embedding GGUF given as -m is served as what it is.
    if (std::filesystem::is_regular_file(text) &&
        engine::embedding_file_facts(text).is_embedding_model) {
      if (!mmproj.empty()) {
        throw Error(ErrorCode::kInvalidInput,
                    "--mmproj needs a text model; " + text + " is an embedding model", "--mmproj");
      }
      spec.kind = runtime::ModelKind::kEmbedding;
    }
    models.push_back(std::move(spec));
  }
  if (!embedding.empty()) {
    runtime::ModelSpec spec = defaults;
    spec.kind = runtime::ModelKind::kEmbedding;
    spec.name = std::filesystem::path(embedding).stem().string();
    if (!models.empty() && models.front().name == spec.name) spec.name += "-embed";
    spec.path = embedding;
    spec.pinned = true;
    models.push_back(std::move(spec));
  }
  if (!whisper.empty()) {
    runtime::ModelSpec spec = defaults;
    spec.kind = runtime::ModelKind::kSpeech;
    spec.name = std::filesystem::path(whisper).stem().string();
    if (!models.empty() && models.front().name == spec.name) spec.name += "-speech";
    spec.path = whisper;
    spec.vad_path = vad;
    spec.pinned = true;
    models.push_back(std::move(spec));
  }
  return models;
}

// The checks of a model's files that need no load: one line naming the file and the option.
void check_model_files(const runtime::ModelSpec& spec, bool flags) {
  if (spec.kind == runtime::ModelKind::kSpeech) {
    engine::check_speech_model_file(spec.path, flags ? "--whisper-model" : "path");
    if (!spec.vad_path.empty()) {
      engine::check_vad_model_file(spec.vad_path, flags ? "--vad-model" : "vad");
    }
    return;
  }
  engine::inspect_gguf(spec.path);
  if (spec.kind == runtime::ModelKind::kEmbedding) {
    // Any GGUF may embed (a chat model with mean pooling, as llama-server --embeddings).
    return;
  }
  if (const auto facts = engine::embedding_file_facts(spec.path); facts.is_embedding_model) {
    throw Error(ErrorCode::kInvalidInput,
                spec.path + " is an embedding model (" + facts.architecture +
                    "), not a text generator: declare it with kind = \"embedding\"" +
                    (flags ? " (or --embedding-model)" : ""),
                flags ? "--model" : "kind");
  }
  for (const auto& lora : spec.loras) {
    if (!std::filesystem::is_regular_file(lora.path)) {
      throw Error(ErrorCode::kNotFound,
                  std::string(flags ? "--lora" : "lora") + ": model '" + spec.name +
                      "': adapter '" + lora.name + "': no file at " + lora.path,
                  flags ? "--lora" : "lora");
    }
  }
  if (spec.mmproj_path.empty()) return;
  const char* field = flags ? "--mmproj" : "mmproj";
  if (!std::filesystem::exists(spec.mmproj_path)) {
    throw Error(ErrorCode::kNotFound, "projector file not found: " + spec.mmproj_path, field);
  }
  const auto proj = engine::inspect_gguf(spec.mmproj_path);
  if (proj.architecture != "clip") {
    throw Error(ErrorCode::kModelLoad,
                spec.mmproj_path + " is a '" + proj.architecture +
                    "' model, not a multimodal projector (mmproj-*.gguf)",
                field);
  }
}

std::string read_key_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error(ErrorCode::kNotFound, "cannot read the cloud API key file " + path,
                "--cloud-api-key-file");
  }
  std::string key((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!key.empty() && std::isspace(static_cast<unsigned char>(key.back())) != 0) {
    key.pop_back();  // the newline an editor or `echo` leaves
  }
  if (key.empty() || key.find_first_of("\r\n") != std::string::npos) {
    throw Error(ErrorCode::kInvalidInput,
                "the cloud API key file " + path + " must hold the key on one line",
                "--cloud-api-key-file");
  }
  return key;
}

std::chrono::milliseconds millis(const ArgParser& p, const std::string& name,
                                 std::chrono::milliseconds fallback, int min = 1) {
  return std::chrono::milliseconds(positive(p, name, static_cast<int>(fallback.count()), min));
}

// --cloud-*: the cloud executor's endpoint, key, models and failure handling.
void parse_cloud_options(const ArgParser& p, ServeOptions& options) {
  // The price counts what local calls saved, with or without a cloud endpoint.
  const float price = p.get_float("--cloud-price-per-1k", 0);
  if (!(price >= 0) || price > 1000) {
    throw Error(ErrorCode::kInvalidInput,
                "option --cloud-price-per-1k must be a price from 0 to 1000",
                "--cloud-price-per-1k");
  }
  options.privacy.price_per_1k_tokens = price;
  auto& c = options.cloud;
  c.base_url = p.get("--cloud-url");
  if (c.base_url.empty()) {
    for (const char* flag :
         {"--cloud-model", "--cloud-model-map", "--cloud-api-key-file", "--cloud-fallback"}) {
      if (p.has(flag)) {
        throw Error(ErrorCode::kInvalidInput, std::string(flag) + " needs --cloud-url", flag);
      }
    }
    return;
  }
  if (!c.base_url.starts_with("http://") && !c.base_url.starts_with("https://")) {
    throw Error(ErrorCode::kInvalidInput,
                "--cloud-url must start with http:// or https:// (e.g. https://api.openai.com/v1)",
                "--cloud-url");
  }
  while (c.base_url.ends_with('/')) {
    c.base_url.pop_back();
  }
  options.privacy.cloud = true;
  c.default_model = p.get("--cloud-model");
  if (c.default_model.empty()) {
    throw Error(ErrorCode::kInvalidInput,
                "--cloud-url needs --cloud-model (the upstream model, e.g. gpt-4o-mini)",
                "--cloud-model");
  }
  std::string all_pairs;
  for (const auto& given : p.get_all("--cloud-model-map")) {  // repeatable, and comma lists
    all_pairs += given + ",";
  }
  std::stringstream pairs(all_pairs);
  for (std::string pair; std::getline(pairs, pair, ',');) {
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == pair.size()) {
      throw Error(
          ErrorCode::kInvalidInput,
          "--cloud-model-map takes LOCAL=REMOTE pairs separated by commas, not '" + pair + "'",
          "--cloud-model-map");
    }
    c.model_map[pair.substr(0, eq)] = pair.substr(eq + 1);
  }
  if (p.has("--cloud-api-key-file")) {
    c.api_key = read_key_file(p.get("--cloud-api-key-file"));
  } else {
    const std::string env = p.get("--cloud-api-key-env", "MMSERVE_CLOUD_API_KEY");
    const char* key = std::getenv(env.c_str());
    c.api_key = key != nullptr ? key : "";
  }
  c.connect_timeout = millis(p, "--cloud-connect-timeout", c.connect_timeout);
  c.read_timeout = millis(p, "--cloud-read-timeout", c.read_timeout);
  c.retries = positive(p, "--cloud-retries", c.retries, 0);
  if (c.retries > 10) {
    throw Error(ErrorCode::kInvalidInput, "option --cloud-retries must be at most 10",
                "--cloud-retries");
  }
  c.backoff = millis(p, "--cloud-backoff", c.backoff, 0);
  c.breaker_failures = positive(p, "--cloud-breaker-failures", c.breaker_failures);
  c.breaker_cooldown = millis(p, "--cloud-breaker-cooldown", c.breaker_cooldown, 0);
  const std::string fallback = p.get("--cloud-fallback", "local");
  if (fallback != "local" && fallback != "error") {
    throw Error(ErrorCode::kInvalidInput, "--cloud-fallback must be local or error",
                "--cloud-fallback");
  }
  c.fallback_local = fallback == "local";
}

}  // namespace

const char* serve_usage() {
  return kServeUsage;
}

ServeOptions parse_serve_options(const std::vector<std::string>& args) {
  ArgParser p({"-m|--model",
               "--models",
               "--max-memory",
               "--max-models",
               "--admin-key",
               "--mmproj",
               "--lora",
               "--embedding-model",
               "--max-image-bytes",
               "--max-image-pixels",
               "--allow-image-hosts",
               "--host",
               "--port",
               "-np|--parallel",
               "-c|--ctx-size",
               "-b|--batch-size",
               "-ngl|--n-gpu-layers|--gpu-layers",
               "--n-cpu-moe",
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
               "--speech-window-threads",
               "--max-audio-bytes",
               "--max-audio-seconds",
               "--privacy-policy",
               "--audit-log",
               "--cloud-url",
               "--cloud-model",
               "--cloud-model-map",
               "--cloud-api-key-file",
               "--cloud-api-key-env",
               "--cloud-connect-timeout",
               "--cloud-read-timeout",
               "--cloud-retries",
               "--cloud-backoff",
               "--cloud-breaker-failures",
               "--cloud-breaker-cooldown",
               "--cloud-fallback",
               "--cloud-price-per-1k",
               "--db",
               "--audit-retention-days",
               "--capture-db",
               "--capture",
               "--capture-max-mb",
               "--capture-retention-days",
               "--tls-cert",
               "--tls-key",
               "--cors-origin"},
              {"-v|--verbose", "-h|--help", "--log-prompts", "--metrics-auth", "--list-routes",
               "--cpu-moe", "--no-speech-fallback"});
  p.parse(args);
  ServeOptions options;
  options.help = p.flag("--help");
  options.verbose = p.flag("--verbose");
  if (options.help) return options;

  runtime::RuntimeOptions& ro = options.runtime;
  runtime::ModelSpec defaults;  // what flags set for every model
  defaults.parallel = positive(p, "--parallel", 4);
  defaults.ctx_size = positive(p, "--ctx-size", 0, 0);
  defaults.batch_size = positive(p, "--batch-size", 512);
  defaults.speech_parallel = positive(p, "--speech-parallel", defaults.speech_parallel);
  if (p.has("--gpu-layers")) defaults.gpu_layers = positive(p, "--gpu-layers", 0, 0);
  defaults.cpu_moe_layers = positive(p, "--n-cpu-moe", 0, 0);
  if (p.flag("--cpu-moe")) {
    if (p.has("--n-cpu-moe")) {
      throw Error(ErrorCode::kInvalidInput,
                  "--cpu-moe keeps every layer's experts in system memory; give it or --n-cpu-moe",
                  "--n-cpu-moe");
    }
    defaults.cpu_moe_layers = -1;
  }
  if (p.has("--models")) {
    for (const char* single :
         {"--model", "--mmproj", "--whisper-model", "--vad-model", "--embedding-model"}) {
      if (p.has(single)) {
        throw Error(
            ErrorCode::kInvalidInput,
            std::string("--models declares every model; ") + single + " cannot be given with it",
            single);
      }
    }
    ro.models = runtime::parse_models_file(p.get("--models"), defaults);
  } else {
    ro.models = models_from_flags(p, defaults);
    ro.registry.unknown_names_use_default = true;
  }
  if (p.has("--lora")) {
    if (p.has("--models")) {
      throw Error(ErrorCode::kInvalidInput,
                  "--lora is for the -m model; in a models file give the model lora = [...]",
                  "--lora");
    }
    auto text = std::ranges::find_if(
        ro.models, [](const auto& m) { return m.kind == runtime::ModelKind::kText; });
    if (text == ro.models.end()) {
      throw Error(ErrorCode::kInvalidInput, "--lora needs a text model (-m)", "--lora");
    }
    for (const auto& value : p.get_all("--lora")) {
      auto lora = runtime::parse_lora_spec(value, "--lora");
      if (std::ranges::any_of(text->loras, [&](const auto& l) { return l.name == lora.name; })) {
        throw Error(ErrorCode::kInvalidInput, "--lora names '" + lora.name + "' twice", "--lora");
      }
      text->loras.push_back(std::move(lora));
    }
  }
  ro.registry.registration_defaults = defaults;  // POST /models/register
  if (p.has("--max-memory")) {
    ro.registry.max_memory_bytes = runtime::parse_byte_size(p.get("--max-memory"), "--max-memory");
  }
  ro.registry.max_models = positive(p, "--max-models", 0, 0);
  ro.registry.speech_threads = positive(p, "--speech-threads", 0, 0);
  ro.registry.speech_window_threads = positive(p, "--speech-window-threads", 2);
  ro.registry.speech_fallback = !p.flag("--no-speech-fallback");
  ro.registry.threads = positive(p, "--threads", 0, 0);
  ro.registry.queue_size = positive(p, "--queue-size", 64, 0);
  ro.audio_limits.max_bytes = static_cast<size_t>(
      positive(p, "--max-audio-bytes", static_cast<int>(ro.audio_limits.max_bytes)));
  ro.audio_limits.max_seconds =
      positive(p, "--max-audio-seconds", static_cast<int>(ro.audio_limits.max_seconds));
  ro.image_limits.max_bytes = static_cast<size_t>(
      positive(p, "--max-image-bytes", static_cast<int>(ro.image_limits.max_bytes)));
  ro.image_limits.max_pixels =
      positive(p, "--max-image-pixels", static_cast<int>(ro.image_limits.max_pixels));
  std::stringstream hosts(p.get("--allow-image-hosts"));
  for (std::string host; std::getline(hosts, host, ',');) {
    if (!host.empty()) ro.image_hosts.push_back(host);
  }
  ro.request_timeout = std::chrono::seconds(positive(p, "--timeout", 600));
  http::HttpOptions& ho = options.http;
  ho.host = p.get("--host", "127.0.0.1");
  ho.port = positive(p, "--port", 8080, 0);
  if (ho.port > 65535)
    throw Error(ErrorCode::kInvalidInput, "option --port must be at most 65535", "--port");
  ho.max_body_bytes = static_cast<size_t>(positive(p, "--max-body-size", 32 << 20));
  const char* env_key = std::getenv("MMSERVE_API_KEY");
  options.keys.api_key = p.get("--api-key", env_key != nullptr ? env_key : "");
  const char* env_admin = std::getenv("MMSERVE_ADMIN_KEY");
  options.keys.admin_key = p.get("--admin-key", env_admin != nullptr ? env_admin : "");
  ho.log_prompts = p.flag("--log-prompts");
  ho.metrics_auth = p.flag("--metrics-auth");
  ho.tls_cert = p.get("--tls-cert");
  ho.tls_key = p.get("--tls-key");
  for (const auto& list : p.get_all("--cors-origin")) {
    std::stringstream origins(list);
    for (std::string origin; std::getline(origins, origin, ',');) {
      if (origin.empty()) continue;
      if (origin != "*" && !origin.starts_with("http://") && !origin.starts_with("https://")) {
        throw Error(
            ErrorCode::kInvalidInput,
            "--cors-origin takes origins such as https://intranet.example.com, or *; not '" +
                origin + "'",
            "--cors-origin");
      }
      ho.cors_origins.push_back(origin);
    }
  }
  const char* env_db = std::getenv("MMSERVE_DB");
  options.db_path = p.get("--db", env_db != nullptr ? env_db : "");
  options.audit_retention_days = positive(p, "--audit-retention-days", 90);
  if (p.has("--audit-retention-days") && options.db_path.empty()) {
    throw Error(ErrorCode::kInvalidInput, "--audit-retention-days needs --db",
                "--audit-retention-days");
  }
  const char* env_capture = std::getenv("MMSERVE_CAPTURE_DB");
  options.capture_db = p.get("--capture-db", env_capture != nullptr ? env_capture : "");
  options.capture_max_mb = positive(p, "--capture-max-mb", 1024);
  options.capture_retention_days = positive(p, "--capture-retention-days", 30);
  if (!options.capture_db.empty()) {
    options.capture = stages::parse_capture_mode(p.get("--capture", "opt-in"), "--capture");
  } else {
    for (const char* option : {"--capture", "--capture-max-mb", "--capture-retention-days"}) {
      if (p.has(option)) {
        throw Error(ErrorCode::kInvalidInput, std::string(option) + " needs --capture-db", option);
      }
    }
  }
  if (ho.metrics_auth && options.keys.api_key.empty() && options.db_path.empty()) {
    throw Error(ErrorCode::kInvalidInput, "--metrics-auth needs keys: --db or --api-key",
                "--metrics-auth");
  }
  options.list_routes = p.flag("--list-routes");
  options.privacy.policy_path = p.get("--privacy-policy");
  options.privacy.audit_path = p.get("--audit-log");
  options.drain_timeout = std::chrono::seconds(positive(p, "--drain-timeout", 30, 0));
  parse_cloud_options(p, options);

  // Fail fast, with one line, on a model file that cannot work; the full load is in background.
  for (const auto& spec : ro.models) check_model_files(spec, !p.has("--models"));
  return options;
}

}  // namespace mmserve::cli
