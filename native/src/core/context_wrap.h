// The JS classes: Model (a loaded network, shared by its contexts), Context (one execution context:
// thread + stream + buffers) and Kernels (a model-less context for checking the CUDA kernels).
#pragma once

#include <napi.h>

#include <memory>

#include "backend.h"
#include "execution_thread.h"

namespace detq {

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<ModelState> model);
  explicit ModelWrap(const Napi::CallbackInfo& info);

 private:
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value CreateContext(const Napi::CallbackInfo& info);
  std::shared_ptr<ModelState> model_;
};

// Context and Kernels differ only in whether their pipeline holds a model.
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

// Holds the constructors so ModelWrap can create instances of them.
struct AddonData {
  Napi::FunctionReference model;
  Napi::FunctionReference context;
};

}  // namespace detq
