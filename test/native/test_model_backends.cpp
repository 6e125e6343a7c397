// The DiT, the DFM trainer and the sampler written once against the op interface, run on the CUDA
// backend's own host code and kernels (cuda/kernel_ops.cuh on the host emulation: no GPU needed)
// in both of its policies, against the CPU backend from the same initial weights and batches:
//   f32 (TF32 off):  every training loss (3 steps) within 1e-4 relative, the first step's gradients within
//                    1e-3 (max |diff| / max |cpu| per parameter tensor), sampled images within 1e-4;
//   bf16 (mixed):    losses within 3e-2, gradients within 6e-2, images within 6e-2 (bf16 activations
//                    and weights carry 8 bits; the f32 masters and optimiser state keep the run close).
// This proves the model's device-generic plumbing (the arena's mixed dtypes, the compute copy of the
// weights that AdamW refreshes, uploads of times, masks and labels, the trainer's draws on the
// device, the sampler's tables) before any GPU runs it; test_backend_ops proves each op.
#include <cmath>
#include <cstdio>
#include <vector>

#include "cuda_emulation.h"
#include "dfm/dit_sampler.h"
#include "dfm/trainer.h"
#include "test_util.h"

using namespace df;

namespace {

double rel(const std::vector<float>& got, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); i++) {
    num = std::max(num, std::isfinite(got[i]) ? std::fabs(double(got[i]) - ref[i]) : INFINITY);
    den = std::max(den, std::fabs(double(ref[i])));
  }
  return den > 0 ? num / den : num;
}

std::vector<float> host(Ops& ops, const float* p, int64_t n) { return download_floats(ops, p, n); }

void compare(DType compute, double tol_loss, double tol_grad, double tol_image, std::vector<Prediction> predictions = {}) {
  cudaemu::EmulatedOps emu(Device{}, compute);
  Ops& cpu = cpu_ops();
  DiTConfig c;
  c.stages = 2, c.channels = 2, c.height = 8, c.width = 8, c.patch_sizes = {1, 2};
  c.hidden = 32, c.depth = 1, c.heads = 1, c.num_classes = 3, c.stage_embedding = true, c.freq_dim = 16;
  c.predictions = predictions;
  const int64_t B = 2;
  AdamWOptions adam;
  adam.lr = 3e-3, adam.warmup_steps = 0, adam.ema_decay = 0.5;
  DiT model_c(c, B, DiTUse::Training, cpu), model_e(c, B, DiTUse::Training, emu);
  model_c.init(7);
  model_e.init(7);
  DiTOptimizer opt_c(model_c, adam), opt_e(model_e, adam);
  TrainerOptions to;
  to.batch.stage_probs = {0.5, 0.5};
  to.seed = 3;
  Trainer tc(model_c, opt_c, to), te(model_e, opt_e, to);
  const std::string label = std::string(dtype_name(compute)) + (predictions.empty() ? "" : "+x");
  const char* name = label.c_str();

  std::vector<float> images(size_t(B * c.channels * c.height * c.width));
  std::vector<int32_t> labels = {0, 2};
  double worst_loss = 0, worst_grad = 0;
  for (int step = 0; step < 3; step++) {
    for (size_t i = 0; i < images.size(); i++) images[i] = float(std::sin(0.3 * double(i) + step));
    // the emulated device's memory is host memory: the same buffer serves both
    const TrainStepStats a = tc.step(images.data(), labels.data(), B), b = te.step(images.data(), labels.data(), B);
    CHECK(a.active_stage == b.active_stage, "%s step %d: active stage %d vs %d", name, step, b.active_stage, a.active_stage);
    const double e = std::fabs(b.loss - a.loss) / a.loss;
    worst_loss = std::max(worst_loss, e);
    CHECK(e <= tol_loss, "%s step %d: loss %.9g vs cpu %.9g (rel %.2e)", name, step, b.loss, a.loss, e);
    if (step == 0)
      for (const ParamInfo& p : model_c.params()) {
        const double g = rel(host(emu, model_e.grad_data() + p.offset, p.numel), host(cpu, model_c.grad_data() + p.offset, p.numel));
        worst_grad = std::max(worst_grad, g);
        CHECK(g <= tol_grad, "%s: gradient of %s: rel err %.2e", name, p.name.c_str(), g);
      }
  }
  // The compute copy of the weights follows the f32 masters (mixed precision only).
  if (compute != DType::F32) {
    std::vector<uint16_t> bits(size_t(model_e.num_params()));
    emu.download(bits.data(), model_e.compute_weights(), bits.size() * 2);
    const std::vector<float> master = host(emu, model_e.param_data(), model_e.num_params());
    int64_t off = 0;
    for (size_t i = 0; i < bits.size(); i++) off += bits[i] != f32_to_bf16(master[i]);
    CHECK(off == 0, "%s: %lld weights of the compute copy are not the rounded masters", name, (long long)off);
  } else {
    CHECK(model_e.compute_weights() == nullptr, "f32: a compute copy of the weights exists");
  }

  // Sampling the trained weights (the EMA) on each backend.
  SampleRequest r;
  r.count = 3;
  r.labels = {0, 1, 3};
  r.options = default_sampler_options(2);
  r.options.steps = {2, 1};
  r.options.solver = Solver::Heun;
  r.options.cfg = 2.f;
  r.options.seed = 11;
  r.previews = true;
  const SampleResult sc = sample_images(c, opt_c.ema(), r, {}, cpu), se = sample_images(c, opt_e.ema(), r, {}, emu);
  auto values = [](const Tensor& t) { return std::vector<float>(t.data<float>(), t.data<float>() + t.numel()); };
  const double ei = rel(values(se.images), values(sc.images));
  CHECK(ei <= tol_image, "%s: sampled images: rel err %.2e", name, ei);
  CHECK(se.previews.size() == 2, "%s: previews", name);
  std::printf("  %-5s losses of 3 steps rel err <= %.1e, first gradients <= %.1e, sampled images %.1e\n", name,
              worst_loss, worst_grad, ei);
}

}  // namespace

int main() {
  compare(DType::F32, 1e-4, 1e-3, 1e-4);
  compare(DType::BF16, 3e-2, 6e-2, 6e-2);
  compare(DType::F32, 1e-4, 1e-3, 1e-4, {Prediction::Velocity, Prediction::Clean});  // the fine stage predicts its clean level
  return test_summary("test_model_backends");
}
