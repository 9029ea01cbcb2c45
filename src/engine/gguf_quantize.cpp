// GGUF quantization through llama.cpp's llama_model_quantize: TYPE names, importance matrix
// files, tensor-type overrides and the progress lines read from llama.cpp's per-tensor log.
#include "engine/gguf_quantize.h"

#include <ggml.h>
#include <gguf.h>
#include <llama.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <thread>

#include "core/error.h"
#include "engine/backend.h"
#include "engine/gguf_inspect.h"

namespace mmserve::engine {
namespace {

struct FtypeName {
  GgufTypeInfo info;
  llama_ftype ftype;
};

// The names llama.cpp's tools/quantize accepts (its aliases Q3_K, Q4_K, Q5_K included).
const std::vector<FtypeName>& ftype_table() {
  static const std::vector<FtypeName> table = {
      {{"Q4_0", "4.5 bits per weight, legacy"}, LLAMA_FTYPE_MOSTLY_Q4_0},
      {{"Q4_1", "5.0 bits per weight, legacy"}, LLAMA_FTYPE_MOSTLY_Q4_1},
      {{"Q5_0", "5.5 bits per weight, legacy"}, LLAMA_FTYPE_MOSTLY_Q5_0},
      {{"Q5_1", "6.0 bits per weight, legacy"}, LLAMA_FTYPE_MOSTLY_Q5_1},
      {{"Q8_0", "8.5 bits per weight, near-lossless"}, LLAMA_FTYPE_MOSTLY_Q8_0},
      {{"Q2_K", "k-quant mix around 2.6-3 bits per weight"}, LLAMA_FTYPE_MOSTLY_Q2_K},
      {{"Q2_K_S", "smaller Q2_K (needs --imatrix)"}, LLAMA_FTYPE_MOSTLY_Q2_K_S},
      {{"Q3_K_S", "k-quant mix around 3.4 bits per weight"}, LLAMA_FTYPE_MOSTLY_Q3_K_S},
      {{"Q3_K_M", "k-quant mix around 3.7 bits per weight"}, LLAMA_FTYPE_MOSTLY_Q3_K_M},
      {{"Q3_K", "alias for Q3_K_M"}, LLAMA_FTYPE_MOSTLY_Q3_K_M},
      {{"Q3_K_L", "k-quant mix around 4.0 bits per weight"}, LLAMA_FTYPE_MOSTLY_Q3_K_L},
      {{"Q4_K_S", "k-quant mix around 4.4 bits per weight"}, LLAMA_FTYPE_MOSTLY_Q4_K_S},
      {{"Q4_K_M", "k-quant mix around 4.6-4.9 bits per weight (the common choice)"},
       LLAMA_FTYPE_MOSTLY_Q4_K_M},
      {{"Q4_K", "alias for Q4_K_M"}, LLAMA_FTYPE_MOSTLY_Q4_K_M},
      {{"Q5_K_S", "k-quant mix around 5.5 bits per weight"}, LLAMA_FTYPE_MOSTLY_Q5_K_S},
      {{"Q5_K_M", "k-quant mix around 5.7 bits per weight"}, LLAMA_FTYPE_MOSTLY_Q5_K_M},
      {{"Q5_K", "alias for Q5_K_M"}, LLAMA_FTYPE_MOSTLY_Q5_K_M},
      {{"Q6_K", "6.56 bits per weight"}, LLAMA_FTYPE_MOSTLY_Q6_K},
      {{"IQ1_S", "1.56 bits per weight (needs --imatrix)"}, LLAMA_FTYPE_MOSTLY_IQ1_S},
      {{"IQ1_M", "1.75 bits per weight (needs --imatrix)"}, LLAMA_FTYPE_MOSTLY_IQ1_M},
      {{"IQ2_XXS", "2.06 bits per weight (needs --imatrix)"}, LLAMA_FTYPE_MOSTLY_IQ2_XXS},
      {{"IQ2_XS", "2.31 bits per weight (needs --imatrix)"}, LLAMA_FTYPE_MOSTLY_IQ2_XS},
      {{"IQ2_S", "2.5 bits per weight (needs --imatrix)"}, LLAMA_FTYPE_MOSTLY_IQ2_S},
      {{"IQ2_M", "2.7 bits per weight (needs --imatrix)"}, LLAMA_FTYPE_MOSTLY_IQ2_M},
      {{"IQ3_XXS", "3.06 bits per weight"}, LLAMA_FTYPE_MOSTLY_IQ3_XXS},
      {{"IQ3_XS", "3.3 bits per weight"}, LLAMA_FTYPE_MOSTLY_IQ3_XS},
      {{"IQ3_S", "3.44 bits per weight"}, LLAMA_FTYPE_MOSTLY_IQ3_S},
      {{"IQ3_M", "3.66 bits per weight mix"}, LLAMA_FTYPE_MOSTLY_IQ3_M},
      {{"IQ4_NL", "4.5 bits per weight, non-linear"}, LLAMA_FTYPE_MOSTLY_IQ4_NL},
      {{"IQ4_XS", "4.25 bits per weight, non-linear"}, LLAMA_FTYPE_MOSTLY_IQ4_XS},
      {{"TQ1_0", "1.69 bits per weight, ternary models only"}, LLAMA_FTYPE_MOSTLY_TQ1_0},
      {{"TQ2_0", "2.06 bits per weight, ternary models only"}, LLAMA_FTYPE_MOSTLY_TQ2_0},
      {{"MXFP4_MOE", "MXFP4 experts (MoE models)"}, LLAMA_FTYPE_MOSTLY_MXFP4_MOE},
      {{"F16", "16 bits per weight"}, LLAMA_FTYPE_MOSTLY_F16},
      {{"BF16", "16 bits per weight, bfloat16"}, LLAMA_FTYPE_MOSTLY_BF16},
      {{"F32", "32 bits per weight (no quantization)"}, LLAMA_FTYPE_ALL_F32},
  };
  return table;
}

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string valid_type_list() {
  std::string out;
  for (const auto& t : ftype_table()) out += (out.empty() ? "" : ", ") + std::string(t.info.name);
  return out;
}

const FtypeName& find_ftype(const std::string& name) {
  const std::string u = upper(name);
  for (const auto& t : ftype_table()) {
    if (u == t.info.name) return t;
  }
  throw Error(ErrorCode::kInvalidInput,
              "unknown GGUF quantization type '" + name + "'; valid types: " + valid_type_list(),
              "type");
}

// Tensor types an override may name: those ggml's quantizer (or llama.cpp's float copy) writes.
ggml_type parse_override_type(const std::string& name) {
  static const ggml_type allowed[] = {
      GGML_TYPE_F32,    GGML_TYPE_F16,     GGML_TYPE_BF16,  GGML_TYPE_Q4_0,    GGML_TYPE_Q4_1,
      GGML_TYPE_Q5_0,   GGML_TYPE_Q5_1,    GGML_TYPE_Q8_0,  GGML_TYPE_Q2_K,    GGML_TYPE_Q3_K,
      GGML_TYPE_Q4_K,   GGML_TYPE_Q5_K,    GGML_TYPE_Q6_K,  GGML_TYPE_IQ2_XXS, GGML_TYPE_IQ2_XS,
      GGML_TYPE_IQ2_S,  GGML_TYPE_IQ3_XXS, GGML_TYPE_IQ3_S, GGML_TYPE_IQ1_S,   GGML_TYPE_IQ1_M,
      GGML_TYPE_IQ4_NL, GGML_TYPE_IQ4_XS,  GGML_TYPE_TQ1_0, GGML_TYPE_TQ2_0,   GGML_TYPE_MXFP4};
  std::string list;
  const std::string u = upper(name);
  for (ggml_type t : allowed) {
    if (upper(ggml_type_name(t)) == u) return t;
    list += (list.empty() ? "" : ", ") + std::string(ggml_type_name(t));
  }
  throw Error(ErrorCode::kInvalidInput,
              "--tensor-type: unknown tensor type '" + name + "'; valid: " + list, "--tensor-type");
}

struct TensorOverride {
  std::string pattern;
  ggml_type type;
};

std::vector<TensorOverride> parse_overrides(const std::vector<std::string>& specs) {
  std::vector<TensorOverride> out;
  for (const auto& spec : specs) {
    const auto eq = spec.rfind('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
      throw Error(ErrorCode::kInvalidInput,
                  "--tensor-type '" + spec + "' must be PATTERN=TYPE, e.g. attn_v=q8_0",
                  "--tensor-type");
    }
    TensorOverride o{spec.substr(0, eq), parse_override_type(spec.substr(eq + 1))};
    try {
      std::regex check(o.pattern);  // llama.cpp compiles it again; a bad one must fail here
    } catch (const std::regex_error& e) {
      throw Error(ErrorCode::kInvalidInput,
                  "--tensor-type: '" + o.pattern + "' is not a valid regular expression",
                  "--tensor-type");
    }
    out.push_back(std::move(o));
  }
  return out;
}

// An importance matrix, normalized as llama.cpp's quantizer expects: per tensor, the mean
// squared activation of each input column (per expert for MoE tensors).
struct Imatrix {
  std::map<std::string, std::vector<float>> entries;
  std::vector<std::string> datasets;
  int chunks = 0;
};

[[noreturn]] void bad_imatrix(const std::string& path, const std::string& why) {
  throw Error(ErrorCode::kModelLoad, "importance matrix " + path + ": " + why, "--imatrix");
}

void check_finite(const std::string& path, const std::string& name, const std::vector<float>& v) {
  for (float f : v) {
    if (!std::isfinite(f)) bad_imatrix(path, "entry '" + name + "' holds a non-finite value");
  }
}

// llama.cpp's GGUF imatrix: tensors NAME.in_sum2 (sums of squares, F32) and NAME.counts
// (tokens seen, one per expert, F32), optional imatrix.datasets / imatrix.chunk_count.
Imatrix load_gguf_imatrix(const std::string& path) {
  ensure_backend_initialized();  // ggml's own messages go to the engine log, not stderr
  ggml_context* ctx = nullptr;
  gguf_init_params params{/*no_alloc=*/false, /*ctx=*/&ctx};
  gguf_context* g = gguf_init_from_file(path.c_str(), params);
  if (!g) bad_imatrix(path, "a corrupt or truncated GGUF file");
  struct Free {
    gguf_context* g;
    ggml_context* c;
    ~Free() {
      gguf_free(g);
      if (c) ggml_free(c);
    }
  } guard{g, ctx};
  Imatrix m;
  const int64_t ds = gguf_find_key(g, "imatrix.datasets");
  if (ds >= 0 && gguf_get_kv_type(g, ds) == GGUF_TYPE_ARRAY &&
      gguf_get_arr_type(g, ds) == GGUF_TYPE_STRING) {
    for (size_t i = 0; i < gguf_get_arr_n(g, ds); ++i)
      m.datasets.emplace_back(gguf_get_arr_str(g, ds, i));
  }
  const int64_t cc = gguf_find_key(g, "imatrix.chunk_count");
  if (cc >= 0 && gguf_get_kv_type(g, cc) == GGUF_TYPE_UINT32) {
    m.chunks = static_cast<int>(gguf_get_val_u32(g, cc));
  }
  std::map<std::string, std::pair<ggml_tensor*, ggml_tensor*>> parts;  // name -> sums, counts
  for (ggml_tensor* t = ggml_get_first_tensor(ctx); t; t = ggml_get_next_tensor(ctx, t)) {
    const std::string name = ggml_get_name(t);
    const auto ends = [&](const std::string& suffix) {
      return name.size() > suffix.size() &&
             name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (ends(".in_sum2")) parts[name.substr(0, name.size() - 8)].first = t;
    if (ends(".counts")) parts[name.substr(0, name.size() - 7)].second = t;
  }
  if (parts.empty()) bad_imatrix(path, "a GGUF file without importance matrix tensors");
  for (const auto& [name, p] : parts) {
    const auto [sums, counts] = p;
    if (!sums || !counts) bad_imatrix(path, "entry '" + name + "' lacks its sums or its counts");
    if (sums->type != GGML_TYPE_F32 || counts->type != GGML_TYPE_F32) {
      bad_imatrix(path, "entry '" + name + "' is not F32");
    }
    const int64_t n = ggml_nelements(sums), nc = ggml_nelements(counts);
    if (n < 1 || nc < 1 || n % nc != 0) {
      bad_imatrix(path, "entry '" + name + "' has " + std::to_string(n) + " sums for " +
                            std::to_string(nc) + " counts");
    }
    const auto* s = static_cast<const float*>(sums->data);
    const auto* c = static_cast<const float*>(counts->data);
    const int64_t per = n / nc;
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t j = 0; j < nc; ++j) {
      const float count = std::round(c[j]);
      for (int64_t i = 0; i < per; ++i) {
        // An expert that never saw a token gets a neutral weight, as llama.cpp's tool does.
        v[j * per + i] = count > 0 ? s[j * per + i] / count : 1.0f;
      }
    }
    check_finite(path, name, v);
    m.entries[name] = std::move(v);
  }
  return m;
}

// The older binary imatrix: int32 entries; per entry int32 name length, name, int32 ncall,
// int32 nval, nval floats (already sums/count times ncall); then optionally int32 chunks,
// int32 dataset length, dataset.
Imatrix load_legacy_imatrix(const std::string& path, const std::string& bytes) {
  size_t pos = 0;
  const auto need = [&](size_t n, const std::string& what) {
    if (bytes.size() - pos < n) bad_imatrix(path, "truncated (" + what + ")");
  };
  const auto i32 = [&](const std::string& what) {
    need(4, what);
    int32_t v;
    std::memcpy(&v, bytes.data() + pos, 4);
    pos += 4;
    return v;
  };
  Imatrix m;
  const int32_t n_entries = i32("entry count");
  if (n_entries < 1 || n_entries > 1'000'000) {
    bad_imatrix(path, "not an importance matrix (GGUF or llama.cpp's binary format)");
  }
  for (int32_t e = 0; e < n_entries; ++e) {
    const std::string at = "entry " + std::to_string(e + 1);
    const int32_t len = i32(at + " name length");
    if (len < 1 || len > 4096) bad_imatrix(path, at + " has a bad name length");
    need(static_cast<size_t>(len), at + " name");
    std::string name = bytes.substr(pos, static_cast<size_t>(len));
    pos += static_cast<size_t>(len);
    const int32_t ncall = i32(at + " call count");
    const int32_t nval = i32(at + " value count");
    if (nval < 1) bad_imatrix(path, at + " has no values");
    need(static_cast<size_t>(nval) * 4, at + " values");
    std::vector<float> v(static_cast<size_t>(nval));
    std::memcpy(v.data(), bytes.data() + pos, v.size() * 4);
    pos += v.size() * 4;
    if (ncall > 0) {
      for (auto& f : v) f /= static_cast<float>(ncall);
    }
    check_finite(path, name, v);
    m.entries[name] = std::move(v);
  }
  if (bytes.size() - pos >= 4) {
    m.chunks = i32("chunk count");
    if (bytes.size() - pos >= 4) {
      const int32_t len = i32("dataset length");
      if (len > 0 && static_cast<size_t>(len) <= bytes.size() - pos) {
        m.datasets.push_back(bytes.substr(pos, static_cast<size_t>(len)));
      }
    }
  }
  return m;
}

Imatrix load_imatrix(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw Error(ErrorCode::kNotFound, "importance matrix file not found: " + path, "--imatrix");
  }
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) bad_imatrix(path, "cannot be read");
  if (bytes.compare(0, 4, "GGUF") == 0) return load_gguf_imatrix(path);
  return load_legacy_imatrix(path, bytes);
}

