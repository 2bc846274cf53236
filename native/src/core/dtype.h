// Tensor element types crossing the backend boundary, and their names in both directions.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>

namespace detq {

enum class DType { kFloat32, kFloat16, kInt8 };

inline std::size_t dtypeSize(DType t) {
  switch (t) {
    case DType::kFloat32: return 4;
    case DType::kFloat16: return 2;
    case DType::kInt8: return 1;
  }
  return 0;
}

inline const char* dtypeName(DType t) {
  switch (t) {
    case DType::kFloat32: return "float32";
    case DType::kFloat16: return "float16";
    case DType::kInt8: return "int8";
  }
  return "unknown";
}

// Precision is what a model computes in (the Engine interface's 'fp32' | 'fp16' | 'int8').
enum class Precision { kFp32, kFp16, kInt8 };

inline const char* precisionName(Precision p) {
  switch (p) {
    case Precision::kFp32: return "fp32";
    case Precision::kFp16: return "fp16";
    case Precision::kInt8: return "int8";
  }
  return "unknown";
}

inline Precision parsePrecision(const std::string& name) {
  if (name == "fp32") return Precision::kFp32;
  if (name == "fp16") return Precision::kFp16;
  if (name == "int8") return Precision::kInt8;
  throw std::invalid_argument("unknown precision '" + name + "' (expected fp32, fp16 or int8)");
}

}  // namespace detq
