// TensorRT's logger and error recorder, both feeding detq's log sink. The recorder also keeps the
// errors of the current call so a failed build/enqueue is reported with TensorRT's own words.
#pragma once

#include <NvInferRuntime.h>

#include <atomic>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace detq {

class TrtLogger : public nvinfer1::ILogger {
 public:
  void log(Severity severity, const char* msg) noexcept override;
  static TrtLogger& instance();
};

class TrtErrorRecorder : public nvinfer1::IErrorRecorder {
 public:
  int32_t getNbErrors() const noexcept override;
  nvinfer1::ErrorCode getErrorCode(int32_t errorIdx) const noexcept override;
  ErrorDesc getErrorDesc(int32_t errorIdx) const noexcept override;
  bool hasOverflowed() const noexcept override { return false; }
  void clear() noexcept override;
  bool reportError(nvinfer1::ErrorCode val, ErrorDesc desc) noexcept override;
  RefCount incRefCount() noexcept override { return ++refs_; }
  RefCount decRefCount() noexcept override { return --refs_; }

  // The recorded errors joined into one message (and cleared), or `fallback` when none were recorded.
  std::string takeMessage(const std::string& fallback);

 private:
  mutable std::mutex mutex_;
  std::vector<std::pair<nvinfer1::ErrorCode, std::string>> errors_;
  std::atomic<RefCount> refs_{0};
};

std::string tensorRtVersion();

}  // namespace detq
