#include <nvjpeg.h>

#include <cstring>
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

// nvJPEG decodes damaged or cut-off scans without an error where libjpeg (sharp, failOn 'warning') reports
// one, so a stream goes to the device only when the first end-of-image marker after the first scan header
// closes the file (0x00/0xFF padding allowed): a truncated file has none, a damaged scan often a stray one.
// Checked here, on the context thread, rather than in JS: the search covers every byte of the file.
std::string endProblem(const std::uint8_t* b, std::size_t n) {
  std::size_t pos = 2;  // after SOI
  while (pos + 4 <= n) {
    if (b[pos] != 0xff) return "a marker is missing before the first scan";
    const std::uint8_t marker = b[pos + 1];
    if (marker == 0xff) {  // fill byte
      ++pos;
      continue;
    }
    if (marker == 0xd8 || marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {  // no length field
      pos += 2;
      continue;
    }
    if (marker == 0xd9) return "the image ends before its first scan";
    const std::size_t next = pos + 2 + ((static_cast<std::size_t>(b[pos + 2]) << 8) | b[pos + 3]);
    if (next > n) return "a header segment runs past the end of the file";
    if (marker == 0xda) {
      // Entropy-coded data holds 0xff only before 0x00 or a marker: the search hops between 0xff bytes.
      for (std::size_t at = next; at + 1 < n;) {
        const void* ff = std::memchr(b + at, 0xff, n - at - 1);
        if (!ff) break;
        at = static_cast<std::size_t>(static_cast<const std::uint8_t*>(ff) - b);
        if (b[at + 1] == 0xd9) {
          for (std::size_t k = at + 2; k < n; ++k)
            if (b[k] != 0x00 && b[k] != 0xff) return "data follows the first end-of-image marker (damaged scan)";
          return {};
        }
        ++at;
      }
      return "no end-of-image marker (truncated file)";
    }
    pos = next;
  }
  return "no scan";
}

}  // namespace

struct JpegDecoder::Handles {
  // One batched-decode state per staging slot, and the batch size it was initialised for.
  struct SlotState {
    nvjpegJpegState_t state = nullptr;
    int initialisedBatch = 0;
  };
  nvjpegDevAllocatorV2_t device{&deviceMalloc, &deviceFree, nullptr};
  nvjpegPinnedAllocatorV2_t pinned{&pinnedMalloc, &pinnedFree, nullptr};
  nvjpegHandle_t handle = nullptr;
  std::vector<SlotState> slots;
  nvjpegJpegStream_t header = nullptr;  // per-image header parse, for the support check
  ~Handles() {
    if (header) nvjpegJpegStreamDestroy(header);
    for (SlotState& s : slots)
      if (s.state) nvjpegJpegStateDestroy(s.state);
    if (handle) nvjpegDestroy(handle);
  }
};

JpegDecoder::JpegDecoder(int slots) : h_(std::make_unique<Handles>()) {
  // Hardware first; NVJPEG_STATUS_ARCH_MISMATCH (no NVJPG engine) or JPEG_NOT_SUPPORTED means the GPU
  // hybrid one. (NVJPEG_FLAGS_UPSAMPLING_WITH_INTERPOLATION left the coco128 box match unchanged on
  // the H100, so the default upsampling stays.) The hardware decode call returns only once its batch is
  // nearly decoded; with nvJPEG's own pipelining (buffering images across calls) a batch of 32 took
  // 10.6 ms on the H100 beside the network instead of 5.4 ms without it, and labelling ran 3,584 img/s
  // instead of ~3,990 (native/README.md). The flag means nothing to the hybrid backend.
  struct Choice {
    nvjpegBackend_t backend;
    const char* name;
  };
  const Choice choices[] = {{NVJPEG_BACKEND_HARDWARE, "hardware"}, {NVJPEG_BACKEND_GPU_HYBRID, "gpu-hybrid"}};
  nvjpegStatus_t last = NVJPEG_STATUS_SUCCESS;
  for (const Choice& c : choices) {
    last = nvjpegCreateExV2(c.backend, &h_->device, &h_->pinned, NVJPEG_FLAGS_HW_DECODE_NO_PIPELINE, &h_->handle);
    if (last == NVJPEG_STATUS_SUCCESS) {
      backend_ = c.name;
      break;
    }
    h_->handle = nullptr;
  }
  check(last, "create");
  h_->slots.resize(static_cast<std::size_t>(slots));
  for (Handles::SlotState& s : h_->slots) check(nvjpegJpegStateCreate(h_->handle, &s.state), "state create");
  check(nvjpegJpegStreamCreate(h_->handle, &h_->header), "stream create");
  log(LogLevel::kDebug, "nvJPEG " + backend_ + " decoder ready");
}

