// Shared by the libFuzzer targets: a parser may refuse its input only with df::Error (a coded JS
// error in the addon); anything else that escapes (std::bad_alloc, another exception, a sanitizer
// report) is a finding. `touch` reads every byte a parser claims is valid, so ASan sees a bad range.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "core/error.h"

template <class F>
void refuse_only_with_df_error(F&& fn) {
  try {
    fn();
  } catch (const df::Error&) {
  }
}

inline uint64_t touch(const uint8_t* p, size_t n) {
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++) sum += p[i];
  return sum;
}

// A finding that is not a memory error: a broken promise of the parser.
#define FUZZ_ASSERT(cond)  \
  do {                     \
    if (!(cond)) abort();  \
  } while (0)
