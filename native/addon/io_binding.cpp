// The file parsers of the TypeScript loaders, in native code where they are fuzzed (fuzz/): IDX
// headers (Fashion-MNIST), .npy arrays, and the image-set loader's grid geometry and pixel
// conversion. The files are read (and gunzipped) by the TypeScript side and handed over as bytes.
#include <cstring>

#include "../io/idx.h"
#include "../io/image_set.h"
#include "../io/npy.h"
#include "addon_data.h"
#include "bindings.h"

namespace df::addon {

namespace {

Napi::Uint8Array arg_bytes(const Napi::Value& v, const std::string& name) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    fail(Code::ArgType, name + ": expected a Uint8Array or Buffer");
  return v.As<Napi::Uint8Array>();
}

Napi::Float32Array float_array(Napi::Env env, const float* data, size_t n) {
  Napi::Float32Array a = Napi::Float32Array::New(env, n);
  if (n) std::memcpy(a.Data(), data, n * sizeof(float));
  return a;
}

// parseIdx(bytes, rank, what) -> { dims, offset }
Napi::Value parse_idx_js(const Napi::CallbackInfo& info) {
  Napi::Uint8Array b = arg_bytes(info[0], "parseIdx: bytes");
  int rank = int(arg_int(info[1], "parseIdx: rank", 1, 4));
  IdxHeader h = parse_idx(b.Data(), b.ByteLength(), rank, arg_string(info[2], "parseIdx: what"));
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("dims", numbers_to_js(info.Env(), h.dims));
  o.Set("offset", double(h.data_offset));
  return o;
}

// npyImages(bytes, what) -> { shape [N, C, H, W], data }
Napi::Value npy_images_js(const Napi::CallbackInfo& info) {
  Napi::Uint8Array b = arg_bytes(info[0], "npyImages: bytes");
  NpyImages im = npy_images(b.Data(), b.ByteLength(), arg_string(info[1], "npyImages: what"));
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("shape", numbers_to_js(info.Env(), im.shape));
  o.Set("data", float_array(info.Env(), im.data.data(), im.data.size()));
  return o;
}

// gridLayout(width, height, tile, padding (-1: find), offset, limit (-1: all))
//   -> { padding, cols, rows, first, count, origins: [left0, top0, left1, top1, ...] }
Napi::Value grid_layout_js(const Napi::CallbackInfo& info) {
  const int64_t big = int64_t(1) << 40;
  int64_t tile = arg_int(info[2], "gridLayout: tile", -big, big);
  GridLayout g = grid_layout(arg_int(info[0], "gridLayout: width", -big, big), arg_int(info[1], "gridLayout: height", -big, big),
                             tile, arg_int(info[3], "gridLayout: padding", -1, big), arg_int(info[4], "gridLayout: offset", -big, big),
                             arg_int(info[5], "gridLayout: limit", -1, big));
  std::vector<int64_t> origins;
  for (int64_t i = g.first; i < g.first + g.count; i++) {
    int64_t left, top;
    grid_tile_origin(g, tile, i, left, top);
    origins.push_back(left);
    origins.push_back(top);
  }
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("padding", double(g.padding));
  o.Set("cols", double(g.cols));
  o.Set("rows", double(g.rows));
  o.Set("first", double(g.first));
  o.Set("count", double(g.count));
  o.Set("origins", numbers_to_js(env, origins));
  return o;
}

// pixelsToPlanar(raw, side, channels, size) -> Float32Array [channels, size, size] in [-1, 1]
Napi::Value pixels_to_planar_js(const Napi::CallbackInfo& info) {
  Napi::Uint8Array raw = arg_bytes(info[0], "pixelsToPlanar: raw");
  int64_t side = arg_int(info[1], "pixelsToPlanar: side", 1, int64_t(1) << 24);
  int64_t channels = arg_int(info[2], "pixelsToPlanar: channels", 1, 4);
  int64_t size = arg_int(info[3], "pixelsToPlanar: size", 1, side);
  Napi::Float32Array out = Napi::Float32Array::New(info.Env(), size_t(channels * size * size));
  pixels_to_planar(raw.Data(), raw.ByteLength(), side, channels, size, out.Data());
  return out;
}

}  // namespace

void init_io(Napi::Env env, Napi::Object exports) {
  exports.Set("parseIdx", Napi::Function::New<guarded<parse_idx_js>>(env, "parseIdx"));
  exports.Set("npyImages", Napi::Function::New<guarded<npy_images_js>>(env, "npyImages"));
  exports.Set("gridLayout", Napi::Function::New<guarded<grid_layout_js>>(env, "gridLayout"));
  exports.Set("pixelsToPlanar", Napi::Function::New<guarded<pixels_to_planar_js>>(env, "pixelsToPlanar"));
}

}  // namespace df::addon
