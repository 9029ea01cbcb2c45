#include "synth/gguf_stream_writer.h"

#include <ggml.h>
#include <gguf.h>

#include <cstdio>
#include <filesystem>

#include "core/error.h"

namespace mmserve::synth {

GgufStreamWriter::GgufStreamWriter(size_t max_tensors) {
  ggml_init_params params{(max_tensors + 8) * ggml_tensor_overhead(), nullptr, true};
  meta_ = ggml_init(params);
  gguf_ = gguf_init_empty();
  if (meta_ == nullptr || gguf_ == nullptr) throw Error(ErrorCode::kInternal, "out of memory");
}

GgufStreamWriter::~GgufStreamWriter() {
  if (gguf_ != nullptr) gguf_free(gguf_);
  if (meta_ != nullptr) ggml_free(meta_);
}

void GgufStreamWriter::add(const std::string& name, int type, std::vector<int64_t> ne, Fill fill) {
  ggml_tensor* t =
      ggml_new_tensor(meta_, static_cast<ggml_type>(type), static_cast<int>(ne.size()), ne.data());
  ggml_set_name(t, name.c_str());
  gguf_add_tensor(gguf_, t);
  tensors_.emplace_back(t, std::move(fill));
}

void GgufStreamWriter::write(const std::string& path) {
  const std::string tmp = path + ".partial";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) throw Error(ErrorCode::kInternal, "cannot write " + path, "out");
  bool ok = gguf_write_to_file_ptr(gguf_, f, /*only_meta=*/true);
  // The meta section is already padded to the alignment; each tensor's data is padded too, so
  // the offsets gguf_add_tensor computed hold.
  const size_t align = gguf_get_alignment(gguf_);
  std::vector<uint8_t> buf;
  for (auto& [tensor, fill] : tensors_) {
    if (!ok) break;
    const size_t bytes = ggml_nbytes(tensor);
    const size_t padded = (bytes + align - 1) / align * align;
    buf.assign(padded, 0);
    fill(*tensor, buf.data());
    ok = std::fwrite(buf.data(), 1, padded, f) == padded;
  }
  ok = std::fclose(f) == 0 && ok;
  if (!ok) {
    std::filesystem::remove(tmp);
    throw Error(ErrorCode::kInternal, "cannot write " + path + " (disk full?)", "out");
  }
  std::filesystem::rename(tmp, path);
}

namespace {
// FNV-1a: a tensor's stream depends on its name, identically everywhere.
uint64_t name_hash(const char* name) {
  uint64_t h = 1469598103934665603ULL;
  for (const char* c = name; *c != 0; ++c) h = (h ^ static_cast<uint8_t>(*c)) * 1099511628211ULL;
  return h;
}
}  // namespace

GgufStreamWriter::Fill random_fill(uint64_t seed, float scale) {
  return [seed, scale](const ggml_tensor& t, uint8_t* out) {
    Rng rng(seed ^ name_hash(t.name));
    const int64_t n = ggml_nelements(&t);
    if (t.type == GGML_TYPE_F16) {
      auto* h = reinterpret_cast<ggml_fp16_t*>(out);
      for (int64_t i = 0; i < n; ++i) h[i] = ggml_fp32_to_fp16(scale * rng.uniform());
    } else {
      auto* x = reinterpret_cast<float*>(out);
      for (int64_t i = 0; i < n; ++i) x[i] = scale * rng.uniform();
    }
  };
}

GgufStreamWriter::Fill constant_fill(float value) {
  return [value](const ggml_tensor& t, uint8_t* out) {
    const int64_t n = ggml_nelements(&t);
    if (t.type == GGML_TYPE_F16) {
      auto* h = reinterpret_cast<ggml_fp16_t*>(out);
      for (int64_t i = 0; i < n; ++i) h[i] = ggml_fp32_to_fp16(value);
    } else {
      auto* x = reinterpret_cast<float*>(out);
      for (int64_t i = 0; i < n; ++i) x[i] = value;
    }
  };
}

}  // namespace mmserve::synth
