// warnings.cpp: process-wide warning handler, guarded by a mutex so that a handler swap in a test
// never races a warning raised on a worker thread.
#include "cache/warnings.hpp"

#include <cstdio>
#include <mutex>

namespace ttt::cache {
namespace {

std::mutex& handler_mutex() {
  static std::mutex m;
  return m;
}

WarningHandler& handler_slot() {
  static WarningHandler h;
  return h;
}

}  // namespace

WarningHandler set_warning_handler(WarningHandler handler) {
  std::lock_guard lock(handler_mutex());
  WarningHandler previous = std::move(handler_slot());
  handler_slot() = std::move(handler);
  return previous;
}

void warn(const std::string& message) {
  const std::string text = "tttc cache: warning: " + message;
  std::lock_guard lock(handler_mutex());
  if (handler_slot()) {
    handler_slot()(text);
  } else {
    std::fprintf(stderr, "%s\n", text.c_str());
    std::fflush(stderr);
  }
}

}  // namespace ttt::cache
