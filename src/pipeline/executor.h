// An executor runs a call that every stage let through: the local one on a model of this
// machine (executors/local/), later a cloud endpoint. It returns the running work as the same
// mailboxes the schedulers fill (scheduler::Generation for text, SpeechJob for speech), so the
// edge streams and answers alike whoever produces them.
//
// Threading: one Executor serves every request at once: submit() must be thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "pipeline/call.h"
#include "scheduler/embedding_scheduler.h"
#include "scheduler/generation.h"
#include "scheduler/speech_scheduler.h"

namespace mmserve::pipeline {

// A call accepted by its executor. Exactly one of `generation`, `speech` and `embedding` is set.
struct Submission {
  std::string model;  // the name of the model serving it
  // What must live until the answer is out (the local model's lease, see
  // runtime/model_registry.h): the edge holds it while it waits or streams.
  std::shared_ptr<const void> keep_alive;
  std::shared_ptr<scheduler::Generation> generation;   // text-gen, image-caption
  std::shared_ptr<scheduler::SpeechJob> speech;        // speech-transcribe
  std::shared_ptr<scheduler::EmbeddingJob> embedding;  // embed
  int32_t dimensions = 0;  // embed: the length the answer's vectors are cut to (0: as they are)
  int images = 0;          // images in the prompt (for the metrics)
  // text: reads the generated text back into content, reasoning and tool calls (the model's
  // chat format); null when the text is the answer as it is (a plain completion, the cloud).
  std::shared_ptr<const engine::ChatOutputParser> parser;
};

class Executor {
 public:
  virtual ~Executor() = default;
  // What Call::executor names to choose it ("local", "cloud").
  virtual std::string_view name() const = 0;
  // Starts the call. Throws Error: what the call asks is impossible here (no such model,
  // invalid input for the model), or the executor is busy.
  virtual Submission submit(Call& call) const = 0;
};

}  // namespace mmserve::pipeline
