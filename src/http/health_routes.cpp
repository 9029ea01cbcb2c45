// GET /health and GET /ready: the process's state and each loaded model's scheduler figures.
// /ready is 503 unless the server is ready and no loaded model's queue is full, so that a
// balancer sends work elsewhere.
#include "core/error.h"
#include "http/json_fields.h"
#include "http/json_output.h"
#include "http/routes.h"

namespace mmserve::http {
namespace {

Json text_stats_json(const scheduler::SchedulerStats& s) {
  return {
      {"running", s.running}, {"waiting", s.waiting},         {"queue_capacity", s.queue_capacity},
      {"queue_full", s.full}, {"kv_cache_usage", s.kv_usage}, {"cancelled", s.cancelled},
      {"steps", s.steps}};
}

Json speech_stats_json(const scheduler::SpeechStats& s) {
  return {{"running", s.running},      {"active", s.active},
          {"waiting", s.waiting},      {"queued", s.queued},
          {"parallel", s.parallel},    {"queue_capacity", s.queue_capacity},
          {"windows", s.windows_done}, {"cancelled", s.cancelled}};
}

Json embedding_stats_json(const scheduler::EmbeddingStats& s) {
  return {{"running", s.running},
          {"outstanding", s.outstanding},
          {"queue_capacity", s.queue_capacity},
          {"queue_full", s.outstanding >= s.queue_capacity},
          {"calls", s.calls},
          {"inputs", s.inputs},
          {"cancelled", s.cancelled}};
}

// The health document, and the first loaded model whose queue is full (empty: none).
struct Health {
  Json json;
  std::string full_model;
  bool full_is_speech = false;
};

// State, and per loaded model its scheduler's figures (each read once). "text" and "speech"
// repeat the first loaded model of each kind (what single-model servers always showed).
Health health(runtime::Runtime& rt) {
  Health h{{{"status", "ok"}, {"state", runtime::state_name(rt.state())}}, {}, false};
  if (rt.state() != runtime::State::kReady && rt.state() != runtime::State::kDraining) {
    return h;
  }
  Json models = Json::object();
  for (const auto& lease : rt.models().loaded()) {
    const bool speech = lease->spec().kind == runtime::ModelKind::kSpeech;
    bool full = false;
    Json stats;
    const bool embedding = lease->spec().kind == runtime::ModelKind::kEmbedding;
    if (embedding) {
      const auto s = lease->embedding().stats();
      full = s.outstanding >= s.queue_capacity;
      stats = embedding_stats_json(s);
    } else if (speech) {
      const auto s = lease->speech().stats();
      full = s.full;
      stats = speech_stats_json(s);
    } else {
      const auto s = lease->text().stats();
      full = s.full;
      stats = text_stats_json(s);
    }
    if (full && h.full_model.empty()) {
      h.full_model = lease->name();
      h.full_is_speech = speech;
    }
    const char* kind = runtime::model_kind_name(lease->spec().kind);
    if (!h.json.contains(kind)) {
      h.json[kind] = stats;
    }
    stats["kind"] = kind;
    models[lease->name()] = std::move(stats);
  }
  h.json["models"] = std::move(models);
  return h;
}

}  // namespace

std::vector<Route> health_routes(const Services& services) {
  runtime::Runtime& rt = services.runtime;
  return {
      {"GET", "/health",
       [&rt](const ApiRequest&, ApiResponse& res, Exchange&) { write_json(res, health(rt).json); }},
      {"GET", "/ready", [&rt](const ApiRequest&, ApiResponse& res, Exchange&) {
         Health h = health(rt);
         const auto state = rt.state();
         bool ready = state == runtime::State::kReady;
         if (state != runtime::State::kReady) {
           h.json["reason"] = rt.detail();
         } else if (!h.full_model.empty()) {
           // A scheduler that would refuse a request now (429) makes the replica unready.
           ready = false;
           h.json["reason"] =
               h.full_is_speech ? "the speech queue is full" : "the wait queue is full";
           h.json["model"] = h.full_model;
         }
         h.json["status"] = ready ? "ready" : "unavailable";
         write_json(res, h.json);
         res.status = ready ? 200 : 503;
       }}};
}

}  // namespace mmserve::http
