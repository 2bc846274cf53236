// TensorRT backend, after Triton's tensorrt_backend: the deserialised ICudaEngine is the shared model
// state; each execution context gets its own IExecutionContext on its own optimisation profile (two
// contexts never share one: NvInferRuntime.h), output buffer and error recorder, and runs on its
// context's stream (setInputShape / setTensorAddress / enqueueV3). The plan bytes arrive already read
// and checked (header, checksum, GPU and TensorRT version) by @detq/inference's engine-file.ts.
#include <NvInferRuntime.h>

#include <memory>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "../core/backend.h"
#include "../core/cuda_resources.h"
#include "trt_logging.h"
#include "trt_plan.h"

namespace detq {
namespace {

DType fromTrt(nvinfer1::DataType t, const std::string& tensor) {
  switch (t) {
    case nvinfer1::DataType::kFLOAT: return DType::kFloat32;
    case nvinfer1::DataType::kHALF: return DType::kFloat16;
    default: throw std::runtime_error("engine tensor '" + tensor + "' has a data type detq does not feed (float32/float16 only)");
  }
}

std::vector<std::int64_t> dimsOf(const nvinfer1::Dims& d) { return std::vector<std::int64_t>(d.d, d.d + std::max(d.nbDims, 0)); }

class TrtModel;

class TrtInstance : public InstanceState {
 public:
  TrtInstance(TrtModel& model, int profile);
  ~TrtInstance() override;
  RawOutput run(const void* input, int batch, cudaStream_t stream) override;

 private:
  // Every padded batch size once, so tactic loading and shape switches happen during load.
  void warmUp();

  TrtModel& model_;  // the pipeline holding this instance also holds the model
  int profile_;
  TrtErrorRecorder recorder_;  // declared before the context: the context holds it until destroyed
  std::unique_ptr<nvinfer1::IExecutionContext> context_;
  DeviceBuffer output_;
};

class TrtModel : public ModelState {
 public:
  explicit TrtModel(const LoadOptions& o) {
    DeviceGuard guard(o.device);
    if (o.plan.empty())
      throw std::runtime_error("no TensorRT plan given for '" + o.path + "': detq engine files load through @detq/inference, which checks them first");

    runtime_.reset(nvinfer1::createInferRuntime(TrtLogger::instance()));
    if (!runtime_) throw std::runtime_error("TensorRT: createInferRuntime failed");
    runtime_->setErrorRecorder(&recorder_);
    engine_.reset(runtime_->deserializeCudaEngine(o.plan.data(), o.plan.size()));
    if (!engine_) throw std::runtime_error(recorder_.takeMessage("TensorRT could not deserialise '" + o.path + "'"));

    for (int32_t i = 0; i < engine_->getNbIOTensors(); ++i) {
      const char* name = engine_->getIOTensorName(i);
      if (!name) throw std::runtime_error(recorder_.takeMessage("TensorRT: no name for I/O tensor " + std::to_string(i)));
      if (engine_->getTensorIOMode(name) == nvinfer1::TensorIOMode::kINPUT) {
        if (!input_.empty()) throw std::runtime_error("engine '" + o.path + "' has more than one input tensor");
        input_ = name;
      } else if (output_.empty()) {
        output_ = name;
      }
    }
    if (input_.empty() || output_.empty()) throw std::runtime_error("engine '" + o.path + "' needs one input and one output tensor");

    const int profiles = engine_->getNbOptimizationProfiles();
    if (profiles < 1) throw std::runtime_error("engine '" + o.path + "' has no optimisation profile");
    taken_.assign(static_cast<std::size_t>(profiles), false);
    // Every profile is built identical (`detq build-engine --contexts N`): profile 0 speaks for all.
    const nvinfer1::Dims lo = engine_->getProfileShape(input_.c_str(), 0, nvinfer1::OptProfileSelector::kMIN);
    const nvinfer1::Dims opt = engine_->getProfileShape(input_.c_str(), 0, nvinfer1::OptProfileSelector::kOPT);
    const nvinfer1::Dims hi = engine_->getProfileShape(input_.c_str(), 0, nvinfer1::OptProfileSelector::kMAX);
    if (lo.nbDims != 4 || opt.nbDims != 4 || hi.nbDims != 4)
      throw std::runtime_error(recorder_.takeMessage("engine '" + o.path + "': input '" + input_ + "' is not NCHW in its profile"));
    info_.backend = "tensorrt";
    info_.runtimeVersion = "TensorRT " + tensorRtVersion();
    info_.device = deviceName(o.device);
    info_.deviceIndex = o.device;
    info_.inputHeight = o.inputHeight > 0 ? o.inputHeight : static_cast<int>(opt.d[2]);
    info_.inputWidth = o.inputWidth > 0 ? o.inputWidth : static_cast<int>(opt.d[3]);
    if (info_.inputHeight < lo.d[2] || info_.inputHeight > hi.d[2] || info_.inputWidth < lo.d[3] || info_.inputWidth > hi.d[3])
      throw std::runtime_error("input " + std::to_string(info_.inputWidth) + "x" + std::to_string(info_.inputHeight) +
                               " is outside the engine's profile (" + std::to_string(lo.d[3]) + "x" + std::to_string(lo.d[2]) + " .. " +
                               std::to_string(hi.d[3]) + "x" + std::to_string(hi.d[2]) + ")");
    info_.maxBatch = static_cast<int>(hi.d[0]);
    setBatchSizes(info_, o.batchSizes, static_cast<int>(lo.d[0]));
    info_.profiles = profiles;
    info_.precision = parsePrecision(o.precision.empty() ? "fp32" : o.precision);
    info_.inputType = fromTrt(engine_->getTensorDataType(input_.c_str()), input_);
    outputType_ = fromTrt(engine_->getTensorDataType(output_.c_str()), output_);

    // The output shape at this resolution (and the ONNX's end2end flag) gives the layout.
    std::unique_ptr<nvinfer1::IExecutionContext> probe(engine_->createExecutionContext());
    if (!probe) throw std::runtime_error(recorder_.takeMessage("TensorRT could not create an execution context"));
    if (!probe->setInputShape(input_.c_str(), nvinfer1::Dims4{info_.batchSizes.front(), 3, info_.inputHeight, info_.inputWidth}))
      throw std::runtime_error(recorder_.takeMessage("TensorRT: setInputShape failed on the probe context"));
    const OutputShape shape = detectOutputLayout(dimsOf(probe->getTensorShape(output_.c_str())), o.end2end);
    info_.outputLayout = shape.layout;
    info_.outputRows = shape.rows;
    info_.anchors = shape.columns;
  }

