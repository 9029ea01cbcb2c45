// `mmserve scan FILE`: the privacy detectors (src/privacy/) over a text file, as a dry run of
// what the privacy router will see: one JSON document with each finding's type, byte span,
// line and whether a checksum confirmed it, and counts per type. Like the audit log it never
// prints the values themselves. --stats adds the scan's throughput (benchmarks read it).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "cli/arg_parser.h"
#include "cli/commands.h"
#include "core/error.h"
#include "privacy/detectors.h"

namespace mmserve::cli {
namespace {

constexpr const char* kUsage = R"(usage: mmserve scan FILE [options]
Finds personal data in a UTF-8 text file (FILE "-" reads standard input) with the detectors the
privacy router uses, and prints the findings (types, byte spans, lines; never the values).

  --keyword WORD         also report WORD (customer and project names); repeatable as a
                         comma-separated list
  --keywords-file FILE   one keyword per line
  --patterns-file FILE   regular expressions (RE2 syntax), one per line, reported as "pattern"
  --names                also report person names ("person_name"; the optional, heuristic tier)
  --addresses            also report postal addresses ("address"; the optional tier)
  --stats                add bytes, scan time and microseconds per KB to the output
  --repeat N             scan N times (for --stats on small files; default 1)
)";

std::string read_all(const std::string& path) {
  if (path == "-") {
    return {std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error(ErrorCode::kNotFound, "cannot read " + path, "FILE");
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<std::string> split_list(const std::string& list, char sep) {
  std::vector<std::string> out;
  std::stringstream s(list);
  for (std::string item; std::getline(s, item, sep);) {
    if (!item.empty() && item.back() == '\r') {
      item.pop_back();
    }
    if (!item.empty()) {
      out.push_back(item);
    }
  }
  return out;
}

}  // namespace

int run_scan(const std::vector<std::string>& args) {
  ArgParser p({"--keyword", "--keywords-file", "--patterns-file", "--repeat"},
              {"-h|--help", "--stats", "--names", "--addresses"});
  p.parse(args);
  if (p.flag("--help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (p.positionals().size() != 1) {
    throw Error(ErrorCode::kInvalidInput, std::string("give one FILE to scan\n") + kUsage, "FILE");
  }
  privacy::ScanOptions options;
  for (const auto& list : p.get_all("--keyword")) {
    for (auto& word : split_list(list, ',')) {
      options.keywords.push_back(std::move(word));
    }
  }
  if (p.has("--keywords-file")) {
    for (auto& word : split_list(read_all(p.get("--keywords-file")), '\n')) {
      options.keywords.push_back(std::move(word));
    }
  }
  if (p.has("--patterns-file")) {
    const std::string path = p.get("--patterns-file");
    try {
      options.patterns =
          privacy::PatternSet::compile(split_list(read_all(path), '\n'), "--patterns-file");
    } catch (const Error& e) {
      throw Error(e.code(), "--patterns-file " + path + ": " + e.what(), e.field());
    }
  }
  options.person_names = p.flag("--names");
  options.addresses = p.flag("--addresses");
  const int repeat = p.get_int("--repeat", 1);
  if (repeat < 1 || repeat > 1'000'000) {
    throw Error(ErrorCode::kInvalidInput, "--repeat must be between 1 and 1000000", "--repeat");
  }
  const std::string text = read_all(p.positionals()[0]);

  std::vector<privacy::Finding> findings;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < repeat; ++i) {
    findings = privacy::scan(text, options);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  nlohmann::json list = nlohmann::json::array();
  std::map<std::string, int> counts;
  size_t line = 1;
  size_t counted_to = 0;
  for (const auto& f : findings) {
    for (; counted_to < f.begin; ++counted_to) {
      line += text[counted_to] == '\n' ? 1 : 0;
    }
    const char* type = privacy::finding_type_name(f.type);
    ++counts[type];
    list.push_back({{"type", type},
                    {"begin", f.begin},
                    {"end", f.end},
                    {"line", line},
                    {"checksum_verified", f.checksum_verified}});
  }
  nlohmann::json out = {{"findings", std::move(list)}, {"counts", counts}};
  if (p.flag("--stats")) {
    const double kb = static_cast<double>(text.size()) / 1024.0;
    out["stats"] = {{"bytes", text.size()},
                    {"repeat", repeat},
                    {"seconds", seconds},
                    {"us_per_kb", kb > 0 ? seconds * 1e6 / (kb * repeat) : 0.0}};
  }
  std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  return 0;
}

}  // namespace mmserve::cli
