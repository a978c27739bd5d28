// spec.cpp: the tttc spec language. Owns parsing of spec JSON (with comments), validation with
// errors located by file and JSONPath, the canonical form and its signature. Every rule of the
// format lives here once; docs/spec.md describes the same rules for users.
#include "compiler/spec.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <set>
#include <span>
#include <string_view>

#include "compiler/hash.hpp"

namespace ttt {

using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Enums and the derived quantities of a Spec.

const char* to_string(InnerModel m) {
  switch (m) {
    case InnerModel::linear:
      return "linear";
    case InnerModel::mlp:
      return "mlp";
  }
  return "?";
}

const char* to_string(Activation a) { return activation_info(a).name.data(); }

const char* to_string(DType d) {
  switch (d) {
    case DType::f32:
      return "f32";
    case DType::f16:
      return "f16";
    case DType::bf16:
      return "bf16";
    case DType::i32:
      return "i32";
  }
  return "?";
}

const char* to_string(Precision p) {
  switch (p) {
    case Precision::accurate:
      return "accurate";
    case Precision::tf32:
      return "tf32";
    case Precision::bf16:
      return "bf16";
  }
  return "?";
}

int dtype_bytes(DType d) { return d == DType::f16 || d == DType::bf16 ? 2 : 4; }

// A linear model always has exactly one weight matrix, whatever `depth` a hand-built Spec carries,
// so code that sizes buffers from widths() cannot silently build a two-layer "linear" model.
static int layer_count(const Spec& s) { return s.model == InnerModel::linear ? 1 : s.depth; }

std::vector<int> Spec::widths() const {
  const int layers = layer_count(*this);
  std::vector<int> w(layers + 1, hidden_dim());
  w.front() = head_dim;
  w.back() = head_dim;
  return w;
}

long long Spec::state_floats() const {
  const std::vector<StateMember> members = state_members(*this);
  return members.back().offset + members.back().floats();
}

std::vector<StateMember> state_members(const Spec& spec) {
  std::vector<StateMember> members;
  const std::vector<int> w = spec.widths();
  long long offset = 0;
  for (size_t l = 1; l < w.size(); ++l) {
    for (const bool bias : {false, true}) {
      const StateMember m{.name = fmt::format("{}{}", bias ? 'b' : 'W', l),
                          .rows = bias ? 1 : w[l - 1],
                          .cols = w[l],
                          .offset = offset,
                          .bias = bias};
      offset += m.floats();
      members.push_back(m);
    }
  }
  return members;
}

SpecError::SpecError(std::string file, std::string json_path, std::string message)
    : std::runtime_error(file + ": " + json_path + ": " + message),
      file_(std::move(file)),
      path_(std::move(json_path)),
      message_(std::move(message)) {}

// ---------------------------------------------------------------------------------------------
// Value rules shared by the JSON parser and validate_spec(). Each returns the problem, if any, as
// the text after "<path>: ", so both callers report the same wording.

namespace {

using Problem = std::optional<std::string>;

struct IntRule {
  long long lo, hi, multiple;
  const char* below_note;  // appended when the value is too small: what to use instead
};

constexpr IntRule kHeadDim{16, 256, 16, ""};
constexpr IntRule kMiniBatch{8, 128, 8, ""};
constexpr IntRule kMlpDepth{2, 4, 1, " (use \"type\": \"linear\" for a single layer)"};
constexpr IntRule kExpansion{1, 8, 1, ""};
constexpr IntRule kCheckpointGroup{1, 4096, 1, ""};
constexpr int kVersion = 1;
constexpr size_t kMaxNameLength = 128;
// Echoed user text (keys, values) is cut to this many bytes, so a huge bad key cannot turn into a
// huge error line.
constexpr size_t kMaxEchoBytes = 64;
// A spec is a few hundred bytes; these limits only stop hostile or broken files from costing
// unbounded memory or time (a spec nests at most 3 levels).
constexpr size_t kMaxSpecBytes = 1 << 20;
constexpr size_t kMaxDepth = 64;

// Quoted for an error message: JSON string syntax (invalid UTF-8 replaced, never thrown on),
// cut to kMaxEchoBytes with the full length noted.
std::string quote(std::string_view text) {
  const bool cut = text.size() > kMaxEchoBytes;
  std::string shown(text.substr(0, cut ? kMaxEchoBytes : text.size()));
  std::string q = json(shown).dump(-1, ' ', true, json::error_handler_t::replace);
  if (cut) q += fmt::format("... ({} bytes)", text.size());
  return q;
}

std::string range_text(const IntRule& r) {
  if (r.multiple == 1) return fmt::format("in {}..{}", r.lo, r.hi);
  return fmt::format("a multiple of {} in {}..{}", r.multiple, r.lo, r.hi);
}

Problem int_problem(const IntRule& r, long long v, std::string_view shown) {
  if (v >= r.lo && v <= r.hi && v % r.multiple == 0) return std::nullopt;
  return fmt::format("must be {}, got {}{}", range_text(r), shown, v < r.lo ? r.below_note : "");
}

Problem ln_eps_problem(double v) {
  if (std::isfinite(v) && v > 0 && v < 1) return std::nullopt;
  return fmt::format("must be a finite number with 0 < ln_eps < 1, got {}", v);
}

Problem name_problem(const std::string& name) {
  if (name.empty() || name.size() > kMaxNameLength)
    return fmt::format("must be 1..{} characters long, got {}", kMaxNameLength, name.size());
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (ok) continue;
    // Show the whole UTF-8 sequence of a non-ASCII character, not one byte of it (a lone byte
    // is not valid UTF-8 and cannot be printed as JSON).
    const auto lead = static_cast<unsigned char>(c);
    const size_t length = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    return fmt::format("may only contain [A-Za-z0-9._-], got {} (bad character {})", quote(name),
                       quote(name.substr(i, length)));
  }
  return std::nullopt;
}

constexpr const char* kBackwardNeedsForward =
    "\"backward\" requires \"forward\" (the backward pass recomputes the forward pass)";
constexpr const char* kDecodeNeedsForward =
    "\"decode\" requires \"forward\" (prefill runs the forward kernel on the prompt's whole "
    "mini-batches)";
constexpr const char* kDecodeNeedsCausal =
    "\"decode\" needs a causal spec (\"causal\": true): a non-causal mini-batch evaluates every "
    "token with the state updated by the whole mini-batch, so it cannot be decoded token by token";

// ---------------------------------------------------------------------------------------------
// Suggestions for misspelt names.

// Optimal-string-alignment distance: Levenshtein plus adjacent transpositions ("haed" -> "head").
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The closest candidate that is plausibly what was meant, or nothing. Short names tolerate one
// edit, longer ones more; a fragment of a name ("eps" for "ln_eps") also counts.
std::optional<std::string_view> closest(std::string_view typo,
                                        std::span<const std::string_view> candidates) {
  // Field and value names are short; a long typo matches none, and edit distance is quadratic.
  if (typo.size() > kMaxEchoBytes) return std::nullopt;
  const std::string t = lower(typo);
  const size_t allowed = 1 + t.size() / 5;
  std::optional<std::string_view> best;
  size_t best_distance = std::numeric_limits<size_t>::max();
  for (std::string_view c : candidates) {
    const std::string lc = lower(c);
    size_t dist = edit_distance(t, lc);
    if (t.size() >= 3 && lc.find(t) != std::string::npos) dist = std::min(dist, allowed);
    if (dist <= allowed && dist < best_distance) {
      best = c;
      best_distance = dist;
    }
  }
  return best;
}

std::string quoted_list(std::span<const std::string_view> items) {
  std::string out;
  for (std::string_view s : items) out += (out.empty() ? "\"" : ", \"") + std::string(s) + "\"";
  return out;
}

// ---------------------------------------------------------------------------------------------
// JSONPath helpers.

bool is_identifier(std::string_view key) {
  if (key.empty() || std::isdigit(static_cast<unsigned char>(key[0]))) return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

std::string child(const std::string& parent, std::string_view key) {
  if (is_identifier(key) && key.size() <= kMaxEchoBytes) return parent + "." + std::string(key);
  // Bracket notation keeps odd keys (spaces, dots) unambiguous; JSON string escaping is close
  // enough to JSONPath's for display. Long keys are cut (quote()).
  std::string escaped = quote(key);
  const size_t close = escaped.rfind('"');
  return parent + "['" + escaped.substr(1, close - 1) + "']" + escaped.substr(close + 1);
}

std::string element(const std::string& parent, size_t index) {
  return fmt::format("{}[{}]", parent, index);
}

// How a value is named in "expected X, got Y" messages; long values are cut short.
std::string describe(const json& j) {
  auto shown = [&] {
    std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
    return s.size() > 40 ? s.substr(0, 37) + "..." : s;
  };
  switch (j.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::object:
      return "an object";
    case json::value_t::array:
      return "an array";
    case json::value_t::string:
      return "the string " + shown();
    case json::value_t::boolean:
      return "the boolean " + shown();
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "the integer " + shown();
    case json::value_t::number_float:
      return "the number " + shown();
    default:
      return "an unsupported value";
  }
}

// ---------------------------------------------------------------------------------------------
// Text -> JSON, with line/column for syntax errors and a check for duplicate keys (which JSON
// permits but which would silently let the later value win).

std::string line_column(const std::string& text, size_t byte) {
  // nlohmann reports the 1-based count of bytes read, i.e. the offending byte is at byte - 1.
  const size_t at = std::min(byte == 0 ? 0 : byte - 1, text.size());
  const size_t line = 1 + std::count(text.begin(), text.begin() + at, '\n');
  const size_t line_start = text.rfind('\n', at == 0 ? 0 : at - 1);
  const size_t column = (at == 0 || line_start == std::string::npos) ? at + 1 : at - line_start;
  return fmt::format("line {}, column {}", line, column);
}

// nlohmann's messages start with "[json.exception.parse_error.101] parse error at line 1, column
// 2: "; the location is reported in our own format, so keep only the reason.
std::string nlohmann_reason(const json::exception& e) {
  std::string_view what = e.what();
  if (what.rfind("[json.exception.", 0) == 0 && what.find("] ") != std::string_view::npos)
    what.remove_prefix(what.find("] ") + 2);
  if (what.rfind("parse error", 0) == 0 && what.find(": ") != std::string_view::npos)
    what.remove_prefix(what.find(": ") + 2);
  return std::string(what);
}

json parse_json(const std::string& text, const std::string& origin) {
  if (text.size() > kMaxSpecBytes)
    throw SpecError(
        origin, "$",
        fmt::format("spec is too large: {} bytes (at most {})", text.size(), kMaxSpecBytes));
  // One frame per open object/array. Frames hold only their own key or index, not the full
  // path: the path is assembled from the stack when an error needs it, so deep nesting costs
  // linear, not quadratic, memory and time. Depth is capped well before it costs anything.
  struct Frame {
    bool object;
    std::string key;   // the current key (objects)
    size_t index = 0;  // the current element (arrays)
    std::set<std::string> keys;
  };
  std::vector<Frame> stack;
  // JSONPath of the value being parsed inside stack[depth - 1] ("$" for depth 0).
  auto path_to = [&](size_t depth) {
    std::string path = "$";
    for (size_t i = 0; i < depth; ++i)
      path = stack[i].object ? child(path, stack[i].key) : element(path, stack[i].index);
    return path;
  };
  auto close_child = [&] {
    if (!stack.empty() && !stack.back().object) ++stack.back().index;
  };
  json::parser_callback_t track = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (stack.size() >= kMaxDepth)
          throw SpecError(origin, path_to(stack.size()),
                          fmt::format("nested too deeply (more than {} levels)", kMaxDepth));
        stack.push_back(Frame{event == json::parse_event_t::object_start, "", 0, {}});
        break;
      case json::parse_event_t::key: {
        Frame& top = stack.back();
        top.key = parsed.get<std::string>();
        if (!top.keys.insert(top.key).second)
          throw SpecError(origin, path_to(stack.size()),
                          fmt::format("duplicate field {} (the earlier value would be ignored)",
                                      quote(top.key)));
        break;
      }
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        stack.pop_back();
        close_child();
        break;
      case json::parse_event_t::value:
        close_child();
        break;
    }
    return true;
  };
  try {
    return json::parse(text, track, /*allow_exceptions=*/true, /*ignore_comments=*/true);
  } catch (const json::parse_error& e) {
    throw SpecError(
        origin, "$",
        fmt::format("invalid JSON at {}: {}", line_column(text, e.byte), nlohmann_reason(e)));
  } catch (const json::exception& e) {  // e.g. a number too large to represent
    throw SpecError(origin, path_to(stack.size()), "invalid JSON: " + nlohmann_reason(e));
  }
}

