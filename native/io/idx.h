// IDX files (the MNIST / Fashion-MNIST format): a big-endian magic 0x00 0x00 <type> <rank>, `rank`
// big-endian u32 dimensions, then the elements. decoflow reads unsigned bytes (type 0x08). Every
// claim is checked against the buffer, so a corrupt file is a Code::Format error, never a crash.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace df {

struct IdxHeader {
  std::vector<int64_t> dims;
  size_t data_offset = 0;  // the first element; the data is exactly prod(dims) bytes from there
};

// Code::Format (naming `what`) unless `bytes` is an IDX file of unsigned bytes with `rank`
// dimensions, none of them 0, whose data fills the rest of the buffer exactly.
IdxHeader parse_idx(const uint8_t* bytes, size_t size, int rank, const std::string& what);

}  // namespace df
