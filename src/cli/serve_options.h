// `mmserve serve`'s options, parsed and checked from its command line (serve_options.cpp); the
// server's run loop (signals, drain) is serve_command.cpp.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "executors/cloud/cloud_options.h"
#include "http/http_server.h"
#include "runtime/runtime.h"
#include "stages/auth/api_key_stage.h"
#include "stages/capture/capture_stage.h"
#include "stages/privacy/privacy_stage.h"

namespace mmserve::cli {

struct ServeOptions {
  bool help = false;
  bool verbose = false;
  runtime::RuntimeOptions runtime;
  http::HttpOptions http;
  stages::ApiKeys keys;            // --api-key, --admin-key (or their environment variables)
  stages::PrivacyOptions privacy;  // --privacy-policy, --audit-log
  // --cloud-*: the OpenAI-compatible endpoint calls without personal data may go to; used only
  // when privacy.cloud (--cloud-url given).
  executors::CloudOptions cloud;
  std::chrono::seconds drain_timeout{30};
  std::string db_path;            // --db (or $MMSERVE_DB): keys, quotas, the audit log
  int audit_retention_days = 90;  // --audit-retention-days
  // Capture for the dataset (stages/capture): --capture-db (or $MMSERVE_CAPTURE_DB), --capture
  // (off without a capture database), --capture-max-mb, --capture-retention-days.
  std::string capture_db;
  stages::CaptureMode capture = stages::CaptureMode::kOff;
  int capture_max_mb = 1024;
  int capture_retention_days = 30;
  bool list_routes = false;  // --list-routes: print the routes and exit
};

// Throws Error (kInvalidInput naming the option, kNotFound/kModelLoad naming a model file that
// cannot work); with --help, returns with only `help` set.
ServeOptions parse_serve_options(const std::vector<std::string>& args);
const char* serve_usage();

}  // namespace mmserve::cli
