// Writes log lines to a file descriptor (stderr) from a background thread, so that a slow or
// full stderr (a pipe nobody reads, a stalled log shipper) never blocks a request. When more
// than `capacity` lines are waiting, new lines are dropped and counted instead.
//
// Ownership: the writer thread shares the queue with the LogSink and is detached, so neither a
// LogSink's destruction nor process exit waits for a write that cannot complete. Threading:
// every method is thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace mmserve::http {

class LogSink {
 public:
  LogSink(int fd, size_t capacity);
  ~LogSink();  // lines still queued are written by the writer thread if it can
  LogSink(const LogSink&) = delete;
  LogSink& operator=(const LogSink&) = delete;

  // The process-wide sink on stderr (fd 2), created on first use, never destroyed.
  static LogSink& standard_error();

  // Queues `line` plus a line feed; never waits for I/O.
  void write_line(std::string line);
  // Waits up to `timeout` until every queued line is written; false on timeout.
  bool flush(std::chrono::milliseconds timeout);
  uint64_t dropped() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace mmserve::http
