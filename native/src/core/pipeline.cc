#include "pipeline.h"

#include "../codec/jpeg_decoder.h"
#include "log.h"

#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
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

// One network input image in the model's input type.
std::size_t networkImageBytes(const ModelInfo& info) {
  return static_cast<std::size_t>(3) * info.inputWidth * info.inputHeight * dtypeSize(info.inputType);
}

// Names contexts in DETQ_DEBUG's timeline lines.
std::atomic<int> nextId{0};

double msSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

Pipeline::Pipeline(int device, std::shared_ptr<ModelState> model, int profile, int slots)
    : device_(device), id_(nextId.fetch_add(1)), guard_(device), model_(std::move(model)) {
  for (int i = 0; i < slots; ++i) slots_.push_back(std::make_unique<Slot>());
  if (!model_) return;
  instance_ = model_->createInstance(profile);
  // Sized for the largest batch once, so the network input never moves: CUDA graphs captured on it stay valid.
  netInput_.reserve(networkImageBytes(model_->info()) * model_->info().maxBatch);
}

Pipeline::~Pipeline() {
  // Work queued on our streams may still use the buffers: finish it before they are freed.
  cudaStreamSynchronize(copyStream_.get());
  cudaStreamSynchronize(stream_.get());
  instance_.reset();
}

Pipeline::Slot& Pipeline::takeSlot(int* index, bool timed) {
  *index = nextSlot_;
  Slot& slot = *slots_[nextSlot_];
  if (slot.busy) throw std::logic_error("every staging slot holds a batch not yet collected");
  nextSlot_ = (nextSlot_ + 1) % slots();
  if (timed && !slot.timelineStore) slot.timelineStore = std::make_unique<BatchTimeline>(device_);
  slot.timeline = timed ? slot.timelineStore.get() : nullptr;
  return slot;
}

template <typename Work>
void Pipeline::drainingOnError(Work&& work) {
  try {
    work();
  } catch (...) {
    cudaStreamSynchronize(copyStream_.get());
    cudaStreamSynchronize(stream_.get());
    throw;
  }
}

std::vector<std::string> Pipeline::checkJpegs(const std::vector<HostFrame>& frames) {
  std::vector<std::string> errors(frames.size());
  for (std::size_t i = 0; i < frames.size(); ++i) {
    if (!frames[i].jpeg) continue;
    if (!jpeg_ && jpegUnavailable_.empty()) {
      try {
        jpeg_ = std::make_unique<JpegDecoder>(slots());
      } catch (const std::exception& e) {
        jpegUnavailable_ = e.what();
        log(LogLevel::kWarn, std::string("GPU JPEG decoding unavailable, decoding on the CPU: ") + e.what());
      }
    }
    const LetterboxDesc& d = frames[i].desc;
    errors[i] = jpeg_ ? jpeg_->refusal({frames[i].data, frames[i].bytes, storedWidth(d), storedHeight(d), nullptr}) : jpegUnavailable_;
  }
  return errors;
}

