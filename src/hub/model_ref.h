// What `mmserve pull REF` names, parsed without any network access, and which of a Hub
// repository's files a REF selects (quantization matching, split GGUF parts, the mmproj).
// Pure functions: stateless and thread-safe; every malformed REF is Error(kInvalidInput, field
// "REF") naming it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mmserve::hub {

struct ModelRef {
  enum class Kind { kHub, kWhisper, kUrl };
  Kind kind = Kind::kHub;
  std::string text;      // the REF as given, for messages
  std::string repo;      // kHub: "OWNER/REPO"; kWhisper: the whisper.cpp repository
  std::string revision;  // kHub/kWhisper: branch, tag or commit
  std::string file;      // an exact file path in the repository (kWhisper: "ggml-NAME.bin")
  std::string quant;     // kHub without `file`: the wanted quantization tag, may be empty
  std::string url;       // kUrl: the URL
};

constexpr const char* kWhisperRepo = "ggerganov/whisper.cpp";

// REF forms: hf:OWNER/REPO, hf:OWNER/REPO:QUANT, hf:OWNER/REPO:FILE.gguf, hf:OWNER/REPO/PATH,
// the same without "hf:", ENDPOINT/OWNER/REPO/resolve/REV/PATH URLs (ENDPOINT: `endpoint` or
// https://huggingface.co), whisper:NAME, and any other http(s) URL.
ModelRef parse_model_ref(const std::string& ref, const std::string& endpoint,
                         const std::string& revision = "main");

// One file of a repository listing.
struct RepoFile {
  std::string path;    // in the repository, '/'-separated
  uint64_t size = 0;   // bytes (the LFS object's when it is one)
  std::string sha256;  // the LFS oid, lowercase hex; empty for files not in LFS
};

// The quantization tag of a GGUF file name: the last '-' or '.' separated word of its stem,
// without a split suffix ("Llama-3.2-1B-Instruct-Q4_K_M-00001-of-00002.gguf" -> "Q4_K_M").
std::string quant_of(const std::string& path);
// "NAME-00002-of-00003.gguf" -> true with index 2 and count 3.
bool split_part(const std::string& path, int* index, int* count);
bool is_projector(const std::string& path);  // basename starts with "mmproj" (any case)

struct Selection {
  std::vector<RepoFile> model;   // the model file, or every part of a split one in order
  std::vector<RepoFile> mmproj;  // empty or one projector
  std::string quant;             // the quantization chosen
  std::string why;               // one line: how it was chosen (for the user)
};

// Chooses the files of a Hub REF from the repository listing: the exact file when `ref.file`
// is set, else the GGUF whose quant_of() matches `ref.quant` (case-insensitive), else Q4_K_M,
// Q8_0, or the first GGUF by name; then the projector (F16 preferred) for a text model.
// Error(kNotFound) naming the available quantizations when nothing matches.
Selection select_files(const ModelRef& ref, const std::vector<RepoFile>& listing);

}  // namespace mmserve::hub
