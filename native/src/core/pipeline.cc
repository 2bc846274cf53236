#include "pipeline.h"

#include "log.h"

#include <cuda_fp16.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>
#include <stdexcept>

namespace detq {
namespace {

// Pixels start after the descriptor table, aligned so the table and images never share a cache line.
std::size_t descBytes(std::size_t batch) { return (batch * sizeof(LetterboxDesc) + 255) & ~std::size_t{255}; }

// The kernels trust the descriptors: a letterbox that does not fit the canvas would read or write
// out of bounds, so it is refused here with a message instead.
void checkGeometry(const std::vector<HostFrame>& frames, int width, int height) {
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const LetterboxDesc& d = frames[i].desc;
    if (d.resizedWidth < 1 || d.resizedHeight < 1 || d.left < 0 || d.top < 0 || d.left + d.resizedWidth > width ||
        d.top + d.resizedHeight > height || !(d.gain > 0))
      throw std::invalid_argument("frame " + std::to_string(i) + ": letterbox " + std::to_string(d.resizedWidth) + "x" +
                                  std::to_string(d.resizedHeight) + " at (" + std::to_string(d.left) + "," + std::to_string(d.top) +
                                  ") does not fit the " + std::to_string(width) + "x" + std::to_string(height) + " input");
  }
}

}  // namespace

Pipeline::Pipeline(int device, std::shared_ptr<ModelState> model, int profile)
    : device_(device), guard_(device), model_(std::move(model)) {
  if (model_) instance_ = model_->createInstance(profile);
}

Pipeline::~Pipeline() {
  // Work queued on our stream may still use the buffers: finish it before they are freed.
  cudaStreamSynchronize(stream_.get());
  instance_.reset();
}

void Pipeline::upload(const std::vector<HostFrame>& frames) {
  const std::size_t batch = frames.size();
  std::size_t total = descBytes(batch);
  for (const auto& f : frames) total += f.bytes;
  // The previous batch's upload may still be in flight from this buffer.
  stream_.synchronize();
  hostIn_.reserve(total);
  deviceIn_.reserve(total);
  auto* descs = hostIn_.as<LetterboxDesc>();
  std::size_t offset = descBytes(batch);
  for (std::size_t i = 0; i < batch; ++i) {
    descs[i] = frames[i].desc;
    descs[i].srcOffset = static_cast<std::int64_t>(offset);
    if (frames[i].bytes) std::memcpy(hostIn_.as<std::uint8_t>() + offset, frames[i].pixels, frames[i].bytes);
    offset += frames[i].bytes;
  }
  DETQ_CUDA_CHECK(cudaMemcpyAsync(deviceIn_.data(), hostIn_.data(), total, cudaMemcpyHostToDevice, stream_.get()));
}

std::vector<FrameResult> Pipeline::runDevice(int batch, const DetectConfig& config) {
  const ModelInfo& info = model_->info();
  // A few padded sizes only (ModelInfo::batchSizes): every new input shape costs autotuning or a TensorRT shape switch.
  const int run = paddedBatch(info, batch);
  const std::size_t imageBytes = static_cast<std::size_t>(3) * info.inputWidth * info.inputHeight * dtypeSize(info.inputType);
  netInput_.reserve(imageBytes * run);
  launchLetterbox(deviceImages(), deviceDescs(), batch, netInput_.data(), info.inputType, info.inputWidth,
                  info.inputHeight, info.channelsLast, stream_.get());
  // Padding images are zeros; their outputs are never decoded.
  if (run > batch)
    DETQ_CUDA_CHECK(cudaMemsetAsync(netInput_.as<std::uint8_t>() + imageBytes * batch, 0, imageBytes * (run - batch), stream_.get()));
  const RawOutput raw = instance_->run(netInput_.data(), run, stream_.get());
  if (info.outputLayout == OutputLayout::kEnd2End) return decodeEnd2End(raw, batch, config);
  post_.run(raw.data, raw.type, batch, raw.rows, raw.anchors, deviceDescs(), config, stream_.get());
  return download(batch, config);
}

