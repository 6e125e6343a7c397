// Where a tensor's storage lives.
#pragma once
#include <string>

namespace df {

enum class DeviceKind { CPU, CUDA };

struct Device {
  DeviceKind kind = DeviceKind::CPU;
  int index = 0;
  bool operator==(const Device& o) const { return kind == o.kind && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  bool is_cpu() const { return kind == DeviceKind::CPU; }
  std::string name() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }
};

// Parses "cpu", "cuda" or "cuda:N"; throws Code::Device naming `arg` for anything else.
Device parse_device(const std::string& s, const char* arg);

}  // namespace df
