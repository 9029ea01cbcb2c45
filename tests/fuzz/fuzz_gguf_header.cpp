// Fuzzes engine::gguf_header_bytes_needed and engine::inspect_gguf_header, the in-memory GGUF
// header parser `mmserve plan`/`pull` use on a remote file's first bytes (read by HTTP range),
// against engine::inspect_gguf on the same bytes in a file (the same parser, read from disk).
//
// Invariants: every refusal is Error(kModelLoad) naming "model"; bytes_needed(prefix) is 0
// exactly when inspect_gguf_header(prefix) succeeds (for a file long enough for any tensor
// table), and otherwise more than prefix.size(); for an accepted input with header length H
// (the shortest prefix accepted, found by bisection: a longer prefix of an accepted one is
// accepted), every shorter prefix k asks for a total in (k, H] (a lower bound, as documented)
// and gives the same summary from H bytes; inspect_gguf_header(all bytes, size) and
// inspect_gguf(file) agree on acceptance and on every summary field. Plus ASan and UBSan.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "engine/gguf_inspect.h"
#include "fuzz_support.h"

using namespace mmserve;
using engine::GgufSummary;

namespace {

const std::string kName = "remote.gguf";
constexpr uint64_t kHuge = uint64_t{1} << 62;  // a file no tensor table can end past

void expect_refusal(const Error& e) {
  fuzz::expect_code(e, {ErrorCode::kModelLoad});
  fuzz::expect_field(e, "model");
}

std::optional<uint64_t> needed(std::string_view prefix) {
  try {
    return engine::gguf_header_bytes_needed(prefix, kName);
  } catch (const Error& e) {
    expect_refusal(e);
    return std::nullopt;
  }
}

std::optional<GgufSummary> header(std::string_view prefix, uint64_t file_bytes) {
  try {
    return engine::inspect_gguf_header(prefix, file_bytes, kName);
  } catch (const Error& e) {
    expect_refusal(e);
    return std::nullopt;
  }
}

// Every field but the path (and the file size when `same_size` is false).
bool same(const GgufSummary& a, const GgufSummary& b, bool same_size) {
  auto types_equal = [&] {
    if (a.tensor_types.size() != b.tensor_types.size()) return false;
    for (size_t i = 0; i < a.tensor_types.size(); ++i) {
      const auto &x = a.tensor_types[i], &y = b.tensor_types[i];
      if (x.type != y.type || x.tensors != y.tensors || x.bytes != y.bytes) return false;
    }
    return true;
  };
  const auto &p = a.projector, &q = b.projector;
  return (!same_size || a.file_bytes == b.file_bytes) && a.gguf_version == b.gguf_version &&
         a.architecture == b.architecture && a.name == b.name && a.file_type == b.file_type &&
         a.n_tensors == b.n_tensors && a.n_params == b.n_params &&
         a.tensor_bytes == b.tensor_bytes && types_equal() && a.layer_bytes == b.layer_bytes &&
         a.token_embd_bytes == b.token_embd_bytes && a.output_bytes == b.output_bytes &&
         a.other_bytes == b.other_bytes && a.n_layer == b.n_layer && a.n_embd == b.n_embd &&
         a.n_head == b.n_head && a.n_head_kv == b.n_head_kv && a.n_ctx_train == b.n_ctx_train &&
         a.n_expert == b.n_expert && a.n_expert_used == b.n_expert_used && a.n_vocab == b.n_vocab &&
         a.n_ff == b.n_ff && a.n_ff_expert == b.n_ff_expert && a.head_dim_k == b.head_dim_k &&
         a.head_dim_v == b.head_dim_v && a.sliding_window == b.sliding_window &&
         a.pooling_type == b.pooling_type && a.has_chat_template == b.has_chat_template &&
         a.n_expert_params == b.n_expert_params && a.expert_bytes == b.expert_bytes &&
         p.type == q.type && p.has_vision == q.has_vision && p.has_audio == q.has_audio &&
         p.image_size == q.image_size && p.patch_size == q.patch_size &&
         p.scale_factor == q.scale_factor && p.n_embd == q.n_embd && p.n_layer == q.n_layer &&
         p.n_head == q.n_head && p.projection_dim == q.projection_dim && p.n_ff == q.n_ff &&
         p.tokens_per_image == q.tokens_per_image;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);

  // bytes_needed and inspect_gguf_header agree; a nonzero answer asks for more than was given.
  const std::optional<uint64_t> need = needed(bytes);
  const std::optional<GgufSummary> any_size = header(bytes, kHuge);
  FUZZ_CHECK(any_size.has_value() == (need == uint64_t{0}));
  if (need && *need != 0) FUZZ_CHECK(*need > size);
  if (any_size) {
    FUZZ_CHECK(any_size->path == kName && any_size->file_bytes == kHuge);
    FUZZ_CHECK(size >= 4 && bytes.substr(0, 4) == "GGUF");
    FUZZ_CHECK(any_size->gguf_version == 2 || any_size->gguf_version == 3);
  }

  // The same bytes as a whole local file: the file reader and the prefix reader agree.
  static fuzz::ScratchFile file("gguf-header");
  const std::string& path = file.write(data, size);
  std::optional<GgufSummary> local;
  try {
    local = engine::inspect_gguf(path);
  } catch (const Error& e) {
    expect_refusal(e);
  }
  const std::optional<GgufSummary> exact = header(bytes, size);
  FUZZ_CHECK(local.has_value() == exact.has_value());
  FUZZ_CHECK(!exact || any_size);  // a file long enough for its tensors is also a header
  if (local) {
    FUZZ_CHECK(local->path == path && exact->path == kName);
    FUZZ_CHECK(same(*local, *exact, true));
    FUZZ_CHECK(same(*local, *any_size, false));
  }
  if (!any_size) return 0;

  // The header's length H: the shortest accepted prefix (acceptance is monotonic in length).
  size_t lo = 0, hi = size;  // needed(lo) != 0, needed(hi) == 0
  while (hi - lo > 1) {
    const size_t mid = lo + (hi - lo) / 2;
    const auto n = needed(bytes.substr(0, mid));
    FUZZ_CHECK(n.has_value());  // a prefix of a good header is never corrupt
    (*n == 0 ? hi : lo) = mid;
  }
  const size_t h = hi;
  const auto at_h = header(bytes.substr(0, h), kHuge);
  FUZZ_CHECK(at_h && same(*at_h, *any_size, true));
  // Shorter prefixes ask for a lower bound of H, more than they hold.
  for (const size_t k : {size_t{0}, size_t{3}, size_t{4}, h / 2, h - 1, size_t{data[0]} % h}) {
    if (k >= h) continue;
    const auto n = needed(bytes.substr(0, k));
    FUZZ_CHECK(n && *n > k && *n <= h);
    FUZZ_CHECK(!header(bytes.substr(0, k), kHuge));
  }
  return 0;
}
