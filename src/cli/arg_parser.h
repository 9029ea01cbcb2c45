// A small command-line parser: named options with values, boolean flags and positionals.
// Errors are Error(kInvalidInput) naming the option, so the CLI prints one clear line.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/text_batch.h"

namespace mmserve::cli {

class ArgParser {
 public:
  // `valued` options take a value ("-m X", "--model X", "--model=X"); `flags` take none.
  // Aliases are given as "-m|--model"; the canonical name is the last one.
  ArgParser(std::vector<std::string> valued, std::vector<std::string> flags);

  void parse(const std::vector<std::string>& args);

  bool has(const std::string& name) const;
  // The value of an option given once; Error(kInvalidInput) when it was given more than once
  // (get, get_int, get_float): only the options a command reads with get_all may repeat.
  std::string get(const std::string& name, const std::string& fallback = {}) const;
  std::vector<std::string> get_all(const std::string& name) const;  // every value, in order
  int get_int(const std::string& name, int fallback) const;
  float get_float(const std::string& name, float fallback) const;
  bool flag(const std::string& name) const;
  const std::vector<std::string>& positionals() const { return positionals_; }

 private:
  std::map<std::string, std::string> alias_;                 // every spelling -> canonical
  std::map<std::string, bool> takes_value_;                  // canonical -> valued?
  const std::string* single(const std::string& name) const;  // null when not given

  std::map<std::string, std::vector<std::string>> values_;
  std::map<std::string, bool> flags_;
  std::vector<std::string> positionals_;
};

// The generation options `generate` and `describe` share (-n/--max-tokens, --temp, --top-k,
// --top-p, --min-p, --repeat-penalty, --seed, --stop), validated; throws Error naming the field.
engine::GenerationRequest generation_options(const ArgParser& parser);

}  // namespace mmserve::cli
