#include "http/http_server.h"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <random>

#include "core/error.h"
#include "http/http_error.h"
#include "http/json_fields.h"
#include "http/json_output.h"
#include "http/metrics_routes.h"
#include "http/model_routes.h"
#include "http/request_log.h"
#include "http/routes.h"

namespace mmserve::http {

std::atomic<int>& in_flight_requests() {
  static std::atomic<int> count{0};
  return count;
}

void guarded(httplib::Response& res, const std::function<void()>& handler) {
  in_flight_requests().fetch_add(1);
  struct Done {
    ~Done() { in_flight_requests().fetch_sub(1); }
  } done;
  try {
    handler();
  } catch (const Error& e) {
    write_error(res, e);
  } catch (const std::exception& e) {
    write_internal_error(res, e);
  }
}

runtime::ModelLease acquire_model(runtime::Runtime& runtime, runtime::Task task,
                                  std::string_view model) {
  auto lease = runtime.acquire(task, model);
  note_model(lease->name());
  return lease;
}

std::string new_request_id(const char* prefix) {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t boot = std::random_device{}();
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%s%08llx%06llx", prefix,
                static_cast<unsigned long long>(boot & 0xFFFFFFFFULL),
                static_cast<unsigned long long>(counter.fetch_add(1) & 0xFFFFFFULL));
  return buf;
}

namespace {

Json text_stats_json(const scheduler::SchedulerStats& s) {
  return {
      {"running", s.running}, {"waiting", s.waiting},         {"queue_capacity", s.queue_capacity},
      {"queue_full", s.full}, {"kv_cache_usage", s.kv_usage}, {"cancelled", s.cancelled},
      {"steps", s.steps}};
}

Json speech_stats_json(const scheduler::SpeechStats& s) {
  return {{"running", s.running},      {"active", s.active},
          {"waiting", s.waiting},      {"queued", s.queued},
          {"parallel", s.parallel},    {"queue_capacity", s.queue_capacity},
          {"windows", s.windows_done}, {"cancelled", s.cancelled}};
}

// State, and per loaded model its scheduler's figures. "text" and "speech" repeat the first
// loaded model of each kind (what single-model servers always showed).
Json health_json(runtime::Runtime& rt) {
  Json j = {{"status", "ok"}, {"state", runtime::state_name(rt.state())}};
  if (rt.state() == runtime::State::kReady || rt.state() == runtime::State::kDraining) {
    Json models = Json::object();
    for (const auto& lease : rt.models().loaded()) {
      const bool speech = lease->spec().kind == runtime::ModelKind::kSpeech;
      Json stats = speech ? speech_stats_json(lease->speech().stats())
                          : text_stats_json(lease->text().stats());
      const char* kind = speech ? "speech" : "text";
      if (!j.contains(kind)) j[kind] = stats;
      stats["kind"] = kind;
      models[lease->name()] = std::move(stats);
    }
    j["models"] = std::move(models);
  }
  return j;
}

}  // namespace

