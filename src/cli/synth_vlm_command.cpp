// `mmserve synth vlm`: writes a synthetic vision-language model (language model + projector).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>

#include "cli/arg_parser.h"
#include "cli/commands.h"
#include "core/error.h"
#include "synth/vlm_synth.h"

namespace mmserve::cli {
namespace {

constexpr const char* kUsage = R"(usage: mmserve synth vlm -o DIR [options]
Writes a language model and its projector with random weights from a fixed seed:
  --family gemma3 (default): DIR/synth-vlm.gguf (Gemma 3) and DIR/mmproj-synth-vlm.gguf (its
    projector: SigLIP vision tower, pooling, projection);
  --family magistral: DIR/synth-magistral.gguf (Magistral Small 1.2's shape: a "llama" model
    with the template of --chat-template-file and Mistral's special tokens) and
    DIR/mmproj-synth-magistral.gguf (a Pixtral projector with the 2 x 2 patch merger; images
    keep their aspect, one token per pool x pool patches plus an [IMG_BREAK] per row).
They load as the real files do (serve -m ... --mmproj ..., describe); the text they produce is
gibberish, the same every time for the same options.
  -o, --output DIR        output directory (created if missing)
      --family F          gemma3 (default) or magistral
      --chat-template-file FILE
                          the Jinja chat template to embed (required for magistral: e.g.
                          mistralai-Ministral-3-14B-Reasoning-2512.jinja of llama.cpp's
                          models/templates, Magistral's reasoning format)
      --seed N            weights seed (default 42)
  language model:
      --embd N            embedding width (default 256)
      --layers N          layers (default 4)
      --heads N           attention heads (default 4)
      --kv-heads N        key/value heads (default 2)
      --head-dim N        per-head width (default 64)
      --ff N              feed-forward width (default 1024)
      --ctx N             training context (default 4096)
      --sliding-window N  local attention window, 0 = off (default 0; Gemma 3 uses 1024)
  vision tower and projector:
      --image-size N      encoder input side in pixels (default 448; Gemma 3: 896); for
                          magistral the nominal side (warm-up, reported token count)
      --patch-size N      (default 14)
      --pool N            patches pooled (gemma3) or merged (magistral) per side into one image
                          token (default 2; Gemma 3: 4, Magistral: 2, Pixtral 12B: 1)
      --vision-embd N     (default 192; Gemma 3: 1152)
      --vision-layers N   (default 4; Gemma 3: 27)
      --vision-heads N    (default 4; Gemma 3: 16)
      --vision-ff N       (default 768; Gemma 3: 4304)
)";

}  // namespace

int run_synth_vlm(const std::vector<std::string>& args) {
  ArgParser p({"-o|--output", "--family", "--chat-template-file", "--seed", "--embd", "--layers",
               "--heads", "--kv-heads", "--head-dim", "--ff", "--ctx", "--sliding-window",
               "--image-size", "--patch-size", "--pool", "--vision-embd", "--vision-layers",
               "--vision-heads", "--vision-ff"},
              {"-h|--help"});
  p.parse(args);
  if (p.flag("--help")) {
    std::cout << kUsage;
    return 0;
  }
  if (!p.has("--output")) {
    throw Error(ErrorCode::kInvalidInput, "-o DIR is required\n" + std::string(kUsage), "--output");
  }
  synth::VlmSynthOptions o;
  o.family = synth::vlm_family(p.get("--family", "gemma3"));
  if (const std::string file = p.get("--chat-template-file"); !file.empty()) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      throw Error(ErrorCode::kInvalidInput, "cannot read --chat-template-file " + file,
                  "--chat-template-file");
    }
    o.chat_template.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto& s = o.shape;
  o.seed = static_cast<uint64_t>(p.get_int("--seed", 42));
  s.n_embd = p.get_int("--embd", s.n_embd);
  s.n_layer = p.get_int("--layers", s.n_layer);
  s.n_head = p.get_int("--heads", s.n_head);
  s.n_head_kv = p.get_int("--kv-heads", s.n_head_kv);
  s.head_dim = p.get_int("--head-dim", s.head_dim);
  s.n_ff = p.get_int("--ff", s.n_ff);
  s.n_ctx = p.get_int("--ctx", s.n_ctx);
  s.sliding_window = p.get_int("--sliding-window", s.sliding_window);
  s.image_size = p.get_int("--image-size", s.image_size);
  s.patch_size = p.get_int("--patch-size", s.patch_size);
  s.pool = p.get_int("--pool", s.pool);
  s.v_embd = p.get_int("--vision-embd", s.v_embd);
  s.v_layer = p.get_int("--vision-layers", s.v_layer);
  s.v_head = p.get_int("--vision-heads", s.v_head);
  s.v_ff = p.get_int("--vision-ff", s.v_ff);

  const std::filesystem::path dir = p.get("--output");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    throw Error(ErrorCode::kInvalidInput, "cannot create " + dir.string() + ": " + ec.message(),
                "--output");
  }
  const std::string name =
      o.family == synth::VlmFamily::kMagistral ? "synth-magistral" : "synth-vlm";
  o.model_path = (dir / (name + ".gguf")).string();
  o.mmproj_path = (dir / ("mmproj-" + name + ".gguf")).string();
  synth::write_synthetic_vlm(o);
  std::printf("%s\n%s\n", o.model_path.c_str(), o.mmproj_path.c_str());
  std::fprintf(stderr, "mmserve: synthetic VLM written (%d image tokens per %dx%d image)\n",
               synth::vlm_tokens_per_image(s, o.family), s.image_size, s.image_size);
  return 0;
}

}  // namespace mmserve::cli
