// The capture stage: completed text calls (text-gen and image-caption, through /v1/inference,
// chat, completions and /v1/responses) are handed to the capture writer (capture_writer.h), which
// redacts them and keeps them in the capture store for review and export (`mmserve dataset`).
// Failed and refused calls are not captured.
//
// Policy (serve --capture): "off" captures nothing and ignores the request's `store`; "opt-in"
// captures a call when its key is marked for capture (`mmserve keys create --capture`), its model
// is (`capture = true` in the models file), or the request says `store: true`; "all" captures
// every completed call. In both, `store: false` opts the request out.
//
// It runs in on_complete, just before the response's last bytes go out, and costs a copy of the
// call's text and a queue push: never a write, never a failure (the writer drops and counts).
//
// Retention is the writer's (capture_writer.h), off the request path.
//
// Threading: thread-safe. Borrows the writer.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "pipeline/stage.h"
#include "stages/capture/capture_writer.h"

namespace mmserve::stages {

enum class CaptureMode { kOff, kOptIn, kAll };
// "off", "opt-in", "all"; else Error(kInvalidInput) naming `field`.
CaptureMode parse_capture_mode(const std::string& text, const std::string& field);
const char* capture_mode_name(CaptureMode mode);

// Whether the model with this registry name is marked for capture. Thread-safe, cheap.
using ModelCapturePolicy = std::function<bool(const std::string& model)>;

// Whether the policy captures this call (its key, model and `store`).
bool capture_wanted(CaptureMode mode, const pipeline::Call& call, bool model_marked);

// What the writer gets of a completed call: its metadata and text, unredacted.
PendingCapture pending_capture(const pipeline::Call& call, const pipeline::Completion& completion);

class CaptureStage : public pipeline::Stage {
 public:
  CaptureStage(CaptureMode mode, CaptureWriter& writer, ModelCapturePolicy models = {});
  std::string_view name() const override { return "capture"; }
  void on_complete(const pipeline::Call& call,
                   const pipeline::Completion& completion) const noexcept override;

 private:
  CaptureMode mode_;
  CaptureWriter& writer_;
  ModelCapturePolicy models_;
};

}  // namespace mmserve::stages
