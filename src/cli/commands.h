// The mmserve subcommands. Each takes the arguments after its name and returns the exit code;
// errors are thrown as mmserve::Error and printed by main.
#pragma once

#include <string>
#include <vector>

namespace mmserve::cli {

int run_generate(const std::vector<std::string>& args);
int run_info(const std::vector<std::string>& args);
int run_serve(const std::vector<std::string>& args);
void print_version();

}  // namespace mmserve::cli
