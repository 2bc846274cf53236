// `detq build-engine`: ONNX -> TensorRT plan with an optimisation profile for dynamic batch and
// resolution, FP16 / INT8 (entropy calibration) and a workspace limit, written as a detq engine file.
#pragma once

#include <string>

#include "trt_plan.h"

namespace detq {

struct BuildOptions {
  std::string onnxPath;
  std::string outputPath;
  std::string modelSha256;
  std::string precision = "fp32";  // fp32 | fp16 | int8
  int workspaceMiB = 4096;
  std::string minShape = "1x3x640x640";
  std::string optShape = "16x3x640x640";
  std::string maxShape = "32x3x640x640";
  int device = 0;
  // INT8 only: float32 NCHW calibration images at the opt resolution, and the cache file.
  std::string calibrationData;
  std::string calibrationCache;
  int calibrationBatch = 8;
};

struct BuildResult {
  std::string path;
  PlanKey key;
  double seconds = 0;
};

BuildResult buildEngine(const BuildOptions& options);

}  // namespace detq