// Turns llama.cpp's per-tensor log ("[  12/ 201] blk.1.attn_q.weight - [...], type = f16, ",
// "converting to q8_0 .. ", "size = ...") into one progress event per tensor. Every line also
// goes on to the logger that was installed before, so errors are still captured there.
struct LogRelay {
  ggml_log_callback previous = nullptr;
  void* previous_user = nullptr;
  std::thread::id owner;
  QuantizeProgressFn progress;
  QuantizeProgress current;
  std::string source_type;
  bool in_tensor = false;
  int tensors = 0;
  int quantized = 0;

  void on_text(const char* text) {
    int index = 0, total = 0;
    char name[512];
    if (std::sscanf(text, "[%d/%d] %511s", &index, &total, name) == 3) {
      current = {index, total, name, ""};
      source_type.clear();
      if (const char* t = std::strstr(text, "type = ")) {
        char type[64];
        if (std::sscanf(t + 7, " %63[^, ]", type) == 1) source_type = type;
      }
      in_tensor = true;
      return;
    }
    if (!in_tensor) return;
    char type[64];
    if (std::sscanf(text, "converting to %63s", type) == 1) {
      current.type = type;
      return;
    }
    if (std::strncmp(text, "size = ", 7) == 0) {
      in_tensor = false;
      if (current.type.empty()) current.type = source_type;
      ++tensors;
      if (current.type != source_type) ++quantized;
      if (progress) progress(current);
    }
  }
};

