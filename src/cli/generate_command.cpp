// `mmserve generate`: one prompt, tokens streamed to stdout as they come.
#include <cstdio>
#include <iostream>

#include "cli/arg_parser.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/model_locator.h"
#include "engine/backend.h"
#include "engine/text_batch.h"

namespace mmserve::cli {
namespace {

constexpr const char* kUsage = R"(usage: mmserve generate [-m MODEL.gguf] [options] "prompt"
  -m, --model FILE        GGUF model (else $MMSERVE_MODEL, else the model directory)
  -p, --prompt TEXT       the prompt (or give it as the last argument)
  -n, --max-tokens N      tokens to generate (default 256)
      --temp T            temperature, 0 = greedy (default 0.8)
      --top-k N           (default 40)     --top-p P   (default 0.95)
      --min-p P           (default 0.05)   --repeat-penalty R (default 1.0)
      --seed N            sampling seed (default random)
      --stop TEXT         stop at this text
      --chat              format the prompt with the model's chat template
      --system TEXT       system message for --chat
  -t, --threads N         CPU threads (default: all cores)
  -c, --ctx-size N        context length (default: prompt + max tokens)
      --ignore-eos        keep generating past the end-of-sequence token
  -v, --verbose           show llama.cpp's own log
)";

}  // namespace

int run_generate(const std::vector<std::string>& args) {
  ArgParser p(
      {"-m|--model", "-p|--prompt", "-n|--max-tokens", "--temp", "--top-k", "--top-p", "--min-p",
       "--repeat-penalty", "--seed", "--stop", "--system", "-t|--threads", "-c|--ctx-size"},
      {"--chat", "--ignore-eos", "-v|--verbose", "-h|--help"});
  p.parse(args);
  if (p.flag("--help")) {
    std::cout << kUsage;
    return 0;
  }
  engine::set_verbose_engine_logs(p.flag("--verbose"));

  std::string prompt = p.get("--prompt");
  for (const auto& word : p.positionals()) prompt += (prompt.empty() ? "" : " ") + word;
  if (prompt.empty())
    throw Error(ErrorCode::kInvalidInput, "no prompt given\n" + std::string(kUsage), "prompt");

  engine::GenerationRequest request = generation_options(p);
  request.ignore_eos = p.flag("--ignore-eos");

  const auto model = engine::TextModel::load(locate_text_model(p.get("--model")));
  if (p.flag("--chat")) {
    std::vector<engine::ChatMessage> messages;
    if (p.has("--system")) messages.push_back({"system", p.get("--system")});
    messages.push_back({"user", prompt});
    request.prompt = model->tokenize(model->apply_chat_template(messages), true, true);
  } else {
    request.prompt = model->tokenize(prompt, true, false);
  }

  engine::BatchOptions options;
  options.threads = p.get_int("--threads", 0);
  const int want_ctx = static_cast<int>(request.prompt.size()) + request.max_tokens;
  options.n_ctx = p.get_int("--ctx-size", want_ctx);
  engine::TextBatch batch(model, options);
  batch.validate(request);

  engine::SequenceResult result;
  batch.start(std::move(request),
              {.on_text =
                   [](std::string_view text) {
                     std::fwrite(text.data(), 1, text.size(), stdout);
                     std::fflush(stdout);
                   },
               .on_finish = [&](const engine::SequenceResult& r) { result = r; }});
  while (batch.has_work()) batch.step();
  std::fputc('\n', stdout);
  if (result.reason == engine::FinishReason::kError)
    throw result.error.value_or(Error(ErrorCode::kInternal, "generation failed"));
  if (p.flag("--verbose")) {
    std::fprintf(stderr, "[%d prompt tokens in %.1f ms, %d generated in %.1f ms, %s]\n",
                 result.prompt_tokens, result.prompt_ms, result.completion_tokens,
                 result.generate_ms, engine::finish_reason_name(result.reason));
  }
  return 0;
}

}  // namespace mmserve::cli
