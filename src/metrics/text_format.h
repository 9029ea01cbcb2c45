// The pieces of the Prometheus text exposition format (version 0.0.4) that need care: metric
// and label name rules, escaping of label values and help text, and number formatting.
// Reference: https://prometheus.io/docs/instrumenting/exposition_formats/
// Stateless and thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace mmserve::metrics {

// The Content-Type of a /metrics response in this format.
inline constexpr const char* kTextContentType = "text/plain; version=0.0.4; charset=utf-8";

// [a-zA-Z_:][a-zA-Z0-9_:]*
bool is_valid_metric_name(std::string_view name);
// [a-zA-Z_][a-zA-Z0-9_]*, and not starting with "__" (reserved for Prometheus itself).
bool is_valid_label_name(std::string_view name);

// Label values: backslash, double quote and line feed become \\, \" and \n.
std::string escape_label_value(std::string_view value);
// HELP text: backslash and line feed become \\ and \n (quotes stay as they are).
std::string escape_help(std::string_view text);

// Shortest text that parses back to the same double; "+Inf", "-Inf" and "NaN" as Prometheus
// spells them.
std::string format_value(double value);

}  // namespace mmserve::metrics
