// Download progress on stderr: on a terminal one line redrawn with '\r' (percent, bytes, rate,
// ETA) at most 10 times a second; otherwise (a pipe, a log) a plain line every 10% or 5 s.
// One Progress per file; not thread-safe (the transfer's thread alone updates it).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include "core/human_units.h"

namespace mmserve::hub {

using mmserve::human_bytes;  // core/human_units.h
using mmserve::human_duration;

class Progress {
 public:
  // `total` 0: not known. `already` bytes were there before (a resumed partial).
  Progress(std::string name, uint64_t total, uint64_t already, std::FILE* out = stderr);
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void update(uint64_t done);   // bytes of the file now present
  void restart(uint64_t done);  // the count went back (the server ignored Range)
  void finish(uint64_t done);   // last line, ends the redrawn line on a terminal
  void break_line();            // before another message: ends a redrawn line

 private:
  using Clock = std::chrono::steady_clock;
  std::string line(uint64_t done) const;

  std::string name_;
  uint64_t total_;
  uint64_t start_bytes_;
  std::FILE* out_;
  bool tty_;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_draw_{};
  int last_decile_ = -1;
  size_t last_width_ = 0;
};

}  // namespace mmserve::hub
