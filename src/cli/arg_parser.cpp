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
      values_[canonical] = *inline_value;
    } else if (i + 1 < args.size()) {
      values_[canonical] = args[++i];
    } else {
      throw Error(ErrorCode::kInvalidInput, "option " + name + " needs a value", name);
    }
  }
}

bool ArgParser::has(const std::string& name) const {
  return values_.contains(name);
}

std::string ArgParser::get(const std::string& name, const std::string& fallback) const {
  const auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

int ArgParser::get_int(const std::string& name, int fallback) const {
  const auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  int value = 0;
  const auto& s = it->second;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size()) {
    throw Error(ErrorCode::kInvalidInput, "option " + name + " wants an integer, got '" + s + "'",
                name);
  }
  return value;
}

float ArgParser::get_float(const std::string& name, float fallback) const {
  const auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  const auto& s = it->second;
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

}  // namespace mmserve::cli
