// npy.cpp: the .npy header parser/writer, POSIX file I/O (writes through the cache's atomic
// publish) and the half/float conversions declared in npy.hpp. The header is a Python dict literal;
// a small recursive-descent parser for the literal subset NumPy emits avoids needing Python at run
// time.
#include "runtime/harness/npy.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <utility>

#include "cache/fs.hpp"

namespace ttt::npy {

// Element bytes are copied verbatim between memory and '<' files; a big-endian host would need
// byte swapping that nothing here does. Every host tttc targets (x86-64, aarch64) is little-endian.
static_assert(std::endian::native == std::endian::little, "ttt::npy assumes a little-endian host");

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicLen = 6;
constexpr std::size_t kAlign = 64;  // NumPy's ARRAY_ALIGN: lets readers mmap the data aligned

[[noreturn]] void fail(const std::string& path, std::string_view what) {
  throw NpyError(fmt::format("{}: {}", path, what));
}

std::string os_error(int err) { return std::strerror(err); }

// Printable rendering of untrusted bytes for error messages (headers, magic), cut to `limit`.
std::string escape(std::string_view text, std::size_t limit = 200) {
  std::string out;
  for (std::size_t i = 0; i < text.size() && i < limit; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  if (text.size() > limit) out += "...";
  return out;
}

std::string shape_string(const std::vector<int64_t>& shape, std::string_view open,
                         std::string_view close, bool python_tuple) {
  std::string out(open);
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  if (python_tuple && shape.size() == 1) out += ",";  // (3,) is a tuple, (3) is not
  out += close;
  return out;
}

// numel * element size, or nullopt when a dimension is negative or the product overflows.
std::optional<uint64_t> byte_count(const std::vector<int64_t>& shape, ElementType type) {
  uint64_t total = element_size(type);
  for (int64_t dim : shape) {
    if (dim < 0) return std::nullopt;
    if (__builtin_mul_overflow(total, static_cast<uint64_t>(dim), &total)) return std::nullopt;
  }
  // Element counts must also fit int64_t (numel()) and a byte count must fit size_t.
  if (total > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
  return total;
}

// ---- Header literal parsing -------------------------------------------------------------------

// A Python literal value as it appears in a .npy header.
struct Value {
  enum class Kind { str, boolean, integer, tuple, list, dict, none } kind = Kind::none;
  std::string str;
  bool boolean = false;
  int64_t integer = 0;
  std::vector<Value> items;
  std::string_view raw;  // source text, for error messages
};

// Parses the Python literal subset NumPy writes: dicts, str, bool, None, int (with Python 2's 'L'
// suffix, which old files carry), tuples and lists (structured dtypes). Errors are plain strings
// that the caller prefixes with the path.
class LiteralParser {
 public:
  explicit LiteralParser(std::string_view text) : text_(text) {}

  Value parse_document() {
    skip_space();
    Value v = parse_value();
    skip_space();
    if (pos_ != text_.size()) {
      std::string_view rest = text_.substr(pos_, 20);
      error(fmt::format("unexpected '{}' after the dict", escape(rest.substr(0, rest.find(' ')))));
    }
    return v;
  }

  struct Failure {
    std::string message;
  };

 private:
  [[noreturn]] void error(std::string message) { throw Failure{std::move(message)}; }

  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }
  bool at(char c) const { return pos_ < text_.size() && text_[pos_] == c; }
  [[noreturn]] void unexpected(std::string_view wanted) {
    error(pos_ < text_.size() ? fmt::format("expected {} at offset {}, found '{}'", wanted, pos_,
                                            escape(text_.substr(pos_, 1)))
                              : fmt::format("expected {} but the header ended", wanted));
  }
  void expect(char c) {
    skip_space();
    if (!at(c)) unexpected(fmt::format("'{}'", c));
    ++pos_;
  }

  Value parse_value() {
    skip_space();
    std::size_t start = pos_;
    Value v;
    if (pos_ >= text_.size()) error("expected a value but the header ended");
    char c = text_[pos_];
    if (c == '{' || c == '(' || c == '[') {
      // Bounds recursion so a hostile header like "((((..." cannot overflow the stack.
      if (++depth_ > kMaxDepth) error(fmt::format("values nested deeper than {}", kMaxDepth));
      v = c == '{' ? parse_dict() : parse_sequence();
      --depth_;
    } else if (c == '\'' || c == '"') {
      v.kind = Value::Kind::str;
      v.str = parse_string();
    } else if (c == '-' || c == '+' || (c >= '0' && c <= '9')) {
      v.kind = Value::Kind::integer;
      v.integer = parse_integer();
    } else if (std::isalpha(static_cast<unsigned char>(c))) {
      std::size_t end = pos_;
      while (end < text_.size() &&
             (std::isalnum(static_cast<unsigned char>(text_[end])) || text_[end] == '_'))
        ++end;
      std::string_view word = text_.substr(pos_, end - pos_);
      if (word == "True" || word == "False") {
        v.kind = Value::Kind::boolean;
        v.boolean = word == "True";
      } else if (word == "None") {
        v.kind = Value::Kind::none;
      } else {
        error(fmt::format("unknown name '{}' at offset {}", escape(word), pos_));
      }
      pos_ = end;
    } else {
      error(fmt::format("unexpected '{}' at offset {}", escape(text_.substr(pos_, 1)), pos_));
    }
    // Compound values set raw themselves (a parenthesized scalar keeps its parentheses).
    if (v.raw.empty()) v.raw = text_.substr(start, pos_ - start);
    return v;
  }

  Value parse_dict() {
    std::size_t start = pos_;
    Value v;
    v.kind = Value::Kind::dict;
    expect('{');
    skip_space();
    while (!at('}')) {
      Value key = parse_value();
      expect(':');
      Value value = parse_value();
      // Keep keys as the first element of a 2-tuple so the caller can look them up.
      Value entry;
      entry.kind = Value::Kind::tuple;
      entry.items = {std::move(key), std::move(value)};
      v.items.push_back(std::move(entry));
      skip_space();
      if (at(',')) {
        ++pos_;
        skip_space();
      } else if (!at('}')) {
        unexpected("',' or '}'");
      }
    }
    ++pos_;
    v.raw = text_.substr(start, pos_ - start);
    return v;
  }

  Value parse_sequence() {
    std::size_t start = pos_;
    char open = text_[pos_++];
    char close = open == '(' ? ')' : ']';
    Value v;
    v.kind = open == '(' ? Value::Kind::tuple : Value::Kind::list;
    bool trailing_comma = false;
    skip_space();
    while (!at(close)) {
      v.items.push_back(parse_value());
      trailing_comma = false;
      skip_space();
      if (at(',')) {
        ++pos_;
        trailing_comma = true;
        skip_space();
      } else if (!at(close)) {
        unexpected(fmt::format("',' or '{}'", close));
      }
    }
    ++pos_;
    if (open == '(' && v.items.size() == 1 && !trailing_comma) {
      Value inner = std::move(v.items[0]);
      inner.raw = text_.substr(start, pos_ - start);
      return inner;
    }
    v.raw = text_.substr(start, pos_ - start);
    return v;
  }

  std::string parse_string() {
    char quote = text_[pos_++];
    std::string out;
    while (pos_ < text_.size() && text_[pos_] != quote) {
      if (text_[pos_] == '\\') {
        // NumPy never escapes inside descr strings; copy the escaped character literally.
        ++pos_;
        if (pos_ >= text_.size()) break;
      }
      out += text_[pos_++];
    }
    if (pos_ >= text_.size()) error("unterminated string");
    ++pos_;
    return out;
  }

  int64_t parse_integer() {
    bool negative = false;
    if (text_[pos_] == '+' || text_[pos_] == '-') negative = text_[pos_++] == '-';
    std::size_t digits_start = pos_;
    uint64_t magnitude = 0;
    bool overflow = false;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      overflow |= __builtin_mul_overflow(magnitude, 10u, &magnitude);
      overflow |=
          __builtin_add_overflow(magnitude, static_cast<uint64_t>(text_[pos_] - '0'), &magnitude);
      ++pos_;
    }
    if (pos_ == digits_start) error(fmt::format("expected digits at offset {}", pos_));
    std::string_view digits = text_.substr(digits_start, pos_ - digits_start);
    if (at('L') || at('l')) ++pos_;  // Python 2 long literal
    uint64_t limit = negative ? uint64_t{1} << 63 : static_cast<uint64_t>(INT64_MAX);
    if (overflow || magnitude > limit)
      error(fmt::format("integer {}{} does not fit in 64 bits", negative ? "-" : "", digits));
    return negative ? static_cast<int64_t>(0 - magnitude) : static_cast<int64_t>(magnitude);
  }

  static constexpr int kMaxDepth = 32;
  std::string_view text_;
  std::size_t pos_ = 0;
  int depth_ = 0;
};

struct Header {
  ElementType type;
  std::vector<int64_t> shape;
};

// Friendly names for descrs NumPy commonly writes that we do not support.
std::string dtype_hint(std::string_view code) {
  static constexpr std::pair<std::string_view, std::string_view> kNames[] = {
      {"b1", "bool"},        {"i1", "int8"},
      {"u1", "uint8"},       {"i2", "int16"},
      {"u2", "uint16"},      {"u4", "uint32"},
      {"u8", "uint64"},      {"f12", "float96"},
      {"f16", "float128"},   {"c8", "complex64"},
      {"c16", "complex128"}, {"c32", "complex256"},
      {"O", "object"},       {"V2", "bfloat16 or void"}};
  for (auto [c, name] : kNames)
    if (c == code) return fmt::format(" ({})", name);
  if (!code.empty()) {
    switch (code[0]) {
      case 'U':
        return " (unicode string)";
      case 'S':
        return " (bytes)";
      case 'V':
        return " (void/raw bytes)";
      case 'M':
        return " (datetime64)";
      case 'm':
        return " (timedelta64)";
    }
  }
  return "";
}

constexpr std::string_view kSupported =
    "supported: float16 '<f2', float32 '<f4', float64 '<f8', int32 '<i4', int64 '<i8'";

ElementType parse_descr(const std::string& path, const Value& descr_value) {
  if (descr_value.kind != Value::Kind::str) {
    if (descr_value.kind == Value::Kind::list || descr_value.kind == Value::Kind::dict)
      fail(path, fmt::format("unsupported dtype {} (structured arrays are not supported; {})",
                             escape(descr_value.raw), kSupported));
    fail(path, fmt::format("malformed header dict: 'descr' must be a string, got {}",
                           escape(descr_value.raw)));
  }
  const std::string& d = descr_value.str;
  // '<' is little-endian; '=' is native and '|' "not applicable", both meaning host order, which
  // is little-endian (see the static_assert). NumPy writes descrs with an order mark but accepts
  // ones without, so do we.
  char order = d.empty() ? '\0' : d[0];
  std::string_view code = d;
  if (order == '<' || order == '>' || order == '=' || order == '|') code.remove_prefix(1);
  std::optional<ElementType> type;
  if (code == "f2") type = ElementType::f16;
  if (code == "f4") type = ElementType::f32;
  if (code == "f8") type = ElementType::f64;
  if (code == "i4") type = ElementType::i32;
  if (code == "i8") type = ElementType::i64;
  if (!type)
    fail(path,
         fmt::format("unsupported dtype '{}'{}; {}", escape(d), dtype_hint(code), kSupported));
  if (order == '>')
    fail(path,
         fmt::format("unsupported dtype '{}': big-endian data is not supported; convert it with "
                     "a.astype('{}') before saving",
                     escape(d), descr(*type)));
  return *type;
}

Header parse_header(const std::string& path, std::string_view text) {
  Value dict;
  try {
    dict = LiteralParser(text).parse_document();
  } catch (const LiteralParser::Failure& f) {
    fail(path, fmt::format("malformed header dict: {} (header: \"{}\")", f.message, escape(text)));
  }
  auto malformed = [&](std::string_view what) {
    fail(path, fmt::format("malformed header dict: {} (header: \"{}\")", what, escape(text)));
  };
  if (dict.kind != Value::Kind::dict) malformed("the header is not a dict");
  const Value* descr_v = nullptr;
  const Value* fortran_v = nullptr;
  const Value* shape_v = nullptr;
  for (const Value& entry : dict.items) {
    const Value& key = entry.items[0];
    if (key.kind != Value::Kind::str) malformed(fmt::format("key {} is not a string", key.raw));
    const Value** slot = key.str == "descr"           ? &descr_v
                         : key.str == "fortran_order" ? &fortran_v
                         : key.str == "shape"         ? &shape_v
                                                      : nullptr;
    if (!slot) malformed(fmt::format("unexpected key '{}'", escape(key.str)));
    if (*slot) malformed(fmt::format("duplicate key '{}'", key.str));
    *slot = &entry.items[1];
  }
  if (!descr_v) malformed("missing key 'descr'");
  if (!fortran_v) malformed("missing key 'fortran_order'");
  if (!shape_v) malformed("missing key 'shape'");

  Header h;
  h.type = parse_descr(path, *descr_v);
  if (fortran_v->kind != Value::Kind::boolean)
    malformed(fmt::format("'fortran_order' must be True or False, got {}", fortran_v->raw));
  if (shape_v->kind != Value::Kind::tuple)
    malformed(fmt::format("'shape' must be a tuple of ints, got {}", shape_v->raw));
  for (const Value& dim : shape_v->items) {
    if (dim.kind != Value::Kind::integer)
      malformed(fmt::format("'shape' must be a tuple of ints, got {}", shape_v->raw));
    h.shape.push_back(dim.integer);
  }
  for (int64_t dim : h.shape)
    if (dim < 0)
      fail(path, fmt::format("invalid shape {}: dimension {} is negative", shape_v->raw, dim));
  if (fortran_v->boolean)
    fail(path,
         "fortran_order is True (column-major data), which is not supported: pass a C-contiguous "
         "array, e.g. np.save(path, np.ascontiguousarray(a))");
  if (!byte_count(h.shape, h.type))
    fail(path, fmt::format("shape {} is too large: the data size overflows 64 bits", shape_v->raw));
  return h;
}

// ---- POSIX I/O --------------------------------------------------------------------------------

// Reads until `size` bytes or end of file; returns the count read.
std::size_t read_up_to(const std::string& path, int fd, uint8_t* out, std::size_t size) {
  std::size_t done = 0;
  while (done < size) {
    ssize_t n = ::read(fd, out + done, size - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(path, "cannot read: " + os_error(errno));
    }
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  return done;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

uint32_t load_le(const uint8_t* p, int n) {
  uint32_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void check_consistent(const Array& a, std::string_view context) {
  auto bytes = byte_count(a.shape, a.type);
  if (!bytes)
    throw NpyError(fmt::format("{}: invalid shape {} (negative or overflowing dimension)", context,
                               shape_string(a.shape, "(", ")", true)));
  if (*bytes != a.bytes.size())
    throw NpyError(fmt::format("{}: array {} has {} data bytes, expected {}", context, describe(a),
                               a.bytes.size(), *bytes));
}

}  // namespace

// ---- Element types ----------------------------------------------------------------------------

std::size_t element_size(ElementType type) {
  switch (type) {
    case ElementType::f16:
      return 2;
    case ElementType::f32:
    case ElementType::i32:
      return 4;
    case ElementType::f64:
    case ElementType::i64:
      return 8;
  }
  throw NpyError("invalid ElementType");
}

std::string_view dtype_name(ElementType type) {
  switch (type) {
    case ElementType::f16:
      return "float16";
    case ElementType::f32:
      return "float32";
    case ElementType::f64:
      return "float64";
    case ElementType::i32:
      return "int32";
    case ElementType::i64:
      return "int64";
  }
  throw NpyError("invalid ElementType");
}

std::string_view descr(ElementType type) {
  switch (type) {
    case ElementType::f16:
      return "<f2";
    case ElementType::f32:
      return "<f4";
    case ElementType::f64:
      return "<f8";
    case ElementType::i32:
      return "<i4";
    case ElementType::i64:
      return "<i8";
  }
  throw NpyError("invalid ElementType");
}

int64_t Array::numel() const {
  int64_t n = 1;
  for (int64_t dim : shape) n *= dim;
  return n;
}

std::string describe(const Array& array) {
  return fmt::format("{}{}", dtype_name(array.type), shape_string(array.shape, "[", "]", false));
}

// ---- read -------------------------------------------------------------------------------------

Array read(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) fail(path, "cannot open: " + os_error(errno));

  // Magic (6), version (2), header length (2 for 1.0, 4 for 2.0 and 3.0).
  uint8_t pre[12];
  std::size_t got = read_up_to(path, fd.get(), pre, 8);
  if (got == 0) fail(path, "bad magic: the file is empty, not a .npy file");
  if (got < kMagicLen || std::memcmp(pre, kMagic, kMagicLen) != 0) {
    fail(path, fmt::format("bad magic: not a .npy file (expected \"\\x93NUMPY\", found \"{}\")",
                           escape(std::string_view(reinterpret_cast<char*>(pre), got))));
  }
  if (got < 8) fail(path, "truncated header: the file ends inside the format version");
  int major = pre[6], minor = pre[7];
  if (minor != 0 || major < 1 || major > 3)
    fail(path, fmt::format("unsupported .npy format version {}.{} (supported: 1.0, 2.0, 3.0)",
                           major, minor));
  int len_bytes = major == 1 ? 2 : 4;
  if (read_up_to(path, fd.get(), pre + 8, len_bytes) != static_cast<std::size_t>(len_bytes))
    fail(path, "truncated header: the file ends inside the header length");
  std::size_t header_len = load_le(pre + 8, len_bytes);

  // Read the header in bounded chunks so a corrupt length field cannot force a 4 GiB allocation.
  std::string header;
  while (header.size() < header_len) {
    std::size_t old = header.size();
    std::size_t chunk = std::min<std::size_t>(header_len - old, 1 << 16);
    header.resize(old + chunk);
    std::size_t n =
        read_up_to(path, fd.get(), reinterpret_cast<uint8_t*>(header.data()) + old, chunk);
    if (n < chunk)
      fail(path, fmt::format("truncated header: the header length field says {} bytes but the "
                             "file ends after {}",
                             header_len, old + n));
  }
  // 1.0/2.0 headers are latin-1 and 3.0 is UTF-8; the keys and values we accept are ASCII, so
  // non-ASCII bytes can only appear in strings, which are then rejected by value.
  Header h = parse_header(path, header);

  Array array;
  array.type = h.type;
  array.shape = std::move(h.shape);
  const std::size_t expected = static_cast<std::size_t>(*byte_count(array.shape, array.type));
  const std::size_t data_offset = kMagicLen + 2 + len_bytes + header_len;

  // For regular files the size is known: report truncation before allocating, and reserve exactly.
  struct stat st {};
  std::optional<std::size_t> known_size;  // bytes after the header, for regular files
  if (::fstat(fd.get(), &st) == 0 && S_ISREG(st.st_mode)) {
    auto file_size = static_cast<std::size_t>(st.st_size);
    known_size = file_size > data_offset ? file_size - data_offset : 0;
    if (*known_size < expected)
      fail(path, fmt::format("truncated data: {} needs {} bytes but only {} follow the header",
                             describe(array), expected, *known_size));
    array.bytes.reserve(expected);
  }
  // Chunked growth also handles pipes, whose size is unknown.
  while (array.bytes.size() < expected) {
    std::size_t old = array.bytes.size();
    std::size_t chunk = std::min<std::size_t>(expected - old, std::size_t{64} << 20);
    array.bytes.resize(old + chunk);
    std::size_t n = read_up_to(path, fd.get(), array.bytes.data() + old, chunk);
    if (n < chunk) {
      fail(path, fmt::format("truncated data: {} needs {} bytes but only {} follow the header",
                             describe(array), expected, old + n));
    }
  }
  // Anything after the data means the file is not what its header says (e.g. a wrong shape).
  std::size_t trailing = 0;
  if (known_size) {
    trailing = *known_size - expected;
  } else {
    uint8_t scratch[1 << 14];
    for (std::size_t n; (n = read_up_to(path, fd.get(), scratch, sizeof scratch)) > 0;)
      trailing += n;
  }
  if (trailing > 0)
    fail(path, fmt::format("trailing garbage: {} unexpected bytes after the {} data bytes of {}",
                           trailing, expected, describe(array)));
  return array;
}

// ---- write ------------------------------------------------------------------------------------

void write(const std::string& path, const Array& array) {
  check_consistent(array, path + ": cannot write");

  std::string dict = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
                                 descr(array.type), shape_string(array.shape, "(", ")", true));
  // Pad with spaces and end with '\n' so the data starts at a multiple of kAlign.
  auto padded_len = [&](std::size_t preamble) {
    std::size_t unpadded = preamble + dict.size() + 1;
    return dict.size() + 1 + (kAlign - unpadded % kAlign) % kAlign;
  };
  int major = 1;
  std::size_t preamble = kMagicLen + 2 + 2;
  std::size_t header_len = padded_len(preamble);
  if (header_len > 0xffff) {
    major = 2;
    preamble = kMagicLen + 2 + 4;
    header_len = padded_len(preamble);
    if (header_len > 0xffffffffu) throw NpyError(path + ": cannot write: header too large");
  }
  std::string head(kMagic, kMagicLen);
  head += static_cast<char>(major);
  head += '\0';
  for (int i = 0; i < (major == 1 ? 2 : 4); ++i)
    head += static_cast<char>((header_len >> (8 * i)) & 0xff);
  head += dict;
  head.append(header_len - dict.size() - 1, ' ');
  head += '\n';

  // Readers see the old file or the complete new one (the kernel cache's atomic publish); the
  // umask decides permissions, like a normal create.
  const std::error_code error = cache::write_file_atomic(
      path,
      {head,
       std::string_view(reinterpret_cast<const char*>(array.bytes.data()), array.bytes.size())},
      {.durable = true, .mode = 0666});
  if (error) fail(path, "cannot write: " + error.message());
}

// ---- Conversions ------------------------------------------------------------------------------

float half_to_float(uint16_t half) {
  uint32_t sign = static_cast<uint32_t>(half & 0x8000) << 16;
  uint32_t exp = (half >> 10) & 0x1f;
  uint32_t mant = half & 0x3ff;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf, or NaN with its payload (and quiet bit)
  } else if (exp != 0) {
    bits = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;  // signed zero
  } else {
    // Subnormal: mant * 2^-24. Normalize so the leading 1 becomes the implicit bit.
    int shift = std::countl_zero(mant) - 21;  // bits to move the leading 1 up to bit 10
    mant = (mant << shift) & 0x3ff;
    bits = sign | (static_cast<uint32_t>(127 - 14 - shift) << 23) | (mant << 13);
  }
  return std::bit_cast<float>(bits);
}

