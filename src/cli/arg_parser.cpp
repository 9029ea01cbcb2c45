#include "cli/arg_parser.h"

#include <charconv>
#include <cmath>
#include <sstream>

#include "core/error.h"

namespace mmserve::cli {
namespace {

std::vector<std::string> split_aliases(const std::string& spec) {
  std::vector<std::string> out;
  std::stringstream ss(spec);
  for (std::string part; std::getline(ss, part, '|');) out.push_back(part);
  return out;
}

}  // namespace

ArgParser::ArgParser(std::vector<std::string> valued, std::vector<std::string> flags) {
  auto add = [&](const std::string& spec, bool takes_value) {
    const auto names = split_aliases(spec);
    for (const auto& n : names) alias_[n] = names.back();
    takes_value_[names.back()] = takes_value;
  };
  for (const auto& v : valued) add(v, true);
  for (const auto& f : flags) add(f, false);
}

void ArgParser::parse(const std::vector<std::string>& args) {
  bool only_positionals = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (only_positionals || arg.size() < 2 || arg[0] != '-' ||
        (std::isdigit(static_cast<unsigned char>(arg[1])) != 0)) {
      positionals_.push_back(arg);
      continue;
    }
    if (arg == "--") {
      only_positionals = true;
      continue;
    }
    std::string name = arg;
    std::optional<std::string> inline_value;
    if (const auto eq = arg.find('='); eq != std::string::npos && arg.starts_with("--")) {
      name = arg.substr(0, eq);
      inline_value = arg.substr(eq + 1);
    }
    const auto it = alias_.find(name);
    if (it == alias_.end()) throw Error(ErrorCode::kInvalidInput, "unknown option " + name, name);
    const std::string& canonical = it->second;
    if (!takes_value_[canonical]) {
      if (inline_value) {
        throw Error(ErrorCode::kInvalidInput, "option " + name + " takes no value", name);
      }
      flags_[canonical] = true;
      continue;
    }
    if (inline_value) {
      values_[canonical].push_back(*inline_value);
    } else if (i + 1 < args.size()) {
      values_[canonical].push_back(args[++i]);
    } else {
      throw Error(ErrorCode::kInvalidInput, "option " + name + " needs a value", name);
    }
  }
}

bool ArgParser::has(const std::string& name) const {
  return values_.contains(name);
}

const std::string* ArgParser::single(const std::string& name) const {
  const auto it = values_.find(name);
  if (it == values_.end()) return nullptr;
  if (it->second.size() > 1) {
    // Silently keeping the last would lose what the first said.
    throw Error(ErrorCode::kInvalidInput, "option " + name + " is given more than once", name);
  }
  return &it->second.front();
}

std::string ArgParser::get(const std::string& name, const std::string& fallback) const {
  const auto* value = single(name);
  return value == nullptr ? fallback : *value;
}

std::vector<std::string> ArgParser::get_all(const std::string& name) const {
  const auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

int ArgParser::get_int(const std::string& name, int fallback) const {
  const auto* given = single(name);
  if (given == nullptr) return fallback;
  int value = 0;
  const auto& s = *given;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size()) {
    throw Error(ErrorCode::kInvalidInput, "option " + name + " wants an integer, got '" + s + "'",
                name);
  }
  return value;
}

float ArgParser::get_float(const std::string& name, float fallback) const {
  const auto* given = single(name);
  if (given == nullptr) return fallback;
  const auto& s = *given;
  char* end = nullptr;
  const float value = std::strtof(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(value)) {
    throw Error(ErrorCode::kInvalidInput, "option " + name + " wants a number, got '" + s + "'",
                name);
  }
  return value;
}

bool ArgParser::flag(const std::string& name) const {
  return flags_.contains(name);
}

engine::GenerationRequest generation_options(const ArgParser& p) {
  engine::GenerationRequest request;
  request.max_tokens = p.get_int("--max-tokens", 256);
  auto& s = request.sampling;
  s.temperature = p.get_float("--temp", s.temperature);
  s.top_k = p.get_int("--top-k", s.top_k);
  s.top_p = p.get_float("--top-p", s.top_p);
  s.min_p = p.get_float("--min-p", s.min_p);
  s.repeat_penalty = p.get_float("--repeat-penalty", s.repeat_penalty);
  if (p.has("--seed")) s.seed = static_cast<uint32_t>(p.get_int("--seed", 0));
  request.stop = p.get_all("--stop");
  engine::validate(s);
  return request;
}

}  // namespace mmserve::cli
