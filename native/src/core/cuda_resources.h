// RAII owners for the CUDA objects an execution context holds: a stream, device and pinned
// host buffers. Destructors never throw (they run during unwinding); they release what they own.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <utility>

#include "cuda_check.h"

namespace detq {

// Selects a device for the lifetime of the guard and restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    DETQ_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device) DETQ_CUDA_CHECK(cudaSetDevice(device));
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

class CudaStream {
 public:
  CudaStream() { DETQ_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  ~CudaStream() {
    if (stream_) cudaStreamDestroy(stream_);
  }
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;
  cudaStream_t get() const { return stream_; }
  void synchronize() const { DETQ_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

 private:
  cudaStream_t stream_ = nullptr;
};

// An event the host waits on without spinning (cudaEventBlockingSync): a context thread waiting for its
// batch sleeps instead of taking a core from the JPEG decoding and the JS thread. Only `timing` events
// keep timestamps (DETQ_DEBUG's batch timeline); the others skip that cost.
class CudaEvent {
 public:
  explicit CudaEvent(bool timing = false) {
    DETQ_CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventBlockingSync | (timing ? 0u : cudaEventDisableTiming)));
  }
  ~CudaEvent() {
    if (event_) cudaEventDestroy(event_);
  }
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;
  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

// A growable allocation; `Alloc` supplies the allocate/free pair (device or pinned host memory).
template <typename Alloc>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(std::size_t bytes) { reserve(bytes); }
  ~Buffer() { release(); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& other) noexcept : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
  Buffer& operator=(Buffer&& other) noexcept {
    if (this != &other) {
      release();
      data_ = std::exchange(other.data_, nullptr);
      bytes_ = std::exchange(other.bytes_, 0);
    }
    return *this;
  }

  // Grows (never shrinks) so that steady-state batches reuse one allocation. Contents are not kept.
  void reserve(std::size_t bytes) {
    if (bytes <= bytes_) return;
    release();
    data_ = Alloc::allocate(bytes);
    bytes_ = bytes;
  }
  // reserve() for a buffer that work queued on `users` may still read or write: that work finishes before
  // the old allocation is given back, instead of relying on cudaFree waiting for the whole device.
  void reserveAfter(std::size_t bytes, cudaStream_t users) {
    if (bytes <= bytes_) return;
    DETQ_CUDA_CHECK(cudaStreamSynchronize(users));
    reserve(bytes);
  }
  // Gives the allocation back when it is larger than `keep` bytes and more than twice `needed`: one
  // outsized batch (100 MP images) must not pin its staging for the rest of the run.
  void shrinkAfter(std::size_t needed, std::size_t keep) {
    if (bytes_ > keep && bytes_ > 2 * needed) release();
  }
  void* data() const { return data_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }
  std::size_t size() const { return bytes_; }

 private:
  void release() {
    if (data_) Alloc::free(data_);
    data_ = nullptr;
    bytes_ = 0;
  }
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

struct DeviceAlloc {
  static void* allocate(std::size_t bytes) {
    void* p = nullptr;
    DETQ_CUDA_CHECK(cudaMalloc(&p, bytes));
    return p;
  }
  static void free(void* p) { cudaFree(p); }
};

struct PinnedAlloc {
  static void* allocate(std::size_t bytes) {
    void* p = nullptr;
    DETQ_CUDA_CHECK(cudaMallocHost(&p, bytes));
    return p;
  }
  static void free(void* p) { cudaFreeHost(p); }
};

using DeviceBuffer = Buffer<DeviceAlloc>;
using PinnedBuffer = Buffer<PinnedAlloc>;

}  // namespace detq
