// Module initialisation: the exported functions and classes, and the backend registry (which
// backends this build holds is decided at configure time by what CMake found).
#include <cuda_runtime_api.h>
#include <napi.h>

#include "../codec/jpeg_decoder.h"
#include "addon_data.h"
#include "backend.h"
#include "context_wrap.h"
#include "cuda_check.h"
#include "log.h"
#include "model_wrap.h"
#include "napi_util.h"
#include "options.h"
#include "pipeline.h"
#include "run_on_own_thread.h"

#ifdef DETQ_WITH_TENSORRT
#include "../tensorrt/trt_api.h"
#endif

namespace detq {
namespace {

std::string versionString(int v) { return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10); }

Napi::Value BuildInfo(Napi::Env env) {
  auto obj = Napi::Object::New(env);
  obj.Set("cudaToolkit", versionString(CUDART_VERSION));
#ifdef DETQ_WITH_TORCH
  obj.Set("torch", DETQ_TORCH_VERSION);
#else
  obj.Set("torch", env.Null());
#endif
#ifdef DETQ_WITH_TENSORRT
  obj.Set("tensorrt", tensorRtVersion());
#else
  obj.Set("tensorrt", env.Null());
#endif
  const std::string nvjpeg = nvjpegVersion();
  obj.Set("nvjpeg", nvjpeg.empty() ? env.Null() : Napi::String::New(env, nvjpeg));
  return obj;
}

// Driver, runtime and devices as CUDA sees them now. Throws when no driver is present.
Napi::Value CudaInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int driver = 0;
  int runtime = 0;
  DETQ_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  DETQ_CUDA_CHECK(cudaDriverGetVersion(&driver));
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  auto obj = Napi::Object::New(env);
  obj.Set("runtimeVersion", versionString(runtime));
  obj.Set("driverVersion", driver ? Napi::Value(Napi::String::New(env, versionString(driver))) : env.Null());
  auto devices = Napi::Array::New(env);
  if (status == cudaSuccess) {
    for (int i = 0; i < count; ++i) {
      cudaDeviceProp prop{};
      DETQ_CUDA_CHECK(cudaGetDeviceProperties(&prop, i));
      auto d = Napi::Object::New(env);
      d.Set("index", i);
      d.Set("name", prop.name);
      d.Set("computeCapability", std::to_string(prop.major) + "." + std::to_string(prop.minor));
      d.Set("totalMemoryBytes", static_cast<double>(prop.totalGlobalMem));
      d.Set("multiprocessors", prop.multiProcessorCount);
      devices.Set(static_cast<uint32_t>(i), d);
    }
  } else {
    cudaGetLastError();  // clear the sticky "no device" status
    obj.Set("error", std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status));
  }
  obj.Set("devices", devices);
  return obj;
}

Napi::Value SetLogger(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsFunction()) DETQ_THROW_TYPE_ERROR(info.Env(), "setLogger takes a function");
  LogLevel level = LogLevel::kDebug;
  if (info.Length() > 1 && !info[1].IsUndefined() && (!info[1].IsString() || !parseLogLevel(info[1].As<Napi::String>().Utf8Value(), &level)))
    DETQ_THROW_TYPE_ERROR(info.Env(), "setLogger's level must be 'error', 'warn', 'info' or 'debug'");
  setLogSink(info.Env(), info[0].As<Napi::Function>(), level);
  return info.Env().Undefined();
}

std::shared_ptr<ModelState> loadBackend(const LoadOptions& o) {
  if (o.backend == "torch") {
#ifdef DETQ_WITH_TORCH
    return loadTorchModel(o);
#else
    throw std::runtime_error("this build of the detq native addon has no torch backend (LibTorch was not found at build time)");
#endif
  }
  if (o.backend == "tensorrt") {
#ifdef DETQ_WITH_TENSORRT
    return loadTensorRtModel(o);
#else
    throw std::runtime_error("this build of the detq native addon has no TensorRT backend (TensorRT was not found at build time)");
#endif
  }
  throw std::invalid_argument("unknown backend '" + o.backend + "' (expected torch or tensorrt)");
}

// loadModel(options) -> Promise<Model>: loading (and the backend's warm-up) runs on its own thread.
Napi::Value LoadModel(const Napi::CallbackInfo& info) {
  LoadOptions options = parseLoadOptions(requireObject(info, 0, "loadModel"));
  return runOnOwnThread<std::shared_ptr<ModelState>>(
      info.Env(), "detq-load", [options] { return loadBackend(options); },
      [](Napi::Env env, std::shared_ptr<ModelState>& model) -> Napi::Value { return ModelWrap::Wrap(env, model); });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->model = Napi::Persistent(ModelWrap::Define(env));
  data->context = Napi::Persistent(ContextWrap::Define(env, "Context"));
  env.SetInstanceData<AddonData>(data);
  exports.Set("buildInfo", BuildInfo(env));
  exports.Set("batchesPerContext", Napi::Number::New(env, Pipeline::kDefaultSlots));
  exports.Set("maxBatchesPerContext", Napi::Number::New(env, Pipeline::kMaxSlots));
  exports.Set("cudaInfo", Napi::Function::New(env, CudaInfo, "cudaInfo"));
  exports.Set("setLogger", Napi::Function::New(env, SetLogger, "setLogger"));
  exports.Set("loadModel", Napi::Function::New(env, LoadModel, "loadModel"));
  // A model-less context, for checking the letterbox and post-processing kernels against the CPU path.
  exports.Set("Kernels", ContextWrap::Define(env, "Kernels"));
#ifdef DETQ_WITH_TENSORRT
  exports.Set("buildTensorRtEngine", Napi::Function::New(env, BuildTensorRtEngine, "buildTensorRtEngine"));
#endif
  return exports;
}

}  // namespace
}  // namespace detq

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return detq::Init(env, exports); }
NODE_API_MODULE(detq_native, InitModule)
