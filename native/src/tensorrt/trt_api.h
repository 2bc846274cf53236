// What module.cc needs from the TensorRT backend when it is compiled in.
#pragma once

#include <napi.h>

#include "trt_logging.h"

namespace detq {

// buildTensorRtEngine(options) -> Promise<{ plan, gpu, computeCapability, tensorrt, precision, ... }>;
// the build runs on its own thread, and the caller writes the engine file.
Napi::Value BuildTensorRtEngine(const Napi::CallbackInfo& info);

}  // namespace detq
