// The .npy reader of the image-set loader: the header dict, the sizes, the conversion to images.
#include "fuzz_util.h"
#include "io/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  refuse_only_with_df_error([&] {
    df::NpyImages im = df::npy_images(data, size, "fuzz");
    FUZZ_ASSERT(im.shape.size() == 4);
    uint64_t n = 1;
    for (int64_t d : im.shape) n *= uint64_t(d);
    FUZZ_ASSERT(n == im.data.size());
  });
  return 0;
}
