// The privacy policy: what happens to a request given what the detectors found in it. Read from
// a TOML file (the same format as the models file):
//
//   keywords = ["青龙", "Project Falcon"]     # reported as findings of type "keyword"
//
//   [[rule]]                                 # the first rule that matches decides
//   name = "no-cards"
//   types = ["bank_card", "cn_resident_id"]  # matches when any finding has one of these types
//   action = "refuse"                        # "refuse" (HTTP 403) or "local"
//   tasks = ["text-gen"]                     # optional scopes: tasks, models, callers
//
// Requests no rule matches run locally ("default"): this build has no cloud executor yet, so
// "local" is the only route; the cloud routes of the hybrid-cloud issue will add to `action`.
// Every failure is Error(kInvalidInput) naming FILE:LINE and the key.
//
// Threading: a Policy is immutable once parsed; decide() is pure and thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "privacy/finding.h"

namespace mmserve::privacy {

enum class Action { kLocal, kRefuse };
const char* action_name(Action action);

struct Rule {
  std::string name;
  std::vector<FindingType> types;  // any of them
  Action action = Action::kLocal;
  std::vector<std::string> tasks, models, callers;  // empty: any
};

// What a request is, for the rules' scopes.
struct Scope {
  std::string_view task, model, caller;
};

struct Decision {
  Action action = Action::kLocal;
  std::string rule;  // the rule that decided; "default" when none matched
};

struct Policy {
  std::vector<std::string> keywords;
  std::vector<Rule> rules;

  Decision decide(const std::vector<Finding>& findings, const Scope& scope) const;
};

Policy parse_policy_text(const std::string& text, const std::string& origin);
// Error(kNotFound) when the file cannot be read.
Policy load_policy_file(const std::string& path);

}  // namespace mmserve::privacy
