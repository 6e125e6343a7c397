#include "error.h"

namespace df {

const char* code_name(Code c) {
  switch (c) {
    case Code::ArgType: return "ERR_DECOFLOW_ARG_TYPE";
    case Code::ArgValue: return "ERR_DECOFLOW_ARG_VALUE";
    case Code::Shape: return "ERR_DECOFLOW_SHAPE";
    case Code::DType: return "ERR_DECOFLOW_DTYPE";
    case Code::Device: return "ERR_DECOFLOW_DEVICE";
    case Code::Disposed: return "ERR_DECOFLOW_DISPOSED";
    case Code::OutOfMemory: return "ERR_DECOFLOW_OUT_OF_MEMORY";
    case Code::Backend: return "ERR_DECOFLOW_BACKEND";
    case Code::Io: return "ERR_DECOFLOW_IO";
    case Code::Format: return "ERR_DECOFLOW_FORMAT";
    case Code::Config: return "ERR_DECOFLOW_CONFIG";
    case Code::Aborted: return "ABORT_ERR";
    case Code::NonFinite: return "ERR_DECOFLOW_NON_FINITE";
    case Code::Busy: return "ERR_DECOFLOW_BUSY";
    case Code::Internal: return "ERR_DECOFLOW_INTERNAL";
  }
  return "ERR_DECOFLOW_INTERNAL";
}

}  // namespace df
