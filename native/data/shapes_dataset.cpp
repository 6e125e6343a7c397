#include "shapes_dataset.h"

#include <algorithm>
#include <cmath>

#include "../core/philox.h"
#include "../core/threadpool.h"
#include "../core/random_streams.h"

namespace df {

const char* shape_class_name(int c) {
  static const char* names[kShapeClasses] = {"circle", "square", "triangle", "ring", "cross", "diamond", "stripes", "dots"};
  return c >= 0 && c < kShapeClasses ? names[c] : "?";
}

namespace {

// Is the shape-local point (u, v) (shape radius 1) inside shape `c`?
bool inside(int c, float u, float v) {
  float au = std::fabs(u), av = std::fabs(v);
  switch (c) {
    case 0: return u * u + v * v <= 1.f;
    case 1: return std::max(au, av) <= 0.8f;
    case 2: return v >= -0.75f && v <= 0.8f && au <= (v + 0.75f) * 0.62f;
    case 3: {
      float r2 = u * u + v * v;
      return r2 <= 1.f && r2 >= 0.3f;
    }
    case 4: return (au <= 0.3f && av <= 0.95f) || (av <= 0.3f && au <= 0.95f);
    case 5: return au + av <= 1.f;
    case 6: return std::max(au, av) <= 0.85f && int(std::floor((v + 0.85f) * 2.94f)) % 2 == 0;
    case 7: return (u - 0.5f) * (u - 0.5f) + v * v <= 0.2f || (u + 0.5f) * (u + 0.5f) + v * v <= 0.2f;
  }
  return false;
}

struct ImageParams {
  int cls;
  float bg0[3], bg1[3], fg[3];
  float grad_angle, ripple_freq, ripple_phase, ripple_amp;
  float cx, cy, radius, angle, shade;
};

ImageParams draw_params(uint64_t seed, int64_t index) {
  RandomStream rs{seed, stream_id(Purpose::Data, uint64_t(index))};
  float u[24];
  rs.fill_uniform(u, 24);
  ImageParams p;
  p.cls = std::min(kShapeClasses - 1, int(u[0] * kShapeClasses));
  for (int c = 0; c < 3; c++) {
    p.bg0[c] = 0.15f + 0.45f * u[1 + c];  // muted backgrounds
    p.bg1[c] = 0.15f + 0.45f * u[4 + c];
    p.fg[c] = u[7 + c];
  }
  // keep the shape visible: push its colour away from the background's mean brightness
  float bg = (p.bg0[0] + p.bg0[1] + p.bg0[2] + p.bg1[0] + p.bg1[1] + p.bg1[2]) / 6.f;
  float fg = (p.fg[0] + p.fg[1] + p.fg[2]) / 3.f;
  float push = fg > bg ? 0.35f : -0.35f;
  for (float& f : p.fg) f = std::clamp(f + push, 0.f, 1.f);
  p.grad_angle = 6.2831853f * u[10];
  p.ripple_freq = 1.f + 2.f * u[11];
  p.ripple_phase = 6.2831853f * u[12];
  p.ripple_amp = 0.08f * u[13];
  p.radius = 0.25f + 0.15f * u[14];  // in units of the image size
  p.cx = 0.5f + (u[15] - 0.5f) * (1.f - 2.f * p.radius) * 0.9f;
  p.cy = 0.5f + (u[16] - 0.5f) * (1.f - 2.f * p.radius) * 0.9f;
  p.angle = 6.2831853f * u[17];
  p.shade = 0.25f * u[18];
  return p;
}

void render_one(const ImageParams& p, int size, float* out) {
  const int ss = 4;  // 4 x 4 supersampling for antialiased edges
  float ca = std::cos(p.angle), sa = std::sin(p.angle);
  float gx = std::cos(p.grad_angle), gy = std::sin(p.grad_angle);
  int64_t plane = int64_t(size) * size;
  for (int y = 0; y < size; y++)
    for (int x = 0; x < size; x++) {
      float fx = (x + 0.5f) / size, fy = (y + 0.5f) / size;
      // background: gradient between two colours plus a soft ripple
      float g = std::clamp(0.5f + 0.7f * ((fx - 0.5f) * gx + (fy - 0.5f) * gy), 0.f, 1.f);
      float ripple = p.ripple_amp * std::sin(6.2831853f * p.ripple_freq * (fx * gy - fy * gx) + p.ripple_phase);
      int hits = 0;
      for (int sy = 0; sy < ss; sy++)
        for (int sx = 0; sx < ss; sx++) {
          float px = (x + (sx + 0.5f) / ss) / size - p.cx, py = (y + (sy + 0.5f) / ss) / size - p.cy;
          float u = (ca * px + sa * py) / p.radius, v = (-sa * px + ca * py) / p.radius;
          hits += inside(p.cls, u, v);
        }
      float cover = float(hits) / (ss * ss);
      // shading across the shape gives it fine, smooth detail
      float lx = (fx - p.cx) / p.radius, ly = (fy - p.cy) / p.radius;
      float shade = 1.f - p.shade * (0.5f + 0.5f * (lx * 0.6f + ly * 0.8f));
      for (int c = 0; c < 3; c++) {
        float background = p.bg0[c] * (1 - g) + p.bg1[c] * g + ripple;
        float value = background * (1 - cover) + p.fg[c] * shade * cover;
        out[c * plane + int64_t(y) * size + x] = std::clamp(value, 0.f, 1.f) * 2.f - 1.f;
      }
    }
}

}  // namespace

void render_shapes(uint64_t seed, int64_t first, int64_t count, int size, float* out, int32_t* labels) {
  int64_t per = 3 * int64_t(size) * size;
  parallel_for(count, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t i = b0; i < b1; i++) {
      ImageParams p = draw_params(seed, first + i);
      render_one(p, size, out + i * per);
      if (labels) labels[i] = p.cls;
    }
  });
}

}  // namespace df