void Pipeline::stage(Slot& slot, int index, const std::vector<HostFrame>& frames, std::vector<int>& live, std::vector<std::string>& errors) {
  const std::size_t batch = frames.size();
  errors = checkJpegs(frames);
  // Host part: descriptors + CPU-decoded pixels; device-only part after it: nvJPEG's output.
  std::vector<std::size_t> offsets(batch);
  std::size_t hostBytes = descBytes(batch);
  for (std::size_t i = 0; i < batch; ++i)
    if (!frames[i].jpeg) {
      offsets[i] = hostBytes;
      hostBytes += aligned(frames[i].bytes);
    }
  std::size_t total = hostBytes;
  std::vector<JpegInput> jpegs;
  std::vector<std::size_t> jpegFrames;
  for (std::size_t i = 0; i < batch; ++i)
    if (frames[i].jpeg && errors[i].empty()) {
      offsets[i] = total;
      total += aligned(static_cast<std::size_t>(frames[i].desc.srcWidth) * frames[i].desc.srcHeight * 3);
      jpegFrames.push_back(i);
    }
  // The slot's previous batch was collected, so nothing on either stream reads the slot's buffers any more.
  slot.hostIn.shrinkAfter(hostBytes, kKeepStagingBytes);
  slot.deviceIn.shrinkAfter(total, kKeepStagingBytes);
  slot.hostIn.reserve(hostBytes);
  slot.deviceIn.reserve(total);

  for (std::size_t i : jpegFrames) {
    const LetterboxDesc& d = frames[i].desc;
    jpegs.push_back({frames[i].data, frames[i].bytes, storedWidth(d), storedHeight(d), slot.deviceIn.as<std::uint8_t>() + offsets[i]});
  }
  slot.mark(BatchTimeline::Host::kDecodeCallBegin);
  slot.mark(BatchTimeline::Gpu::kDecodeBegin, copyStream_.get());
  if (jpeg_)
    if (std::string failed = jpeg_->decode(jpegs, index, copyStream_.get()); !failed.empty())
      for (std::size_t i : jpegFrames) errors[i] = failed;
  slot.mark(BatchTimeline::Host::kDecodeCallEnd);
  slot.mark(BatchTimeline::Gpu::kDecoded, copyStream_.get());
  auto* descs = slot.hostIn.as<LetterboxDesc>();
  live.clear();
  for (std::size_t i = 0; i < batch; ++i) {
    if (!errors[i].empty()) continue;
    LetterboxDesc& d = descs[live.size()];
    d = frames[i].desc;
    d.srcOffset = static_cast<std::int64_t>(offsets[i]);
    if (!frames[i].jpeg && frames[i].bytes) std::memcpy(slot.hostIn.as<std::uint8_t>() + offsets[i], frames[i].data, frames[i].bytes);
    live.push_back(static_cast<int>(i));
  }
  DETQ_CUDA_CHECK(cudaMemcpyAsync(slot.deviceIn.data(), slot.hostIn.data(), hostBytes, cudaMemcpyHostToDevice, copyStream_.get()));
  // Marks go before the events the host waits on, so they have completed when collect() reads them.
  slot.mark(BatchTimeline::Gpu::kStaged, copyStream_.get());
  DETQ_CUDA_CHECK(cudaEventRecord(slot.staged.get(), copyStream_.get()));
  DETQ_CUDA_CHECK(cudaStreamWaitEvent(stream_.get(), slot.staged.get(), 0));
}

void Pipeline::runDevice(Slot& slot, int batch, const DetectConfig& config) {
  const ModelInfo& info = model_->info();
  // A few padded sizes only (ModelInfo::batchSizes): every new input shape costs autotuning or a TensorRT shape switch.
  const int run = paddedBatch(info, batch);
  const std::size_t imageBytes = networkImageBytes(info);
  slot.mark(BatchTimeline::Gpu::kComputeBegin, stream_.get());
  launchLetterbox(slot.deviceIn.as<std::uint8_t>(), deviceDescs(slot), batch, netInput_.data(), info.inputType, info.inputWidth,
                  info.inputHeight, info.channelsLast, stream_.get());
  // Padding images are zeros; their outputs are never decoded.
  if (run > batch)
    DETQ_CUDA_CHECK(cudaMemsetAsync(netInput_.as<std::uint8_t>() + imageBytes * batch, 0, imageBytes * (run - batch), stream_.get()));
  const RawOutput raw = instance_->run(netInput_.data(), run, stream_.get());
  slot.mark(BatchTimeline::Gpu::kNetworkEnd, stream_.get());
  if (info.outputLayout == OutputLayout::kEnd2End) {
    // End-to-end outputs ([batch, N, 6], boxes already selected) are filtered and mapped on the host.
    const std::size_t bytes = static_cast<std::size_t>(batch) * raw.rows * raw.anchors * dtypeSize(raw.type);
    slot.batch = batch;
    slot.raw = raw;
    slot.hostOut.reserve(bytes);
    DETQ_CUDA_CHECK(cudaMemcpyAsync(slot.hostOut.data(), raw.data, bytes, cudaMemcpyDeviceToHost, stream_.get()));
    slot.mark(BatchTimeline::Gpu::kDone, stream_.get());
    DETQ_CUDA_CHECK(cudaEventRecord(slot.done.get(), stream_.get()));
  } else {
    post_.run(raw.data, raw.type, batch, raw.rows, raw.anchors, deviceDescs(slot), config, stream_.get());
    queueBoxesBack(slot, batch, config);
  }
}

