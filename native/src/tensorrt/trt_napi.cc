#include "../core/napi_util.h"
#include "../core/one_shot.h"
#include "trt_api.h"
#include "trt_builder.h"

namespace detq {

Napi::Value BuildTensorRtEngine(const Napi::CallbackInfo& info) {
  Napi::Object obj = requireObject(info, 0, "buildTensorRtEngine");
  BuildOptions o;
  o.onnxPath = requireString(obj, "onnxPath", "buildTensorRtEngine");
  o.outputPath = requireString(obj, "outputPath", "buildTensorRtEngine");
  o.modelSha256 = requireString(obj, "modelSha256", "buildTensorRtEngine");
  o.precision = requireString(obj, "precision", "buildTensorRtEngine");
  o.workspaceMiB = static_cast<int>(optionalNumber(obj, "workspaceMiB", o.workspaceMiB));
  o.minShape = requireString(obj, "minShape", "buildTensorRtEngine");
  o.optShape = requireString(obj, "optShape", "buildTensorRtEngine");
  o.maxShape = requireString(obj, "maxShape", "buildTensorRtEngine");
  o.device = static_cast<int>(optionalNumber(obj, "device", 0));
  if (obj.Has("calibrationData")) o.calibrationData = obj.Get("calibrationData").ToString().Utf8Value();
  if (obj.Has("calibrationCache")) o.calibrationCache = obj.Get("calibrationCache").ToString().Utf8Value();
  o.calibrationBatch = static_cast<int>(optionalNumber(obj, "calibrationBatch", o.calibrationBatch));
  return runOnOwnThread<BuildResult>(
      info.Env(), "detq-trt-build", [o] { return buildEngine(o); },
      [](Napi::Env env, BuildResult& r) -> Napi::Value {
        auto out = Napi::Object::New(env);
        out.Set("path", r.path);
        out.Set("seconds", r.seconds);
        auto key = Napi::Object::New(env);
        key.Set("modelSha256", r.key.modelSha256);
        key.Set("gpu", r.key.gpu);
        key.Set("computeCapability", r.key.computeCapability);
        key.Set("tensorrt", r.key.tensorrt);
        key.Set("precision", r.key.precision);
        key.Set("input", r.key.input);
        key.Set("min", r.key.minShape);
        key.Set("opt", r.key.optShape);
        key.Set("max", r.key.maxShape);
        out.Set("key", key);
        return out;
      });
}

}  // namespace detq
