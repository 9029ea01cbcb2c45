// POST /v1/feedback: what a client thinks of a captured answer (stages/capture).
//
//   {"id": RESPONSE_ID, "rating": "up" | "down" | a number in [-1, 1] | null,
//    "correction": "the answer it should have been", "comment": "..."}
//
// `id` is the id the client got with the answer ("chatcmpl-...", "inf-...", "resp_...", "cmpl-");
// at least one of rating, correction and comment is given. "up" is stored as 1, "down" as -1;
// the export reads > 0 as up and < 0 as down. Correction and comment are redacted like the
// capture (typed placeholders) before they are written. A feedback may follow its answer at once:
// a capture still queued for the writer counts as captured (feedback rows are joined to captures
// when read). Placeholders in them are numbered after the record's (their originals are not
// kept, so a value of the prompt gets a new number in the correction). Several feedbacks for one
// id: all are kept, the latest is the one read.
//
// 200 {"id", "object": "feedback", "rating", "correction", "comment", "redactions", "created"};
// 404 naming "id" when no captured response has that id, or it was answered to another key (an
// admin key may rate any); 400 naming the field for a bad value; 404 naming "capture" on a
// server that does not capture (no serve --capture-db).
#include <cmath>

#include "core/error.h"
#include "http/json_fields.h"
#include "http/json_output.h"
#include "http/routes.h"
#include "stages/capture/redaction.h"

namespace mmserve::http {
namespace {

constexpr size_t kMaxIdLength = 256;
constexpr size_t kMaxTextBytes = 256 * 1024;

[[noreturn]] void invalid(const std::string& message, const std::string& field) {
  throw Error(ErrorCode::kInvalidInput, message, field);
}

std::optional<double> read_rating(const Json& body) {
  const auto it = body.find("rating");
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) {
    const auto text = it->get<std::string>();
    if (text == "up") return 1.0;
    if (text == "down") return -1.0;
    invalid(
        "field 'rating' must be \"up\", \"down\" or a number between -1 and 1, not '" + text + "'",
        "rating");
  }
  if (it->is_number() && !it->is_boolean()) {
    const double v = it->get<double>();
    if (std::isfinite(v) && v >= -1 && v <= 1) return v;
  }
  invalid("field 'rating' must be \"up\", \"down\" or a number between -1 and 1", "rating");
}

std::optional<std::string> read_text(const Json& body, const char* key) {
  auto text = opt_string(body, key, "");
  if (text && text->size() > kMaxTextBytes) {
    invalid(std::string("field '") + key + "' is longer than 262144 bytes", key);
  }
  return text;
}

Json feedback(stages::CaptureWriter& writer, const ApiRequest& req,
              const pipeline::Caller& caller) {
  const Json body = parse_json_object(std::string(req.body));
  reject_unsupported_fields(body, "", {"id", "rating", "correction", "comment"});
  const auto id = opt_string(body, "id", "");
  if (!id || id->empty())
    invalid("field 'id' (the response id of a captured answer) is required", "id");
  if (id->size() > kMaxIdLength) invalid("field 'id' is longer than 256 bytes", "id");
  store::FeedbackRecord f;
  f.response_id = *id;
  f.key_id = caller.id;
  f.time_ms = store::unix_ms_now();
  f.rating = read_rating(body);
  f.correction = read_text(body, "correction");
  f.comment = read_text(body, "comment");
  if (!f.rating && !f.correction && !f.comment) {
    invalid("give a rating, a correction or a comment", "rating");
  }
  // Queued first, then stored: a capture moves from one to the other, never the other way.
  auto owner = writer.pending_owner(*id);
  if (!owner) owner = writer.store().owner(*id);
  if (!owner || (*owner != caller.id && !caller.admin)) {
    throw Error(ErrorCode::kNotFound, "no captured response has the id '" + *id + "'", "id");
  }
  const privacy::ScanOptions scan = writer.scan_options();
  stages::Redactor redactor(scan);
  if (writer.pending_owner(*id)) writer.flush();  // its placeholders, to number after them
  if (const auto entry = writer.store().find(*id)) {
    redactor.continue_after(entry->record.messages_json);
    redactor.continue_after(entry->record.answer);
    redactor.continue_after(entry->record.tool_calls_json);
  }
  if (f.correction) f.correction = redactor.redact(*f.correction);
  if (f.comment) f.comment = redactor.redact(*f.comment);
  Json counts = Json::object();
  for (const auto& [type, n] : redactor.counts()) counts[type] = n;
  f.redactions_json = counts.dump();
  writer.store().add_feedback(f);
  return {{"id", f.response_id},
          {"object", "feedback"},
          {"rating", f.rating ? Json(*f.rating) : Json(nullptr)},
          {"correction", f.correction ? Json(*f.correction) : Json(nullptr)},
          {"comment", f.comment ? Json(*f.comment) : Json(nullptr)},
          {"redactions", counts},
          {"created", f.time_ms / 1000}};
}

}  // namespace

std::vector<Route> feedback_routes(const Services& services) {
  stages::CaptureWriter* writer = services.capture;
  return {{"POST", "/v1/feedback", [writer](const ApiRequest& req, ApiResponse& res, Exchange& ex) {
             if (writer == nullptr) {
               throw Error(ErrorCode::kNotFound,
                           "feedback is kept only on a server that captures (serve --capture-db "
                           "FILE)",
                           "capture");
             }
             write_json(res, feedback(*writer, req, ex.call.caller));
           }}};
}

}  // namespace mmserve::http
