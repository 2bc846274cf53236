#include <cuda_runtime_api.h>

#include <string>

#include "backend.h"
#include "cuda_check.h"

namespace detq {

std::string deviceName(int device) {
  cudaDeviceProp prop{};
  DETQ_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return prop.name;
}

}  // namespace detq
