// Everything one execution context owns on its thread: its CUDA stream, pinned and device buffers,
// its JPEG decoder, the backend instance and the post-processor. Built, used and destroyed on that
// thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../kernels/kernels.h"
#include "backend.h"
#include "cuda_resources.h"
#include "options.h"

namespace detq {

class JpegDecoder;

struct FrameResult {
  std::vector<float> rows;  // count * 6
  int count = 0;
  // Set when the frame was a JPEG the device could not decode: JS decodes it on the CPU and resubmits.
  std::string decodeError;
};

class Pipeline {
 public:
  // `model` may be null: a kernels-only pipeline (letterbox/post-processing checks). `profile`: the
  // TensorRT optimisation profile this context owns (-1: none).
  Pipeline(int device, std::shared_ptr<ModelState> model, int profile = -1);
  ~Pipeline();

  std::vector<FrameResult> infer(const std::vector<HostFrame>& frames, const DetectConfig& config);
  // Letterbox alone, returned as float32 NCHW whatever the kernel wrote (checks against the CPU path).
  // Frames the device cannot decode are an error here.
  std::vector<float> letterbox(const std::vector<HostFrame>& frames, int width, int height, DType type);
  // Post-processing alone on a raw head output supplied from the host.
  std::vector<FrameResult> postprocess(const std::vector<float>& raw, int batch, int rows, int anchors,
                                       const std::vector<HostFrame>& frames, const DetectConfig& config);
  // Engine-only timing: `frames` are staged (and decoded) on the device once, then `iterations` batches
  // run through letterbox, network, decode + NMS and the copy of boxes to the host. Milliseconds per batch.
  std::vector<double> benchmark(const std::vector<HostFrame>& frames, int iterations, const DetectConfig& config);

 private:
  // Which frames made it onto the device (in order) and, per input frame, why not.
  struct Staged {
    std::vector<int> live;
    std::vector<std::string> errors;
  };
  // Lays the batch out in deviceIn_: descriptor table and CPU-decoded pixels copied from pinned staging,
  // then the space nvJPEG decodes JPEG frames into. Frames the decoder refuses are left out of the table.
  Staged stage(const std::vector<HostFrame>& frames);
  std::vector<std::string> decodeJpegs(const std::vector<HostFrame>& frames, const std::vector<std::size_t>& offsets);
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
  CudaEvent done_;
  PinnedBuffer hostIn_;
  DeviceBuffer deviceIn_;
  DeviceBuffer netInput_;
  PinnedBuffer hostOut_;
  YoloPostprocessor post_;
  std::unique_ptr<JpegDecoder> jpeg_;  // made on the first JPEG frame
  std::string jpegUnavailable_;        // why it could not be made, once that failed
};

}  // namespace detq
