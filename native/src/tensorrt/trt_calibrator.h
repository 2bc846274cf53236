// INT8 entropy calibration over a folder of images. detq's TypeScript side decodes and letterboxes
// the calibration images with the CPU path and writes them as one float32 NCHW file; this calibrator
// streams that file through TensorRT batch by batch and keeps the calibration cache.
#pragma once

#include <NvInfer.h>

#include <fstream>
#include <string>
#include <vector>

#include "../core/cuda_resources.h"

namespace detq {

// IInt8EntropyCalibrator2 is deprecated in TensorRT 10 in favour of explicit (Q/DQ) quantisation;
// detq keeps implicit calibration because it works on a plain ONNX export with a folder of images.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
class EntropyCalibrator : public nvinfer1::IInt8EntropyCalibrator2 {
 public:
  EntropyCalibrator(std::string dataPath, std::string cachePath, int batch, int height, int width);
  int32_t getBatchSize() const noexcept override { return batch_; }
  bool getBatch(void* bindings[], const char* names[], int32_t nbBindings) noexcept override;
  const void* readCalibrationCache(std::size_t& length) noexcept override;
  void writeCalibrationCache(const void* ptr, std::size_t length) noexcept override;

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
#pragma GCC diagnostic pop

}  // namespace detq
