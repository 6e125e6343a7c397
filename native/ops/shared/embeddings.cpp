// The fixed position embedding (embeddings.h), compiled once: the model computes it at creation.
#include "../embeddings.h"

#include <cmath>

namespace df {

void sincos_pos_embed_2d(float* out, int64_t gh, int64_t gw, int64_t dim) {
  const int64_t quarter = dim / 4;
  for (int64_t i = 0; i < gh; i++)
    for (int64_t j = 0; j < gw; j++) {
      float* o = out + (i * gw + j) * dim;
      for (int64_t k = 0; k < quarter; k++) {
        double w = 1.0 / std::pow(10000.0, double(k) / double(quarter));
        o[k] = float(std::sin(double(j) * w));
        o[quarter + k] = float(std::cos(double(j) * w));
        o[2 * quarter + k] = float(std::sin(double(i) * w));
        o[3 * quarter + k] = float(std::cos(double(i) * w));
      }
    }
}

}  // namespace df