uint16_t float_to_half(float value) {
  uint32_t bits = std::bit_cast<uint32_t>(value);
  auto sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  uint32_t abs = bits & 0x7fffffffu;
  if (abs >= 0x7f800000u) {
    if (abs == 0x7f800000u) return sign | 0x7c00;  // inf
    // NaN: keep the top 10 payload bits; if they are all zero, set one so it stays a NaN.
    uint16_t payload = static_cast<uint16_t>((abs >> 13) & 0x3ff);
    return sign | 0x7c00 | (payload ? payload : 1);
  }
  if (abs >= 0x47800000u) return sign | 0x7c00;  // >= 65536 = 2^16: overflows even before rounding
  if (abs >= 0x38800000u) {
    // Normal half range (>= 2^-14). Rounding may carry into the exponent, which is correct,
    // including a carry from 65504 + ulp/2 up to the inf encoding 0x7c00.
    uint32_t h = (((abs >> 23) - 127 + 15) << 10) | ((abs >> 13) & 0x3ff);
    uint32_t rest = abs & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;
    return sign | static_cast<uint16_t>(h);
  }
  // Subnormal half (or zero): the result is round(|value| / 2^-24). |value| <= 2^-25 rounds to 0
  // (2^-25 itself is a tie and 0 is even).
  if (abs <= 0x33000000u) return sign;
  uint32_t mant = (abs & 0x7fffff) | 0x800000;    // value = mant * 2^(e - 150)
  int shift = 126 - static_cast<int>(abs >> 23);  // 14..24 here
  uint32_t h = mant >> shift;
  uint32_t rest = mant & ((1u << shift) - 1);
  uint32_t halfway = 1u << (shift - 1);
  if (rest > halfway || (rest == halfway && (h & 1))) ++h;  // may carry into the smallest normal
  return sign | static_cast<uint16_t>(h);
}

