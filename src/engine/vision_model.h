// A multimodal projector (an "mmproj" GGUF) loaded with libmtmd beside a TextModel: it turns
// images into prompt chunks (preprocessing), image chunks into embeddings (the vision encoder),
// and embeddings into KV entries of one sequence (the language model's decode).
//
// libmtmd serves every projector type it knows (Gemma 3, SmolVLM/Idefics3, Pixtral/Mistral Small,
// Qwen2/2.5/3-VL, InternVL, LLaVA, MiniCPM-V, ...); nothing here is specific to one family.
//
// Ownership: owns the mtmd context; shares the TextModel. Threading: tokenize() and the
// accessors are thread-safe (libmtmd's tokenizer only reads the context); encode() and
// decode() must be called by one thread at a time, the one that owns the llama_context (the
// scheduler or the CLI).
#pragma once

#include <llama.h>

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/text_model.h"
#include "engine/vision_prompt.h"
#include "media/image_decoder.h"

struct mtmd_context;

namespace mmserve::engine {

// What an image description asks when the caller gives no prompt (every entry point: the
// image-caption task, `mmserve describe`, the SDK's local mode).
inline constexpr const char* kDefaultCaptionPrompt = "Describe this image.";

struct VisionOptions {
  int32_t threads = 0;  // 0 = default_thread_count()
  bool use_gpu = true;  // the encoder on a GPU when ggml has one
  bool warmup = true;   // one encode at load, so the first request is not the slow one
};

struct ProjectorInfo {
  std::string type;        // libmtmd's projector name, e.g. "gemma3"
  int32_t image_size = 0;  // the encoder's input side in pixels
  int32_t patch_size = 0;
  int32_t tokens_per_image = 0;  // for an image of image_size x image_size
  bool non_causal = false;       // image embeddings decoded with bidirectional attention
  bool mrope = false;            // multi-axis positions (Qwen-VL)
};

// A tokenized multimodal prompt, ready for GenerationRequest.
struct VisionPrompt {
  std::vector<Token> tokens;  // kMediaToken where images go
  std::vector<PromptMedia> media;
};

class VisionModel {
 public:
  // Loads `mmproj_path` for `text`. Throws Error(kNotFound/kModelLoad, field "mmproj") with the
  // reason (missing file, not a projector, embedding size not matching the model, ...).
  static std::shared_ptr<VisionModel> load(const std::string& mmproj_path,
                                           std::shared_ptr<const TextModel> text,
                                           const VisionOptions& options = {});
  ~VisionModel();
  VisionModel(const VisionModel&) = delete;
  VisionModel& operator=(const VisionModel&) = delete;

  const std::string& path() const { return path_; }
  const ProjectorInfo& info() const { return info_; }
  const TextModel& text_model() const { return *text_; }

  // The text to put in a prompt where an image goes. It is unique to this process, so a user
  // who types libmtmd's default marker gets text, not an image slot.
  const std::string& marker() const { return marker_; }

  // Splits `text` at each marker() and puts images[i] at the i-th one; `add_special` adds BOS as
  // for a fresh prompt; special tokens written in the text are parsed (as chat templates need).
  // Throws Error(kInvalidInput, field) when markers and images do not match or preprocessing
  // fails. Thread-safe.
  VisionPrompt tokenize(const std::string& text, std::span<const media::Image> images,
                        bool add_special, const std::string& field) const;

  // The prompt text of a caption request: the images' markers, then `prompt`, as one user turn
  // of the model's chat template (after `system`, when not empty); as plain text when `raw` or
  // when the model has no template. Chat completions with [images..., text] parts give the
  // same text, so every entry point asks the model the same thing.
  std::string caption_prompt(size_t n_images, const std::string& prompt, bool raw,
                             const std::string& system = {}) const;

  // The most embeddings one image can produce (sizes the decode batch for non-causal models).
  int32_t max_image_tokens() const { return max_image_tokens_; }

  // Owner thread only. Runs the vision encoder; returns n_tokens x n_embd floats. Throws
  // Error(kInternal) on failure.
  std::vector<float> encode(const MediaChunk& chunk);
  // Owner thread only. Decodes embeddings from encode() into `ctx` for sequence `seq` starting
  // at position `pos`; returns llama_decode's code (0 = success) and sets `next_pos`.
  int32_t decode(llama_context* ctx, const MediaChunk& chunk, std::vector<float>& embeddings,
                 llama_pos pos, llama_seq_id seq, int32_t n_batch, llama_pos& next_pos);

 private:
  VisionModel() = default;

  std::string path_;
  std::shared_ptr<const TextModel> text_;
  mtmd_context* ctx_ = nullptr;
  ProjectorInfo info_;
  std::string marker_;
  int32_t max_image_tokens_ = 0;
};

}  // namespace mmserve::engine