JpegDecoder::~JpegDecoder() = default;

std::string JpegDecoder::refusal(const JpegInput& in) {
  if (std::string why = endProblem(in.data, in.bytes); !why.empty()) return "not decoded on the device: " + why;
  nvjpegStatus_t s = nvjpegJpegStreamParseHeader(h_->handle, in.data, in.bytes, h_->header);
  if (s != NVJPEG_STATUS_SUCCESS) return std::string("nvJPEG cannot parse the header: ") + statusName(s);
  unsigned int w = 0, hgt = 0;
  nvjpegJpegStreamGetFrameDimensions(h_->header, &w, &hgt);
  // The output is sized from the header JS read: a disagreement would write out of bounds.
  if (static_cast<int>(w) != in.width || static_cast<int>(hgt) != in.height)
    return "nvJPEG reads " + std::to_string(w) + "x" + std::to_string(hgt) + ", the header said " + std::to_string(in.width) + "x" +
           std::to_string(in.height);
  int unsupported = 1;
  s = nvjpegDecodeBatchedSupported(h_->handle, h_->header, &unsupported);
  if (s != NVJPEG_STATUS_SUCCESS || unsupported) return "not supported by nvJPEG's " + backend_ + " batched decoder";
  return {};
}

std::string JpegDecoder::decode(const std::vector<JpegInput>& images, int slot, cudaStream_t stream) {
  if (images.empty()) return {};
  Handles::SlotState& st = h_->slots.at(static_cast<std::size_t>(slot));
  std::vector<const unsigned char*> data;
  std::vector<std::size_t> lengths;
  std::vector<nvjpegImage_t> outputs;
  for (const JpegInput& in : images) {
    data.push_back(in.data);
    lengths.push_back(in.bytes);
    nvjpegImage_t out{};
    out.channel[0] = in.output;
    out.pitch[0] = static_cast<std::size_t>(in.width) * 3;
    outputs.push_back(out);
  }
  const int batch = static_cast<int>(images.size());
  nvjpegStatus_t s = NVJPEG_STATUS_SUCCESS;
  if (batch != st.initialisedBatch) {
    s = nvjpegDecodeBatchedInitialize(h_->handle, st.state, batch, 1, NVJPEG_OUTPUT_RGBI);
    st.initialisedBatch = s == NVJPEG_STATUS_SUCCESS ? batch : 0;
  }
  if (s == NVJPEG_STATUS_SUCCESS) s = nvjpegDecodeBatched(h_->handle, st.state, data.data(), lengths.data(), outputs.data(), stream);
  if (s == NVJPEG_STATUS_SUCCESS) return {};
  // The batch call fails as a whole: every image in it goes back to the CPU, and the state is reset.
  st.initialisedBatch = 0;
  return std::string("nvJPEG batched decode failed: ") + statusName(s);
}

std::string nvjpegVersion() {
  int major = 0, minor = 0, patch = 0;
  nvjpegGetProperty(MAJOR_VERSION, &major);
  nvjpegGetProperty(MINOR_VERSION, &minor);
  nvjpegGetProperty(PATCH_LEVEL, &patch);
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

}  // namespace detq
