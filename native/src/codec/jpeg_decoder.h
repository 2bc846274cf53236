// The execution context's JPEG decoder (nvJPEG): batched decode of host JPEG bytes into interleaved RGB
// in device memory, at the addresses the letterbox kernel reads. Built only when CMake finds nvJPEG
// (DETQ_WITH_NVJPEG); without it encoded frames come back as decode failures and JS decodes them.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace detq {

struct JpegInput {
  const std::uint8_t* data;
  std::size_t bytes;
  // Stored size the caller sized the output for (from the header JS read): nvJPEG must agree.
  int width;
  int height;
  std::uint8_t* output;  // device, width*height*3 bytes, pitch width*3
};

class JpegDecoder {
 public:
  // With the context's device current. Prefers the hardware decoder (NVJPG engines of A100/H100/H200),
  // else nvJPEG's GPU hybrid backend. One handle, and one decode state per staging slot: a state's
  // bitstream buffers must not be refilled while the batch that last used them may still be decoding.
  explicit JpegDecoder(int slots);
  ~JpegDecoder();
  JpegDecoder(const JpegDecoder&) = delete;
  JpegDecoder& operator=(const JpegDecoder&) = delete;

  // Why the device cannot decode this image (empty: it can), from its bytes alone, on the host: a damaged
  // or missing end, a header nvJPEG cannot parse, a size other than the caller's, a stream the batched
  // decoder does not take. The caller reserves device memory only for the images that pass.
  std::string refusal(const JpegInput& image);
  // Enqueues the decode of images refusal() let through on `stream`, with `slot`'s state. Empty when the
  // batch was enqueued, else why it was not (the batch call fails as a whole: every image goes back to the CPU).
  std::string decode(const std::vector<JpegInput>& images, int slot, cudaStream_t stream);
  const std::string& backend() const { return backend_; }

 private:
  struct Handles;
  std::unique_ptr<Handles> h_;
  std::string backend_;
};

// nvJPEG's version (e.g. 12.4.0) when this build has it, else empty.
std::string nvjpegVersion();

}  // namespace detq
