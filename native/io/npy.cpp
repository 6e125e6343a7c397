#include "npy.h"

#include <cstring>
#include <map>

#include "../core/error.h"

namespace df {

namespace {

// A Python literal of the header dict: a string, a bool or a tuple of non-negative integers.
struct Literal {
  enum class Kind { String, Bool, Tuple } kind = Kind::String;
  std::string text;
  bool flag = false;
  std::vector<int64_t> items;
};

class HeaderParser {
 public:
  HeaderParser(const std::string& s, const std::string& what) : s_(s), what_(what) {}

  std::map<std::string, Literal> dict() {
    std::map<std::string, Literal> out;
    expect('{');
    while (peek() != '}') {
      if (peek() != '\'' && peek() != '"') error("expected a string key");
      std::string key = string();
      expect(':');
      if (!out.emplace(key, value()).second) error("key '" + key + "' appears twice");
      if (peek() == ',') pos_++;
      else if (peek() != '}') error("expected ',' or '}'");
    }
    pos_++;
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n')) pos_++;
    if (pos_ != s_.size()) error("unexpected characters after the dict");
    return out;
  }

 private:
  [[noreturn]] void error(const std::string& why) {
    fail(Code::Format, what_ + ": unreadable .npy header at byte " + std::to_string(pos_) + ": " + why);
  }
  char peek() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n')) pos_++;
    if (pos_ >= s_.size()) error("unexpected end");
    return s_[pos_];
  }
  void expect(char c) {
    if (peek() != c) error(std::string("expected '") + c + "'");
    pos_++;
  }
  std::string string() {
    char quote = s_[pos_++];
    size_t end = s_.find(quote, pos_);
    if (end == std::string::npos) error("unterminated string");
    std::string out = s_.substr(pos_, end - pos_);
    if (out.find('\\') != std::string::npos) error("escapes are not expected in a .npy header");
    pos_ = end + 1;
    return out;
  }
  int64_t integer() {
    size_t start = pos_;
    int64_t v = 0;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      if (v > (int64_t(1) << 48)) error("dimension too large");
      v = v * 10 + (s_[pos_++] - '0');
    }
    if (pos_ == start) error("expected a non-negative integer");
    if (pos_ < s_.size() && s_[pos_] == 'L') pos_++;  // Python 2's long suffix
    return v;
  }
  Literal value() {
    Literal v;
    char c = peek();
    if (c == '\'' || c == '"') {
      v.text = string();
      return v;
    }
    if (s_.compare(pos_, 4, "True") == 0 || s_.compare(pos_, 5, "False") == 0) {
      v.kind = Literal::Kind::Bool;
      v.flag = s_[pos_] == 'T';
      pos_ += v.flag ? 4 : 5;
      return v;
    }
    if (c != '(') error("expected a string, True, False or a tuple");
    v.kind = Literal::Kind::Tuple;
    pos_++;
    while (peek() != ')') {
      if (v.items.size() >= 8) error("more than 8 dimensions");
      v.items.push_back(integer());
      if (peek() == ',') pos_++;
      else if (peek() != ')') error("expected ',' or ')'");
    }
    pos_++;
    return v;
  }

  const std::string& s_;
  const std::string& what_;
  size_t pos_ = 0;
};

}  // namespace

