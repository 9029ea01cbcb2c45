#include "metrics/gpu_metrics.h"

#include <dlfcn.h>

#include <string>

// The two NVML structs used here, as declared in NVIDIA's nvml.h (stable C ABI). At global scope,
// as in nvml.h: a call through a pointer whose parameter types differ from the definition's is
// undefined (clang's -fsanitize=function reports it against the test's fake NVML).
extern "C" {
struct nvmlMemory_t {
  unsigned long long total, free, used;
};
struct nvmlUtilization_t {
  unsigned int gpu, memory;
};
}

namespace mmserve::metrics {
namespace {

using nvmlReturn_t = int;
using nvmlDevice_t = void*;
constexpr nvmlReturn_t kNvmlSuccess = 0;
constexpr int kNvmlTemperatureGpu = 0;

}  // namespace

struct GpuMetrics::Api {
  void* handle = nullptr;
  nvmlReturn_t (*init)() = nullptr;
  nvmlReturn_t (*shutdown)() = nullptr;
  const char* (*error_string)(nvmlReturn_t) = nullptr;
  nvmlReturn_t (*device_count)(unsigned int*) = nullptr;
  nvmlReturn_t (*device_by_index)(unsigned int, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*device_name)(nvmlDevice_t, char*, unsigned int) = nullptr;
  nvmlReturn_t (*device_uuid)(nvmlDevice_t, char*, unsigned int) = nullptr;
  nvmlReturn_t (*utilization)(nvmlDevice_t, nvmlUtilization_t*) = nullptr;
  nvmlReturn_t (*memory)(nvmlDevice_t, nvmlMemory_t*) = nullptr;
  nvmlReturn_t (*power_mw)(nvmlDevice_t, unsigned int*) = nullptr;
  nvmlReturn_t (*temperature)(nvmlDevice_t, int, unsigned int*) = nullptr;

  std::string error(nvmlReturn_t rc) const {
    const char* s = error_string != nullptr ? error_string(rc) : nullptr;
    return s != nullptr ? std::string(s) : "NVML error " + std::to_string(rc);
  }
};

struct GpuMetrics::Families {
  Family<Gauge>& info;
  Family<Gauge>& utilization;
  Family<Gauge>& memory_used;
  Family<Gauge>& memory_total;
  Family<Gauge>& power;
  Family<Gauge>& temperature;
};

GpuMetrics::GpuMetrics(std::string library) : library_(std::move(library)) {}

GpuMetrics::~GpuMetrics() {
  if (api_) {
    api_->shutdown();
    ::dlclose(api_->handle);
  }
}

bool GpuMetrics::start(Registry& registry) {
  auto api = std::make_unique<Api>();
  api->handle = ::dlopen(library_.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (api->handle == nullptr) {
    const char* why = ::dlerror();
    status_ = "GPU metrics off: cannot load " + library_ + " (" +
              (why != nullptr ? why : "unknown error") + "); no NVIDIA driver on this machine?";
    return false;
  }
  std::string missing;
  auto bind = [&](auto& fn, const char* symbol) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(api->handle, symbol));
    if (fn == nullptr && missing.empty()) missing = symbol;
  };
  bind(api->init, "nvmlInit_v2");
  bind(api->shutdown, "nvmlShutdown");
  bind(api->error_string, "nvmlErrorString");
  bind(api->device_count, "nvmlDeviceGetCount_v2");
  bind(api->device_by_index, "nvmlDeviceGetHandleByIndex_v2");
  bind(api->device_name, "nvmlDeviceGetName");
  bind(api->device_uuid, "nvmlDeviceGetUUID");
  bind(api->utilization, "nvmlDeviceGetUtilizationRates");
  bind(api->memory, "nvmlDeviceGetMemoryInfo");
  bind(api->power_mw, "nvmlDeviceGetPowerUsage");
  bind(api->temperature, "nvmlDeviceGetTemperature");
  auto fail = [&](std::string why) {
    status_ = "GPU metrics off: " + std::move(why);
    ::dlclose(api->handle);
    return false;
  };
  if (!missing.empty()) return fail(library_ + " lacks " + missing + " (driver too old?)");
  if (const auto rc = api->init(); rc != kNvmlSuccess) {
    return fail("NVML initialisation failed: " + api->error(rc));
  }
  unsigned int count = 0;
  if (const auto rc = api->device_count(&count); rc != kNvmlSuccess || count == 0) {
    api->shutdown();
    return fail(rc != kNvmlSuccess ? "NVML cannot count GPUs: " + api->error(rc)
                                   : "NVML found no GPU");
  }

