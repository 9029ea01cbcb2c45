// Progress lines and bars for `mmserve pull` (see progress.h).
#include "hub/progress.h"

#include <unistd.h>

#include <algorithm>

namespace mmserve::hub {

Progress::Progress(std::string name, uint64_t total, uint64_t already, std::FILE* out)
    : name_(std::move(name)),
      total_(total),
      start_bytes_(already),
      out_(out),
      tty_(::isatty(::fileno(out)) != 0) {
  if (total_ > 0) last_decile_ = static_cast<int>(already * 10 / total_);
}

std::string Progress::line(uint64_t done) const {
  const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  const double rate = elapsed > 0 && done > start_bytes_ ? (done - start_bytes_) / elapsed : 0;
  std::string s = name_ + " ";
  char buf[64];
  if (total_ > 0) {
    const double frac = std::min(1.0, static_cast<double>(done) / total_);
    std::snprintf(buf, sizeof(buf), "%3d%% ", static_cast<int>(frac * 100));
    s += buf;
    if (tty_) {
      const int width = 24, filled = static_cast<int>(frac * width);
      s += "[" + std::string(filled, '=') + std::string(width - filled, ' ') + "] ";
    }
    s += human_bytes(done) + " / " + human_bytes(total_);
  } else {
    s += human_bytes(done);
  }
  if (rate > 0) {
    s += "  " + human_bytes(static_cast<uint64_t>(rate)) + "/s";
    if (total_ > done) s += "  ETA " + human_duration((total_ - done) / rate);
  }
  return s;
}

void Progress::update(uint64_t done) {
  const auto now = Clock::now();
  if (tty_) {
    if (now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    const std::string s = line(done);
    std::fprintf(out_, "\r%s%s", s.c_str(),
                 std::string(last_width_ > s.size() ? last_width_ - s.size() : 0, ' ').c_str());
    last_width_ = s.size();
    std::fflush(out_);
    return;
  }
  const int decile = total_ > 0 ? static_cast<int>(done * 10 / total_) : -1;
  if (decile > last_decile_ || now - last_draw_ >= std::chrono::seconds(5)) {
    if (last_draw_ == Clock::time_point{} && decile == last_decile_) {
      last_draw_ = now;  // the first call only starts the 5 s clock
      return;
    }
    last_decile_ = std::max(decile, last_decile_);
    last_draw_ = now;
    if (total_ == 0 || done < total_) std::fprintf(out_, "%s\n", line(done).c_str());
  }
}

void Progress::restart(uint64_t done) {
  start_ = Clock::now();
  start_bytes_ = done;
  last_decile_ = total_ > 0 ? static_cast<int>(done * 10 / total_) : -1;
}

void Progress::break_line() {
  if (tty_ && last_width_ > 0) {
    std::fputc('\n', out_);
    last_width_ = 0;
  }
}

void Progress::finish(uint64_t done) {
  const std::string s = line(done);
  if (tty_) {
    std::fprintf(out_, "\r%s%s\n", s.c_str(),
                 std::string(last_width_ > s.size() ? last_width_ - s.size() : 0, ' ').c_str());
  } else {
    std::fprintf(out_, "%s\n", s.c_str());
  }
  std::fflush(out_);
}

}  // namespace mmserve::hub