void Pipeline::queueBoxesBack(Slot& slot, int batch, const DetectConfig& config) {
  const std::size_t countBytes = sizeof(std::int32_t) * batch;
  const std::size_t rowBytes = static_cast<std::size_t>(batch) * config.maxDet * 6 * sizeof(float);
  slot.batch = batch;
  slot.raw = RawOutput{};
  slot.hostOut.reserve(countBytes + rowBytes);
  DETQ_CUDA_CHECK(cudaMemcpyAsync(slot.hostOut.data(), post_.deviceCounts(), countBytes, cudaMemcpyDeviceToHost, stream_.get()));
  DETQ_CUDA_CHECK(cudaMemcpyAsync(slot.hostOut.as<std::uint8_t>() + countBytes, post_.deviceRows(), rowBytes, cudaMemcpyDeviceToHost, stream_.get()));
  slot.mark(BatchTimeline::Gpu::kDone, stream_.get());
  DETQ_CUDA_CHECK(cudaEventRecord(slot.done.get(), stream_.get()));
}

std::vector<FrameResult> Pipeline::readResults(Slot& slot, const DetectConfig& config) {
  DETQ_CUDA_CHECK(cudaEventSynchronize(slot.done.get()));
  const int batch = slot.batch;
  std::vector<FrameResult> out(batch);
  if (slot.raw.data) {
    const RawOutput& raw = slot.raw;
    const std::size_t values = static_cast<std::size_t>(batch) * raw.rows * raw.anchors;
    std::vector<float> rows(values);
    if (raw.type == DType::kFloat32) {
      std::memcpy(rows.data(), slot.hostOut.data(), values * sizeof(float));
    } else {
      const auto* half = slot.hostOut.as<__half>();
      for (std::size_t i = 0; i < values; ++i) rows[i] = __half2float(half[i]);
    }
    // The letterbox descriptors are still in the slot's pinned upload buffer.
    const auto* descs = slot.hostIn.as<LetterboxDesc>();
    for (int b = 0; b < batch; ++b) {
      out[b].rows = decodeEndToEnd(rows.data() + static_cast<std::size_t>(b) * raw.rows * raw.anchors, raw.rows, descs[b], config);
      out[b].count = static_cast<int>(out[b].rows.size() / kEnd2EndValues);
    }
    return out;
  }
  const auto* counts = slot.hostOut.as<std::int32_t>();
  const auto* rows = reinterpret_cast<const float*>(slot.hostOut.as<std::uint8_t>() + sizeof(std::int32_t) * batch);
  for (int b = 0; b < batch; ++b) {
    const float* r = rows + static_cast<std::size_t>(b) * config.maxDet * 6;
    out[b].count = counts[b];
    out[b].rows.assign(r, r + static_cast<std::size_t>(counts[b]) * 6);
  }
  return out;
}

Pipeline::Launched Pipeline::launch(const std::vector<HostFrame>& frames, const DetectConfig& config) {
  if (!model_) throw std::logic_error("this pipeline has no model");
  Launched batch;
  batch.frames = frames.size();
  batch.config = config;
  if (frames.empty()) return batch;
  checkGeometry(frames, model_->info().inputWidth, model_->info().inputHeight);
  const auto t0 = std::chrono::steady_clock::now();
  int index = 0;
  Slot& slot = takeSlot(&index, logs(LogLevel::kDebug));
  slot.mark(BatchTimeline::Host::kLaunchBegin);
  drainingOnError([&] {
    stage(slot, index, frames, batch.live, batch.errors);
    if (batch.live.empty())
      // Nothing to run, but the upload (and a decode call that failed) may still read the slot and the frames.
      DETQ_CUDA_CHECK(cudaEventSynchronize(slot.staged.get()));
    else
      runDevice(slot, static_cast<int>(batch.live.size()), config);
  });
  slot.mark(BatchTimeline::Host::kLaunchEnd);
  // Host time to stage and queue one batch (shown with DETQ_DEBUG); collect() logs the wait for its boxes.
  log(LogLevel::kDebug, "launch " + std::to_string(frames.size()) + " frames (" + std::to_string(frames.size() - batch.live.size()) +
                            " not decodable on the device): " + std::to_string(msSince(t0)) + " ms");
  if (!batch.live.empty()) {
    slot.busy = true;
    batch.slot = index;
  }
  return batch;
}

