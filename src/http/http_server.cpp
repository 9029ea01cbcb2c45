#include "http/http_server.h"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <random>

#include "core/error.h"
#include "http/adapter_routes.h"
#include "http/http_error.h"
#include "http/json_fields.h"
#include "http/json_output.h"
#include "http/metrics_routes.h"
#include "http/model_routes.h"
#include "http/request_log.h"
#include "http/web_routes.h"

namespace mmserve::http {

std::atomic<int>& in_flight_requests() {
  static std::atomic<int> count{0};
  return count;
}

void guarded(ApiResponse& res, const std::function<void()>& handler) {
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
  } catch (...) {
    write_error(res, Error(ErrorCode::kInternal, "internal error"));
  }
}

pipeline::Submission submit_call(const Services& services, Exchange& exchange) {
  // "model": "base:adapter" asks for a LoRA adapter of model "base" (runtime/lora_table.h).
  auto& call = exchange.call;
  if (auto split = runtime::split_adapter_model(services.runtime.models(), call.model)) {
    call.model = std::move(split->first);
    call.generation.lora_refs.insert(call.generation.lora_refs.begin(),
                                     {.name = std::move(split->second), .field = "model"});
  }
  pipeline::Submission s = services.pipeline.submit(exchange.call);
  exchange.record.model = s.model;
  exchange.record.route = exchange.call.executor;
  return s;
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

std::optional<pipeline::Operation> operation_of(std::string_view method, std::string_view path,
                                                bool metrics_auth) {
  if (path == "/metrics") {
    return metrics_auth ? std::optional(pipeline::Operation::kReadMetrics) : std::nullopt;
  }
  if (path.starts_with("/models/")) {
    return pipeline::Operation::kManageModels;
  }
  if (!path.starts_with("/v1/")) {
    return std::nullopt;
  }
  if (method == "GET" && (path == "/v1/models" || path.starts_with("/v1/models/"))) {
    return pipeline::Operation::kReadModels;
  }
  if (method == "GET" && path == "/v1/usage") {
    return pipeline::Operation::kReadUsage;
  }
  return pipeline::Operation::kInference;
}

namespace {

constexpr const char* kExchangeKey = "mmserve.exchange";
constexpr const char* kDataClassHeader = "X-Data-Class";
constexpr const char* kRouteHeader = "X-Mmserve-Route";

// The headers a browser page may read from our answers (CORS), besides the simple ones.
constexpr const char* kExposedHeaders =
    "X-Request-Id, X-Mmserve-Route, Retry-After, x-ratelimit-limit-requests, "
    "x-ratelimit-remaining-requests, x-ratelimit-reset-requests, x-ratelimit-limit-tokens, "
    "x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens, x-ratelimit-limit-audio-seconds, "
    "x-ratelimit-remaining-audio-seconds, x-ratelimit-reset-audio-seconds";

bool origin_allowed(const std::vector<std::string>& allowed, const std::string& origin) {
  return !origin.empty() && std::any_of(allowed.begin(), allowed.end(),
                                        [&](const auto& a) { return a == "*" || a == origin; });
}

// OpenAI's reset format: "20ms", "17s", "6m0s", "1h2m3s".
std::string reset_text(int64_t ms) {
  if (ms < 1000) {
    return std::to_string(std::max<int64_t>(ms, 0)) + "ms";
  }
  const int64_t s = (ms + 999) / 1000;
  const int64_t h = s / 3600;
  const int64_t m = (s % 3600) / 60;
  std::string out;
  if (h > 0) out += std::to_string(h) + "h";
  if (h > 0 || m > 0) out += std::to_string(m) + "m";
  return out + std::to_string(s % 60) + "s";
}

// The caller's standing against its key's quotas, as OpenAI's x-ratelimit-* headers.
void set_rate_limit_headers(const pipeline::RateLimitStatus& r, httplib::Response& res) {
  const auto put = [&res](const char* what, int64_t limit, int64_t remaining, int64_t reset_ms) {
    if (limit <= 0) {
      return;
    }
    res.set_header(std::string("x-ratelimit-limit-") + what, std::to_string(limit));
    res.set_header(std::string("x-ratelimit-remaining-") + what, std::to_string(remaining));
    res.set_header(std::string("x-ratelimit-reset-") + what, reset_text(reset_ms));
  };
  put("requests", r.limit_requests, r.remaining_requests, r.reset_requests_ms);
  put("tokens", r.limit_tokens, r.remaining_tokens, r.reset_tokens_ms);
  put("audio-seconds", r.limit_audio_seconds, r.remaining_audio_seconds, r.reset_audio_seconds_ms);
}

// A route pattern's regex captures replaced by a sample value: a path the route answers.
std::string sample_path(const std::string& pattern) {
  std::string out;
  int depth = 0;
  for (const char c : pattern) {
    if (c == '(') {
      if (depth++ == 0) out += "x";
    } else if (c == ')') {
      --depth;
    } else if (depth == 0) {
      out += c;
    }
  }
  return out;
}

std::string bearer_of(const std::string& authorization) {
  constexpr std::string_view kScheme = "Bearer ";
  return authorization.starts_with(kScheme) ? authorization.substr(kScheme.size()) : std::string();
}

// The request's exchange, made (and its log record begun) when the pre-routing hook did not
// run: cpp-httplib refused the request itself (body too large, bad request line).
Exchange& exchange_of(const httplib::Request& req, httplib::Response& res) {
  if (auto* ex = res.user_data.get<std::shared_ptr<Exchange>>(kExchangeKey)) {
    return **ex;
  }
  auto ex = std::make_shared<Exchange>();
  begin_request(*ex, req.method, req.path, req.get_header_value(kRequestIdHeader));
  res.user_data.set(kExchangeKey, ex);
  return *ex;
}

ApiRequest api_request(const httplib::Request& req) {
  ApiRequest a;
  a.method = req.method;
  a.path = req.path;
  a.body = req.body;
  a.remote_addr = req.remote_addr;
  for (const auto& [key, value] : req.headers) {
    a.headers.emplace_back(key, value);
  }
  a.multipart = req.is_multipart_form_data();
  for (const auto& [name, field] : req.form.fields) {
    a.form.push_back({name, field.content, false});
  }
  for (const auto& [name, file] : req.form.files) {
    a.form.push_back({name, file.content, true});
  }
  for (const auto& [key, value] : req.params) {
    a.query.emplace_back(key, value);
  }
  for (size_t i = 1; i < req.matches.size(); ++i) {
    a.path_params.push_back(req.matches[i].str());
  }
  return a;
}

// A ChunkSink over cpp-httplib's DataSink.
class DataSinkWriter : public ChunkSink {
 public:
  explicit DataSinkWriter(httplib::DataSink& sink) : sink_(sink) {}
  bool write(std::string_view bytes) override { return sink_.write(bytes.data(), bytes.size()); }
  void done() override {
    finished_ = true;
    sink_.done();
  }
  bool finished() const { return finished_; }

 private:
  httplib::DataSink& sink_;
  bool finished_ = false;
};

// Writes our response into cpp-httplib's.
void apply(ApiResponse&& out, httplib::Response& res) {
  res.status = out.status;
  for (auto& [name, value] : out.headers) {
    res.set_header(name, value);
  }
  if (!out.stream) {
    res.set_content(std::move(out.body), out.content_type);
    return;
  }
  in_flight_requests().fetch_add(1);  // until the stream is released, however it ends
  res.set_chunked_content_provider(
      out.content_type,
      [stream = std::move(out.stream)](size_t, httplib::DataSink& sink) noexcept {
        DataSinkWriter writer(sink);
        const bool more = stream(writer);  // never throws (ApiResponse::stream)
        return more || writer.finished();
      },
      [end = std::move(out.on_stream_end)](bool success) noexcept {
        if (end) {
          end(success);
        }
        in_flight_requests().fetch_sub(1);
      });
}

void apply_error(const Error& error, httplib::Response& res) {
  ApiResponse out;
  write_error(out, error);
  apply(std::move(out), res);
}

}  // namespace

HttpServer::HttpServer(runtime::Runtime& runtime, const pipeline::Pipeline& pipeline,
                       HttpOptions options, UsageSources usage, stages::CaptureWriter* capture)
    : runtime_(runtime),
      pipeline_(pipeline),
      options_(std::move(options)),
      services_{runtime_, pipeline_, usage, capture} {
  if (options_.tls_cert.empty() != options_.tls_key.empty()) {
    throw Error(ErrorCode::kInvalidInput, "--tls-cert and --tls-key go together", "--tls-cert");
  }
  if (options_.tls_cert.empty()) {
    server_ = std::make_unique<httplib::Server>();
  } else {
    auto tls =
        std::make_unique<httplib::SSLServer>(options_.tls_cert.c_str(), options_.tls_key.c_str());
    if (!tls->is_valid()) {
      throw Error(ErrorCode::kInvalidInput,
                  "cannot use --tls-cert " + options_.tls_cert + " with --tls-key " +
                      options_.tls_key +
                      ": both must be readable PEM files, the key the certificate's",
                  "--tls-cert");
    }
    server_ = std::move(tls);
  }
  // Every admitted or queued request holds an HTTP worker while it waits, so size the pool
  // for all of them plus room for health checks and refusals.
  const int queue = runtime_.options().registry.queue_size;
  int slots = 8;
  for (const auto& spec : runtime_.models().specs()) {
    slots +=
        (spec.kind == runtime::ModelKind::kSpeech ? spec.speech_parallel : spec.parallel) + queue;
  }
  const int threads = options_.threads > 0 ? options_.threads : std::clamp(slots, 16, 1024);
  server_->new_task_queue = [threads] {
    return new httplib::ThreadPool(static_cast<size_t>(threads));
  };
  server_->set_payload_max_length(options_.max_body_bytes);
  server_->set_keep_alive_max_count(1000);
  server_->set_read_timeout(std::chrono::seconds(30));
  server_->set_socket_options([this](int fd) {
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    listen_fd_.store(fd);
  });

  // Before the body is read: the exchange, its log record, and the call's admission.
  server_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    auto ex = std::make_shared<Exchange>();
    ex->pipeline = &pipeline_;
    begin_request(*ex, req.method, req.path, req.get_header_value(kRequestIdHeader));
    res.user_data.set(kExchangeKey, ex);
    // A CORS preflight carries no key: the OPTIONS handler answers it.
    const auto operation = req.method == "OPTIONS"
                               ? std::nullopt
                               : operation_of(req.method, req.path, options_.metrics_auth);
    if (!operation) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    ex->record.admitted = true;
    ex->record.client = req.remote_addr;
    auto& call = ex->call;
    call.operation = *operation;
    call.endpoint = req.path;
    call.credentials.bearer = bearer_of(req.get_header_value("Authorization"));
    call.executor = pipeline_.default_executor();
    call.deadline = pipeline::Clock::now() + runtime_.options().request_timeout;
    // cpp-httplib keeps the request alive until the response is destroyed (with the exchange).
    call.cancellation =
        std::make_shared<pipeline::Cancellation>([&req] { return req.is_connection_closed(); });
    try {
      pipeline_.admit(call);
      call.data_class =
          pipeline::parse_data_class(req.get_header_value(kDataClassHeader), kDataClassHeader);
    } catch (const Error& e) {
      apply_error(e, res);
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  // Every response: echo X-Request-Id and count it (before it is written); then log it.
  server_->set_post_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    Exchange& ex = exchange_of(req, res);
    res.set_header(kRequestIdHeader, ex.call.request_id);
    if (ex.record.submitted) {
      res.set_header(kRouteHeader, ex.record.route);  // where it ran, on every answer
    }
    if (ex.call.rate_limit) {
      set_rate_limit_headers(*ex.call.rate_limit, res);
    }
    if (const std::string origin = req.get_header_value("Origin");
        origin_allowed(options_.cors_origins, origin)) {
      res.set_header("Access-Control-Allow-Origin", origin);
      res.set_header("Access-Control-Expose-Headers", kExposedHeaders);
      res.set_header("Vary", "Origin");
    }
    before_response(ex, res.status, static_cast<bool>(res.content_provider_),
                    res.get_header_value("Content-Type"), res.body);
  });
  server_->set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    const auto* stored = res.user_data.get<std::shared_ptr<Exchange>>(kExchangeKey);
    const auto ex = stored != nullptr ? *stored : std::make_shared<Exchange>();
    if (stored == nullptr) {
      begin_request(*ex, req.method, req.path, req.get_header_value(kRequestIdHeader));
    }
    const std::string content_type = res.get_header_value("Content-Type");
    after_response(*ex,
                   {.method = req.method,
                    .path = req.path,
                    .remote_addr = req.remote_addr,
                    .request_body = req.body,
                    .status = res.status,
                    .content_type = content_type,
                    .body = res.body,
                    .streaming = static_cast<bool>(res.content_provider_)},
                   {.capture_text = options_.log_prompts});
  });

  // Errors httplib produces itself (unknown route, body too large, bad request line).
  server_->set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) {
      return;
    }
    if (res.status == 413) {
      apply_error(Error(ErrorCode::kPayloadTooLarge,
                        "the request body is larger than --max-body-size (" +
                            std::to_string(options_.max_body_bytes) + " bytes)",
                        "body"),
                  res);
    } else if (res.status == 404) {
      apply_error(Error(ErrorCode::kNotFound, "no route " + req.method + " " + req.path), res);
    } else {
      const int status = res.status;
      const Error error(ErrorCode::kInvalidInput, "bad HTTP request (" + std::to_string(status) +
                                                      " " + httplib::status_message(status) + ")");
      res.set_content(error_json(error, status), "application/json");
    }
  });
  server_->set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          apply_error(Error(ErrorCode::kInternal, std::string("internal error: ") + e.what()), res);
        } catch (...) {
          apply_error(Error(ErrorCode::kInternal, "internal error"), res);
        }
      });

  for (auto family : {health_routes, inference_routes, chat_routes, responses_routes, openai_routes,
                      audio_routes, privacy_routes, metrics_routes, model_routes, usage_routes,
                      embedding_routes, web_routes, feedback_routes, adapter_routes}) {
    for (auto& route : family(services_)) {
      install(std::move(route));
    }
  }
  if (!options_.cors_origins.empty()) {
    install_cors();
  }
}

