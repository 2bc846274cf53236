#include "context_wrap.h"

#include <cmath>

#include "backend.h"
#include "napi_util.h"
#include "options.h"

namespace detq {
namespace {

Napi::Array toJs(Napi::Env env, const std::vector<FrameResult>& results) {
  auto arr = Napi::Array::New(env, results.size());
  for (std::size_t i = 0; i < results.size(); ++i) {
    auto rows = Napi::Float32Array::New(env, results[i].rows.size());
    std::copy(results[i].rows.begin(), results[i].rows.end(), rows.Data());
    auto obj = Napi::Object::New(env);
    obj.Set("rows", rows);
    obj.Set("count", results[i].count);
    if (!results[i].decodeError.empty()) obj.Set("decodeError", results[i].decodeError);
    arr.Set(static_cast<uint32_t>(i), obj);
  }
  return arr;
}

class InferJob : public Job {
 public:
  InferJob(ParsedFrames frames, DetectConfig config) : frames_(std::move(frames)), config_(std::move(config)) {}
  // The frames' JS arrays stay referenced until the job settles, after complete(): the device may read
  // the JPEG bytes until then.
  void launch(Pipeline& p) override { launched_ = p.launch(frames_.frames, config_); }
  void complete(Pipeline& p) override { results_ = p.collect(launched_); }
  bool pipelined() const override { return true; }
  Napi::Value result(Napi::Env env) override { return toJs(env, results_); }

 private:
  ParsedFrames frames_;
  DetectConfig config_;
  Pipeline::Launched launched_;
  std::vector<FrameResult> results_;
};

class LetterboxJob : public Job {
 public:
  LetterboxJob(ParsedFrames frames, int w, int h, DType type) : frames_(std::move(frames)), w_(w), h_(h), type_(type) {}
  void launch(Pipeline& p) override { out_ = p.letterbox(frames_.frames, w_, h_, type_); }
  Napi::Value result(Napi::Env env) override {
    auto arr = Napi::Float32Array::New(env, out_.size());
    std::copy(out_.begin(), out_.end(), arr.Data());
    return arr;
  }

 private:
  ParsedFrames frames_;
  int w_, h_;
  DType type_;
  std::vector<float> out_;
};

class PostprocessJob : public Job {
 public:
  PostprocessJob(std::vector<float> raw, int batch, int rows, int anchors, ParsedFrames frames, DetectConfig config)
      : raw_(std::move(raw)), batch_(batch), rows_(rows), anchors_(anchors), frames_(std::move(frames)), config_(std::move(config)) {}
  void launch(Pipeline& p) override { results_ = p.postprocess(raw_, batch_, rows_, anchors_, frames_.frames, config_); }
  Napi::Value result(Napi::Env env) override { return toJs(env, results_); }

 private:
  std::vector<float> raw_;
  int batch_, rows_, anchors_;
  ParsedFrames frames_;
  DetectConfig config_;
  std::vector<FrameResult> results_;
};

class BenchmarkJob : public Job {
 public:
  BenchmarkJob(ParsedFrames frames, int iterations, DetectConfig config)
      : frames_(std::move(frames)), iterations_(iterations), config_(std::move(config)) {}
  void launch(Pipeline& p) override { times_ = p.benchmark(frames_.frames, iterations_, config_); }
  Napi::Value result(Napi::Env env) override {
    auto arr = Napi::Float64Array::New(env, times_.size());
    std::copy(times_.begin(), times_.end(), arr.Data());
    return arr;
  }

 private:
  ParsedFrames frames_;
  int iterations_;
  DetectConfig config_;
  std::vector<double> times_;
};

// Frames for post-processing carry geometry only (no pixels).
ParsedFrames parseGeometry(const Napi::Value& value) {
  Napi::Env env = value.Env();
  if (!value.IsArray()) DETQ_THROW_TYPE_ERROR(env, "letterboxes must be an array");
  auto arr = value.As<Napi::Array>();
  ParsedFrames out;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value item = arr.Get(i);
    if (!item.IsObject()) DETQ_THROW_TYPE_ERROR(env, "letterbox " + std::to_string(i) + " must be an object");
    HostFrame hf{};
    hf.desc = parseLetterboxDesc(item.As<Napi::Object>(), "srcWidth", "srcHeight", "letterbox");
    out.frames.push_back(hf);
  }
  return out;
}

int intArg(const Napi::CallbackInfo& info, std::size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsNumber()) DETQ_THROW_TYPE_ERROR(info.Env(), std::string(what) + " must be a number");
  return info[i].As<Napi::Number>().Int32Value();
}

}  // namespace

