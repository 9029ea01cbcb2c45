#include "http/adapter_routes.h"

#include "core/error.h"
#include "http/json_output.h"
#include "http/model_routes.h"

namespace mmserve::http {
namespace {

std::string required_string(const Json& body, const char* key, const char* what) {
  const auto value = opt_string(body, key, "");
  if (!value || value->empty()) {
    throw Error(ErrorCode::kInvalidInput,
                std::string("field '") + key + "' (" + what + ") is required", key);
  }
  return *value;
}

Json adapter_json(const engine::LoraAdapter& a, size_t index) {
  return {{"name", a.name()}, {"id", index}, {"scale", a.default_scale()}};
}

// The loaded text model named `model` (loading it if needed, as POST /models/load).
runtime::ModelLease text_model(runtime::Runtime& rt, const std::string& model) {
  if (rt.state() != runtime::State::kReady) {
    throw Error(ErrorCode::kUnavailable, "not ready: " + rt.detail());
  }
  auto lease = rt.models().acquire_named(model);
  (void)lease->loras();  // Error(kInvalidInput, "model") for speech and embedding models
  return lease;
}

}  // namespace

void add_adapter_entries(const runtime::ModelStatus& status, Json& model_entry, Json& data) {
  if (!status.model || !status.model->has_loras()) return;
  const auto adapters = status.model->loras().list();
  Json list = Json::array();
  for (size_t i = 0; i < adapters.size(); ++i) {
    const auto& a = *adapters[i];
    list.push_back(adapter_json(a, i));
    data.push_back({{"id", status.spec.name + ":" + a.name()},
                    {"object", "model"},
                    {"created", model_entry.value("created", 0)},
                    {"owned_by", "mmserve"},
                    {"meta",
                     {{"kind", "adapter"},
                      {"base", status.spec.name},
                      {"adapter", a.name()},
                      {"id", i},
                      {"scale", a.default_scale()},
                      {"tasks", model_entry["meta"].value("tasks", Json::array())},
                      {"loaded", true}}}});
  }
  model_entry["meta"]["adapters"] = std::move(list);
}

std::vector<Route> adapter_routes(const Services& services) {
  runtime::Runtime& rt = services.runtime;
  return {
      // The admin key was checked when the call was admitted (stages/auth, kManageModels).
      {"POST", "/models/adapters/load",
       [&rt](const ApiRequest& req, ApiResponse& res, Exchange&) {
         const Json body = parse_json_object(std::string(req.body));
         reject_unsupported_fields(body, "", {"model", "name", "path", "scale"});
         const std::string model = required_string(body, "model", "the base model's name");
         runtime::LoraSpec spec;
         spec.name = required_string(body, "name", "what requests call the adapter");
         engine::LoraAdapter::check_name(spec.name, "name");
         spec.path =
             readable_model_file(required_string(body, "path", "the adapter's GGUF file"), "path");
         if (const auto scale = opt_number(body, "scale", "")) {
           spec.scale = static_cast<float>(*scale);
         }
         engine::LoraAdapter::check_scale(spec.scale, "scale");
         const auto lease = text_model(rt, model);
         std::shared_ptr<const engine::LoraAdapter> adapter;
         try {
           adapter = lease->loras().load(spec);
         } catch (const Error& e) {
           // A file that is not this model's adapter is the client's mistake, not the server's.
           if (e.code() != ErrorCode::kModelLoad) throw;
           throw Error(ErrorCode::kInvalidInput, e.what(), "path");
         }
         const auto all = lease->loras().list();
         size_t index = 0;
         while (index < all.size() && all[index] != adapter) ++index;
         res.status = 201;
         write_json(res, Json{{"model", lease->name()},
                              {"id", lease->name() + ":" + adapter->name()},
                              {"adapter", adapter_json(*adapter, index)},
                              {"loaded", true}});
       }},
      {"POST", "/models/adapters/unload",
       [&rt](const ApiRequest& req, ApiResponse& res, Exchange&) {
         const Json body = parse_json_object(std::string(req.body));
         reject_unsupported_fields(body, "", {"model", "name"});
         const std::string model = required_string(body, "model", "the base model's name");
         const std::string name = required_string(body, "name", "the adapter's name");
         const auto lease = text_model(rt, model);
         lease->loras().unload(name);
         write_json(res, Json{{"model", lease->name()}, {"name", name}, {"unloaded", true}});
       }},
  };
}

}  // namespace mmserve::http
