// The path of every call between the edge and the engines: the stages, run in the order they
// were added, then the executor the call names.
//
//   edge (http/, the SDK) -> admit: on_admit of each stage -> body parsed into the Call
//     -> submit: on_request of each stage -> the executor named by Call::executor -> Submission
//     -> ... answer ... -> finish: on_finish of each stage, in reverse order
//
// The order today (cli/serve_command.cpp): "auth" (stages/auth/), "quota" (stages/quota/),
// "privacy" (stages/privacy/), "audit" (stages/audit/), "capture" (stages/capture/, with a
// capture database).
//
// Ownership: owns its stages and executors. Threading: built before serving (add_*), then only
// its const methods run, from any number of threads at once.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/call.h"
#include "pipeline/executor.h"
#include "pipeline/stage.h"

namespace mmserve::pipeline {

class Pipeline {
 public:
  Pipeline& add_stage(std::unique_ptr<Stage> stage);
  // The first executor added is the default one a call names unless a stage changes it.
  Pipeline& add_executor(std::unique_ptr<Executor> executor);

  // Runs every stage's on_admit. Throws the first refusal.
  void admit(Call& call) const;
  // Runs every stage's on_request, then the call's executor. Throws the first refusal, or
  // Error(kInternal) when a stage named an executor that does not exist.
  Submission submit(Call& call) const;
  // A dry run: every stage's on_request, no executor (POST /v1/privacy/scan shows the decision
  // a call would get). Throws the first refusal.
  void review(Call& call) const;
  // Runs every stage's on_finish, last stage first (as an unwinding stack).
  void finish(const Call& call, const Usage& usage) const noexcept;
  // Runs every stage's on_complete (any admitted call, just before its last bytes go out).
  void complete(const Call& call, const Completion& completion) const noexcept;

  std::vector<std::string_view> stage_names() const;
  const std::string& default_executor() const { return default_executor_; }

 private:
  std::vector<std::unique_ptr<Stage>> stages_;
  std::vector<std::unique_ptr<Executor>> executors_;
  std::string default_executor_ = "local";
};

}  // namespace mmserve::pipeline