std::vector<FrameResult> Pipeline::decodeEnd2End(const RawOutput& raw, int batch, const DetectConfig& config) {
  const std::size_t values = static_cast<std::size_t>(batch) * raw.rows * raw.anchors;
  hostOut_.reserve(values * dtypeSize(raw.type));
  DETQ_CUDA_CHECK(cudaMemcpyAsync(hostOut_.data(), raw.data, values * dtypeSize(raw.type), cudaMemcpyDeviceToHost, stream_.get()));
  stream_.synchronize();
  std::vector<float> rows(values);
  if (raw.type == DType::kFloat32) {
    std::memcpy(rows.data(), hostOut_.data(), values * sizeof(float));
  } else {
    const auto* half = hostOut_.as<__half>();
    for (std::size_t i = 0; i < values; ++i) rows[i] = __half2float(half[i]);
  }
  // The letterbox descriptors are still in the pinned upload buffer.
  const auto* descs = hostIn_.as<LetterboxDesc>();
  std::vector<FrameResult> out(batch);
  for (int b = 0; b < batch; ++b) {
    out[b].rows = decodeEndToEnd(rows.data() + static_cast<std::size_t>(b) * raw.rows * raw.anchors, raw.rows, descs[b], config);
    out[b].count = static_cast<int>(out[b].rows.size() / kEnd2EndValues);
  }
  return out;
}

std::vector<FrameResult> Pipeline::download(int batch, const DetectConfig& config) {
  const std::size_t countBytes = sizeof(std::int32_t) * batch;
  const std::size_t rowFloats = static_cast<std::size_t>(batch) * config.maxDet * 6;
  hostOut_.reserve(countBytes + rowFloats * sizeof(float));
  auto* counts = hostOut_.as<std::int32_t>();
  auto* rows = reinterpret_cast<float*>(hostOut_.as<std::uint8_t>() + countBytes);
  DETQ_CUDA_CHECK(cudaMemcpyAsync(counts, post_.deviceCounts(), countBytes, cudaMemcpyDeviceToHost, stream_.get()));
  DETQ_CUDA_CHECK(cudaMemcpyAsync(rows, post_.deviceRows(), rowFloats * sizeof(float), cudaMemcpyDeviceToHost, stream_.get()));
  stream_.synchronize();
  std::vector<FrameResult> out(batch);
  for (int b = 0; b < batch; ++b) {
    const float* r = rows + static_cast<std::size_t>(b) * config.maxDet * 6;
    out[b].count = counts[b];
    out[b].rows.assign(r, r + static_cast<std::size_t>(counts[b]) * 6);
  }
  return out;
}

std::vector<FrameResult> Pipeline::infer(const std::vector<HostFrame>& frames, const DetectConfig& config) {
  if (!model_) throw std::logic_error("this pipeline has no model");
  if (frames.empty()) return {};
  checkGeometry(frames, model_->info().inputWidth, model_->info().inputHeight);
  const auto t0 = std::chrono::steady_clock::now();
  upload(frames);
  const auto t1 = std::chrono::steady_clock::now();
  auto results = runDevice(static_cast<int>(frames.size()), config);
  const auto t2 = std::chrono::steady_clock::now();
  // Where a batch's time goes (shown with DETQ_DEBUG): host staging + copy, then GPU work to boxes back.
  log(LogLevel::kDebug, "infer " + std::to_string(frames.size()) + " frames: upload " +
                            std::to_string(std::chrono::duration<double, std::milli>(t1 - t0).count()) + " ms, device " +
                            std::to_string(std::chrono::duration<double, std::milli>(t2 - t1).count()) + " ms");
  return results;
}