// ---------------------------------------------------------------------------------------------
// JSON -> Spec.

constexpr std::string_view kTopFields[] = {
    "tttc_spec",        "name",   "inner_model", "head_dim", "mini_batch", "causal", "dtype",
    "checkpoint_group", "ln_eps", "passes",      "precision"};
constexpr std::string_view kInnerModelFields[] = {"type", "depth", "expansion", "activation"};
constexpr std::string_view kModelNames[] = {"linear", "mlp"};
constexpr auto kActivationNames = [] {
  std::array<std::string_view, std::size(kActivations)> names{};
  for (size_t i = 0; i < names.size(); ++i) names[i] = kActivations[i].name;
  return names;
}();
constexpr std::string_view kDTypeNames[] = {"f32", "f16", "bf16"};
constexpr std::string_view kPrecisionNames[] = {"accurate", "tf32", "bf16"};
constexpr std::string_view kPassNames[] = {"forward", "backward", "decode"};

class Parser {
 public:
  explicit Parser(std::string origin) : origin_(std::move(origin)) {}

  Spec parse(const json& root) {
    if (!root.is_object())
      fail("$", "expected the spec to be a JSON object, got " + describe(root));
    // The version comes first: a file written for another version should say so rather than
    // complain about fields this version does not know.
    if (root.contains("tttc_spec")) check_version(root["tttc_spec"]);
    check_fields(root, "$", kTopFields);
    require(root, "$", "tttc_spec");
    require(root, "$", "head_dim");

    Spec s;
    if (const json* v = find(root, "name")) s.name = get_name(*v, "$.name");
    if (const json* v = find(root, "inner_model")) parse_inner_model(*v, "$.inner_model", s);
    s.head_dim = get_int(root["head_dim"], "$.head_dim", kHeadDim);
    if (const json* v = find(root, "mini_batch"))
      s.mini_batch = get_int(*v, "$.mini_batch", kMiniBatch);
    if (const json* v = find(root, "causal")) s.causal = get_bool(*v, "$.causal");
    if (const json* v = find(root, "dtype"))
      s.dtype = static_cast<DType>(get_choice(*v, "$.dtype", "dtype", kDTypeNames));
    if (const json* v = find(root, "checkpoint_group"))
      s.checkpoint_group = get_int(*v, "$.checkpoint_group", kCheckpointGroup);
    if (const json* v = find(root, "ln_eps")) s.ln_eps = get_ln_eps(*v, "$.ln_eps");
    if (const json* v = find(root, "passes")) parse_passes(*v, "$.passes", s);
    if (const json* v = find(root, "precision"))
      s.precision =
          static_cast<Precision>(get_choice(*v, "$.precision", "precision", kPrecisionNames));
    return s;
  }

