// The model config of a checkpoint's metadata (DiTConfig::from_json), on arbitrary text. A config it
// accepts is valid and survives its own to_json.
#include <string>

#include "fuzz_util.h"
#include "model/dit.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  refuse_only_with_df_error([&] {
    df::DiTConfig c = df::DiTConfig::from_json(std::string(reinterpret_cast<const char*>(data), size));
    df::DiTConfig again = df::DiTConfig::from_json(c.to_json());
    FUZZ_ASSERT(again == c);
  });
  return 0;
}
