// Fuzzes `mmserve pull`'s REF parsing (hub/model_ref.h): hub::parse_model_ref on arbitrary
// strings (input: REF, then optionally "\n" ENDPOINT and "\n" REVISION), and quant_of,
// split_part and is_projector on the same bytes as a repository file path.
//
// Invariants: a refusal is Error(kInvalidInput) naming "REF"; an accepted REF keeps its text;
// a Hub REF has repo "OWNER/REPO" (exactly one '/', both names non-empty, never "." or "..",
// only letters, digits, '-', '_', '.'), a valid revision, a file path made of such names (so
// no "..", no empty or absolute segment, no backslash: its basename is a safe local file name)
// or a quantization tag, never both; a whisper REF is whisper.cpp's repository and a file
// "ggml-NAME.bin" without '/'; a URL REF is the REF, http(s), with a host and a path. split_part
// gives 1 <= index <= count <= 99999 for a "-NNNNN-of-NNNNN.gguf" basename only; quant_of has
// no '/'; is_projector is "the basename starts with mmproj". Plus ASan and UBSan.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_support.h"
#include "hub/model_ref.h"

using namespace mmserve;

namespace {

bool name_char(unsigned char c) {
  return std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.';
}

bool safe_name(const std::string& s) {
  if (s.empty() || s == "." || s == "..") return false;
  for (const unsigned char c : s) {
    if (!name_char(c)) return false;
  }
  return true;
}

bool safe_path(const std::string& s) {
  size_t start = 0;
  for (;;) {
    const size_t slash = s.find('/', start);
    if (!safe_name(s.substr(start, slash == std::string::npos ? slash : slash - start))) {
      return false;
    }
    if (slash == std::string::npos) return true;
    start = slash + 1;
  }
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string basename_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

void check_ref(const hub::ModelRef& r, const std::string& ref, const std::string& revision) {
  FUZZ_CHECK(r.text == ref);
  switch (r.kind) {
    case hub::ModelRef::Kind::kHub: {
      const size_t slash = r.repo.find('/');
      FUZZ_CHECK(slash != std::string::npos && r.repo.find('/', slash + 1) == std::string::npos);
      FUZZ_CHECK(safe_name(r.repo.substr(0, slash)) && safe_name(r.repo.substr(slash + 1)));
      FUZZ_CHECK(safe_name(r.revision));
      FUZZ_CHECK(r.file.empty() || r.quant.empty());
      if (!r.file.empty()) FUZZ_CHECK(safe_path(r.file) && safe_name(basename_of(r.file)));
      if (!r.quant.empty()) FUZZ_CHECK(safe_name(r.quant));
      FUZZ_CHECK(r.url.empty());
      break;
    }
    case hub::ModelRef::Kind::kWhisper:
      FUZZ_CHECK(r.repo == hub::kWhisperRepo && r.revision == revision);
      FUZZ_CHECK(r.file.starts_with("ggml-") && r.file.ends_with(".bin") && r.file.size() > 9);
      FUZZ_CHECK(safe_name(r.file));
      FUZZ_CHECK(lower(ref.substr(0, 8)) == "whisper:" &&
                 r.file == "ggml-" + ref.substr(8) + ".bin");
      break;
    case hub::ModelRef::Kind::kUrl: {
      FUZZ_CHECK(r.url == ref);
      const std::string l = lower(ref);
      FUZZ_CHECK(l.starts_with("http://") || l.starts_with("https://"));
      const size_t host = ref.find("://") + 3;
      const size_t path = ref.find('/', host);
      FUZZ_CHECK(path != std::string::npos && path > host);
      break;
    }
  }
  for (const unsigned char c : ref) FUZZ_CHECK(c > ' ' && c != 0x7f);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nl = input.find('\n');
  const std::string ref = input.substr(0, nl);
  std::string endpoint = "https://mirror.example";
  std::string revision = "main";
  if (nl != std::string::npos) {
    const size_t nl2 = input.find('\n', nl + 1);
    endpoint = input.substr(nl + 1, nl2 == std::string::npos ? nl2 : nl2 - nl - 1);
    if (nl2 != std::string::npos) revision = input.substr(nl2 + 1);
  }
  try {
    check_ref(hub::parse_model_ref(ref, endpoint, revision), ref, revision);
  } catch (const Error& e) {
    fuzz::expect_code(e, {ErrorCode::kInvalidInput});
    fuzz::expect_field(e, "REF");
  }

  // The repository-path helpers on the REF as a path.
  int index = -7, count = -7;
  const bool split = hub::split_part(ref, &index, &count);
  const std::string base = basename_of(ref);
  if (split) {
    FUZZ_CHECK(index >= 1 && index <= count && count <= 99999);
    FUZZ_CHECK(lower(base).ends_with(".gguf") && base.size() >= 20);
    FUZZ_CHECK(base[base.size() - 20] == '-');
    FUZZ_CHECK(base.compare(base.size() - 14, 4, "-of-") == 0);
  }
  FUZZ_CHECK(hub::quant_of(ref).find('/') == std::string::npos);
  FUZZ_CHECK(hub::is_projector(ref) == lower(base).starts_with("mmproj"));
  return 0;
}