  std::unique_ptr<InstanceState> createInstance(int profile) override {
    return std::make_unique<TrtInstance>(*this, acquireProfile(profile));
  }

  // A profile for one execution context: the one asked for, or (-1) the first free one; never one in use.
  int acquireProfile(int profile) {
    std::lock_guard<std::mutex> lock(mutex_);
    const int count = static_cast<int>(taken_.size());
    if (profile < 0)
      for (int p = 0; p < count && profile < 0; ++p)
        if (!taken_[p]) profile = p;
    if (profile < 0 || profile >= count || taken_[profile])
      throw std::runtime_error("the engine has " + std::to_string(count) +
                               " optimisation profile(s), one per execution context, and none is free for another context: "
                               "rebuild it with `detq build-engine --contexts N` for N contexts");
    taken_[profile] = true;
    return profile;
  }
  void releaseProfile(int profile) {
    std::lock_guard<std::mutex> lock(mutex_);
    taken_[profile] = false;
  }

  nvinfer1::ICudaEngine& engine() { return *engine_; }
  const std::string& input() const { return input_; }
  const std::string& output() const { return output_; }
  DType outputType() const { return outputType_; }

 private:
  TrtErrorRecorder recorder_;  // declared before the runtime and engine: they hold it until destroyed
  std::unique_ptr<nvinfer1::IRuntime> runtime_;
  std::unique_ptr<nvinfer1::ICudaEngine> engine_;
  std::string input_;
  std::string output_;
  DType outputType_ = DType::kFloat32;
  std::mutex mutex_;
  std::vector<bool> taken_;  // profiles owned by a live execution context
};

TrtInstance::TrtInstance(TrtModel& model, int profile) : model_(model), profile_(profile) {
  try {
    context_.reset(model_.engine().createExecutionContext());
    if (!context_) throw std::runtime_error("TensorRT could not create an execution context (out of device memory?)");
    context_->setErrorRecorder(&recorder_);
    const ModelInfo& info = model_.info();
    output_.reserve(static_cast<std::size_t>(info.maxBatch) * info.outputRows * info.anchors * dtypeSize(model_.outputType()));
    warmUp();
  } catch (...) {
    context_.reset();
    model_.releaseProfile(profile_);
    throw;
  }
}

TrtInstance::~TrtInstance() {
  context_.reset();
  model_.releaseProfile(profile_);
}

void TrtInstance::warmUp() {
  const ModelInfo& info = model_.info();
  CudaStream stream;
  if (!context_->setOptimizationProfileAsync(profile_, stream.get()))
    throw std::runtime_error(recorder_.takeMessage("TensorRT: setOptimizationProfileAsync(" + std::to_string(profile_) + ") failed"));
  const std::size_t imageBytes = static_cast<std::size_t>(3) * info.inputWidth * info.inputHeight * dtypeSize(info.inputType);
  DeviceBuffer input(imageBytes * info.maxBatch);
  DETQ_CUDA_CHECK(cudaMemsetAsync(input.data(), 0, imageBytes * info.maxBatch, stream.get()));
  for (int batch : info.batchSizes) run(input.data(), batch, stream.get());
  stream.synchronize();
}

RawOutput TrtInstance::run(const void* input, int batch, cudaStream_t stream) {
  const ModelInfo& info = model_.info();
  if (batch > info.maxBatch)
    throw std::runtime_error("batch " + std::to_string(batch) + " exceeds the engine profile's maximum " + std::to_string(info.maxBatch));
  const char* in = model_.input().c_str();
  const char* out = model_.output().c_str();
  if (!context_->setInputShape(in, nvinfer1::Dims4{batch, 3, info.inputHeight, info.inputWidth}))
    throw std::runtime_error(recorder_.takeMessage("TensorRT: setInputShape failed for batch " + std::to_string(batch)));
  if (!context_->setTensorAddress(in, const_cast<void*>(input)) || !context_->setTensorAddress(out, output_.data()))
    throw std::runtime_error(recorder_.takeMessage("TensorRT: setTensorAddress failed"));
  if (!context_->enqueueV3(stream)) throw std::runtime_error(recorder_.takeMessage("TensorRT: enqueueV3 failed"));
  return RawOutput{output_.data(), model_.outputType(), info.outputRows, info.anchors};
}

}  // namespace

std::shared_ptr<ModelState> loadTensorRtModel(const LoadOptions& options) { return std::make_shared<TrtModel>(options); }

std::string computeCapabilityOf(int device) {
  cudaDeviceProp prop{};
  DETQ_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return std::to_string(prop.major) + "." + std::to_string(prop.minor);
}

}  // namespace detq