 private:
  [[noreturn]] void fail(const std::string& path, const std::string& message) const {
    throw SpecError(origin_, path, message);
  }
  void check(const std::string& path, const Problem& p) const {
    if (p) fail(path, *p);
  }

  static const json* find(const json& obj, const char* key) {
    auto it = obj.find(key);
    return it == obj.end() ? nullptr : &*it;
  }

  void check_version(const json& v) const {
    const long long version = get_integral(v, "$.tttc_spec");
    if (version != kVersion)
      fail("$.tttc_spec",
           fmt::format("unsupported tttc_spec version {} (this tttc reads version {})", v.dump(),
                       kVersion));
  }

  void check_fields(const json& obj, const std::string& path,
                    std::span<const std::string_view> allowed) const {
    for (const auto& [key, value] : obj.items()) {
      if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
      std::string message = fmt::format("unknown field {}", quote(key));
      if (auto guess = closest(key, allowed))
        message += fmt::format(" (did you mean \"{}\"?)", *guess);
      else
        message += "; allowed fields: " + quoted_list(allowed);
      fail(child(path, key), message);
    }
  }

  void require(const json& obj, const std::string& path, const char* key) const {
    if (!obj.contains(key)) fail(path, fmt::format("missing required field \"{}\"", key));
  }

  // Integers must be written as JSON integers: 64.0 or 6.4e1 is rejected, because a fraction or
  // exponent in a size is more likely a mistake than a style choice.
  long long get_integral(const json& v, const std::string& path) const {
    if (v.is_number_unsigned()) {
      const auto u = v.get<std::uint64_t>();
      return u > static_cast<std::uint64_t>(std::numeric_limits<long long>::max())
                 ? std::numeric_limits<long long>::max()
                 : static_cast<long long>(u);
    }
    if (v.is_number_integer()) return v.get<long long>();
    std::string message = "expected an integer, got " + describe(v);
    if (v.is_number_float()) message += " (write integers without a fraction or exponent)";
    fail(path, message);
  }

