// One error type for the whole native core. The addon turns it into a JS Error whose `code` is
// code_name(code) and whose message names the argument and what was expected.
#pragma once
#include <stdexcept>
#include <string>

namespace df {

enum class Code {
  ArgType,      // an argument of the wrong JS/C++ type
  ArgValue,     // a value out of its allowed range (negative size, bad option...)
  Shape,        // shapes that don't match or aren't allowed
  DType,        // a dtype that isn't supported or doesn't match
  Device,       // unknown or unavailable device, or tensors on different devices
  Disposed,     // a tensor used after dispose()
  OutOfMemory,  // allocation failed
  Backend,      // a backend (CUDA, BLAS) reported an error
  Io,           // file system error
  Format,       // corrupt or unsupported file contents
  Config,       // an invalid model/trainer/sampler configuration
  Aborted,      // the caller aborted the operation
  NonFinite,    // NaN or infinity where a finite value is required
  Busy,         // the object is busy with another call (await it, then retry)
  Internal,     // a broken invariant: a bug in decoflow
};

const char* code_name(Code c);

class Error : public std::runtime_error {
 public:
  Error(Code code, const std::string& message) : std::runtime_error(message), code_(code) {}
  Code code() const { return code_; }

 private:
  Code code_;
};

[[noreturn]] inline void fail(Code code, const std::string& message) { throw Error(code, message); }

inline void check(bool ok, Code code, const std::string& message) {
  if (!ok) fail(code, message);
}

}  // namespace df
