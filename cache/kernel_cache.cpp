// kernel_cache.cpp: in-memory layer, single-flight per key, and the get_or_build protocol.
#include "cache/kernel_cache.hpp"

#include <fmt/format.h>

#include <condition_variable>
#include <ctime>
#include <stdexcept>

#include "cache/config.hpp"
#include "cache/maintenance.hpp"
#include "cache/stats.hpp"
#include "cache/warnings.hpp"
#include "compiler/hash.hpp"

namespace ttt::cache {
namespace {

// A memory hit refreshes the on-disk last-use record at most this often, so hot kernels stay
// "recent" for LRU without a file write per launch.
constexpr std::chrono::seconds kTouchInterval{60};

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

// One per key ever asked for in this process. `busy` marks the thread that is loading or
// building; others wait on `cv` instead of starting a second build.
struct KernelCache::Slot {
  std::mutex m;
  std::condition_variable cv;
  bool busy = false;
  std::shared_ptr<const Entry> entry;
  std::exception_ptr failure;  // the last build's exception, for the threads that waited on it
  std::uint64_t failures = 0;
  std::atomic<std::int64_t> last_touch{0};  // steady_ns of the last on-disk use record
};

const char* to_string(Origin origin) {
  switch (origin) {
    case Origin::memory:
      return "memory";
    case Origin::disk:
      return "disk";
    case Origin::built:
      return "built";
  }
  return "?";
}

CacheOptions CacheOptions::from_env() {
  return {default_cache_dir(), default_max_size(), cache_disabled_by_env(), readonly_cache_dir()};
}

KernelCache::KernelCache(CacheOptions options)
    : store_(std::move(options.dir)), max_size_(options.max_size), disabled_(options.disabled) {
  // Shared caches are provisioned by an administrator: root may own them too.
  if (!options.readonly_dir.empty())
    readonly_.emplace(std::move(options.readonly_dir), TrustPolicy::current_user_or_root());
}

KernelCache& KernelCache::process_cache() {
  static KernelCache cache(CacheOptions::from_env());
  return cache;
}

Entry make_entry(const std::string& key, const KeyInputs& inputs,
                 const EntryDescription& description, BuildOutput output) {
  if (output.binary_kind != "cubin" && output.binary_kind != "ptx")
    throw std::invalid_argument("cache: binary_kind must be \"cubin\" or \"ptx\", got \"" +
                                output.binary_kind + "\"");
  const auto now = Clock::now();
  Entry entry;
  entry.key = key;
  entry.metadata = {
      {"key", key},
      {"key_inputs", key_inputs_json(inputs)},
      {"source", inputs.source},
      {"spec_name", description.spec_name},
      {"kernel", inputs.kernel},
      {"arch", inputs.arch},
      {"binary_kind", output.binary_kind},
      {"binary_size", output.binary.size()},
      {"binary_sha256", sha256_hex(output.binary)},
      {"created", format_utc(now)},
      {"created_unix_ns", to_unix_ns(now)},
      {"compile_ms", output.compile_ms},
      {"registers", output.registers},
      {"shared_bytes", output.shared_bytes},
      {"spills", output.spills},
      {"details", description.details},
      {"build", output.details},
  };
  entry.binary = std::move(output.binary);
  return entry;
}

std::shared_ptr<KernelCache::Slot> KernelCache::slot(const std::string& key) {
  std::lock_guard lock(mutex_);
  auto& s = slots_[key];
  if (!s) s = std::make_shared<Slot>();
  return s;
}

CacheResult KernelCache::get_or_build(const KeyInputs& inputs, const EntryDescription& description,
                                      const Builder& build) {
  const std::string key = compute_key(inputs);
  {
    std::lock_guard lock(probe_mutex_);
    if (probe_) {
      probe_(inputs, key);
      auto placeholder = std::make_shared<Entry>();
      placeholder->key = key;
      placeholder->metadata = {{"key", key},
                               {"key_inputs", key_inputs_json(inputs)},
                               {"source", inputs.source},
                               {"spec_name", description.spec_name}};
      return {std::move(placeholder), Origin::memory};
    }
  }
  return lookup(key, &inputs, &description, &build);
}

void KernelCache::set_probe(Probe probe) {
  std::lock_guard lock(probe_mutex_);
  probe_ = std::move(probe);
}

std::shared_ptr<const Entry> KernelCache::find(const std::string& key) {
  if (!is_valid_key(key)) return nullptr;
  return lookup(key, nullptr, nullptr, nullptr).entry;
}

CacheResult KernelCache::lookup(const std::string& key, const KeyInputs* inputs,
                                const EntryDescription* description, const Builder* build) {
  std::shared_ptr<Slot> s = slot(key);
  {
    std::unique_lock lock(s->m);
    for (;;) {
      if (s->entry) {
        auto entry = s->entry;
        lock.unlock();
        ++memory_hits_;
        note_use(*s, key);
        return {std::move(entry), Origin::memory};
      }
      if (!s->busy) break;
      const std::uint64_t failures_before = s->failures;
      s->cv.wait(lock, [&] { return !s->busy; });
      // Share the failure of the build we waited for rather than repeating a doomed compile.
      if (build && !s->entry && s->failures != failures_before) std::rethrow_exception(s->failure);
    }
    s->busy = true;
  }

  CacheResult result{nullptr, Origin::disk};
  try {
    result = load_or_build(key, inputs, description, build);
  } catch (...) {
    std::lock_guard lock(s->m);
    s->busy = false;
    s->failure = std::current_exception();
    ++s->failures;
    s->cv.notify_all();
    throw;
  }
  std::lock_guard lock(s->m);
  s->busy = false;
  s->entry = result.entry;
  s->failure = nullptr;
  s->last_touch = steady_ns();
  s->cv.notify_all();
  return result;
}

CacheResult KernelCache::load_or_build(const std::string& key, const KeyInputs* inputs,
                                       const EntryDescription* description, const Builder* build) {
  if (disabled_) {  // TTTC_CACHE_DISABLE / --no-cache: compile, remember in memory only
    if (!build) return {nullptr, Origin::disk};
    auto entry = std::make_shared<const Entry>(make_entry(key, *inputs, *description, (*build)()));
    ++builds_;
    return {entry, Origin::built};
  }
  // An untrusted directory is not read at all: its entries could be forged (trust.hpp).
  const bool disk = trusted();
  DiskStore::LoadResult loaded;  // missing
  // Warm start: no lock needed to read a published entry (publishing is an atomic rename).
  if (disk) loaded = store_.load(key);
  if (auto hit = accept(key, loaded)) return {hit, Origin::disk};

  // Missing or bad: serialize with other processes, then look again, since the lock holder we
  // waited for has probably just published it.
  std::optional<FileLock> key_lock;
  if (disk && !memory_only_) {
    if (auto ec = store_.ensure_layout()) {
      disable_writes("create", ec);
    } else if (auto why = store_.trust_problem()) {
      // Checked again after creating the layout: a directory someone else created in between
      // is not written to.
      distrust(*why);
      loaded = {};
    } else {
      // A lock file that cannot be opened means an unwritable directory; publish() will say so.
      key_lock = store_.lock(key, /*wait=*/true, ec);
      if (key_lock) loaded = store_.load(key);
      if (auto hit = accept(key, loaded)) return {hit, Origin::disk};
    }
  }
  if (loaded.status == DiskStore::LoadResult::Status::corrupt) {
    quarantine(key, loaded.detail);
  } else if (loaded.status == DiskStore::LoadResult::Status::unreadable) {
    warn(fmt::format("cannot read cache entry {} ({}); rebuilding it", key, loaded.detail));
  } else if (loaded.status == DiskStore::LoadResult::Status::untrusted) {
    warn(fmt::format("not using cache entry {}: {}; rebuilding it", key, loaded.detail));
  }
  if (auto shared = load_readonly(key)) return {shared, Origin::disk};
  if (!build) return {nullptr, Origin::disk};

  auto entry = std::make_shared<const Entry>(make_entry(key, *inputs, *description, (*build)()));
  ++builds_;
  const bool published = publish(*entry);
  if (published) add_stats(store_, 0, 1);
  key_lock.reset();  // before eviction, which may need other keys' locks
  if (published && max_size_ > 0) evict_lru(store_, max_size_, {.keep_key = key, .wait = false});
  return {entry, Origin::built};
}

std::shared_ptr<const Entry> KernelCache::accept(const std::string& key,
                                                 DiskStore::LoadResult& loaded) {
  if (loaded.status != DiskStore::LoadResult::Status::ok) return nullptr;
  ++disk_hits_;
  store_.record_use(key);  // best effort: a read-only directory still serves loads
  if (!memory_only_) add_stats(store_, 1, 0);
  return std::make_shared<const Entry>(std::move(loaded.entry));
}

std::shared_ptr<const Entry> KernelCache::load_readonly(const std::string& key) {
  if (!readonly_) return nullptr;
  std::call_once(readonly_checked_, [this] {
    if (auto why = readonly_->trust_problem())
      warn(fmt::format("not using read-only cache directory {}: {}", readonly_->root().string(),
                       *why));
    else
      readonly_trusted_ = true;
  });
  if (!readonly_trusted_) return nullptr;
  // No lock: nobody writes a read-only cache. Bad entries there are skipped, not quarantined.
  DiskStore::LoadResult loaded = readonly_->load(key);
  if (loaded.status != DiskStore::LoadResult::Status::ok) return nullptr;
  ++disk_hits_;
  if (!memory_only_ && !untrusted_) add_stats(store_, 1, 0);
  return std::make_shared<const Entry>(std::move(loaded.entry));
}

void KernelCache::quarantine(const std::string& key, const std::string& reason) {
  ++corrupt_;
  std::error_code ec;
  if (auto moved = store_.quarantine(key, ec))
    warn(fmt::format("corrupt cache entry {} ({}); moved to {} and rebuilding", key, reason,
                     moved->string()));
  else
    warn(fmt::format("corrupt cache entry {} ({}); could not move it aside ({}); rebuilding", key,
                     reason, ec.message()));
}

bool KernelCache::publish(const Entry& entry) {
  if (memory_only_) return false;
  if (auto ec = store_.publish(entry)) {
    disable_writes("write to", ec);
    return false;
  }
  store_.record_use(entry.key);
  return true;
}

void KernelCache::disable_writes(const std::string& what, std::error_code error) {
  if (memory_only_.exchange(true)) return;  // one warning per cache (per process for the default)
  warn(fmt::format(
      "cannot {} cache directory {} ({}); compiled kernels are kept in memory for the rest of "
      "this process (existing entries can still be loaded). Set TTTC_CACHE_DIR to a writable "
      "directory to persist them.",
      what, store_.root().string(), error.message()));
}

bool KernelCache::trusted() {
  std::call_once(trust_checked_, [this] {
    if (auto why = store_.trust_problem()) distrust(*why);
  });
  return !untrusted_;
}

void KernelCache::distrust(const std::string& reason) {
  untrusted_ = true;
  if (memory_only_.exchange(true)) return;  // the one warning was given already
  warn(fmt::format(
      "not using cache directory {}: {}. Its entries could have been planted by someone else, so "
      "compiled kernels are kept in memory for the rest of this process. Use a directory of "
      "your own (TTTC_CACHE_DIR) or fix its owner and permissions.",
      store_.root().string(), reason));
}

void KernelCache::note_use(Slot& s, const std::string& key) {
  if (memory_only_) return;
  const std::int64_t now = steady_ns();
  std::int64_t last = s.last_touch.load(std::memory_order_relaxed);
  if (now - last < std::chrono::nanoseconds(kTouchInterval).count()) return;
  if (s.last_touch.compare_exchange_strong(last, now)) store_.record_use(key);
}

CacheStats KernelCache::stats() const {
  return {memory_hits_.load(), disk_hits_.load(), builds_.load(), corrupt_.load()};
}

}  // namespace ttt::cache
