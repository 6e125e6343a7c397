// The geometry and pixel arithmetic of the image-set loader (lib/eval.ts loadImageSet): which tiles
// of a grid image (a PNG of tile x tile images with padding between them) are read, and decoded
// 8-bit interleaved pixels turned into planar floats in [-1, 1], optionally box-averaged down. The
// numbers come from users and image headers, so every one is checked: bad ones are coded errors.
#pragma once
#include <cstddef>
#include <cstdint>

namespace df {

struct GridLayout {
  int64_t padding = 0, cols = 0, rows = 0;
  int64_t first = 0, count = 0;  // the tiles read: [first, first + count), row-major
};

// The tiles of a width x height grid of tile-pixel tiles: `padding` as given, or (padding < 0) the
// smallest p with width = k (tile + p) + p and height likewise; offset and limit (< 0: all) select
// the tiles. Code::ArgValue when the numbers are out of range, no padding fits or no tile fits.
GridLayout grid_layout(int64_t width, int64_t height, int64_t tile, int64_t padding, int64_t offset, int64_t limit);

// The top-left pixel of tile i of a layout (inside the image by construction).
void grid_tile_origin(const GridLayout& g, int64_t tile, int64_t i, int64_t& left, int64_t& top);

// `raw`: side x side pixels of `channels` interleaved bytes; out: channels x size x size floats
// (x / 127.5 - 1), each the mean of a (side / size)^2 box. Code::ArgValue unless side is a multiple
// of size and channels is 1 to 4; Code::Format unless raw holds exactly side * side * channels bytes.
void pixels_to_planar(const uint8_t* raw, size_t raw_size, int64_t side, int64_t channels, int64_t size, float* out);

}  // namespace df
