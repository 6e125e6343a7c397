// The speed of native/io/json on what it parses in practice: the header of a large checkpoint
// (a DiT-XL-like model: 28 blocks, parameters plus EMA and both AdamW moments, about 1,100 tensors,
// the config as escaped JSON in the metadata). Prints microseconds per header and MB/s.
#include <chrono>
#include <cstdio>
#include <string>

#include "io/json.h"

// With Debian's nlohmann-json3-dev installed, the same header through nlohmann::json (a DOM parse,
// the library's usual use) for comparison.
#if __has_include(<nlohmann/json.hpp>)
#include <nlohmann/json.hpp>
#define HAVE_NLOHMANN 1
#endif

int main(int argc, char** argv) {
  int iterations = argc > 1 ? std::atoi(argv[1]) : 300;
  std::string config = "{\"stages\":2,\"channels\":3,\"height\":256,\"width\":256,\"patchSizes\":[4,8],\"hidden\":1152,"
                       "\"depth\":28,\"heads\":16,\"mlpRatio\":4,\"numClasses\":1000,\"stageEmbedding\":true}";
  std::string h = "{\"__metadata__\":{\"format\":\"decoflow-dit/1\",\"config\":" + df::json::quote(config) + ",\"step\":\"123456\"}";
  const char* kinds[] = {"attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias", "mlp.fc1.weight",
                         "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias", "adaLN_modulation.1.weight", "adaLN_modulation.1.bias"};
  const char* parts[] = {"", "ema.", "adam.m.", "adam.v."};
  unsigned long long offset = 0;
  int tensors = 0;
  for (const char* part : parts)
    for (int b = 0; b < 28; b++)
      for (const char* k : kinds) {
        unsigned long long bytes = 4ull * 1152 * (std::string(k).find("weight") != std::string::npos ? 1152 : 1);
        h += ",\"" + std::string(part) + "blocks." + std::to_string(b) + "." + k + "\":{\"dtype\":\"F32\",\"shape\":[1152,1152],\"data_offsets\":[" +
             std::to_string(offset) + "," + std::to_string(offset + bytes) + "]}";
        offset += bytes;
        tensors++;
      }
  h += "}";
  size_t members = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; i++) members += df::json::parse(h, "bench").object.size();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("json parse: header of %d tensors, %zu bytes: %.1f us per header, %.1f MB/s (%zu members)\n", tensors, h.size(),
              1e6 * s / iterations, h.size() * double(iterations) / s / 1e6, members / size_t(iterations));
#ifdef HAVE_NLOHMANN
  members = 0;
  t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; i++) members += nlohmann::json::parse(h).size();
  s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("nlohmann::json::parse (%s): %.1f us per header, %.1f MB/s (%zu members)\n", NLOHMANN_JSON_VERSION_MAJOR == 3 ? "3.x" : "?",
              1e6 * s / iterations, h.size() * double(iterations) / s / 1e6, members / size_t(iterations));
  members = 0;
  t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; i++) members += nlohmann::ordered_json::parse(h).size();
  s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("nlohmann::ordered_json::parse: %.1f us per header, %.1f MB/s\n", 1e6 * s / iterations, h.size() * double(iterations) / s / 1e6);
#endif
  return 0;
}
