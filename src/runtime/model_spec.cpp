#include "runtime/model_spec.h"

#include <algorithm>

namespace mmserve::runtime {

const char* model_kind_name(ModelKind kind) {
  switch (kind) {
    case ModelKind::kText: return "text";
    case ModelKind::kSpeech: return "speech";
    case ModelKind::kEmbedding: return "embedding";
  }
  return "text";
}

const char* task_name(Task task) {
  switch (task) {
    case Task::kTextGen: return "text-gen";
    case Task::kImageCaption: return "image-caption";
    case Task::kSpeechTranscribe: return "speech-transcribe";
    case Task::kEmbed: return "embed";
  }
  return "text-gen";
}

bool ModelSpec::serves(Task task) const {
  switch (task) {
    case Task::kTextGen: return kind == ModelKind::kText;
    case Task::kImageCaption: return kind == ModelKind::kText && !mmproj_path.empty();
    case Task::kSpeechTranscribe: return kind == ModelKind::kSpeech;
    case Task::kEmbed: return kind == ModelKind::kEmbedding;
  }
  return false;
}

bool ModelSpec::answers_to(std::string_view model_name) const {
  return model_name == name ||
         std::find(aliases.begin(), aliases.end(), model_name) != aliases.end();
}

}  // namespace mmserve::runtime
