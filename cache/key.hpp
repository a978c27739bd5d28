// key.hpp: the cache key. Owns KeyInputs (everything that can change the compiled binary), the
// unambiguous serialization hashed into the key, the JSON record of the inputs kept in each
// entry's metadata, and the field-by-field comparison behind `tttc cache explain`.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ttt::cache {

struct KeyInputs {
  int key_format = 1;          // bump when the meaning of any field changes
  std::string canonical_spec;  // canonical spec JSON (compiler/spec.hpp canonical_json)
  std::string kernel;          // "forward" | "backward"
  std::string schedule;        // canonical schedule JSON
  std::string source;          // the exact generated CUDA source
  std::map<std::string, std::string> header_hashes;  // include name -> sha256 of its text
  std::string nvrtc_version;                         // e.g. "12.4"
  std::vector<std::string> options;                  // NVRTC options, in order
  std::string arch;                                  // e.g. "sm_90a"
};

// Lowercase hex SHA-256 over a length-prefixed serialization of every field. Only the values
// above enter it: never paths, mtimes or the environment, so equal inputs give equal keys on any
// machine.
std::string compute_key(const KeyInputs& inputs);

// True for 64 lowercase hex digits (the shape of compute_key's result); guards file names.
bool is_valid_key(const std::string& key);

// The inputs as JSON for entry metadata: every field, but the source as "source_sha256" (the full
// text is stored separately, see entry metadata "source").
nlohmann::json key_inputs_json(const KeyInputs& inputs);

// Rebuilds KeyInputs from key_inputs_json's output plus the source text; throws
// nlohmann::json::exception on a malformed record. Lets `verify` recompute an entry's key.
KeyInputs key_inputs_from_json(const nlohmann::json& record, const std::string& source);

// One key input that differs between two entries, rendered for humans.
struct KeyInputDiff {
  std::string field;  // e.g. "arch", "header_hashes[ttt/common.cuh]", "canonical_spec.head_dim"
  std::string a;      // value in the first entry ("<absent>" if missing)
  std::string b;
  std::string note;  // optional detail, e.g. where two sources first differ
};

// Compares two entries' metadata (their "key_inputs", and "source" for a first differing line) and
// lists what differs, in field order. JSON-valued inputs (spec, schedule) are compared member by
// member so the report names e.g. "canonical_spec.head_dim".
std::vector<KeyInputDiff> diff_key_inputs(const nlohmann::json& meta_a,
                                          const nlohmann::json& meta_b);

}  // namespace ttt::cache
