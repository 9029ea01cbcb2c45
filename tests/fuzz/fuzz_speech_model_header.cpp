// Fuzzes the header checks that guard whisper.cpp's loaders: engine::check_speech_model_file and
// engine::check_vad_model_file (src/engine/speech_model.h), on a file holding the input. These are
// mmserve's only parsers of a whisper ggml file; whisper.cpp's loader trusts its input by design
// and runs only on a file that passed them.
//
// Invariants: each check accepts exactly the headers a reference decision written here accepts
// (the documented layout: "ggml" magic, then the speech model's 11 int32 hyperparameters with
// n_vocab 51864..51866, positive sizes and 80 or 128 mels; or the VAD model's length-prefixed
// type name starting with "silero"); no file is both; a GGUF file is neither; every refusal is
// Error(kModelLoad) naming the field. Plus ASan and UBSan.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "engine/speech_model.h"
#include "fuzz_support.h"

namespace {

constexpr uint32_t kGgmlMagic = 0x67676d6c;

int32_t word(const uint8_t* data, size_t i) {
  int32_t v = 0;
  std::memcpy(&v, data + 4 * i, sizeof(v));
  return v;
}

bool reference_speech(const uint8_t* data, size_t size) {
  if (size < 48 || static_cast<uint32_t>(word(data, 0)) != kGgmlMagic) return false;
  const int32_t n_vocab = word(data, 1);
  if (n_vocab < 51864 || n_vocab > 51866) return false;
  for (size_t i = 2; i <= 9; ++i) {
    if (word(data, i) <= 0) return false;  // audio/text ctx, state, heads, layers
  }
  const int32_t n_mels = word(data, 10);
  return n_mels == 80 || n_mels == 128;
}

bool reference_vad(const uint8_t* data, size_t size) {
  if (size < 8 || static_cast<uint32_t>(word(data, 0)) != kGgmlMagic) return false;
  const int32_t len = word(data, 1);
  if (len <= 0 || len > 64 || size < 8 + static_cast<size_t>(len)) return false;
  return std::string_view(reinterpret_cast<const char*>(data) + 8, len).starts_with("silero");
}

// Each check either returns what it read or throws; only which of the two matters here.
template <typename Check>
bool accepts(Check check, const std::string& path, const char* field) {
  try {
    check(path, field);
    return true;
  } catch (const mmserve::Error& e) {
    mmserve::fuzz::expect_code(e, {mmserve::ErrorCode::kModelLoad});
    mmserve::fuzz::expect_field(e, field);
    return false;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static mmserve::fuzz::ScratchFile file("whisper");
  const std::string& path = file.write(data, size);
  const bool speech = accepts(mmserve::engine::check_speech_model_file, path, "whisper-model");
  const bool vad = accepts(mmserve::engine::check_vad_model_file, path, "vad-model");
  FUZZ_CHECK(speech == reference_speech(data, size));
  FUZZ_CHECK(vad == reference_vad(data, size));
  FUZZ_CHECK(!(speech && vad));
  if (size >= 4 && std::memcmp(data, "GGUF", 4) == 0) FUZZ_CHECK(!speech && !vad);
  return 0;
}