void HttpServer::install_cors() {
  // Preflights: a browser asks before a cross-origin POST with JSON or an Authorization header.
  server_->Options(".*", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string origin = req.get_header_value("Origin");
    if (!origin_allowed(options_.cors_origins, origin)) {
      apply_error(Error(ErrorCode::kForbidden,
                        "origin '" + origin + "' is not allowed (serve --cors-origin)", "Origin"),
                  res);
      return;
    }
    res.status = 204;
    res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    res.set_header("Access-Control-Allow-Headers",
                   "Authorization, Content-Type, X-Data-Class, X-Request-Id");
    res.set_header("Access-Control-Max-Age", "600");
  });
  routes_.push_back({"OPTIONS", ".*", "public"});
}

void HttpServer::install(Route route) {
  const auto operation =
      operation_of(route.method, sample_path(route.pattern), options_.metrics_auth);
  const char* access = !operation                                         ? "public"
                       : *operation == pipeline::Operation::kManageModels ? "admin"
                       : *operation == pipeline::Operation::kReadMetrics  ? "metrics"
                                                                          : "key";
  routes_.push_back({route.method, route.pattern, access});
  auto handler = [h = std::move(route.handler)](const httplib::Request& req,
                                                httplib::Response& res) {
    Exchange& ex = exchange_of(req, res);
    ApiResponse out;
    guarded(out, [&] { h(api_request(req), out, ex); });
    apply(std::move(out), res);
  };
  if (std::string_view(route.method) == "GET") {
    server_->Get(route.pattern, std::move(handler));
  } else {
    server_->Post(route.pattern, std::move(handler));
  }
}

HttpServer::~HttpServer() {
  stop();
}

int HttpServer::bind() {
  const int port = options_.port == 0
                       ? server_->bind_to_any_port(options_.host)
                       : (server_->bind_to_port(options_.host, options_.port) ? options_.port : -1);
  if (port < 0) {
    throw Error(ErrorCode::kUnavailable,
                "cannot listen on " + options_.host + ":" + std::to_string(options_.port) +
                    " (address in use or not permitted)",
                "port");
  }
  // httplib listens with a backlog of 5; bursts of concurrent clients need a deeper queue.
  if (const int fd = listen_fd_.load(); fd >= 0) {
    ::listen(fd, 512);
  }
  return port;
}

void HttpServer::serve() {
  server_->listen_after_bind();
  flush_request_log(std::chrono::seconds(2));  // bounded: stderr may be a pipe nobody reads
}

void HttpServer::stop() {
  // Unconditionally: a stop() that comes between bind() and serve() (a SIGTERM right after the
  // "listening" line) must still close the socket, or serve() would then listen for ever.
  // httplib's stop() takes the descriptor atomically, so a second call does nothing.
  server_->stop();
}

}  // namespace mmserve::http