NpyHeader parse_npy(const uint8_t* bytes, size_t size, const std::string& what) {
  if (size < 10 || std::memcmp(bytes, "\x93NUMPY", 6) != 0)
    fail(Code::Format, what + ": not a .npy file (no \\x93NUMPY magic)");
  const int major = bytes[6];
  if (major < 1 || major > 3) fail(Code::Format, what + ": .npy version " + std::to_string(major) + " is not supported");
  size_t start = major == 1 ? 10 : 12;
  if (size < start) fail(Code::Format, what + ": truncated .npy header");
  uint64_t len = major == 1 ? uint64_t(bytes[8]) | uint64_t(bytes[9]) << 8
                            : uint64_t(bytes[8]) | uint64_t(bytes[9]) << 8 | uint64_t(bytes[10]) << 16 | uint64_t(bytes[11]) << 24;
  if (len > size - start)
    fail(Code::Format, what + ": .npy header of " + std::to_string(len) + " bytes exceeds the file of " + std::to_string(size));
  std::string text(reinterpret_cast<const char*>(bytes + start), size_t(len));
  auto dict = HeaderParser(text, what).dict();
  auto field = [&](const char* key, Literal::Kind kind) -> const Literal& {
    auto it = dict.find(key);
    if (it == dict.end() || it->second.kind != kind) fail(Code::Format, what + ": .npy header without a valid '" + std::string(key) + "'");
    return it->second;
  };
  if (dict.size() != 3) fail(Code::Format, what + ": .npy header: expected exactly descr, fortran_order and shape");
  const std::string& descr = field("descr", Literal::Kind::String).text;
  if (field("fortran_order", Literal::Kind::Bool).flag) fail(Code::Format, what + ": Fortran-ordered arrays are not supported");
  NpyHeader h;
  h.shape = field("shape", Literal::Kind::Tuple).items;
  h.data_offset = start + size_t(len);
  size_t item = 0;
  if (descr == "|u1" || descr == "<u1") h.type = NpyType::U8, item = 1;
  else if (descr == "<f4") h.type = NpyType::F32, item = 4;
  else if (descr == "<f8") h.type = NpyType::F64, item = 8;
  else fail(Code::Format, what + ": dtype " + descr + " is not supported (float32, float64 or uint8, little-endian)");
  const uint64_t available = size - h.data_offset;
  uint64_t count = 1;
  std::string dims;
  for (int64_t d : h.shape) {
    if (d != 0 && count > available / uint64_t(d) + 1)
      fail(Code::Format, what + ": shape larger than the " + std::to_string(available) + " bytes of data");
    count *= uint64_t(d);
    dims += (dims.empty() ? "" : ", ") + std::to_string(d);
  }
  if (count * item != available)
    fail(Code::Format, what + ": " + std::to_string(available) + " bytes of data for shape (" + dims + ") of " + descr);
  return h;
}

NpyImages npy_images(const uint8_t* bytes, size_t size, const std::string& what) {
  NpyHeader h = parse_npy(bytes, size, what);
  const uint8_t* body = bytes + h.data_offset;
  NpyImages out;
  uint64_t count = 1;
  for (int64_t d : h.shape) count *= uint64_t(d);  // checked against the data by parse_npy
  std::string dims;
  for (int64_t d : h.shape) dims += (dims.empty() ? "" : ", ") + std::to_string(d);
  if (h.type != NpyType::U8) {
    if (h.shape.size() != 4) fail(Code::Shape, what + ": float arrays must be [N, C, H, W], got (" + dims + ")");
    out.shape = h.shape;
    size_t n = size_t(count);
    out.data.resize(n);
    for (size_t i = 0; i < n; i++) {
      if (h.type == NpyType::F32) std::memcpy(&out.data[i], body + 4 * i, 4);
      else {
        double d;
        std::memcpy(&d, body + 8 * i, 8);
        out.data[i] = float(d);
      }
    }
    return out;
  }
  std::vector<int64_t> nhwc = h.shape;
  if (nhwc.size() == 3) nhwc.push_back(1);
  if (nhwc.size() != 4) fail(Code::Shape, what + ": uint8 arrays must be [N, H, W] or [N, H, W, C], got (" + dims + ")");
  const int64_t n = nhwc[0], ht = nhwc[1], w = nhwc[2], c = nhwc[3];
  out.shape = {n, c, ht, w};
  // no elements: no loops (a shape like (2e11, 0, 4) would spin through 2e11 empty rows; fuzz_npy)
  if (count == 0) return out;
  out.data.resize(size_t(count));
  for (int64_t i = 0; i < n; i++)
    for (int64_t y = 0; y < ht; y++)
      for (int64_t x = 0; x < w; x++)
        for (int64_t ch = 0; ch < c; ch++)
          out.data[size_t(((i * c + ch) * ht + y) * w + x)] =
              float(double(body[((i * ht + y) * w + x) * c + ch]) / 127.5 - 1.0);
  return out;
}

}  // namespace df
