#include "http/log_sink.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <deque>
#include <thread>

#include "core/thread_annotations.h"

namespace mmserve::http {

struct LogSink::State {
  const int fd;
  const size_t capacity;
  Mutex mutex;
  CondVar changed;
  std::deque<std::string> queue GUARDED_BY(mutex);
  bool writing GUARDED_BY(mutex) = false;  // a line is being written
  bool closed GUARDED_BY(mutex) = false;   // the LogSink is gone
  std::atomic<uint64_t> dropped{0};

  State(int f, size_t c) : fd(f), capacity(c) {}

  void write_all(const std::string& bytes) const {
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // a closed or broken stderr: the line is lost, nothing else to do
      done += static_cast<size_t>(n);
    }
  }

  static void run(const std::shared_ptr<State>& self) {
    MutexLock lock(self->mutex);
    for (;;) {
      while (self->queue.empty() && !self->closed) {
        self->changed.wait(self->mutex);
      }
      if (self->queue.empty()) return;  // closed and drained
      // Take everything waiting and write it with as few system calls as possible.
      std::string batch;
      while (!self->queue.empty()) {
        batch += self->queue.front();
        self->queue.pop_front();
      }
      self->writing = true;
      lock.unlock();
      self->write_all(batch);
      lock.lock();
      self->writing = false;
      self->changed.notify_all();
    }
  }
};

LogSink::LogSink(int fd, size_t capacity) : state_(std::make_shared<State>(fd, capacity)) {
  std::thread([state = state_] { State::run(state); }).detach();
}

LogSink::~LogSink() {
  {
    MutexLock lock(state_->mutex);
    state_->closed = true;
  }
  state_->changed.notify_all();
}

LogSink& LogSink::standard_error() {
  static LogSink* sink = new LogSink(STDERR_FILENO, 10000);  // never destroyed: see the header
  return *sink;
}

void LogSink::write_line(std::string line) {
  line += '\n';
  {
    MutexLock lock(state_->mutex);
    if (state_->queue.size() >= state_->capacity) {
      state_->dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    state_->queue.push_back(std::move(line));
  }
  state_->changed.notify_all();
}

bool LogSink::flush(std::chrono::milliseconds timeout) {
  MutexLock lock(state_->mutex);
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (!(state_->queue.empty() && !state_->writing)) {
    if (state_->changed.wait_until(state_->mutex, until) == std::cv_status::timeout) {
      return state_->queue.empty() && !state_->writing;
    }
  }
  return true;
}

uint64_t LogSink::dropped() const {
  return state_->dropped.load(std::memory_order_relaxed);
}

}  // namespace mmserve::http
