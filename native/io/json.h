// A small JSON reader and string escaper for safetensors headers and model configs. The reader
// is strict (RFC 8259, no trailing commas or comments), bounds its nesting depth, and reports a
// malformed document as Code::Format with the byte offset: file contents never crash it.
// Kept rather than replaced by nlohmann::json (issue 15, bench/RESULTS.md): fuzzed with no finding
// over millions of inputs (fuzz/fuzz_json.cpp, and through fuzz_safetensors and fuzz_config), 1.6x
// as fast on a large checkpoint header (bench/native/json_parse.cpp), it keeps duplicate keys (which
// the safetensors reader refuses; nlohmann's DOM silently keeps one), and it spares every user who
// builds decoflow at `npm install` a system header package.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace df::json {

struct Value {
  enum class Kind { Null, Bool, Number, String, Array, Object } kind = Kind::Null;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<Value> array;
  std::vector<std::pair<std::string, Value>> object;  // in document order

  bool is_object() const { return kind == Kind::Object; }
  bool is_array() const { return kind == Kind::Array; }
  bool is_string() const { return kind == Kind::String; }
  bool is_number() const { return kind == Kind::Number; }
  bool is_bool() const { return kind == Kind::Bool; }
  // The member `key` of an object, or null when absent (or not an object).
  const Value* find(const std::string& key) const;
};

// Parses `text`; `what` names the document in error messages (e.g. "safetensors header of x.st").
Value parse(const std::string& text, const std::string& what);

std::string quote(const std::string& s);  // a JSON string literal

}  // namespace df::json
