// .npy files (NumPy's format): "\x93NUMPY", a version, a little-endian header length, a Python dict
// literal {'descr': '<f4', 'fortran_order': False, 'shape': (N, C, H, W), } and the elements in C
// order. The dict is parsed as the literal it is (strings, True/False, tuples of integers), every
// size is checked against the buffer, and a corrupt file is a Code::Format error, never a crash.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace df {

enum class NpyType { U8, F32, F64 };

struct NpyHeader {
  NpyType type = NpyType::F32;
  std::vector<int64_t> shape;
  size_t data_offset = 0;  // the data is exactly prod(shape) elements from there to the end
};

// Code::Format unless `bytes` is a C-ordered .npy array of little-endian f4/f8 or u1 whose data
// fills the rest of the buffer exactly.
NpyHeader parse_npy(const uint8_t* bytes, size_t size, const std::string& what);

// The images of a .npy file as f32 [N, C, H, W] in [-1, 1]: floats [N, C, H, W] as they are, bytes
// [N, H, W] or [N, H, W, C] scaled from 0..255. Code::Shape for other ranks.
struct NpyImages {
  std::vector<int64_t> shape;  // [N, C, H, W]
  std::vector<float> data;
};
NpyImages npy_images(const uint8_t* bytes, size_t size, const std::string& what);

}  // namespace df
