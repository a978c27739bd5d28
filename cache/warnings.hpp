// warnings.hpp: the one channel through which the cache reports problems it recovers from
// (corrupt entries, unwritable directories). Defaults to stderr; tests and embedding programs
// install their own handler.
#pragma once

#include <functional>
#include <string>

namespace ttt::cache {

using WarningHandler = std::function<void(const std::string& message)>;

// Installs `handler` (an empty handler restores the stderr default) and returns the previous one.
// Process-wide and thread-safe; handlers may be called from any thread.
WarningHandler set_warning_handler(WarningHandler handler);

// Sends "tttc cache: warning: <message>" to the current handler.
void warn(const std::string& message);

}  // namespace ttt::cache
