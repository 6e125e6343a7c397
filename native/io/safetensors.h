// safetensors files (https://github.com/huggingface/safetensors): an 8-byte little-endian header
// length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__":
// {string: string}}, then the data, offsets relative to the first byte after the header.
// decoflow reads F32 and I32 tensors and writes F32. Everything a file claims is checked (header
// length against the file size, the JSON, dtypes, offsets in range, sizes equal to numel * 4, and the
// tensors covering the data bytes exactly once: no overlap, no hole) so a corrupt or hostile file is a
// Code::Format error, never a crash or an out-of-bounds read. Writes go to a temporary file that is
// fsynced and renamed over the target, then the directory is fsynced (atomic and durable); a
// temporary left by a killed writer is removed by the next read or write in that directory.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "../core/dtype.h"
#include "../core/tensor.h"

namespace df {

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;  // may be empty (a scalar) in files written by others
  uint64_t begin = 0, end = 0;
};

class SafetensorsFile {
 public:
  // Reads and validates the whole file. Code::Io when it cannot be read, Code::Format when invalid.
  static SafetensorsFile read(const std::string& path);
  // The same checks on the bytes of a file already in memory (`path` names it in messages).
  static SafetensorsFile parse(std::vector<uint8_t> bytes, const std::string& path);

  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const SafetensorsEntry* find(const std::string& name) const;
  // Raw bytes of an entry (validated in range).
  const uint8_t* bytes(const SafetensorsEntry& e) const { return data_.data() + data_start_ + e.begin; }
  // A copy as a CPU tensor (rank 0 becomes [1]).
  Tensor tensor(const SafetensorsEntry& e) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::vector<uint8_t> data_;
  size_t data_start_ = 0;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

struct SafetensorsTensor {
  std::string name;
  Shape shape;
  DType dtype = DType::F32;  // F32 or I32
  const void* data = nullptr;
};

// Writes the tensors (in the order given) and metadata atomically. Code::Io on failure (the target is
// left untouched), Code::ArgValue for duplicate or empty names.
void write_safetensors(const std::string& path, const std::vector<SafetensorsTensor>& tensors,
                       const std::map<std::string, std::string>& metadata);

}  // namespace df
