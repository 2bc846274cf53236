#include <nvjpeg.h>

#include <stdexcept>

#include "../core/log.h"
#include "jpeg_decoder.h"

namespace detq {
namespace {

const char* statusName(nvjpegStatus_t s) {
  switch (s) {
    case NVJPEG_STATUS_SUCCESS: return "success";
    case NVJPEG_STATUS_NOT_INITIALIZED: return "not initialised";
    case NVJPEG_STATUS_INVALID_PARAMETER: return "invalid parameter";
    case NVJPEG_STATUS_BAD_JPEG: return "bad JPEG";
    case NVJPEG_STATUS_JPEG_NOT_SUPPORTED: return "JPEG not supported";
    case NVJPEG_STATUS_ALLOCATOR_FAILURE: return "allocator failure";
    case NVJPEG_STATUS_EXECUTION_FAILED: return "execution failed";
    case NVJPEG_STATUS_ARCH_MISMATCH: return "no such decoder on this GPU";
    case NVJPEG_STATUS_INTERNAL_ERROR: return "internal error";
    case NVJPEG_STATUS_IMPLEMENTATION_NOT_SUPPORTED: return "implementation not supported";
    default: return "incomplete bitstream";
  }
}

void check(nvjpegStatus_t s, const char* what) {
  if (s != NVJPEG_STATUS_SUCCESS) throw std::runtime_error(std::string("nvJPEG ") + what + ": " + statusName(s));
}

// Stream-ordered device allocations: nvJPEG's scratch memory follows the context stream's order and comes
// from the device's memory pool instead of synchronising cudaMalloc/cudaFree calls.
int deviceMalloc(void*, void** ptr, std::size_t size, cudaStream_t stream) { return cudaMallocAsync(ptr, size, stream) == cudaSuccess ? 0 : 1; }
int deviceFree(void*, void* ptr, std::size_t, cudaStream_t stream) { return cudaFreeAsync(ptr, stream) == cudaSuccess ? 0 : 1; }
// Pinned staging cannot be stream-ordered: free only once the stream no longer reads it.
int pinnedMalloc(void*, void** ptr, std::size_t size, cudaStream_t) { return cudaMallocHost(ptr, size) == cudaSuccess ? 0 : 1; }
int pinnedFree(void*, void* ptr, std::size_t, cudaStream_t stream) {
  if (stream) cudaStreamSynchronize(stream);
  return cudaFreeHost(ptr) == cudaSuccess ? 0 : 1;
}

}  // namespace

struct JpegDecoder::Handles {
  nvjpegDevAllocatorV2_t device{&deviceMalloc, &deviceFree, nullptr};
  nvjpegPinnedAllocatorV2_t pinned{&pinnedMalloc, &pinnedFree, nullptr};
  nvjpegHandle_t handle = nullptr;
  nvjpegJpegState_t state = nullptr;
  nvjpegJpegStream_t header = nullptr;  // per-image header parse, for the support check
  ~Handles() {
    if (header) nvjpegJpegStreamDestroy(header);
    if (state) nvjpegJpegStateDestroy(state);
    if (handle) nvjpegDestroy(handle);
  }
};

JpegDecoder::JpegDecoder() : h_(std::make_unique<Handles>()) {
  // Hardware first; NVJPEG_STATUS_ARCH_MISMATCH (no NVJPG engine) or JPEG_NOT_SUPPORTED means the GPU
  // hybrid one. (NVJPEG_FLAGS_UPSAMPLING_WITH_INTERPOLATION left the coco128 box match unchanged on
  // the H100, so the default upsampling stays.)
  struct Choice {
    nvjpegBackend_t backend;
    const char* name;
  };
  const Choice choices[] = {{NVJPEG_BACKEND_HARDWARE, "hardware"}, {NVJPEG_BACKEND_GPU_HYBRID, "gpu-hybrid"}};
  nvjpegStatus_t last = NVJPEG_STATUS_SUCCESS;
  for (const Choice& c : choices) {
    last = nvjpegCreateExV2(c.backend, &h_->device, &h_->pinned, NVJPEG_FLAGS_DEFAULT, &h_->handle);
    if (last == NVJPEG_STATUS_SUCCESS) {
      backend_ = c.name;
      break;
    }
    h_->handle = nullptr;
  }
  check(last, "create");
  check(nvjpegJpegStateCreate(h_->handle, &h_->state), "state create");
  check(nvjpegJpegStreamCreate(h_->handle, &h_->header), "stream create");
  log(LogLevel::kDebug, "nvJPEG " + backend_ + " decoder ready");
}

JpegDecoder::~JpegDecoder() = default;

std::vector<std::string> JpegDecoder::decode(const std::vector<JpegInput>& images, cudaStream_t stream) {
  std::vector<std::string> errors(images.size());
  std::vector<const unsigned char*> data;
  std::vector<std::size_t> lengths;
  std::vector<nvjpegImage_t> outputs;
  std::vector<std::size_t> taken;
  for (std::size_t i = 0; i < images.size(); ++i) {
    const JpegInput& in = images[i];
    nvjpegStatus_t s = nvjpegJpegStreamParseHeader(h_->handle, in.data, in.bytes, h_->header);
    if (s != NVJPEG_STATUS_SUCCESS) {
      errors[i] = std::string("nvJPEG cannot parse the header: ") + statusName(s);
      continue;
    }
    unsigned int w = 0, hgt = 0;
    int unsupported = 1;
    nvjpegJpegStreamGetFrameDimensions(h_->header, &w, &hgt);
    // The output was sized from the header JS read: a disagreement would write out of bounds.
    if (static_cast<int>(w) != in.width || static_cast<int>(hgt) != in.height) {
      errors[i] = "nvJPEG reads " + std::to_string(w) + "x" + std::to_string(hgt) + ", the header said " +
                  std::to_string(in.width) + "x" + std::to_string(in.height);
      continue;
    }
    s = nvjpegDecodeBatchedSupported(h_->handle, h_->header, &unsupported);
    if (s != NVJPEG_STATUS_SUCCESS || unsupported) {
      errors[i] = "not supported by nvJPEG's " + backend_ + " batched decoder";
      continue;
    }
    data.push_back(in.data);
    lengths.push_back(in.bytes);
    nvjpegImage_t out{};
    out.channel[0] = in.output;
    out.pitch[0] = static_cast<std::size_t>(in.width) * 3;
    outputs.push_back(out);
    taken.push_back(i);
  }
  if (taken.empty()) return errors;
  const int batch = static_cast<int>(taken.size());
  nvjpegStatus_t s = NVJPEG_STATUS_SUCCESS;
  if (batch != initialisedBatch_) {
    s = nvjpegDecodeBatchedInitialize(h_->handle, h_->state, batch, 1, NVJPEG_OUTPUT_RGBI);
    initialisedBatch_ = s == NVJPEG_STATUS_SUCCESS ? batch : 0;
  }
  if (s == NVJPEG_STATUS_SUCCESS) s = nvjpegDecodeBatched(h_->handle, h_->state, data.data(), lengths.data(), outputs.data(), stream);
  if (s != NVJPEG_STATUS_SUCCESS) {
    // The batch call fails as a whole: every image in it goes back to the CPU, and the state is reset.
    initialisedBatch_ = 0;
    for (std::size_t i : taken) errors[i] = std::string("nvJPEG batched decode failed: ") + statusName(s);
  }
  return errors;
}

std::string nvjpegVersion() {
  int major = 0, minor = 0, patch = 0;
  nvjpegGetProperty(MAJOR_VERSION, &major);
  nvjpegGetProperty(MINOR_VERSION, &minor);
  nvjpegGetProperty(PATCH_LEVEL, &patch);
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

}  // namespace detq
