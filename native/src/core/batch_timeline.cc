#include "batch_timeline.h"

#include <map>
#include <memory>
#include <mutex>
#include <sstream>

namespace detq {
namespace {

using Clock = std::chrono::steady_clock;

// Every mark is printed as milliseconds since this process-wide host time.
Clock::time_point epoch() {
  static const Clock::time_point start = Clock::now();
  return start;
}

double msSinceEpoch(Clock::time_point t) { return std::chrono::duration<double, std::milli>(t - epoch()).count(); }

// Per device: an event recorded on the legacy default stream and the host time at which it completed, so
// GPU marks land on the host clock (to within the synchronisation's latency). Renewed every few minutes:
// cudaEventElapsedTime is a float, which would round a mark an hour after its origin to 0.25 ms.
struct Origin {
  CudaEvent event{true};
  Clock::time_point host;
};
constexpr auto kOriginLifetime = std::chrono::minutes(5);

std::mutex originMutex;
// Never destroyed: no CUDA event may outlive the runtime's teardown at exit.
auto& origins = *new std::map<int, std::unique_ptr<Origin>>();

// The device's current origin (made or renewed here); called with originMutex held.
const Origin& currentOrigin(int device) {
  std::unique_ptr<Origin>& o = origins[device];
  if (o && Clock::now() - o->host < kOriginLifetime) return *o;
  DeviceGuard guard(device);
  auto fresh = std::make_unique<Origin>();
  DETQ_CUDA_CHECK(cudaEventRecord(fresh->event.get(), nullptr));
  DETQ_CUDA_CHECK(cudaEventSynchronize(fresh->event.get()));
  fresh->host = Clock::now();
  o = std::move(fresh);  // only once it holds a completed event
  return *o;
}

const char* const kGpuNames[] = {"decode", "decoded", "staged", "compute", "net-end", "done"};
const char* const kHostNames[] = {"launch", "decode-call", "decode-return", "queued", "collect", "collected"};

}  // namespace

BatchTimeline::BatchTimeline(int device) : device_(device) { epoch(); }

void BatchTimeline::mark(Gpu m, cudaStream_t stream) {
  const int i = static_cast<int>(m);
  DETQ_CUDA_CHECK(cudaEventRecord(gpu_[i].get(), stream));
  recorded_[i] = true;
}

void BatchTimeline::mark(Host m) {
  const int i = static_cast<int>(m);
  host_[i] = Clock::now();
  taken_[i] = true;
}

std::string BatchTimeline::describe() {
  std::ostringstream line;
  line.precision(3);
  line << std::fixed << "device=" << device_ << " host";
  for (int i = 0; i < kHost; ++i)
    if (taken_[i]) line << ' ' << kHostNames[i] << '=' << msSinceEpoch(host_[i]);
  line << " | gpu";
  std::lock_guard<std::mutex> lock(originMutex);
  const Origin& origin = currentOrigin(device_);
  for (int i = 0; i < kGpu; ++i) {
    float ms = 0;
    if (!recorded_[i]) continue;
    if (cudaEventElapsedTime(&ms, origin.event.get(), gpu_[i].get()) == cudaSuccess)
      line << ' ' << kGpuNames[i] << '=' << msSinceEpoch(origin.host) + ms;
    else
      cudaGetLastError();  // a mark that cannot be read is left out, and its error must not fail the next launch
  }
  return line.str();
}

}  // namespace detq
