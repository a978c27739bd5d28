// version.cpp: `tttc --version`: what a bug report needs to reproduce a build: the tttc version,
// the NVRTC it compiles with, a hash of the embedded device templates and the cache formats
// (a change in any of them means different kernels or cache keys).
#include <fmt/format.h>

#include <string>

#include "autotune/fingerprint.hpp"
#include "cache/entry_format.hpp"
#include "cache/key.hpp"
#include "compiler/nvrtc_backend.hpp"
#include "templates/embedded.hpp"
#include "tools/cli_common.hpp"

#ifndef TTTC_VERSION
#error "TTTC_VERSION must be defined by the build (tools/CMakeLists.txt)"
#endif

namespace ttt::cli {

std::string version_text() {
  std::string nvrtc;
  try {
    nvrtc = nvrtc::version();
  } catch (const std::exception& e) {
    nvrtc = std::string("unavailable (") + e.what() + ")";
  }
  return fmt::format(
      "tttc {}\nNVRTC {}\ntemplates sha256 {} ({} headers)\ncache key format {}, entry format "
      "{}",
      TTTC_VERSION, nvrtc, autotune::templates_hash(), templates::headers().size(),
      cache::KeyInputs{}.key_format, cache::kEntryFormatVersion);
}

}  // namespace ttt::cli