namespace {

template <typename T>
std::vector<T> to_float_vector(const Array& array, std::string_view target) {
  check_consistent(array, fmt::format("to_{}", target == "float32" ? "f32" : "f64"));
  const std::size_t n = static_cast<std::size_t>(array.numel());
  std::vector<T> out(n);
  const uint8_t* src = array.bytes.data();
  switch (array.type) {
    case ElementType::f16:
      for (std::size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        out[i] = static_cast<T>(half_to_float(h));
      }
      break;
    case ElementType::f32:
      for (std::size_t i = 0; i < n; ++i) {
        float f;
        std::memcpy(&f, src + 4 * i, 4);
        out[i] = static_cast<T>(f);
      }
      break;
    case ElementType::f64:
      for (std::size_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, src + 8 * i, 8);
        out[i] = static_cast<T>(d);
      }
      break;
    case ElementType::i32:
    case ElementType::i64:
      throw NpyError(fmt::format(
          "cannot convert {} to {}: integer arrays are not converted implicitly; save a float "
          "array (e.g. a.astype(np.float32))",
          describe(array), target));
  }
  return out;
}

template <typename T>
Array from_vector(ElementType type, std::vector<int64_t> shape, const std::vector<T>& data) {
  Array a;
  a.type = type;
  a.shape = std::move(shape);
  auto bytes = byte_count(a.shape, type);
  if (!bytes || *bytes != data.size() * sizeof(T))
    throw NpyError(fmt::format("from_{}: shape {} does not match {} values",
                               type == ElementType::f32 ? "f32" : "f64",
                               shape_string(a.shape, "(", ")", true), data.size()));
  a.bytes.resize(*bytes);
  if (*bytes) std::memcpy(a.bytes.data(), data.data(), *bytes);
  return a;
}

}  // namespace

std::vector<float> to_f32(const Array& array) { return to_float_vector<float>(array, "float32"); }
std::vector<double> to_f64(const Array& array) { return to_float_vector<double>(array, "float64"); }

Array from_f32(std::vector<int64_t> shape, const std::vector<float>& data) {
  return from_vector(ElementType::f32, std::move(shape), data);
}
Array from_f64(std::vector<int64_t> shape, const std::vector<double>& data) {
  return from_vector(ElementType::f64, std::move(shape), data);
}

}  // namespace ttt::npy
