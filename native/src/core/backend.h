// The seam between the shared machinery (threads, buffers, kernels) and each inference runtime,
// after Triton's tensorrt_backend: a ModelState is loaded once per device and shared; each execution
// context creates its own InstanceState (TensorRT execution context, Torch stream binding).
#pragma once

#include <cuda_runtime_api.h>

#include <memory>
#include <string>
#include <vector>

#include "dtype.h"
#include "output_layout.h"

namespace detq {

struct ModelInfo {
  std::string backend;         // 'torch' | 'tensorrt'
  std::string runtimeVersion;  // e.g. 'libtorch 2.11.0'
  std::string device;          // GPU name
  int deviceIndex = 0;
  int inputWidth = 640;
  int inputHeight = 640;
  int maxBatch = 32;
  Precision precision = Precision::kFp32;
  DType inputType = DType::kFloat32;
  // Input wanted as NCHW in channels-last strides (NHWC in memory): cuDNN's tensor-core convolutions
  // run without layout transposes then.
  bool channelsLast = false;
  // Each padded batch size's network runs as a captured CUDA graph (torch; see LoadOptions::cudaGraphs).
  bool cudaGraphs = false;
  // Raw head: outputRows = 4 + classes, anchors. End-to-end: outputRows = detections per image, anchors = 6.
  OutputLayout outputLayout = OutputLayout::kRaw;
  int outputRows = 0;
  int anchors = 0;
  // The batch sizes the network runs at, ascending (the caller's padding policy, see
  // packages/inference/src/batch-padding.ts); the last is maxBatch. Warm-up runs each of them.
  std::vector<int> batchSizes;
  // TensorRT: optimisation profiles in the engine, one per execution context (0: none to share).
  int profiles = 0;
};

// The batch size `batch` frames run at: the smallest of info.batchSizes that holds them.
int paddedBatch(const ModelInfo& info, int batch);
// Sets info.batchSizes from the caller's list, or {maxBatch} when none was given; refuses sizes
// outside [minBatch, maxBatch] with a message.
void setBatchSizes(ModelInfo& info, const std::vector<int>& requested, int minBatch);

struct RawOutput {
  const void* data;
  DType type;
  int rows;
  int anchors;
};

class InstanceState {
 public:
  virtual ~InstanceState() = default;
  // Runs the network on `input` ([batch,3,H,W] of ModelInfo::inputType and layout, device memory) on `stream`.
  // The returned output stays valid until the next run() of this instance.
  virtual RawOutput run(const void* input, int batch, cudaStream_t stream) = 0;
};

class ModelState {
 public:
  virtual ~ModelState() = default;
  const ModelInfo& info() const { return info_; }
  // Called on the execution context's own thread, with the model's device current. `profile` is the
  // TensorRT optimisation profile this context owns (-1: the backend has none to share).
  virtual std::unique_ptr<InstanceState> createInstance(int profile) = 0;

 protected:
  ModelInfo info_;
};

struct LoadOptions {
  std::string backend;
  std::string path;
  int device = 0;
  bool half = false;
  // Torch: run convolutions in channels-last layout (see ModelInfo::channelsLast).
  bool channelsLast = true;
  // Torch: replay each padded batch size's forward as a CUDA graph, captured on its second run. TensorRT
  // ignores it (its enqueue is not captured here).
  bool cudaGraphs = true;
  int maxBatch = 32;
  // 0 = the model's own resolution (TensorRT: the profile's optimum).
  int inputWidth = 0;
  int inputHeight = 0;
  // The padded batch sizes (see ModelInfo::batchSizes); empty: every batch runs at maxBatch.
  std::vector<int> batchSizes;
  // TensorRT: the plan bytes of a detq engine file (read and checked by @detq/inference), and what
  // its header says about precision and the output (Ultralytics' end2end flag from the ONNX).
  std::vector<char> plan;
  std::string precision;
  End2EndHint end2end = End2EndHint::kUnknown;
};

// Each is defined only when its backend is compiled in (see module.cc's registry).
std::shared_ptr<ModelState> loadTorchModel(const LoadOptions& options);
std::shared_ptr<ModelState> loadTensorRtModel(const LoadOptions& options);

// GPU name as CUDA reports it, for info and engine-plan keys.
std::string deviceName(int device);

}  // namespace detq
