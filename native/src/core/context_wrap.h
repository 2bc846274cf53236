// The JS classes Context (one execution context of a model: thread + stream + buffers) and Kernels (a
// model-less context for checking the CUDA kernels): one C++ class, whose pipeline holds a model or not.
#pragma once

#include <napi.h>

#include <memory>

#include "execution_thread.h"

namespace detq {

class ContextWrap : public Napi::ObjectWrap<ContextWrap> {
 public:
  static Napi::Function Define(Napi::Env env, const char* name);
  explicit ContextWrap(const Napi::CallbackInfo& info);

 private:
  Napi::Value Infer(const Napi::CallbackInfo& info);
  Napi::Value Letterbox(const Napi::CallbackInfo& info);
  Napi::Value Postprocess(const Napi::CallbackInfo& info);
  Napi::Value Benchmark(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  std::unique_ptr<ExecutionThread> thread_;
};

}  // namespace detq
