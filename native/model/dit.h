// The DFM transformer: one DiT (Peebles & Xie) that sees every stage of the decomposition at once.
// Hand-written forward and backward, written once against the op interface (ops/ops.h), so the same
// code runs on every backend: parameters in one f32 buffer, gradients in another and every
// activation in one arena, all on the model's device and sized once for (config, max batch), so a
// training step allocates nothing. Activations are in the backend's compute type (f32 on the CPU);
// a mixed-precision backend also gets a compute-type copy of the weights, refreshed by the optimiser.
//
// Tensor names are those of the PyTorch reference's state_dict (test/reference/dit_reference.py), so
// checkpoints move between the two:
//   x_embedders.{s}.proj.{weight [D, C, p, p], bias}      per-stage patch embedding (a strided conv)
//   t_embedders.{s}.mlp.{0,2}.{weight, bias}             per-stage timestep MLP (freq -> D -> D)
//   y_embedder.embedding_table.weight [K + 1, D]          classes; row K is the null class
//   s_embedder.embedding_table.weight [S, D]              active-stage embedding (optional)
//   blocks.{i}.{attn.qkv, attn.proj, mlp.fc1, mlp.fc2, adaLN_modulation.1}.{weight, bias}
//   final_layers.{s}.{adaLN_modulation.1, linear}.{weight, bias}
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "../core/tensor.h"
#include "../ops/ops.h"

namespace df {

// What a stage's final layer predicts. The model always returns velocities: a Clean stage's output
// X^ (the stage's clean level) is turned into v = (X^ - x_t) / max(1 - t, clean_min_gap) inside the
// model, so the loss, the trainer and the sampler are the same for both (the "x-prediction with a
// velocity loss" of Li & He, 2025). A clean level that is mostly zero (fine detail in flat regions)
// is easy to predict exactly, whereas its velocity is dominated by noise.
enum class Prediction { Velocity, Clean };
// The default clamp of 1 - t: the velocity's scale stays <= 20x. A larger gap g makes a Clean stage
// predict X^ = x_t + g v once 1 - t < g, i.e. its velocity (scaled) near the data, its clean level
// further out; 1 turns it into a velocity prediction with a skip of x_t.
constexpr float kCleanMinGap = 0.05f;

struct DiTConfig {
  int64_t stages = 1;     // S
  int64_t channels = 3;   // C
  int64_t height = 32, width = 32;  // of the finest stage; stage s (0-based) is H / 2^(S-1-s)
  std::vector<int64_t> patch_sizes = {2};  // per stage; every stage must give the same token grid
  int64_t hidden = 384, depth = 12, heads = 6;
  double mlp_ratio = 4.0;
  int64_t num_classes = 0;       // 0: unconditional
  bool stage_embedding = false;  // add an embedding of the active stage to the conditioning
  bool pos_embedding = true;     // add the fixed 2-D sin-cos position embedding
  int64_t freq_dim = 256;        // sinusoidal features of each time
  double time_scale = 1000.0;    // times in [0, 1] are multiplied by this before the features
  std::vector<Prediction> predictions;  // per stage; empty: every stage predicts its velocity
  double clean_min_gap = kCleanMinGap;   // the Clean stages' clamp of 1 - t, in [0.01, 1]
  // The pyramid the stages come from: recorded with the model, so that the trainer and the sampler
  // decompose and recompose with the one it was trained on.
  PyramidKind decomposition = PyramidKind::Laplacian;

  bool predicts_clean(int64_t s) const {
    return size_t(s) < predictions.size() && predictions[size_t(s)] == Prediction::Clean;
  }
  bool any_clean() const {
    for (Prediction p : predictions)
      if (p == Prediction::Clean) return true;
    return false;
  }

  int64_t stage_height(int64_t s) const { return height >> (stages - 1 - s); }
  int64_t stage_width(int64_t s) const { return width >> (stages - 1 - s); }
  int64_t grid_h() const { return stage_height(0) / patch_sizes[0]; }
  int64_t grid_w() const { return stage_width(0) / patch_sizes[0]; }
  int64_t tokens() const { return grid_h() * grid_w(); }
  int64_t mlp_hidden() const { return int64_t(double(hidden) * mlp_ratio); }
  int64_t head_dim() const { return hidden / heads; }
  int64_t stage_numel(int64_t s) const { return channels * stage_height(s) * stage_width(s); }

  // Code::Config naming the field for anything inconsistent or absurd.
  void validate() const;
  std::string to_json() const;
  std::string predictions_json() const;  // ",\"stagePredictions\":[...]" or "" when every stage is 'v'
  static DiTConfig from_json(const std::string& text);  // Code::Format / Code::Config
  bool operator==(const DiTConfig& o) const { return to_json() == o.to_json(); }
};

enum class ParamInit { Xavier, Normal, Zero };

struct ParamInfo {
  std::string name;
  Shape shape;
  int64_t offset = 0, numel = 0;
  ParamInit init = ParamInit::Zero;
  int64_t fan_in = 0, fan_out = 0;  // for Xavier
};

// One batch of inputs: x[s] is [B, C, H_s, W_s] (f32, contiguous, on the model's device); time and
// mask are [B, S] host arrays (mask 0 or 1: a 0 stage's input contributes nothing and its loss is
// excluded); labels [B] (host) in [0, num_classes] (num_classes = the null class), ignored when
// num_classes is 0.
struct DiTBatch {
  int64_t batch = 0;
  std::vector<const float*> x;
  const float* time = nullptr;
  const float* mask = nullptr;
  const int32_t* labels = nullptr;
};

// Training keeps every activation for the backward pass; Inference (sampling) runs the forward
// only, in an arena about 2 x depth times smaller, and has no gradients.
enum class DiTUse { Training, Inference };

class DiT {
 public:
  // On the device of `ops`, in its compute type.
  DiT(const DiTConfig& config, int64_t max_batch, DiTUse use = DiTUse::Training, Ops& ops = cpu_ops());