  int get_int(const json& v, const std::string& path, const IntRule& rule) const {
    const long long n = get_integral(v, path);
    check(path, int_problem(rule, n, v.dump()));
    return static_cast<int>(n);
  }

  bool get_bool(const json& v, const std::string& path) const {
    if (!v.is_boolean()) fail(path, "expected a boolean (true or false), got " + describe(v));
    return v.get<bool>();
  }

  double get_ln_eps(const json& v, const std::string& path) const {
    if (!v.is_number()) fail(path, "expected a number, got " + describe(v));
    const double eps = v.get<double>();
    check(path, ln_eps_problem(eps));
    return eps;
  }

  std::string get_name(const json& v, const std::string& path) const {
    if (!v.is_string()) fail(path, "expected a string, got " + describe(v));
    std::string name = v.get<std::string>();
    check(path, name_problem(name));
    return name;
  }

  // Index of a string among `choices`; `what` names the kind of value in the message.
  size_t get_choice(const json& v, const std::string& path, const char* what,
                    std::span<const std::string_view> choices) const {
    if (!v.is_string())
      fail(path,
           fmt::format("expected a string (one of {}), got {}", quoted_list(choices), describe(v)));
    const std::string s = v.get<std::string>();
    const auto it = std::find(choices.begin(), choices.end(), s);
    if (it != choices.end()) return static_cast<size_t>(it - choices.begin());
    std::string message =
        fmt::format("unknown {} {}; expected one of {}", what, quote(s), quoted_list(choices));
    if (auto guess = closest(s, choices)) message += fmt::format(" (did you mean \"{}\"?)", *guess);
    fail(path, message);
  }

