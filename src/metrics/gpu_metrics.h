// Per-GPU utilisation, memory, power and temperature from NVIDIA's NVML, loaded with dlopen at
// run time: the binary neither links against nor needs the NVIDIA driver. Where NVML cannot be
// loaded or sees no GPU, no mmserve_gpu_* family is registered (the series are absent, not 0)
// and status() says why, for the startup log.
//
// Ownership: owns the dlopen handle and the NVML session (shut down in the destructor).
// Threading: start() once, from one thread; refresh() from any thread, concurrently.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "metrics/registry.h"

namespace mmserve::metrics {

// The NVML library name the NVIDIA driver installs.
inline constexpr const char* kNvmlLibrary = "libnvidia-ml.so.1";

class GpuMetrics {
 public:
  // `library`: what to dlopen (a path or a soname).
  explicit GpuMetrics(std::string library = kNvmlLibrary);
  ~GpuMetrics();
  GpuMetrics(const GpuMetrics&) = delete;
  GpuMetrics& operator=(const GpuMetrics&) = delete;

  // Loads NVML and enumerates the GPUs. On success registers the mmserve_gpu_* families in
  // `registry` (which must outlive this object) and returns true.
  bool start(Registry& registry);
  bool active() const { return api_ != nullptr; }
  // One line: "GPU metrics on: ..." or "GPU metrics off: <why>".
  const std::string& status() const { return status_; }
  // Queries every GPU and updates its series; a query that fails drops that series.
  void refresh();

 private:
  struct Api;  // the NVML entry points
  struct Families;

  const std::string library_;
  std::string status_;
  std::unique_ptr<Api> api_;  // set by a successful start()
  std::unique_ptr<Families> families_;
  std::vector<void*> devices_;  // nvmlDevice_t handles, by index
  std::mutex mutex_;            // serialises refresh()
};

}  // namespace mmserve::metrics