void relay_log(ggml_log_level level, const char* text, void* user) {
  auto* relay = static_cast<LogRelay*>(user);
  if (relay->previous) relay->previous(level, text, relay->previous_user);
  if (level == GGML_LOG_LEVEL_INFO && std::this_thread::get_id() == relay->owner && text) {
    relay->on_text(text);
  }
}

// llama.cpp's last "failed to quantize: WHY" line, else its last error line.
std::string engine_reason() {
  const std::string errors = recent_engine_errors();
  std::string last;
  size_t start = 0;
  while (start < errors.size()) {
    size_t end = errors.find('\n', start);
    if (end == std::string::npos) end = errors.size();
    std::string line = errors.substr(start, end - start);
    const auto at = line.find("failed to quantize: ");
    if (at != std::string::npos) return line.substr(at + 20);
    if (line.find_first_not_of(" =\t") != std::string::npos) last = line;
    start = end + 1;
  }
  return last;
}

void set_kv(std::vector<llama_model_kv_override>& kv, const char* key, const std::string& str) {
  llama_model_kv_override o{};
  std::snprintf(o.key, sizeof(o.key), "%s", key);
  o.tag = LLAMA_KV_OVERRIDE_TYPE_STR;
  std::snprintf(o.val_str, sizeof(o.val_str), "%s", str.c_str());
  kv.push_back(o);
}

