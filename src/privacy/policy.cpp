#include "privacy/policy.h"

#include <toml++/toml.h>

#include <algorithm>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "core/error.h"

namespace mmserve::privacy {
namespace {

std::string at(const std::string& origin, const toml::node& node) {
  return origin + ":" + std::to_string(node.source().begin.line) + ": ";
}

[[noreturn]] void fail(const std::string& origin, const toml::node& node, const std::string& key,
                       const std::string& message) {
  throw Error(ErrorCode::kInvalidInput, at(origin, node) + message, key);
}

std::vector<std::string> string_list(const toml::table& t, const std::string& origin,
                                     const std::string& key) {
  std::vector<std::string> out;
  const toml::node* n = t.get(key);
  if (n == nullptr) {
    return out;
  }
  const toml::array* list = n->as_array();
  if (list == nullptr) {
    fail(origin, *n, key, "'" + key + "' must be a list of strings");
  }
  for (const auto& item : *list) {
    const auto* s = item.as_string();
    if (s == nullptr || s->get().empty()) {
      fail(origin, item, key, "'" + key + "' must hold non-empty strings");
    }
    out.push_back(s->get());
  }
  return out;
}

// The whole number at `key` of `t`, within [min, max]; `fallback` when absent; else fails
// naming the key with `message`.
int bounded_int(const toml::table& t, const std::string& origin, const std::string& key, int min,
                int max, int fallback, const std::string& message) {
  const toml::node* node = t.get(key);
  if (node == nullptr) {
    return fallback;
  }
  const auto* n = node->as_integer();
  if (n == nullptr || n->get() < min || n->get() > max) {
    fail(origin, *node, key, message);
  }
  return static_cast<int>(n->get());
}

void refuse_unknown_keys(const toml::table& t, const std::string& origin,
                         const std::set<std::string, std::less<>>& known, const char* where) {
  for (const auto& [key, node] : t) {
    if (!known.contains(key.str())) {
      std::string names;
      for (const auto& k : known) {
        names += (names.empty() ? "" : ", ") + k;
      }
      fail(origin, node, std::string(key.str()),
           "unknown key '" + std::string(key.str()) + "' " + where + "; keys: " + names);
    }
  }
}

std::optional<Action> parse_action(std::string_view text);

Rule parse_rule(const toml::table& t, const std::string& origin, size_t index) {
  refuse_unknown_keys(t, origin, {"name", "types", "action", "tasks", "models", "callers"},
                      "in a [[rule]]");
  Rule rule;
  const auto* name = t.get_as<std::string>("name");
  rule.name = name != nullptr ? name->get() : "rule " + std::to_string(index + 1);
  for (const auto& type : string_list(t, origin, "types")) {
    const auto parsed = parse_finding_type(type);
    if (!parsed) {
      fail(origin, *t.get("types"), "types", "unknown finding type '" + type + "'");
    }
    rule.types.push_back(*parsed);
  }
  if (const auto* types = t.get("types"); types != nullptr && rule.types.empty()) {
    fail(origin, *types, "types",
         "rule '" + rule.name + "' has an empty 'types': leave it out for a route rule");
  }
  const toml::node* action = t.get("action");
  const auto* action_text = action != nullptr ? action->as_string() : nullptr;
  if (action_text == nullptr) {
    fail(
        origin, t, "action",
        "rule '" + rule.name +
            R"(' needs 'action' ("refuse" or "local" with types; "local", "cloud" or "auto" without))");
  }
  const auto parsed = parse_action(action_text->get());
  if (!parsed) {
    fail(origin, *action, "action",
         "action '" + action_text->get() + "' is not one of refuse, local, cloud, auto");
  }
  rule.action = *parsed;
  if (!rule.types.empty() && (rule.action == Action::kCloud || rule.action == Action::kAuto)) {
    fail(origin, *action, "action",
         "rule '" + rule.name + "' has types, and a call with findings never goes to the cloud: " +
             "its action must be refuse or local");
  }
  if (rule.types.empty() && rule.action == Action::kRefuse) {
    fail(origin, *action, "action",
         "rule '" + rule.name + "' refuses without 'types': name the finding types it refuses");
  }
  rule.tasks = string_list(t, origin, "tasks");
  for (const auto& task : rule.tasks) {
    if (task != "text-gen" && task != "image-caption" && task != "speech-transcribe" &&
        task != "embed") {
      fail(origin, *t.get("tasks"), "tasks", "unknown task '" + task + "'");
    }
  }
  rule.models = string_list(t, origin, "models");
  rule.callers = string_list(t, origin, "callers");
  return rule;
}

std::optional<Action> parse_action(std::string_view text) {
  for (const auto a : {Action::kLocal, Action::kRefuse, Action::kCloud, Action::kAuto}) {
    if (text == action_name(a)) {
      return a;
    }
  }
  return std::nullopt;
}

bool in_scope(const std::vector<std::string>& allowed, std::string_view value) {
  return allowed.empty() || std::find(allowed.begin(), allowed.end(), value) != allowed.end();
}

}  // namespace

const char* action_name(Action action) {
  switch (action) {
    case Action::kLocal: return "local";
    case Action::kRefuse: return "refuse";
    case Action::kCloud: return "cloud";
    case Action::kAuto: return "auto";
  }
  return "local";
}

Decision Policy::decide(const std::vector<Finding>& findings, const Scope& scope) const {
  const auto scoped = [&scope](const Rule& rule) {
    return in_scope(rule.tasks, scope.task) && in_scope(rule.models, scope.model) &&
           in_scope(rule.callers, scope.caller);
  };
  if (!findings.empty()) {
    for (const auto& rule : rules) {
      if (rule.types.empty() || !scoped(rule)) {
        continue;
      }
      const bool hit = std::any_of(findings.begin(), findings.end(), [&](const Finding& f) {
        return std::find(rule.types.begin(), rule.types.end(), f.type) != rule.types.end();
      });
      if (hit) {
        return {rule.action, rule.name};
      }
    }
    return {Action::kLocal, "default"};  // findings stay here, whatever the route
  }
  for (const auto& rule : rules) {
    if (rule.types.empty() && scoped(rule)) {
      return {rule.action, rule.name};
    }
  }
  return {route, "default"};
}

Policy parse_policy_text(const std::string& text, const std::string& origin) {
  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    throw Error(
        ErrorCode::kInvalidInput,
        origin + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description()),
        "privacy-policy");
  }
  refuse_unknown_keys(root, origin,
                      {"keywords", "patterns", "rule", "route", "overflow", "scan_timeout_ms",
                       "optional_detectors"},
                      "in a privacy policy");
  Policy policy;
  policy.keywords = string_list(root, origin, "keywords");
  if (const auto patterns = string_list(root, origin, "patterns"); !patterns.empty()) {
    try {
      policy.patterns = PatternSet::compile(patterns, "patterns");
    } catch (const Error& e) {
      fail(origin, *root.get("patterns"), "patterns", e.what());
    }
  }
  for (const auto& name : string_list(root, origin, "optional_detectors")) {
    if (name == "person_name") {
      policy.person_names = true;
    } else if (name == "address") {
      policy.addresses = true;
    } else {
      fail(origin, *root.get("optional_detectors"), "optional_detectors",
           "unknown optional detector '" + name +
               "' in 'optional_detectors'; detectors: person_name, address");
    }
  }
  if (const toml::node* route = root.get("route")) {
    const auto* text = route->as_string();
    const auto parsed = text != nullptr ? parse_action(text->get()) : std::nullopt;
    if (!parsed || *parsed == Action::kRefuse) {
      fail(origin, *route, "route", R"('route' must be "local", "cloud" or "auto")");
    }
    policy.route = *parsed;
  }
  policy.scan_timeout_ms =
      bounded_int(root, origin, "scan_timeout_ms", 1, 600000, policy.scan_timeout_ms,
                  "'scan_timeout_ms' must be a whole number of milliseconds from 1 to 600000");
  if (const toml::node* overflow = root.get("overflow")) {
    const toml::table* t = overflow->as_table();
    if (t == nullptr) {
      fail(origin, *overflow, "overflow", "'overflow' must be a table ([overflow])");
    }
    refuse_unknown_keys(*t, origin, {"queued"}, "in [overflow]");
    policy.overflow_queued =
        bounded_int(*t, origin, "queued", 0, 1000000, policy.overflow_queued,
                    "'queued' must be a whole number from 0 (always overflow) to 1000000");
  }
  if (const toml::node* rules = root.get("rule")) {
    const toml::array* list = rules->as_array();
    if (list == nullptr) {
      fail(origin, *rules, "rule", "'rule' must be [[rule]] tables");
    }
    for (size_t i = 0; i < list->size(); ++i) {
      const toml::table* t = (*list)[i].as_table();
      if (t == nullptr) {
        fail(origin, (*list)[i], "rule", "'rule' must be [[rule]] tables");
      }
      policy.rules.push_back(parse_rule(*t, origin, i));
    }
  }
  return policy;
}

Policy load_policy_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error(ErrorCode::kNotFound, "cannot read the privacy policy " + path, "privacy-policy");
  }
  std::ostringstream text;
  text << in.rdbuf();
  return parse_policy_text(text.str(), path);
}

}  // namespace mmserve::privacy
