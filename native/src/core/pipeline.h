// Everything one execution context owns on its thread: its CUDA stream, pinned and device buffers,
// its JPEG decoder, the backend instance and the post-processor. Built, used and destroyed on that
// thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../kernels/kernels.h"
#include "backend.h"
#include "batch_timeline.h"
#include "cuda_resources.h"
#include "options.h"

namespace detq {

class JpegDecoder;

struct FrameResult {
  std::vector<float> rows;  // count * 6
  int count = 0;
  // Set when the frame was a JPEG the device could not decode: JS decodes it on the CPU and resubmits.
  std::string decodeError;
};

class Pipeline {
 public:
  // `model` may be null: a kernels-only pipeline (letterbox/post-processing checks). `profile`: the
  // TensorRT optimisation profile this context owns (-1: none). `slots`: staging slots, 1 to kMaxSlots
  // (checked by ContextWrap).
  Pipeline(int device, std::shared_ptr<ModelState> model, int profile = -1, int slots = kDefaultSlots);
  ~Pipeline();

  // A batch on the device. launch() stages it on the copy stream (descriptors and CPU-decoded pixels
  // uploaded, JPEGs decoded) and queues letterbox, network, decode + NMS and the copy of the boxes to
  // the host on the compute stream, without waiting; collect() waits for that batch's boxes. Each batch
  // has a staging slot of its own, so the context thread stages the next batch (and the NVJPG engines
  // decode it) while earlier ones run the network. At most slots() batches are launched and not yet
  // collected: the execution thread launches one while slots() - 1 are on the device.
  struct Launched {
    int slot = -1;  // -1: no frame reached the device
    std::size_t frames = 0;
    std::vector<int> live;            // the frames on the device, in order
    std::vector<std::string> errors;  // per frame: why the device could not decode it (empty: it could)
    DetectConfig config;
  };
  // Staging slots when the caller names none (the addon's `batchesPerContext`). Three: the nvJPEG
  // hardware decode call returns only once its batch is nearly decoded, so with two the network queue
  // ran dry while the thread decoded; with three one context kept the H100's network busy 98 % of the
  // time (native/README.md, "Measured 2026-12-06, night").
  static constexpr int kDefaultSlots = 3;
  static constexpr int kMaxSlots = 4;
  int slots() const { return static_cast<int>(slots_.size()); }
  Launched launch(const std::vector<HostFrame>& frames, const DetectConfig& config);
  std::vector<FrameResult> collect(const Launched& batch);
  // Letterbox alone, returned as float32 NCHW whatever the kernel wrote (checks against the CPU path).
  // Frames the device cannot decode are an error here.
  std::vector<float> letterbox(const std::vector<HostFrame>& frames, int width, int height, DType type);
  // Post-processing alone on a raw head output supplied from the host.
  std::vector<FrameResult> postprocess(const std::vector<float>& raw, int batch, int rows, int anchors,
                                       const std::vector<HostFrame>& frames, const DetectConfig& config);
  // Engine-only timing: `frames` are staged (and decoded) on the device once, then `iterations` batches
  // run through letterbox, network, decode + NMS and the copy of boxes to the host. Milliseconds per batch.
  std::vector<double> benchmark(const std::vector<HostFrame>& frames, int iterations, const DetectConfig& config);

 private:
  // What one batch in flight owns. Reused only once that batch has been collected.
  struct Slot {
    PinnedBuffer hostIn;    // descriptor table + CPU-decoded pixels
    DeviceBuffer deviceIn;  // the same uploaded, then the RGB nvJPEG decodes into
    PinnedBuffer hostOut;   // counts + boxes (or the end-to-end output) copied back
    CudaEvent staged;       // copy stream: upload and JPEG decode done; the compute stream waits on it
    CudaEvent done;         // compute stream: results are in hostOut
    bool busy = false;
    // What collect() needs to read hostOut.
    int batch = 0;
    RawOutput raw{};  // end-to-end outputs only
    // With DETQ_DEBUG, launch() times its batch (logged by collect()); null otherwise and on other calls.
    std::unique_ptr<BatchTimeline> timelineStore;
    BatchTimeline* timeline = nullptr;
    void mark(BatchTimeline::Gpu m, cudaStream_t stream) {
      if (timeline) timeline->mark(m, stream);
    }
    void mark(BatchTimeline::Host m) {
      if (timeline) timeline->mark(m);
    }
  };
  // The next slot, which must have been collected (the execution thread launches at most slots() batches),
  // with its timeline on when `timed` (launch() with DETQ_DEBUG) and off otherwise.
  Slot& takeSlot(int* index, bool timed = false);
  // Lays the batch out in the slot's device buffer: descriptor table and CPU-decoded pixels copied from
  // its pinned staging, then the space nvJPEG decodes JPEG frames into. JPEGs the decoder refuses are
  // left out of the table and get no device memory. Everything goes on the copy stream, ending with
  // `slot.staged`.
  void stage(Slot& slot, int index, const std::vector<HostFrame>& frames, std::vector<int>& live, std::vector<std::string>& errors);
  // Per frame, why the device cannot decode this JPEG (empty for the others and for JPEGs it can).
  std::vector<std::string> checkJpegs(const std::vector<HostFrame>& frames);
  // Runs `work`; when it throws, waits for both streams first: what it queued may still read the slot's
  // buffers and the caller's frames (released once the job settles).
  template <typename Work>
  void drainingOnError(Work&& work);
  // Compute stream (after the slot's staging): letterbox, network, decode + NMS (or the end-to-end
  // output) and the copy back into hostOut, ending with `slot.done`.
  void runDevice(Slot& slot, int batch, const DetectConfig& config);
  // Queues the copy of the post-processor's counts and boxes into the slot's hostOut, then `slot.done`.
  void queueBoxesBack(Slot& slot, int batch, const DetectConfig& config);
  // After `slot.done`: the host side of the results.
  std::vector<FrameResult> readResults(Slot& slot, const DetectConfig& config);
  static const LetterboxDesc* deviceDescs(const Slot& slot) { return slot.deviceIn.as<LetterboxDesc>(); }

  int device_;
  int id_;  // this context's number in the process (DETQ_DEBUG's timeline)
  DeviceGuard guard_;
  std::shared_ptr<ModelState> model_;
  std::unique_ptr<InstanceState> instance_;
  CudaStream stream_;      // compute: letterbox, network, post-processing, results back
  CudaStream copyStream_;  // staging: uploads and JPEG decoding, overlapping the compute stream
  std::vector<std::unique_ptr<Slot>> slots_;
  int nextSlot_ = 0;
  DeviceBuffer netInput_;  // the network's input: sized for maxBatch once, it never moves (CUDA graphs read it)
  YoloPostprocessor post_;
  std::unique_ptr<JpegDecoder> jpeg_;  // made on the first JPEG frame
  std::string jpegUnavailable_;        // why it could not be made, once that failed
};

}  // namespace detq