HttpServer::HttpServer(runtime::Runtime& runtime, HttpOptions options)
    : runtime_(runtime), options_(std::move(options)) {
  // Every admitted or queued request holds an HTTP worker while it waits, so size the pool
  // for all of them plus room for health checks and refusals.
  const int queue = runtime_.options().registry.queue_size;
  int slots = 8;
  for (const auto& spec : runtime_.models().specs()) {
    slots +=
        (spec.kind == runtime::ModelKind::kSpeech ? spec.speech_parallel : spec.parallel) + queue;
  }
  const int threads = options_.threads > 0 ? options_.threads : std::clamp(slots, 16, 1024);
  server_.new_task_queue = [threads] {
    return new httplib::ThreadPool(static_cast<size_t>(threads));
  };
  server_.set_payload_max_length(options_.max_body_bytes);
  server_.set_keep_alive_max_count(1000);
  server_.set_read_timeout(std::chrono::seconds(30));
  server_.set_socket_options([this](int fd) {
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    listen_fd_.store(fd);
  });

  server_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    begin_request(req);  // X-Request-Id, start time
    if (options_.api_key.empty() || !req.path.starts_with("/v1/")) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    if (req.get_header_value("Authorization") == "Bearer " + options_.api_key) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    write_error(res, Error(ErrorCode::kUnauthorized,
                           "missing or wrong API key: send Authorization: Bearer <key>"));
    return httplib::Server::HandlerResponse::Handled;
  });

  // Every response: echo X-Request-Id and count it (before it is written); then log it.
  server_.set_post_routing_handler(
      [](const httplib::Request& req, httplib::Response& res) { before_response(req, res); });
  server_.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    after_response(req, res, {.capture_text = options_.log_prompts});
  });

  // Errors httplib produces itself (unknown route, body too large, bad request line).
  server_.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 413) {
      write_error(res, Error(ErrorCode::kPayloadTooLarge,
                             "the request body is larger than --max-body-size (" +
                                 std::to_string(options_.max_body_bytes) + " bytes)",
                             "body"));
    } else if (res.status == 404) {
      write_error(res, Error(ErrorCode::kNotFound, "no route " + req.method + " " + req.path));
    } else {
      const int status = res.status;
      const Error error(ErrorCode::kInvalidInput, "bad HTTP request (" + std::to_string(status) +
                                                      " " + httplib::status_message(status) + ")");
      res.set_content(error_json(error, status), "application/json");
    }
  });
  server_.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          write_internal_error(res, e);
        } catch (...) {
          write_error(res, Error(ErrorCode::kInternal, "internal error"));
        }
      });

  server_.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    write_json(res, health_json(runtime_));
  });
  server_.Get("/ready", [this](const httplib::Request&, httplib::Response& res) {
    Json j = health_json(runtime_);
    const auto state = runtime_.state();
    bool ready = state == runtime::State::kReady;
    // A loaded model's scheduler that would refuse a request now (429) makes the replica
    // unready, so that a balancer sends that work elsewhere.
    for (const auto& lease :
         ready ? runtime_.models().loaded() : std::vector<runtime::ModelLease>{}) {
      const bool speech = lease->spec().kind == runtime::ModelKind::kSpeech;
      if (speech ? lease->speech().stats().full : lease->text().stats().full) {
        ready = false;
        j["reason"] = speech ? "the speech queue is full" : "the wait queue is full";
        j["model"] = lease->name();
        break;
      }
    }
    if (state != runtime::State::kReady) {
      j["reason"] = runtime_.detail();
    }
    j["status"] = ready ? "ready" : "unavailable";
    res.status = ready ? 200 : 503;
    write_json(res, j);
  });
  register_inference_routes(server_, runtime_);
  register_openai_routes(server_, runtime_);
  register_audio_routes(server_, runtime_);
  register_metrics_routes(server_, runtime_);
  register_model_routes(server_, runtime_,
                        {.api_key = options_.api_key, .admin_key = options_.admin_key});
}

HttpServer::~HttpServer() {
  stop();
}

int HttpServer::bind() {
  const int port = options_.port == 0
                       ? server_.bind_to_any_port(options_.host)
                       : (server_.bind_to_port(options_.host, options_.port) ? options_.port : -1);
  if (port < 0) {
    throw Error(ErrorCode::kUnavailable,
                "cannot listen on " + options_.host + ":" + std::to_string(options_.port) +
                    " (address in use or not permitted)",
                "port");
  }
  // httplib listens with a backlog of 5; bursts of concurrent clients need a deeper queue.
  if (const int fd = listen_fd_.load(); fd >= 0) ::listen(fd, 512);
  return port;
}

void HttpServer::serve() {
  server_.listen_after_bind();
  flush_request_log(std::chrono::seconds(2));  // bounded: stderr may be a pipe nobody reads
}

void HttpServer::stop() {
  if (server_.is_running()) server_.stop();
}

}  // namespace mmserve::http
