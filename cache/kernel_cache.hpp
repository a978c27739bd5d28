// kernel_cache.hpp: the cache as the JIT sees it. Owns the in-memory layer (a map of loaded
// entries with per-key single-flight) and get_or_build, which goes memory -> disk -> per-key
// flock -> disk again -> build -> publish -> evict, degrading to memory-only when the directory
// cannot be written.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>

#include "cache/config.hpp"
#include "cache/disk_store.hpp"
#include "cache/key.hpp"

namespace ttt::cache {

// What the builder (the NVRTC compile) returns.
struct BuildOutput {
  std::string binary;                 // cubin or PTX bytes
  std::string binary_kind = "cubin";  // "cubin" | "ptx"
  double compile_ms = 0;
  int registers = -1;  // -1: unknown
  int shared_bytes = -1;
  int spills = -1;
  nlohmann::json details = nlohmann::json::object();  // e.g. the NVRTC log; stored as "build"
};
using Builder = std::function<BuildOutput()>;

// Descriptive metadata that is not part of the key.
struct EntryDescription {
  std::string spec_name;
  nlohmann::json details = nlohmann::json::object();  // e.g. full spec JSON; stored as "details"
};

enum class Origin { memory, disk, built };
const char* to_string(Origin origin);

struct CacheResult {
  std::shared_ptr<const Entry> entry;
  Origin origin;
};

struct CacheOptions {
  std::filesystem::path dir;
  std::uint64_t max_size = kDefaultMaxSize;  // bytes; 0 = no cap
  bool disabled = false;               // bypass the disk: always build, keep entries in memory only
  std::filesystem::path readonly_dir;  // a second cache, only read (empty: none)
  // dir, max_size, disabled and readonly_dir from the environment (config.hpp).
  static CacheOptions from_env();
};

// Called by get_or_build in probe mode instead of looking up or building (see set_probe).
using Probe = std::function<void(const KeyInputs& inputs, const std::string& key)>;

struct CacheStats {
  std::uint64_t memory_hits = 0, disk_hits = 0, builds = 0, corrupt_entries = 0;
};

class KernelCache {
 public:
  explicit KernelCache(CacheOptions options);
  KernelCache(const KernelCache&) = delete;
  KernelCache& operator=(const KernelCache&) = delete;

  // The process-wide cache configured from the environment, created on first use.
  static KernelCache& process_cache();

  // Returns the entry for `inputs`, building it with `build` only if neither memory nor disk has
  // a valid one. Threads of this process and other processes asking for the same key wait for a
  // single build. If the build throws, the exception reaches the caller and every thread that was
  // waiting for that build; the next call tries again.
  CacheResult get_or_build(const KeyInputs& inputs, const EntryDescription& description,
                           const Builder& build);

  // Memory, then disk; never builds. Corrupt entries are quarantined (with a warning).
  std::shared_ptr<const Entry> find(const std::string& key);

  CacheStats stats() const;

  // Probe mode, for tools that need the key inputs of a request without compiling anything
  // (`tttc cache explain SPEC`): while a probe is set, get_or_build passes each request to it and
  // returns a placeholder entry (metadata with the key inputs and source, no binary) that is
  // neither stored nor remembered. An empty Probe ends probe mode.
  void set_probe(Probe probe);
  // True once the directory proved unusable for writing (the one warning has been given).
  bool memory_only() const { return memory_only_.load(); }
  // True once the directory was refused as untrusted (trust.hpp): nothing is read from it either.
  bool untrusted() const { return untrusted_.load(); }
  const DiskStore& store() const { return store_; }
  std::uint64_t max_size() const { return max_size_; }

 private:
  struct Slot;
  std::shared_ptr<Slot> slot(const std::string& key);
  // Single-flight wrapper shared by get_or_build and find (build == nullptr: never build).
  CacheResult lookup(const std::string& key, const KeyInputs* inputs,
                     const EntryDescription* description, const Builder* build);
  CacheResult load_or_build(const std::string& key, const KeyInputs* inputs,
                            const EntryDescription* description, const Builder* build);
  std::shared_ptr<const Entry> accept(const std::string& key, DiskStore::LoadResult& loaded);
  void quarantine(const std::string& key, const std::string& reason);
  bool publish(const Entry& entry);
  // Switches to memory-only with the one warning; `what` is "create" or "write to".
  void disable_writes(const std::string& what, std::error_code error);
  // Whether the directory may be used at all; checked once, before the first disk access.
  bool trusted();
  // Stops all disk access (reads too) with the one warning.
  void distrust(const std::string& reason);
  // The entry from the read-only second cache, if it has a valid one.
  std::shared_ptr<const Entry> load_readonly(const std::string& key);
  void note_use(Slot& slot, const std::string& key);

  DiskStore store_;
  std::uint64_t max_size_;
  bool disabled_;
  std::optional<DiskStore> readonly_;
  std::once_flag readonly_checked_;
  bool readonly_trusted_ = false;
  std::mutex probe_mutex_;
  Probe probe_;
  std::atomic<bool> memory_only_{false};
  std::atomic<bool> untrusted_{false};
  std::once_flag trust_checked_;
  mutable std::mutex mutex_;  // guards slots_
  std::unordered_map<std::string, std::shared_ptr<Slot>> slots_;
  std::atomic<std::uint64_t> memory_hits_{0}, disk_hits_{0}, builds_{0}, corrupt_{0};
};

// The metadata stored for a freshly built entry (exposed for tests and tools).
Entry make_entry(const std::string& key, const KeyInputs& inputs,
                 const EntryDescription& description, BuildOutput output);

}  // namespace ttt::cache
