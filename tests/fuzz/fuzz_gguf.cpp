// Fuzzes engine::inspect_gguf (GGUF header, metadata and tensor table) on a file holding the
// input (a per-process scratch file in /dev/shm). The parser is mmserve's own (gguf_inspect.cpp,
// the one fuzz_gguf_header drives on in-memory prefixes): a bounds-checked little-endian reader
// of the layout ggml's gguf.cpp writes (versions 2 and 3), reading the file in growing pieces,
// refusing implausible counts, lengths and dimensions, overflowing size products, unknown types,
// misaligned or not back-to-back tensor offsets, and a file shorter than its tensors.
//
// Invariants: every refusal is Error(kModelLoad) naming "model" (the file exists, so never
// kNotFound); an accepted file starts with "GGUF", is a version ggml reads (2 or 3), reports its
// real size, and its tensor table is consistent (per-type counts and bytes add up to the totals,
// types sorted by bytes, descending, no more tensor bytes than the file). Plus ASan and UBSan.
#include <ggml.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "engine/gguf_inspect.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ggml_log_set([](ggml_log_level, const char*, void*) {}, nullptr);  // ggml's logs: quiet
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static mmserve::fuzz::ScratchFile file("gguf");
  const std::string& path = file.write(data, size);
  try {
    const mmserve::engine::GgufSummary s = mmserve::engine::inspect_gguf(path);
    FUZZ_CHECK(size >= 4 && std::memcmp(data, "GGUF", 4) == 0);
    FUZZ_CHECK(s.file_bytes == size);
    FUZZ_CHECK(s.gguf_version == 2 || s.gguf_version == 3);
    FUZZ_CHECK(s.n_tensors >= 0);
    int64_t tensors = 0;
    uint64_t bytes = 0;
    for (const auto& t : s.tensor_types) {
      FUZZ_CHECK(!t.type.empty() && t.tensors > 0);
      tensors += t.tensors;
      bytes += t.bytes;
    }
    FUZZ_CHECK(tensors == s.n_tensors);
    FUZZ_CHECK(bytes == s.tensor_bytes);
    FUZZ_CHECK(std::ranges::is_sorted(
        s.tensor_types, [](const auto& a, const auto& b) { return a.bytes > b.bytes; }));
    FUZZ_CHECK(s.n_tensors == 0 || s.tensor_bytes <= s.file_bytes);
  } catch (const mmserve::Error& e) {
    mmserve::fuzz::expect_code(e, {mmserve::ErrorCode::kModelLoad});
    mmserve::fuzz::expect_field(e, "model");
  }
  return 0;
}
