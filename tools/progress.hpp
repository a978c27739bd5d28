// progress.hpp: progress for long operations, shown only when stderr is a terminal (logs and
// pipes get the normal line-by-line output instead of carriage-return animations).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace ttt::cli {

// True when progress should be drawn (stderr is a terminal).
bool show_progress();

// "[3/10] compiling examples/mlp2.json" on one self-overwriting stderr line; cleared by done().
void progress_step(std::size_t index, std::size_t count, const std::string& what);
void progress_done();

// While alive, redraws "<what>... 12 s" on stderr once a second (terminal only): for single long
// steps such as the CPU reference on a large shape. Clears the line when destroyed.
class Ticker {
 public:
  explicit Ticker(std::string what);
  ~Ticker();
  Ticker(const Ticker&) = delete;
  Ticker& operator=(const Ticker&) = delete;

 private:
  std::string what_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace ttt::cli
