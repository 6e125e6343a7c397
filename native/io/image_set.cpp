#include "image_set.h"

#include <algorithm>
#include <string>

#include "../core/error.h"

namespace df {

namespace {
constexpr int64_t kMaxSide = int64_t(1) << 24;  // wider than any image a decoder will hand over
}

GridLayout grid_layout(int64_t width, int64_t height, int64_t tile, int64_t padding, int64_t offset, int64_t limit) {
  const std::string dims = std::to_string(width) + "x" + std::to_string(height);
  if (width < 1 || height < 1 || width > kMaxSide || height > kMaxSide)
    fail(Code::ArgValue, "grid: image size " + dims + " is out of range");
  if (tile < 1 || tile > kMaxSide) fail(Code::ArgValue, "grid: tile: expected a positive integer, got " + std::to_string(tile));
  if (padding > kMaxSide) fail(Code::ArgValue, "grid: padding " + std::to_string(padding) + " is out of range");
  if (offset < 0) fail(Code::ArgValue, "grid: offset: expected an integer >= 0, got " + std::to_string(offset));
  GridLayout g;
  if (padding < 0) {
    g.padding = -1;
    // p <= width and height: a larger padding leaves no room (and bounds the search, found by fuzzing)
    const int64_t most = std::min(tile, std::min(width, height));
    for (int64_t p = 0; p <= most && g.padding < 0; p++)
      if ((width - p) % (tile + p) == 0 && (height - p) % (tile + p) == 0) g.padding = p;
    if (g.padding < 0)
      fail(Code::ArgValue, "grid: a " + dims + " image is not a grid of " + std::to_string(tile) + "-pixel tiles (pass padding)");
  } else {
    g.padding = padding;
  }
  g.cols = width >= g.padding ? (width - g.padding) / (tile + g.padding) : 0;
  g.rows = height >= g.padding ? (height - g.padding) / (tile + g.padding) : 0;
  if (g.cols < 1 || g.rows < 1)
    fail(Code::ArgValue, "grid: a " + dims + " image holds no " + std::to_string(tile) + "-pixel tile");
  const int64_t total = g.cols * g.rows;
  g.first = offset < total ? offset : total;
  g.count = total - g.first;
  if (limit >= 0 && limit < g.count) g.count = limit;
  return g;
}

void grid_tile_origin(const GridLayout& g, int64_t tile, int64_t i, int64_t& left, int64_t& top) {
  if (i < 0 || i >= g.cols * g.rows) fail(Code::ArgValue, "grid: tile " + std::to_string(i) + " is outside the grid");
  left = g.padding + (i % g.cols) * (tile + g.padding);
  top = g.padding + (i / g.cols) * (tile + g.padding);
}

void pixels_to_planar(const uint8_t* raw, size_t raw_size, int64_t side, int64_t channels, int64_t size, float* out) {
  if (channels < 1 || channels > 4) fail(Code::ArgValue, "pixels: channels must be 1 to 4, got " + std::to_string(channels));
  if (size < 1 || side < size || side > kMaxSide || side % size != 0)
    fail(Code::ArgValue, "pixels: a " + std::to_string(side) + "-pixel tile cannot be box-averaged to " + std::to_string(size) + " pixels");
  const uint64_t need = uint64_t(side) * uint64_t(side) * uint64_t(channels);
  if (raw_size != need)
    fail(Code::Format, "pixels: decoded " + std::to_string(raw_size) + " bytes, expected " + std::to_string(need));
  const int64_t f = side / size;
  for (int64_t c = 0; c < channels; c++)
    for (int64_t y = 0; y < size; y++)
      for (int64_t x = 0; x < size; x++) {
        double sum = 0;
        for (int64_t dy = 0; dy < f; dy++)
          for (int64_t dx = 0; dx < f; dx++) sum += raw[((y * f + dy) * side + x * f + dx) * channels + c];
        out[(c * size + y) * size + x] = float(sum / double(f * f) / 127.5 - 1.0);
      }
}

}  // namespace df
