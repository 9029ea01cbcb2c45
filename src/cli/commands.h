// The mmserve subcommands. Each takes the arguments after its name and returns the exit code;
// errors are thrown as mmserve::Error and printed by main.
#pragma once

#include <string>
#include <vector>

namespace mmserve::cli {

int run_audit(const std::vector<std::string>& args);
int run_dataset(const std::vector<std::string>& args);  // store/capture_store.h
int run_describe(const std::vector<std::string>& args);
int run_finetune(const std::vector<std::string>& args);  // engine/finetune.h
int run_generate(const std::vector<std::string>& args);
int run_healthcheck(const std::vector<std::string>& args);
int run_info(const std::vector<std::string>& args);
int run_plan(const std::vector<std::string>& args);
int run_keys(const std::vector<std::string>& args);
int run_list(const std::vector<std::string>& args);
int run_pull(const std::vector<std::string>& args);
int run_rm(const std::vector<std::string>& args);
int run_quantize(const std::vector<std::string>& args);
int run_scan(const std::vector<std::string>& args);
int run_serve(const std::vector<std::string>& args);
int run_synth(const std::vector<std::string>& args);
int run_synth_llm(const std::vector<std::string>& args);      // `synth llm`
int run_synth_lora(const std::vector<std::string>& args);     // `synth lora`
int run_synth_embed(const std::vector<std::string>& args);    // `synth embed`
int run_synth_vlm(const std::vector<std::string>& args);      // `synth vlm`
int run_synth_whisper(const std::vector<std::string>& args);  // `synth whisper`
int run_transcribe(const std::vector<std::string>& args);
void print_version();

}  // namespace mmserve::cli
