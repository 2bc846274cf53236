#include <cub/device/device_segmented_sort.cuh>
#include <cuda_fp16.h>

#include <algorithm>

#include "kernels.h"

namespace detq {
namespace {

constexpr int kNmsThreads = 1024;

__device__ inline float toFloat(float v) { return v; }
__device__ inline float toFloat(__half v) { return __half2float(v); }

// A candidate's sort key: score bits high (scores are non-negative, so their IEEE bits order like the
// values), then the inverted candidate index so equal scores keep anchor-then-class order, as the
// CPU path's stable sort does. Sorting the key alone makes the result independent of atomics' order.
__device__ inline unsigned long long makeKey(float score, unsigned idx) {
  return (static_cast<unsigned long long>(__float_as_uint(score)) << 32) | (0xFFFFFFFFu - idx);
}
__device__ inline float keyScore(unsigned long long key) { return __uint_as_float(static_cast<unsigned>(key >> 32)); }
__device__ inline unsigned keyIndex(unsigned long long key) { return 0xFFFFFFFFu - static_cast<unsigned>(key); }

struct Box {
  float x1, y1, x2, y2, score;
  int cls;
};

// The class filter as a kernel argument (by value): no copy to order against the stream, nothing to
// keep alive. One bit per class, up to kMaxFilterClasses.
constexpr int kMaxFilterClasses = 1024;
struct ClassMask {
  bool active;
  unsigned words[kMaxFilterClasses / 32];
  __device__ bool allows(int c) const { return !active || ((words[c >> 5] >> (c & 31)) & 1u); }
};

// One thread per anchor: the (anchor, class) pairs that pass the confidence and class filters.
template <typename T>
__global__ void candidatesKernel(const T* raw, int rows, int anchors, float conf, bool multiLabel,
                                 const ClassMask classMask, unsigned long long* keys, int capacity,
                                 int* counts) {
  const int a = blockIdx.x * blockDim.x + threadIdx.x;
  const int b = blockIdx.y;
  if (a >= anchors) return;
  const int nc = rows - 4;
  const T* scores = raw + (static_cast<std::size_t>(b) * rows + 4) * anchors + a;
  unsigned long long* out = keys + static_cast<std::size_t>(b) * capacity;
  if (multiLabel) {
    for (int c = 0; c < nc; ++c) {
      const float s = toFloat(scores[static_cast<std::size_t>(c) * anchors]);
      if (s > conf && classMask.allows(c)) {
        const int slot = atomicAdd(&counts[b], 1);
        out[slot] = makeKey(s, static_cast<unsigned>(a) * nc + c);
      }
    }
    return;
  }
  // Best class first (the first one on ties), then the class filter, as Ultralytics does.
  float best = toFloat(scores[0]);
  int bestC = 0;
  for (int c = 1; c < nc; ++c) {
    const float s = toFloat(scores[static_cast<std::size_t>(c) * anchors]);
    if (s > best) {
      best = s;
      bestC = c;
    }
  }
  if (best > conf && classMask.allows(bestC)) {
    const int slot = atomicAdd(&counts[b], 1);
    out[slot] = makeKey(best, static_cast<unsigned>(a) * nc + bestC);
  }
}

__global__ void segmentOffsetsKernel(const int* counts, int batch, int capacity, int* begin, int* end) {
  const int b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b >= batch) return;
  begin[b] = b * capacity;
  end[b] = b * capacity + counts[b];
}

__device__ inline float iouOf(const Box& a, const Box& b) {
  const float iw = fmaxf(0.f, fminf(a.x2, b.x2) - fmaxf(a.x1, b.x1));
  const float ih = fmaxf(0.f, fminf(a.y2, b.y2) - fmaxf(a.y1, b.y1));
  const float inter = iw * ih;
  const float areaA = (a.x2 - a.x1) * (a.y2 - a.y1);
  const float areaB = (b.x2 - b.x1) * (b.y2 - b.y1);
  return inter / (areaA + areaB - inter);
}

// One block per image: decode the top candidates, greedy NMS in score order, write the kept boxes
// mapped back to source pixels. Class-aware NMS compares same-class boxes only, which is what
// Ultralytics' offset of class * 7680 achieves, without float32 losing precision on offset coordinates.
template <typename T>
__global__ void __launch_bounds__(kNmsThreads) nmsKernel(const T* raw, int rows, int anchors,
                                                         const unsigned long long* sorted, int capacity,
                                                         const int* counts, Box* boxes, const LetterboxDesc* descs,
                                                         float iouThreshold, int maxDet, bool agnostic,
                                                         float* outRows, int* outCounts) {
  __shared__ std::uint8_t suppressed[kMaxNms];
  __shared__ int nextIndex;
  const int b = blockIdx.x;
  const int nc = rows - 4;
  const int k = min(counts[b], kMaxNms);
  const unsigned long long* keys = sorted + static_cast<std::size_t>(b) * capacity;
  Box* bx = boxes + static_cast<std::size_t>(b) * kMaxNms;
  const T* head = raw + static_cast<std::size_t>(b) * rows * anchors;

  for (int i = threadIdx.x; i < k; i += blockDim.x) {
    const unsigned long long key = keys[i];
    const unsigned idx = keyIndex(key);
    const int a = static_cast<int>(idx / nc);
    const float cx = toFloat(head[a]);
    const float cy = toFloat(head[anchors + a]);
    const float w = toFloat(head[2 * anchors + a]);
    const float h = toFloat(head[3 * anchors + a]);
    bx[i] = Box{cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, keyScore(key), static_cast<int>(idx % nc)};
    suppressed[i] = 0;
  }
  __syncthreads();

  const LetterboxDesc d = descs[b];
  float* out = outRows + static_cast<std::size_t>(b) * maxDet * 6;
  int kept = 0;
  int from = 0;
  while (kept < maxDet) {
    // Warp 0 finds the next unsuppressed candidate 32 flags at a time.
    if (threadIdx.x < 32) {
      int found = k;
      for (int base = from; base < k; base += 32) {
        const int i = base + static_cast<int>(threadIdx.x);
        const unsigned alive = __ballot_sync(0xFFFFFFFFu, i < k && !suppressed[i]);
        if (alive) {
          found = base + __ffs(alive) - 1;
          break;
        }
      }
      if (threadIdx.x == 0) nextIndex = found;
    }
    __syncthreads();
    const int i = nextIndex;
    if (i >= k) break;
    const Box keep = bx[i];
    if (threadIdx.x == 0) {
      float* o = out + kept * 6;
      o[0] = fminf(fmaxf((keep.x1 - d.left) / d.gain, 0.f), static_cast<float>(d.srcWidth));
      o[1] = fminf(fmaxf((keep.y1 - d.top) / d.gain, 0.f), static_cast<float>(d.srcHeight));
      o[2] = fminf(fmaxf((keep.x2 - d.left) / d.gain, 0.f), static_cast<float>(d.srcWidth));
      o[3] = fminf(fmaxf((keep.y2 - d.top) / d.gain, 0.f), static_cast<float>(d.srcHeight));
      o[4] = keep.score;
      o[5] = static_cast<float>(keep.cls);
    }
    for (int j = i + 1 + threadIdx.x; j < k; j += blockDim.x) {
      if (suppressed[j]) continue;
      const Box other = bx[j];
      if ((agnostic || other.cls == keep.cls) && iouOf(keep, other) > iouThreshold) suppressed[j] = 1;
    }
    ++kept;
    from = i + 1;
    __syncthreads();
  }
  if (threadIdx.x == 0) outCounts[b] = kept;
}

template <typename T>
void launchChain(const T* raw, int batch, int rows, int anchors, const ClassMask& mask, const DetectConfig& cfg,
                 int capacity, unsigned long long* keys, unsigned long long* sorted, int* candCount, int* begin,
                 int* end, void* sortTemp, std::size_t sortTempBytes, Box* boxes, const LetterboxDesc* descs,
                 float* outRows, int* outCounts, cudaStream_t stream) {
  DETQ_CUDA_CHECK(cudaMemsetAsync(candCount, 0, sizeof(int) * batch, stream));
  const dim3 grid((anchors + 255) / 256, batch);
  candidatesKernel<T><<<grid, 256, 0, stream>>>(raw, rows, anchors, cfg.conf, cfg.multiLabel, mask, keys, capacity,
                                                candCount);
  DETQ_CUDA_CHECK_LAUNCH();
  segmentOffsetsKernel<<<(batch + 255) / 256, 256, 0, stream>>>(candCount, batch, capacity, begin, end);
  DETQ_CUDA_CHECK_LAUNCH();
  DETQ_CUDA_CHECK(cub::DeviceSegmentedSort::SortKeysDescending(sortTemp, sortTempBytes, keys, sorted,
                                                               batch * capacity, batch, begin, end, stream));
  nmsKernel<T><<<batch, kNmsThreads, 0, stream>>>(raw, rows, anchors, sorted, capacity, candCount, boxes, descs,
                                                 cfg.iou, cfg.maxDet, cfg.agnostic, outRows, outCounts);
  DETQ_CUDA_CHECK_LAUNCH();
}

}  // namespace