  void parse_inner_model(const json& v, const std::string& path, Spec& s) const {
    if (v.is_string()) {  // shorthand: the type with every default
      s.model = static_cast<InnerModel>(get_choice(v, path, "inner model type", kModelNames));
      if (s.model == InnerModel::linear) s.depth = 1;
      return;
    }
    if (!v.is_object())
      fail(path, "expected an object or the string \"linear\" or \"mlp\", got " + describe(v));
    check_fields(v, path, kInnerModelFields);
    require(v, path, "type");
    const std::string type_path = child(path, "type");
    s.model =
        static_cast<InnerModel>(get_choice(v["type"], type_path, "inner model type", kModelNames));
    const json* depth = find(v, "depth");
    const json* expansion = find(v, "expansion");
    const json* activation = find(v, "activation");
    if (s.model == InnerModel::linear) {
      // Spelling out depth 1 is harmless; anything describing a hidden layer cannot apply.
      if (depth && get_integral(*depth, child(path, "depth")) != 1)
        fail(child(path, "depth"),
             fmt::format("a linear inner model has depth 1, got {} (use \"type\": \"mlp\" for "
                         "more layers)",
                         depth->dump()));
      for (const char* key : {"expansion", "activation"})
        if (v.contains(key))
          fail(child(path, key),
               fmt::format("\"{}\" is not allowed for a linear inner model (it has no hidden "
                           "layer); remove it or use \"type\": \"mlp\"",
                           key));
      s.depth = 1;
      return;
    }
    if (depth) s.depth = get_int(*depth, child(path, "depth"), kMlpDepth);
    if (expansion) s.expansion = get_int(*expansion, child(path, "expansion"), kExpansion);
    if (activation)
      s.activation = kActivations[get_choice(*activation, child(path, "activation"), "activation",
                                             kActivationNames)]
                         .value;
  }

