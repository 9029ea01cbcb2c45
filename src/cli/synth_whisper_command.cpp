// `mmserve synth whisper`: writes a synthetic whisper.cpp speech model (random weights, the shape
// of a real Whisper size, a valid vocabulary and mel filters).
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "cli/arg_parser.h"
#include "cli/commands.h"
#include "core/error.h"
#include "synth/whisper_synth.h"

namespace mmserve::cli {
namespace {

constexpr const char* kUsage = R"(usage: mmserve synth whisper -o FILE|DIR [options]
Writes a whisper.cpp ggml speech model with random weights from a fixed seed. It loads and runs
as a real Whisper model of that shape does (serve --whisper-model, transcribe); its transcripts
are gibberish, the same every time for the same options and audio.
  -o, --out FILE          the model file to write (an existing directory: into it, as
                          synth-whisper-SIZE.bin)
      --size NAME         tiny (default), base or small: that Whisper's shape
      --like FILE         take the vocabulary and mel filters (and vocabulary size) from a
                          whisper.cpp model file, e.g. a loader fixture without tensors;
                          default: generate them (byte-level vocabulary, Slaney mel filters)
      --layers N          encoder and decoder layers (default: the size's)
      --state N           width of both (default: the size's)
      --heads N           attention heads (default: the size's)
      --english           English-only vocabulary (51864 tokens; default multilingual 51865)
      --f32               every tensor in F32 (default: F16 matrices, as published models)
      --seed N            weights seed (default 20240229)
)";

int positive_option(const ArgParser& p, const std::string& name, int fallback) {
  const int v = p.get_int(name, fallback);
  if (v < 1) throw Error(ErrorCode::kInvalidInput, "option " + name + " must be positive", name);
  return v;
}

}  // namespace

int run_synth_whisper(const std::vector<std::string>& args) {
  ArgParser p({"-o|--output|--out", "--size", "--like", "--layers", "--state", "--heads", "--seed"},
              {"--english", "--f32", "-h|--help"});
  p.parse(args);
  if (p.flag("--help")) {
    std::cout << kUsage;
    return 0;
  }
  if (!p.has("--out")) {
    throw Error(ErrorCode::kInvalidInput, "-o FILE is required\n" + std::string(kUsage), "--out");
  }
  synth::WhisperSynthOptions o;
  o.shape = synth::whisper_preset(p.get("--size", "tiny"));
  auto& s = o.shape;
  s.n_audio_layer = s.n_text_layer = positive_option(p, "--layers", s.n_audio_layer);
  s.n_audio_state = s.n_text_state = positive_option(p, "--state", s.n_audio_state);
  s.n_audio_head = s.n_text_head = positive_option(p, "--heads", s.n_audio_head);
  o.like = p.get("--like");
  if (p.flag("--english")) {
    if (!o.like.empty()) {
      throw Error(ErrorCode::kInvalidInput,
                  "--english and --like exclude each other: the vocabulary comes from --like",
                  "--english");
    }
    s.n_vocab = 51864;
  }
  o.f16 = !p.flag("--f32");
  if (p.has("--seed")) o.seed = static_cast<uint64_t>(p.get_int("--seed", 0));

  std::string out = p.get("--out");
  std::error_code ec;
  if (std::filesystem::is_directory(out, ec)) {
    out = (std::filesystem::path(out) / ("synth-whisper-" + p.get("--size", "tiny") + ".bin"))
              .string();
  }
  const auto r = synth::write_synthetic_whisper(out, o);
  std::printf("%s\n", out.c_str());
  std::fprintf(stderr,
               "mmserve: synthetic whisper written: %d+%d layers, state %d, %d heads, %s "
               "vocabulary (%d), %.1fM parameters, %.1f MB; vocabulary and filters %s\n",
               r.shape.n_audio_layer, r.shape.n_text_layer, r.shape.n_audio_state,
               r.shape.n_audio_head, r.shape.n_vocab >= 51865 ? "multilingual" : "English",
               r.shape.n_vocab, static_cast<double>(r.parameters) / 1e6,
               static_cast<double>(r.bytes) / 1e6,
               r.from_fixture ? ("from " + o.like).c_str() : "generated");
  return 0;
}

}  // namespace mmserve::cli
