// Distances between a set of generated images and a set of real ones, with no pretrained network
// (nothing to download): every feature below is computed from the pixels by decoflow itself.
//
//   Sliced Wasserstein distance (SWD), Karras et al., "Progressive Growing of GANs" (ICLR 2018),
//   their appendix D: each image is decomposed by decoflow's Laplacian pyramid (native/ops/pyramid.h;
//   the finest level is the image minus its 2x-down-up version, the coarsest is the low-pass image),
//   `descriptors` 7x7xC neighbourhoods are taken at random positions of every level of every image,
//   each set's descriptors are normalised per channel (mean 0, std 1 over that set and level), and
//   the distance is the mean, over `projections` random unit directions, of the 1-D Wasserstein-1
//   distance between the two sets' projections. Reported x 1000, as Karras et al. do.
//   The 1-D distance is the exact one between the two empirical distributions, so the two sets may
//   have different sizes (with equal sizes it is Karras's mean |sorted a - sorted b|).
//
//   Frechet distance (FD) between Gaussian fits of features (Heusel et al.'s FID formula):
//     |mu_a - mu_b|^2 + tr S_a + tr S_b - 2 tr sqrt(S_a^1/2 S_b S_a^1/2),
//   with S_a^1/2 from a symmetric eigendecomposition (negative eigenvalues of a rounding-noisy
//   covariance clamped to 0) and tr sqrt(.) the sum of the square roots of the eigenvalues of the
//   symmetric matrix (S_a^1/2 S_b S_a^1/2 is similar to it), all in float64. Features:
//     Pix8, Pix16: the image averaged over 2^k x 2^k blocks down to 8x8 (16x16) pixels, all channels
//                  (C*64, C*256 numbers): layout and shape;
//     Bands:       the RMS of every detail level of the Laplacian pyramid whose coarsest level is
//                  8x8, in each cell of a 4x4 grid, per channel ((levels-1)*C*16 numbers): where
//                  and how much fine detail (or speckle) an image has.
//
//   Precision and recall (Kynkaanniemi et al., "Improved Precision and Recall Metric for Assessing
//   Generative Models", NeurIPS 2019) in the same feature space: each sample's radius is the
//   distance to its k-th nearest neighbour in its own set; precision is the fraction of generated
//   samples inside some real sample's ball, recall the fraction of real samples inside some
//   generated sample's ball.
//
// Every GEMM (projections, covariances, pairwise distances) goes through df::sgemm; the rest is
// spread over the thread pool. Results depend only on the inputs and the seed (Philox), not on the
// thread count, and swapping the two sets gives the same SWD and FD (descriptor positions depend on
// an image's index, not on which set it is in).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "../core/tensor.h"

namespace df::eval {

enum class FeatureKind { Pix8, Pix16, Bands };
FeatureKind parse_feature_kind(const std::string& name, const std::string& arg);
const char* feature_kind_name(FeatureKind kind);

struct SwdOptions {
  int64_t levels = 0;       // pyramid levels; 0: as many as keep the coarsest level >= 8 px (and >= patch)
  int64_t patch = 7;        // neighbourhood side
  int64_t descriptors = 64; // per image and level (Karras: 128)
  int64_t projections = 512;// random directions (Karras: 4 x 128)
  uint64_t seed = 0;
};

struct SwdResult {
  std::vector<int64_t> resolutions;  // of each level, finest first
  std::vector<double> per_level;     // x 1000, finest first
  double mean = 0;
};

struct PrOptions {
  FeatureKind feature = FeatureKind::Pix16;
  int64_t k = 3;
};

struct PrResult {
  double precision = 0, recall = 0;
};

struct GaussianFit {
  int64_t dim = 0, count = 0;
  std::vector<double> mean;  // [dim]
  std::vector<double> cov;   // [dim, dim], unbiased (count - 1)
};

// Images are f32 [N, C, H, W] on the CPU; a and b must agree on C, H and W. Errors name `fn`.
void check_image_sets(const Tensor& a, const Tensor& b, const std::string& fn);

SwdResult sliced_wasserstein(const Tensor& a, const Tensor& b, const SwdOptions& opt, const std::string& fn);

// [N, D] features of each image.
Tensor features(const Tensor& images, FeatureKind kind, const std::string& fn);
GaussianFit fit_gaussian(const Tensor& features);
double frechet_distance(const GaussianFit& a, const GaussianFit& b);
// The same on given means and covariances (f32 [D], [D, D]; only the lower triangle is read).
double frechet_distance(const Tensor& mean_a, const Tensor& cov_a, const Tensor& mean_b, const Tensor& cov_b,
                        const std::string& fn);

PrResult precision_recall(const Tensor& features_real, const Tensor& features_generated, int64_t k, const std::string& fn);

// Everything at once, as `decoflow eval` reports it.
struct EvalOptions {
  bool swd = true;
  SwdOptions swd_options;
  std::vector<FeatureKind> frechet = {FeatureKind::Pix8, FeatureKind::Pix16, FeatureKind::Bands};
  bool precision_recall = true;
  PrOptions pr_options;
};

// The bands features split by pyramid detail level (finest first): each level's own Frechet
// distance (the sub-block of the bands Gaussian fits) and its mean cell RMS in each set, which says
// whether a model makes too much fine detail (speckle) or too little (blur) at that scale.
struct BandLevels {
  std::vector<int64_t> resolutions;
  std::vector<double> frechet, rms_generated, rms_real;
};
BandLevels split_band_levels(const GaussianFit& generated, const GaussianFit& real, int64_t channels, int64_t height);

struct EvalResult {
  bool has_swd = false;
  SwdResult swd;
  std::vector<std::pair<FeatureKind, double>> frechet;
  bool has_band_levels = false;  // when the bands distance was asked for
  BandLevels band_levels;
  bool has_pr = false;
  PrResult pr;
};

// `progress(done, total)` is called after each part (may be empty).
EvalResult evaluate(const Tensor& generated, const Tensor& real, const EvalOptions& options, const std::string& fn,
                    const std::function<void(int64_t, int64_t)>& progress = {});

// Eigenvalues (ascending) and, when `vectors` is not null, eigenvectors of a symmetric n x n
// matrix (row-major, float64; only the lower triangle is read): Householder tridiagonalisation
// then implicit QR with Wilkinson shifts. vectors[i * n + j] is component j of eigenvector i.
void symmetric_eigen(int64_t n, const double* a, double* values, double* vectors);

}  // namespace df::eval