void set_kv(std::vector<llama_model_kv_override>& kv, const char* key, int64_t value) {
  llama_model_kv_override o{};
  std::snprintf(o.key, sizeof(o.key), "%s", key);
  o.tag = LLAMA_KV_OVERRIDE_TYPE_INT;
  o.val_i64 = value;
  kv.push_back(o);
}

}  // namespace

const std::vector<GgufTypeInfo>& gguf_quantize_types() {
  static const std::vector<GgufTypeInfo> types = [] {
    std::vector<GgufTypeInfo> out;
    for (const auto& t : ftype_table()) out.push_back(t.info);
    return out;
  }();
  return types;
}

void validate_gguf_quantize_options(const GgufQuantizeOptions& options) {
  find_ftype(options.type);
  parse_overrides(options.tensor_types);
  if (options.threads < 0) {
    throw Error(ErrorCode::kInvalidInput, "--threads must be at least 1", "--threads");
  }
  if (!options.imatrix_path.empty()) load_imatrix(options.imatrix_path);
}

QuantizeResult quantize_gguf(const std::string& input, const std::string& output,
                             const GgufQuantizeOptions& options) {
  const FtypeName& ftype = find_ftype(options.type);
  const auto overrides = parse_overrides(options.tensor_types);
  Imatrix imatrix;
  if (!options.imatrix_path.empty()) imatrix = load_imatrix(options.imatrix_path);
  // Checked before llama.cpp reads it: a bad header gets inspect_gguf's one clear message.
  const uint64_t input_weights_bytes = inspect_gguf(input).tensor_bytes;
  ensure_backend_initialized();

  llama_model_quantize_params params = llama_model_quantize_default_params();
  params.ftype = ftype.ftype;
  params.nthread = options.threads;
  params.allow_requantize = options.allow_requantize;
  params.pure = options.pure;
  params.quantize_output_tensor = !options.leave_output_tensor;

  // The arrays llama.cpp reads through pointers; each ends with an empty terminator entry.
  std::vector<llama_model_tensor_override> tt;
  for (const auto& o : overrides) tt.push_back({o.pattern.c_str(), o.type});
  tt.push_back({nullptr, GGML_TYPE_COUNT});
  if (!overrides.empty()) params.tt_overrides = tt.data();
  std::vector<llama_model_imatrix_data> im;
  std::vector<llama_model_kv_override> kv;
  if (!imatrix.entries.empty()) {
    for (const auto& [name, v] : imatrix.entries) im.push_back({name.c_str(), v.data(), v.size()});
    im.push_back({nullptr, nullptr, 0});
    params.imatrix = im.data();
    // Recorded in the output as llama.cpp's tool records it.
    set_kv(kv, "quantize.imatrix.file",
           std::filesystem::path(options.imatrix_path).filename().string());
    set_kv(kv, "quantize.imatrix.entries_count", static_cast<int64_t>(imatrix.entries.size()));
    if (!imatrix.datasets.empty()) set_kv(kv, "quantize.imatrix.dataset", imatrix.datasets[0]);
    if (imatrix.chunks > 0) set_kv(kv, "quantize.imatrix.chunks_count", imatrix.chunks);
    kv.emplace_back();
    kv.back().key[0] = '\0';
    params.kv_overrides = kv.data();
  }

  static std::mutex serialize;  // one logger for the process: one quantization at a time
  std::lock_guard<std::mutex> lock(serialize);
  LogRelay relay;
  relay.owner = std::this_thread::get_id();
  relay.progress = options.progress;
  llama_log_get(&relay.previous, &relay.previous_user);
  clear_recent_engine_errors();
  llama_log_set(relay_log, &relay);
  uint32_t rc = 1;
  try {
    rc = llama_model_quantize(input.c_str(), output.c_str(), &params);
  } catch (...) {
    llama_log_set(relay.previous, relay.previous_user);
    throw;
  }
  llama_log_set(relay.previous, relay.previous_user);
  if (rc != 0) {
    std::string why = engine_reason();
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    throw Error(ErrorCode::kModelLoad,
                "quantizing " + input + " to " + ftype.info.name + " failed" +
                    (why.empty() ? std::string() : ": " + why),
                "type");
  }
  const GgufSummary out = inspect_gguf(output);
  QuantizeResult result;
  result.type = ftype.info.name;
  result.parameters = out.n_params;
  result.weights_bytes = out.tensor_bytes;
  result.input_weights_bytes = input_weights_bytes;
  result.tensors = relay.tensors > 0 ? relay.tensors : static_cast<int>(out.n_tensors);
  result.quantized_tensors = relay.quantized;
  return result;
}

}  // namespace mmserve::engine
