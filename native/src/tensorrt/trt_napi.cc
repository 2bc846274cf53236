#include "../core/napi_util.h"
#include "../core/run_on_own_thread.h"
#include "trt_api.h"
#include "trt_builder.h"

namespace detq {
namespace {

std::string optionalString(const Napi::Object& obj, const char* key, const std::string& fallback) {
  return obj.Has(key) && !obj.Get(key).IsUndefined() ? requireString(obj, key, "buildTensorRtEngine") : fallback;
}

}  // namespace

Napi::Value BuildTensorRtEngine(const Napi::CallbackInfo& info) {
  Napi::Object obj = requireObject(info, 0, "buildTensorRtEngine");
  BuildOptions o;
  o.onnxPath = requireString(obj, "onnxPath", "buildTensorRtEngine");
  o.precision = requireString(obj, "precision", "buildTensorRtEngine");
  o.workspaceMiB = static_cast<int>(optionalNumber(obj, "workspaceMiB", o.workspaceMiB));
  o.minShape = requireString(obj, "minShape", "buildTensorRtEngine");
  o.optShape = requireString(obj, "optShape", "buildTensorRtEngine");
  o.maxShape = requireString(obj, "maxShape", "buildTensorRtEngine");
  o.profiles = static_cast<int>(optionalNumber(obj, "profiles", o.profiles));
  o.device = static_cast<int>(optionalNumber(obj, "device", 0));
  o.timingCache = optionalString(obj, "timingCache", "");
  o.calibrationData = optionalString(obj, "calibrationData", "");
  o.calibrationCache = optionalString(obj, "calibrationCache", "");
  o.calibrationBatch = static_cast<int>(optionalNumber(obj, "calibrationBatch", o.calibrationBatch));
  o.calibrationAlgorithm = optionalString(obj, "calibrationAlgorithm", o.calibrationAlgorithm);
  return runOnOwnThread<BuildResult>(
      info.Env(), "detq-trt-build", [o] { return buildEngine(o); },
      [](Napi::Env env, BuildResult& r) -> Napi::Value {
        auto out = Napi::Object::New(env);
        out.Set("plan", Napi::Buffer<char>::Copy(env, r.plan.data(), r.plan.size()));
        out.Set("gpu", r.gpu);
        out.Set("computeCapability", r.computeCapability);
        out.Set("tensorrt", r.tensorrt);
        out.Set("precision", r.precision);
        out.Set("quantization", r.quantization);
        out.Set("input", r.input);
        out.Set("profiles", r.profiles);
        out.Set("seconds", r.seconds);
        return out;
      });
}

}  // namespace detq
