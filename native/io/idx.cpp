#include "idx.h"

#include <cstdio>

#include "../core/error.h"

namespace df {

IdxHeader parse_idx(const uint8_t* bytes, size_t size, int rank, const std::string& what) {
  if (rank < 1 || rank > 4) fail(Code::ArgValue, what + ": IDX rank must be 1 to 4, got " + std::to_string(rank));
  const size_t header = 4 + 4 * size_t(rank);
  auto u32 = [&](size_t at) {
    return (uint32_t(bytes[at]) << 24) | (uint32_t(bytes[at + 1]) << 16) | (uint32_t(bytes[at + 2]) << 8) | uint32_t(bytes[at + 3]);
  };
  if (size < header || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 || bytes[3] != uint8_t(rank)) {
    char magic[16];
    std::snprintf(magic, sizeof magic, "0x%08x", 0x800u + unsigned(rank));
    fail(Code::Format, what + ": not an IDX file of unsigned bytes of rank " + std::to_string(rank) + " (expected magic " +
                           magic + ")");
  }
  IdxHeader h;
  h.data_offset = header;
  uint64_t count = 1;  // saturates at UINT64_MAX (then it differs from the data size anyway)
  const uint64_t available = size - header;
  std::string dims;
  for (int i = 0; i < rank; i++) {
    uint32_t d = u32(4 + 4 * size_t(i));
    // a zero dimension holds no image, and a loader looping over the others would spin (fuzz_npy's
    // finding, the same shape of bug)
    if (d == 0) fail(Code::Format, what + ": dimension " + std::to_string(i) + " is 0");
    count = d != 0 && count > UINT64_MAX / d ? UINT64_MAX : count * d;
    h.dims.push_back(int64_t(d));
    dims += (i ? " x " : "") + std::to_string(d);
  }
  if (count != available)
    fail(Code::Format, what + ": header says " + dims + " = " + (count == UINT64_MAX ? "too many" : std::to_string(count)) +
                           " bytes of data, file has " + std::to_string(available));
  return h;
}

}  // namespace df