  families_ = std::make_unique<Families>(Families{
      .info = registry.gauge("mmserve_gpu_info", "GPUs seen through NVML; always 1.",
                             {"gpu", "name", "uuid"}),
      .utilization = registry.gauge("mmserve_gpu_utilization_ratio",
                                    "Fraction of the last sample period in which a kernel ran "
                                    "on the GPU (NVML utilization.gpu / 100).",
                                    {"gpu"}),
      .memory_used = registry.gauge("mmserve_gpu_memory_used_bytes",
                                    "GPU memory in use, all processes.", {"gpu"}),
      .memory_total =
          registry.gauge("mmserve_gpu_memory_total_bytes", "GPU memory installed.", {"gpu"}),
      .power = registry.gauge("mmserve_gpu_power_watts", "GPU power draw.", {"gpu"}),
      .temperature =
          registry.gauge("mmserve_gpu_temperature_celsius", "GPU core temperature.", {"gpu"}),
  });
  std::string names;
  for (unsigned int i = 0; i < count; ++i) {
    nvmlDevice_t device = nullptr;
    if (api->device_by_index(i, &device) != kNvmlSuccess) device = nullptr;
    devices_.push_back(device);
    if (device == nullptr) continue;
    char name[96] = {};
    char uuid[96] = {};
    if (api->device_name(device, name, sizeof(name)) != kNvmlSuccess) name[0] = '\0';
    if (api->device_uuid(device, uuid, sizeof(uuid)) != kNvmlSuccess) uuid[0] = '\0';
    families_->info.labels({std::to_string(i), name, uuid}).set(1);
    if (names.find(name) == std::string::npos)
      names += (names.empty() ? "" : ", ") + std::string(name);
  }
  status_ = "GPU metrics on: " + std::to_string(count) + " GPU" + (count == 1 ? "" : "s") +
            " through NVML (" + names + ")";
  api_ = std::move(api);
  refresh();
  return true;
}

void GpuMetrics::refresh() {
  if (!api_) return;
  std::lock_guard lock(mutex_);
  auto& f = *families_;
  for (size_t i = 0; i < devices_.size(); ++i) {
    nvmlDevice_t device = devices_[i];
    if (device == nullptr) continue;
    const std::vector<std::string> gpu = {std::to_string(i)};
    auto update = [&](Family<Gauge>& family, bool ok, double value) {
      if (ok) {
        family.labels(gpu).set(value);
      } else {
        family.remove(gpu);  // no stale value when the GPU stops answering
      }
    };
    // Each query runs before its value is read (argument evaluation order is unspecified).
    nvmlUtilization_t util{};
    const bool util_ok = api_->utilization(device, &util) == kNvmlSuccess;
    update(f.utilization, util_ok, util.gpu / 100.0);
    nvmlMemory_t mem{};
    const bool mem_ok = api_->memory(device, &mem) == kNvmlSuccess;
    update(f.memory_used, mem_ok, static_cast<double>(mem.used));
    update(f.memory_total, mem_ok, static_cast<double>(mem.total));
    unsigned int milliwatts = 0;
    const bool power_ok = api_->power_mw(device, &milliwatts) == kNvmlSuccess;
    update(f.power, power_ok, milliwatts / 1000.0);
    unsigned int celsius = 0;
    const bool temperature_ok =
        api_->temperature(device, kNvmlTemperatureGpu, &celsius) == kNvmlSuccess;
    update(f.temperature, temperature_ok, celsius);
  }
}

}  // namespace mmserve::metrics
