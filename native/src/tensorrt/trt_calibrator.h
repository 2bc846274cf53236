// INT8 calibration over a folder of images (TensorRT 10 only: TensorRT 11 removed implicit
// calibration; quantised models carry Q/DQ nodes instead). detq's TypeScript side letterboxes the
// calibration images with the CPU path into one float32 NCHW file, and keys the calibration cache by
// model, input size and algorithm; the calibrator here streams the file batch by batch and reads and
// writes the raw cache TensorRT produces.
#pragma once

#include <NvInfer.h>
#include <NvInferVersion.h>

#if NV_TENSORRT_MAJOR < 11
#define DETQ_TRT_IMPLICIT_INT8 1

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "../core/cuda_resources.h"

namespace detq {

// The calibration data and cache, whichever calibration algorithm reads them.
class CalibrationStream {
 public:
  CalibrationStream(std::string dataPath, std::string cachePath, int batch, int height, int width);
  int batch() const { return batch_; }
  bool next(void* bindings[], int32_t nbBindings);
  const void* readCache(std::size_t& length);
  void writeCache(const void* ptr, std::size_t length);

 private:
  std::string dataPath_;
  std::string cachePath_;
  int batch_;
  std::size_t batchFloats_;
  std::ifstream data_;
  std::vector<float> host_;
  DeviceBuffer device_;
  std::vector<char> cache_;
};

// The IInt8*Calibrator interfaces are deprecated in TensorRT 10 in favour of explicit (Q/DQ)
// quantisation; detq keeps them for plain ONNX exports calibrated on a folder of images.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
template <class Algorithm>
class Calibrator : public Algorithm {
 public:
  explicit Calibrator(std::unique_ptr<CalibrationStream> stream) : stream_(std::move(stream)) {}
  int32_t getBatchSize() const noexcept override { return stream_->batch(); }
  bool getBatch(void* bindings[], const char* /*names*/[], int32_t nbBindings) noexcept override { return stream_->next(bindings, nbBindings); }
  const void* readCalibrationCache(std::size_t& length) noexcept override { return stream_->readCache(length); }
  void writeCalibrationCache(const void* ptr, std::size_t length) noexcept override { stream_->writeCache(ptr, length); }

 private:
  std::unique_ptr<CalibrationStream> stream_;
};

// `algorithm`: "minmax" (Ultralytics' choice for YOLO) or "entropy".
std::unique_ptr<nvinfer1::IInt8Calibrator> makeCalibrator(const std::string& algorithm, std::unique_ptr<CalibrationStream> stream);
#pragma GCC diagnostic pop

}  // namespace detq

#endif  // NV_TENSORRT_MAJOR < 11
