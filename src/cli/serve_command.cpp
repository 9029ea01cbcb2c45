// `mmserve serve`: the HTTP server. Loads the model in the background (so /health answers and
// /ready says 503 meanwhile), serves until SIGTERM/SIGINT, then drains: new requests get 503,
// in-flight ones finish within --drain-timeout, after which they are cancelled; exit 0.
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <thread>

#include "cli/commands.h"
#include "cli/serve_options.h"
#include "cli/systemd_notify.h"
#include "core/error.h"
#include "engine/backend.h"
#include "executors/cloud/cloud_executor.h"
#include "executors/local/local_executor.h"
#include "http/http_server.h"
#include "http/routes.h"
#include "metrics/server_metrics.h"
#include "pipeline/pipeline.h"
#include "runtime/process_memory.h"
#include "runtime/runtime.h"
#include "stages/audit/audit_stage.h"
#include "stages/auth/api_key_stage.h"
#include "stages/capture/capture_stage.h"
#include "stages/privacy/privacy_stage.h"
#include "stages/quota/quota_stage.h"
#include "store/audit_store.h"
#include "store/database.h"
#include "store/key_store.h"

namespace mmserve::cli {
namespace {

void log_model_event(const runtime::ModelEvent& e) {
  using Kind = runtime::ModelEvent::Kind;
  const double mib = static_cast<double>(e.memory_bytes) / (1 << 20);
  if (e.kind == Kind::kLoaded) {
    std::fprintf(stderr, "mmserve: model '%s' loaded in %.2f s (about %.0f MiB)\n", e.model.c_str(),
                 e.seconds, mib);
  } else if (e.kind == Kind::kUnloaded) {
    std::fprintf(stderr, "mmserve: model '%s' unloaded (%s; about %.0f MiB)\n", e.model.c_str(),
                 e.reason.c_str(), mib);
  } else {
    std::fprintf(stderr, "mmserve: model '%s' failed to load: %s\n", e.model.c_str(),
                 e.reason.c_str());
  }
  metrics::server_metrics().record_model_event(e.model,
                                               e.kind == Kind::kLoaded     ? "load"
                                               : e.kind == Kind::kUnloaded ? "unload"
                                                                           : "load_failed",
                                               e.seconds);
}

// Requests waiting for the local text model a call names (the largest queue among the loaded
// text models when it names none, or none known): route "auto"'s overflow signal. A model not
// loaded yet has nobody waiting.
int local_queue_waiting(const runtime::Runtime& runtime, const pipeline::Call& call) {
  std::string name;
  if (!call.model.empty()) {
    try {
      name = runtime.models().spec(call.model).name;
    } catch (const Error&) {  // a name the registry answers with its default model
    }
  }
  int waiting = 0;
  for (const auto& lease : runtime.models().loaded()) {
    if (lease->spec().kind != runtime::ModelKind::kText ||
        (!name.empty() && lease->name() != name)) {
      continue;
    }
    waiting = std::max(waiting, lease->text().stats().waiting);
  }
  return waiting;
}

// The registry's name of the model a call runs on, for a key's model scope ("" when the registry
// does not know the name: the executor answers that call with its 404).
std::string model_name_of(const runtime::Runtime& runtime, const pipeline::Call& call) {
  try {
    if (!call.model.empty()) {
      return runtime.models().spec(call.model).name;
    }
    for (const auto& spec : runtime.models().specs()) {
      if (spec.serves(call.task)) return spec.name;  // the task's default: its first model
    }
  } catch (const Error&) {
  }
  return {};
}

bool loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.starts_with("127.");
}

// Says, once, what protects the server: nothing on a reachable address is the case to shout.
void warn_about_keys(const ServeOptions& options, const store::KeyStore* keys) {
  const auto& host = options.http.host;
  if (keys == nullptr && options.keys.api_key.empty() && !loopback(host)) {
    std::fprintf(stderr,
                 "mmserve: WARNING: listening on %s without any API key: anyone who can reach "
                 "this port can use every model and the admin endpoints. Create keys with "
                 "`mmserve keys create NAME --db FILE` and start with --db FILE (or --api-key)\n",
                 host.c_str());
  }
  if (keys != nullptr && keys->active_count() == 0 && options.keys.api_key.empty() &&
      options.keys.admin_key.empty()) {
    std::fprintf(stderr,
                 "mmserve: WARNING: the database %s holds no active key: every request is "
                 "refused until one is created (`mmserve keys create NAME --db %s`)\n",
                 options.db_path.c_str(), options.db_path.c_str());
  }
}

}  // namespace

