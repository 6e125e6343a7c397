// Data for training: the embedded shapes dataset and batch assembly (a gather of rows), both able to
// run off the main thread so batches are prepared while a training step runs.
#include <cstring>

#include <vector>

#include "../core/threadpool.h"
#include "../data/shapes_dataset.h"
#include "addon_data.h"
#include "async_job.h"
#include "bindings.h"
#include "tensor_binding.h"

namespace df::addon {

namespace {

struct ShapesRequest {
  uint64_t seed;
  int64_t first, count;
  int size;
  std::vector<int64_t> indices;  // when given, these images instead of [first, first + count)
};

ShapesRequest read_shapes_request(const Napi::CallbackInfo& info) {
  Napi::Object o = arg_object(info[0], "shapesBatch: options");
  ShapesRequest r;
  r.seed = uint64_t(opt_int(o, "seed", 0, 0, 9007199254740991LL, "shapesBatch: options"));
  r.first = opt_int(o, "start", 0, 0, 9007199254740991LL, "shapesBatch: options");
  r.count = opt_int(o, "count", 1, 1, 1 << 20, "shapesBatch: options");
  r.size = int(opt_int(o, "size", 32, 4, 1024, "shapesBatch: options"));
  if (has_option(o, "indices")) {
    if (!o.Get("indices").IsArray()) fail(Code::ArgType, "shapesBatch: options.indices: expected an array of image indices");
    Napi::Array a = o.Get("indices").As<Napi::Array>();
    if (a.Length() < 1 || a.Length() > (1u << 20)) fail(Code::ArgValue, "shapesBatch: options.indices: expected 1 to 2^20 indices");
    for (uint32_t i = 0; i < a.Length(); i++)
      r.indices.push_back(arg_int(a.Get(i), "shapesBatch: options.indices[" + std::to_string(i) + "]", 0, 9007199254740991LL));
    r.count = int64_t(r.indices.size());
  }
  return r;
}

struct Batch {
  Tensor images, labels;
};

void render(const ShapesRequest& r, Batch& b) {
  b.images = Tensor({r.count, 3, r.size, r.size}, DType::F32);
  b.labels = Tensor({r.count}, DType::I32);
  if (r.indices.empty()) {
    render_shapes(r.seed, r.first, r.count, r.size, b.images.data<float>(), b.labels.data<int32_t>());
    return;
  }
  int64_t per = 3 * int64_t(r.size) * r.size;
  parallel_for(r.count, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++)
      render_shapes(r.seed, r.indices[size_t(i)], 1, r.size, b.images.data<float>() + i * per, b.labels.data<int32_t>() + i);
  });
}

Napi::Value batch_to_js(Napi::Env env, const Batch& b) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("images", wrap_tensor(env, b.images));
  o.Set("labels", wrap_tensor(env, b.labels));
  return o;
}

Napi::Value shapes_batch_sync(const Napi::CallbackInfo& info) {
  ShapesRequest r = read_shapes_request(info);
  Batch b;
  render(r, b);
  return batch_to_js(info.Env(), b);
}

Napi::Value shapes_batch(const Napi::CallbackInfo& info) {
  ShapesRequest r = read_shapes_request(info);
  auto b = std::make_shared<Batch>();
  return start_job(info.Env(), [r, b](JobContext&) { render(r, *b); },
                   [b](Napi::Env env) { return batch_to_js(env, *b); }, info.Env().Undefined());
}

Napi::Value shape_classes(const Napi::CallbackInfo& info) {
  Napi::Array a = Napi::Array::New(info.Env(), kShapeClasses);
  for (int c = 0; c < kShapeClasses; c++) a.Set(uint32_t(c), shape_class_name(c));
  return a;
}

// gatherRows(source [N, ...], indices i32 [B]) -> [B, ...]: a batch from a dataset held in memory.
Tensor gather(const Tensor& src, const Tensor& idx) {
  expect_dtype(idx, DType::I32, "gatherRows: indices");
  expect_rank(idx, 1, "gatherRows: indices");
  if (!src.device().is_cpu() || !idx.device().is_cpu()) fail(Code::Device, "gatherRows: expected cpu tensors");
  Shape shape = src.shape();
  int64_t n = shape[0], row = src.numel() / n * int64_t(dtype_size(src.dtype()));
  shape[0] = idx.numel();
  Tensor out(shape, src.dtype());
  const int32_t* ix = idx.data<int32_t>();
  for (int64_t i = 0; i < idx.numel(); i++)
    if (ix[i] < 0 || ix[i] >= n)
      fail(Code::ArgValue, "gatherRows: indices[" + std::to_string(i) + "] = " + std::to_string(ix[i]) + " is outside [0, " + std::to_string(n) + ")");
  const char* s = static_cast<const char*>(src.raw());
  char* d = static_cast<char*>(out.raw());
  for (int64_t i = 0; i < idx.numel(); i++) std::memcpy(d + i * row, s + int64_t(ix[i]) * row, size_t(row));
  return out;
}

Napi::Value gather_rows_sync(const Napi::CallbackInfo& info) {
  return wrap_tensor(info.Env(), gather(unwrap_tensor(info[0], "gatherRows: source"), unwrap_tensor(info[1], "gatherRows: indices")));
}

Napi::Value gather_rows(const Napi::CallbackInfo& info) {
  Tensor src = unwrap_tensor(info[0], "gatherRows: source");
  Tensor idx = unwrap_tensor(info[1], "gatherRows: indices");
  auto out = std::make_shared<Tensor>();
  return start_job(info.Env(), [src, idx, out](JobContext&) { *out = gather(src, idx); },
                   [out](Napi::Env env) { return wrap_tensor(env, *out); }, info.Env().Undefined());
}

}  // namespace

void init_data(Napi::Env env, Napi::Object exports) {
  exports.Set("shapesBatchSync", Napi::Function::New<guarded<shapes_batch_sync>>(env, "shapesBatchSync"));
  exports.Set("shapesBatch", Napi::Function::New<guarded<shapes_batch>>(env, "shapesBatch"));
  exports.Set("shapeClasses", Napi::Function::New<guarded<shape_classes>>(env, "shapeClasses"));
  exports.Set("gatherRowsSync", Napi::Function::New<guarded<gather_rows_sync>>(env, "gatherRowsSync"));
  exports.Set("gatherRows", Napi::Function::New<guarded<gather_rows>>(env, "gatherRows"));
}

}  // namespace df::addon
