#include "batch_timeline.h"

#include <map>
#include <memory>
#include <mutex>
#include <sstream>

namespace detq {
namespace {

// One origin per device: an event recorded on the legacy default stream and the host time at which it
// completed, so host and device marks share a clock (to within the synchronisation's latency).
struct Origin {
  CudaEvent event{true};
  std::chrono::steady_clock::time_point host;
};

const Origin& originFor(int device) {
  static std::mutex mutex;
  // Never destroyed: CUDA objects must not outlive the runtime's teardown at exit.
  static auto& origins = *new std::map<int, std::unique_ptr<Origin>>();
  std::lock_guard<std::mutex> lock(mutex);
  std::unique_ptr<Origin>& o = origins[device];
  if (!o) {
    o = std::make_unique<Origin>();
    DETQ_CUDA_CHECK(cudaEventRecord(o->event.get(), nullptr));
    DETQ_CUDA_CHECK(cudaEventSynchronize(o->event.get()));
    o->host = std::chrono::steady_clock::now();
  }
  return *o;
}

const char* const kGpuNames[] = {"decode", "decoded", "staged", "compute", "net-end", "done"};
const char* const kHostNames[] = {"launch", "decode-call", "decode-return", "queued", "collect", "collected"};

}  // namespace

BatchTimeline::BatchTimeline(int device) : device_(device) { originFor(device_); }

void BatchTimeline::mark(Gpu m, cudaStream_t stream) {
  const int i = static_cast<int>(m);
  DETQ_CUDA_CHECK(cudaEventRecord(gpu_[i].get(), stream));
  recorded_[i] = true;
}

void BatchTimeline::mark(Host m) {
  const int i = static_cast<int>(m);
  host_[i] = std::chrono::steady_clock::now();
  taken_[i] = true;
}

std::string BatchTimeline::describe() {
  const Origin& origin = originFor(device_);
  std::ostringstream line;
  line.precision(3);
  line << std::fixed << "host";
  for (int i = 0; i < kHost; ++i)
    if (taken_[i]) line << ' ' << kHostNames[i] << '=' << std::chrono::duration<double, std::milli>(host_[i] - origin.host).count();
  line << " | gpu";
  for (int i = 0; i < kGpu; ++i) {
    float ms = 0;
    if (recorded_[i] && cudaEventElapsedTime(&ms, origin.event.get(), gpu_[i].get()) == cudaSuccess) line << ' ' << kGpuNames[i] << '=' << ms;
  }
  return line.str();
}

}  // namespace detq
