// `mmserve describe`: a vision-language model describes image files; tokens stream to stdout.
#include <cstdio>
#include <iostream>

#include "cli/arg_parser.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/model_locator.h"
#include "engine/backend.h"
#include "engine/text_batch.h"
#include "engine/vision_model.h"
#include "media/image_decoder.h"

namespace mmserve::cli {
namespace {

constexpr const char* kUsage =
    R"(usage: mmserve describe -m MODEL.gguf --mmproj MMPROJ.gguf IMAGE... [options]
  -m, --model FILE        the vision-language model's GGUF (else $MMSERVE_MODEL, else the model
                          directory)
      --mmproj FILE       its multimodal projector GGUF (mmproj-*.gguf)
  -p, --prompt TEXT       what to ask (default "Describe this image.")
      --system TEXT       system message
      --raw               do not use the model's chat template
  -n, --max-tokens N      tokens to generate (default 256)
      --temp T            temperature, 0 = greedy (default 0.8)
      --top-k N           (default 40)     --top-p P   (default 0.95)
      --min-p P           (default 0.05)   --repeat-penalty R (default 1.0)
      --seed N            sampling seed (default random)
      --stop TEXT         stop at this text
      --max-image-bytes N   largest image file (default 20971520)
      --max-image-pixels N  largest picture, width x height (default 50000000)
  -t, --threads N         CPU threads (default: all cores)
  -v, --verbose           show llama.cpp's own log and timings
Images: JPEG, PNG, BMP, GIF (first frame) and WebP. Several images go into one prompt, in order.
)";

}  // namespace

int run_describe(const std::vector<std::string>& args) {
  ArgParser p({"-m|--model", "--mmproj", "-p|--prompt", "--system", "-n|--max-tokens", "--temp",
               "--top-k", "--top-p", "--min-p", "--repeat-penalty", "--seed", "--stop",
               "--max-image-bytes", "--max-image-pixels", "-t|--threads"},
              {"--raw", "-v|--verbose", "-h|--help"});
  p.parse(args);
  if (p.flag("--help")) {
    std::cout << kUsage;
    return 0;
  }
  engine::set_verbose_engine_logs(p.flag("--verbose"));
  if (p.positionals().empty()) {
    throw Error(ErrorCode::kInvalidInput, "no image given\n" + std::string(kUsage), "image");
  }
  if (!p.has("--mmproj")) {
    throw Error(ErrorCode::kInvalidInput,
                "--mmproj is required: the projector GGUF that comes with the model", "--mmproj");
  }

  engine::GenerationRequest request = generation_options(p);
  media::ImageLimits limits;
  limits.max_bytes = static_cast<size_t>(
      std::max(1, p.get_int("--max-image-bytes", static_cast<int>(limits.max_bytes))));
  limits.max_pixels =
      std::max(1, p.get_int("--max-image-pixels", static_cast<int>(limits.max_pixels)));

  // Images first: a bad file is reported before minutes of model loading.
  std::vector<media::Image> images;
  for (const auto& path : p.positionals()) images.push_back(media::load_image_file(path, limits));

  const int threads = p.get_int("--threads", 0);
  const auto model = engine::TextModel::load(locate_text_model(p.get("--model")));
  auto vision = engine::VisionModel::load(p.get("--mmproj"), model, {.threads = threads});
  const std::string text =
      vision->caption_prompt(images.size(), p.get("--prompt", engine::kDefaultCaptionPrompt),
                             p.flag("--raw"), p.get("--system"));
  auto prompt = vision->tokenize(text, images, true, "image");
  request.prompt = std::move(prompt.tokens);
  request.media = std::move(prompt.media);

  engine::BatchOptions options;
  options.threads = threads;
  options.n_ctx = static_cast<int>(request.prompt.size()) + request.max_tokens;
  engine::TextBatch batch(model, options, vision);
  batch.validate(request);

  engine::SequenceResult result;
  batch.start(std::move(request),
              {.on_text =
                   [](std::string_view piece) {
                     std::fwrite(piece.data(), 1, piece.size(), stdout);
                     std::fflush(stdout);
                   },
               .on_finish = [&](const engine::SequenceResult& r) { result = r; }});
  double encode_ms = 0, image_decode_ms = 0;
  int image_tokens = 0;
  while (batch.has_work()) {
    const auto step = batch.step();
    encode_ms += step.image_encode_ms;
    image_decode_ms += step.image_decode_ms;
    image_tokens += step.image_tokens;
  }
  std::fputc('\n', stdout);
  if (result.reason == engine::FinishReason::kError) {
    throw result.error.value_or(Error(ErrorCode::kInternal, "generation failed"));
  }
  if (p.flag("--verbose")) {
    std::fprintf(stderr,
                 "[%zu image(s): encoded in %.1f ms, %d image tokens decoded in %.1f ms; %d "
                 "prompt tokens in %.1f ms, %d generated in %.1f ms, %s]\n",
                 images.size(), encode_ms, image_tokens, image_decode_ms, result.prompt_tokens,
                 result.prompt_ms, result.completion_tokens, result.generate_ms,
                 engine::finish_reason_name(result.reason));
  }
  return 0;
}

}  // namespace mmserve::cli
