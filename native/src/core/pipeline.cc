#include "pipeline.h"

#include "../codec/jpeg_decoder.h"
#include "log.h"

#include <cuda_fp16.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <stdexcept>

namespace detq {
namespace {

constexpr std::size_t kAlign = 256;
std::size_t aligned(std::size_t n) { return (n + kAlign - 1) & ~(kAlign - 1); }
// Pixels start after the descriptor table; every image starts 256-byte aligned (nvJPEG writes them).
std::size_t descBytes(std::size_t batch) { return aligned(batch * sizeof(LetterboxDesc)); }
// Staging kept between batches; larger allocations are given back after an outsized batch.
constexpr std::size_t kKeepStagingBytes = std::size_t{512} << 20;

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

std::vector<std::string> Pipeline::decodeJpegs(const std::vector<HostFrame>& frames, const std::vector<std::size_t>& offsets) {
  std::vector<std::string> errors(frames.size());
  std::vector<JpegInput> inputs;
  std::vector<std::size_t> index;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    if (!frames[i].jpeg) continue;
    const LetterboxDesc& d = frames[i].desc;
    inputs.push_back({frames[i].data, frames[i].bytes, storedWidth(d), storedHeight(d), deviceIn_.as<std::uint8_t>() + offsets[i]});
    index.push_back(i);
  }
  if (inputs.empty()) return errors;
  if (!jpeg_ && jpegUnavailable_.empty()) {
    try {
      jpeg_ = std::make_unique<JpegDecoder>();
    } catch (const std::exception& e) {
      jpegUnavailable_ = e.what();
      log(LogLevel::kWarn, std::string("GPU JPEG decoding unavailable, decoding on the CPU: ") + e.what());
    }
  }
  if (jpeg_) {
    const std::vector<std::string> decoded = jpeg_->decode(inputs, stream_.get());
    for (std::size_t k = 0; k < index.size(); ++k) errors[index[k]] = decoded[k];
    return errors;
  }
  for (std::size_t i : index) errors[i] = jpegUnavailable_;
  return errors;
}

Pipeline::Staged Pipeline::stage(const std::vector<HostFrame>& frames) {
  const std::size_t batch = frames.size();
  // Host part: descriptors + CPU-decoded pixels; device-only part after it: nvJPEG's output.
  std::vector<std::size_t> offsets(batch);
  std::size_t hostBytes = descBytes(batch);
  for (std::size_t i = 0; i < batch; ++i)
    if (!frames[i].jpeg) {
      offsets[i] = hostBytes;
      hostBytes += aligned(frames[i].bytes);
    }
  std::size_t total = hostBytes;
  for (std::size_t i = 0; i < batch; ++i)
    if (frames[i].jpeg) {
      offsets[i] = total;
      total += aligned(static_cast<std::size_t>(frames[i].desc.srcWidth) * frames[i].desc.srcHeight * 3);
    }
  // The previous batch may still read the staging buffers (it has finished when download() returned,
  // but letterbox() and postprocess() do not wait).
  done_.waitFor(stream_.get());
  hostIn_.shrinkAfter(hostBytes, kKeepStagingBytes);
  deviceIn_.shrinkAfter(total, kKeepStagingBytes);
  hostIn_.reserve(hostBytes);
  deviceIn_.reserve(total);

  Staged staged;
  staged.errors = decodeJpegs(frames, offsets);
  auto* descs = hostIn_.as<LetterboxDesc>();
  for (std::size_t i = 0; i < batch; ++i) {
    if (!staged.errors[i].empty()) continue;
    LetterboxDesc& d = descs[staged.live.size()];
    d = frames[i].desc;
    d.srcOffset = static_cast<std::int64_t>(offsets[i]);
    if (!frames[i].jpeg && frames[i].bytes) std::memcpy(hostIn_.as<std::uint8_t>() + offsets[i], frames[i].data, frames[i].bytes);
    staged.live.push_back(static_cast<int>(i));
  }
  DETQ_CUDA_CHECK(cudaMemcpyAsync(deviceIn_.data(), hostIn_.data(), hostBytes, cudaMemcpyHostToDevice, stream_.get()));
  return staged;
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
  done_.waitFor(stream_.get());
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
  const Staged staged = stage(frames);
  const auto t1 = std::chrono::steady_clock::now();
  std::vector<FrameResult> live = staged.live.empty() ? std::vector<FrameResult>{} : runDevice(static_cast<int>(staged.live.size()), config);
  const auto t2 = std::chrono::steady_clock::now();
  // Where a batch's time goes (shown with DETQ_DEBUG): staging, JPEG decode launch and copy, then GPU work to boxes back.
  log(LogLevel::kDebug, "infer " + std::to_string(frames.size()) + " frames (" + std::to_string(frames.size() - staged.live.size()) +
                            " not decodable on the device): stage " + std::to_string(std::chrono::duration<double, std::milli>(t1 - t0).count()) +
                            " ms, device " + std::to_string(std::chrono::duration<double, std::milli>(t2 - t1).count()) + " ms");
  std::vector<FrameResult> results(frames.size());
  for (std::size_t k = 0; k < staged.live.size(); ++k) results[staged.live[k]] = std::move(live[k]);
  for (std::size_t i = 0; i < frames.size(); ++i)
    if (!staged.errors[i].empty()) results[i].decodeError = staged.errors[i];
  return results;
}

std::vector<float> Pipeline::letterbox(const std::vector<HostFrame>& frames, int width, int height, DType type) {
  const int batch = static_cast<int>(frames.size());
  const std::size_t elems = static_cast<std::size_t>(batch) * 3 * width * height;
  checkGeometry(frames, width, height);
  const Staged staged = stage(frames);
  for (std::size_t i = 0; i < frames.size(); ++i)
    if (!staged.errors[i].empty()) throw std::runtime_error("frame " + std::to_string(i) + ": " + staged.errors[i]);
  netInput_.reserve(elems * dtypeSize(type));
  launchLetterbox(deviceImages(), deviceDescs(), batch, netInput_.data(), type, width, height, false, stream_.get());
  std::vector<float> out(elems);
  if (type == DType::kFloat32) {
    DETQ_CUDA_CHECK(cudaMemcpyAsync(out.data(), netInput_.data(), elems * 4, cudaMemcpyDeviceToHost, stream_.get()));
    done_.waitFor(stream_.get());
  } else {
    std::vector<__half> half(elems);
    DETQ_CUDA_CHECK(cudaMemcpyAsync(half.data(), netInput_.data(), elems * 2, cudaMemcpyDeviceToHost, stream_.get()));
    done_.waitFor(stream_.get());
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
  for (auto& f : geometry) {
    f.bytes = 0;
    f.jpeg = false;
  }
  stage(geometry);
  DeviceBuffer deviceRaw(raw.size() * sizeof(float));
  DETQ_CUDA_CHECK(cudaMemcpyAsync(deviceRaw.data(), raw.data(), raw.size() * sizeof(float), cudaMemcpyHostToDevice, stream_.get()));
  post_.run(deviceRaw.data(), DType::kFloat32, batch, rows, anchors, deviceDescs(), config, stream_.get());
  return download(batch, config);
}

std::vector<double> Pipeline::benchmark(const std::vector<HostFrame>& frames, int iterations, const DetectConfig& config) {
  if (!model_) throw std::logic_error("this pipeline has no model");
  if (frames.empty()) throw std::invalid_argument("benchmark needs at least one frame");
  checkGeometry(frames, model_->info().inputWidth, model_->info().inputHeight);
  // Images are staged once: engine-only timing starts from device-resident images (as nvJPEG leaves them).
  const Staged staged = stage(frames);
  if (staged.live.size() != frames.size()) throw std::runtime_error("benchmark: some frames could not be decoded on the device");
  std::vector<double> times;
  times.reserve(iterations);
  for (int i = 0; i < iterations; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    runDevice(static_cast<int>(frames.size()), config);
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return times;
}

}  // namespace detq
