// The Hub's listing and resolve endpoints, and range reads (see hub_client.h).
#include "hub/hub_client.h"

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "hub/http_fetch.h"

namespace mmserve::hub {
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

FetchRequest base_request(const std::string& url, const HubSettings& s) {
  FetchRequest r;
  r.url = url;
  r.token = s.token;
  r.token_origin = origin_of(s.endpoint);
  r.stall_seconds = s.stall_seconds;
  return r;
}

// The next page of a paginated listing: `Link: <URL>; rel="next"`.
std::string next_link(const FetchResponse& r) {
  const auto it = r.headers.find("link");
  if (it == r.headers.end()) return "";
  const std::string& link = it->second;
  const size_t rel = link.find("rel=\"next\"");
  if (rel == std::string::npos) return "";
  const size_t open = link.rfind('<', rel);
  const size_t close = link.find('>', open);
  if (open == std::string::npos || close == std::string::npos || close > rel) return "";
  return link.substr(open + 1, close - open - 1);
}

std::string basename_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool is_sha256(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

RemoteFile remote_of(const ModelRef& ref, const RepoFile& f, const HubSettings& s) {
  RemoteFile r;
  r.name = basename_of(f.path);
  r.url = s.endpoint + "/" + ref.repo + "/resolve/" + escape_path(ref.revision) + "/" +
          escape_path(f.path);
  r.size = f.size;
  r.sha256 = f.sha256;
  return r;
}

std::string url_file_name(const std::string& url) {
  std::string path = url.substr(url.find("://") + 3);
  if (const size_t q = path.find_first_of("?#"); q != std::string::npos) path.resize(q);
  const size_t slash = path.find('/');
  path = slash == std::string::npos ? "" : path.substr(slash);
  std::string name = basename_of(path);
  // %XX decoding of the name only; the result must stay one plain file name.
  std::string out;
  for (size_t i = 0; i < name.size(); ++i) {
    if (name[i] == '%' && i + 2 < name.size() && std::isxdigit(name[i + 1]) != 0 &&
        std::isxdigit(name[i + 2]) != 0) {
      out += static_cast<char>(std::stoi(name.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += name[i];
    }
  }
  return out;
}

}  // namespace

HubSettings HubSettings::from_environment() {
  HubSettings s;
  s.endpoint = env("HF_ENDPOINT");
  if (s.endpoint.empty()) s.endpoint = "https://huggingface.co";
  while (!s.endpoint.empty() && s.endpoint.back() == '/') s.endpoint.pop_back();
  s.token = env("HF_TOKEN");
  if (s.token.empty()) s.token = env("HUGGING_FACE_HUB_TOKEN");
  if (const std::string stall = env("MMSERVE_PULL_STALL_SECONDS"); !stall.empty()) {
    s.stall_seconds = std::max(1L, std::strtol(stall.c_str(), nullptr, 10));
  }
  return s;
}

void throw_http_error(const std::string& what, long status, const std::string& transport_error,
                      bool hub) {
  if (!transport_error.empty()) {
    throw Error(ErrorCode::kUnavailable, what + ": " + transport_error);
  }
  const std::string token_hint =
      " (a gated or private repository needs a token: set HF_TOKEN to a Hugging Face access "
      "token that may read it)";
  if (status == 401) {
    throw Error(ErrorCode::kUnauthorized,
                what + ": HTTP 401 unauthorized" + (hub ? token_hint : ""));
  }
  if (status == 403) {
    throw Error(ErrorCode::kForbidden, what + ": HTTP 403 forbidden" + (hub ? token_hint : ""));
  }
  if (status == 404) {
    throw Error(ErrorCode::kNotFound,
                what + ": not found" + (hub ? " on the Hub" : "") + " (HTTP 404)");
  }
  throw Error(ErrorCode::kUnavailable, what + ": HTTP " + std::to_string(status));
}

std::vector<RepoFile> list_repo(const std::string& repo, const std::string& revision,
                                const HubSettings& settings) {
  std::vector<RepoFile> files;
  std::string url = settings.endpoint + "/api/models/" + repo + "/tree/" + escape_path(revision) +
                    "?recursive=true";
  for (int page = 0; !url.empty() && page < 1000; ++page) {
    const FetchResponse r = fetch(base_request(url, settings));
    if (!r.transport_error.empty() || r.status != 200) {
      throw_http_error(repo + " (" + settings.endpoint + ")", r.status, r.transport_error, true);
    }
    nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
    if (!j.is_array()) {
      throw Error(ErrorCode::kUnavailable,
                  repo + ": the Hub's file listing is not a JSON array (" + url + ")");
    }
    for (const auto& e : j) {
      if (!e.is_object() || e.value("type", "") != "file" || !e.contains("path") ||
          !e["path"].is_string()) {
        continue;
      }
      RepoFile f;
      f.path = e["path"].get<std::string>();
      if (e.contains("size") && e["size"].is_number_unsigned()) f.size = e["size"].get<uint64_t>();
      if (e.contains("lfs") && e["lfs"].is_object()) {
        const auto& lfs = e["lfs"];
        if (lfs.contains("oid") && lfs["oid"].is_string() && is_sha256(lfs["oid"])) {
          f.sha256 = lfs["oid"].get<std::string>();
        }
        if (lfs.contains("size") && lfs["size"].is_number_unsigned()) {
          f.size = lfs["size"].get<uint64_t>();
        }
      }
      files.push_back(std::move(f));
    }
    url = next_link(r);
  }
  return files;
}

Resolved resolve_ref(const ModelRef& ref, const HubSettings& settings) {
  Resolved out;
  if (ref.kind == ModelRef::Kind::kUrl) {
    RemoteFile f;
    f.url = ref.url;
    f.name = url_file_name(ref.url);
    if (f.name == "." || f.name == ".." || f.name.find_first_of("/\\") != std::string::npos) {
      f.name.clear();  // no usable file name: the caller names it
    }
    // The size when the server says it (the Hub-style linked size first).
    FetchRequest head = base_request(ref.url, settings);
    head.head = true;
    const FetchResponse r = fetch(head);
    // A server may refuse HEAD (405) yet serve GET: only "not there" and "not yours" are final.
    if (!r.transport_error.empty() || r.status == 401 || r.status == 403 || r.status == 404 ||
        r.status == 410) {
      throw_http_error(ref.url, r.status, r.transport_error, false);
    }
    for (const auto* headers : {&r.first_headers, &r.headers}) {
      if (r.status >= 300) break;
      for (const char* name : {"x-linked-size", "content-length"}) {
        if (f.size == 0 && headers->count(name) != 0) {
          f.size = std::strtoull(headers->at(name).c_str(), nullptr, 10);
        }
      }
    }
    out.model.push_back(std::move(f));
    return out;
  }
  const Selection sel = select_files(ref, list_repo(ref.repo, ref.revision, settings));
  for (const auto& f : sel.model) out.model.push_back(remote_of(ref, f, settings));
  for (const auto& f : sel.mmproj) out.mmproj.push_back(remote_of(ref, f, settings));
  out.why = sel.why;
  return out;
}

std::vector<RemoteFile> resolve(const std::string& ref, const HubSettings& settings) {
  Resolved r = resolve_ref(parse_model_ref(ref, settings.endpoint), settings);
  std::vector<RemoteFile> files = std::move(r.model);
  for (auto& f : r.mmproj) files.push_back(std::move(f));
  return files;
}

std::string read_range(const RemoteFile& file, uint64_t offset, uint64_t length,
                       const HubSettings& settings) {
  if (length == 0) return "";
  FetchRequest req = base_request(file.url, settings);
  req.range_from = offset;
  req.range_to = offset + length - 1;
  std::string data;
  bool whole = false;  // a server that ignores Range: keep only the bytes asked for
  uint64_t seen = 0;
  req.sink = [&](std::string_view chunk, const FetchResponse& r) {
    if (r.status == 200) whole = true;
    if (!whole) {
      data.append(chunk.substr(0, std::min<uint64_t>(chunk.size(), length - data.size())));
      return data.size() < length;
    }
    const uint64_t begin = seen, end = seen + chunk.size();
    seen = end;
    if (end > offset && begin < offset + length) {
      const uint64_t from = std::max(begin, offset) - begin;
      const uint64_t to = std::min(end, offset + length) - begin;
      data.append(chunk.substr(from, to - from));
    }
    return data.size() < length;  // enough: stop the transfer
  };
  const FetchResponse r = fetch(req);
  if (r.status == 416) {
    throw Error(ErrorCode::kInvalidInput,
                file.name + ": range " + std::to_string(offset) + "+" + std::to_string(length) +
                    " is beyond the end of the file",
                "offset");
  }
  if ((!r.transport_error.empty() && !r.aborted) || r.status >= 300) {
    throw_http_error(file.name + " (" + file.url + ")", r.status, r.transport_error,
                     r.url.rfind(settings.endpoint, 0) == 0);
  }
  return data;
}

}  // namespace mmserve::hub
