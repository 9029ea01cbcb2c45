// The pipeline between the edge and the executors (pipeline/pipeline.h): stages run in their
// stated order, each can refuse, annotate or reroute a call; the authentication stage; and a
// route handler driven without a socket, against a fake executor, to show the edge only
// translates HTTP to a typed call and the typed result back.
#include "pipeline/pipeline.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "http/exchange.h"
#include "http/routes.h"
#include "pipeline/call.h"
#include "stages/auth/api_key_stage.h"
#include "stages/privacy/privacy_stage.h"
#include "test_support.h"

using namespace mmserve;
using Json = nlohmann::json;

namespace {

using Trace = std::vector<std::string>;

// Records what it saw; refuses or reroutes when told to.
class RecordingStage : public pipeline::Stage {
 public:
  RecordingStage(std::string name, Trace& trace) : name_(std::move(name)), trace_(trace) {}
  std::string_view name() const override { return name_; }
  void on_admit(pipeline::Call& call) const override {
    trace_.push_back(name_ + ".admit");
    if (refuse_admit) throw Error(ErrorCode::kUnauthorized, name_ + " says no");
    (void)call;
  }
  void on_request(pipeline::Call& call) const override {
    trace_.push_back(name_ + ".request");
    if (refuse_request) throw Error(ErrorCode::kForbidden, name_ + " refuses", "input");
    call.annotate(name_, "seen_by", name_);
    if (!reroute_to.empty()) call.executor = reroute_to;
  }
  void on_finish(const pipeline::Call&, const pipeline::Usage& usage) const noexcept override {
    trace_.push_back(name_ + ".finish:" + std::to_string(usage.completion_tokens));
  }

  bool refuse_admit = false;
  bool refuse_request = false;
  std::string reroute_to;

 private:
  std::string name_;
  Trace& trace_;
};

// An executor that answers from a script instead of a model: the text it "generates" arrives
// through the same mailbox a scheduler fills.
class FakeExecutor : public pipeline::Executor {
 public:
  FakeExecutor(std::string name, Trace& trace) : name_(std::move(name)), trace_(trace) {}
  std::string_view name() const override { return name_; }
  pipeline::Submission submit(pipeline::Call& call) const override {
    trace_.push_back(name_ + ".submit");
    last_call = call;
    if (refuse) throw *refuse;
    auto generation = std::make_shared<scheduler::Generation>(call.deadline);
    generation->push_text(reply);
    scheduler::GenerationOutcome outcome;
    outcome.result.text = reply;
    outcome.result.reason = engine::FinishReason::kStop;
    outcome.result.prompt_tokens = 3;
    outcome.result.completion_tokens = 2;
    generation->finish(outcome);
    return {.model = "fake-model", .keep_alive = nullptr, .generation = generation};
  }

  std::string reply = "hello there";
  std::optional<Error> refuse;
  mutable pipeline::Call last_call;

 private:
  std::string name_;
  Trace& trace_;
};

struct Fixture {
  Trace trace;
  RecordingStage* first = nullptr;
  RecordingStage* second = nullptr;
  FakeExecutor* local = nullptr;
  FakeExecutor* cloud = nullptr;
  pipeline::Pipeline pipeline;

  Fixture() {
    auto a = std::make_unique<RecordingStage>("first", trace);
    auto b = std::make_unique<RecordingStage>("second", trace);
    auto l = std::make_unique<FakeExecutor>("local", trace);
    auto c = std::make_unique<FakeExecutor>("cloud", trace);
    first = a.get();
    second = b.get();
    local = l.get();
    cloud = c.get();
    pipeline.add_stage(std::move(a)).add_stage(std::move(b));
    pipeline.add_executor(std::move(l)).add_executor(std::move(c));
  }
};

TEST(Pipeline, StagesRunInTheirOrderThenTheExecutorThenFinishUnwinds) {
  Fixture f;
  pipeline::Call call;
  f.pipeline.admit(call);
  const auto s = f.pipeline.submit(call);
  f.pipeline.finish(call, {.model = s.model, .completion_tokens = 2});
  EXPECT_EQ(f.trace, (Trace{"first.admit", "second.admit", "first.request", "second.request",
                            "local.submit", "second.finish:2", "first.finish:2"}));
  EXPECT_EQ(f.pipeline.stage_names(), (std::vector<std::string_view>{"first", "second"}));
  EXPECT_EQ(f.pipeline.default_executor(), "local");
  EXPECT_EQ(s.model, "fake-model");
}

TEST(Pipeline, ARefusalStopsTheCallWithItsTypedError) {
  Fixture f;
  f.first->refuse_request = true;
  pipeline::Call call;
  try {
    (void)f.pipeline.submit(call);
    FAIL() << "the refusal did not propagate";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kForbidden);
    EXPECT_EQ(e.field(), "input");
  }
  EXPECT_EQ(f.trace, (Trace{"first.request"}));  // neither the next stage nor an executor ran

