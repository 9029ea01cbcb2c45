// Clang's thread-safety annotations, and a mutex they can be checked against.
//
// Shared state says which mutex guards it (GUARDED_BY) and helpers say which mutex they expect
// held (REQUIRES); clang's -Wthread-safety then proves at compile time that every access holds
// it. `make check-thread-safety` (preset thread-safety, clang-14) turns violations into errors.
// Under GCC the macros expand to nothing: the code is the same, only unchecked.
//
// Why a wrapper: libstdc++'s std::mutex, std::lock_guard and std::unique_lock carry no
// annotations, so the analysis cannot see them acquire anything. Mutex, MutexLock and CondVar
// below are thin, inline wrappers over the std types, annotated; they add no cost.
//
// Usage:
//   mutable Mutex mutex_;
//   int count_ GUARDED_BY(mutex_) = 0;
//   void bump_locked() REQUIRES(mutex_);
//   ...
//   MutexLock lock(mutex_);              // held until the end of the scope
//   while (count_ == 0) changed_.wait(mutex_);
//
// Waiting on a predicate: CondVar has no predicate overloads, because the analysis does not know
// that a predicate lambda runs with the mutex held (it checks a lambda's body on its own). Write
// the loop instead; it is how the standard defines the predicate forms.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define MMSERVE_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define MMSERVE_THREAD_ANNOTATION(x)  // GCC has no thread-safety analysis
#endif

// A type that is a lock (a mutex); `x` names the kind in diagnostics.
#define CAPABILITY(x) MMSERVE_THREAD_ANNOTATION(capability(x))
// An RAII type that holds a capability for its lifetime (MutexLock).
#define SCOPED_CAPABILITY MMSERVE_THREAD_ANNOTATION(scoped_lockable)
// A data member that may be read or written only with `x` held.
#define GUARDED_BY(x) MMSERVE_THREAD_ANNOTATION(guarded_by(x))
// A pointer member whose pointee may be accessed only with `x` held.
#define PT_GUARDED_BY(x) MMSERVE_THREAD_ANNOTATION(pt_guarded_by(x))
// A function that must be called with these held (and returns with them still held).
#define REQUIRES(...) MMSERVE_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
// A function that acquires / releases these (no argument: the object itself, or for a scoped
// capability, what it holds).
#define ACQUIRE(...) MMSERVE_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) MMSERVE_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
// A function that acquires these when it returns `result` (try_lock).
#define TRY_ACQUIRE(...) MMSERVE_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
// A function that must not be called with these held (it takes them itself).
#define EXCLUDES(...) MMSERVE_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
// A function that returns a reference to the capability `x` (an accessor for a mutex).
#define RETURN_CAPABILITY(x) MMSERVE_THREAD_ANNOTATION(lock_returned(x))
// Turns the analysis off for one function: only where it cannot follow a correct pattern, with
// a comment saying why.
#define NO_THREAD_SAFETY_ANALYSIS MMSERVE_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace mmserve {

class CondVar;

// std::mutex, annotated as a capability. Not recursive; not movable.
class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() ACQUIRE() { mutex_.lock(); }
  void unlock() RELEASE() { mutex_.unlock(); }
  bool try_lock() TRY_ACQUIRE(true) { return mutex_.try_lock(); }

 private:
  friend class CondVar;
  std::mutex mutex_;
};

// Holds a Mutex from construction to the end of the scope, like std::lock_guard. unlock() and
// lock() release it for a stretch (a call that must not run under the lock) and take it back;
// the destructor releases it only if held.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mutex) ACQUIRE(mutex) : mutex_(mutex) { mutex_.lock(); }
  ~MutexLock() RELEASE() {
    if (locked_) {
      mutex_.unlock();
    }
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void unlock() RELEASE() {
    mutex_.unlock();
    locked_ = false;
  }
  void lock() ACQUIRE() {
    mutex_.lock();
    locked_ = true;
  }

 private:
  Mutex& mutex_;
  bool locked_ = true;
};

// Releases a held Mutex from construction to the end of the scope, then takes it back, also
// when an exception leaves the scope. For a function that REQUIRES the mutex and must run a
// stretch without it (a model load).
class SCOPED_CAPABILITY MutexUnlock {
 public:
  explicit MutexUnlock(Mutex& mutex) RELEASE(mutex) : mutex_(mutex) { mutex_.unlock(); }
  ~MutexUnlock() RELEASE() { mutex_.lock(); }  // the analysis reads this as "re-acquires"
  MutexUnlock(const MutexUnlock&) = delete;
  MutexUnlock& operator=(const MutexUnlock&) = delete;

 private:
  Mutex& mutex_;
};

// std::condition_variable over a Mutex. Each wait must be called with `mutex` held (checked);
// it releases it while blocked and holds it again when it returns, as std::condition_variable
// does. Spurious wake-ups happen: wait in a loop on the condition.
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  void wait(Mutex& mutex) REQUIRES(mutex) {
    Adopted held(mutex);
    cv_.wait(held.lock);
  }
  template <class Clock, class Duration>
  std::cv_status wait_until(Mutex& mutex, const std::chrono::time_point<Clock, Duration>& until)
      REQUIRES(mutex) {
    Adopted held(mutex);
    return cv_.wait_until(held.lock, until);
  }
  template <class Rep, class Period>
  std::cv_status wait_for(Mutex& mutex, const std::chrono::duration<Rep, Period>& timeout)
      REQUIRES(mutex) {
    Adopted held(mutex);
    return cv_.wait_for(held.lock, timeout);
  }

  void notify_one() noexcept { cv_.notify_one(); }
  void notify_all() noexcept { cv_.notify_all(); }

 private:
  // std::condition_variable waits on a std::unique_lock: this one adopts the caller's hold on
  // the mutex and gives it back un-released, however the wait ends.
  struct Adopted {
    explicit Adopted(Mutex& mutex) : lock(mutex.mutex_, std::adopt_lock) {}
    ~Adopted() { lock.release(); }
    Adopted(const Adopted&) = delete;
    Adopted& operator=(const Adopted&) = delete;
    std::unique_lock<std::mutex> lock;
  };

  std::condition_variable cv_;
};

}  // namespace mmserve
