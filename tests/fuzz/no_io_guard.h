// A guard for the harnesses whose code under test must only read the bytes it is given: while a
// NoIoScope is alive on a thread, that thread opening a file, a socket or a DNS lookup aborts the
// process (a libFuzzer crash naming the call). The calls are interposed in the harness executable
// (no_io_guard.cpp), so they also catch the uninstrumented shared libraries (FFmpeg, httplib).
#pragma once

namespace mmserve::fuzz {

class NoIoScope {
 public:
  NoIoScope();
  ~NoIoScope();
  NoIoScope(const NoIoScope&) = delete;
  NoIoScope& operator=(const NoIoScope&) = delete;
};

}  // namespace mmserve::fuzz
