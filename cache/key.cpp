// key.cpp: key serialization and hashing, and the metadata diff for `cache explain`.
#include "cache/key.hpp"

#include <fmt/format.h>

#include <optional>
#include <set>
#include <sstream>

#include "compiler/hash.hpp"

namespace ttt::cache {
namespace {

// Every value is written as "<length>:<bytes>" after its field name, and every list/map starts
// with its element count, so no two different KeyInputs can serialize to the same bytes (e.g.
// options {"-a b"} vs {"-a", "b"}, or text moving between adjacent fields).
void put(Sha256& h, std::string_view s) {
  h.update(fmt::format("{}:", s.size()));
  h.update(s);
}

void put_field(Sha256& h, std::string_view name, std::string_view value) {
  put(h, name);
  put(h, value);
}

}  // namespace

std::string compute_key(const KeyInputs& in) {
  Sha256 h;
  put(h, "tttc-kernel-key");
  put_field(h, "key_format", std::to_string(in.key_format));
  put_field(h, "canonical_spec", in.canonical_spec);
  put_field(h, "kernel", in.kernel);
  put_field(h, "schedule", in.schedule);
  put_field(h, "source", in.source);
  put_field(h, "header_hashes", std::to_string(in.header_hashes.size()));
  for (const auto& [name, hash] : in.header_hashes) {
    put(h, name);
    put(h, hash);
  }
  put_field(h, "nvrtc_version", in.nvrtc_version);
  put_field(h, "options", std::to_string(in.options.size()));
  for (const auto& option : in.options) put(h, option);
  put_field(h, "arch", in.arch);
  return h.hex_digest();
}

bool is_valid_key(const std::string& key) {
  if (key.size() != 64) return false;
  for (char c : key)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

nlohmann::json key_inputs_json(const KeyInputs& in) {
  return {
      {"key_format", in.key_format},
      {"canonical_spec", in.canonical_spec},
      {"kernel", in.kernel},
      {"schedule", in.schedule},
      {"source_sha256", sha256_hex(in.source)},
      {"header_hashes", in.header_hashes},
      {"nvrtc_version", in.nvrtc_version},
      {"options", in.options},
      {"arch", in.arch},
  };
}

KeyInputs key_inputs_from_json(const nlohmann::json& j, const std::string& source) {
  KeyInputs in;
  in.key_format = j.at("key_format").get<int>();
  in.canonical_spec = j.at("canonical_spec").get<std::string>();
  in.kernel = j.at("kernel").get<std::string>();
  in.schedule = j.at("schedule").get<std::string>();
  in.source = source;
  in.header_hashes = j.at("header_hashes").get<std::map<std::string, std::string>>();
  in.nvrtc_version = j.at("nvrtc_version").get<std::string>();
  in.options = j.at("options").get<std::vector<std::string>>();
  in.arch = j.at("arch").get<std::string>();
  return in;
}

namespace {

constexpr const char* kAbsent = "<absent>";

std::string render(const nlohmann::json* v) {
  if (!v) return kAbsent;
  if (v->is_string()) return v->get<std::string>();
  return v->dump();
}

const nlohmann::json* member(const nlohmann::json& obj, const std::string& name) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(name);
  return it == obj.end() ? nullptr : &*it;
}

// Parses a JSON-valued input (spec, schedule) so it can be compared member by member; nullopt
// when the text is not a JSON object.
std::optional<nlohmann::json> parse_object(const nlohmann::json* v) {
  if (!v || !v->is_string()) return std::nullopt;
  auto parsed = nlohmann::json::parse(v->get<std::string>(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object()) return std::nullopt;
  return parsed;
}

// Members of two objects that differ, reported as "<prefix>.<member>" or "<prefix>[<member>]".
void diff_members(const nlohmann::json& a, const nlohmann::json& b, const std::string& prefix,
                  bool bracket, std::vector<KeyInputDiff>& out) {
  std::set<std::string> names;
  for (const auto& [k, v] : a.items()) names.insert(k);
  for (const auto& [k, v] : b.items()) names.insert(k);
  for (const auto& name : names) {
    const nlohmann::json* va = member(a, name);
    const nlohmann::json* vb = member(b, name);
    if (va && vb && *va == *vb) continue;
    std::string field = bracket ? fmt::format("{}[{}]", prefix, name) : prefix + "." + name;
    out.push_back({field, render(va), render(vb), ""});
  }
}

// A window of `line` around column `col`, so long generated lines stay readable.
std::string excerpt(const std::string& line, std::size_t col) {
  constexpr std::size_t kBefore = 30, kWidth = 80;
  const std::size_t start = col > kBefore ? col - kBefore : 0;
  std::string out = line.substr(start, kWidth);
  if (start > 0) out = "..." + out;
  if (start + kWidth < line.size()) out += "...";
  return out;
}

// "first difference at line N: '<a excerpt>' vs '<b excerpt>'" for two sources.
std::string first_difference(const std::string& a, const std::string& b) {
  std::istringstream sa(a), sb(b);
  std::string la, lb;
  for (int line = 1;; ++line) {
    bool ga = static_cast<bool>(std::getline(sa, la));
    bool gb = static_cast<bool>(std::getline(sb, lb));
    if (!ga && !gb) return "the sources differ only in line endings";
    if (!ga) la = "<end of source>";
    if (!gb) lb = "<end of source>";
    if (ga && gb && la == lb) continue;
    std::size_t col = 0;
    while (col < la.size() && col < lb.size() && la[col] == lb[col]) ++col;
    return fmt::format("first difference at line {}: '{}' vs '{}'", line, excerpt(la, col),
                       excerpt(lb, col));
  }
}

}  // namespace

std::vector<KeyInputDiff> diff_key_inputs(const nlohmann::json& meta_a,
                                          const nlohmann::json& meta_b) {
  static const nlohmann::json kEmpty = nlohmann::json::object();
  const nlohmann::json* ia = member(meta_a, "key_inputs");
  const nlohmann::json* ib = member(meta_b, "key_inputs");
  const nlohmann::json& a = ia ? *ia : kEmpty;
  const nlohmann::json& b = ib ? *ib : kEmpty;

  // Known fields first, in KeyInputs order; anything else (a newer key_format) after them.
  std::vector<std::string> fields = {"key_format",    "canonical_spec", "kernel",
                                     "schedule",      "source_sha256",  "header_hashes",
                                     "nvrtc_version", "options",        "arch"};
  std::set<std::string> known(fields.begin(), fields.end());
  for (const auto* obj : {&a, &b})
    for (const auto& [k, v] : obj->items())
      if (known.insert(k).second) fields.push_back(k);

  std::vector<KeyInputDiff> out;
  for (const auto& field : fields) {
    const nlohmann::json* va = member(a, field);
    const nlohmann::json* vb = member(b, field);
    if (va && vb && *va == *vb) continue;
    if (!va && !vb) continue;
    if (field == "canonical_spec" || field == "schedule") {
      auto oa = parse_object(va), ob = parse_object(vb);
      if (oa && ob) {
        std::size_t before = out.size();
        diff_members(*oa, *ob, field, /*bracket=*/false, out);
        if (out.size() > before) continue;  // else: same members, different text; show it whole
      }
    }
    if (field == "header_hashes" && va && vb && va->is_object() && vb->is_object()) {
      diff_members(*va, *vb, field, /*bracket=*/true, out);
      continue;
    }
    if (field == "source_sha256") {
      const nlohmann::json* sa = member(meta_a, "source");
      const nlohmann::json* sb = member(meta_b, "source");
      std::string note;
      if (sa && sb && sa->is_string() && sb->is_string())
        note = first_difference(sa->get<std::string>(), sb->get<std::string>());
      auto sha = [](const nlohmann::json* v) { return v ? "sha256 " + render(v) : render(v); };
      out.push_back({"source", sha(va), sha(vb), note});
      continue;
    }
    out.push_back({field, render(va), render(vb), ""});
  }
  return out;
}

}  // namespace ttt::cache
