// The fake OpenAI-compatible endpoint of the cloud executor's tests (cloud_executor_test.cpp,
// cloud_stream_test.cpp): a real httplib::Server on 127.0.0.1 that records every request and
// answers from a script, the SSE pieces it sends, a stand-in for the local executor, and the
// helpers that make a clean call and read a generation.
#pragma once

#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "executors/cloud/cloud_executor.h"

namespace cloud_test {

using namespace mmserve;
using namespace std::chrono_literals;
using Json = nlohmann::json;

inline std::string sse(const Json& payload) {
  return "data: " + payload.dump() + "\n\n";
}
inline std::string delta(const std::string& text) {
  return sse({{"choices", {{{"index", 0}, {"delta", {{"content", text}}}}}}});
}
inline std::string finish(const std::string& reason) {
  return sse({{"choices", {{{"index", 0}, {"delta", Json::object()}, {"finish_reason", reason}}}}});
}
inline std::string usage(int prompt, int completion) {
  return sse({{"choices", Json::array()},
              {"usage", {{"prompt_tokens", prompt}, {"completion_tokens", completion}}}});
}
inline const std::string kDone = "data: [DONE]\n\n";

// The fake endpoint. `answer` is called for every request with its index (0 first).
class FakeCloud {
 public:
  using Answer = std::function<void(int index, const httplib::Request&, httplib::Response&)>;

  explicit FakeCloud(Answer answer) : answer_(std::move(answer)) {
    server_.Post("/v1/chat/completions",
                 [this](const httplib::Request& req, httplib::Response& res) {
                   int index = 0;
                   Answer answer;
                   {
                     std::lock_guard lock(mutex_);
                     index = static_cast<int>(bodies_.size());
                     bodies_.push_back(Json::parse(req.body, nullptr, false));
                     authorization_ = req.get_header_value("Authorization");
                     answer = answer_;
                   }
                   answer(index, req, res);
                 });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    server_.wait_until_ready();
  }
  ~FakeCloud() {
    release();
    server_.stop();
    thread_.join();
  }
  FakeCloud(const FakeCloud&) = delete;
  FakeCloud& operator=(const FakeCloud&) = delete;

  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  int requests() const {
    std::lock_guard lock(mutex_);
    return static_cast<int>(bodies_.size());
  }
  Json body(int index) const {
    std::lock_guard lock(mutex_);
    return bodies_.at(static_cast<size_t>(index));
  }
  std::string authorization() const {
    std::lock_guard lock(mutex_);
    return authorization_;
  }
  void set_answer(Answer answer) {
    std::lock_guard lock(mutex_);
    answer_ = std::move(answer);
  }

  // For answers that hang: waits until release() (or `limit`); true when released.
  bool hold(std::chrono::milliseconds limit) {
    std::unique_lock lock(mutex_);
    return released_cv_.wait_for(lock, limit, [this] { return released_; });
  }
  void release() {
    {
      std::lock_guard lock(mutex_);
      released_ = true;
    }
    released_cv_.notify_all();
  }
  // Set by answers that saw the client close the connection.
  std::atomic<bool> saw_close{false};

 private:
  mutable std::mutex mutex_;
  std::condition_variable released_cv_;
  bool released_ = false;
  std::vector<Json> bodies_;
  std::string authorization_;
  Answer answer_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

// A streamed answer of `events`, written in pieces of 7 bytes (lines split across chunks).
inline void stream(httplib::Response& res, std::string events) {
  res.set_chunked_content_provider(
      "text/event-stream", [events = std::move(events)](size_t, httplib::DataSink& sink) {
        for (size_t i = 0; i < events.size(); i += 7) {
          if (!sink.write(events.data() + i, std::min<size_t>(7, events.size() - i))) {
            return false;
          }
        }
        sink.done();
        return true;
      });
}

inline void fail(httplib::Response& res, int status) {
  res.status = status;
  res.set_content(R"({"error":{"message":"upstream says no","type":"server_error"}})",
                  "application/json");
}

inline const std::string kHello =
    delta("Hel") + delta("lo") + delta(" world") + finish("stop") + usage(11, 3) + kDone;

// The local executor's stand-in: records that it ran, answers "local answer".
class FakeLocal : public pipeline::Executor {
 public:
  std::string_view name() const override { return "local"; }
  pipeline::Submission submit(pipeline::Call& call) const override {
    calls.fetch_add(1);
    {
      std::lock_guard lock(mutex);
      last = call;
    }
    auto generation = std::make_shared<scheduler::Generation>(call.deadline);
    generation->push_text("local answer");
    scheduler::GenerationOutcome outcome;
    outcome.result.text = "local answer";
    generation->finish(outcome);
    return {.model = "local-model", .keep_alive = nullptr, .generation = generation};
  }
  mutable std::atomic<int> calls{0};
  mutable std::mutex mutex;
  mutable pipeline::Call last;
};

inline executors::CloudOptions options_for(const FakeCloud& cloud) {
  executors::CloudOptions o;
  o.base_url = cloud.base_url();
  o.api_key = "sk-test";
  o.default_model = "upstream-default";
  o.model_map = {{"small", "gpt-small"}};
  o.connect_timeout = 500ms;
  o.read_timeout = 5000ms;
  o.retries = 2;
  o.backoff = 5ms;
  o.max_backoff = 20ms;
  o.breaker_failures = 100;
  o.breaker_cooldown = 100ms;
  return o;
}

// A call the privacy stage found clean.
inline pipeline::Call clean_call() {
  pipeline::Call call;
  call.executor = "cloud";
  call.model = "small";
  call.text.style = pipeline::PromptStyle::kChat;
  call.text.messages = {{.role = "system", .parts = {{.value = "Be brief."}}},
                        {.role = "user", .parts = {{.value = "Say "}, {.value = "hello"}}}};
  call.generation.max_tokens = 16;
  call.annotate("privacy", "findings", "");
  return call;
}

inline std::string annotation(const pipeline::Call& call, std::string_view key) {
  const auto* value = call.annotation(key);
  return value == nullptr ? "<none>" : *value;
}

// Everything the generation produced, and its outcome.
inline std::string drain(scheduler::Generation& g) {
  std::string text;
  bool finished = false;
  while (!finished) {
    text += g.take_text(50ms, finished);
  }
  return text;
}

}  // namespace cloud_test
