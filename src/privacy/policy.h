// The privacy policy: where a request runs given what the detectors found in it. Read from a
// TOML file (the same format as the models file):
//
//   keywords = ["青龙", "Project Falcon"]     # reported as findings of type "keyword"
//   patterns = ['HT-\d{6}']                 # RE2 regular expressions: findings "pattern"
//   route = "auto"                           # calls without findings: "local" (the default),
//                                            # "cloud", or "auto" (the cloud on overflow only)
//   scan_timeout_ms = 1000                   # a longer scan keeps the call local
//   optional_detectors = ["person_name", "address"]  # the heuristic tier (names_addresses.h),
//                                            # off unless named here
//   [overflow]
//   queued = 2                               # auto: the cloud when this many wait locally
//
//   [[rule]]                                 # a findings rule: the first that matches decides
//   name = "no-cards"
//   types = ["bank_card", "cn_resident_id"]  # matches when any finding has one of these types
//   action = "refuse"                        # "refuse" (HTTP 403) or "local"
//   tasks = ["text-gen"]                     # optional scopes: tasks, models, callers
//
//   [[rule]]                                 # a route rule (no types): the route of its scope
//   name = "batch-to-cloud"
//   callers = ["batch"]                      # API key names
//   action = "cloud"                         # "local", "cloud" or "auto"
//
// A call with findings never takes a route rule: the findings rules decide (refuse or local),
// and it runs locally when none matches. Findings rules are tried first, in file order, then
// route rules, in file order, then `route`. Every failure is Error(kInvalidInput) naming
// FILE:LINE and the key.
//
// Threading: a Policy is immutable once parsed; decide() is pure and thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "privacy/finding.h"
#include "privacy/patterns.h"

namespace mmserve::privacy {

// kCloud and kAuto are routes for calls without findings only.
enum class Action { kLocal, kRefuse, kCloud, kAuto };
const char* action_name(Action action);

struct Rule {
  std::string name;
  std::vector<FindingType> types;  // any of them; empty: a route rule (local, cloud, auto)
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
  std::shared_ptr<const PatternSet> patterns;  // compiled `patterns`; null when none
  std::vector<Rule> rules;
  Action route = Action::kLocal;  // calls without findings that no route rule matches
  int overflow_queued = 1;        // auto: the cloud when at least this many wait locally
  // A call whose scan takes longer stays local (fail closed). Scanning runs at about 20 us/KB
  // (30 with the optional tier), so the default only stops a pathological or enormous input.
  int scan_timeout_ms = 1000;
  // The optional tier of detectors (`optional_detectors`): heuristics, so off by default.
  bool person_names = false;  // "person_name"
  bool addresses = false;     // "address"

  Decision decide(const std::vector<Finding>& findings, const Scope& scope) const;
};

Policy parse_policy_text(const std::string& text, const std::string& origin);
// Error(kNotFound) when the file cannot be read.
Policy load_policy_file(const std::string& path);

}  // namespace mmserve::privacy
