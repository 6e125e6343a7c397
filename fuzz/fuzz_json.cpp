// The JSON reader of safetensors headers and checkpoint metadata, on arbitrary text. What it accepts
// must survive being written back with quote() for every string it holds.
#include <string>

#include "fuzz_util.h"
#include "io/json.h"

static void check_strings(const df::json::Value& v, int depth) {
  FUZZ_ASSERT(depth <= 64);
  for (const auto& kv : v.object) {
    df::json::Value again = df::json::parse(df::json::quote(kv.first), "requote");
    FUZZ_ASSERT(again.is_string() && again.string == kv.first);
    check_strings(kv.second, depth + 1);
  }
  for (const auto& e : v.array) check_strings(e, depth + 1);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  refuse_only_with_df_error([&] {
    df::json::Value v = df::json::parse(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    check_strings(v, 0);
  });
  return 0;
}
