// The safetensors reader on arbitrary bytes: the header length, the header JSON and every claim in it.
#include <vector>

#include "fuzz_util.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  refuse_only_with_df_error([&] {
    df::SafetensorsFile f = df::SafetensorsFile::parse(std::vector<uint8_t>(data, data + size), "fuzz");
    uint64_t covered = 0;
    for (const auto& e : f.entries()) {
      FUZZ_ASSERT(e.end > e.begin);
      covered += e.end - e.begin;
      touch(f.bytes(e), size_t(e.end - e.begin));
      if (e.end - e.begin <= 4096) f.tensor(e);
    }
    // the tensors lie within the file, each byte in one tensor
    FUZZ_ASSERT(covered + 8 <= size);
  });
  return 0;
}
