// `mmserve finetune --base MODEL.gguf --data DATA.jsonl -o OUT.gguf`: full-weight fine-tuning of
// a small F32 Llama model on exported data (engine/finetune.h). Progress on stderr, one line per
// epoch. SIGINT/SIGTERM stop after the current epoch and save the completed epochs (exit 130);
// a second signal exits at once without writing.
#include <signal.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "cli/arg_parser.h"
#include "cli/commands.h"
#include "core/error.h"
#include "engine/backend.h"
#include "engine/finetune.h"

namespace mmserve::cli {
namespace {

constexpr const char* kUsage =
    R"(usage: mmserve finetune --base MODEL.gguf --data DATA.jsonl -o OUT.gguf [options]
Trains every weight of a small F32 Llama-architecture model on DATA and writes OUT (CPU only).
DATA: JSON lines in OpenAI's fine-tuning chat format (`mmserve dataset export --format
openai`; assistant turns with "weight": 0 are left out), ShareGPT ("conversations"), Alpaca
("instruction"/"input"/"output"), {"text": ...} lines, or a plain text file. Examples are
rendered with the model's chat template, or as plain text when it has none.
      --base FILE        the model to start from: F32 weights, architecture llama
      --data FILE        the training data
  -o, --output FILE      the fine-tuned model (written when training ends)
      --format F         openai, sharegpt, alpaca, text (default: told by the first line)
      --epochs N         passes over the data (default 2)
      --lr F             AdamW learning rate, constant (default 1e-4)
      --ctx N            tokens per training window, a multiple of 256 (default 256)
      --val-split F      fraction of the examples held out for a validation loss (default
                         0.05; 0: none)
  -t, --threads N        CPU threads (default: all cores)
      --seed N           shuffling seed (default 42)
  -v, --verbose          show llama.cpp's own log
Progress: one line per epoch on stderr (train loss, validation loss, tokens, seconds).
Ctrl-C (SIGINT) or SIGTERM stops after the current epoch and saves the completed epochs (exit
130); a second one exits at once without writing.
)";

volatile sig_atomic_t g_stop_signals = 0;
// The trainer's temporary files (engine/finetune.cpp: OUT.partial-PID and OUT.partial-PID.raw),
// removed by a second signal that lands while the model is being saved.
char g_partial[2][4096] = {};

void on_stop_signal(int) {
  g_stop_signals = g_stop_signals + 1;
  if (g_stop_signals >= 2) {
    constexpr char kMsg[] = "\nfinetune: second signal: exiting without writing\n";
    (void)!::write(STDERR_FILENO, kMsg, sizeof(kMsg) - 1);
    for (const char* path : g_partial) {
      if (path[0] != '\0') ::unlink(path);
    }
    ::_exit(130);
  }
  constexpr char kMsg[] =
      "\nfinetune: stopping after this epoch; the completed epochs will be saved (again to "
      "exit at once)\n";
  (void)!::write(STDERR_FILENO, kMsg, sizeof(kMsg) - 1);
}

// Installs the stop handlers for the life of the run.
class StopSignals {
 public:
  StopSignals() {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

float parse_float(const ArgParser& p, const std::string& name, float fallback) {
  return p.has(name) ? p.get_float(name, fallback) : fallback;
}

}  // namespace

int run_finetune(const std::vector<std::string>& args) {
  ArgParser p({"--base", "--data", "-o|--output", "--format", "--epochs", "--lr", "--ctx",
               "--val-split", "-t|--threads", "--seed"},
              {"-v|--verbose", "-h|--help"});
  p.parse(args);
  if (p.flag("--help")) {
    std::cout << kUsage;
    return 0;
  }
  if (!p.positionals().empty()) {
    throw Error(ErrorCode::kInvalidInput,
                "unexpected argument '" + p.positionals().front() + "'\n" + kUsage, "args");
  }
  engine::set_verbose_engine_logs(p.flag("--verbose"));

  engine::FinetuneOptions o;
  o.base_path = p.get("--base");
  o.data_path = p.get("--data");
  o.output_path = p.get("--output");
  if (o.base_path.empty() || o.data_path.empty() || o.output_path.empty()) {
    throw Error(ErrorCode::kInvalidInput,
                "--base, --data and -o are required\n" + std::string(kUsage),
                o.base_path.empty() ? "base" : (o.data_path.empty() ? "data" : "output"));
  }
  o.format = engine::parse_finetune_format(p.get("--format", "auto"));
  o.epochs = p.get_int("--epochs", o.epochs);
  o.learning_rate = parse_float(p, "--lr", o.learning_rate);
  o.window = p.get_int("--ctx", 0);
  if (p.has("--ctx") && o.window == 0) o.window = -1;  // refused as out of range
  o.val_split = parse_float(p, "--val-split", o.val_split);
  o.threads = p.get_int("--threads", 0);
  const int seed = p.get_int("--seed", static_cast<int>(o.seed));
  if (seed < 0) throw Error(ErrorCode::kInvalidInput, "--seed must not be negative", "seed");
  o.seed = static_cast<uint32_t>(seed);
  engine::validate_finetune_options(o);

  const std::string base_name = std::filesystem::path(o.base_path).filename().string();
  engine::FinetuneCallbacks callbacks;
  callbacks.on_plan = [&](const engine::FinetunePlan& plan) {
    std::fprintf(stderr,
                 "finetune: %s (%llu parameters), %s: %zu examples as %s (%zu train, %zu "
                 "validation; %zu skipped, %zu turns dropped), %lld + %lld tokens, window %d: "
                 "%lld + %lld windows, lr %g, %d epochs\n",
                 base_name.c_str(), static_cast<unsigned long long>(plan.parameters),
                 plan.format.c_str(), plan.examples, plan.chat_template ? "chat" : "plain text",
                 plan.train_examples, plan.val_examples, plan.skipped_examples, plan.dropped_turns,
                 static_cast<long long>(plan.train_tokens), static_cast<long long>(plan.val_tokens),
                 plan.window, static_cast<long long>(plan.train_windows),
                 static_cast<long long>(plan.val_windows), static_cast<double>(o.learning_rate),
                 o.epochs);
  };
  callbacks.on_epoch = [](const engine::EpochReport& r) {
    if (r.val_loss >= 0) {
      std::fprintf(stderr, "epoch %d/%d: train loss %.4f, val loss %.4f, %lld tokens, %.2f s\n",
                   r.epoch, r.epochs, r.train_loss, r.val_loss, static_cast<long long>(r.tokens),
                   r.seconds);
    } else {
      std::fprintf(stderr, "epoch %d/%d: train loss %.4f, %lld tokens, %.2f s\n", r.epoch, r.epochs,
                   r.train_loss, static_cast<long long>(r.tokens), r.seconds);
    }
  };
  callbacks.stop_requested = [] { return g_stop_signals > 0; };

  g_stop_signals = 0;
  const std::string partial = o.output_path + ".partial-" + std::to_string(::getpid());
  if (partial.size() + 4 < sizeof(g_partial[0])) {
    std::snprintf(g_partial[0], sizeof(g_partial[0]), "%s", partial.c_str());
    std::snprintf(g_partial[1], sizeof(g_partial[1]), "%s.raw", partial.c_str());
  }
  StopSignals signals;
  const engine::FinetuneResult result = engine::finetune(o, callbacks);
  if (result.stopped || g_stop_signals > 0) {
    std::fprintf(stderr, "finetune: stopped: wrote %s (%d of %d epochs, %.1f s)\n",
                 result.output_path.c_str(), result.epochs_done, o.epochs, result.seconds);
    return 130;
  }
  std::fprintf(stderr, "finetune: wrote %s (%d epochs, %.1f s)\n", result.output_path.c_str(),
               result.epochs_done, result.seconds);
  return 0;
}

}  // namespace mmserve::cli
