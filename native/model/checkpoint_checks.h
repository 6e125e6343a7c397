// Checks of a loaded checkpoint beyond its format: every weight, EMA weight and AdamW moment must be
// finite. A checkpoint holding NaN or infinity (a diverged run saved, or a corrupted file) is refused
// with Code::NonFinite naming the first bad tensor, unless the caller explicitly allows it.
#pragma once
#include <string>

namespace df {

struct LoadedCheckpoint;

// Code::NonFinite when a parameter, or (when the file had them) an EMA weight or AdamW moment, is
// NaN or infinite.
void check_checkpoint_finite(const LoadedCheckpoint& ck, const std::string& path);

}  // namespace df
