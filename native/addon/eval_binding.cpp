// evalMetrics / evalMetricsSync (SWD, Frechet distances, precision/recall between two image sets),
// and the pieces the tests check one by one: evalFeaturesSync, evalFrechetSync, evalEigenSync.
#include "../eval/metrics.h"

#include <memory>

#include "addon_data.h"
#include "async_job.h"
#include "bindings.h"
#include "tensor_binding.h"

namespace df::addon {

namespace {

eval::EvalOptions read_options(const Napi::Object& o, const std::string& fn) {
  const std::string ctx = fn + ": options";
  eval::EvalOptions e;
  const uint64_t seed = uint64_t(opt_int(o, "seed", 0, 0, (int64_t(1) << 53) - 1, ctx));
  e.swd = opt_bool(o, "swd", true, ctx);
  e.swd_options.seed = seed;
  e.swd_options.levels = opt_int(o, "swdLevels", 0, 0, 16, ctx);
  // patch, descriptors and projections are range-checked by the core with their own messages
  e.swd_options.patch = opt_int(o, "swdPatch", 7, INT32_MIN, INT32_MAX, ctx);
  e.swd_options.descriptors = opt_int(o, "swdDescriptors", 64, INT32_MIN, INT32_MAX, ctx);
  e.swd_options.projections = opt_int(o, "swdProjections", 512, INT32_MIN, INT32_MAX, ctx);
  if (has_option(o, "frechet")) {
    Napi::Value v = o.Get("frechet");
    if (!v.IsArray()) fail(Code::ArgType, ctx + ".frechet: expected an array of feature names ('pix8', 'pix16', 'bands')");
    Napi::Array a = v.As<Napi::Array>();
    e.frechet.clear();
    for (uint32_t i = 0; i < a.Length(); i++)
      e.frechet.push_back(eval::parse_feature_kind(arg_string(a.Get(i), ctx + ".frechet[" + std::to_string(i) + "]"),
                                                   ctx + ".frechet[" + std::to_string(i) + "]"));
  }
  e.precision_recall = opt_bool(o, "precisionRecall", true, ctx);
  e.pr_options.feature = eval::parse_feature_kind(opt_string(o, "prFeature", "pix16", ctx), ctx + ".prFeature");
  e.pr_options.k = opt_int(o, "prK", 3, INT32_MIN, INT32_MAX, ctx);
  return e;
}

Napi::Value result_to_js(Napi::Env env, const eval::EvalResult& r) {
  Napi::Object out = Napi::Object::New(env);
  if (r.has_swd) {
    Napi::Object swd = Napi::Object::New(env);
    Napi::Array res = Napi::Array::New(env, r.swd.resolutions.size()), lv = Napi::Array::New(env, r.swd.per_level.size());
    for (size_t i = 0; i < r.swd.per_level.size(); i++) {
      res.Set(uint32_t(i), Napi::Number::New(env, double(r.swd.resolutions[i])));
      lv.Set(uint32_t(i), Napi::Number::New(env, r.swd.per_level[i]));
    }
    swd.Set("resolutions", res);
    swd.Set("levels", lv);
    swd.Set("mean", Napi::Number::New(env, r.swd.mean));
    out.Set("swd", swd);
  }
  Napi::Object fd = Napi::Object::New(env);
  for (const auto& [kind, value] : r.frechet) fd.Set(eval::feature_kind_name(kind), Napi::Number::New(env, value));
  out.Set("frechet", fd);
  if (r.has_band_levels) {
    const eval::BandLevels& b = r.band_levels;
    auto array = [&](auto get) {
      Napi::Array a = Napi::Array::New(env, b.frechet.size());
      for (size_t i = 0; i < b.frechet.size(); i++) a.Set(uint32_t(i), Napi::Number::New(env, double(get(i))));
      return a;
    };
    Napi::Object bl = Napi::Object::New(env);
    bl.Set("resolutions", array([&](size_t i) { return b.resolutions[i]; }));
    bl.Set("frechet", array([&](size_t i) { return b.frechet[i]; }));
    bl.Set("rmsGenerated", array([&](size_t i) { return b.rms_generated[i]; }));
    bl.Set("rmsReal", array([&](size_t i) { return b.rms_real[i]; }));
    out.Set("bandLevels", bl);
  }
  if (r.has_pr) {
    out.Set("precision", Napi::Number::New(env, r.pr.precision));
    out.Set("recall", Napi::Number::New(env, r.pr.recall));
  }
  return out;
}

Napi::Value metrics_sync(const Napi::CallbackInfo& info) {
  const std::string fn = "evaluateSync";
  const Tensor& a = unwrap_tensor(info[0], fn + ": generated");
  const Tensor& b = unwrap_tensor(info[1], fn + ": real");
  eval::EvalOptions opt = read_options(arg_object(info[2], fn + ": options", true), fn);
  return result_to_js(info.Env(), eval::evaluate(a, b, opt, fn));
}

// The sets are held by the job, so disposing them meanwhile is safe; options are read (and bad
// ones rejected) before the job starts.
Napi::Value metrics_async(const Napi::CallbackInfo& info) {
  const std::string fn = "evaluate";
  Tensor a = unwrap_tensor(info[0], fn + ": generated");
  Tensor b = unwrap_tensor(info[1], fn + ": real");
  Napi::Object opts = arg_object(info[2], fn + ": options", true);
  eval::EvalOptions opt = read_options(opts, fn);
  Napi::Value on_progress = has_option(opts, "onProgress") ? Napi::Value(arg_function(opts.Get("onProgress"), fn + ": options.onProgress"))
                                                          : info.Env().Undefined();
  auto out = std::make_shared<eval::EvalResult>();
  return start_job(
      info.Env(),
      [a, b, opt, fn, out](JobContext& ctx) {
        *out = eval::evaluate(a, b, opt, fn, [&ctx](int64_t done, int64_t total) { ctx.report(Progress{done, total, {}}); });
      },
      [out](Napi::Env env) { return result_to_js(env, *out); }, on_progress);
}

Napi::Value features_sync(const Napi::CallbackInfo& info) {
  const std::string fn = "evalFeatures";
  const Tensor& x = unwrap_tensor(info[0], fn + ": images");
  eval::FeatureKind kind = eval::parse_feature_kind(arg_string(info[1], fn + ": kind"), fn + ": kind");
  return wrap_tensor(info.Env(), eval::features(x, kind, fn));
}

Napi::Value frechet_sync(const Napi::CallbackInfo& info) {
  const std::string fn = "frechetDistance";
  const Tensor& ma = unwrap_tensor(info[0], fn + ": meanA");
  const Tensor& ca = unwrap_tensor(info[1], fn + ": covA");
  const Tensor& mb = unwrap_tensor(info[2], fn + ": meanB");
  const Tensor& cb = unwrap_tensor(info[3], fn + ": covB");
  return Napi::Number::New(info.Env(), eval::frechet_distance(ma, ca, mb, cb, fn));
}

// Eigenvalues (ascending) and eigenvectors (rows) of a symmetric f32 [n, n], computed in float64.
Napi::Value eigen_sync(const Napi::CallbackInfo& info) {
  const std::string fn = "symmetricEigen";
  const Tensor& m = unwrap_tensor(info[0], fn + ": matrix");
  expect_dtype(m, DType::F32, (fn + ": matrix").c_str());
  expect_rank(m, 2, (fn + ": matrix").c_str());
  if (m.dim(0) != m.dim(1)) fail(Code::Shape, fn + ": matrix: expected a square matrix, got " + shape_str(m.shape()));
  if (!m.device().is_cpu()) fail(Code::Device, fn + ": matrix: expected a CPU tensor");
  const int64_t n = m.dim(0);
  std::vector<double> a(m.data<float>(), m.data<float>() + n * n), values(static_cast<size_t>(n)), vectors(size_t(n * n));
  eval::symmetric_eigen(n, a.data(), values.data(), vectors.data());
  Napi::Env env = info.Env();
  Napi::Float64Array v = Napi::Float64Array::New(env, size_t(n)), z = Napi::Float64Array::New(env, size_t(n * n));
  std::copy(values.begin(), values.end(), v.Data());
  std::copy(vectors.begin(), vectors.end(), z.Data());
  Napi::Object out = Napi::Object::New(env);
  out.Set("values", v);
  out.Set("vectors", z);
  return out;
}

}  // namespace

void init_eval(Napi::Env env, Napi::Object exports) {
  exports.Set("evalMetricsSync", Napi::Function::New<guarded<metrics_sync>>(env, "evalMetricsSync"));
  exports.Set("evalMetrics", Napi::Function::New<guarded<metrics_async>>(env, "evalMetrics"));
  exports.Set("evalFeaturesSync", Napi::Function::New<guarded<features_sync>>(env, "evalFeaturesSync"));
  exports.Set("evalFrechetSync", Napi::Function::New<guarded<frechet_sync>>(env, "evalFrechetSync"));
  exports.Set("evalEigenSync", Napi::Function::New<guarded<eigen_sync>>(env, "evalEigenSync"));
}

}  // namespace df::addon
