// Pre- and post-processing kernels shared by every GPU backend. Plain CUDA: no Node, Torch or
// TensorRT types cross this header, so each backend links the same code.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "../core/cuda_resources.h"
#include "../core/dtype.h"

namespace detq {

// Where one source image sits in the batch upload and how it maps into the network input
// (the geometry of computeLetterbox in @detq/core, computed once in TypeScript).
// srcWidth/srcHeight are the oriented size (what detections are measured in); the pixels are stored
// before the EXIF orientation (nvJPEG output), so the stored size is swapped for orientations 5..8.
struct LetterboxDesc {
  std::int64_t srcOffset;  // byte offset of the image's uint8 RGB HWC pixels in the batch upload
  std::int32_t srcWidth;
  std::int32_t srcHeight;
  std::int32_t resizedWidth;
  std::int32_t resizedHeight;
  std::int32_t left;
  std::int32_t top;
  float gain;
  std::int32_t orientation;  // EXIF 1..8; 1 for pixels already upright (CPU-decoded frames)
};

// Stored (pre-orientation) width and height of a desc's pixels.
inline int storedWidth(const LetterboxDesc& d) { return d.orientation >= 5 ? d.srcHeight : d.srcWidth; }
inline int storedHeight(const LetterboxDesc& d) { return d.orientation >= 5 ? d.srcWidth : d.srcHeight; }

// Letterbox + /255 for `batch` images into `out` of `outType`: planar [batch,3,dstH,dstW] (HWC->CHW),
// or interleaved [batch,dstH,dstW,3] when `channelsLast` (the NCHW tensor in channels-last strides).
// Resampling follows packages/imaging/src/resize.ts: area when both sides shrink, else bilinear, on the
// image as libvips' rotate() would orient it (the EXIF orientation is applied while sampling).
void launchLetterbox(const std::uint8_t* images, const LetterboxDesc* descs, int batch, void* out, DType outType,
                     int dstWidth, int dstHeight, bool channelsLast, cudaStream_t stream);

struct DetectConfig {
  float conf = 0.25f;
  float iou = 0.7f;
  int maxDet = 300;
  bool agnostic = false;
  bool multiLabel = false;
  // Allowed class ids; empty means every class.
  std::vector<int> classes;
};

// Ultralytics' limits: at most this many candidates enter NMS per image.
constexpr int kMaxNms = 30000;

// YOLO decode + candidate filter + class-aware greedy NMS + mapping back to source pixels, for a raw
// head output [batch, 4 + numClasses, anchors]. Scratch buffers grow to the largest batch seen.
class YoloPostprocessor {
 public:
  // Launches the whole chain on `stream`; results land in deviceRows()/deviceCounts():
  // rows [batch, maxDet, 6] = x1,y1,x2,y2,conf,cls in source pixels, counts [batch].
  void run(const void* raw, DType rawType, int batch, int rows, int anchors, const LetterboxDesc* descs,
           const DetectConfig& config, cudaStream_t stream);
  const float* deviceRows() const { return rows_.as<float>(); }
  const std::int32_t* deviceCounts() const { return counts_.as<std::int32_t>(); }

 private:
  DeviceBuffer keys_;       // candidate sort keys, one segment of `capacity` per image
  DeviceBuffer sorted_;     // the same, sorted by score descending
  DeviceBuffer candCount_;  // candidates found per image
  DeviceBuffer offsets_;    // segment begin/end offsets for the sort
  DeviceBuffer boxes_;      // decoded top-kMaxNms boxes per image
  DeviceBuffer sortTemp_;
  DeviceBuffer rows_;
  DeviceBuffer counts_;
};

}  // namespace detq
