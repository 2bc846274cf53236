#include "trt_calibrator.h"

#ifdef DETQ_TRT_IMPLICIT_INT8

#include <iterator>
#include <stdexcept>

#include "../core/log.h"
#include "trt_plan.h"

namespace detq {

CalibrationStream::CalibrationStream(std::string dataPath, std::string cachePath, int batch, int height, int width)
    : dataPath_(std::move(dataPath)),
      cachePath_(std::move(cachePath)),
      batch_(batch),
      batchFloats_(static_cast<std::size_t>(batch) * 3 * height * width),
      host_(batchFloats_),
      device_(batchFloats_ * sizeof(float)) {
  if (batch < 1) throw std::invalid_argument("the calibration batch must be at least 1");
  if (dataPath_.empty()) return;
  data_.open(dataPath_, std::ios::binary | std::ios::ate);
  if (!data_) throw std::runtime_error("cannot open calibration data '" + dataPath_ + "'");
  const auto bytes = static_cast<std::size_t>(data_.tellg());
  const std::size_t imageBytes = batchFloats_ / batch * sizeof(float);
  // Zero batches would calibrate nothing and TensorRT would fail with a vaguer message.
  if (bytes < batchFloats_ * sizeof(float))
    throw std::invalid_argument("the calibration set has " + std::to_string(bytes / imageBytes) + " image(s), fewer than one batch of " +
                                std::to_string(batch) + ": give more images or a smaller --calib-batch");
  data_.seekg(0);
}

bool CalibrationStream::next(void* bindings[], int32_t nbBindings) {
  if (nbBindings != 1 || !data_.is_open()) return false;
  // A final partial batch is dropped: the calibrator's batch size is fixed.
  data_.read(reinterpret_cast<char*>(host_.data()), static_cast<std::streamsize>(batchFloats_ * sizeof(float)));
  if (data_.gcount() != static_cast<std::streamsize>(batchFloats_ * sizeof(float))) return false;
  if (cudaMemcpy(device_.data(), host_.data(), batchFloats_ * sizeof(float), cudaMemcpyHostToDevice) != cudaSuccess) {
    log(LogLevel::kError, "INT8 calibration: copying a batch to the GPU failed");
    return false;
  }
  bindings[0] = device_.data();
  return true;
}

const void* CalibrationStream::readCache(std::size_t& length) {
  cache_.clear();
  std::ifstream in(cachePath_, std::ios::binary);
  if (in) cache_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  length = cache_.size();
  if (!cache_.empty()) log(LogLevel::kInfo, "INT8 calibration: using cache '" + cachePath_ + "'");
  return cache_.empty() ? nullptr : cache_.data();
}

void CalibrationStream::writeCache(const void* ptr, std::size_t length) {
  try {
    writeFileAtomically(cachePath_, ptr, length);
  } catch (const std::exception& e) {
    log(LogLevel::kWarn, std::string("INT8 calibration: could not write the cache: ") + e.what());
  }
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
std::unique_ptr<nvinfer1::IInt8Calibrator> makeCalibrator(const std::string& algorithm, std::unique_ptr<CalibrationStream> stream) {
  if (algorithm == "minmax") return std::make_unique<Calibrator<nvinfer1::IInt8MinMaxCalibrator>>(std::move(stream));
  if (algorithm == "entropy") return std::make_unique<Calibrator<nvinfer1::IInt8EntropyCalibrator2>>(std::move(stream));
  throw std::invalid_argument("calibration algorithm must be minmax or entropy, not '" + algorithm + "'");
}
#pragma GCC diagnostic pop

}  // namespace detq

#endif  // DETQ_TRT_IMPLICIT_INT8
