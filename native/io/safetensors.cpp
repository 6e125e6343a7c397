#include "safetensors.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "../core/error.h"
#include "files.h"
#include "json.h"

namespace df {

namespace {

// Above this a header is not a header (the format's own readers cap it at 100 MB).
constexpr uint64_t kMaxHeader = 100ull << 20;

[[noreturn]] void bad(const std::string& path, const std::string& why) {
  fail(Code::Format, "safetensors: " + path + ": " + why);
}

uint64_t as_u64(const json::Value& v, const std::string& path, const std::string& what) {
  // the range first: converting a double beyond uint64_t is undefined (found by fuzz_safetensors)
  if (!v.is_number() || !(v.number >= 0 && v.number <= 9007199254740992.0) || v.number != std::floor(v.number))
    bad(path, what + ": expected a non-negative integer");
  return uint64_t(v.number);
}

}  // namespace

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  for (const auto& e : entries_)
    if (e.name == name) return &e;
  return nullptr;
}

SafetensorsFile SafetensorsFile::read(const std::string& path) {
  remove_stale_temps(path);
  return parse(read_regular_file(path, "safetensors"), path);
}

SafetensorsFile SafetensorsFile::parse(std::vector<uint8_t> bytes, const std::string& path) {
  SafetensorsFile f;
  f.path_ = path;
  f.data_ = std::move(bytes);
  const size_t size = f.data_.size();
  if (f.data_.size() < 8) bad(path, "file of " + std::to_string(size) + " bytes is too short for the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = (n << 8) | f.data_[size_t(i)];
  if (n > kMaxHeader) bad(path, "header length " + std::to_string(n) + " is absurd");
  if (n > f.data_.size() - 8)
    bad(path, "header length " + std::to_string(n) + " exceeds the file (" + std::to_string(size) + " bytes)");
  f.data_start_ = size_t(8 + n);
  const uint64_t data_size = f.data_.size() - f.data_start_;
  std::string header(reinterpret_cast<const char*>(f.data_.data() + 8), size_t(n));
  json::Value root = json::parse(header, "safetensors: " + path + ": header");
  if (!root.is_object()) bad(path, "header is not a JSON object");

  for (const auto& kv : root.object) {
    const std::string& name = kv.first;
    const json::Value& v = kv.second;
    if (name == "__metadata__") {
      if (!v.is_object()) bad(path, "__metadata__ is not an object");
      for (const auto& m : v.object) {
        if (!m.second.is_string()) bad(path, "__metadata__." + m.first + " is not a string");
        f.metadata_[m.first] = m.second.string;
      }
      continue;
    }
    if (f.find(name)) bad(path, "tensor '" + name + "' appears twice");
    if (!v.is_object()) bad(path, "tensor '" + name + "': expected an object");
    SafetensorsEntry e;
    e.name = name;
    const json::Value* dtype = v.find("dtype");
    const json::Value* shape = v.find("shape");
    const json::Value* offsets = v.find("data_offsets");
    if (!dtype || !dtype->is_string()) bad(path, "tensor '" + name + "': missing dtype");
    if (dtype->string == "F32") e.dtype = DType::F32;
    else if (dtype->string == "I32") e.dtype = DType::I32;
    else bad(path, "tensor '" + name + "': dtype " + dtype->string + " is not supported (F32, I32)");
    if (!shape || !shape->is_array() || shape->array.size() > size_t(kMaxRank))
      bad(path, "tensor '" + name + "': shape must be an array of at most " + std::to_string(kMaxRank) + " dimensions");
    uint64_t numel = 1;
    for (const auto& d : shape->array) {
      uint64_t dim = as_u64(d, path, "tensor '" + name + "': shape");
      if (dim == 0) bad(path, "tensor '" + name + "': zero-sized dimensions are not supported");
      if (dim > data_size / 4 + 1 || numel > data_size / dim + 1)
        bad(path, "tensor '" + name + "': shape larger than the file");
      numel *= dim;
      e.shape.push_back(int64_t(dim));
    }
    if (!offsets || !offsets->is_array() || offsets->array.size() != 2)
      bad(path, "tensor '" + name + "': data_offsets must be [begin, end]");
    e.begin = as_u64(offsets->array[0], path, "tensor '" + name + "': data_offsets");
    e.end = as_u64(offsets->array[1], path, "tensor '" + name + "': data_offsets");
    if (e.begin > e.end || e.end > data_size)
      bad(path, "tensor '" + name + "': data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                    "] outside the " + std::to_string(data_size) + " data bytes");
    if (e.end - e.begin != numel * 4)
      bad(path, "tensor '" + name + "': " + std::to_string(e.end - e.begin) + " bytes for " + std::to_string(numel) +
                    " elements of 4 bytes");
    f.entries_.push_back(std::move(e));
  }
  // The tensors cover the data bytes exactly once: no two share a byte and none is left over.
  std::vector<const SafetensorsEntry*> sorted;
  for (const auto& e : f.entries_) sorted.push_back(&e);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
  uint64_t covered = 0;
  for (size_t i = 0; i < sorted.size(); i++) {
    const SafetensorsEntry& e = *sorted[i];
    if (e.begin < covered)
      bad(path, "tensors '" + sorted[i - 1]->name + "' and '" + e.name + "' overlap (byte " + std::to_string(e.begin) + ")");
    if (e.begin > covered)
      bad(path, "data bytes " + std::to_string(covered) + " to " + std::to_string(e.begin) + " belong to no tensor");
    covered = e.end;
  }
  if (covered != data_size)
    bad(path, "data bytes " + std::to_string(covered) + " to " + std::to_string(data_size) + " belong to no tensor");
  return f;
}

Tensor SafetensorsFile::tensor(const SafetensorsEntry& e) const {
  Shape shape = e.shape.empty() ? Shape{1} : e.shape;
  Tensor t(shape, e.dtype);
  std::memcpy(t.raw(), bytes(e), size_t(e.end - e.begin));
  return t;
}

void write_safetensors(const std::string& path, const std::vector<SafetensorsTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::set<std::string> names;
  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& kv : metadata) {
      header += (first ? "" : ",") + json::quote(kv.first) + ":" + json::quote(kv.second);
      first = false;
    }
    header += "}";
  }
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__" || !names.insert(t.name).second)
      fail(Code::ArgValue, "safetensors: tensor name '" + t.name + "' is empty, reserved or repeated");
    if (t.dtype != DType::F32 && t.dtype != DType::I32)
      fail(Code::DType, "safetensors: tensor '" + t.name + "': only f32 and i32 can be written");
    uint64_t numel = 1;
    std::string shape = "[";
    for (size_t i = 0; i < t.shape.size(); i++) {
      numel *= uint64_t(t.shape[i]);
      shape += (i ? "," : "") + std::to_string(t.shape[i]);
    }
    shape += "]";
    uint64_t bytes = numel * 4;
    header += std::string(header.size() > 1 ? "," : "") + json::quote(t.name) + ":{\"dtype\":\"" +
              (t.dtype == DType::F32 ? "F32" : "I32") + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
              std::to_string(offset) + "," + std::to_string(offset + bytes) + "]}";
    offset += bytes;
  }
  header += "}";
  // Pad with spaces so the data starts 8-byte aligned (what the reference writer does).
  while ((8 + header.size()) % 8) header += ' ';

  uint8_t len[8];
  uint64_t n = header.size();
  for (int i = 0; i < 8; i++) len[i] = uint8_t(n >> (8 * i));
  std::vector<ByteChunk> chunks = {{len, 8}, {header.data(), header.size()}};
  for (const auto& t : tensors) {
    size_t bytes = 4;
    for (int64_t d : t.shape) bytes *= size_t(d);
    chunks.push_back({t.data, bytes});
  }
  write_file_atomic(path, chunks, "safetensors");
}

}  // namespace df
