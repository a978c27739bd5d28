// cmd_tune.hpp: the seam between `tttc tune` (cmd_tune.cpp) and its database subcommands
// (cmd_tune_db.cpp), which tests can register on their own.
#pragma once

#include <CLI/CLI.hpp>

namespace ttt::cli {

// Adds ls, show, explain, rm, clear, export and import under `tune`.
void register_tune_db_commands(CLI::App& tune);

}  // namespace ttt::cli