  Fixture g;
  g.second->refuse_admit = true;
  pipeline::Call other;
  EXPECT_THROW(g.pipeline.admit(other), Error);
  EXPECT_EQ(g.trace, (Trace{"first.admit", "second.admit"}));
}

TEST(Pipeline, StagesAnnotateAndLaterStagesSeeIt) {
  Fixture f;
  pipeline::Call call;
  (void)f.pipeline.submit(call);
  ASSERT_EQ(call.annotations.size(), 2u);
  EXPECT_EQ(call.annotations[0].stage, "first");
  EXPECT_EQ(call.annotations[1].stage, "second");
  ASSERT_NE(call.annotation("seen_by"), nullptr);
  EXPECT_EQ(*call.annotation("seen_by"), "second");  // the latest wins
  EXPECT_EQ(call.annotation("route"), nullptr);
}

TEST(Pipeline, AStageHandsTheCallToAnotherExecutor) {
  Fixture f;
  f.second->reroute_to = "cloud";
  pipeline::Call call;
  (void)f.pipeline.submit(call);
  EXPECT_EQ(f.trace.back(), "cloud.submit");
  EXPECT_EQ(call.executor, "cloud");

  f.second->reroute_to = "nowhere";
  pipeline::Call lost;
  try {
    (void)f.pipeline.submit(lost);
    FAIL() << "an unknown executor was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInternal);
  }
}

TEST(Pipeline, DataClassHintsParseOrNameTheirField) {
  EXPECT_EQ(pipeline::parse_data_class("", "X-Data-Class"), pipeline::DataClass::kUnspecified);
  EXPECT_EQ(pipeline::parse_data_class("Personal", "X-Data-Class"), pipeline::DataClass::kPersonal);
  EXPECT_EQ(pipeline::parse_data_class("public", "X-Data-Class"), pipeline::DataClass::kPublic);
  try {
    pipeline::parse_data_class("secret", "X-Data-Class");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput);
    EXPECT_EQ(e.field(), "X-Data-Class");
  }
}

TEST(Pipeline, CancellationFollowsTheClientProbe) {
  bool gone = false;
  pipeline::Cancellation c([&gone] { return gone; });
  EXPECT_FALSE(c.requested());
  gone = true;
  EXPECT_TRUE(c.requested());
  pipeline::Cancellation d;
  d.cancel();
  EXPECT_TRUE(d.requested());
}

// --- the authentication stage ---

pipeline::Call call_with(std::string bearer, pipeline::Operation op) {
  pipeline::Call call;
  call.credentials.bearer = std::move(bearer);
  call.operation = op;
  return call;
}

