// `mmserve plan`: will a serving configuration fit on this machine? Reads only the models'
// headers (local files, or remote ones by HTTP range requests), sizes every component with the
// product's one estimator (engine/memory_plan.h), compares it with the detected hardware and,
// when it does not fit, searches for a --parallel / --ctx-size / --gpu-layers that does.
// `mmserve plan --scenarios` sizes published model shapes (engine/model_shapes.h).
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/arg_parser.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/human_units.h"
#include "engine/embedding_model.h"
#include "engine/gguf_inspect.h"
#include "engine/hardware.h"
#include "engine/memory_plan.h"
#include "engine/model_shapes.h"
#include "engine/speech_model.h"
#include "hub/hub_client.h"

namespace mmserve::cli {
namespace {

namespace fs = std::filesystem;
constexpr uint64_t kFirstRead = uint64_t{4} << 20;  // most GGUF headers fit in 4 MiB

bool looks_like_ref(const std::string& arg) {
  if (arg.starts_with("hf:") || arg.starts_with("whisper:") || arg.starts_with("http://") ||
      arg.starts_with("https://")) {
    return true;
  }
  // OWNER/REPO[:QUANT]: one slash, no leading '.' or '/', not an existing path.
  const auto slash = arg.find('/');
  return slash != std::string::npos && slash > 0 && arg.find('/', slash + 1) == std::string::npos &&
         arg[0] != '.' && !fs::exists(arg);
}

const hub::RemoteFile& first_file(const std::vector<hub::RemoteFile>& files, const std::string& ref,
                                  const std::string& field) {
  if (files.empty()) throw Error(ErrorCode::kNotFound, ref + " names no file", field);
  if (files.front().size == 0) {
    throw Error(ErrorCode::kUnavailable,
                "the size of " + files.front().url + " is not known; cannot plan it", field);
  }
  return files.front();
}

// Reads a remote GGUF's header: the first 4 MiB, then as much more as the parser says it needs.
engine::GgufSummary remote_gguf(const hub::RemoteFile& file, const hub::HubSettings& settings) {
  std::string bytes = hub::read_range(file, 0, std::min(kFirstRead, file.size), settings);
  for (;;) {
    const uint64_t need = engine::gguf_header_bytes_needed(bytes, file.url);
    if (need == 0 || need > file.size || bytes.size() >= file.size) break;
    const uint64_t more = std::max<uint64_t>(need, bytes.size() * 2) - bytes.size();
    const std::string next = hub::read_range(file, bytes.size(), more, settings);
    if (next.empty()) break;
    bytes += next;
  }
  return engine::inspect_gguf_header(bytes, file.size, file.url);
}

// whisper.cpp's header is 48 bytes; the shape check reads a file, so the prefix is staged in one.
engine::SpeechModelShape remote_whisper(const hub::RemoteFile& file,
                                        const hub::HubSettings& settings) {
  const std::string head = hub::read_range(file, 0, 48, settings);
  const auto tmp =
      fs::temp_directory_path() / ("mmserve-plan-" + std::to_string(::getpid()) + ".bin");
  std::ofstream(tmp, std::ios::binary) << head;
  std::optional<engine::SpeechModelShape> shape;
  try {
    shape = engine::check_speech_model_file(tmp.string(), "--whisper-model");
  } catch (const Error&) {
    fs::remove(tmp);
    throw Error(ErrorCode::kModelLoad, file.url + " is not a whisper.cpp speech model (ggml-*.bin)",
                "--whisper-model");
  }
  fs::remove(tmp);
  shape->file_bytes = static_cast<int64_t>(file.size);
  return *shape;
}

struct Models {
  std::vector<std::string> names;
  engine::PlanInput input;
};

Models read_models(const ArgParser& p) {
  Models m;
  std::optional<hub::HubSettings> settings;
  auto hub_settings = [&]() -> const hub::HubSettings& {
    if (!settings) settings = hub::HubSettings::from_environment();
    return *settings;
  };
  std::string model = p.get("--model");
  if (model.empty() && !p.positionals().empty()) model = p.positionals().front();
  if (p.positionals().size() > 1) {
    throw Error(ErrorCode::kInvalidInput, "plan takes one MODEL; got " + p.positionals()[1],
                "model");
  }
  if (!model.empty()) {
    if (looks_like_ref(model) && !fs::exists(model)) {
      const auto files = hub::resolve(model, hub_settings());
      m.input.text = remote_gguf(first_file(files, model, "model"), hub_settings());
      // A Hub repository with a projector: plan it too unless --mmproj names one.
      if (files.size() > 1 && !p.has("--mmproj") && files[1].size > 0) {
        m.input.projector = remote_gguf(files[1], hub_settings());
      }
    } else {
      m.input.text = engine::inspect_gguf(model);
    }
    if (m.input.text->architecture == "clip") {
      throw Error(ErrorCode::kInvalidInput,
                  model + " is a multimodal projector; pass it with --mmproj beside its model",
                  "model");
    }
    m.names.push_back(m.input.text->path);
  }
  if (p.has("--mmproj")) {
    if (!m.input.text) {
      throw Error(ErrorCode::kInvalidInput, "--mmproj needs the text MODEL it projects into",
                  "--mmproj");
    }
    const std::string ref = p.get("--mmproj");
    if (looks_like_ref(ref) && !fs::exists(ref)) {
      m.input.projector = remote_gguf(
          first_file(hub::resolve(ref, hub_settings()), ref, "--mmproj"), hub_settings());
    } else {
      if (!fs::exists(ref)) {
        throw Error(ErrorCode::kNotFound, "projector file not found: " + ref, "--mmproj");
      }
      m.input.projector = engine::inspect_gguf(ref);
    }
  }
  if (m.input.projector) {
    if (m.input.projector->architecture != "clip") {
      throw Error(ErrorCode::kInvalidInput,
                  "--mmproj " + m.input.projector->path + " is a '" +
                      m.input.projector->architecture + "' model, not a multimodal projector",
                  "--mmproj");
    }
    m.names.push_back(m.input.projector->path);
  }
  if (p.has("--whisper-model")) {
    const std::string ref = p.get("--whisper-model");
    if (looks_like_ref(ref) && !fs::exists(ref)) {
      const auto files = hub::resolve(ref, hub_settings());
      m.input.speech = remote_whisper(first_file(files, ref, "--whisper-model"), hub_settings());
    } else {
      m.input.speech = engine::check_speech_model_file(ref, "--whisper-model");
    }
    m.names.push_back(ref);
  }
  if (m.names.empty()) {
    throw Error(ErrorCode::kInvalidInput,
                "plan needs a MODEL (file or Hub REF) or --whisper-model; see mmserve plan --help",
                "model");
  }
  return m;
}

int positive_option(const ArgParser& p, const std::string& name, int fallback, int minimum) {
  const int v = p.get_int(name, fallback);
  if (v < minimum) {
    throw Error(
        ErrorCode::kInvalidInput,
        name + " must be at least " + std::to_string(minimum) + ", got " + std::to_string(v), name);
  }
  return v;
}

// The GPUs llama.cpp would use: the discrete ones, else the first integrated one.
std::vector<uint64_t> usable_gpus(const engine::HardwareInfo& hw) {
  std::vector<uint64_t> free;
  for (const auto& g : hw.gpus) {
    if (g.type == "gpu") free.push_back(g.free_bytes);
  }
  if (free.empty()) {
    for (const auto& g : hw.gpus) {
      if (g.type == "igpu") return {g.free_bytes};
    }
  }
  return free;
}

nlohmann::json plan_json(const engine::MemoryPlan& plan) {
  nlohmann::json components = nlohmann::json::array();
  for (const auto& c : plan.components) {
    components.push_back(
        {{"name", c.name}, {"ram", c.ram}, {"ram_at_load", c.ram_at_load}, {"gpu", c.gpu}});
  }
  return {{"components", components},
          {"n_ctx", plan.n_ctx},
          {"n_batch", plan.n_batch},
          {"gpu_layers", plan.gpu_layers},
          {"kv_bytes_per_token", plan.kv_bytes_per_token},
          {"total", {{"ram", plan.ram}, {"ram_at_load", plan.ram_at_load}, {"gpu", plan.gpu}}}};
}

nlohmann::json hardware_json(const engine::HardwareInfo& hw) {
  nlohmann::json gpus = nlohmann::json::array();
  for (const auto& g : hw.gpus) {
    gpus.push_back({{"name", g.name},
                    {"description", g.description},
                    {"type", g.type},
                    {"free", g.free_bytes},
                    {"total", g.total_bytes}});
  }
  return {{"ram_total", hw.ram_total},       {"ram_available", hw.ram_available},
          {"cgroup_limit", hw.cgroup_limit}, {"usable_ram", hw.usable_ram()},
          {"cpu_cores", hw.cpu_cores},       {"gpus", gpus}};
}

void print_plan(const engine::MemoryPlan& plan, const engine::PlanInput& in) {
  std::printf("%-22s %12s", "component", "RAM");
  for (size_t g = 0; g < plan.gpu.size(); ++g) std::printf(" %11s%zu", "GPU", g);
  std::printf("\n");
  for (const auto& c : plan.components) {
    std::printf("%-22s %12s", c.name.c_str(), human_bytes(c.ram).c_str());
    for (const uint64_t b : c.gpu) std::printf(" %12s", human_bytes(b).c_str());
    std::printf("\n");
  }
  std::printf("%-22s %12s", "total (peak)", human_bytes(plan.ram).c_str());
  for (const uint64_t b : plan.gpu) std::printf(" %12s", human_bytes(b).c_str());
  std::printf("\n%-22s %12s\n", "resident after load", human_bytes(plan.ram_at_load).c_str());
  if (in.text) {
    std::printf("kv cache: %s per token, %d cells (parallel %d), batch %d",
                human_bytes(plan.kv_bytes_per_token).c_str(), plan.n_ctx, std::max(1, in.parallel),
                plan.n_batch);
    if (!plan.gpu.empty()) std::printf(", %d layers on GPU", plan.gpu_layers);
    std::printf("\n");
  }
}

void print_hardware(const engine::HardwareInfo& hw) {
  std::printf("hardware: RAM %s total, %s available", human_bytes(hw.ram_total).c_str(),
              human_bytes(hw.ram_available).c_str());
  if (hw.cgroup_limit > 0) {
    std::printf(", cgroup limit %s (%s used)", human_bytes(hw.cgroup_limit).c_str(),
                human_bytes(hw.cgroup_usage).c_str());
  }
  std::printf("; %d CPU cores\n", hw.cpu_cores);
  if (hw.gpus.empty()) std::printf("  no GPU (ggml found none): CPU only\n");
  for (const auto& g : hw.gpus) {
    std::printf("  %s (%s, %s): %s free of %s\n", g.name.c_str(), g.description.c_str(),
                g.type.c_str(), human_bytes(g.free_bytes).c_str(),
                human_bytes(g.total_bytes).c_str());
  }
}

std::string needs_line(const engine::MemoryPlan& plan, uint64_t ram_budget,
                       const std::vector<uint64_t>& gpu_free) {
  std::string s = "needs " + human_bytes(plan.ram) + " RAM, has " + human_bytes(ram_budget);
  for (size_t g = 0; g < plan.gpu.size(); ++g) {
    s += "; GPU" + std::to_string(g) + " needs " + human_bytes(plan.gpu[g]) + ", has " +
         human_bytes(gpu_free[g]);
  }
  return s;
}

int run_scenarios(bool json) {
  nlohmann::json rows = nlohmann::json::array();
  const std::vector<uint64_t> one_gpu = {~uint64_t{0} / 2};
  auto size = [&](engine::PlanInput in, bool gpu, double headroom) {
    in.gpu_free = gpu ? one_gpu : std::vector<uint64_t>{};
    const auto plan = engine::plan_memory(in);
    const auto scale = [&](uint64_t b) { return static_cast<uint64_t>(b * headroom); };
    return std::pair{scale(plan.ram), gpu ? scale(plan.gpu[0]) : 0};
  };
  if (!json) {
    std::printf("Sizing from published model shapes (not measurements; see docs/sizing.md).\n");
    std::printf("%-17s %-58s %-18s %11s %11s %11s\n", "scenario", "models", "config", "CPU RAM",
                "GPU VRAM", "+host RAM");
  }
  for (const auto& s : engine::sizing_scenarios()) {
    for (int level = 0; level < 2; ++level) {
      const auto& in = level == 0 ? s.minimum : s.recommended;
      const double headroom = level == 0 ? 1.0 : engine::kRecommendedHeadroom;
      const auto [cpu_ram, unused] = size(in, false, headroom);
      const auto [host_ram, vram] = size(in, true, headroom);
      const std::string config = std::string(level == 0 ? "min" : "rec") + " np " +
                                 std::to_string(in.parallel) + " ctx " +
                                 std::to_string(in.ctx_size / 1024) + "K";
      rows.push_back({{"scenario", s.name},
                      {"models", s.models},
                      {"level", level == 0 ? "minimum" : "recommended"},
                      {"parallel", in.parallel},
                      {"ctx_size", in.ctx_size},
                      {"speech_parallel", in.speech ? in.speech_parallel : 0},
                      {"headroom", headroom},
                      {"cpu_only_ram", cpu_ram},
                      {"gpu_vram", vram},
                      {"gpu_host_ram", host_ram}});
      if (!json) {
        std::printf("%-17s %-58s %-18s %11s %11s %11s\n", s.name.c_str(), s.models.c_str(),
                    config.c_str(), human_bytes(cpu_ram).c_str(), human_bytes(vram).c_str(),
                    human_bytes(host_ram).c_str());
      }
    }
  }
  if (json) {
    std::cout << nlohmann::json{{"source", "published shapes, not measurements"},
                                {"scenarios", rows}}
                     .dump(2)
              << "\n";
  } else {
    std::printf(
        "min: parallel 1, 8K context, 1 whisper state, no headroom; rec: parallel 4 (8 "
        "for the 8B), 32K context (64K), 2 whisper states, +20%% headroom.\n");
  }
  return 0;
}

}  // namespace

int run_plan(const std::vector<std::string>& args) {
  ArgParser p({"-m|--model", "--mmproj", "--whisper-model", "-np|--parallel", "-c|--ctx-size",
               "-b|--batch-size", "-ngl|--gpu-layers", "--speech-parallel"},
              {"--json", "--scenarios", "-h|--help"});
  p.parse(args);
  if (p.flag("--help")) {
    std::cout
        << "usage: mmserve plan [MODEL|REF] [--mmproj F|REF] [--whisper-model F|REF]\n"
           "                    [--parallel N] [--ctx-size N] [--batch-size N] [--gpu-layers N]\n"
           "                    [--speech-parallel N] [--json]\n"
           "       mmserve plan --scenarios [--json]\n"
           "The memory a serving configuration needs (weights, KV cache, compute buffers,\n"
           "projector, whisper states) on RAM and on each GPU, the detected hardware, whether it\n"
           "fits and, when not, a --parallel/--ctx-size/--gpu-layers that does. Only the models'\n"
           "headers are read: of local files, or of Hub REFs (hf:OWNER/REPO[:QUANT], "
           "whisper:NAME,\n"
           "URLs) by HTTP range requests. Options mean what they mean to `mmserve serve`.\n"
           "--scenarios: minimum and recommended hardware for real models from published shapes.\n";
    return 0;
  }
  if (p.flag("--scenarios")) return run_scenarios(p.flag("--json"));

  Models models = read_models(p);
  auto& in = models.input;
  in.parallel = positive_option(p, "--parallel", 4, 1);
  in.ctx_size = positive_option(p, "--ctx-size", 0, 0);
  in.batch_size = positive_option(p, "--batch-size", 512, 1);
  in.gpu_layers = positive_option(p, "--gpu-layers", -1, -1);
  in.speech_parallel = positive_option(p, "--speech-parallel", 2, 1);
  // An embedding model is served as one (see serve): its own context, no generation slots.
  if (in.text && engine::embedding_facts(*in.text).is_embedding_model) {
    engine::plan_as_embedding(in, in.ctx_size, in.batch_size);
  }

  const auto hw = engine::detect_hardware();
  in.gpu_free = usable_gpus(hw);
  const uint64_t budget = hw.usable_ram();
  const auto plan = engine::plan_memory(in);
  const bool fits = engine::plan_fits(plan, budget, in.gpu_free);
  std::optional<engine::PlanSuggestion> suggestion;
  if (!fits) suggestion = engine::suggest_fitting(in, budget);

  if (p.flag("--json")) {
    nlohmann::json j = {{"models", models.names},
                        {"config",
                         {{"parallel", in.parallel},
                          {"ctx_size", in.ctx_size},
                          {"batch_size", in.batch_size},
                          {"gpu_layers", in.gpu_layers},
                          {"speech_parallel", in.speech_parallel}}},
                        {"plan", plan_json(plan)},
                        {"hardware", hardware_json(hw)},
                        {"fits", fits},
                        {"suggestion", nullptr}};
    if (suggestion) {
      j["suggestion"] = {{"parallel", suggestion->parallel},
                         {"ctx_size", suggestion->ctx_size},
                         {"gpu_layers", suggestion->gpu_layers},
                         {"batch_size", suggestion->batch_size},
                         {"plan", plan_json(suggestion->plan)}};
    }
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  for (const auto& name : models.names) std::printf("model: %s\n", name.c_str());
  print_plan(plan, in);
  print_hardware(hw);
  std::printf("fits: %s (%s)\n", fits ? "yes" : "no",
              needs_line(plan, budget, in.gpu_free).c_str());
  if (!fits && suggestion) {
    std::printf("suggested: --parallel %d --ctx-size %d", suggestion->parallel,
                suggestion->ctx_size);
    if (!in.gpu_free.empty()) std::printf(" --gpu-layers %d", suggestion->gpu_layers);
    if (suggestion->batch_size != in.batch_size) {
      std::printf(" --batch-size %d", suggestion->batch_size);
    }
    std::printf(" (%s)\n", needs_line(suggestion->plan, budget, in.gpu_free).c_str());
  } else if (!fits) {
    std::printf("suggested: none fits: the weights alone need more than this machine has\n");
  }
  return 0;
}

}  // namespace mmserve::cli
