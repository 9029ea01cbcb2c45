#include "engine/hardware.h"

#include <ggml-backend.h>
#include <sched.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>

#include "engine/backend.h"

namespace mmserve::engine {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return {};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

uint64_t parse_bytes(const std::string& text) {
  try {
    size_t used = 0;
    const auto v = std::stoull(text, &used);
    return used > 0 ? v : 0;
  } catch (const std::exception&) {
    return 0;
  }
}

// The cgroup this process is in, for v2 ("0::/path") and for v1's memory controller.
std::string cgroup_path(const std::string& proc_cgroup, bool v2) {
  std::istringstream in(proc_cgroup);
  std::string line;
  while (std::getline(in, line)) {
    const auto a = line.find(':');
    const auto b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    const bool match = v2 ? line.substr(0, a) == "0" && controllers.empty()
                          : ("," + controllers + ",").find(",memory,") != std::string::npos;
    if (match) return line.substr(b + 1);
  }
  return {};
}

const char* type_name(enum ggml_backend_dev_type type) {
  switch (type) {
    case GGML_BACKEND_DEVICE_TYPE_CPU: return "cpu";
    case GGML_BACKEND_DEVICE_TYPE_GPU: return "gpu";
    case GGML_BACKEND_DEVICE_TYPE_IGPU: return "igpu";
    default: return "accel";
  }
}

}  // namespace

uint64_t HardwareInfo::usable_ram() const {
  uint64_t usable = ram_available;
  if (cgroup_limit > 0) {
    usable = std::min(usable, cgroup_limit > cgroup_usage ? cgroup_limit - cgroup_usage : 0);
  }
  return usable;
}

uint64_t parse_cgroup_limit(const std::string& text, uint64_t ram_total) {
  if (text.starts_with("max")) return 0;
  const uint64_t v = parse_bytes(text);
  // v1 says "unlimited" with a page-rounded LONG_MAX; a limit above RAM limits nothing.
  if (v == 0 || (ram_total > 0 && v >= ram_total)) return 0;
  return v;
}

void parse_meminfo(const std::string& text, uint64_t& total, uint64_t& available) {
  std::istringstream in(text);
  std::string key;
  uint64_t kib = 0;
  std::string unit;
  total = available = 0;
  while (in >> key >> kib) {
    std::getline(in, unit);
    if (key == "MemTotal:") total = kib * 1024;
    if (key == "MemAvailable:") available = kib * 1024;
  }
}

HardwareInfo detect_hardware() {
  HardwareInfo hw;
  parse_meminfo(read_file("/proc/meminfo"), hw.ram_total, hw.ram_available);

  const std::string proc_cgroup = read_file("/proc/self/cgroup");
  // v2: the unified hierarchy; the limit may sit on the group or be the root's "max".
  if (const auto v2 = cgroup_path(proc_cgroup, true); !v2.empty() || proc_cgroup.empty()) {
    const std::string dir = "/sys/fs/cgroup" + (v2 == "/" ? std::string() : v2);
    hw.cgroup_limit = parse_cgroup_limit(read_file(dir + "/memory.max"), hw.ram_total);
    if (hw.cgroup_limit > 0) hw.cgroup_usage = parse_bytes(read_file(dir + "/memory.current"));
  }
  if (hw.cgroup_limit == 0) {
    // v1 (inside a container the group is mounted at the controller's root).
    for (const std::string& dir : {"/sys/fs/cgroup/memory" + cgroup_path(proc_cgroup, false),
                                   std::string("/sys/fs/cgroup/memory")}) {
      hw.cgroup_limit = parse_cgroup_limit(read_file(dir + "/memory.limit_in_bytes"), hw.ram_total);
      if (hw.cgroup_limit > 0) {
        hw.cgroup_usage = parse_bytes(read_file(dir + "/memory.usage_in_bytes"));
        break;
      }
    }
  }

  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) hw.cpu_cores = CPU_COUNT(&set);
  if (hw.cpu_cores <= 0) hw.cpu_cores = static_cast<int>(std::thread::hardware_concurrency());

  ensure_backend_initialized();
  for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
    ggml_backend_dev_t dev = ggml_backend_dev_get(i);
    const auto type = ggml_backend_dev_type(dev);
    if (type != GGML_BACKEND_DEVICE_TYPE_GPU && type != GGML_BACKEND_DEVICE_TYPE_IGPU) continue;
    DeviceInfo d;
    d.name = ggml_backend_dev_name(dev);
    d.description = ggml_backend_dev_description(dev);
    d.type = type_name(type);
    size_t free = 0, total = 0;
    ggml_backend_dev_memory(dev, &free, &total);
    d.free_bytes = free;
    d.total_bytes = total;
    hw.gpus.push_back(std::move(d));
  }
  return hw;
}

}  // namespace mmserve::engine
