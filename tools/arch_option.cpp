// arch_option.cpp: the --arch option shared by compile, emit and cache explain. Kept apart from
// cli_common.cpp (which needs the JIT) so that command files tested on their own can use it.
#include "tools/cli_common.hpp"

namespace ttt::cli {

CLI::Option* add_arch_option(CLI::App& cmd, std::string& arch) {
  return cmd
      .add_option("--arch", arch,
                  "GPU architecture: sm_80, sm_86, sm_89, sm_90, sm_90a, ... (default: the GPU "
                  "present, else sm_90a)")
      ->type_name("ARCH")
      ->check(CLI::Validator(
          [](std::string& value) -> std::string {
            return value.empty() ? "must not be empty (leave --arch out for the default)" : "";
          },
          "", "non-empty"));
}

}  // namespace ttt::cli
