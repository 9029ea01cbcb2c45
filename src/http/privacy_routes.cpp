// POST /v1/privacy/scan: a dry run of the privacy stage. {"input": TEXT} in; out: the findings
// (type, byte span in the input, whether a checksum confirmed it; never the values), counts per
// type, and the decision the pipeline's stages would make for a call with this text (route and
// reason; "refused" when a policy rule would refuse it). Nothing is generated, nothing audited.
#include <sstream>

#include "core/error.h"
#include "http/json_fields.h"
#include "http/json_output.h"
#include "http/routes.h"

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
             auto& call = ex.call;
             call.task = runtime::Task::kTextGen;
             call.text.style = pipeline::PromptStyle::kRaw;
             call.text.prompt = *input;
             call.dry_run = true;
             try {
               services.pipeline.review(call);
             } catch (const Error& e) {
               if (e.code() != ErrorCode::kForbidden) {
                 throw;
               }
               call.executor = "refused";  // what the request would get: 403
             }
             // The findings as the stages saw them (the policy's keywords included).
             Json findings = Json::array();
             Json counts = Json::object();
             for (const auto& a : call.annotations) {
               if (a.key != "finding") {
                 continue;
               }
               std::istringstream fields(a.value);
               std::string type;
               size_t begin = 0, end = 0;
               int verified = 0;
               fields >> type >> begin >> end >> verified;
               findings.push_back({{"type", type},
                                   {"begin", begin},
                                   {"end", end},
                                   {"checksum_verified", verified == 1}});
               counts[type] = counts.value(type, 0) + 1;
             }
             const auto* reason = call.annotation("route_reason");
             const auto* rule = call.annotation("rule");
             write_json(res, {{"findings", std::move(findings)},
                              {"counts", std::move(counts)},
                              {"route", call.executor},
                              {"rule", rule != nullptr ? *rule : ""},
                              {"reason", reason != nullptr ? *reason : ""}});
           }}};
}

}  // namespace mmserve::http
