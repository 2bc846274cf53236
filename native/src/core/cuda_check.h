// Turns CUDA status codes into C++ exceptions so every failure on a context thread ends up as a
// rejected promise carrying CUDA's own message.
#pragma once

#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace detq {

class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] inline void throwCuda(cudaError_t status, const char* what, const char* file, int line) {
  throw CudaError(std::string("CUDA error in ") + what + ": " + cudaGetErrorName(status) + " (" +
                  cudaGetErrorString(status) + ") at " + file + ":" + std::to_string(line));
}

}  // namespace detq

#define DETQ_CUDA_CHECK(expr)                                                   \
  do {                                                                          \
    cudaError_t detq_status_ = (expr);                                          \
    if (detq_status_ != cudaSuccess) ::detq::throwCuda(detq_status_, #expr, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: configuration errors surface here, execution errors at the next synchronisation.
#define DETQ_CUDA_CHECK_LAUNCH() DETQ_CUDA_CHECK(cudaGetLastError())