void YoloPostprocessor::run(const void* raw, DType rawType, int batch, int rows, int anchors,
                            const LetterboxDesc* descs, const DetectConfig& config, cudaStream_t stream) {
  if (batch <= 0) return;
  const int nc = rows - 4;
  if (nc <= 0) throw std::invalid_argument("model output has " + std::to_string(rows) + " rows, expected 4 + classes");
  const int capacity = anchors * (config.multiLabel ? nc : 1);
  const std::size_t items = static_cast<std::size_t>(batch) * capacity;

  // The batch before this one may still use these on `stream` (an execution context queues the next batch
  // before collecting the previous one).
  keys_.reserveAfter(items * sizeof(unsigned long long), stream);
  sorted_.reserveAfter(items * sizeof(unsigned long long), stream);
  candCount_.reserveAfter(sizeof(int) * batch, stream);
  offsets_.reserveAfter(sizeof(int) * 2 * batch, stream);
  boxes_.reserveAfter(sizeof(Box) * static_cast<std::size_t>(batch) * kMaxNms, stream);
  rows_.reserveAfter(sizeof(float) * 6 * static_cast<std::size_t>(batch) * config.maxDet, stream);
  counts_.reserveAfter(sizeof(int) * batch, stream);
  int* begin = offsets_.as<int>();
  int* end = begin + batch;

  std::size_t tempBytes = 0;
  DETQ_CUDA_CHECK(cub::DeviceSegmentedSort::SortKeysDescending(
      nullptr, tempBytes, keys_.as<unsigned long long>(), sorted_.as<unsigned long long>(), static_cast<int>(items),
      batch, begin, end, stream));
  sortTemp_.reserveAfter(std::max<std::size_t>(tempBytes, 1), stream);

  ClassMask mask{};
  if (!config.classes.empty()) {
    if (nc > kMaxFilterClasses)
      throw std::invalid_argument("a class filter supports models of up to " + std::to_string(kMaxFilterClasses) + " classes");
    mask.active = true;
    for (int c : config.classes)
      if (c >= 0 && c < nc) mask.words[c >> 5] |= 1u << (c & 31);
  }

  auto* boxes = boxes_.as<Box>();
  switch (rawType) {
    case DType::kFloat32:
      launchChain(static_cast<const float*>(raw), batch, rows, anchors, mask, config, capacity,
                  keys_.as<unsigned long long>(), sorted_.as<unsigned long long>(), candCount_.as<int>(), begin, end,
                  sortTemp_.data(), sortTemp_.size(), boxes, descs, rows_.as<float>(), counts_.as<int>(), stream);
      break;
    case DType::kFloat16:
      launchChain(static_cast<const __half*>(raw), batch, rows, anchors, mask, config, capacity,
                  keys_.as<unsigned long long>(), sorted_.as<unsigned long long>(), candCount_.as<int>(), begin, end,
                  sortTemp_.data(), sortTemp_.size(), boxes, descs, rows_.as<float>(), counts_.as<int>(), stream);
      break;
    default:
      throw std::invalid_argument(std::string("cannot decode a ") + dtypeName(rawType) + " model output");
  }
}

}  // namespace detq