std::vector<float> Pipeline::letterbox(const std::vector<HostFrame>& frames, int width, int height, DType type) {
  const int batch = static_cast<int>(frames.size());
  const std::size_t elems = static_cast<std::size_t>(batch) * 3 * width * height;
  checkGeometry(frames, width, height);
  upload(frames);
  netInput_.reserve(elems * dtypeSize(type));
  launchLetterbox(deviceImages(), deviceDescs(), batch, netInput_.data(), type, width, height, false, stream_.get());
  std::vector<float> out(elems);
  if (type == DType::kFloat32) {
    DETQ_CUDA_CHECK(cudaMemcpyAsync(out.data(), netInput_.data(), elems * 4, cudaMemcpyDeviceToHost, stream_.get()));
    stream_.synchronize();
  } else {
    std::vector<__half> half(elems);
    DETQ_CUDA_CHECK(cudaMemcpyAsync(half.data(), netInput_.data(), elems * 2, cudaMemcpyDeviceToHost, stream_.get()));
    stream_.synchronize();
    for (std::size_t i = 0; i < elems; ++i) out[i] = __half2float(half[i]);
  }
  return out;
}

std::vector<FrameResult> Pipeline::postprocess(const std::vector<float>& raw, int batch, int rows, int anchors,
                                               const std::vector<HostFrame>& frames, const DetectConfig& config) {
  if (raw.size() != static_cast<std::size_t>(batch) * rows * anchors)
    throw std::invalid_argument("raw output has " + std::to_string(raw.size()) + " values, expected batch*rows*anchors");
  if (frames.size() != static_cast<std::size_t>(batch))
    throw std::invalid_argument("postprocess needs one letterbox per image");
  // Frames here carry geometry only; upload the descriptor table alone.
  std::vector<HostFrame> geometry(frames);
  for (auto& f : geometry) f.bytes = 0;
  upload(geometry);
  DeviceBuffer deviceRaw(raw.size() * sizeof(float));
  DETQ_CUDA_CHECK(cudaMemcpyAsync(deviceRaw.data(), raw.data(), raw.size() * sizeof(float), cudaMemcpyHostToDevice, stream_.get()));
  post_.run(deviceRaw.data(), DType::kFloat32, batch, rows, anchors, deviceDescs(), config, stream_.get());
  return download(batch, config);
}

std::vector<double> Pipeline::benchmark(int batch, int iterations, int srcWidth, int srcHeight,
                                        const DetectConfig& config) {
  if (!model_) throw std::logic_error("this pipeline has no model");
  const ModelInfo& info = model_->info();
  // Synthetic photographs: smooth gradients plus noise, so the network sees varied input.
  std::vector<std::uint8_t> pixels(static_cast<std::size_t>(srcWidth) * srcHeight * 3);
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> noise(0, 40);
  for (int y = 0; y < srcHeight; ++y)
    for (int x = 0; x < srcWidth; ++x)
      for (int c = 0; c < 3; ++c)
        pixels[(static_cast<std::size_t>(y) * srcWidth + x) * 3 + c] =
            static_cast<std::uint8_t>(((x * (c + 1) + y * (3 - c)) / 8 + noise(rng)) & 0xFF);
  const float gain = std::min(static_cast<float>(info.inputHeight) / srcHeight, static_cast<float>(info.inputWidth) / srcWidth);
  HostFrame frame{};
  frame.pixels = pixels.data();
  frame.bytes = pixels.size();
  frame.desc.srcWidth = srcWidth;
  frame.desc.srcHeight = srcHeight;
  frame.desc.gain = gain;
  frame.desc.resizedWidth = static_cast<int>(std::lround(srcWidth * gain));
  frame.desc.resizedHeight = static_cast<int>(std::lround(srcHeight * gain));
  frame.desc.left = (info.inputWidth - frame.desc.resizedWidth) / 2;
  frame.desc.top = (info.inputHeight - frame.desc.resizedHeight) / 2;
  // Images are uploaded once: engine-only timing starts from device-resident images (as nvJPEG gives).
  upload(std::vector<HostFrame>(batch, frame));
  std::vector<double> times;
  times.reserve(iterations);
  for (int i = 0; i < iterations; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    runDevice(batch, config);
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return times;
}

}  // namespace detq
