#include "http/model_routes.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <utility>

#include "core/error.h"
#include "core/model_locator.h"
#include "engine/text_model.h"
#include "http/adapter_routes.h"
#include "http/json_fields.h"
#include "http/json_output.h"
#include "http/routes.h"

namespace mmserve::http {
namespace {

int64_t unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

Json tasks_json(const runtime::ModelSpec& spec) {
  Json tasks = Json::array();
  for (const auto task : {runtime::Task::kTextGen, runtime::Task::kImageCaption,
                          runtime::Task::kSpeechTranscribe, runtime::Task::kEmbed}) {
    if (spec.serves(task)) {
      tasks.push_back(runtime::task_name(task));
    }
  }
  return tasks;
}

// What a loaded model says about itself (architecture, sizes); nothing when not loaded.
void add_loaded_facts(Json& meta, const runtime::ServedModel& model) {
  if (model.spec().kind == runtime::ModelKind::kSpeech) {
    const auto& speech = *model.speech_model();
    meta["architecture"] = "whisper";
    meta["size"] = speech.size_name();
    meta["multilingual"] = speech.multilingual();
    return;
  }
  if (model.spec().kind == runtime::ModelKind::kEmbedding) {
    const auto& embedding = model.embedding_model();
    meta["architecture"] = embedding.model().summary().architecture;
    meta["parameters"] = embedding.model().summary().n_params;
    meta["dimensions"] = embedding.dimensions();
    meta["pooling"] = engine::pooling_name(embedding.pooling());
    meta["max_input_tokens"] = embedding.max_input_tokens();
    meta["context_length"] = embedding.model().n_ctx_train();
    return;
  }
  const auto& text = model.text().model();
  const auto& summary = text.summary();
  meta["architecture"] = summary.architecture;
  meta["parameters"] = summary.n_params;
  meta["active_parameters"] = summary.n_active_params();  // per token: < parameters for MoE
  if (summary.is_moe()) {
    meta["experts"] = summary.n_expert;
    meta["experts_used"] = summary.n_expert_used;
  }
  if (model.spec().cpu_moe_layers != 0) {  // --cpu-moe / --n-cpu-moe: what the load placed
    meta["cpu_moe_layers"] = model.spec().cpu_moe_layers;
    meta["cpu_expert_tensors"] = text.cpu_expert_tensors();
  }
  meta["context_length"] = text.n_ctx_train();
  if (const auto& vision = model.vision()) {
    const auto& info = vision->info();
    meta["vision"] = {{"projector", info.type},
                      {"image_size", info.image_size},
                      {"tokens_per_image", info.tokens_per_image}};
  }
}

Json model_json(const runtime::ModelStatus& s) {
  static const auto started = std::chrono::system_clock::now();
  const auto& model = s.model;
  Json meta = {{"kind", runtime::model_kind_name(s.spec.kind)},
               {"aliases", s.spec.aliases},
               {"tasks", tasks_json(s.spec)},
               {"loaded", model != nullptr},
               {"loading", s.loading},
               {"pinned", s.spec.pinned},
               {"busy", s.busy},
               {"memory_bytes", model ? model->memory_bytes() : 0},
               {"load_seconds", model ? model->load_seconds() : 0.0},
               {"loads", s.loads},
               {"unloads", s.unloads}};
  if (!s.last_error.empty()) {
    meta["last_error"] = s.last_error;
  }
  if (model) {
    add_loaded_facts(meta, *model);
  }
  return {{"id", s.spec.name},
          {"object", "model"},
          {"created", unix_seconds(model ? model->loaded_at() : started)},
          {"owned_by", "mmserve"},
          {"meta", std::move(meta)}};
}

// The registry's status of the model named `name` (its registry name).
Json model_json_named(runtime::Runtime& rt, const std::string& name) {
  for (const auto& s : rt.models().list()) {
    if (s.spec.name == name) {
      return model_json(s);
    }
  }
  throw Error(ErrorCode::kNotFound, "no model '" + name + "'", "model");  // unregistered meanwhile
}

Json list_json(runtime::Runtime& rt) {
  Json data = Json::array();
  for (const auto& s : rt.models().list()) {
    Json entry = model_json(s);
    Json adapters = Json::array();
    add_adapter_entries(s, entry, adapters);  // "base:adapter" entries after their base
    data.push_back(std::move(entry));
    for (auto& a : adapters) data.push_back(std::move(a));
  }
  return {{"object", "list"}, {"data", std::move(data)}};
}

std::string model_name_of(const ApiRequest& req) {
  const Json body = parse_json_object(std::string(req.body));
  reject_unsupported_fields(body, "", {"model"});
  const auto name = opt_string(body, "model", "");
  if (!name || name->empty()) {
    throw Error(ErrorCode::kInvalidInput, "field 'model' (the model's name) is required", "model");
  }
  return *name;
}

// A path of the register body (see readable_model_file), "" when absent and not required.
std::string registered_path(const Json& body, const char* key, bool required) {
  const auto value = opt_string(body, key, "");
  if (!value || value->empty()) {
    if (required) {
      throw Error(ErrorCode::kInvalidInput,
                  std::string("field '") + key + "' (the model file on this machine) is required",
                  key);
    }
    return {};
  }
  return readable_model_file(*value, key);
}

int32_t registered_count(const Json& body, const char* key, int32_t fallback, int64_t max) {
  const auto value = opt_integer(body, key, "");
  if (!value) {
    return fallback;
  }
  if (*value < 1 || *value > max) {
    throw Error(ErrorCode::kInvalidInput,
                std::string("field '") + key + "' must be between 1 and " + std::to_string(max),
                key);
  }
  return static_cast<int32_t>(*value);
}

// The body of POST /models/register as a spec: the registry's defaults (the command line's)
// for what it does not say. Returns whether to load it now (`preload`, default true).
std::pair<runtime::ModelSpec, bool> registration_of(const ApiRequest& req,
                                                    const runtime::ModelSpec& defaults) {
  const Json body = parse_json_object(std::string(req.body));
  reject_unsupported_fields(body, "",
                            {"name", "aliases", "kind", "path", "mmproj", "vad", "parallel",
                             "ctx_size", "batch_size", "pinned", "preload"});
  runtime::ModelSpec spec = defaults;
  spec.aliases.clear();
  spec.mmproj_path.clear();
  spec.vad_path.clear();
  const auto name = opt_string(body, "name", "");
  if (!name || name->empty() || name->size() > 128 ||
      name->find_first_of(" \t\r\n/") != std::string::npos) {
    throw Error(ErrorCode::kInvalidInput,
                "field 'name' (the new model's name: 1 to 128 characters, no spaces or '/') is "
                "required",
                "name");
  }
  spec.name = *name;
  if (body.contains("aliases")) {
    spec.aliases = opt_string_list(body, "aliases", "");
  }
  const std::string kind = opt_string(body, "kind", "").value_or("text");
  if (kind != "text" && kind != "speech" && kind != "embedding") {
    throw Error(ErrorCode::kInvalidInput,
                R"(field 'kind' must be "text", "speech" or "embedding", not ")" + kind + "\"",
                "kind");
  }
  spec.kind = kind == "speech"      ? runtime::ModelKind::kSpeech
              : kind == "embedding" ? runtime::ModelKind::kEmbedding
                                    : runtime::ModelKind::kText;
  spec.path = registered_path(body, "path", true);
  if (spec.kind == runtime::ModelKind::kText) {
    spec.mmproj_path = registered_path(body, "mmproj", false);
  } else if (body.contains("mmproj")) {
    throw Error(ErrorCode::kInvalidInput, "field 'mmproj' is for text models", "mmproj");
  }
  if (spec.kind == runtime::ModelKind::kSpeech) {
    spec.vad_path = registered_path(body, "vad", false);
    spec.speech_parallel = registered_count(body, "parallel", spec.speech_parallel, 64);
  } else {
    if (body.contains("vad")) {
      throw Error(ErrorCode::kInvalidInput, "field 'vad' is for speech models", "vad");
    }
    spec.parallel = registered_count(body, "parallel", spec.parallel, 256);
  }
  if (body.contains("ctx_size")) {
    spec.ctx_size = registered_count(body, "ctx_size", 0, int64_t{1} << 24);
  }
  spec.batch_size = registered_count(body, "batch_size", spec.batch_size, int64_t{1} << 20);
  spec.pinned = opt_bool(body, "pinned", "").value_or(false);
  const bool load = opt_bool(body, "preload", "").value_or(true);
  spec.preload = load;
  return {std::move(spec), load};
}

}  // namespace

