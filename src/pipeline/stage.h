// A stage: one step every call passes between the edge and its executor (authentication,
// quotas, privacy routing, the audit log, capture), each its own folder under src/stages/. A
// stage refuses a call by throwing Error (the edge turns its code into a status), annotates it
// (Call::annotate), or hands it to another executor (Call::executor).
//
// Threading: one Stage serves every request at once: its methods must be thread-safe. They run
// on the request's thread and must not block for long.
#pragma once

#include <string_view>

#include "pipeline/call.h"

namespace mmserve::pipeline {

class Stage {
 public:
  virtual ~Stage() = default;
  // Short and stable ("auth", "privacy"): it names the stage in annotations and the log.
  virtual std::string_view name() const = 0;
  // Before the body is read: only the call's identity is set. Authentication belongs here, so
  // that a refused client costs no parsing.
  virtual void on_admit(Call& call) const { (void)call; }
  // With the validated inputs, before an executor runs it (inference calls only).
  virtual void on_request(Call& call) const { (void)call; }
  // After it ended, however it ended (inference calls an executor accepted). Must not throw.
  virtual void on_finish(const Call& call, const Usage& usage) const noexcept {
    (void)call;
    (void)usage;
  }
  // Every admitted request, refused ones included, once, just before its response's last bytes
  // are sent (so what is recorded here is there when the client has its answer). Must not throw.
  virtual void on_complete(const Call& call, const Completion& completion) const noexcept {
    (void)call;
    (void)completion;
  }
};

}  // namespace mmserve::pipeline
