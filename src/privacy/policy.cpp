#include "privacy/policy.h"

#include <toml++/toml.h>

#include <algorithm>
#include <fstream>
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
  if (rule.types.empty()) {
    fail(origin, t, "types", "rule '" + rule.name + "' needs 'types' (a non-empty list)");
  }
  const toml::node* action = t.get("action");
  const auto* action_text = action != nullptr ? action->as_string() : nullptr;
  if (action_text == nullptr) {
    fail(origin, t, "action", "rule '" + rule.name + R"(' needs 'action' ("refuse" or "local"))");
  }
  if (action_text->get() == "refuse") {
    rule.action = Action::kRefuse;
  } else if (action_text->get() == "local") {
    rule.action = Action::kLocal;
  } else {
    fail(origin, *action, "action",
         "action '" + action_text->get() +
             "' is not one of refuse, local (this build has no cloud route yet)");
  }
  rule.tasks = string_list(t, origin, "tasks");
  for (const auto& task : rule.tasks) {
    if (task != "text-gen" && task != "image-caption" && task != "speech-transcribe") {
      fail(origin, *t.get("tasks"), "tasks", "unknown task '" + task + "'");
    }
  }
  rule.models = string_list(t, origin, "models");
  rule.callers = string_list(t, origin, "callers");
  return rule;
}

bool in_scope(const std::vector<std::string>& allowed, std::string_view value) {
  return allowed.empty() || std::find(allowed.begin(), allowed.end(), value) != allowed.end();
}

}  // namespace

const char* action_name(Action action) {
  return action == Action::kRefuse ? "refuse" : "local";
}

Decision Policy::decide(const std::vector<Finding>& findings, const Scope& scope) const {
  for (const auto& rule : rules) {
    if (!in_scope(rule.tasks, scope.task) || !in_scope(rule.models, scope.model) ||
        !in_scope(rule.callers, scope.caller)) {
      continue;
    }
    const bool hit = std::any_of(findings.begin(), findings.end(), [&](const Finding& f) {
      return std::find(rule.types.begin(), rule.types.end(), f.type) != rule.types.end();
    });
    if (hit) {
      return {rule.action, rule.name};
    }
  }
  return {Action::kLocal, "default"};
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
  refuse_unknown_keys(root, origin, {"keywords", "rule"}, "in a privacy policy");
  Policy policy;
  policy.keywords = string_list(root, origin, "keywords");
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
