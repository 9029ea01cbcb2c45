// The local executor: runs a call on a model of this machine. It takes a lease on the model
// the call names (runtime::Runtime::acquire: loading it if needed), builds the prompt
// (text_prompt.h) with the call's images decoded under the server's image policy
// (image_input.h), or decodes its audio, and submits the work to the model's scheduler.
//
// Errors (all Error, thrown before anything runs): the registry's (no such model: kNotFound
// listing the names; a task the model cannot serve: kModelUnavailable), bad media or prompts
// (kInvalidInput naming the field), a full queue (kBusy), shutdown (kUnavailable).
//
// Ownership: borrows the Runtime, which must outlive it. Threading: submit() is thread-safe.
#pragma once

#include "executors/local/image_input.h"
#include "pipeline/executor.h"
#include "runtime/runtime.h"

namespace mmserve::executors {

class LocalExecutor : public pipeline::Executor {
 public:
  explicit LocalExecutor(runtime::Runtime& runtime)
      : runtime_(runtime), image_policy_(image_policy(runtime.options())) {}
  std::string_view name() const override { return "local"; }
  pipeline::Submission submit(pipeline::Call& call) const override;

 private:
  pipeline::Submission submit_text(pipeline::Call& call, runtime::ModelLease lease) const;
  pipeline::Submission submit_speech(pipeline::Call& call, runtime::ModelLease lease) const;
  pipeline::Submission submit_embedding(pipeline::Call& call, runtime::ModelLease lease) const;

  runtime::Runtime& runtime_;
  const ImageInputPolicy image_policy_;  // from the runtime's options, which never change
};

}  // namespace mmserve::executors