Napi::Function ContextWrap::Define(Napi::Env env, const char* name) {
  return DefineClass(env, name,
                     {InstanceMethod<&ContextWrap::Infer>("infer"), InstanceMethod<&ContextWrap::Letterbox>("letterbox"),
                      InstanceMethod<&ContextWrap::Postprocess>("postprocess"),
                      InstanceMethod<&ContextWrap::Benchmark>("benchmark"), InstanceMethod<&ContextWrap::Dispose>("dispose")});
}

// new Context(External<model>, profile, slots) from Model.createContext(), or new Kernels(deviceIndex) for a
// model-less one.
ContextWrap::ContextWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ContextWrap>(info) {
  std::shared_ptr<ModelState> model;
  int device = 0;
  int profile = -1;
  int slots = Pipeline::kDefaultSlots;
  if (info.Length() >= 1 && info[0].IsExternal()) {
    model = *info[0].As<Napi::External<std::shared_ptr<ModelState>>>().Data();
    device = model->info().deviceIndex;
    if (info.Length() >= 2 && info[1].IsNumber()) profile = info[1].As<Napi::Number>().Int32Value();
    if (info.Length() >= 3 && !info[2].IsUndefined()) {
      const double n = info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : 0.5;
      if (n != std::floor(n) || n < 1 || n > Pipeline::kMaxSlots)
        DETQ_THROW_TYPE_ERROR(info.Env(), "batchesInFlight must be an integer from 1 to " + std::to_string(Pipeline::kMaxSlots));
      slots = static_cast<int>(n);
    }
  } else if (info.Length() >= 1 && info[0].IsNumber()) {
    device = info[0].As<Napi::Number>().Int32Value();
  }
  thread_ = std::make_unique<ExecutionThread>(info.Env(), [device, model, profile, slots] { return std::make_unique<Pipeline>(device, model, profile, slots); });
}

Napi::Value ContextWrap::Infer(const Napi::CallbackInfo& info) {
  ParsedFrames frames = parseFrames(info[0]);
  DetectConfig config = parseDetectConfig(info.Length() > 1 ? info[1] : info.Env().Undefined());
  return thread_->submit(info.This().As<Napi::Object>(), std::make_unique<InferJob>(std::move(frames), std::move(config)));
}

// letterbox(frames, width, height, half)
Napi::Value ContextWrap::Letterbox(const Napi::CallbackInfo& info) {
  ParsedFrames frames = parseFrames(info[0]);
  const int w = intArg(info, 1, "width");
  const int h = intArg(info, 2, "height");
  const bool half = info.Length() > 3 && info[3].ToBoolean().Value();
  return thread_->submit(info.This().As<Napi::Object>(),
                         std::make_unique<LetterboxJob>(std::move(frames), w, h, half ? DType::kFloat16 : DType::kFloat32));
}

// postprocess(raw: Float32Array, batch, rows, anchors, letterboxes, params)
Napi::Value ContextWrap::Postprocess(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    DETQ_THROW_TYPE_ERROR(info.Env(), "raw must be a Float32Array");
  auto raw = info[0].As<Napi::Float32Array>();
  std::vector<float> values(raw.Data(), raw.Data() + raw.ElementLength());
  const int batch = intArg(info, 1, "batch");
  const int rows = intArg(info, 2, "rows");
  const int anchors = intArg(info, 3, "anchors");
  ParsedFrames geometry = parseGeometry(info[4]);
  DetectConfig config = parseDetectConfig(info.Length() > 5 ? info[5] : info.Env().Undefined());
  return thread_->submit(info.This().As<Napi::Object>(),
                         std::make_unique<PostprocessJob>(std::move(values), batch, rows, anchors, std::move(geometry), std::move(config)));
}

// benchmark(frames, iterations, params)
Napi::Value ContextWrap::Benchmark(const Napi::CallbackInfo& info) {
  ParsedFrames frames = parseFrames(info[0]);
  const int iterations = intArg(info, 1, "iterations");
  DetectConfig config = parseDetectConfig(info.Length() > 2 ? info[2] : info.Env().Undefined());
  return thread_->submit(info.This().As<Napi::Object>(), std::make_unique<BenchmarkJob>(std::move(frames), iterations, std::move(config)));
}

Napi::Value ContextWrap::Dispose(const Napi::CallbackInfo& info) { return thread_->shutdown(info.This().As<Napi::Object>()); }

}  // namespace detq
