// A minimal check macro for the native test executables (ctest reads the exit status).
#pragma once
#include <cstdio>
#include <string>

#include "core/error.h"

inline int g_failures = 0;
inline int g_checks = 0;

#define CHECK(cond, ...)                                      \
  do {                                                        \
    g_checks++;                                               \
    if (!(cond)) {                                            \
      g_failures++;                                           \
      std::fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      std::fprintf(stderr, __VA_ARGS__);                      \
      std::fprintf(stderr, "\n");                             \
    }                                                         \
  } while (0)

inline int test_summary(const char* name) {
  std::printf("%s: %d checks, %d failed\n", name, g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}

// The df::Error that fn throws (its code and message); thrown is false when it throws none.
struct CaughtError {
  bool thrown = false;
  df::Code code = df::Code::Internal;
  std::string message;
};

template <class F>
CaughtError caught_error(F&& fn) {
  CaughtError c;
  try {
    fn();
  } catch (const df::Error& e) {
    c.thrown = true;
    c.code = e.code();
    c.message = e.what();
  }
  return c;
}