std::vector<FrameResult> Pipeline::collect(const Launched& batch) {
  std::vector<FrameResult> live;
  if (batch.slot >= 0) {
    Slot& slot = *slots_[batch.slot];
    // The slot is free again whatever happens here: its batch is over, well or not.
    struct Release {
      Slot& slot;
      ~Release() { slot.busy = false; }
    } release{slot};
    const auto t0 = std::chrono::steady_clock::now();
    slot.mark(BatchTimeline::Host::kCollectBegin);
    live = readResults(slot, batch.config);
    slot.mark(BatchTimeline::Host::kCollectEnd);
    log(LogLevel::kDebug, "collect: waited " + std::to_string(msSince(t0)) + " ms for the boxes");
    if (slot.timeline)
      log(LogLevel::kDebug, "timeline context=" + std::to_string(id_) + " frames=" + std::to_string(batch.live.size()) + " " + slot.timeline->describe());
  }
  std::vector<FrameResult> results(batch.frames);
  for (std::size_t k = 0; k < batch.live.size(); ++k) results[batch.live[k]] = std::move(live[k]);
  for (std::size_t i = 0; i < batch.errors.size(); ++i)
    if (!batch.errors[i].empty()) results[i].decodeError = batch.errors[i];
  return results;
}

std::vector<float> Pipeline::letterbox(const std::vector<HostFrame>& frames, int width, int height, DType type) {
  const int batch = static_cast<int>(frames.size());
  const std::size_t elems = static_cast<std::size_t>(batch) * 3 * width * height;
  checkGeometry(frames, width, height);
  int index = 0;
  Slot& slot = takeSlot(&index);
  std::vector<float> out(elems);
  drainingOnError([&] {
    std::vector<int> live;
    std::vector<std::string> errors;
    stage(slot, index, frames, live, errors);
    for (std::size_t i = 0; i < frames.size(); ++i)
      if (!errors[i].empty()) throw std::runtime_error("frame " + std::to_string(i) + ": " + errors[i]);
    netInput_.reserveAfter(elems * dtypeSize(type), stream_.get());
    launchLetterbox(slot.deviceIn.as<std::uint8_t>(), deviceDescs(slot), batch, netInput_.data(), type, width, height, false, stream_.get());
    if (type == DType::kFloat32) {
      DETQ_CUDA_CHECK(cudaMemcpyAsync(out.data(), netInput_.data(), elems * 4, cudaMemcpyDeviceToHost, stream_.get()));
      stream_.synchronize();
    } else {
      std::vector<__half> half(elems);
      DETQ_CUDA_CHECK(cudaMemcpyAsync(half.data(), netInput_.data(), elems * 2, cudaMemcpyDeviceToHost, stream_.get()));
      stream_.synchronize();
      for (std::size_t i = 0; i < elems; ++i) out[i] = __half2float(half[i]);
    }
  });
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
  int index = 0;
  Slot& slot = takeSlot(&index);
  DeviceBuffer deviceRaw(raw.size() * sizeof(float));
  std::vector<FrameResult> out;
  drainingOnError([&] {
    std::vector<int> live;
    std::vector<std::string> errors;
    stage(slot, index, geometry, live, errors);
    DETQ_CUDA_CHECK(cudaMemcpyAsync(deviceRaw.data(), raw.data(), raw.size() * sizeof(float), cudaMemcpyHostToDevice, stream_.get()));
    post_.run(deviceRaw.data(), DType::kFloat32, batch, rows, anchors, deviceDescs(slot), config, stream_.get());
    queueBoxesBack(slot, batch, config);
    out = readResults(slot, config);
  });
  return out;
}

std::vector<double> Pipeline::benchmark(const std::vector<HostFrame>& frames, int iterations, const DetectConfig& config) {
  if (!model_) throw std::logic_error("this pipeline has no model");
  if (frames.empty()) throw std::invalid_argument("benchmark needs at least one frame");
  checkGeometry(frames, model_->info().inputWidth, model_->info().inputHeight);
  // Images are staged once: engine-only timing starts from device-resident images (as nvJPEG leaves them).
  int index = 0;
  Slot& slot = takeSlot(&index);
  std::vector<double> times;
  times.reserve(iterations);
  drainingOnError([&] {
    std::vector<int> live;
    std::vector<std::string> errors;
    stage(slot, index, frames, live, errors);
    if (live.size() != frames.size()) throw std::runtime_error("benchmark: some frames could not be decoded on the device");
    for (int i = 0; i < iterations; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      runDevice(slot, static_cast<int>(frames.size()), config);
      readResults(slot, config);
      times.push_back(msSince(t0));
    }
  });
  return times;
}

}  // namespace detq
