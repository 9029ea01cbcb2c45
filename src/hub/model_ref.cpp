// Parsing of `mmserve pull` REFs and the choice of a repository's files (see model_ref.h).
#include "hub/model_ref.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include "core/error.h"

namespace mmserve::hub {
namespace {

std::string lower(std::string s) {
  std::ranges::transform(s, s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool starts_with_ci(const std::string& s, const std::string& prefix) {
  return s.size() >= prefix.size() && lower(s.substr(0, prefix.size())) == lower(prefix);
}

bool ends_with_ci(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && lower(s.substr(s.size() - suffix.size())) == lower(suffix);
}

[[noreturn]] void bad_ref(const std::string& ref, const std::string& why) {
  throw Error(ErrorCode::kInvalidInput, "bad model REF '" + ref + "': " + why, "REF");
}

// Hub names: letters, digits, '-', '_', '.'; never "." or ".." (they would be path steps).
bool valid_name(const std::string& s) {
  if (s.empty() || s == "." || s == ".." || s.size() > 96) return false;
  return std::ranges::all_of(
      s, [](unsigned char c) { return std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.'; });
}

// A file path inside a repository: '/'-separated valid names.
bool valid_path(const std::string& s) {
  if (s.empty()) return false;
  size_t start = 0;
  while (true) {
    const size_t slash = s.find('/', start);
    const std::string part = s.substr(start, slash == std::string::npos ? slash : slash - start);
    if (!valid_name(part)) return false;
    if (slash == std::string::npos) return true;
    start = slash + 1;
  }
}

std::string basename_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// "OWNER/REPO[/PATH][:SELECTOR]" (after any "hf:" prefix).
ModelRef parse_hub(const std::string& ref, std::string body, const std::string& revision) {
  ModelRef r;
  r.kind = ModelRef::Kind::kHub;
  r.text = ref;
  r.revision = revision;
  std::string selector;
  if (const size_t colon = body.find(':'); colon != std::string::npos) {
    selector = body.substr(colon + 1);
    body = body.substr(0, colon);
    if (selector.empty()) bad_ref(ref, "nothing after ':' (want a quantization or a file name)");
  }
  const size_t slash = body.find('/');
  if (slash == std::string::npos) bad_ref(ref, "want OWNER/REPO");
  const size_t slash2 = body.find('/', slash + 1);
  const std::string owner = body.substr(0, slash);
  const std::string repo =
      body.substr(slash + 1, slash2 == std::string::npos ? slash2 : slash2 - slash - 1);
  if (!valid_name(owner) || !valid_name(repo)) {
    bad_ref(ref, "OWNER and REPO are letters, digits, '-', '_' and '.'");
  }
  r.repo = owner + "/" + repo;
  if (slash2 != std::string::npos) {
    r.file = body.substr(slash2 + 1);
    if (!valid_path(r.file)) bad_ref(ref, "bad file path '" + r.file + "'");
    if (!selector.empty()) bad_ref(ref, "both a file path and ':" + selector + "'");
  } else if (!selector.empty()) {
    if (ends_with_ci(selector, ".gguf") || ends_with_ci(selector, ".bin")) {
      if (!valid_path(selector)) bad_ref(ref, "bad file name '" + selector + "'");
      r.file = selector;
    } else {
      if (!valid_name(selector)) bad_ref(ref, "bad quantization '" + selector + "'");
      r.quant = selector;
    }
  }
  return r;
}

// ENDPOINT/OWNER/REPO/resolve/REV/PATH -> the Hub form; false when `url` is not one.
bool parse_resolve_url(const std::string& ref, const std::string& url, const std::string& base,
                       ModelRef* out) {
  std::string b = base;
  while (!b.empty() && b.back() == '/') b.pop_back();
  if (b.empty() || !starts_with_ci(url, b + "/")) return false;
  std::string rest = url.substr(b.size() + 1);
  if (const size_t q = rest.find_first_of("?#"); q != std::string::npos) rest.resize(q);
  // OWNER / REPO / "resolve" / REV / PATH
  std::vector<std::string> parts;
  size_t start = 0;
  for (int i = 0; i < 4; ++i) {
    const size_t slash = rest.find('/', start);
    if (slash == std::string::npos) return false;
    parts.push_back(rest.substr(start, slash - start));
    start = slash + 1;
  }
  if (parts[2] != "resolve") return false;
  *out = parse_hub(ref, parts[0] + "/" + parts[1] + "/" + rest.substr(start), parts[3]);
  if (!valid_name(parts[3])) bad_ref(ref, "bad revision '" + parts[3] + "'");
  return true;
}

bool is_gguf(const std::string& path) {
  return ends_with_ci(path, ".gguf");
}

std::string stem_of(const std::string& path) {
  std::string name = basename_of(path);
  if (is_gguf(name)) name.resize(name.size() - 5);
  int index = 0, count = 0;
  if (split_part(path, &index, &count)) name.resize(name.size() - 15);  // "-00001-of-00003"
  return name;
}

}  // namespace

ModelRef parse_model_ref(const std::string& ref, const std::string& endpoint,
                         const std::string& revision) {
  if (ref.empty()) bad_ref(ref, "empty");
  if (!valid_name(revision)) bad_ref(ref, "bad revision '" + revision + "'");
  if (std::ranges::any_of(ref, [](unsigned char c) { return c <= ' ' || c == 0x7f; })) {
    bad_ref(ref, "spaces or control characters");
  }
  if (starts_with_ci(ref, "whisper:")) {
    const std::string name = ref.substr(8);
    if (!valid_name(name)) bad_ref(ref, "want whisper:NAME, e.g. whisper:base.en");
    ModelRef r;
    r.kind = ModelRef::Kind::kWhisper;
    r.text = ref;
    r.repo = kWhisperRepo;
    r.revision = revision;
    r.file = "ggml-" + name + ".bin";
    return r;
  }
  if (starts_with_ci(ref, "http://") || starts_with_ci(ref, "https://")) {
    ModelRef r;
    if (parse_resolve_url(ref, ref, endpoint, &r) ||
        parse_resolve_url(ref, ref, "https://huggingface.co", &r)) {
      return r;
    }
    const size_t host_start = ref.find("://") + 3;
    const size_t path_start = ref.find('/', host_start);
    if (path_start == std::string::npos || path_start == host_start) {
      bad_ref(ref, "a URL names a file: want http(s)://HOST/PATH/FILE");
    }
    r.kind = ModelRef::Kind::kUrl;
    r.text = ref;
    r.url = ref;
    return r;
  }
  std::string body = ref;
  for (const char* prefix : {"hf:", "hf.co/", "huggingface.co/"}) {
    if (starts_with_ci(body, prefix)) {
      body = body.substr(std::string(prefix).size());
      break;
    }
  }
  return parse_hub(ref, body, revision);
}

bool split_part(const std::string& path, int* index, int* count) {
  // NAME-00001-of-00003.gguf: the suffix is exactly 15 characters before ".gguf".
  const std::string name = basename_of(path);
  if (!is_gguf(name) || name.size() < 5 + 15) return false;
  const std::string s = name.substr(name.size() - 5 - 15, 15);
  auto digits = [&](size_t at) {
    return std::all_of(s.begin() + at, s.begin() + at + 5,
                       [](unsigned char c) { return std::isdigit(c) != 0; });
  };
  if (s[0] != '-' || !digits(1) || s.substr(6, 4) != "-of-" || !digits(10)) return false;
  *index = std::stoi(s.substr(1, 5));
  *count = std::stoi(s.substr(10, 5));
  return *index >= 1 && *count >= 1 && *index <= *count;
}

bool is_projector(const std::string& path) {
  return starts_with_ci(basename_of(path), "mmproj");
}

std::string quant_of(const std::string& path) {
  const std::string stem = stem_of(path);
  const size_t sep = stem.find_last_of("-.");
  return sep == std::string::npos ? stem : stem.substr(sep + 1);
}

Selection select_files(const ModelRef& ref, const std::vector<RepoFile>& listing) {
  Selection sel;
  std::vector<RepoFile> sorted = listing;
  std::ranges::sort(sorted, {}, &RepoFile::path);

  // The models of the repository by quantization: first part (or only file) of each.
  std::map<std::string, std::vector<RepoFile>> groups;  // stem with folder -> parts
  for (const auto& f : sorted) {
    if (!is_gguf(f.path) || is_projector(f.path)) continue;
    const size_t slash = f.path.rfind('/');
    const std::string key =
        (slash == std::string::npos ? "" : f.path.substr(0, slash + 1)) + stem_of(f.path);
    groups[key].push_back(f);
  }
  std::set<std::string> quants;
  for (const auto& [key, parts] : groups) quants.insert(quant_of(parts.front().path));
  std::string available;
  for (const auto& q : quants) available += (available.empty() ? "" : ", ") + q;

  auto take_group = [&](const RepoFile& file) {
    int index = 0, count = 0;
    if (!split_part(file.path, &index, &count)) return std::vector<RepoFile>{file};
    const size_t slash = file.path.rfind('/');
    const std::string key =
        (slash == std::string::npos ? "" : file.path.substr(0, slash + 1)) + stem_of(file.path);
    const auto& parts = groups[key];
    if (static_cast<int>(parts.size()) != count) {
      throw Error(ErrorCode::kNotFound,
                  ref.repo + ": " + file.path + " is part of " + std::to_string(count) +
                      " but the repository has " + std::to_string(parts.size()) + " of them",
                  "REF");
    }
    return parts;
  };

  if (!ref.file.empty()) {
    const auto it = std::ranges::find(sorted, ref.file, &RepoFile::path);
    const auto by_name = std::ranges::find_if(
        sorted, [&](const RepoFile& f) { return basename_of(f.path) == ref.file; });
    if (it == sorted.end() && by_name == sorted.end()) {
      std::string msg = ref.repo + " has no file '" + ref.file + "'";
      if (ref.kind == ModelRef::Kind::kWhisper) {
        std::string names;
        for (const auto& f : sorted) {
          const std::string b = basename_of(f.path);
          if (starts_with_ci(b, "ggml-") && ends_with_ci(b, ".bin")) {
            names += (names.empty() ? "" : ", ") + b.substr(5, b.size() - 9);
          }
        }
        msg = "no whisper.cpp model '" + ref.file.substr(5, ref.file.size() - 9) + "' in " +
              ref.repo + (names.empty() ? "" : "; available: " + names);
      }
      throw Error(ErrorCode::kNotFound, msg, "REF");
    }
    const RepoFile& f = it != sorted.end() ? *it : *by_name;
    sel.model = is_gguf(f.path) && !is_projector(f.path) ? take_group(f) : std::vector<RepoFile>{f};
    sel.quant = is_gguf(f.path) ? quant_of(f.path) : "";
    sel.why = "the file named";
  } else {
    if (groups.empty()) {
      throw Error(ErrorCode::kNotFound, ref.repo + " has no GGUF model file", "REF");
    }
    const std::vector<RepoFile>* chosen = nullptr;
    auto find_quant = [&](const std::string& q) -> const std::vector<RepoFile>* {
      for (const auto& [key, parts] : groups) {
        if (lower(quant_of(parts.front().path)) == lower(q)) return &parts;
      }
      return nullptr;
    };
    if (!ref.quant.empty()) {
      chosen = find_quant(ref.quant);
      if (chosen == nullptr) {
        throw Error(ErrorCode::kNotFound,
                    ref.repo + " has no " + ref.quant + " GGUF; available: " + available, "REF");
      }
      sel.why = "the quantization asked for";
    } else if ((chosen = find_quant("Q4_K_M")) != nullptr) {
      sel.why = "default Q4_K_M (available: " + available + ")";
    } else if ((chosen = find_quant("Q8_0")) != nullptr) {
      sel.why = "no Q4_K_M, so Q8_0 (available: " + available + ")";
    } else {
      chosen = &groups.begin()->second;
      sel.why = groups.size() == 1
                    ? "the only GGUF"
                    : "no Q4_K_M or Q8_0, so the first by name (available: " + available + ")";
    }
    sel.model = take_group(chosen->front());
    sel.quant = quant_of(sel.model.front().path);
  }

  if (ref.kind == ModelRef::Kind::kHub && is_gguf(sel.model.front().path) &&
      !is_projector(sel.model.front().path)) {
    const RepoFile* proj = nullptr;
    for (const auto& f : sorted) {
      if (!is_gguf(f.path) || !is_projector(f.path)) continue;
      if (proj == nullptr) proj = &f;
      if (lower(quant_of(f.path)) == "f16") {
        proj = &f;
        break;
      }
    }
    if (proj != nullptr) sel.mmproj.push_back(*proj);
  }
  return sel;
}

}  // namespace mmserve::hub
