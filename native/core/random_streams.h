// Names for the independent Philox streams of a run, so that every random number is a pure
// function of (seed, purpose, step, index): reproducible for any thread count and on the GPU.
#pragma once
#include <cstdint>

namespace df {

enum class Purpose : uint32_t {
  StageChoice = 1,  // the active stage Q of a training batch
  Times = 2,        // per-sample, per-stage training times
  TrainNoise = 3,   // the noise N_s of a training batch
  LabelDropout = 4, // classifier-free guidance's label dropout
  SampleNoise = 5,  // the sampler's initial noise
  Data = 6,         // procedural data and shuffling
  Init = 7,         // parameter initialisation
};

// 64-bit stream id: purpose in the top byte, then a 24-bit sub-stream (e.g. the stage), then a
// 32-bit counter (e.g. the training step).
inline uint64_t stream_id(Purpose p, uint64_t step, uint32_t sub = 0) {
  return (uint64_t(p) << 56) | (uint64_t(sub & 0xffffffu) << 32) | (step & 0xffffffffu);
}

}  // namespace df
