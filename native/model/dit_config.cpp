// DiTConfig: validation and its JSON form (the checkpoint metadata, the TS options object).
#include <cmath>
#include <cstdio>

#include "../core/error.h"
#include "../io/json.h"
#include "../ops/attention.h"
#include "dit.h"

namespace df {

namespace {

void need(bool ok, const std::string& field, const std::string& expected, const std::string& got) {
  if (!ok) fail(Code::Config, "model config: " + field + ": expected " + expected + ", got " + got);
}

std::string num(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", x);
  return buf;
}

}  // namespace

void DiTConfig::validate() const {
  need(stages >= 1 && stages <= 8, "stages", "an integer from 1 to 8", std::to_string(stages));
  need(channels >= 1 && channels <= 4096, "channels", "an integer from 1 to 4096", std::to_string(channels));
  need(height >= 1 && height <= 65536, "height", "an integer from 1 to 65536", std::to_string(height));
  need(width >= 1 && width <= 65536, "width", "an integer from 1 to 65536", std::to_string(width));
  int64_t div = int64_t(1) << (stages - 1);
  need(height % div == 0 && width % div == 0, "height/width",
       "sizes divisible by 2^(stages-1) = " + std::to_string(div),
       std::to_string(height) + "x" + std::to_string(width));
  need(int64_t(patch_sizes.size()) == stages, "patchSizes", "one patch size per stage (" + std::to_string(stages) + ")",
       std::to_string(patch_sizes.size()) + " sizes");
  for (int64_t s = 0; s < stages; s++) {
    int64_t p = patch_sizes[size_t(s)];
    std::string f = "patchSizes[" + std::to_string(s) + "]";
    need(p >= 1 && p <= 256, f, "an integer from 1 to 256", std::to_string(p));
    need(stage_height(s) % p == 0 && stage_width(s) % p == 0, f,
         "a divisor of stage " + std::to_string(s) + "'s size " + std::to_string(stage_height(s)) + "x" +
             std::to_string(stage_width(s)),
         std::to_string(p));
    int64_t gh = stage_height(s) / p, gw = stage_width(s) / p;
    need(gh == grid_h() && gw == grid_w(), f,
         "the same token grid as stage 0 (" + std::to_string(grid_h()) + "x" + std::to_string(grid_w()) + ")",
         "a " + std::to_string(gh) + "x" + std::to_string(gw) + " grid");
  }
  need(hidden >= 1 && hidden <= 65536, "hidden", "an integer from 1 to 65536", std::to_string(hidden));
  need(depth >= 1 && depth <= 1024, "depth", "an integer from 1 to 1024", std::to_string(depth));
  need(heads >= 1 && hidden % heads == 0, "heads", "a divisor of hidden (" + std::to_string(hidden) + ")",
       std::to_string(heads));
  need(head_dim() <= kMaxAttentionDim, "heads", "a head size hidden/heads <= " + std::to_string(kMaxAttentionDim),
       std::to_string(head_dim()));
  need(std::isfinite(mlp_ratio) && mlp_ratio > 0 && mlp_ratio <= 64 && mlp_hidden() >= 1, "mlpRatio",
       "a number in (0, 64] giving at least one hidden unit", num(mlp_ratio));
  need(num_classes >= 0 && num_classes <= 10000000, "numClasses", "an integer from 0 to 1e7", std::to_string(num_classes));
  need(!pos_embedding || hidden % 4 == 0, "hidden", "a multiple of 4 with the sin-cos position embedding",
       std::to_string(hidden));
  need(freq_dim >= 2 && freq_dim <= 65536, "freqDim", "an integer from 2 to 65536", std::to_string(freq_dim));
  need(std::isfinite(time_scale) && time_scale > 0, "timeScale", "a finite number > 0", num(time_scale));
  need(predictions.empty() || int64_t(predictions.size()) == stages, "stagePredictions",
       "one of 'v' or 'x' per stage (" + std::to_string(stages) + ")", std::to_string(predictions.size()) + " entries");
  need(std::isfinite(clean_min_gap) && clean_min_gap >= 0.01 && clean_min_gap <= 1, "cleanMinGap",
       "a number in [0.01, 1]", num(clean_min_gap));
}

std::string DiTConfig::to_json() const {
  std::string p = "[";
  for (size_t i = 0; i < patch_sizes.size(); i++) p += (i ? "," : "") + std::to_string(patch_sizes[i]);
  p += "]";
  return "{\"stages\":" + std::to_string(stages) + ",\"channels\":" + std::to_string(channels) +
         ",\"height\":" + std::to_string(height) + ",\"width\":" + std::to_string(width) + ",\"patchSizes\":" + p +
         ",\"hidden\":" + std::to_string(hidden) + ",\"depth\":" + std::to_string(depth) +
         ",\"heads\":" + std::to_string(heads) + ",\"mlpRatio\":" + num(mlp_ratio) +
         ",\"numClasses\":" + std::to_string(num_classes) +
         ",\"stageEmbedding\":" + (stage_embedding ? "true" : "false") +
         ",\"posEmbedding\":" + (pos_embedding ? "true" : "false") + ",\"freqDim\":" + std::to_string(freq_dim) +
         ",\"timeScale\":" + num(time_scale) + predictions_json() +
         // written only when not the Laplacian, so older models keep their JSON
         (decomposition == PyramidKind::Laplacian ? "" : std::string(",\"decomposition\":\"") + pyramid_kind_name(decomposition) + "\"") +
         "}";
}

// Written only when some stage predicts its clean level (the gap only when not the default), so
// velocity models and earlier clean-level models keep their old JSON.
std::string DiTConfig::predictions_json() const {
  if (!any_clean()) return "";
  std::string out = ",\"stagePredictions\":[";
  for (size_t i = 0; i < predictions.size(); i++) out += std::string(i ? "," : "") + (predictions[i] == Prediction::Clean ? "\"x\"" : "\"v\"");
  out += "]";
  if (float(clean_min_gap) != kCleanMinGap) out += ",\"cleanMinGap\":" + num(clean_min_gap);
  return out;
}

DiTConfig DiTConfig::from_json(const std::string& text) {
  json::Value v = json::parse(text, "model config");
  if (!v.is_object()) fail(Code::Config, "model config: expected a JSON object");
  DiTConfig c;
  auto integer = [&](const char* key, int64_t& out, bool required) {
    const json::Value* f = v.find(key);
    if (!f) {
      if (required) fail(Code::Config, std::string("model config: ") + key + ": missing");
      return;
    }
    if (!f->is_number() || f->number != std::floor(f->number) || std::fabs(f->number) > 1e15)
      fail(Code::Config, std::string("model config: ") + key + ": expected an integer");
    out = int64_t(f->number);
  };
  auto number = [&](const char* key, double& out) {
    const json::Value* f = v.find(key);
    if (!f) return;
    if (!f->is_number()) fail(Code::Config, std::string("model config: ") + key + ": expected a number");
    out = f->number;
  };
  auto boolean = [&](const char* key, bool& out) {
    const json::Value* f = v.find(key);
    if (!f) return;
    if (f->kind != json::Value::Kind::Bool) fail(Code::Config, std::string("model config: ") + key + ": expected a boolean");
    out = f->boolean;
  };
  for (const auto& kv : v.object) {
    static const char* known[] = {"stages", "channels", "height", "width", "patchSizes", "hidden", "depth",
                                  "heads", "mlpRatio", "numClasses", "stageEmbedding", "posEmbedding",
                                  "freqDim", "timeScale", "stagePredictions", "cleanMinGap", "decomposition"};
    bool ok = false;
    for (const char* k : known) ok = ok || kv.first == k;
    if (!ok) fail(Code::Config, "model config: unknown field '" + kv.first + "'");
  }
  integer("stages", c.stages, true);
  integer("channels", c.channels, true);
  integer("height", c.height, true);
  integer("width", c.width, true);
  integer("hidden", c.hidden, true);
  integer("depth", c.depth, true);
  integer("heads", c.heads, true);
  number("mlpRatio", c.mlp_ratio);
  integer("numClasses", c.num_classes, false);
  boolean("stageEmbedding", c.stage_embedding);
  boolean("posEmbedding", c.pos_embedding);
  integer("freqDim", c.freq_dim, false);
  number("timeScale", c.time_scale);
  number("cleanMinGap", c.clean_min_gap);
  const json::Value* p = v.find("patchSizes");
  if (!p || !p->is_array()) fail(Code::Config, "model config: patchSizes: expected an array with one size per stage");
  c.patch_sizes.clear();
  for (const auto& e : p->array) {
    if (!e.is_number() || e.number != std::floor(e.number) || e.number < 1 || e.number > 256)
      fail(Code::Config, "model config: patchSizes: expected integers from 1 to 256");
    c.patch_sizes.push_back(int64_t(e.number));
  }
  if (const json::Value* sp = v.find("stagePredictions")) {
    if (!sp->is_array()) fail(Code::Config, "model config: stagePredictions: expected an array of 'v' or 'x', one per stage");
    for (const auto& e : sp->array) {
      if (!e.is_string() || (e.string != "v" && e.string != "x"))
        fail(Code::Config, "model config: stagePredictions: expected 'v' (velocity) or 'x' (clean level) per stage");
      c.predictions.push_back(e.string == "x" ? Prediction::Clean : Prediction::Velocity);
    }
  }
  if (const json::Value* d = v.find("decomposition")) {
    if (!d->is_string() || (d->string != "laplacian" && d->string != "haar" && d->string != "consistent"))
      fail(Code::Config, "model config: decomposition: expected 'laplacian', 'haar' or 'consistent'");
    c.decomposition = parse_pyramid_kind(d->string, "model config: decomposition");
  }
  c.validate();
  return c;
}

}  // namespace df