  void parse_passes(const json& v, const std::string& path, Spec& s) const {
    if (!v.is_array())
      fail(path, "expected an array of pass names (\"forward\", \"backward\", \"decode\"), got " +
                     describe(v));
    if (v.empty()) fail(path, "must name at least one pass (\"forward\", \"backward\")");
    bool seen[std::size(kPassNames)] = {};
    for (size_t i = 0; i < v.size(); ++i) {
      const size_t pass = get_choice(v[i], element(path, i), "pass", kPassNames);
      if (seen[pass]) fail(element(path, i), fmt::format("duplicate pass {}", v[i].dump()));
      seen[pass] = true;
    }
    s.build_forward = seen[0];
    s.build_backward = seen[1];
    s.build_decode = seen[2];
    if (s.build_backward && !s.build_forward) fail(path, kBackwardNeedsForward);
    if (s.build_decode && !s.build_forward) fail(path, kDecodeNeedsForward);
    if (s.build_decode && !s.causal) fail(path, kDecodeNeedsCausal);  // $.causal is parsed first
  }

  std::string origin_;
};

// Shortest decimal that reads back as exactly the same double; std::to_chars guarantees this
// independently of locale and platform, unlike printf-style formatting.
std::string exact_number(double v) {
  char buf[64];
  const auto result = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, result.ptr);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public entry points.

Spec parse_spec(const std::string& text, const std::string& origin) {
  const json root = parse_json(text, origin);
  try {
    return Parser(origin).parse(root);
  } catch (const json::exception& e) {
    // The parser checks types before reading values, so this is a bug; still, bad input must
    // give a spec error that names the file, never a crash.
    throw SpecError(origin, "$", "cannot read the spec: " + nlohmann_reason(e));
  }
}

