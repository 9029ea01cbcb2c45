// What this machine has for models: system memory (total, available, and a container's cgroup
// memory limit when it is lower), CPU cores, and every ggml backend device with its free and
// total memory (GPUs through ggml's device API). Read once per call; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mmserve::engine {

struct DeviceInfo {
  std::string name;         // ggml's name, e.g. "CUDA0", "CPU"
  std::string description;  // e.g. "NVIDIA H100 80GB HBM3"
  std::string type;         // "cpu", "gpu", "igpu", "accel"
  uint64_t free_bytes = 0;
  uint64_t total_bytes = 0;
};

struct HardwareInfo {
  uint64_t ram_total = 0;        // MemTotal
  uint64_t ram_available = 0;    // MemAvailable
  uint64_t cgroup_limit = 0;     // the container's memory limit; 0 = none (or not lower)
  uint64_t cgroup_usage = 0;     // what the container already uses, when limited
  int cpu_cores = 0;             // cores this process may run on
  std::vector<DeviceInfo> gpus;  // discrete and integrated GPUs, in ggml's order

  // What a new process may still take: the lower of MemAvailable and the cgroup's headroom.
  uint64_t usable_ram() const;
};

// Reads /proc/meminfo, the cgroup (v2 memory.max, else v1 memory.limit_in_bytes), the CPU
// affinity and ggml's devices (initialising the backends once).
HardwareInfo detect_hardware();

// The cgroup parts, from file contents (testable): a memory.max / limit_in_bytes value
// ("max", or bytes; v1 reports a huge number when unlimited) -> bytes, 0 when unlimited.
uint64_t parse_cgroup_limit(const std::string& text, uint64_t ram_total);
// MemTotal / MemAvailable (in bytes) from /proc/meminfo's text.
void parse_meminfo(const std::string& text, uint64_t& total, uint64_t& available);

}  // namespace mmserve::engine
