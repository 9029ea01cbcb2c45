#include "executors/local/local_executor.h"

#include <span>

#include "core/error.h"
#include "executors/local/image_input.h"
#include "executors/local/text_prompt.h"
#include "media/audio_decode.h"
#include "metrics/server_metrics.h"
#include "pipeline/generation_params.h"

namespace mmserve::executors {
namespace {

// The messages with their images replaced by the projector's markers, the images decoded into
// `images` in the order their markers appear.
std::vector<engine::ChatMessage> template_messages(const pipeline::Call& call,
                                                   const runtime::ServedModel& model,
                                                   const ImageInputPolicy& policy,
                                                   std::vector<media::Image>& images) {
  std::vector<engine::ChatMessage> messages;
  for (const auto& m : call.text.messages) {
    std::string text;
    for (const auto& part : m.parts) {
      if (!part.is_image) {
        text += part.value;
        continue;
      }
      const auto& vision = model.vision();
      if (!vision) {
        throw Error(ErrorCode::kModelUnavailable,
                    "content of type 'image_url' needs a vision model and projector (--mmproj); "
                    "the model '" +
                        model.name() + "' has none",
                    part.type_field);
      }
      images.push_back(image_from_string(part.value, policy, part.field));
      text += vision->marker();
    }
    messages.push_back({.role = m.role,
                        .content = std::move(text),
                        .reasoning_content = m.reasoning_content,
                        .tool_calls = m.tool_calls,
                        .tool_call_id = m.tool_call_id,
                        .name = m.name});
  }
  return messages;
}

std::span<const uint8_t> bytes_of(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// A JSON string's audio: base64, bare or in a data URL.
std::vector<uint8_t> decode_audio_text(const pipeline::AudioInput& audio) {
  std::string_view text = audio.data;
  if (text.starts_with("data:")) {
    const auto comma = text.find(',');
    if (comma == std::string_view::npos ||
        text.substr(0, comma).find(";base64") == std::string_view::npos) {
      throw Error(ErrorCode::kInvalidInput,
                  "field '" + audio.field +
                      "' is a data URL without ';base64,': send the audio base64-encoded",
                  audio.field);
    }
    text.remove_prefix(comma + 1);
  }
  return decode_base64(text, audio.field);
}

}  // namespace

pipeline::Submission LocalExecutor::submit(pipeline::Call& call) const {
  auto lease = runtime_.acquire(call.task, call.model);
  if (call.task == runtime::Task::kSpeechTranscribe) {
    return submit_speech(call, std::move(lease));
  }
  if (call.task == runtime::Task::kEmbed) {
    return submit_embedding(call, std::move(lease));
  }
  return submit_text(call, std::move(lease));
}

pipeline::Submission LocalExecutor::submit_text(pipeline::Call& call,
                                                runtime::ModelLease lease) const {
  auto& text = lease->text();
  const auto& model = text.model();
  engine::GenerationRequest request = std::move(call.generation);
  // LoRA adapters by name ("model": "base:adapter", a `lora` parameter): resolved on this model
  // now, so that an unload after this point cannot take them from the request.
  std::string adapters;
  if (!request.lora_refs.empty()) {
    request.lora = lease->loras().resolve(request.lora_refs);
    request.lora_refs.clear();
    adapters = request.lora.label();
  }
  std::vector<media::Image> images;
  std::string prompt;
  std::shared_ptr<const engine::ChatOutputParser> parser;
  std::string media_field = "input";
  if (call.task == runtime::Task::kImageCaption) {
    const auto& vision = lease->vision();  // the registry gave a model with a projector
    if (!call.image) {
      throw Error(ErrorCode::kInvalidInput, "field 'input' (the image) is required", "input");
    }
    const auto& image = *call.image;
    images.push_back(image.is_bytes ? image_from_bytes(image.data, image_policy_, image.field)
                                    : image_from_string(image.data, image_policy_, image.field));
    media_field = image.field;
    prompt =
        vision->caption_prompt(1, call.text.prompt, call.text.style == pipeline::PromptStyle::kRaw,
                               call.text.system.value_or(""));
  } else {
    const auto messages = call.text.style == pipeline::PromptStyle::kChat
                              ? template_messages(call, *lease, image_policy_, images)
                              : std::vector<engine::ChatMessage>{};
    engine::ChatPrompt chat = [&] {
      try {
        return chat_prompt(model, call.text, messages);
      } catch (const Error& e) {
        if (e.field() != "system" || call.parameters_path.empty()) throw;
        throw Error(e.code(), e.what(), pipeline::field_path(call.parameters_path, e.field()));
      }
    }();
    prompt = std::move(chat.text);
    request.grammar = std::move(chat.grammar);
    request.preserved_tokens = std::move(chat.preserved_tokens);
    request.stop.insert(request.stop.end(), chat.stops.begin(), chat.stops.end());
    parser = std::move(chat.parser);
    media_field = "messages";
  }
  if (images.empty()) {
    request.prompt = model.tokenize(prompt, true, parses_special_tokens(model, call.text));
  } else {
    auto tokenized = lease->vision()->tokenize(prompt, images, true, media_field);
    request.prompt = std::move(tokenized.tokens);
    request.media = std::move(tokenized.media);
    metrics::server_metrics().add_images(static_cast<int64_t>(images.size()));
  }
  if (request.max_tokens == 0) {
    request.max_tokens =
        default_max_tokens(call.text, text.sequence_capacity(), request.prompt.size());
  }
  pipeline::Submission s;
  s.model = adapters.empty() ? lease->name() : lease->name() + ":" + adapters;
  s.images = static_cast<int>(images.size());
  s.parser = std::move(parser);
  try {
    s.generation = text.submit(std::move(request), pipeline::bounded_deadline(call));
  } catch (const Error& e) {
    // The scheduler names engine fields; the endpoint keeps them under its parameters path.
    if (e.field() == "input" || e.field().empty() || call.parameters_path.empty()) {
      throw;
    }
    throw Error(e.code(), e.what(), pipeline::field_path(call.parameters_path, e.field()));
  }
  s.keep_alive = std::move(lease);
  return s;
}

pipeline::Submission LocalExecutor::submit_embedding(pipeline::Call& call,
                                                     runtime::ModelLease lease) const {
  if (!call.embed) {
    throw Error(ErrorCode::kInvalidInput, "field 'input' (what to embed) is required", "input");
  }
  const auto& in = *call.embed;
  const auto& model = lease->embedding_model();
  const auto field_of = [&](size_t i) {
    return in.listed ? in.field + "[" + std::to_string(i) + "]" : in.field;
  };
  scheduler::EmbeddingRequest request;
  for (size_t i = 0; i < in.texts.size(); ++i) {
    request.inputs.push_back(model.tokenize(in.texts[i]));
    request.fields.push_back(field_of(i));
  }
  for (size_t i = 0; i < in.tokens.size(); ++i) {
    request.inputs.push_back(in.tokens[i]);
    request.fields.push_back(field_of(i));
  }
  pipeline::Submission s;
  if (in.dimensions) {
    if (*in.dimensions < 1 || *in.dimensions > model.dimensions()) {
      throw Error(ErrorCode::kInvalidInput,
                  "field '" + in.dimensions_field + "' must be 1.." +
                      std::to_string(model.dimensions()) + " for the model '" + lease->name() +
                      "' (its embedding length)",
                  in.dimensions_field);
    }
    s.dimensions = *in.dimensions;
  }
  s.model = lease->name();
  s.embedding = lease->embedding().submit(std::move(request), pipeline::bounded_deadline(call));
  s.keep_alive = std::move(lease);
  return s;
}

pipeline::Submission LocalExecutor::submit_speech(pipeline::Call& call,
                                                  runtime::ModelLease lease) const {
  if (!call.audio) {
    throw Error(ErrorCode::kInvalidInput, "field 'input' (the audio) is required", "input");
  }
  const auto& audio = *call.audio;
  const auto& args = call.speech;
  auto& speech = lease->speech();
  const auto& model = lease->speech_model();
  scheduler::SpeechRequest request;
  request.language = model->resolve_language(args.language, audio.language_field);
  request.translate = args.translate;
  request.stream = call.stream;  // segments published per window for the edge to stream
  if (args.translate && !model->multilingual()) {
    throw Error(ErrorCode::kInvalidInput,
                "the speech model " + model->id() + " is English-only; it cannot translate",
                audio.translate_field);
  }
  request.temperature = args.temperature;
  request.word_timestamps = args.words;
  if (!args.prompt.empty()) {
    request.prompt = model->tokenize(args.prompt);
  }
  std::vector<uint8_t> decoded;
  if (!audio.is_bytes) {
    decoded = decode_audio_text(audio);
  }
  const std::span<const uint8_t> bytes = audio.is_bytes ? bytes_of(audio.data) : decoded;
  request.samples =
      media::decode_audio(bytes, runtime_.options().audio_limits, audio.field).samples;
  pipeline::Submission s;
  s.model = lease->name();
  s.speech = speech.submit(std::move(request), pipeline::bounded_deadline(call));
  s.keep_alive = std::move(lease);
  return s;
}

}  // namespace mmserve::executors
