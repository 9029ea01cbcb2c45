// privacy_corpus_gen N SEED: N records of the privacy corpus (tests/unit/privacy_corpus.h) as
// JSON lines on stdout, {"text": ..., "planted": [...], "types": [...]}: the record's text, the
// exact bytes of each identifier embedded in it, and their finding types (same order). Records
// with empty "planted" hold look-alikes only. The integration tests feed these to a real server
// and look for the planted strings in what left it.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "privacy/finding.h"
#include "privacy_corpus.h"

namespace {

bool parse_unsigned(const char* text, unsigned long long max, unsigned long long& out) {
  if (text == nullptr || *text == '\0' || *text == '-') return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtoull(text, &end, 10);
  return errno == 0 && *end == '\0' && out <= max;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned long long count = 0, seed = 0;
  if (argc != 3 || !parse_unsigned(argv[1], 100000000ull, count) ||
      !parse_unsigned(argv[2], 0xFFFFFFFFull, seed)) {
    std::fprintf(stderr, "usage: privacy_corpus_gen N SEED  (N up to 100000000, SEED 0..2^32-1)\n");
    return 2;
  }
  std::ios::sync_with_stdio(false);
  mmserve::privacy_corpus::CorpusGenerator corpus(static_cast<unsigned>(seed));
  for (unsigned long long n = 0; n < count; ++n) {
    const mmserve::privacy_corpus::Record r = corpus.next();
    nlohmann::json types = nlohmann::json::array();
    for (const auto& e : r.expected) types.push_back(mmserve::privacy::finding_type_name(e.type));
    const nlohmann::json line = {{"text", r.text}, {"planted", r.planted}, {"types", types}};
    std::cout << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict) << '\n';
  }
  std::cout.flush();
  return std::cout ? 0 : 1;
}
