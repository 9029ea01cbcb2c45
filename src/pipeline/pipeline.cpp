#include "pipeline/pipeline.h"

#include <algorithm>

#include "core/error.h"

namespace mmserve::pipeline {

Pipeline& Pipeline::add_stage(std::unique_ptr<Stage> stage) {
  stages_.push_back(std::move(stage));
  return *this;
}

Pipeline& Pipeline::add_executor(std::unique_ptr<Executor> executor) {
  if (executors_.empty()) {
    default_executor_ = std::string(executor->name());
  }
  executors_.push_back(std::move(executor));
  return *this;
}

void Pipeline::admit(Call& call) const {
  for (const auto& stage : stages_) {
    stage->on_admit(call);
  }
}

void Pipeline::review(Call& call) const {
  for (const auto& stage : stages_) {
    stage->on_request(call);
  }
}

Submission Pipeline::submit(Call& call) const {
  review(call);
  for (const auto& executor : executors_) {
    if (executor->name() == call.executor) {
      return executor->submit(call);
    }
  }
  throw Error(ErrorCode::kInternal, "no executor '" + call.executor + "' for this call");
}

void Pipeline::finish(const Call& call, const Usage& usage) const noexcept {
  std::for_each(stages_.rbegin(), stages_.rend(),
                [&](const auto& stage) { stage->on_finish(call, usage); });
}

void Pipeline::complete(const Call& call, const Completion& completion) const noexcept {
  for (const auto& stage : stages_) {
    stage->on_complete(call, completion);
  }
}

std::vector<std::string_view> Pipeline::stage_names() const {
  std::vector<std::string_view> names;
  names.reserve(stages_.size());
  for (const auto& stage : stages_) {
    names.push_back(stage->name());
  }
  return names;
}

}  // namespace mmserve::pipeline
