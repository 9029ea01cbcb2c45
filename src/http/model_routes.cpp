#include "http/model_routes.h"

#include <chrono>

#include "core/error.h"
#include "engine/text_model.h"
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
  throw Error(ErrorCode::kNotFound, "no model '" + name + "'", "model");  // names never go away
}

Json list_json(runtime::Runtime& rt) {
  Json data = Json::array();
  for (const auto& s : rt.models().list()) {
    data.push_back(model_json(s));
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

}  // namespace

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
  };
}

}  // namespace mmserve::http