  const DiTConfig& config() const { return cfg_; }
  int64_t max_batch() const { return max_batch_; }
  bool training() const { return training_; }
  Device device() const { return ops_.device(); }
  Ops& ops() const { return ops_; }
  int64_t arena_bytes() const { return arena_bytes_; }
  const std::vector<ParamInfo>& params() const { return params_; }
  const ParamInfo* find_param(const std::string& name) const;
  int64_t num_params() const { return num_params_; }
  // The f32 parameters and their gradients, on the model's device (gradients: null for inference).
  float* param_data() { return weights_.data<float>(); }
  const float* param_data() const { return weights_.data<float>(); }
  float* grad_data() { return grads_.data<float>(); }
  const float* grad_data() const { return grads_.data<float>(); }
  // The weights in the compute type when that is not f32 (null otherwise: the kernels read the f32
  // parameters). The optimiser refreshes it; whoever else writes param_data() calls weights_changed().
  void* compute_weights() { return compute_weights_.raw(); }
  void weights_changed();

  // DiT's initialisation from a seed (Philox, one stream per tensor): Xavier-uniform linears and
  // patch embeddings, N(0, 0.02) embedding tables and timestep MLPs, zero biases, and zero adaLN
  // modulations and final layers (adaLN-Zero).
  void init(uint64_t seed);

  // Checks the values of a batch (labels in range, mask 0/1, finite times): Code::ArgValue.
  void validate_batch(const DiTBatch& b) const;
  // Runs the model; outputs are then at output(s) ([B, C, H_s, W_s], f32, on the device) until the
  // next forward.
  void forward(const DiTBatch& b);
  const float* output(int64_t s) const;
  // After forward: the loss sum_s w_s mse_s against per-stage targets v[s] ([B, C, H_s, W_s], f32, on
  // the device) with weights w (null: all 1), and (when `backward`) the gradient of every parameter
  // written to grad_data() (overwritten, not accumulated). loss_stage(s) is mse_s, unweighted.
  double loss(const std::vector<const float*>& targets, bool backward, const std::vector<double>* stage_weights = nullptr);
  double loss_stage(int64_t s) const { return stage_loss_[size_t(s)]; }

 private:
  struct Slot {  // a region of the activation arena, in bytes (default: none, in an inference model)
    int64_t offset = -1;
  };
  struct BlockParams {
    int64_t qkv_w, qkv_b, proj_w, proj_b, fc1_w, fc1_b, fc2_w, fc2_b, ada_w, ada_b;
  };
  struct BlockActs {
    Slot x_in, mean1, rstd1, xmod1, q, k, v, o, lse, attn_cat, proj_out, x_mid, mean2, rstd2, xmod2, h, gelu, fc2_out,
        mod;
  };
  struct StageParams {
    int64_t embed_w, embed_b, t0_w, t0_b, t2_w, t2_b, fada_w, fada_b, flin_w, flin_b;
  };
  struct StageActs {
    Slot patches, tfeat, th, ta, fmod, fmean, frstd, fy, fout, out, dout;
  };

  int64_t add_param(const std::string& name, const Shape& shape, ParamInit init, int64_t fan_in = 0,
                    int64_t fan_out = 0);
  Slot slot(int64_t elements, DType dtype);
  // An activation (compute type) or an f32 region of the arena, `at` elements in.
  void* A(const Slot& s, int64_t at = 0) { return arena_.data<char>() + s.offset + at * csize_; }
  float* A32(const Slot& s, int64_t at = 0) { return reinterpret_cast<float*>(arena_.data<char>() + s.offset) + at; }
  const void* W(int64_t offset) const;  // a weight as the kernels read it (compute type)
  float* G(int64_t offset) { return grads_.data<float>() + offset; }
  void backward();
  // Stage s's [B, numel] output as one group of rows whose coefficients are the [B, S] matrix's column s.
  GroupedRows stage_rows(int64_t s) const { return GroupedRows{batch_, {cfg_.stage_numel(s)}, cfg_.stages}; }

  DiTConfig cfg_;
  int64_t max_batch_;
  bool training_;
  Ops& ops_;
  DType compute_;
  int64_t csize_;  // bytes of one compute element
  std::vector<ParamInfo> params_;
  int64_t num_params_ = 0;
  std::vector<BlockParams> block_params_;
  std::vector<StageParams> stage_params_;
  int64_t y_table_ = -1, s_table_ = -1;

  Tensor weights_, compute_weights_, grads_, arena_;
  int64_t arena_bytes_ = 0;
  std::vector<BlockActs> block_acts_;
  std::vector<StageActs> stage_acts_;
  Slot pos_, c_, silu_c_, x_final_, tmp_td_, qkv_tmp_;
  // Backward scratch.
  Slot dx_, dtmp_, dattn_, dqkv_, dq_, dk_, dv_, do_, dh_, dmod_, dsilu_c_, dc_, dfout_, dfy_, dbd_, dbd2_;
  // The batch's times, masks, labels and active stages: host copies (read by the checks and for the
  // active stages) and the device copies the kernels read.
  std::vector<int32_t> active_stage_;
  std::vector<float> mask_, time_;
  std::vector<int32_t> labels_;
  Tensor time_dev_, mask_dev_, labels_dev_, active_dev_;
  // 1 / max(1 - t, clean_min_gap) per (sample, stage), for the stages that predict their clean level.
  std::vector<float> clean_scale_;
  Tensor clean_scale_dev_;
  std::vector<double> stage_loss_;
  int64_t batch_ = 0;  // of the last forward
  bool have_forward_ = false;
};

}  // namespace df
