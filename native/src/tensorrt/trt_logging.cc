#include "trt_logging.h"

#include <NvInferRuntime.h>
#include <NvInferVersion.h>

#include "../core/log.h"

namespace detq {

TrtLogger& TrtLogger::instance() {
  static TrtLogger logger;
  return logger;
}

void TrtLogger::log(Severity severity, const char* msg) noexcept {
  LogLevel level = LogLevel::kDebug;
  switch (severity) {
    case Severity::kINTERNAL_ERROR:
    case Severity::kERROR: level = LogLevel::kError; break;
    case Severity::kWARNING: level = LogLevel::kWarn; break;
    case Severity::kINFO: level = LogLevel::kInfo; break;
    case Severity::kVERBOSE: return;  // far too chatty for detq's logs
  }
  try {
    detq::log(level, std::string("TensorRT: ") + msg);
  } catch (...) {
    // A logger must not throw into TensorRT.
  }
}

int32_t TrtErrorRecorder::getNbErrors() const noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int32_t>(errors_.size());
}

nvinfer1::ErrorCode TrtErrorRecorder::getErrorCode(int32_t errorIdx) const noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  if (errorIdx < 0 || errorIdx >= static_cast<int32_t>(errors_.size())) return nvinfer1::ErrorCode::kINVALID_ARGUMENT;
  return errors_[errorIdx].first;
}

nvinfer1::IErrorRecorder::ErrorDesc TrtErrorRecorder::getErrorDesc(int32_t errorIdx) const noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  if (errorIdx < 0 || errorIdx >= static_cast<int32_t>(errors_.size())) return "index out of range";
  return errors_[errorIdx].second.c_str();
}

void TrtErrorRecorder::clear() noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  errors_.clear();
}

bool TrtErrorRecorder::reportError(nvinfer1::ErrorCode val, ErrorDesc desc) noexcept {
  try {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      errors_.emplace_back(val, desc ? desc : "");
    }
    detq::log(LogLevel::kError, std::string("TensorRT error ") + std::to_string(static_cast<int>(val)) + ": " + (desc ? desc : ""));
  } catch (...) {
  }
  // false: not fatal for the process; the failing call reports it to its caller.
  return false;
}

std::string TrtErrorRecorder::takeMessage(const std::string& fallback) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (errors_.empty()) return fallback;
  std::string msg = fallback + ": ";
  for (std::size_t i = 0; i < errors_.size(); ++i) msg += (i ? "; " : "") + errors_[i].second;
  errors_.clear();
  return msg;
}

std::string tensorRtVersion() {
  // The library actually loaded, which may differ from the headers the addon was compiled against;
  // with its build number, since plans are only guaranteed to load on the exact build that made them.
  const int32_t v = getInferLibVersion();
  return std::to_string(v / 10000) + "." + std::to_string((v / 100) % 100) + "." + std::to_string(v % 100) + "." +
         std::to_string(getInferLibBuildVersion());
}

}  // namespace detq
