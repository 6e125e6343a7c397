// The embedded dataset: procedurally drawn, labelled images that need no download. Each image is a
// coloured shape (one of kShapeClasses kinds, rotated, scaled, shaded) over a smooth two-colour
// background with a low-frequency ripple: coarse structure (layout, colours) and fine structure
// (edges, stripes, shading) at once, which is what a multi-scale generator must learn. Image i of a
// seed is a pure function of (seed, i).
#pragma once
#include <cstdint>

namespace df {

constexpr int kShapeClasses = 8;
const char* shape_class_name(int c);

// Renders `count` images starting at `first` into out [count, 3, size, size] (values in [-1, 1])
// and their classes into labels [count]. Parallel over images.
void render_shapes(uint64_t seed, int64_t first, int64_t count, int size, float* out, int32_t* labels);

}  // namespace df
