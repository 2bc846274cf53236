#include "trt_calibrator.h"

#include <iterator>

#include "../core/log.h"

namespace detq {

EntropyCalibrator::EntropyCalibrator(std::string dataPath, std::string cachePath, int batch, int height, int width)
    : dataPath_(std::move(dataPath)),
      cachePath_(std::move(cachePath)),
      batch_(batch),
      batchFloats_(static_cast<std::size_t>(batch) * 3 * height * width),
      host_(batchFloats_),
      device_(batchFloats_ * sizeof(float)) {
  if (!dataPath_.empty()) {
    data_.open(dataPath_, std::ios::binary);
    if (!data_) throw std::runtime_error("cannot open calibration data '" + dataPath_ + "'");
  }
}

bool EntropyCalibrator::getBatch(void* bindings[], const char* /*names*/[], int32_t nbBindings) noexcept {
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

const void* EntropyCalibrator::readCalibrationCache(std::size_t& length) noexcept {
  cache_.clear();
  std::ifstream in(cachePath_, std::ios::binary);
  if (in) cache_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  length = cache_.size();
  if (!cache_.empty()) log(LogLevel::kInfo, "INT8 calibration: using cache '" + cachePath_ + "'");
  return cache_.empty() ? nullptr : cache_.data();
}

void EntropyCalibrator::writeCalibrationCache(const void* ptr, std::size_t length) noexcept {
  std::ofstream out(cachePath_, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(ptr), static_cast<std::streamsize>(length));
  if (!out) log(LogLevel::kWarn, "INT8 calibration: could not write cache '" + cachePath_ + "'");
}

}  // namespace detq
