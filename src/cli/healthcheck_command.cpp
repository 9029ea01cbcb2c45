// `mmserve healthcheck`: asks a running server whether it is ready (GET /ready) and exits 0 when
// it answers 200, 1 otherwise. For container healthchecks (Docker's HEALTHCHECK, podman's
// healthcheck run) in an image that has no curl, and for scripts.
#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "cli/arg_parser.h"
#include "cli/commands.h"
#include "core/error.h"

namespace mmserve::cli {
namespace {

constexpr const char* kUsage = R"(usage: mmserve healthcheck [--url URL] [--timeout S] [--insecure]
  --url URL     what to ask (default $MMSERVE_HEALTHCHECK_URL, else http://127.0.0.1:8080/ready);
                /health asks only whether the process is up
  --timeout S   seconds to wait for the answer (default 5)
  --insecure    https: do not check the server's certificate (a self-signed one on loopback)
Exit 0 when the server answers 200; 1 when it answers anything else or nothing.
)";

}  // namespace

int run_healthcheck(const std::vector<std::string>& args) {
  ArgParser p({"--url", "--timeout"}, {"-h|--help", "--insecure"});
  p.parse(args);
  if (p.flag("--help")) {
    std::cout << kUsage;
    return 0;
  }
  const char* env_url = std::getenv("MMSERVE_HEALTHCHECK_URL");
  const std::string url =
      p.get("--url", env_url != nullptr ? env_url : "http://127.0.0.1:8080/ready");
  const int timeout = p.get_int("--timeout", 5);
  if (timeout < 1) {
    throw Error(ErrorCode::kInvalidInput, "option --timeout must be at least 1", "--timeout");
  }
  // scheme://host[:port]/path
  const auto scheme_end = url.find("://");
  const auto path_start =
      scheme_end == std::string::npos ? std::string::npos : url.find('/', scheme_end + 3);
  if (scheme_end == std::string::npos ||
      (!url.starts_with("http://") && !url.starts_with("https://"))) {
    throw Error(ErrorCode::kInvalidInput, "--url must be an http(s) URL, not '" + url + "'",
                "--url");
  }
  const std::string origin = url.substr(0, path_start);
  const std::string path = path_start == std::string::npos ? "/" : url.substr(path_start);
  httplib::Client client(origin);
  client.set_connection_timeout(std::chrono::seconds(timeout));
  client.set_read_timeout(std::chrono::seconds(timeout));
  if (p.flag("--insecure")) {
    client.enable_server_certificate_verification(false);
  }
  const auto result = client.Get(path);
  if (!result) {
    std::fprintf(stderr, "mmserve: healthcheck: no answer from %s (%s)\n", url.c_str(),
                 httplib::to_string(result.error()).c_str());
    return 1;
  }
  if (result->status != 200) {
    std::fprintf(stderr, "mmserve: healthcheck: %s answered %d\n", url.c_str(), result->status);
    return 1;
  }
  return 0;
}

}  // namespace mmserve::cli
