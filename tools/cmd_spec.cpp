// cmd_spec.cpp: `tttc spec FILE... [--json]`, the command-line face of the spec language. It
// validates spec files and prints each one's canonical form and signature (the cache key's
// spec part), so users can check a spec and see exactly what a kernel will be built for.
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compiler/spec.hpp"
#include "tools/cli_common.hpp"

namespace ttt::cli {
namespace {

struct SpecOptions {
  std::vector<std::string> files;
  bool json = false;
};

void run_spec(const SpecOptions& opt) {
  nlohmann::json results = nlohmann::json::array();
  bool any_invalid = false;
  // Every file is checked even after a failure, so one run reports all problems at once.
  for (const std::string& file : opt.files) {
    try {
      const Spec spec = load_spec_file(file);
      const std::string canonical = canonical_json(spec);
      const std::string signature = spec_signature(spec);
      if (opt.json)
        results.push_back({{"file", file},
                           {"name", spec.name},
                           {"canonical", canonical},
                           {"signature", signature}});
      else
        std::cout << file << ": " << signature << "\n  " << canonical << "\n";
    } catch (const SpecError& e) {
      std::cerr << "error: " << e.what() << "\n";
      any_invalid = true;
    }
  }
  if (opt.json) {
    // One file gives one object; several give an array (of the valid ones), as documented.
    if (opt.files.size() == 1) {
      if (!results.empty()) std::cout << results[0].dump(2) << "\n";
    } else {
      std::cout << results.dump(2) << "\n";
    }
  }
  std::cout.flush();
  if (any_invalid) throw CommandExit(kUsage, "");
}

}  // namespace

void register_spec_commands(CLI::App& app) {
  auto opt = std::make_shared<SpecOptions>();
  CLI::App* cmd = app.add_subcommand(
      "spec",
      "Validate spec files and print each one's canonical form and signature.\n"
      "The signature is the SHA-256 of the canonical JSON (defaults filled in, keys sorted, name\n"
      "left out): two specs with the same signature describe the same computation. Invalid files\n"
      "are reported as 'error: FILE: JSON_PATH: MESSAGE', one per line; the others are still\n"
      "printed, and the exit status is 2 if any file was invalid. See docs/spec.md.");
  cmd->add_option("files", opt->files, "Spec files (JSON, version 1)")
      ->required()
      ->type_name("FILE");
  cmd->add_flag("--json", opt->json,
                "Print JSON instead: an object {file, name, canonical, signature} for one file, "
                "an array of them for several");
  cmd->callback([opt] { run_spec(*opt); });
}

}  // namespace ttt::cli