int run_serve(const std::vector<std::string>& args) {
  // Before any thread starts: a few arenas keep the heap of ~100 HTTP threads compact.
  runtime::limit_malloc_arenas(4);
  const ServeOptions options = parse_serve_options(args);
  if (options.help) {
    std::cout << serve_usage();
    return 0;
  }
  engine::set_verbose_engine_logs(options.verbose);
  const runtime::RuntimeOptions& ro = options.runtime;
  const http::HttpOptions& ho = options.http;
  const auto drain_timeout = options.drain_timeout;

  // Signals are taken by one thread with sigwait; block them everywhere else first.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a client that vanished must not kill the process

  // The database of keys and the audit log, when there is one.
  std::unique_ptr<store::Database> database;
  std::unique_ptr<store::KeyStore> key_store;
  std::unique_ptr<store::AuditStore> audit_store;
  stages::ApiKeys keys = options.keys;
  if (!options.db_path.empty()) {
    database = std::make_unique<store::Database>(options.db_path);
    key_store = std::make_unique<store::KeyStore>(*database);
    audit_store = std::make_unique<store::AuditStore>(*database);
    keys.database = key_store.get();
    std::fprintf(stderr, "mmserve: database %s: %lld active keys; every request is audited\n",
                 options.db_path.c_str(), static_cast<long long>(key_store->active_count()));
  }

  runtime::Runtime runtime(ro);
  // The path of every call, in order: who is calling, whether its quotas allow it, what personal
  // data it holds (and so where it may run), then the model on this machine; the audit log
  // records how each ended.
  pipeline::Pipeline pipeline;
  pipeline.add_stage(std::make_unique<stages::ApiKeyStage>(
      keys, [&runtime](const pipeline::Call& call) { return model_name_of(runtime, call); }));
  auto quota = std::make_unique<stages::QuotaStage>(audit_store.get());
  const stages::QuotaStage* quotas = quota.get();
  pipeline.add_stage(std::move(quota));
  auto privacy = std::make_unique<stages::PrivacyStage>(
      options.privacy,
      [&runtime](const pipeline::Call& call) { return local_queue_waiting(runtime, call); });
  const stages::PrivacyStage* privacy_stage = privacy.get();
  pipeline.add_stage(std::move(privacy));
  if (audit_store) {
    pipeline.add_stage(
        std::make_unique<stages::AuditStage>(*audit_store, options.audit_retention_days));
  }
  // Capture comes last: the audit row is written first, then the call is queued for the capture
  // writer (a push; the writer redacts with the privacy policy in force, then writes). Its store
  // and writer go before the server, which is destroyed first.
  std::unique_ptr<store::CaptureStore> capture_store;
  std::unique_ptr<stages::CaptureWriter> capture_writer;
  if (!options.capture_db.empty()) {
    capture_store = std::make_unique<store::CaptureStore>(
        options.capture_db, static_cast<int64_t>(options.capture_max_mb) * 1024 * 1024);
    capture_writer = std::make_unique<stages::CaptureWriter>(
        *capture_store,
        [privacy_stage] {
          privacy::ScanOptions scan = privacy_stage->policy()->scan;
          scan.person_names = true;
          scan.addresses = true;
          return scan;
        },
        stages::CaptureWriter::kDefaultCapacity, options.capture_retention_days);
    pipeline.add_stage(std::make_unique<stages::CaptureStage>(
        options.capture, *capture_writer, [&runtime](const std::string& model) {
          try {
            return runtime.models().spec(model).capture;
          } catch (const std::exception&) {
            return false;  // unregistered meanwhile
          }
        }));
    std::fprintf(stderr,
                 "mmserve: capture %s into %s (cap %d MB, kept %d days; personal data replaced "
                 "by placeholders)\n",
                 stages::capture_mode_name(options.capture), options.capture_db.c_str(),
                 options.capture_max_mb, options.capture_retention_days);
  }
  auto local = std::make_unique<executors::LocalExecutor>(runtime);
  const pipeline::Executor* local_executor = local.get();
  pipeline.add_executor(std::move(local));  // the first: the default
  if (options.privacy.cloud) {
    // Only calls the privacy stage routed to it, and it falls back to the local one.
    pipeline.add_executor(
        std::make_unique<executors::CloudExecutor>(options.cloud, local_executor));
    std::fprintf(stderr,
                 "mmserve: cloud endpoint %s (model %s) for calls without personal data, as the "
                 "privacy policy's route says\n",
                 options.cloud.base_url.c_str(), options.cloud.default_model.c_str());
  }
  http::HttpServer server(runtime, pipeline, ho,
                          {.audit = audit_store.get(), .keys = key_store.get(), .quotas = quotas},
                          capture_writer.get());
  if (options.list_routes) {
    for (const auto& r : server.routes()) {
      std::printf("{\"method\":\"%s\",\"pattern\":\"%s\",\"access\":\"%s\"}\n", r.method.c_str(),
                  r.pattern.c_str(), r.access.c_str());
    }
    return 0;
  }
  const int port = server.bind();
  warn_about_keys(options, key_store.get());
  runtime.models().set_observer(log_model_event);
  for (const auto& spec : ro.models) {
    // An embedding model has no generation slots: its inputs share one context per decode.
    const std::string slots =
        spec.kind == runtime::ModelKind::kEmbedding
            ? "batched inputs"
            : "parallel " + std::to_string(spec.kind == runtime::ModelKind::kSpeech
                                               ? spec.speech_parallel
                                               : spec.parallel);
    std::fprintf(stderr, "mmserve: model '%s': %s %s (%s)%s\n", spec.name.c_str(),
                 runtime::model_kind_name(spec.kind), spec.path.c_str(), slots.c_str(),
                 spec.preload ? "" : ", loaded at its first request");
  }
  systemd_notify("STATUS=loading models");
  runtime.start_loading();
  std::printf("mmserve listening on %s://%s:%d\n", server.tls() ? "https" : "http", ho.host.c_str(),
              port);
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
    systemd_notify("STOPPING=1\nSTATUS=draining");
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
    const runtime::State state = runtime.state();
    if (state == runtime::State::kFailed) {
      std::fprintf(stderr, "mmserve: error: %s\n", runtime.detail().c_str());
      systemd_notify(systemd_status("model failed to load: " + runtime.detail()));
    } else if (state == runtime::State::kReady) {  // not when a drain began during the load
      std::fprintf(stderr, "mmserve: ready\n");
      systemd_notify("READY=1\n" +
                     systemd_status("ready, listening on port " + std::to_string(port)));
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
