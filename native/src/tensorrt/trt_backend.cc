// TensorRT backend, after Triton's tensorrt_backend: the deserialised ICudaEngine is the shared model
// state; each execution context gets its own IExecutionContext, output buffer and error recorder and
// runs on its context's stream (setInputShape / setTensorAddress / enqueueV3).
#include <NvInferRuntime.h>

#include <memory>
#include <stdexcept>

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

class TrtModel;

class TrtInstance : public InstanceState {
 public:
  explicit TrtInstance(TrtModel& model);
  RawOutput run(const void* input, int batch, cudaStream_t stream) override;

 private:
  TrtModel& model_;  // the pipeline holding this instance also holds the model
  TrtErrorRecorder recorder_;
  std::unique_ptr<nvinfer1::IExecutionContext> context_;
  DeviceBuffer output_;
  bool profileSet_ = false;
};

class TrtModel : public ModelState {
 public:
  explicit TrtModel(const LoadOptions& o) {
    DeviceGuard guard(o.device);
    PlanFile file = readPlanFile(o.path);
    checkPlanCompatible(file.key, o.path, deviceName(o.device), computeCapabilityOf(o.device), tensorRtVersion());

    runtime_.reset(nvinfer1::createInferRuntime(TrtLogger::instance()));
    if (!runtime_) throw std::runtime_error("TensorRT: createInferRuntime failed");
    runtime_->setErrorRecorder(&recorder_);
    engine_.reset(runtime_->deserializeCudaEngine(file.plan.data(), file.plan.size()));
    if (!engine_) throw std::runtime_error(recorder_.takeMessage("TensorRT could not deserialise '" + o.path + "'"));

    for (int32_t i = 0; i < engine_->getNbIOTensors(); ++i) {
      const char* name = engine_->getIOTensorName(i);
      if (engine_->getTensorIOMode(name) == nvinfer1::TensorIOMode::kINPUT)
        input_ = name;
      else if (output_.empty())
        output_ = name;
    }
    if (input_.empty() || output_.empty()) throw std::runtime_error("engine '" + o.path + "' needs one input and one output tensor");

    const nvinfer1::Dims lo = engine_->getProfileShape(input_.c_str(), 0, nvinfer1::OptProfileSelector::kMIN);
    const nvinfer1::Dims opt = engine_->getProfileShape(input_.c_str(), 0, nvinfer1::OptProfileSelector::kOPT);
    const nvinfer1::Dims hi = engine_->getProfileShape(input_.c_str(), 0, nvinfer1::OptProfileSelector::kMAX);
    info_.backend = "tensorrt";
    info_.runtimeVersion = "TensorRT " + tensorRtVersion();
    info_.device = deviceName(o.device);
    info_.deviceIndex = o.device;
    info_.inputHeight = o.inputHeight > 0 ? o.inputHeight : static_cast<int>(opt.d[2]);
    info_.inputWidth = o.inputWidth > 0 ? o.inputWidth : static_cast<int>(opt.d[3]);
    if (info_.inputHeight < lo.d[2] || info_.inputHeight > hi.d[2] || info_.inputWidth < lo.d[3] || info_.inputWidth > hi.d[3])
      throw std::runtime_error("input " + std::to_string(info_.inputWidth) + "x" + std::to_string(info_.inputHeight) +
                               " is outside the engine's profile (" + file.key.minShape + " .. " + file.key.maxShape + ")");
    info_.maxBatch = static_cast<int>(hi.d[0]);
    info_.precision = parsePrecision(file.key.precision.empty() ? "fp32" : file.key.precision);
    info_.inputType = fromTrt(engine_->getTensorDataType(input_.c_str()), input_);
    outputType_ = fromTrt(engine_->getTensorDataType(output_.c_str()), output_);

    // The output shape at this resolution gives classes and anchors.
    std::unique_ptr<nvinfer1::IExecutionContext> probe(engine_->createExecutionContext());
    if (!probe) throw std::runtime_error(recorder_.takeMessage("TensorRT could not create an execution context"));
    probe->setInputShape(input_.c_str(), nvinfer1::Dims4{1, 3, info_.inputHeight, info_.inputWidth});
    const nvinfer1::Dims out = probe->getTensorShape(output_.c_str());
    if (out.nbDims != 3) throw std::runtime_error("engine output must be [batch, 4+classes, anchors]");
    info_.outputRows = static_cast<int>(out.d[1]);
    info_.anchors = static_cast<int>(out.d[2]);
  }

  std::unique_ptr<InstanceState> createInstance() override { return std::make_unique<TrtInstance>(*this); }

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
};

TrtInstance::TrtInstance(TrtModel& model) : model_(model) {
  context_.reset(model_.engine().createExecutionContext());
  if (!context_) throw std::runtime_error("TensorRT could not create an execution context (out of device memory?)");
  context_->setErrorRecorder(&recorder_);
  const ModelInfo& info = model_.info();
  output_.reserve(static_cast<std::size_t>(info.maxBatch) * info.outputRows * info.anchors * dtypeSize(model_.outputType()));
}

RawOutput TrtInstance::run(const void* input, int batch, cudaStream_t stream) {
  const ModelInfo& info = model_.info();
  if (batch > info.maxBatch)
    throw std::runtime_error("batch " + std::to_string(batch) + " exceeds the engine profile's maximum " + std::to_string(info.maxBatch));
  if (!profileSet_) {
    if (!context_->setOptimizationProfileAsync(0, stream)) throw std::runtime_error(recorder_.takeMessage("TensorRT: setOptimizationProfileAsync failed"));
    profileSet_ = true;
  }
  const char* in = model_.input().c_str();
  const char* out = model_.output().c_str();
  if (!context_->setInputShape(in, nvinfer1::Dims4{batch, 3, info.inputHeight, info.inputWidth}))
    throw std::runtime_error(recorder_.takeMessage("TensorRT: setInputShape failed"));
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
