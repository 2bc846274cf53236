// DETQ_DEBUG's timeline of one batch: when its host steps ran and when its JPEG decode (from its submission
// on the copy stream to its end there), network and post-processing ran on the GPU, in milliseconds on
// the host clock, shared by every execution context and device of the process. Nsight Systems cannot
// report on the GPU machine, so overlap between contexts, and between the NVJPG engines and the SMs, is
// read from these log lines (native/scripts/timeline-summary.mjs).
#pragma once

#include <cuda_runtime_api.h>

#include <chrono>
#include <string>

#include "cuda_resources.h"

namespace detq {

class BatchTimeline {
 public:
  // Device marks, recorded on the stream that does the step.
  enum class Gpu { kDecodeBegin, kDecoded, kStaged, kComputeBegin, kNetworkEnd, kDone, kCount };
  // Host marks, taken on the context thread.
  enum class Host { kLaunchBegin, kDecodeCallBegin, kDecodeCallEnd, kLaunchEnd, kCollectBegin, kCollectEnd, kCount };

  explicit BatchTimeline(int device);
  void mark(Gpu m, cudaStream_t stream);
  void mark(Host m);
  // After kDone has completed: one line, "device=… host launch=… | gpu decode=…", ms since the process's
  // first timeline. A GPU mark that cannot be read is left out.
  std::string describe();

 private:
  static constexpr int kGpu = static_cast<int>(Gpu::kCount);
  static constexpr int kHost = static_cast<int>(Host::kCount);
  int device_;
  CudaEvent gpu_[kGpu]{CudaEvent(true), CudaEvent(true), CudaEvent(true), CudaEvent(true), CudaEvent(true), CudaEvent(true)};
  bool recorded_[kGpu] = {};
  std::chrono::steady_clock::time_point host_[kHost];
  bool taken_[kHost] = {};
};

}  // namespace detq