std::string readable_model_file(const std::string& value, const std::string& field) {
  std::filesystem::path path(value);
  if (path.is_relative()) {
    path = std::filesystem::path(default_models_dir()) / path;
  }
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec) || ::access(path.c_str(), R_OK) != 0) {
    throw Error(ErrorCode::kInvalidInput,
                "field '" + field + "': no readable file at " + path.string() +
                    " (relative paths are relative to the model directory " + default_models_dir() +
                    ")",
                field);
  }
  return path.string();
}

std::vector<Route> model_routes(const Services& services) {
  runtime::Runtime& rt = services.runtime;
  return {
      {"GET", "/v1/models",
       [&rt](const ApiRequest&, ApiResponse& res, Exchange&) { write_json(res, list_json(rt)); }},
      {"GET", R"(/v1/models/([^/]+))",
       [&rt](const ApiRequest& req, ApiResponse& res, Exchange&) {
         // By name or alias; kNotFound lists the names.
         write_json(res, model_json_named(rt, rt.models().spec(req.path_params.at(0)).name));
       }},
      // The admin key was checked when the call was admitted (stages/auth, kManageModels).
      {"POST", "/models/load",
       [&rt](const ApiRequest& req, ApiResponse& res, Exchange&) {
         const std::string name = model_name_of(req);
         if (rt.state() != runtime::State::kReady) {
           throw Error(ErrorCode::kUnavailable, "not ready: " + rt.detail());
         }
         const auto lease = rt.models().acquire_named(name);
         Json out = model_json_named(rt, lease->name());
         out["meta"]["busy"] = lease->busy();  // this handler's own lease is not a request
         write_json(res, out);
       }},
      {"POST", "/models/unload",
       [&rt](const ApiRequest& req, ApiResponse& res, Exchange&) {
         const std::string name = model_name_of(req);
         const auto r = rt.models().unload(name);
         write_json(res, Json{{"model", name}, {"unloaded", r.unloaded}, {"in_use", r.in_use}});
       }},
      // A new model without a restart (a fine-tuned one beside the current one): loaded now
      // unless "preload": false; a model that fails to load is not registered.
      {"POST", "/models/register",
       [&rt](const ApiRequest& req, ApiResponse& res, Exchange&) {
         auto [spec, load] = registration_of(req, rt.models().options().registration_defaults);
         if (rt.state() != runtime::State::kReady) {
           throw Error(ErrorCode::kUnavailable, "not ready: " + rt.detail());
         }
         const auto status = rt.models().register_model(std::move(spec), load);
         Json out = model_json(status);
         if (status.model) {
           out["meta"]["busy"] = status.model->busy();  // the status's own lease is no request
         }
         res.status = 201;
         write_json(res, out);
       }},
      {"POST", "/models/unregister",
       [&rt](const ApiRequest& req, ApiResponse& res, Exchange&) {
         const std::string name = model_name_of(req);
         const std::string registered = rt.models().spec(name).name;
         const auto r = rt.models().unregister_model(name);
         write_json(res, Json{{"model", registered},
                              {"unregistered", true},
                              {"unloaded", r.unloaded},
                              {"in_use", r.in_use}});
       }},
  };
}

}  // namespace mmserve::http
