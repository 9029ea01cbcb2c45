// A stand-in for NVIDIA's libnvidia-ml.so.1, built as a shared library for the tests: two GPUs
// with fixed readings, so that the NVML code path (dlopen, symbols, series) is tested on
// machines without an NVIDIA GPU. GPU 1 reports no power reading, as some boards do.
#include <cstdio>

namespace {

struct FakeDevice {
  int index;
};
FakeDevice devices[2] = {{0}, {1}};

constexpr int kSuccess = 0;
constexpr int kInvalidArgument = 2;
constexpr int kNotSupported = 3;

int index_of(void* device) {
  return static_cast<FakeDevice*>(device)->index;
}

}  // namespace

extern "C" {

struct nvmlMemory_t {
  unsigned long long total, free, used;
};
struct nvmlUtilization_t {
  unsigned int gpu, memory;
};

int nvmlInit_v2() {
  return kSuccess;
}
int nvmlShutdown() {
  return kSuccess;
}
const char* nvmlErrorString(int) {
  return "fake NVML error";
}
int nvmlDeviceGetCount_v2(unsigned int* count) {
  *count = 2;
  return kSuccess;
}
int nvmlDeviceGetHandleByIndex_v2(unsigned int index, void** device) {
  if (index >= 2) return kInvalidArgument;
  *device = &devices[index];
  return kSuccess;
}
int nvmlDeviceGetName(void* device, char* name, unsigned int length) {
  std::snprintf(name, length, "Fake \"GPU\" %d", index_of(device));  // quotes: label escaping
  return kSuccess;
}
int nvmlDeviceGetUUID(void* device, char* uuid, unsigned int length) {
  std::snprintf(uuid, length, "GPU-fake-%d", index_of(device));
  return kSuccess;
}
int nvmlDeviceGetUtilizationRates(void* device, nvmlUtilization_t* util) {
  util->gpu = index_of(device) == 0 ? 37 : 100;
  util->memory = 5;
  return kSuccess;
}
int nvmlDeviceGetMemoryInfo(void* device, nvmlMemory_t* memory) {
  memory->total = 80ULL << 30;
  memory->used = static_cast<unsigned long long>(index_of(device) + 1) << 30;
  memory->free = memory->total - memory->used;
  return kSuccess;
}
int nvmlDeviceGetPowerUsage(void* device, unsigned int* milliwatts) {
  if (index_of(device) == 1) return kNotSupported;
  *milliwatts = 123500;
  return kSuccess;
}
int nvmlDeviceGetTemperature(void*, int sensor, unsigned int* celsius) {
  if (sensor != 0) return kInvalidArgument;
  *celsius = 55;
  return kSuccess;
}

}  // extern "C"