ErrorCode refusal(const stages::ApiKeyStage& stage, pipeline::Call call) {
  try {
    stage.on_admit(call);
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "admitted";
  return ErrorCode::kInternal;
}

TEST(AuthStage, WithoutKeysEveryoneIsAnAnonymousAdmin) {
  const stages::ApiKeyStage stage({});
  auto call = call_with("", pipeline::Operation::kManageModels);
  stage.on_admit(call);
  EXPECT_EQ(call.caller.id, "anonymous");
  EXPECT_FALSE(call.caller.authenticated);
  EXPECT_TRUE(call.caller.admin);
}

TEST(AuthStage, KeysAreCheckedAndTheCallerNamed) {
  const stages::ApiKeyStage stage({.api_key = "user-secret", .admin_key = "admin-secret"});
  using Op = pipeline::Operation;
  EXPECT_EQ(refusal(stage, call_with("", Op::kInference)), ErrorCode::kUnauthorized);
  EXPECT_EQ(refusal(stage, call_with("user-secreT", Op::kInference)), ErrorCode::kUnauthorized);
  EXPECT_EQ(refusal(stage, call_with("user-secret2", Op::kReadModels)), ErrorCode::kUnauthorized);
  // A valid key that is not an admin key: forbidden, not unauthenticated.
  EXPECT_EQ(refusal(stage, call_with("user-secret", Op::kManageModels)), ErrorCode::kForbidden);
  EXPECT_EQ(refusal(stage, call_with("user-secreT", Op::kManageModels)), ErrorCode::kUnauthorized);

  auto user = call_with("user-secret", Op::kInference);
  stage.on_admit(user);
  EXPECT_EQ(user.caller.id, "api-key");
  EXPECT_TRUE(user.caller.authenticated);
  EXPECT_FALSE(user.caller.admin);
  ASSERT_NE(user.annotation("caller"), nullptr);
  EXPECT_EQ(*user.annotation("caller"), "api-key");
  EXPECT_EQ(user.credentials.bearer, "user-secret");  // kept for nobody but the stage

  auto admin = call_with("admin-secret", Op::kManageModels);
  stage.on_admit(admin);
  EXPECT_TRUE(admin.caller.admin);
  auto admin_infers = call_with("admin-secret", Op::kInference);
  stage.on_admit(admin_infers);  // the admin key opens everything
  EXPECT_EQ(admin_infers.caller.id, "admin");
}

TEST(AuthStage, AdminEndpointsAreForbiddenWithKeysButNoAdminKey) {
  const stages::ApiKeyStage stage({.api_key = "user-secret", .admin_key = ""});
  EXPECT_EQ(refusal(stage, call_with("user-secret", pipeline::Operation::kManageModels)),
            ErrorCode::kForbidden);
  EXPECT_EQ(refusal(stage, call_with("", pipeline::Operation::kManageModels)),
            ErrorCode::kUnauthorized);
}

TEST(AuthStage, SecretsCompareWholly) {
  EXPECT_TRUE(stages::same_secret("abc", "abc"));
  EXPECT_FALSE(stages::same_secret("abc", "abd"));
  EXPECT_FALSE(stages::same_secret("abc", "abcd"));
  EXPECT_FALSE(stages::same_secret("", "a"));
  EXPECT_TRUE(stages::same_secret("", ""));
}

// --- the privacy stage ---

TEST(PrivacyStage, NotesWhatEveryTextOfTheCallHoldsAsCountsAndKeepsItLocal) {
  const stages::PrivacyStage stage;
  pipeline::Call call;
  call.text.style = pipeline::PromptStyle::kChat;
  call.text.system = "客服系统, contact ops@example.com";
  call.text.messages = {
      {.role = "user",
       .parts = {{.value = "手机13812345678"}, {.is_image = true, .value = "aGk="}}},
      {.role = "assistant", .parts = {{.value = "好的, 13912345678 已记录"}}}};
  call.executor = "cloud";  // whatever came before, a call here stays on this machine
  stage.on_request(call);
  ASSERT_NE(call.annotation("findings"), nullptr);
  EXPECT_EQ(*call.annotation("findings"), "cn_mobile:2,email:1");
  EXPECT_EQ(*call.annotation("unscanned"), "image");
  EXPECT_EQ(*call.annotation("route"), "local");
  EXPECT_EQ(call.executor, "local");
  for (const auto& a : call.annotations) {
    EXPECT_EQ(a.value.find("13812345678"), std::string::npos) << a.key;  // never a value
  }
}

TEST(PrivacyStage, CleanTextHasNoFindingsAndOtherOperationsAreLeftAlone) {
  const stages::PrivacyStage stage;
  pipeline::Call clean;
  clean.text.prompt = "Once upon a time, order 20231201123456 cost $12.50";
  stage.on_request(clean);
  EXPECT_EQ(*clean.annotation("findings"), "");
  EXPECT_EQ(clean.annotation("unscanned"), nullptr);

  pipeline::Call listing;
  listing.operation = pipeline::Operation::kReadModels;
  stage.on_request(listing);
  EXPECT_TRUE(listing.annotations.empty());
}

// --- a route handler without a socket ---

// A runtime that declares a model and never loads it: the fake executor does the work.
runtime::RuntimeOptions declared_only() {
  runtime::RuntimeOptions o;
  o.models.push_back({.name = "tiny", .path = mmserve::testing::stories_model(), .preload = false});
  return o;
}

struct HandlerFixture {
  Fixture f;
  runtime::Runtime runtime{declared_only()};
  http::Services services{runtime, f.pipeline};
  std::vector<http::Route> routes = http::inference_routes(services);

  http::ApiResponse post(const std::string& path, const Json& body,
                         const std::shared_ptr<http::Exchange>& ex) {
    for (const auto& r : routes) {
      if (r.pattern == path) {
        const std::string text = body.dump();
        http::ApiRequest req;
        req.method = "POST";
        req.path = path;
        req.body = text;
        http::ApiResponse res;
        http::guarded(res, [&] { r.handler(req, res, *ex); });
        return res;
      }
    }
    ADD_FAILURE() << "no route " << path;
    return {};
  }
};

TEST(RouteHandlers, InferenceBecomesATypedCallAndItsResultTheAnswer) {
  HandlerFixture h;
  auto ex = std::make_shared<http::Exchange>();
  const auto res = h.post("/v1/inference",
                          {{"task", "text-gen"},
                           {"model", "m2"},
                           {"input", "Once"},
                           {"parameters", {{"max_tokens", 7}, {"temperature", 0}, {"raw", true}}}},
                          ex);
  ASSERT_EQ(res.status, 200) << res.body;
  const auto out = Json::parse(res.body);
  EXPECT_EQ(out["output"], "hello there");
  EXPECT_EQ(out["model"], "fake-model");
  EXPECT_EQ(out["task"], "text-gen");
  EXPECT_EQ(out["usage"]["completion_tokens"], 2);

  const auto& call = h.f.local->last_call;
  EXPECT_EQ(call.task, runtime::Task::kTextGen);
  EXPECT_EQ(call.model, "m2");
  EXPECT_EQ(call.text.prompt, "Once");
  EXPECT_EQ(call.text.style, pipeline::PromptStyle::kRaw);
  EXPECT_EQ(call.generation.max_tokens, 7);
  EXPECT_EQ(call.generation.sampling.temperature, 0.0f);
  EXPECT_EQ(call.parameters_path, "parameters");
  EXPECT_EQ(ex->record.model, "fake-model");
  EXPECT_EQ(ex->record.route, "local");
}

TEST(RouteHandlers, BadParametersAreRefusedAtTheEdgeNamingTheField) {
  HandlerFixture h;
  auto ex = std::make_shared<http::Exchange>();
  const auto res =
      h.post("/v1/inference",
             {{"task", "text-gen"}, {"input", "Once"}, {"parameters", {{"top_k", -1}}}}, ex);
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(Json::parse(res.body)["error"]["param"], "parameters.top_k");
  EXPECT_TRUE(h.f.trace.empty());  // no stage and no executor saw it
}

TEST(RouteHandlers, AnExecutorsTypedErrorBecomesItsStatus) {
  HandlerFixture h;
  h.f.local->refuse = Error(ErrorCode::kBusy, "the queue is full");
  auto ex = std::make_shared<http::Exchange>();
  const auto res = h.post("/v1/inference", {{"task", "text-gen"}, {"input", "Once"}}, ex);
  EXPECT_EQ(res.status, 429);
  EXPECT_EQ(Json::parse(res.body)["error"]["type"], "server_busy");
  EXPECT_EQ(res.headers.size(), 1u);  // Retry-After
}

TEST(RouteHandlers, AStreamIsWrittenThroughTheSink) {
  HandlerFixture h;
  auto ex = std::make_shared<http::Exchange>();
  auto res =
      h.post("/v1/inference", {{"task", "text-gen"}, {"input", "Once"}, {"stream", true}}, ex);
  ASSERT_EQ(res.status, 200);
  ASSERT_TRUE(res.stream);
  struct Sink : http::ChunkSink {
    std::string bytes;
    bool ended = false;
    bool write(std::string_view b) override {
      bytes.append(b);
      return true;
    }
    void done() override { ended = true; }
  } sink;
  for (int i = 0; i < 100 && res.stream(sink); ++i) {
  }
  EXPECT_TRUE(sink.ended);
  EXPECT_NE(sink.bytes.find(R"("output":"hello there")"), std::string::npos);
  EXPECT_TRUE(sink.bytes.ends_with("data: [DONE]\n\n"));
}

}  // namespace
