// Everything one execution context owns on its thread: its CUDA stream, pinned and device buffers,
// the backend instance and the post-processor. Built, used and destroyed on that thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "../kernels/kernels.h"
#include "backend.h"
#include "cuda_resources.h"
#include "options.h"

namespace detq {

struct FrameResult {
  std::vector<float> rows;  // count * 6
  int count = 0;
};

class Pipeline {
 public:
  // `model` may be null: a kernels-only pipeline (letterbox/post-processing checks). `profile`: the
  // TensorRT optimisation profile this context owns (-1: none).
  Pipeline(int device, std::shared_ptr<ModelState> model, int profile = -1);
  ~Pipeline();

  std::vector<FrameResult> infer(const std::vector<HostFrame>& frames, const DetectConfig& config);
  // Letterbox alone, returned as float32 NCHW whatever the kernel wrote (checks against the CPU path).
  std::vector<float> letterbox(const std::vector<HostFrame>& frames, int width, int height, DType type);
  // Post-processing alone on a raw head output supplied from the host.
  std::vector<FrameResult> postprocess(const std::vector<float>& raw, int batch, int rows, int anchors,
                                       const std::vector<HostFrame>& frames, const DetectConfig& config);
  // Engine-only timing: `iterations` batches of device-resident synthetic images through letterbox,
  // network, decode + NMS and the copy of boxes to the host. Returns milliseconds per batch.
  std::vector<double> benchmark(int batch, int iterations, int srcWidth, int srcHeight, const DetectConfig& config);

 private:
  // Copies descriptors and pixels through the pinned staging buffer to the device.
  void upload(const std::vector<HostFrame>& frames);
  std::vector<FrameResult> runDevice(int batch, const DetectConfig& config);
  // End-to-end outputs ([batch, N, 6], boxes already selected) are filtered and mapped on the host.
  std::vector<FrameResult> decodeEnd2End(const RawOutput& raw, int batch, const DetectConfig& config);
  std::vector<FrameResult> download(int batch, const DetectConfig& config);
  const LetterboxDesc* deviceDescs() const { return deviceIn_.as<LetterboxDesc>(); }
  const std::uint8_t* deviceImages() const { return deviceIn_.as<std::uint8_t>(); }

  int device_;
  DeviceGuard guard_;
  std::shared_ptr<ModelState> model_;
  std::unique_ptr<InstanceState> instance_;
  CudaStream stream_;
  PinnedBuffer hostIn_;
  DeviceBuffer deviceIn_;
  DeviceBuffer netInput_;
  PinnedBuffer hostOut_;
  YoloPostprocessor post_;
};

}  // namespace detq
