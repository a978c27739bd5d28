// hash.hpp: SHA-256 (OpenSSL) as lowercase hex, the one hash used for signatures, cache keys and
// entry checksums.
#pragma once

#include <string>
#include <string_view>

namespace ttt {

std::string sha256_hex(std::string_view data);

// Incremental hashing for large or multi-part inputs.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::string_view data);
  std::string hex_digest();  // finalizes; the object cannot be updated afterwards

 private:
  void* ctx_;
};

}  // namespace ttt
