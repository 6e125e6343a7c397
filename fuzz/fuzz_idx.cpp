// The IDX reader (Fashion-MNIST files): the first byte picks the expected rank, the rest is the file.
#include "fuzz_util.h"
#include "io/idx.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  int rank = data[0] % 4 + 1;
  refuse_only_with_df_error([&] {
    df::IdxHeader h = df::parse_idx(data + 1, size - 1, rank, "fuzz");
    uint64_t count = 1;
    for (int64_t d : h.dims) count *= uint64_t(d);
    FUZZ_ASSERT(h.data_offset + count == size - 1);
    touch(data + 1 + h.data_offset, size_t(count));
  });
  return 0;
}