Spec load_spec_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw SpecError(path, "$", fmt::format("cannot open file: {}", std::strerror(errno)));
  std::string text;
  char buf[1 << 14];
  size_t n;
  // Reading stops just past the size limit (a FIFO or /dev/zero never ends); parse_json reports it.
  while (text.size() <= kMaxSpecBytes && (n = std::fread(buf, 1, sizeof buf, f)) > 0)
    text.append(buf, n);
  const bool failed = std::ferror(f);
  const int err = errno;  // e.g. EISDIR: opening a directory succeeds, reading it does not
  std::fclose(f);
  if (failed) throw SpecError(path, "$", fmt::format("cannot read file: {}", std::strerror(err)));
  if (text.size() > kMaxSpecBytes)  // only a prefix was read: its size is not the file's
    throw SpecError(path, "$",
                    fmt::format("file is too large: more than {} bytes (a spec is at most {})",
                                kMaxSpecBytes, kMaxSpecBytes));
  return parse_spec(text, path);
}

void validate_spec(const Spec& s, const std::string& origin) {
  auto check = [&](const char* path, const Problem& p) {
    if (p) throw SpecError(origin, path, *p);
  };
  if (!s.name.empty()) check("$.name", name_problem(s.name));
  if (s.model == InnerModel::linear) {
    if (s.depth != 1)
      throw SpecError(origin, "$.inner_model.depth",
                      fmt::format("a linear inner model has depth 1, got {}", s.depth));
  } else {
    check("$.inner_model.depth", int_problem(kMlpDepth, s.depth, std::to_string(s.depth)));
    check("$.inner_model.expansion",
          int_problem(kExpansion, s.expansion, std::to_string(s.expansion)));
  }
  check("$.head_dim", int_problem(kHeadDim, s.head_dim, std::to_string(s.head_dim)));
  check("$.mini_batch", int_problem(kMiniBatch, s.mini_batch, std::to_string(s.mini_batch)));
  check("$.checkpoint_group",
        int_problem(kCheckpointGroup, s.checkpoint_group, std::to_string(s.checkpoint_group)));
  check("$.ln_eps", ln_eps_problem(s.ln_eps));
  if (s.dtype == DType::i32)
    throw SpecError(origin, "$.dtype", "i32 is an index type, not a token dtype (f32, f16, bf16)");
  if (!s.build_forward && !s.build_backward)
    throw SpecError(origin, "$.passes", "must name at least one pass (\"forward\", \"backward\")");
  if (s.build_backward && !s.build_forward)
    throw SpecError(origin, "$.passes", kBackwardNeedsForward);
  if (s.build_decode && !s.build_forward) throw SpecError(origin, "$.passes", kDecodeNeedsForward);
  if (s.build_decode && !s.causal) throw SpecError(origin, "$.passes", kDecodeNeedsCausal);
}

std::string canonical_json(const Spec& s) {
  // Written out by hand rather than through json::dump so that ln_eps is printed by to_chars and
  // the layout is fixed by this code alone. Keys are in sorted (byte) order at every level.
  const std::string inner =
      s.model == InnerModel::linear
          ? std::string(R"({"depth":1,"type":"linear"})")
          : fmt::format(R"({{"activation":"{}","depth":{},"expansion":{},"type":"mlp"}})",
                        to_string(s.activation), s.depth, s.expansion);
  std::string passes;
  if (s.build_forward) passes += R"("forward")";
  if (s.build_backward) passes += passes.empty() ? R"("backward")" : R"(,"backward")";
  if (s.build_decode) passes += passes.empty() ? R"("decode")" : R"(,"decode")";
  return fmt::format(
      R"({{"causal":{},"checkpoint_group":{},"dtype":"{}","head_dim":{},"inner_model":{},)"
      R"("ln_eps":{},"mini_batch":{},"passes":[{}],"precision":"{}","tttc_spec":{}}})",
      s.causal ? "true" : "false", s.checkpoint_group, to_string(s.dtype), s.head_dim, inner,
      exact_number(s.ln_eps), s.mini_batch, passes, to_string(s.precision), kVersion);
}

std::string spec_signature(const Spec& spec) { return sha256_hex(canonical_json(spec)); }

nlohmann::json spec_to_json(const Spec& spec) {
  json j = json::parse(canonical_json(spec));
  if (!spec.name.empty()) j["name"] = spec.name;
  return j;
}

}  // namespace ttt
