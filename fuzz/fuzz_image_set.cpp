// The image-set loader's inputs: a grid image's size, the tile size, padding, offset and limit (from
// the user and the image header), and decoded pixels handed to the conversion. Every tile read must
// lie inside the image, and the conversion must read only the pixels it was given.
#include <cstring>
#include <vector>

#include "fuzz_util.h"
#include "io/image_set.h"

namespace {
// A signed number from 4 input bytes, mostly small (the interesting range), sometimes huge.
int64_t take(const uint8_t*& p, size_t& n) {
  uint32_t v = 0;
  for (int i = 0; i < 4 && n; i++, n--) v = (v << 8) | *p++;
  int64_t x = int64_t(v & 0x3fffffff);
  if (v & 0x40000000) x %= 300;
  return (v & 0x80000000) ? -x : x;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint8_t* p = data;
  size_t n = size;
  int64_t width = take(p, n), height = take(p, n), tile = take(p, n), padding = take(p, n), offset = take(p, n),
          limit = take(p, n);
  refuse_only_with_df_error([&] {
    df::GridLayout g = df::grid_layout(width, height, tile, padding < 0 ? -1 : padding, offset, limit < 0 ? -1 : limit);
    FUZZ_ASSERT(g.count >= 0 && g.first >= 0 && g.first + g.count <= g.cols * g.rows);
    for (int64_t i : {g.first, g.first + g.count - 1, g.cols * g.rows - 1}) {
      if (i < 0) continue;
      int64_t left, top;
      df::grid_tile_origin(g, tile, i, left, top);
      FUZZ_ASSERT(left >= 0 && top >= 0 && left + tile <= width && top + tile <= height);
    }
  });
  if (n < 3) return 0;
  int64_t side = p[0] % 17 + 1, channels = p[1] % 5, out_size = p[2] % 9 + 1;
  p += 3;
  n -= 3;
  refuse_only_with_df_error([&] {
    std::vector<float> out(size_t((channels > 0 ? channels : 1) * out_size * out_size));
    df::pixels_to_planar(p, n, side, channels, out_size, out.data());
    for (float v : out) FUZZ_ASSERT(v >= -1.0f && v <= 1.0f);
  });
  return 0;
}
