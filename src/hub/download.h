// One remote file into a directory: resumable (HTTP Range from the bytes of NAME.partial),
// verified (size, and SHA-256 computed while downloading against the Hub's LFS oid or
// X-Linked-Etag, or the caller's), atomic (NAME.partial renamed to NAME only once verified),
// and safe when several processes pull the same file: an exclusive flock on NAME.lock, the
// later ones wait and then find the file present. Transfers that break are retried with
// resume; the partial file is kept for a later run when they keep failing. Callers may run
// downloads of different files on different threads; each call is self-contained.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include "hub/hub_client.h"

namespace mmserve::hub {

struct DownloadOptions {
  int attempts = 4;         // tries in a row that bring no new byte before giving up
  std::FILE* log = stderr;  // messages and progress
};

struct DownloadResult {
  std::filesystem::path path;
  bool downloaded = false;  // false: it was already present (and verified)
  uint64_t bytes = 0;
  std::string sha256;  // computed; empty when the file was present and no hash is known
};

DownloadResult download(const RemoteFile& file, const std::filesystem::path& dir,
                        const HubSettings& settings, const DownloadOptions& options = {});

// Lowercase hex SHA-256 of a whole file. Throws Error on read errors.
std::string sha256_file(const std::filesystem::path& path);

}  // namespace mmserve::hub
