// The Hugging Face Hub (or a mirror at $HF_ENDPOINT) as mmserve uses it: the files a REF names
// (repository listing with LFS sizes and SHA-256s), and byte ranges of a remote file. Used by
// `mmserve pull` (download.h) and by readers of remote GGUF headers. Stateless apart from the
// settings passed in; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hub/model_ref.h"

namespace mmserve::hub {

struct HubSettings {
  std::string endpoint;     // e.g. "https://huggingface.co", no trailing '/'
  std::string token;        // sent as `Authorization: Bearer` to the endpoint's host only
  long stall_seconds = 30;  // a transfer under 1 byte/s for this long fails
  // $HF_ENDPOINT (default https://huggingface.co), $HF_TOKEN (else $HUGGING_FACE_HUB_TOKEN),
  // $MMSERVE_PULL_STALL_SECONDS.
  static HubSettings from_environment();
};

struct RemoteFile {
  std::string name;    // the local file name (the path's last part); empty: a URL without one
  std::string url;     // resolve URL (the Hub redirects it to its CDN) or the plain URL
  uint64_t size = 0;   // 0: not known
  std::string sha256;  // lowercase hex; empty: not known
};

// The files REF names (a text model then its mmproj when any; one whisper model; one URL).
// At revision main (resolve_ref() for another); throws Error as parse_model_ref and list_repo do.
std::vector<RemoteFile> resolve(const std::string& ref, const HubSettings& settings);
// Bytes [offset, offset + length) of a remote file by an HTTP Range request, following redirects.
// Shorter when the file ends sooner; a server that ignores Range is read up to the bytes wanted.
std::string read_range(const RemoteFile& file, uint64_t offset, uint64_t length,
                       const HubSettings& settings);

// What resolve() does, with the choice explained (for `mmserve pull`'s messages).
struct Resolved {
  std::vector<RemoteFile> model;   // one file, or the parts of a split GGUF in order
  std::vector<RemoteFile> mmproj;  // empty or one
  std::string why;                 // how the files were chosen; empty for a URL
};
Resolved resolve_ref(const ModelRef& ref, const HubSettings& settings);

// Every file of a Hub repository at a revision (the tree API, recursive, all pages). Errors:
// kNotFound ("not found on the Hub"), kUnauthorized/kForbidden (mentioning HF_TOKEN),
// kUnavailable (network, 5xx).
std::vector<RepoFile> list_repo(const std::string& repo, const std::string& revision,
                                const HubSettings& settings);

// The Error for an HTTP failure status or a transport failure while fetching `what`.
[[noreturn]] void throw_http_error(const std::string& what, long status,
                                   const std::string& transport_error, bool hub);

}  // namespace mmserve::hub
