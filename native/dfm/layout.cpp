#include "layout.h"

namespace df {

StageLayout stage_layout(const DiTConfig& c, int64_t batch) {
  StageLayout l;
  l.batch = batch;
  for (int64_t s = 0; s < c.stages; s++) l.per_sample.push_back(c.stage_numel(s));
  return l;
}

PyramidShape pyramid_geometry(const DiTConfig& c, int64_t batch) {
  PyramidShape p;
  p.batch = batch;
  p.channels = c.channels;
  p.height = c.height;
  p.width = c.width;
  p.stages = int(c.stages);
  return p;
}

}  // namespace df
