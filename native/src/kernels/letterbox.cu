#include <cuda_fp16.h>

#include "kernels.h"

namespace detq {
namespace {

constexpr float kPad = 114.0f;

__device__ inline float roundToByte(float v) { return fminf(255.0f, floorf(v + 0.5f)); }

// Stored pixels seen in their EXIF orientation: pixel (x, y) of the upright image, whose size is
// (w, h), is read from where it sits in the stored one (size (h, w) for orientations 5..8).
struct OrientedImage {
  const std::uint8_t* px;
  int w, h;  // upright size
  int orientation;
  __device__ const std::uint8_t* at(int x, int y) const {
    int sx = x, sy = y, sw = w;
    switch (orientation) {
      case 2: sx = w - 1 - x; break;                                  // mirrored horizontally
      case 3: sx = w - 1 - x; sy = h - 1 - y; break;                  // rotated 180
      case 4: sy = h - 1 - y; break;                                  // mirrored vertically
      case 5: sx = y; sy = x; sw = h; break;                          // transposed
      case 6: sx = y; sy = w - 1 - x; sw = h; break;                  // rotated 90 clockwise to view
      case 7: sx = h - 1 - y; sy = w - 1 - x; sw = h; break;          // transversed
      case 8: sx = h - 1 - y; sy = x; sw = h; break;                  // rotated 270 clockwise to view
      default: break;
    }
    return px + (static_cast<std::size_t>(sy) * sw + sx) * 3;
  }
};

// INTER_AREA: every destination pixel is the overlap-weighted mean of the source pixels it covers.
// Tap geometry in double and weights rounded to float, as resize.ts's areaTaps computes them.
__device__ void sampleArea(const OrientedImage& src, int dw, int dh, int x, int y, float rgb[3]) {
  const int sw = src.w, sh = src.h;
  const double sx = static_cast<double>(sw) / dw;
  const double sy = static_cast<double>(sh) / dh;
  const double fx0 = x * sx;
  const double fx1 = fmin(fx0 + sx, static_cast<double>(sw));
  const double fy0 = y * sy;
  const double fy1 = fmin(fy0 + sy, static_cast<double>(sh));
  float acc[3] = {0.f, 0.f, 0.f};
  for (int sy_i = static_cast<int>(floor(fy0)); sy_i < fy1; ++sy_i) {
    const double wyd = fmin(sy_i + 1.0, fy1) - fmax(static_cast<double>(sy_i), fy0);
    if (wyd <= 1e-6) continue;
    const float wy = static_cast<float>(wyd / sy);
    float racc[3] = {0.f, 0.f, 0.f};
    for (int sx_i = static_cast<int>(floor(fx0)); sx_i < fx1; ++sx_i) {
      const double wxd = fmin(sx_i + 1.0, fx1) - fmax(static_cast<double>(sx_i), fx0);
      if (wxd <= 1e-6) continue;
      const float wx = static_cast<float>(wxd / sx);
      const std::uint8_t* p = src.at(sx_i, sy_i);
      racc[0] += p[0] * wx;
      racc[1] += p[1] * wx;
      racc[2] += p[2] * wx;
    }
    acc[0] += racc[0] * wy;
    acc[1] += racc[1] * wy;
    acc[2] += racc[2] * wy;
  }
  for (int c = 0; c < 3; ++c) rgb[c] = roundToByte(acc[c]);
}

// INTER_LINEAR with half-pixel centres, clamped at the borders (identity when sizes match).
__device__ void sampleLinear(const OrientedImage& src, int dw, int dh, int x, int y, float rgb[3]) {
  const int sw = src.w, sh = src.h;
  const double fx = fmax((x + 0.5) * (static_cast<double>(sw) / dw) - 0.5, 0.0);
  const double fy = fmax((y + 0.5) * (static_cast<double>(sh) / dh) - 0.5, 0.0);
  const int x0 = min(static_cast<int>(floor(fx)), sw - 1);
  const int y0 = min(static_cast<int>(floor(fy)), sh - 1);
  const int x1 = min(x0 + 1, sw - 1);
  const int y1 = min(y0 + 1, sh - 1);
  const float wx = static_cast<float>(fx - x0);
  const float wy = static_cast<float>(fy - y0);
  const std::uint8_t* p00 = src.at(x0, y0);
  const std::uint8_t* p01 = src.at(x1, y0);
  const std::uint8_t* p10 = src.at(x0, y1);
  const std::uint8_t* p11 = src.at(x1, y1);
  for (int c = 0; c < 3; ++c) {
    const float a = p00[c], b = p01[c], d = p10[c], e = p11[c];
    const float top = a + (b - a) * wx;
    const float bot = d + (e - d) * wx;
    rgb[c] = fmaxf(0.f, roundToByte(top + (bot - top) * wy));
  }
}

template <typename T>
__device__ inline T fromFloat(float v);
template <>
__device__ inline float fromFloat<float>(float v) {
  return v;
}
template <>
__device__ inline __half fromFloat<__half>(float v) {
  return __float2half_rn(v);
}

template <typename T>
__global__ void letterboxKernel(const std::uint8_t* images, const LetterboxDesc* descs, T* out, int dstW, int dstH,
                                bool channelsLast) {
  const int x = blockIdx.x * blockDim.x + threadIdx.x;
  const int y = blockIdx.y * blockDim.y + threadIdx.y;
  const int b = blockIdx.z;
  if (x >= dstW || y >= dstH) return;
  const LetterboxDesc d = descs[b];
  float rgb[3] = {kPad, kPad, kPad};
  const int rx = x - d.left;
  const int ry = y - d.top;
  if (rx >= 0 && ry >= 0 && rx < d.resizedWidth && ry < d.resizedHeight) {
    const OrientedImage src{images + d.srcOffset, d.srcWidth, d.srcHeight, d.orientation};
    if (d.resizedWidth < d.srcWidth && d.resizedHeight < d.srcHeight)
      sampleArea(src, d.resizedWidth, d.resizedHeight, rx, ry, rgb);
    else
      sampleLinear(src, d.resizedWidth, d.resizedHeight, rx, ry, rgb);
  }
  const std::size_t plane = static_cast<std::size_t>(dstW) * dstH;
  const std::size_t pixel = static_cast<std::size_t>(y) * dstW + x;
  T* o = out + static_cast<std::size_t>(b) * 3 * plane;
  if (channelsLast)
    for (int c = 0; c < 3; ++c) o[pixel * 3 + c] = fromFloat<T>(rgb[c] / 255.0f);
  else
    for (int c = 0; c < 3; ++c) o[c * plane + pixel] = fromFloat<T>(rgb[c] / 255.0f);
}

}  // namespace

void launchLetterbox(const std::uint8_t* images, const LetterboxDesc* descs, int batch, void* out, DType outType,
                     int dstWidth, int dstHeight, bool channelsLast, cudaStream_t stream) {
  if (batch <= 0) return;
  const dim3 block(32, 8);
  const dim3 grid((dstWidth + block.x - 1) / block.x, (dstHeight + block.y - 1) / block.y, batch);
  switch (outType) {
    case DType::kFloat32:
      letterboxKernel<float><<<grid, block, 0, stream>>>(images, descs, static_cast<float*>(out), dstWidth, dstHeight,
                                                                channelsLast);
      break;
    case DType::kFloat16:
      letterboxKernel<__half><<<grid, block, 0, stream>>>(images, descs, static_cast<__half*>(out), dstWidth,
                                                                 dstHeight, channelsLast);
      break;
    default:
      throw std::invalid_argument(std::string("letterbox cannot write ") + dtypeName(outType) + " input");
  }
  DETQ_CUDA_CHECK_LAUNCH();
}

}  // namespace detq
