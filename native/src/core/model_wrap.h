// The JS class Model: a loaded network, shared by the contexts it creates.
#pragma once

#include <napi.h>

#include <memory>

#include "backend.h"

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

}  // namespace detq
