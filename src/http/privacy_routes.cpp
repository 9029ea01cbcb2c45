// POST /v1/privacy/scan: a dry run of the privacy stage. {"input": TEXT} in; out: the findings
// (type, byte span in the input, whether a checksum confirmed it; never the values), counts per
// type, and the decision the pipeline's stages would make for a call with this text (route and
// reason). Nothing is generated.
#include "core/error.h"
#include "http/json_fields.h"
#include "http/json_output.h"
#include "http/routes.h"
#include "privacy/detectors.h"

namespace mmserve::http {

std::vector<Route> privacy_routes(const Services& services) {
  return {{"POST", "/v1/privacy/scan",
           [&services](const ApiRequest& req, ApiResponse& res, Exchange& ex) {
             const Json body = parse_json_object(std::string(req.body));
             reject_unsupported_fields(body, "", {"input"});
             const auto input = opt_string(body, "input", "");
             if (!input) {
               throw Error(ErrorCode::kInvalidInput, "field 'input' (the text) is required",
                           "input");
             }
             Json findings = Json::array();
             Json counts = Json::object();
             for (const auto& f : privacy::scan(*input)) {
               const char* type = privacy::finding_type_name(f.type);
               findings.push_back({{"type", type},
                                   {"begin", f.begin},
                                   {"end", f.end},
                                   {"checksum_verified", f.checksum_verified}});
               counts[type] = counts.value(type, 0) + 1;
             }
             auto& call = ex.call;
             call.task = runtime::Task::kTextGen;
             call.text.style = pipeline::PromptStyle::kRaw;
             call.text.prompt = *input;
             services.pipeline.review(call);
             const auto* reason = call.annotation("route_reason");
             write_json(res, {{"findings", std::move(findings)},
                              {"counts", std::move(counts)},
                              {"route", call.executor},
                              {"reason", reason != nullptr ? *reason : ""}});
           }}};
}

}  // namespace mmserve::http
