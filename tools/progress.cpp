// progress.cpp: terminal-only progress lines (see progress.hpp).
#include "tools/progress.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace ttt::cli {

bool show_progress() {
  static const bool tty = ::isatty(STDERR_FILENO) == 1;
  return tty;
}

void progress_step(std::size_t index, std::size_t count, const std::string& what) {
  if (!show_progress()) return;
  fmt::print(stderr, "\r\033[K[{}/{}] {}", index, count, what);
  std::fflush(stderr);
}

void progress_done() {
  if (!show_progress()) return;
  fmt::print(stderr, "\r\033[K");
  std::fflush(stderr);
}

Ticker::Ticker(std::string what) : what_(std::move(what)) {
  if (!show_progress()) return;
  thread_ = std::thread([this] {
    const auto start = std::chrono::steady_clock::now();
    std::unique_lock lock(mutex_);
    // The first second is silent: short steps should not flicker.
    while (!cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; })) {
      const auto s = std::chrono::duration_cast<std::chrono::seconds>(
          std::chrono::steady_clock::now() - start);
      fmt::print(stderr, "\r\033[K{}... {} s", what_, s.count());
      std::fflush(stderr);
    }
  });
}

Ticker::~Ticker() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  progress_done();
}

}  // namespace ttt::cli
